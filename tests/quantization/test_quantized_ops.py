"""Op coverage of the quantized path: every model runs "simulate" == "disable" exactly, stays near
its float output, and puts in the circuit only what needs the encrypted data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_fhe import compile_torch_model
from sklearn_fhe.errors import BitWidthError, QuantizationError
from sklearn_fhe.quantization.quantized_ops import QuantizedAdd
from sklearn_fhe.torch.compile import quantize_onnx_model
from sklearn_fhe.onnx import export_torch_to_onnx
from tests.conftest import float_output

RNG = np.random.default_rng(0)
X = RNG.normal(size=(160, 6)).astype(np.float32)
IMAGES = RNG.normal(size=(80, 2, 6, 6)).astype(np.float32)


def _batchnorm(cls, channels: int):
    """A BatchNorm in eval mode with non-trivial statistics and affine parameters."""
    torch.manual_seed(1)
    norm = cls(channels)
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    return norm.eval()


class TwoBranches(nn.Module):
    """Residual Add of two encrypted branches on different scales (ReLU and Sigmoid)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.relu(self.a(x)) + torch.sigmoid(self.b(x)))


class SkipConnection(nn.Module):
    """h + relu(W h): a skip connection, and a Sub of two encrypted tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.out((h + torch.relu(self.b(h))) - torch.tanh(h))


class ConstantArithmetic(nn.Module):
    """Sub, Mul, Div, reversed Sub by constants after an activation: one lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.out = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = (torch.relu(self.a(x)) - 0.3) * 2.0 / 3.0
        return self.out(1.0 - h)


class ArithmeticAtTheEnd(nn.Module):
    """Add, Mul, Div by constants on the last linear layer: leveled or clear, no lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)

    def forward(self, x):
        return (self.a(x) + 0.5) * 3.0 / 2.0


class ShapeOps(nn.Module):
    """Reshape, Transpose and Concat of encrypted tensors (per-feature scales follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 8), nn.Linear(6, 4), nn.Linear(12, 3)

    def forward(self, x):
        h = torch.relu(self.a(x)).reshape(-1, 2, 4).transpose(1, 2).reshape(-1, 8)
        return self.out(torch.cat([h, torch.tanh(self.b(x))], dim=1))


class Reductions(nn.Module):
    """ReduceSum and ReduceMean over a non-batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)

    def forward(self, x):
        h = torch.relu(self.a(x)).reshape(-1, 2, 4)
        return torch.cat([h.sum(dim=2), h.mean(dim=2)], dim=1)


class GlobalMeanPool(nn.Module):
    """Conv → BatchNorm2d → ReLU → mean over the spatial axes → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.out = nn.Conv2d(2, 3, 3), _batchnorm(nn.BatchNorm2d, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3)))


class SoftmaxHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.out = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return torch.softmax(self.out(torch.relu(self.a(x))), dim=1)


class ArgmaxHead(SoftmaxHead):
    def forward(self, x):
        return torch.argmax(self.out(torch.relu(self.a(x))), dim=1)


def _mlp(activation: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), activation, nn.Linear(8, 3))


MODELS = {
    "sigmoid": lambda: (_mlp(nn.Sigmoid()), X),
    "tanh": lambda: (_mlp(nn.Tanh()), X),
    "leaky_relu": lambda: (_mlp(nn.LeakyReLU(0.1)), X),
    "batchnorm1d": lambda: (
        nn.Sequential(nn.Linear(6, 8), _batchnorm(nn.BatchNorm1d, 8), nn.ReLU(), nn.Linear(8, 3)),
        X,
    ),
    "batchnorm1d_on_input": lambda: (
        nn.Sequential(_batchnorm(nn.BatchNorm1d, 6), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
        X,
    ),
    "two_branches": lambda: (TwoBranches(), X),
    "skip_connection": lambda: (SkipConnection(), X),
    "constant_arithmetic": lambda: (ConstantArithmetic(), X),
    "arithmetic_at_the_end": lambda: (ArithmeticAtTheEnd(), X),
    "shape_ops": lambda: (ShapeOps(), X),
    "reductions": lambda: (Reductions(), X),
    "global_mean_pool": lambda: (GlobalMeanPool(), IMAGES),
    "maxpool": lambda: (
        nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2)),
        IMAGES,
    ),
    "maxpool_before_relu": lambda: (
        nn.Sequential(nn.Conv2d(2, 4, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)),
        IMAGES,
    ),
    "padded_conv_and_maxpool": lambda: (
        nn.Sequential(
            nn.Conv2d(2, 2, 3, padding=1),  # 6x6
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),  # 3x3
            nn.Flatten(),
            nn.Linear(18, 2),
        ),
        IMAGES,
    ),
    "padded_avgpool": lambda: (
        nn.Sequential(
            nn.Conv2d(2, 2, 3),  # 4x4
            nn.ReLU(),
            nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),  # 5x5
            nn.Flatten(),
            nn.Linear(50, 2),
        ),
        IMAGES,
    ),
    "softmax_head": lambda: (SoftmaxHead(), X),
    "argmax_head": lambda: (ArgmaxHead(), X),
}


@pytest.fixture(scope="module")
def compiled(fhe_configuration):
    """name → (float model, inputs, QuantizedModule compiled at 5 bits, lookups ≤ 6 bits)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            model, x = MODELS[name]()
            model.eval()
            quantized = compile_torch_model(
                model, x, n_bits=5, rounding_threshold_bits=6,
                configuration=fhe_configuration, batch_size=4,
            )
            cache[name] = (model, x, quantized)
        return cache[name]

    return get


@pytest.mark.parametrize("pool_first", [False, True], ids=["relu_maxpool", "maxpool_relu"])
@pytest.mark.parametrize("n_bits, rounding_threshold_bits", [(3, None), (6, None), (6, 5), (7, 6)])
def test_maxpool_compiles_at_any_bit_width(
    pool_first: bool, n_bits: int, rounding_threshold_bits, fhe_configuration
) -> None:
    """concrete's MaxPool ties its comparisons to the width of what follows it; with rounded
    lookups its optimizer then finds no parameters unless the pool is decoupled from the next
    Gemm (identity lookup) and its results are read unrounded. Every combination compiles,
    but a pool of 7-bit convolutions read by the activation: unrounded, that lookup would need
    17 bits to hold the convolution's worst case over the input grid, and our error says so."""
    torch.manual_seed(0)
    layers = [nn.MaxPool2d(2), nn.ReLU()] if pool_first else [nn.ReLU(), nn.MaxPool2d(2)]
    model = nn.Sequential(nn.Conv2d(2, 3, 3), *layers, nn.Flatten(), nn.Linear(12, 2)).eval()
    if pool_first and n_bits == 7:
        with pytest.raises(BitWidthError, match="17 bits > 16 .* activation before the MaxPool"):
            compile_torch_model(model, IMAGES, n_bits=n_bits,
                                rounding_threshold_bits=rounding_threshold_bits)
        return
    quantized = compile_torch_model(
        model, IMAGES, n_bits=n_bits, rounding_threshold_bits=rounding_threshold_bits,
        configuration=fhe_configuration, batch_size=4,
    )
    rows = IMAGES[:8]
    assert np.array_equal(quantized.forward(rows, fhe="simulate"), quantized.forward(rows))


def test_maxpool_of_a_dead_layer_raises_before_concrete() -> None:
    """A max of constants makes concrete's optimizer abort the process: a clear error first."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(12, 2)).eval()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every ReLU output is 0
    with pytest.raises(QuantizationError, match="MaxPool node .* same constant .* dead"):
        compile_torch_model(model, IMAGES, n_bits=4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_simulate_equals_disable_and_approaches_float(name: str, compiled) -> None:
    """Exact equality of the simulated circuit and the clear integers; the dequantized output
    is close to the float model (argmax: most labels agree)."""
    model, x, quantized = compiled(name)
    rows = x[:40]
    clear = quantized.forward(rows)
    assert np.array_equal(quantized.forward(rows, fhe="simulate"), clear)
    expected = float_output(model, rows)
    if name == "argmax_head":
        assert clear.dtype == np.int64 and (clear == expected).mean() >= 0.85
    else:
        assert clear.shape == expected.shape
        assert np.abs(clear - expected).mean() < 0.25 * np.abs(expected).mean() + 0.01
    for step in quantized.steps:  # every op of the circuit is an integer op
        assert step.op.op_type not in {"Softmax", "ArgMax"}


@pytest.mark.parametrize("name, ops", [("softmax_head", "Softmax"), ("argmax_head", "ArgMax")])
def test_softmax_and_argmax_run_in_the_clear(name: str, ops: str, compiled) -> None:
    """The last ops mix elements: they run after decryption. The circuit's only lookups are the
    hidden ReLUs: 8 per row, so 8 x 4 rows x 2 PBS (one rounded bit, one lookup)."""
    _, _, quantized = compiled(name)
    assert [lookup.ops for lookup in quantized.lookups] == ["Relu"]
    assert [step.op_type for step in quantized.output_dequantizations[0].steps] == [ops]
    rounded = quantized.lookups[0].rounded_bits
    assert quantized.statistics()["pbs_per_circuit"] == 8 * 4 * (1 + rounded)


def test_constant_arithmetic_fuses_into_one_lookup(compiled) -> None:
    _, _, quantized = compiled("constant_arithmetic")
    assert [lookup.ops for lookup in quantized.lookups] == ["Relu+Sub+Mul+Div+Sub"]


def test_arithmetic_on_the_output_needs_no_lookup(compiled) -> None:
    """Add of a constant is leveled, Mul and Div by constants end in the clear: 0 PBS."""
    _, _, quantized = compiled("arithmetic_at_the_end")
    assert quantized.lookups == []
    assert quantized.statistics()["pbs_per_circuit"] == 0


def test_encrypted_branches_are_added_on_a_common_scale(compiled) -> None:
    """Two encrypted branches of different scales: requantized, then one integer Add."""
    _, _, quantized = compiled("two_branches")
    adds = [step for step in quantized.steps if isinstance(step.op, QuantizedAdd)]
    assert len(adds) == 1 and len(adds[0].inputs) == 2
    assert [lookup.ops for lookup in quantized.lookups][-2:] == ["requantization"] * 2


# -- real limits: a clear QuantizationError, at quantization time --------------------------------
class SquareOfEncrypted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)

    def forward(self, x):
        h = self.a(x)
        return h * h


class ProductOfEncrypted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(6, 4)

    def forward(self, x):
        return self.a(x).reshape(-1, 4, 1) @ self.b(x).reshape(-1, 1, 4)


class SoftmaxInTheMiddle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.out = nn.Linear(6, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(torch.softmax(self.a(x), dim=1))


class MixedAfterSoftmax(SoftmaxInTheMiddle):
    """softmax(h) + relu(h): a clear-only result meets an encrypted one."""

    def forward(self, x):
        h = self.a(x)
        return torch.softmax(h, dim=1) + torch.relu(h)


class ShapeOfEncrypted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(2, 2, 3), nn.Linear(32, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.out(h.view(h.size(0), -1))


@pytest.mark.parametrize(
    "model, x, match",
    [
        (SquareOfEncrypted(), X, "Mul node .* combines 2 encrypted tensors"),
        (ProductOfEncrypted(), X, "MatMul node .* only the product of an encrypted tensor"),
        (MixedAfterSoftmax(), X, "Add node .* combines 2 encrypted tensors"),
        (ShapeOfEncrypted(), IMAGES, "Shape node .* only supported on constants"),
    ],
    ids=["square", "encrypted_matmul", "mixed_after_softmax", "shape_of_encrypted"],
)
def test_unsupported_patterns_raise_quantization_error(model, x, match) -> None:
    onnx_model = export_torch_to_onnx(model.eval(), x[:4])
    with pytest.raises(QuantizationError, match=match):
        quantize_onnx_model(onnx_model, x, n_bits=4)


def test_ops_after_softmax_run_in_the_clear() -> None:
    """Softmax mixes elements non-linearly: it and every op after it (here a Linear) run on the
    client after decryption; the circuit is the first Linear only, and the result is right."""
    torch.manual_seed(0)
    model = SoftmaxInTheMiddle().eval()
    quantized = quantize_onnx_model(export_torch_to_onnx(model, X[:4]), X, n_bits=6)
    # (the Gemm's result, sized for the whole input grid by a Bound: an identity on integers)
    assert [step.op.op_type for step in quantized.steps] in (["Gemm"], ["Gemm", "Bound"])
    assert [step.op_type for step in quantized.output_dequantizations[0].steps] == [
        "Softmax", "Gemm"
    ]
    expected = float_output(model, X)
    assert np.abs(quantized.forward(X) - expected).mean() < 0.05 * np.abs(expected).mean()
