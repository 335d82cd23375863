"""NumPy implementations of the ONNX convolution, pooling and normalization layers.

All ops work on N-D inputs laid out as ``(batch, channels, *spatial)`` and are vectorized: the
padded input is viewed as a grid of (strided, dilated) windows with
:func:`numpy.lib.stride_tricks.sliding_window_view`, then reduced with one einsum / max / sum.

Supported attributes: ``strides``, ``pads``, ``auto_pad`` (NOTSET, VALID, SAME_UPPER,
SAME_LOWER), ``dilations``, ``group`` (Conv), ``count_include_pad`` (AveragePool), ``ceil_mode``
(pools) and ``storage_order`` (MaxPool indices). The functions are registered in
:data:`sklearn_fhe.onnx.ops.ONNX_OPS_TO_NUMPY_IMPL`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Array = np.ndarray


def _geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Optional[Sequence[int]],
    dilations: Optional[Sequence[int]],
    auto_pad: str,
    pads: Optional[Sequence[int]],
    ceil_mode: int = 0,
) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """Return strides, dilations, begin pads, end pads (ceil-mode extra included), output shape,
    and the ceil-mode extra end padding, per spatial axis."""
    nd = len(spatial)
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-n // s) for n, s in zip(spatial, strides)]
        total = [
            max((o - 1) * s + e - n, 0) for o, s, e, n in zip(out, strides, effective, spatial)
        ]
        small = [t // 2 for t in total]
        begin = small if auto_pad == "SAME_UPPER" else [t - h for t, h in zip(total, small)]
        end = [t - b for t, b in zip(total, begin)]
    else:
        if auto_pad == "VALID" or not pads:
            begin, end = [0] * nd, [0] * nd
        else:
            begin, end = list(pads[:nd]), list(pads[nd:])
        out = []
        for n, b, e, k, s in zip(spatial, begin, end, effective, strides):
            span = n + b + e - k
            size = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (size - 1) * s >= n + b:
                size -= 1  # the last window would start in the end padding
            out.append(size)
    extra = [
        max((o - 1) * s + k - (n + b + e), 0)
        for o, s, k, n, b, e in zip(out, strides, effective, spatial, begin, end)
    ]
    return strides, dilations, begin, end, out, extra


def _windows(
    padded: Array,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
) -> Array:
    """View ``padded`` (..., *spatial) as (..., *out, *kernel) windows (no copy)."""
    nd = len(kernel)
    axes = tuple(range(padded.ndim - nd, padded.ndim))
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = sliding_window_view(padded, effective, axis=axes)
    index = (
        (Ellipsis,)
        + tuple(slice(0, o * s, s) for o, s in zip(out, strides))
        + tuple(slice(None, None, d) for d in dilations)
    )
    return view[index]


def _pad_spatial(x: Array, begin: Sequence[int], end: Sequence[int], value: Any) -> Array:
    """Pad the trailing ``len(begin)`` axes of ``x`` with a constant."""
    widths = [(0, 0)] * (x.ndim - len(begin)) + list(zip(begin, end))
    return np.pad(x, widths, mode="constant", constant_values=value)


def conv(
    x: Array,
    w: Array,
    b: Optional[Array] = None,
    auto_pad: str = "NOTSET",
    dilations: Optional[Sequence[int]] = None,
    group: int = 1,
    kernel_shape: Optional[Sequence[int]] = None,
    pads: Optional[Sequence[int]] = None,
    strides: Optional[Sequence[int]] = None,
) -> Array:
    """ONNX Conv, N-D, with groups: ``x`` is (N, C, *spatial), ``w`` is (M, C / group, *kernel)."""
    nd = x.ndim - 2
    kernel = list(w.shape[2:])
    strides, dilations, begin, end, out, _ = _geometry(
        x.shape[2:], kernel, strides, dilations, auto_pad, pads
    )
    windows = _windows(_pad_spatial(x, begin, end, 0), kernel, strides, dilations, out)
    batch, channels = x.shape[:2]
    filters = w.shape[0]
    windows = windows.reshape((batch, group, channels // group) + windows.shape[2:])
    weights = w.reshape((group, filters // group) + w.shape[1:])
    out_letters, kernel_letters = "opqrst"[:nd], "uvwxyz"[:nd]
    equation = f"ngc{out_letters}{kernel_letters},gmc{kernel_letters}->ngm{out_letters}"
    result = np.einsum(equation, windows, weights, optimize=True)
    result = result.reshape((batch, filters) + tuple(out))
    if b is not None:
        result = result + b.reshape((1, -1) + (1,) * nd)
    return result.astype(np.result_type(x, w), copy=False)


def average_pool(
    x: Array,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: Optional[Sequence[int]] = None,
    kernel_shape: Sequence[int] = (),
    pads: Optional[Sequence[int]] = None,
    strides: Optional[Sequence[int]] = None,
) -> Array:
    """ONNX AveragePool; padded taps count in the divisor only if ``count_include_pad``."""
    kernel = list(kernel_shape)
    spatial = x.shape[2:]
    strides, dilations, begin, end, out, extra = _geometry(
        spatial, kernel, strides, dilations, auto_pad, pads, ceil_mode
    )
    full_end = [e + more for e, more in zip(end, extra)]
    sums = _windows(_pad_spatial(x, begin, full_end, 0), kernel, strides, dilations, out)
    nd = len(kernel)
    kernel_axes = tuple(range(-nd, 0))
    sums = sums.sum(axis=kernel_axes)
    if count_include_pad:
        # Every tap counts, also those in the ceil-mode overhang (as the ONNX reference does).
        counts = np.prod(kernel)
    else:
        counted = _pad_spatial(np.ones(spatial, dtype=np.float64), begin, full_end, 0.0)
        counts = _windows(counted, kernel, strides, dilations, out).sum(axis=kernel_axes)
    return (sums / counts).astype(x.dtype, copy=False)


def _max_pool_windows(
    x: Array,
    auto_pad: str,
    ceil_mode: int,
    dilations: Optional[Sequence[int]],
    kernel_shape: Sequence[int],
    pads: Optional[Sequence[int]],
    strides: Optional[Sequence[int]],
) -> tuple[Array, list[int], list[int], list[int], list[int]]:
    """Windows (N, C, *out, *kernel) of ``x`` padded with the lowest value, plus geometry."""
    kernel = list(kernel_shape)
    strides, dilations, begin, end, out, extra = _geometry(
        x.shape[2:], kernel, strides, dilations, auto_pad, pads, ceil_mode
    )
    lowest = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    padded = _pad_spatial(x, begin, [e + more for e, more in zip(end, extra)], lowest)
    return _windows(padded, kernel, strides, dilations, out), strides, dilations, begin, out


def max_pool(
    x: Array,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: Optional[Sequence[int]] = None,
    kernel_shape: Sequence[int] = (),
    pads: Optional[Sequence[int]] = None,
    storage_order: int = 0,
    strides: Optional[Sequence[int]] = None,
) -> Array:
    """ONNX MaxPool (first output ``Y`` only)."""
    windows, *_ = _max_pool_windows(x, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides)
    return windows.max(axis=tuple(range(-len(kernel_shape), 0)))


def max_pool_with_indices(
    x: Array,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: Optional[Sequence[int]] = None,
    kernel_shape: Sequence[int] = (),
    pads: Optional[Sequence[int]] = None,
    storage_order: int = 0,
    strides: Optional[Sequence[int]] = None,
) -> tuple[Array, Array]:
    """ONNX MaxPool returning ``(Y, Indices)``; indices index the flattened input tensor."""
    windows, strides, dilations, begin, out = _max_pool_windows(
        x, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides
    )
    nd = len(kernel_shape)
    flat = windows.reshape(windows.shape[: 2 + nd] + (-1,))
    best = flat.argmax(axis=-1)
    values = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0]
    offsets = np.unravel_index(best, tuple(kernel_shape))
    spatial = x.shape[2:]
    coords = []
    for axis in range(nd):
        position = np.arange(out[axis]).reshape((-1,) + (1,) * (nd - 1 - axis))
        coords.append(position * strides[axis] + offsets[axis] * dilations[axis] - begin[axis])
    order = "F" if storage_order else "C"
    inner = np.ravel_multi_index(tuple(coords), spatial, order=order)
    channel_base = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * nd)
    indices = channel_base * int(np.prod(spatial)) + inner
    return values, indices.astype(np.int64)


def global_average_pool(x: Array) -> Array:
    """ONNX GlobalAveragePool: mean over the spatial axes, kept as size 1."""
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype, copy=False)


def global_max_pool(x: Array) -> Array:
    """ONNX GlobalMaxPool: max over the spatial axes, kept as size 1."""
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ---------------------------------------------------------------------------------------------
# Normalization layers
# ---------------------------------------------------------------------------------------------


def batch_normalization(
    x: Array,
    scale: Array,
    bias: Array,
    input_mean: Array,
    input_var: Array,
    epsilon: float = 1e-5,
    momentum: float = 0.9,
    training_mode: int = 0,
    **attributes: Any,
) -> Any:
    """ONNX BatchNormalization; inference by default, batch statistics if ``training_mode``."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if not training_mode:
        inv = scale.reshape(shape) / np.sqrt(input_var.reshape(shape) + epsilon)
        return ((x - input_mean.reshape(shape)) * inv + bias.reshape(shape)).astype(x.dtype)
    axes = (0,) + tuple(range(2, x.ndim))
    batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)
    y = (x - batch_mean.reshape(shape)) / np.sqrt(batch_var.reshape(shape) + epsilon)
    y = y * scale.reshape(shape) + bias.reshape(shape)
    running_mean = input_mean * momentum + batch_mean * (1 - momentum)
    running_var = input_var * momentum + batch_var * (1 - momentum)
    return y.astype(x.dtype), running_mean.astype(x.dtype), running_var.astype(x.dtype)


def instance_normalization(x: Array, scale: Array, bias: Array, epsilon: float = 1e-5) -> Array:
    """ONNX InstanceNormalization: normalize each (sample, channel) over spatial axes."""
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    centered = x - x.mean(axis=axes, keepdims=True)
    y = centered / np.sqrt(x.var(axis=axes, keepdims=True) + epsilon)
    return (y * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)


def layer_normalization_all_outputs(
    x: Array,
    scale: Array,
    bias: Optional[Array] = None,
    axis: int = -1,
    epsilon: float = 1e-5,
    stash_type: int = 1,
) -> tuple[Array, Array, Array]:
    """ONNX LayerNormalization returning (Y, Mean, InvStdDev)."""
    axes = tuple(range(axis % x.ndim, x.ndim))
    stash = np.float32 if stash_type == 1 else x.dtype
    xs = x.astype(stash)
    x_mean = xs.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(((xs - x_mean) ** 2).mean(axis=axes, keepdims=True) + epsilon)
    y = (xs - x_mean) * inv_std * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype), x_mean.astype(stash), inv_std.astype(stash)


def layer_normalization(
    x: Array, scale: Array, bias: Optional[Array] = None, **attrs: Any
) -> Array:
    """ONNX LayerNormalization (first output only)."""
    return layer_normalization_all_outputs(x, scale, bias, **attrs)[0]
