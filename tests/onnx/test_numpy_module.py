"""NumpyModule reproduces torch on exported models and rejects what it cannot run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from sklearn_fhe.onnx import NumpyModule, export_torch_to_onnx
from sklearn_fhe.onnx.numpy_module import UnsupportedOpsError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "softplus": nn.Softplus,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "gelu": nn.GELU,
    "celu": nn.CELU,
    "softsign": nn.Softsign,
    "prelu": nn.PReLU,
}


def _compare(module: nn.Module, x: np.ndarray) -> None:
    """Export ``module`` and check NumpyModule against torch on ``x``."""
    torch.manual_seed(0)
    model = export_torch_to_onnx(module, x[:2])
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    got = NumpyModule(model)(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("hidden", [(16, 8), (12, 10, 6)])
def test_mlp_matches_torch(activation: str, hidden: tuple[int, ...]) -> None:
    """MLPs with 2-3 hidden layers and each activation equal torch."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 5
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, 3))
    x = np.random.default_rng(0).normal(scale=2.0, size=(20, 5)).astype(np.float32)
    _compare(nn.Sequential(*layers), x)


def _trained_batchnorm(channels: int) -> nn.BatchNorm2d:
    """A BatchNorm2d with non-trivial statistics and affine parameters (eval mode)."""
    norm = nn.BatchNorm2d(channels)
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    return norm.eval()


def test_small_cnn_matches_torch() -> None:
    """Conv2d, BatchNorm2d, ReLU, AvgPool2d, MaxPool2d, Flatten, Linear on 1x8x8 images."""
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3),  # 6x6
        _trained_batchnorm(4),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 3x3
        nn.Conv2d(4, 6, 2),  # 2x2
        nn.ReLU(),
        nn.MaxPool2d(2),  # 1x1
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    x = np.random.default_rng(1).normal(size=(10, 1, 8, 8)).astype(np.float32)
    _compare(cnn, x)


def test_cnn_with_padding_stride_groups_matches_torch() -> None:
    """Padding, strides, dilation, groups and pooling options."""
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),  # 4x4
        _trained_batchnorm(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2),  # 4x4
        nn.Sigmoid(),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),  # 4x4
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),  # 3x3
        nn.Conv2d(8, 8, 1, groups=8),  # depthwise
        nn.Flatten(),
        nn.Linear(72, 2),
    )
    x = np.random.default_rng(2).normal(size=(7, 1, 8, 8)).astype(np.float32)
    _compare(cnn, x)


def test_conv1d_matches_torch() -> None:
    """1-D convolutions and pools."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1, stride=2),
        nn.Tanh(),
        nn.AvgPool1d(2, ceil_mode=True),
        nn.MaxPool1d(2),
        nn.Flatten(),
    )
    x = np.random.default_rng(3).normal(size=(4, 2, 16)).astype(np.float32)
    _compare(net, x)


class _CumSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1)


class _CumSumAndTopK(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.topk(torch.cumsum(x, dim=1), 2, dim=1).values


def test_unsupported_op_raises() -> None:
    """A model using torch.cumsum is rejected, naming CumSum."""
    model = export_torch_to_onnx(_CumSum(), np.ones((2, 4), dtype=np.float32))
    with pytest.raises(UnsupportedOpsError, match="CumSum") as info:
        NumpyModule(model)
    assert isinstance(info.value, ValueError)


def test_unsupported_ops_are_all_listed() -> None:
    """With two unsupported ops, the error lists both."""
    model = export_torch_to_onnx(_CumSumAndTopK(), np.ones((2, 4), dtype=np.float32))
    assert {"CumSum", "TopK"} <= {node.op_type for node in model.graph.node}
    with pytest.raises(UnsupportedOpsError, match="CumSum, TopK"):
        NumpyModule(model)


@pytest.mark.parametrize("not_a_model", [None, "model.onnx", b"bytes", onnx.GraphProto()])
def test_non_model_raises_type_error(not_a_model: object) -> None:
    """Only onnx.ModelProto is accepted."""
    with pytest.raises(TypeError, match="ModelProto"):
        NumpyModule(not_a_model)  # type: ignore[arg-type]


def test_wrong_number_of_inputs_raises() -> None:
    """Calling with the wrong number of inputs fails clearly."""
    model = export_torch_to_onnx(nn.Linear(3, 2), np.ones((2, 3), dtype=np.float32))
    module = NumpyModule(model)
    with pytest.raises(ValueError, match="1 input"):
        module(np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32))
