"""The public entry points compile_torch_model / compile_onnx_model, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_fhe import compile_onnx_model, compile_torch_model
from sklearn_fhe.errors import BitWidthError, QuantizationError
from sklearn_fhe.onnx import export_torch_to_onnx
from sklearn_fhe.onnx.numpy_module import UnsupportedOpsError
from sklearn_fhe.quantization import NBits
from sklearn_fhe.torch.compile import quantize_onnx_model

X = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


class CumulativeSum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)

    def forward(self, x):
        return torch.cumsum(self.a(x), dim=1)


def test_dict_n_bits(fhe_configuration) -> None:
    """A dict sets each role apart: 3-bit inputs, 2-bit weights (levels -1..1), 4-bit
    activations; outputs default to the activations width."""
    n_bits = {"inputs": 3, "weights": 2, "activations": 4}
    quantized = compile_torch_model(
        _mlp(), X, n_bits=n_bits, configuration=fhe_configuration, batch_size=4
    )
    assert quantized.n_bits == NBits(inputs=3, weights=2, activations=4, outputs=4)
    assert quantized.input_quantizations[0].quantizer.n_bits == 3
    gemms = [step.op for step in quantized.steps if step.op.op_type == "Gemm"]
    assert len(gemms) == 3 and all(np.abs(op.weights).max() <= 1 for op in gemms)
    assert [lookup.output_bits for lookup in quantized.lookups] == [4, 4]
    assert np.array_equal(quantized.forward(X, fhe="simulate"), quantized.forward(X))


def test_compile_onnx_model_equals_compile_torch_model(fhe_configuration) -> None:
    model = _mlp()
    from_torch = compile_torch_model(model, X, n_bits=3, configuration=fhe_configuration)
    from_onnx = compile_onnx_model(
        export_torch_to_onnx(model, X[:8]), X, n_bits=3, configuration=fhe_configuration
    )
    assert from_onnx.batch_size == 16  # the default
    np.testing.assert_array_equal(from_onnx.forward(X, fhe="simulate"), from_torch.forward(X))


def test_torch_tensor_inputset(fhe_configuration) -> None:
    quantized = compile_torch_model(
        _mlp(), torch.as_tensor(X), n_bits=3, configuration=fhe_configuration
    )
    assert quantized.forward(X[:2]).shape == (2, 3)


# -- errors ------------------------------------------------------------------------------------
def test_lookup_wider_than_16_bits_raises_before_compiling(monkeypatch) -> None:
    """8-bit inputs and weights over 64 features accumulate past 16 bits: without rounding
    (None; the default "auto" rounds them) the ReLU lookup would read them. The error names the op, the width and the knobs, and comes from
    quantization: concrete is never called."""

    def no_compilation(*args, **kwargs):
        raise AssertionError("concrete compilation must not start")

    monkeypatch.setattr(
        "sklearn_fhe.quantization.quantized_module.compile_integer_function", no_compilation
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))
    x = np.random.default_rng(1).uniform(0, 1, size=(100, 64)).astype(np.float32)
    with pytest.raises(BitWidthError) as info:
        compile_torch_model(model, x, n_bits=8, rounding_threshold_bits=None)
    message = str(info.value)
    assert "Relu" in message and "Gemm" in message
    width = int(message.split(" bits > 16")[0].split()[-1])
    assert width > 16
    assert "n_bits" in message and "rounding_threshold_bits" in message
    assert isinstance(info.value, QuantizationError) and isinstance(info.value, ValueError)
    # the knob the message names does fix it
    quantized = quantize_onnx_model(export_torch_to_onnx(model, x[:4]), x, 8, 6)
    assert all(lookup.input_bits <= 7 for lookup in quantized.lookups)


def test_maxpool_on_a_wide_accumulator_raises_bit_width_error() -> None:
    """MaxPool compares with lookups one bit wider than its input: on a 20-bit convolution
    result it names MaxPool and the knobs (rounding does not apply to it)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2))
    x = np.random.default_rng(0).normal(size=(40, 2, 6, 6)).astype(np.float32)
    with pytest.raises(BitWidthError, match=r"MaxPool node .* \d+-bit table lookups > 16.*n_bits"):
        quantize_onnx_model(export_torch_to_onnx(model, x[:4]), x, 8)


def test_unsupported_op_lists_it() -> None:
    """torch.cumsum exports CumSum: an UnsupportedOpsError (a ValueError) listing it."""
    with pytest.raises(UnsupportedOpsError, match="does not support: CumSum") as info:
        compile_torch_model(CumulativeSum(), X, n_bits=3)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, KeyError)
    assert "Supported ops:" in str(info.value) and "Gemm" in str(info.value)


@pytest.mark.parametrize("inputset", [np.zeros((0, 6)), [], np.float32(1.0)])
def test_empty_inputset(inputset) -> None:
    with pytest.raises(ValueError, match="inputset is empty"):
        compile_torch_model(_mlp(), inputset, n_bits=3)


def test_non_finite_inputset() -> None:
    x = X.copy()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        compile_torch_model(_mlp(), x, n_bits=3)


@pytest.mark.parametrize("module", [lambda x: x, "model", None, nn.Linear])
def test_non_module_raises_type_error(module) -> None:
    with pytest.raises(TypeError, match="expects a torch.nn.Module"):
        compile_torch_model(module, X, n_bits=3)


def test_bad_n_bits_through_the_public_api() -> None:
    with pytest.raises(ValueError, match="Unknown n_bits keys"):
        compile_torch_model(_mlp(), X, n_bits={"bias": 3})


def test_unknown_fhe_value() -> None:
    quantized = quantize_onnx_model(export_torch_to_onnx(_mlp(), X[:4]), X, 3)
    with pytest.raises(ValueError, match="fhe='simulated' is not a valid mode"):
        quantized.forward(X, fhe="simulated")


@pytest.mark.parametrize("mode", ["simulate", "execute", True])
def test_running_the_circuit_before_compile(mode) -> None:
    """Quantized but not compiled: clear inference works, the circuit modes say what to do."""
    quantized = quantize_onnx_model(export_torch_to_onnx(_mlp(), X[:4]), X, 3)
    assert quantized.forward(X).shape == (64, 3)
    with pytest.raises(RuntimeError, match=r"not compiled: call compile\(inputset\)"):
        quantized.forward(X, fhe=mode)
    with pytest.raises(RuntimeError, match="not compiled"):
        quantized.statistics()
    with pytest.raises(RuntimeError, match="not compiled"):
        quantized.keygen()
