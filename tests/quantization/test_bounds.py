"""Worst-case ranges over the whole input grid: lookups, client-side steps, and the circuit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_fhe import compile_torch_model
from sklearn_fhe.quantization.bounds import grid_interval, input_interval, op_bounds
from sklearn_fhe.quantization.quantized_ops import QuantizedTableLookup, chain_step
from sklearn_fhe.quantization.quantizers import UniformQuantizer
from tests.properties.invariants import overflows


def relu_lookup(lsbs: int) -> QuantizedTableLookup:
    """A per-channel ReLU requantization, rounded by ``lsbs`` bits."""
    source = UniformQuantizer(np.array([0.01, 0.02, 0.05]), np.array([3.5, -2.0, 0.0]))
    out = UniformQuantizer(np.asarray(0.1), np.asarray(0), n_bits=4)
    return QuantizedTableLookup(source, (chain_step("Relu", {}, [None], 0),), out, lsbs)


@pytest.mark.parametrize("lsbs", [0, 2])
def test_lookup_bounds_are_the_table_range_over_the_input_range(lsbs):
    op = relu_lookup(lsbs)
    low, high = np.array([-40, 3, -100]), np.array([25, 90, -60])
    out_low, out_high = op_bounds(op, [(low, high)])
    for channel in range(3):  # every input of the channel's range, through the circuit's op
        q = np.zeros((high[channel] - low[channel] + 1, 3), dtype=np.int64)
        q[:, channel] = np.arange(low[channel], high[channel] + 1)
        entries = np.asarray(op(q))[:, channel]
        assert (out_low[channel], out_high[channel]) == (entries.min(), entries.max())


def test_input_interval_is_what_monotone_client_steps_let_through():
    quantizer = UniformQuantizer(np.asarray(0.5), np.asarray(4), n_bits=3)
    row = np.zeros(2)
    clip = chain_step("Clip", {}, [None, _Value(-1.0), _Value(1.5)], 0)
    assert [list(end) for end in input_interval(quantizer, (clip,), row)] == [[2, 2], [7, 7]]
    low, high = input_interval(quantizer, (clip, chain_step("Neg", {}, [None], 0)), row)
    assert (list(low), list(high)) == ([1, 1], [6, 6])
    # a step that is not monotone (a sine) leaves the whole grid
    sine = chain_step("Sin", {}, [None], 0)
    assert [list(end) for end in input_interval(quantizer, (sine,), row)] == [
        list(end) for end in grid_interval(quantizer, row)]


class _Value:
    """A constant input of a chain step."""

    def __init__(self, value: float) -> None:
        self.value = np.asarray(value)


def test_correlated_features_far_apart_cannot_overflow_a_lookup(fhe_configuration):
    """Four features always equal in calibration: the first unit's accumulator is 0 there and
    reaches twice the second unit's largest when they part (on the grid, after clipping)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 0.0, 0.0, 0.0]]))
    x = np.repeat(np.linspace(-1, 1, 64)[:, None], 4, axis=1)
    module = compile_torch_model(model, x, n_bits=4, rounding_threshold_bits=3,
                                 configuration=fhe_configuration)
    extreme = np.array([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0], [1e6, -1e6, 1e6, -1e6]])
    assert overflows(module, module.quantize_input(extreme)) == []
    np.testing.assert_array_equal(module.forward(extreme, fhe="simulate"),
                                  module.forward(extreme))


def test_a_lookup_input_that_rounds_up_to_zero_keeps_its_value(fhe_configuration):
    """Found by the property tests (large profile): a lookup source only negative in
    calibration ([-5, -2]) rounded by 2 bits; concrete sized the rounded value narrower than its
    source and its overflow protection turned the -2 -> 0 rounding into another index."""
    model = nn.Sequential(nn.Linear(2, 1), nn.Hardswish(), nn.Linear(1, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-0.0053, 0.3793]]))
        model[0].bias.fill_(-0.582)
        model[2].weight.fill_(-0.7359)
        model[2].bias.fill_(-0.3852)
    x = np.array([[-2.105, -2.897], [-1.590, -2.660], [-2.766, -2.404], [-0.926, -1.818],
                  [-2.934, -4.031], [-2.854, -2.724], [-4.556, -2.984], [-3.476, -3.497],
                  [-2.775, -3.081], [-1.819, -1.723], [-2.359, -1.399], [-2.896, -2.414],
                  [-1.327, -2.671]], dtype=np.float32)
    module = compile_torch_model(model.eval(), x, n_bits=2, rounding_threshold_bits=2,
                                 configuration=fhe_configuration)
    assert module.lookups[0].rounded_bits == 2
    clear = module.forward(x)
    assert len(np.unique(clear)) > 1  # both sides of the rounding are reached
    np.testing.assert_array_equal(module.forward(x, fhe="simulate"), clear)
