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
