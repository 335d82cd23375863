"""rounding_threshold_bits="auto", the default of compile_torch_model / compile_onnx_model.

Common networks compile at n_bits 2 to 8 without tuning; the chosen rounding is kept on the
module; an explicit int wins; what no rounding can fix still raises.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_fhe import compile_torch_model
from sklearn_fhe.errors import BitWidthError
from sklearn_fhe.quantization.quantized_module import QuantizedModule
from sklearn_fhe.torch.compile import AUTO_ROUNDING_MAX_BITS

from ..conftest import float_output

N_BITS = [2, 4, 6, 8]


def mlp(n_inputs: int, hidden: tuple, n_outputs: int) -> nn.Module:
    torch.manual_seed(0)
    layers, width = [], n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, n_outputs)).eval()


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.AvgPool2d(2, stride=1), nn.Flatten(),
        nn.Linear(12, 10),
    ).eval()


#: name → (module factory, input shape without the batch axis)
MODELS = {
    "mlp 10-16-8-3": (lambda: mlp(10, (16, 8), 3), (10,)),
    "mlp 32-12-8-8-4": (lambda: mlp(32, (12, 8, 8), 4), (32,)),
    "mlp 64-16-12-8-8-10": (lambda: mlp(64, (16, 12, 8, 8), 10), (64,)),
    "cnn 1x8x8": (small_cnn, (1, 8, 8)),
}


def inputs(shape: tuple, rows: int = 100) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows,) + shape).astype(np.float32)


@pytest.mark.parametrize("n_bits", N_BITS)
@pytest.mark.parametrize("name", MODELS)
def test_defaults_compile_common_networks(name, n_bits, fhe_configuration):
    """With the defaults, every network compiles; the rounding chosen is reported and is what
    the lookups use; simulate equals the clear integers."""
    factory, shape = MODELS[name]
    x = inputs(shape)
    quantized = compile_torch_model(factory(), x, n_bits=n_bits, configuration=fhe_configuration,
                                    batch_size=2)
    chosen = quantized.rounding_threshold_bits
    widest = max(lookup.input_bits for lookup in quantized.lookups)
    if chosen is None:  # nothing needed rounding
        assert widest <= AUTO_ROUNDING_MAX_BITS
        assert not any(lookup.rounded_bits for lookup in quantized.lookups)
    else:  # rounding the largest value up may carry into one more bit
        assert chosen <= AUTO_ROUNDING_MAX_BITS and widest <= chosen + 1
        assert any(lookup.rounded_bits for lookup in quantized.lookups)
    np.testing.assert_array_equal(quantized.forward(x[:10], fhe="simulate"), quantized.forward(x[:10]))


EXECUTED = [("mlp 10-16-8-3", n_bits) for n_bits in N_BITS] + [("cnn 1x8x8", 2), ("cnn 1x8x8", 4)]


@pytest.mark.execute
@pytest.mark.parametrize("name, n_bits", EXECUTED)
def test_auto_rounded_circuits_execute_like_simulate(name, n_bits, fhe_configuration):
    factory, shape = MODELS[name]
    x = inputs(shape)
    quantized = compile_torch_model(factory(), x, n_bits=n_bits, configuration=fhe_configuration,
                                    batch_size=2)
    np.testing.assert_array_equal(
        quantized.forward(x[:2], fhe="execute"), quantized.forward(x[:2], fhe="simulate")
    )


def test_the_user_mlp_of_the_issue_compiles_at_8_bits(fhe_configuration):
    """10 → 16 → 8 → 3 at n_bits=8 has 17-bit accumulators on the data, 18 over the whole input
    grid (what the circuit is sized for): unrounded it raises, "auto" rounds them and stays
    close to the float model."""
    model, x = mlp(10, (16, 8), 3), inputs((10,), 200)
    with pytest.raises(BitWidthError, match="18 bits > 16"):
        compile_torch_model(model, x, n_bits=8, rounding_threshold_bits=None)
    quantized = compile_torch_model(model, x, n_bits=8, configuration=fhe_configuration)
    assert quantized.rounding_threshold_bits is not None
    reference = float_output(model, x)
    error = np.abs(quantized.forward(x, fhe="simulate") - reference).mean()
    assert error < 0.1 * np.abs(reference).mean()


def test_explicit_threshold_wins(fhe_configuration):
    quantized = compile_torch_model(mlp(10, (16, 8), 3), inputs((10,)), n_bits=4,
                                    rounding_threshold_bits=3, configuration=fhe_configuration)
    assert quantized.rounding_threshold_bits == 3
    assert all(lookup.rounded_bits for lookup in quantized.lookups)
    assert max(lookup.input_bits for lookup in quantized.lookups) <= 3 + 1  # a carry at most


def test_auto_lowers_the_threshold_until_it_compiles(monkeypatch, fhe_configuration):
    """Each compilation failure about bit widths lowers the threshold by one bit."""
    compile_for_real = QuantizedModule.compile
    attempts = []

    def compile_up_to_4_bits(self, inputset, *args, **kwargs):
        widest = max(lookup.input_bits for lookup in self.lookups)
        attempts.append(widest)
        if widest > 4:
            raise BitWidthError("NoParametersFound (simulated)")
        return compile_for_real(self, inputset, *args, **kwargs)

    monkeypatch.setattr(QuantizedModule, "compile", compile_up_to_4_bits)
    quantized = compile_torch_model(mlp(10, (16, 8), 3), inputs((10,)), n_bits=6,
                                    configuration=fhe_configuration)
    assert attempts == list(range(AUTO_ROUNDING_MAX_BITS, 3, -1))
    assert quantized.rounding_threshold_bits == 4


def test_no_rounding_compiles(monkeypatch):
    def never(self, *args, **kwargs):
        raise BitWidthError("NoParametersFound (simulated)")

    monkeypatch.setattr(QuantizedModule, "compile", never)
    with pytest.raises(BitWidthError, match="No rounding of the table lookup inputs"):
        compile_torch_model(mlp(10, (16, 8), 3), inputs((10,)), n_bits=4)


def test_what_rounding_cannot_fix_still_raises():
    """MaxPool inputs are never rounded: a 20-bit convolution result before it still raises."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2))
    x = np.random.default_rng(0).normal(size=(40, 2, 6, 6)).astype(np.float32)
    with pytest.raises(BitWidthError, match="MaxPool node"):
        compile_torch_model(model, x, n_bits=8)


@pytest.mark.parametrize("value", ["max", 2.5, True])
def test_bad_threshold(value):
    with pytest.raises(ValueError, match="rounding_threshold_bits must be an int"):
        compile_torch_model(mlp(10, (16, 8), 3), inputs((10,)), n_bits=4,
                            rounding_threshold_bits=value)
