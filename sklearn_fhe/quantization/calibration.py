"""Calibration: choosing the quantizer of a tensor from the values it takes on representative data."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import QuantizationError
from .quantizers import UniformQuantizer, bits_for_range


def _reduce_axes(ndim: int, axis: Optional[int]) -> Optional[tuple]:
    return None if axis is None else tuple(i for i in range(ndim) if i != axis % ndim)


def mse_range(
    values: np.ndarray, n_bits: int, axis: Optional[int] = None, include_zero: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The clipping range (per slice along ``axis``) that minimizes the quantization MSE.

    Candidates are symmetric quantile ranges, from min/max inwards: clipping a few outliers buys
    finer levels for the bulk of the data, which matters most at 2-4 bits.
    """
    reduce_axes = _reduce_axes(values.ndim, axis)
    keep = axis is not None
    best_err = best_lo = best_hi = None
    for quantile in _CLIP_QUANTILES:
        lo = np.quantile(values, quantile, axis=reduce_axes, keepdims=keep)
        hi = np.quantile(values, 1 - quantile, axis=reduce_axes, keepdims=keep)
        quantizer = UniformQuantizer.from_range(lo, hi, n_bits, include_zero=include_zero)
        err = np.mean((quantizer.dequant(quantizer.quant(values)) - values) ** 2,
                      axis=reduce_axes, keepdims=keep)
        if best_err is None:
            best_err, best_lo, best_hi = err, lo, hi
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_lo, best_hi = np.where(better, lo, best_lo), np.where(better, hi, best_hi)
    return best_lo, best_hi


_CLIP_QUANTILES = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1)


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
    clip_outliers: bool = False,
    include_zero: bool = True,
) -> UniformQuantizer:
    """The quantizer of a tensor computed by ``steps``, given its calibration ``values``.

    - After a ``DequantizeLinear`` (a fake quantizer from quantization-aware training), the
      training grid itself, so integer inference reproduces the trained model.
    - For integer-valued results (comparisons, counts) that fit in ``n_bits``, scale 1: exact.
    - Otherwise an affine ``n_bits`` quantizer over the calibrated range (per slice along
      ``axis`` if given; clipped to the MSE-optimal range if ``clip_outliers``; extended to hold
      0 exactly if ``include_zero``, else on signed integers centred on the range).
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
    values = values.astype(np.float64)
    if clip_outliers:
        rmin, rmax = mse_range(values, n_bits, axis, include_zero)
    else:
        reduce_axes = _reduce_axes(values.ndim, axis)
        rmin = values.min(axis=reduce_axes, keepdims=axis is not None)
        rmax = values.max(axis=reduce_axes, keepdims=axis is not None)
    # A free-range tensor only feeds matrix products: signed integers centred on its range keep
    # the products' intermediate sums (and so the circuit's bit width) narrow.
    return UniformQuantizer.from_range(
        rmin, rmax, n_bits, is_signed=not include_zero, include_zero=include_zero
    )
