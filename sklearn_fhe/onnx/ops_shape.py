"""NumPy implementations of the ONNX shape, indexing and constant ops (registered in
:data:`sklearn_fhe.onnx.ops.ONNX_OPS_TO_NUMPY_IMPL`; same calling convention)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import InvalidONNXModelError
from .validation import check_allocation

Array = np.ndarray

def constant(**attributes: Any) -> Array:
    """ONNX Constant: one of value, value_float(s), value_int(s), value_string(s)."""
    if "value" in attributes:
        return np.asarray(attributes["value"])
    if "value_float" in attributes:
        return np.asarray(attributes["value_float"], dtype=np.float32)
    if "value_floats" in attributes:
        return np.asarray(attributes["value_floats"], dtype=np.float32)
    if "value_int" in attributes:
        return np.asarray(attributes["value_int"], dtype=np.int64)
    if "value_ints" in attributes:
        return np.asarray(attributes["value_ints"], dtype=np.int64)
    if "value_string" in attributes or "value_strings" in attributes:
        return np.asarray(attributes.get("value_string", attributes.get("value_strings")))
    raise ValueError(f"Unsupported Constant attributes: {sorted(attributes)}.")


def constant_of_shape(shape: Array, value: Optional[Array] = None) -> Array:
    """ONNX ConstantOfShape: a tensor of ``shape`` filled with ``value`` (float32 0 default)."""
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(check_allocation(shape, "ConstantOfShape"), fill[0], dtype=fill.dtype)


def identity(x: Array) -> Array:
    """ONNX Identity."""
    return x


def dropout_all_outputs(
    x: Array,
    ratio: Optional[Array] = None,
    training_mode: Optional[Array] = None,
    seed: int = 0,
    **attributes: Any,
) -> tuple[Array, Array]:
    """ONNX Dropout at inference: (x, all-true mask). Training-mode dropout is not supported."""
    if training_mode is not None and bool(training_mode) and ratio is not None and float(ratio):
        raise ValueError("Dropout in training mode is random; only inference is supported.")
    return x, np.ones(np.shape(x), dtype=bool)


def dropout(x: Array, *inputs: Any, **attributes: Any) -> Array:
    """ONNX Dropout at inference: identity (first output only)."""
    return dropout_all_outputs(x, *inputs, **attributes)[0]


def shape(x: Array, start: int = 0, end: Optional[int] = None) -> Array:
    """ONNX Shape (with opset-15 ``start``/``end``), int64."""
    return np.asarray(np.shape(x)[start:end], dtype=np.int64)


def size(x: Array) -> Array:
    """ONNX Size: number of elements, int64 scalar."""
    return np.asarray(np.size(x), dtype=np.int64)


def reshape(x: Array, new_shape: Array, allowzero: int = 0) -> Array:
    """ONNX Reshape: a 0 copies the input dimension unless ``allowzero``, -1 is inferred."""
    dims = [int(d) for d in new_shape]
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return np.reshape(x, dims)


def flatten(x: Array, axis: int = 1) -> Array:
    """ONNX Flatten to 2-D: dims before ``axis`` and from ``axis`` on."""
    axis = axis % x.ndim if x.ndim else 0
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return np.reshape(x, (rows, int(np.prod(x.shape[axis:], dtype=np.int64))))


def transpose(x: Array, perm: Optional[Sequence[int]] = None) -> Array:
    """ONNX Transpose (default: reverse the axes)."""
    return np.transpose(x, perm)


def squeeze(
    x: Array, axes_input: Optional[Array] = None, axes: Optional[Sequence[int]] = None
) -> Array:
    """ONNX Squeeze; axes as input (opset 13+) or attribute; all size-1 axes by default."""
    chosen = axes_input if axes_input is not None else axes
    if chosen is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(int(a) for a in np.atleast_1d(chosen)))


def unsqueeze(
    x: Array, axes_input: Optional[Array] = None, axes: Optional[Sequence[int]] = None
) -> Array:
    """ONNX Unsqueeze; axes (relative to the output rank) as input or attribute."""
    chosen = [int(a) for a in np.atleast_1d(axes_input if axes_input is not None else axes)]
    return np.expand_dims(x, tuple(chosen))


def concat(*inputs: Array, axis: int = 0) -> Array:
    """ONNX Concat along ``axis``."""
    return np.concatenate(inputs, axis=axis)


def split(
    x: Array,
    split_input: Optional[Array] = None,
    axis: int = 0,
    split: Optional[Sequence[int]] = None,  # pylint: disable=redefined-outer-name
    num_outputs: Optional[int] = None,
) -> tuple[Array, ...]:
    """ONNX Split: sizes as input (opset 13+) or attribute, else ``num_outputs`` parts.

    ``num_outputs`` is an opset-18 attribute; :func:`~sklearn_fhe.onnx.graph.attribute_values`
    sets it from the node's output count for older Split nodes that give no sizes.
    """
    sizes = split_input if split_input is not None else split
    length = x.shape[axis]
    if sizes is None:
        if num_outputs is None:
            raise ValueError("Split needs split sizes or num_outputs.")
        chunk = -(-length // int(num_outputs))
        sizes = [min(chunk, length - i * chunk) for i in range(int(num_outputs))]
    boundaries = np.cumsum([int(s) for s in sizes])[:-1]
    return tuple(np.split(x, boundaries, axis=axis))


def slice_(
    x: Array,
    starts: Optional[Array] = None,
    ends: Optional[Array] = None,
    axes: Optional[Array] = None,
    steps: Optional[Array] = None,
    **attributes: Any,
) -> Array:
    """ONNX Slice (inputs of opset 10+, or the starts/ends/axes attributes of opset 1)."""
    if starts is None:
        starts, ends = attributes["starts"], attributes["ends"]
        axes = attributes.get("axes", axes)
    starts = [int(s) for s in np.atleast_1d(starts)]
    ends = [int(e) for e in np.atleast_1d(ends)]
    axes = list(range(len(starts))) if axes is None else [int(a) for a in np.atleast_1d(axes)]
    steps = [1] * len(starts) if steps is None else [int(s) for s in np.atleast_1d(steps)]
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis % x.ndim] = slice(start, end, step)
    return x[tuple(index)]


def gather(x: Array, indices: Array, axis: int = 0) -> Array:
    """ONNX Gather: ``np.take`` along ``axis`` (negative indices count from the end)."""
    return np.take(x, np.asarray(indices, dtype=np.int64), axis=axis)


def gather_elements(x: Array, indices: Array, axis: int = 0) -> Array:
    """ONNX GatherElements: ``np.take_along_axis`` with negative indices wrapped."""
    indices = np.asarray(indices, dtype=np.int64)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return np.take_along_axis(x, indices, axis=axis)


def expand(x: Array, new_shape: Array) -> Array:
    """ONNX Expand: broadcast ``x`` against ``new_shape`` (either may broadcast)."""
    target = np.broadcast_shapes(np.shape(x), check_allocation(new_shape, "Expand"))
    return np.broadcast_to(x, check_allocation(target, "Expand")).copy()


def tile(x: Array, repeats: Array) -> Array:
    """ONNX Tile."""
    repeats = [int(r) for r in repeats]
    shape = (1,) * (len(repeats) - np.ndim(x)) + np.shape(x)
    check_allocation([d * r for d, r in zip(shape, repeats)], "Tile")
    return np.tile(x, repeats)


def pad(
    x: Array,
    pads_input: Optional[Array] = None,
    constant_value: Optional[Array] = None,
    axes_input: Optional[Array] = None,
    mode: str = "constant",
    pads: Optional[Sequence[int]] = None,
    value: float = 0.0,
) -> Array:
    """ONNX Pad (constant, reflect, edge, wrap); pads as input (opset 11+) or attribute.

    Negative pads crop.
    """
    all_pads = [int(p) for p in (pads_input if pads_input is not None else pads)]
    axes = list(range(x.ndim)) if axes_input is None else [int(a) % x.ndim for a in axes_input]
    n = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = all_pads[i], all_pads[i + n]
    crop = tuple(
        slice(max(-b, 0), x.shape[a] - max(-e, 0)) for a, (b, e) in enumerate(zip(begin, end))
    )
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    check_allocation([d + b + e for d, (b, e) in zip(x.shape, widths)], "Pad")
    if mode == "constant":
        fill = value if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
        return np.pad(x, widths, mode="constant", constant_values=fill)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def range_(start: Array, limit: Array, delta: Array) -> Array:
    """ONNX Range: ``start + delta * i`` for i in [0, ceil((limit - start) / delta))."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        span = float(np.ceil((limit - start) / delta)) if delta else float("inf")
    if not np.isfinite(span):
        raise InvalidONNXModelError(f"Range from {start} to {limit} by {delta} never ends.")
    count = check_allocation([max(int(span), 0)], "Range")[0]
    return (start + np.arange(count) * delta).astype(np.asarray(start).dtype)


def trilu(x: Array, k: Optional[Array] = None, upper: int = 1) -> Array:
    """ONNX Trilu: upper or lower triangle of the last two axes."""
    offset = 0 if k is None else int(k)
    return np.triu(x, offset) if upper else np.tril(x, offset)
