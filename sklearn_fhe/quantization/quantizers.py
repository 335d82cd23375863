"""Affine uniform quantizers: real ≈ scale * (q - zero_point), q an integer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

ArrayLike = Union[np.ndarray, float, int]


@dataclass(frozen=True)
class UniformQuantizer:
    """An affine map between reals and integers, possibly per channel.

    ``scale`` and ``zero_point`` broadcast against the tensor they describe (a scalar for a
    per-tensor quantizer, an array such as ``(1, n_features)`` per feature). ``n_bits=None``
    describes an accumulator: an exact integer result of leveled ops, never clipped.

    Parameters
    ----------
    scale : numpy.ndarray
        Positive step between two consecutive integers, in real units.
    zero_point : numpy.ndarray
        The integer that stands for the real 0.
    n_bits : int or None
        Width of the integer range, or None for an unbounded accumulator.
    is_signed : bool
        Whether the integer range is centred on 0 (``[-2**(n-1), 2**(n-1)-1]``) or starts at 0.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    n_bits: Optional[int] = None
    is_signed: bool = False

    @property
    def qmin(self) -> int:
        """Smallest integer of the range."""
        return -(2 ** (self.n_bits - 1)) if self.is_signed else 0

    @property
    def qmax(self) -> int:
        """Largest integer of the range."""
        return 2 ** (self.n_bits - 1) - 1 if self.is_signed else 2**self.n_bits - 1

    @classmethod
    def from_range(
        cls,
        rmin: ArrayLike,
        rmax: ArrayLike,
        n_bits: int,
        is_signed: bool = False,
        symmetric: bool = False,
        include_zero: bool = True,
    ) -> "UniformQuantizer":
        """Quantizer whose integer range covers ``[rmin, rmax]``.

        With ``symmetric=True`` the zero point is 0 and the range is ``[-max|r|, max|r|]``
        (signed integers, the largest level ``2**(n_bits-1) - 1``), as used for weights.
        With ``include_zero=True`` (needed where the integer 0-equivalent is used, e.g. the
        zero padding of a convolution) the range is extended to hold 0 and the zero point is
        an integer; otherwise all ``2**n_bits`` levels span exactly ``[rmin, rmax]`` and the
        zero point may be fractional (fine for tensors that only feed matrix products, which
        fold it into their bias).
        """
        rmin = np.asarray(rmin, dtype=np.float64)
        rmax = np.asarray(rmax, dtype=np.float64)
        if include_zero or symmetric:
            rmin, rmax = np.minimum(rmin, 0.0), np.maximum(rmax, 0.0)
        if symmetric:
            levels = 2 ** (n_bits - 1) - 1 if n_bits > 1 else 1
            scale = np.maximum(np.abs(rmin), np.abs(rmax)) / levels
            scale = np.where(scale > 0, scale, 1.0)
            return cls(scale, np.zeros_like(scale, dtype=np.int64), n_bits, True)
        scale = (rmax - rmin) / (2**n_bits - 1)
        scale = np.where(scale > 0, scale, 1.0)
        qmin = -(2 ** (n_bits - 1)) if is_signed else 0
        zero_point = qmin - rmin / scale
        if include_zero:
            zero_point = np.rint(zero_point).astype(np.int64)
        return cls(scale, zero_point, n_bits, is_signed)

    def quant(self, values: ArrayLike) -> np.ndarray:
        """Map reals to integers (rounded to nearest, clipped to the range when bounded)."""
        q = np.rint(np.asarray(values, dtype=np.float64) / self.scale + self.zero_point)
        if self.n_bits is not None:
            q = np.clip(q, self.qmin, self.qmax)
        return q.astype(np.int64)

    def dequant(self, qvalues: ArrayLike) -> np.ndarray:
        """Map integers back to reals."""
        return self.scale * (np.asarray(qvalues) - self.zero_point)


class QuantizedArray:
    """A float array together with its integer representation and quantizer.

    Parameters
    ----------
    values : numpy.ndarray
        The float values to quantize.
    n_bits : int
        Bits of the integer representation.
    is_signed : bool, default=False
        Signed or unsigned integer range.
    symmetric : bool, default=False
        Zero point 0 and a range symmetric around 0 (implies signed).
    axis : int or None, default=None
        Quantize each slice along this axis with its own scale (per-channel), or the whole array
        with one scale when None.

    Attributes
    ----------
    values : numpy.ndarray
        The original float values.
    quantizer : UniformQuantizer
        The affine map used.
    qvalues : numpy.ndarray
        The integers, dtype int64.
    """

    def __init__(
        self,
        values: np.ndarray,
        n_bits: int,
        is_signed: bool = False,
        symmetric: bool = False,
        axis: Optional[int] = None,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        reduce_axes = None
        if axis is not None:
            axis = axis % self.values.ndim
            reduce_axes = tuple(i for i in range(self.values.ndim) if i != axis)
        rmin = self.values.min(axis=reduce_axes, keepdims=axis is not None)
        rmax = self.values.max(axis=reduce_axes, keepdims=axis is not None)
        self.quantizer = UniformQuantizer.from_range(
            rmin, rmax, n_bits, is_signed=is_signed or symmetric, symmetric=symmetric
        )
        self.qvalues = self.quantizer.quant(self.values)

    def dequant(self) -> np.ndarray:
        """Float values as represented by the integers."""
        return self.quantizer.dequant(self.qvalues)


def bits_for_range(qmin: int, qmax: int) -> int:
    """Bits concrete needs to hold every integer of ``[qmin, qmax]`` (a sign bit if qmin < 0)."""
    qmin, qmax = int(qmin), int(qmax)
    if qmin >= 0:
        return max(int(qmax).bit_length(), 1)
    return max(int(qmax).bit_length(), int(-qmin - 1).bit_length()) + 1


def round_half_up(value: int, lsbs: int) -> int:
    """``value`` rounded to a multiple of ``2**lsbs``, ties up: ``fhe.round_bit_pattern``."""
    return (int(value) + (1 << (lsbs - 1))) >> lsbs << lsbs if lsbs > 0 else int(value)


def rounding_lsbs(low: int, high: int, bits: int) -> int:
    """Low bits to round away so that every integer of ``[low, high]`` indexes a table of
    ``bits`` bits: the symmetric width of the range less ``bits`` (as quantization-aware
    training computes it), one more when rounding the top up carries into a new bit."""
    magnitude = max(-int(low), int(high))
    lsbs = max(0, bits_for_range(-magnitude, magnitude) - bits)
    if lsbs and bits_for_range(round_half_up(low, lsbs) >> lsbs,
                               round_half_up(high, lsbs) >> lsbs) > bits:
        lsbs += 1
    return lsbs
