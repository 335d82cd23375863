"""Calibration: choosing the quantizer of a tensor from the values it takes on representative data."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import QuantizationError
from .quantizers import UniformQuantizer, bits_for_range


def value_range(
    values: np.ndarray, axis: Optional[int] = None, clip_quantile: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of ``values`` (per slice along ``axis`` when given, kept broadcastable).

    With ``clip_quantile=q > 0`` the range is the ``[q, 1 - q]`` quantile range instead, so a few
    outliers do not spend the integer levels the bulk of the data needs.
    """
    reduce_axes = None
    if axis is not None:
        axis = axis % values.ndim
        reduce_axes = tuple(i for i in range(values.ndim) if i != axis)
    keep = axis is not None
    if clip_quantile > 0:
        low = np.quantile(values, clip_quantile, axis=reduce_axes, keepdims=keep)
        high = np.quantile(values, 1 - clip_quantile, axis=reduce_axes, keepdims=keep)
        return low, high
    return values.min(axis=reduce_axes, keepdims=keep), values.max(axis=reduce_axes, keepdims=keep)


def grid_quantizer(values: np.ndarray, scale: float) -> UniformQuantizer:
    """Quantizer reproducing a fake-quantization grid ``scale * (k - zero_point)`` exactly."""
    levels = np.rint(values / scale)
    kmin, kmax = int(levels.min()), int(levels.max())
    n_bits = bits_for_range(0, kmax - kmin)
    return UniformQuantizer(np.asarray(float(scale)), np.asarray(-kmin, dtype=np.int64), n_bits)


def choose_quantizer(
    values: np.ndarray,
    n_bits: int,
    steps: Sequence = (),
    axis: Optional[int] = None,
    clip_quantile: float = 0.0,
) -> UniformQuantizer:
    """The quantizer of a tensor computed by ``steps``, given its calibration ``values``.

    - After a ``DequantizeLinear`` (a fake quantizer from quantization-aware training), the
      training grid itself, so integer inference reproduces the trained model.
    - For integer-valued results (comparisons, counts) that fit in ``n_bits``, scale 1: exact.
    - Otherwise an affine ``n_bits`` quantizer over the calibrated range, per slice along
      ``axis`` if given.
    """
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        op = steps[-1].op_type if steps else "the model input"
        raise QuantizationError(
            f"{op} produces non-finite values (inf or NaN) on the calibration data; "
            "such values cannot be quantized. Check the data or the model."
        )
    if steps and steps[-1].op_type == "DequantizeLinear":
        scale = np.asarray(steps[-1].args[1])
        if scale.size == 1:
            return grid_quantizer(values, float(scale))
    if values.size and np.all(values == np.rint(values)):
        vmin, vmax = values.min(), values.max()
        if vmax - vmin < 2**n_bits:
            bits = bits_for_range(0, int(vmax - vmin))
            return UniformQuantizer(np.asarray(1.0), np.asarray(-int(vmin), np.int64), bits)
    rmin, rmax = value_range(values.astype(np.float64), axis, clip_quantile)
    if axis is not None:
        shape = [1] * values.ndim
        shape[axis] = values.shape[axis]
        rmin, rmax = rmin.reshape(shape), rmax.reshape(shape)
    return UniformQuantizer.from_range(rmin, rmax, n_bits)
