"""Worst-case integer ranges of the circuit's values, whatever the input.

concrete sizes every integer of a circuit by the values it sees on the compilation inputset. An
input outside the calibration range is clipped onto the input grid, but a combination of grid
values never seen in calibration (one feature at its top, a correlated one at its bottom) can
drive a leveled accumulator past that size: a silent overflow, a wrong encrypted result.
Interval arithmetic over the integer ops gives each value's range over the *whole* input grid
(narrowed by the client-side steps before the input quantizer, such as a fake quantizer's
Clip); the values whose every bit counts are then hinted to hold it (``Bound``): the circuit's
outputs (decrypted with their sign) and the inputs of table lookups (they index the table).

A lookup's input is rounded from its worst-case width (``rounding_threshold_bits`` keeps the
lookup itself as narrow), and a lookup's output range is the range of its table over its
input's, so the values past it are bounded too. Sizing for the worst case costs where it is
wider than calibration: one more PBS per bit rounded away, and a wider encoding for the leveled
chain around it. Networks trained for it cost nothing more: the default ``FHEMLP``'s
accumulator-aware training keeps each unit's worst case within the width calibration would
have given (``n_accum_max_bits``, see :func:`sklearn_fhe.torch.qat.accumulator_aware_weight`).

A value's interval is a pair ``(low, high)`` of integer arrays shaped like one row of it.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Sequence

import numpy as np
from concrete import fhe

from .quantized_ops import (
    IntegerOp,
    QuantizedAdd,
    QuantizedConv,
    QuantizedGemm,
    QuantizedMaxPool,
    QuantizedReduceSum,
    QuantizedShapeOp,
    QuantizedTableLookup,
)
from .quantizers import UniformQuantizer

Interval = tuple[np.ndarray, np.ndarray]

#: Table entries evaluated at most to bound one lookup exactly (else its output grid bounds it).
_MAX_TABLE_ENTRIES = 1 << 24


def grid_interval(quantizer: UniformQuantizer, row: np.ndarray) -> Optional[Interval]:
    """The whole integer grid of a bounded ``quantizer``, for values shaped like ``row``."""
    if quantizer.n_bits is None:
        return None
    shape = np.shape(row)
    return (np.full(shape, quantizer.qmin, dtype=np.int64),
            np.full(shape, quantizer.qmax, dtype=np.int64))


#: Elementwise ops that never reverse their order twice over the reals (each is monotone in
#: its variable input): the extremes of a chain of them come from the extremes of its input.
_MONOTONE_STEPS = frozenset(
    "Cast Ceil Clip DequantizeLinear Floor Identity Neg QuantizeLinear Relu Round Sigmoid "
    "Tanh Add Sub Mul".split()
)

#: A real past any feature (validated inputs are finite), far below float64's overflow.
_FAR = 1e300


def input_interval(quantizer: UniformQuantizer, steps: Sequence, row: np.ndarray
                   ) -> Optional[Interval]:
    """The integers a model input can take: the grid of ``quantizer``, narrowed to what the
    client-side ``steps`` (a fake quantizer's Clip, an affine map...) let through when they are
    all monotone (then the input's two far ends reach the extremes)."""
    grid = grid_interval(quantizer, row)
    if grid is None or not all(_monotone(step) for step in steps):
        return grid
    ends = []
    for far in (-_FAR, _FAR):
        values = np.full(np.shape(row), far, dtype=np.float64)
        with np.errstate(all="ignore"):
            for step in steps:
                values = np.asarray(step(values), dtype=np.float64)
        if not np.all(np.isfinite(values)):
            return grid
        ends.append(np.asarray(quantizer.quant(values), dtype=np.int64))
    return np.minimum(*ends), np.maximum(*ends)


def _monotone(step: Any) -> bool:
    # a constant divided by the input has a pole; the input divided by a constant is affine
    return step.op_type in _MONOTONE_STEPS or (step.op_type == "Div" and step.position == 0)


def _with(op: IntegerOp, **changes: Any) -> IntegerOp:
    twin = copy.copy(op)
    for name, value in changes.items():
        setattr(twin, name, value)
    return twin


def _signed_parts_bounds(op: IntegerOp, weights: str, bias: Optional[str],
                         interval: Interval) -> Interval:
    """Bounds of an op affine in its input, ``W x + b`` (``bias`` names ``b``, None for none):
    positive weights take the input's low end for the result's low end, negative weights its
    high end; an input zero point subtracted inside the op is subtracted in both parts."""
    low, high = interval
    w = np.asarray(getattr(op, weights))
    positive, negative = np.maximum(w, 0), np.minimum(w, 0)
    plus = _with(op, **{weights: positive})
    minus_changes = {weights: negative}
    if bias is not None and getattr(op, bias) is not None:
        minus_changes[bias] = np.zeros_like(np.asarray(getattr(op, bias)))
    minus = _with(op, **minus_changes)
    return (np.asarray(plus(low)) + np.asarray(minus(high)),
            np.asarray(plus(high)) + np.asarray(minus(low)))


def _add_bounds(op: QuantizedAdd, *intervals: Interval) -> Interval:
    low = high = np.asarray(op.offset)
    for sign, (lo, hi) in zip(op.signs, intervals):
        low, high = (low + lo, high + hi) if sign > 0 else (low - hi, high - lo)
    return np.asarray(low), np.asarray(high)


def _monotone_bounds(op: IntegerOp, *intervals: Interval) -> Interval:
    """Ops that move, select, sum or take maxima of elements: low ends give the low end."""
    return (np.asarray(op(*(lo for lo, _ in intervals))),
            np.asarray(op(*(hi for _, hi in intervals))))


def _lookup_bounds(op: QuantizedTableLookup, interval: Interval) -> Interval:
    """The table's smallest and largest entries over each element's (rounded) input range.

    The table is evaluated on every rounded input of the widest range at once, broadcast over
    one row (its entries may differ per channel), a slice of elements at a time."""
    low, high = (np.asarray(fhe.round_bit_pattern(end, lsbs_to_remove=op.lsbs_to_remove))
                 if op.lsbs_to_remove else np.asarray(end) for end in interval)
    inputs = np.arange(int(low.min()), int(high.max()) + 1, 1 << op.lsbs_to_remove)
    if inputs.size * low.size > _MAX_TABLE_ENTRIES and op.out_quantizer.n_bits is not None:
        return grid_interval(op.out_quantizer, low)  # the whole output grid: looser, as sound
    inputs = inputs.reshape((-1,) + (1,) * low.ndim)
    entries = np.asarray(op.table_function(inputs + np.zeros((1,) + low.shape, np.int64)))
    inside = (inputs >= low[None]) & (inputs <= high[None])
    big = np.iinfo(np.int64).max
    return (np.where(inside, entries, big).min(axis=0).astype(np.int64),
            np.where(inside, entries, -big).max(axis=0).astype(np.int64))


def _shift_bounds(op: "Bound", interval: Interval) -> Interval:
    return interval[0] - op.shift, interval[1] - op.shift


_BOUNDS: dict[type, Callable[..., Optional[Interval]]] = {
    QuantizedGemm: lambda op, i: _signed_parts_bounds(op, "weights", None, i),
    QuantizedConv: lambda op, i: _signed_parts_bounds(op, "weights", "bias", i),
    QuantizedAdd: _add_bounds,
    QuantizedReduceSum: _monotone_bounds,
    QuantizedMaxPool: _monotone_bounds,
    QuantizedShapeOp: _monotone_bounds,
    QuantizedTableLookup: _lookup_bounds,
}  # (and Bound, below)


def op_bounds(op: IntegerOp, intervals: Sequence[Optional[Interval]]) -> Optional[Interval]:
    """The interval of ``op``'s result given its inputs' (None where unknown)."""
    rule = next((rule for cls, rule in _BOUNDS.items() if isinstance(op, cls)), None)
    if rule is None or any(interval is None for interval in intervals):
        return None
    return rule(op, *intervals)


class Bound(IntegerOp):
    """``q - shift`` on integers, telling concrete the result may reach ``[low, high]`` (so it
    is sized for every input, not only the calibration rows).

    A hint gives concrete a width, not a sign: a value calibration only saw non-negative is
    decrypted as unsigned. When its range over the grid goes below zero, ``shift`` (folded into
    the output's zero point) makes calibration see a negative value too.
    """

    op_type = "Bound"

    def __init__(self, low: int, high: int, shift: int = 0) -> None:
        self.low, self.high, self.shift = int(low), int(high), int(shift)

    def __call__(self, q: Any) -> Any:
        if self.shift:
            q = q - self.shift
        return fhe.hint(q, can_store=np.array([self.low, self.high]))


_BOUNDS[Bound] = _shift_bounds
