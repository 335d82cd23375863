"""Post-training quantization: accuracy grows with n_bits, the circuit is integer-only."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_fhe.onnx import NumpyModule, export_torch_to_onnx
from sklearn_fhe.quantization import PostTrainingQuantization, QuantizedModule
from sklearn_fhe.torch.compile import quantize_onnx_model
from tests.conftest import float_output


@pytest.fixture(scope="module")
def mlp_onnx(digits_mlp, digits):
    return export_torch_to_onnx(digits_mlp, digits["x_train"][:8])


@pytest.fixture(scope="module")
def errors_by_n_bits(mlp_onnx, digits_mlp, digits) -> dict:
    """Mean |quantized - float| of the 64-16-12-10 digits MLP on the test set, per n_bits.

    At 8 bits the 64-feature accumulators exceed 16 bits, so every width uses the same
    rounding_threshold_bits=12 (which only rounds the wider accumulators)."""
    x = digits["x_test"]
    expected = float_output(digits_mlp, x)
    errors = {}
    for n_bits in (2, 4, 8):
        quantized = quantize_onnx_model(mlp_onnx, digits["x_train"], n_bits, 12)
        errors[n_bits] = float(np.abs(quantized.forward(x) - expected).mean())
    errors["float_scale"] = float(np.abs(expected).mean())
    return errors


def test_quantized_output_approaches_float_as_n_bits_grows(errors_by_n_bits) -> None:
    """Mean abs error vs the float torch output: 8 bits < 4 bits < 2 bits, and 8 bits is a
    few percent of the outputs' magnitude."""
    errors = errors_by_n_bits
    assert errors[8] < errors[4] < errors[2]
    assert errors[8] < 0.02 * errors["float_scale"]
    assert errors[4] < 0.5 * errors[2]


def test_accuracy_at_8_bits_matches_float(mlp_onnx, digits_mlp, digits) -> None:
    quantized = quantize_onnx_model(mlp_onnx, digits["x_train"], 8, 12)
    x, y = digits["x_test"], digits["y_test"]
    float_accuracy = (float_output(digits_mlp, x).argmax(1) == y).mean()
    assert (quantized.forward(x).argmax(1) == y).mean() >= float_accuracy - 0.02


@pytest.mark.parametrize("n_bits, rounding", [(3, None), (8, 12)])
def test_every_intermediate_is_an_integer_array(mlp_onnx, digits, n_bits, rounding) -> None:
    """quantize_input gives int64; each step of _forward, run one by one, returns integers; the
    step-by-step result is _forward's."""
    quantized = quantize_onnx_model(mlp_onnx, digits["x_train"], n_bits, rounding)
    q = quantized.quantize_input(digits["x_test"])
    assert q.dtype == np.int64
    values = {"input_0": q}
    for step in quantized.steps:
        result = step.op(*(values[name] for name in step.inputs))
        assert isinstance(result, np.ndarray), step.op.op_type
        assert np.issubdtype(result.dtype, np.integer), (step.op.op_type, result.dtype)
        values[step.output] = result
    # (a final Bound sizes the output for the whole input grid: an identity on integers)
    op_types = [step.op.op_type for step in quantized.steps]
    assert [t for t in op_types if t != "Bound"] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    np.testing.assert_array_equal(values[quantized.steps[-1].output], quantized._forward(q))


def test_forward_asserts_integer_steps(mlp_onnx, digits, monkeypatch) -> None:
    """The in-circuit check is real: a step that returned floats would be caught."""
    quantized = quantize_onnx_model(mlp_onnx, digits["x_train"], 3)
    step = quantized.steps[1]
    original = type(step.op).__call__
    monkeypatch.setattr(type(step.op), "__call__", lambda self, q: original(self, q) * 0.5)
    with pytest.raises(AssertionError, match="produced float64 values inside the circuit"):
        quantized.forward(digits["x_test"][:3])


def test_post_training_quantization_directly(mlp_onnx, digits) -> None:
    """The class behind quantize_onnx_model: checks its arguments, returns a QuantizedModule."""
    module = NumpyModule(mlp_onnx)
    with pytest.raises(ValueError, match="rounding_threshold_bits=0 must be in"):
        PostTrainingQuantization(module, 4, rounding_threshold_bits=0)
    ptq = PostTrainingQuantization(module, {"weights": 3, "activations": 4})
    with pytest.raises(ValueError, match="calibration set is empty"):
        ptq.quantize(np.zeros((0, 64)))
    quantized = ptq.quantize(digits["x_train"])
    assert isinstance(quantized, QuantizedModule)
    assert all(lookup.output_bits <= 4 for lookup in quantized.lookups)
    first_weights = quantized.steps[0].op.weights
    assert np.abs(first_weights).max() <= 3  # 3-bit symmetric weights


def test_constant_input_feature_does_not_spoil_the_weights() -> None:
    """A feature that is constant on the calibration set (like the always-blank pixels of the
    digits) has a zero-width range, hence an arbitrary scale; it must not set the per-channel
    weight scale (it did: 8-bit error was 10x the 4-bit weight grid). Its constant part goes to
    the bias, exactly."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = np.random.default_rng(0).uniform(0, 0.1, size=(200, 8)).astype(np.float32)
    x[:, 0] = 0.0
    x[:, 5] = 0.05  # a non-zero constant: its contribution must survive, through the bias
    expected = float_output(model, x)
    quantized = quantize_onnx_model(export_torch_to_onnx(model, x[:4]), x, 8, 14)
    assert np.abs(quantized.forward(x) - expected).mean() < 0.01 * np.abs(expected).mean()
    assert np.all(quantized.steps[0].op.weights[[0, 5]] == 0)
