"""NumPy implementations of ONNX operators.

The registry :data:`ONNX_OPS_TO_NUMPY_IMPL` maps an ONNX op type to a function called as
``impl(*inputs, **attributes)``:

- ``inputs`` are numpy arrays in the node's input order; an omitted optional input (empty name)
  arrives as ``None`` and trailing omitted inputs may be absent.
- ``attributes`` are the node's attributes as produced by
  :func:`sklearn_fhe.onnx.graph.attribute_values`; every attribute has a keyword default that
  matches the ONNX specification.
- The function returns one array, or a tuple of arrays for ops with several outputs.

Semantics follow ONNX opset 14 (the exporter's pinned opset) and accept the inputs/attributes of
newer opsets where that is easy (axes given as an input, ``num_outputs`` of Split, ...).

Ops whose extra outputs are optional and rarely wanted (MaxPool's indices, Dropout's mask,
LayerNormalization's statistics) return only their first output; the variant returning every
output is in :data:`ONNX_OPS_ALL_OUTPUTS_IMPL` and is used when a node declares several outputs.

Elementwise unary ops are pure vectorized NumPy on their first argument: quantized models call
them on the float values of a whole table of quantized inputs to build table lookups.

Notes
-----
Convolution, pooling and normalization layers live in :mod:`sklearn_fhe.onnx.ops_conv` and are
registered here.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import onnx
from scipy import special

from .ops_conv import (
    average_pool,
    batch_normalization,
    conv,
    global_average_pool,
    global_max_pool,
    instance_normalization,
    layer_normalization,
    layer_normalization_all_outputs,
    max_pool,
    max_pool_with_indices,
)

Array = np.ndarray

# ---------------------------------------------------------------------------------------------
# Elementwise unary ops
# ---------------------------------------------------------------------------------------------


def _like(out: Any, x: Any) -> Array:
    """Give ``out`` the dtype of ``x`` when ``x`` is floating (float32 stays float32).

    Integer or Python-scalar inputs keep NumPy's natural result dtype, so a table-lookup
    function evaluated on integers does not get truncated.
    """
    dtype = np.asarray(x).dtype
    out = np.asarray(out)
    return out.astype(dtype, copy=False) if np.issubdtype(dtype, np.floating) else out


def _unary(function: Callable[[Array], Array], name: str) -> Callable[[Array], Array]:
    """Wrap a NumPy ufunc-like function as an ONNX unary op that keeps the input dtype."""

    def impl(x: Array) -> Array:
        with np.errstate(all="ignore"):
            return _like(np.asarray(function(x)), x)

    impl.__name__ = name
    impl.__doc__ = f"ONNX {name}: elementwise, dtype preserved."
    return impl


def relu(x: Array) -> Array:
    """ONNX Relu: max(x, 0)."""
    return np.maximum(x, np.zeros((), dtype=np.asarray(x).dtype))


def sigmoid(x: Array) -> Array:
    """ONNX Sigmoid: 1 / (1 + exp(-x))."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def softplus(x: Array) -> Array:
    """ONNX Softplus: log(1 + exp(x)), computed stably."""
    return np.logaddexp(np.zeros((), dtype=np.asarray(x).dtype), x)


def softsign(x: Array) -> Array:
    """ONNX Softsign: x / (1 + |x|)."""
    return x / (1 + np.abs(x))


def erf(x: Array) -> Array:
    """ONNX Erf (vectorized, dtype preserved)."""
    return _like(special.erf(x), x)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """ONNX Elu: x if x > 0 else alpha * (exp(x) - 1)."""
    with np.errstate(over="ignore"):
        return _like(np.where(x > 0, x, alpha * np.expm1(x)), x)


def selu(
    x: Array, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875
) -> Array:
    """ONNX Selu: gamma * (x if x > 0 else alpha * (exp(x) - 1))."""
    with np.errstate(over="ignore"):
        out = np.where(x > 0, gamma * x, gamma * alpha * np.expm1(x))
    return _like(out, x)


def celu(x: Array, alpha: float = 1.0) -> Array:
    """ONNX Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    with np.errstate(over="ignore"):
        out = np.maximum(0, x) + np.minimum(0, alpha * np.expm1(x / alpha))
    return _like(out, x)


def leaky_relu(x: Array, alpha: float = 0.01) -> Array:
    """ONNX LeakyRelu: x if x >= 0 else alpha * x."""
    return _like(np.where(x >= 0, x, alpha * x), x)


def thresholded_relu(x: Array, alpha: float = 1.0) -> Array:
    """ONNX ThresholdedRelu: x if x > alpha else 0."""
    return _like(np.where(x > alpha, x, 0), x)


def hard_sigmoid(x: Array, alpha: float = 0.2, beta: float = 0.5) -> Array:
    """ONNX HardSigmoid: clip(alpha * x + beta, 0, 1)."""
    return _like(np.clip(alpha * x + beta, 0, 1), x)


def hard_swish(x: Array) -> Array:
    """ONNX HardSwish: x * clip(x / 6 + 1 / 2, 0, 1)."""
    return _like(x * np.clip(x / 6 + 0.5, 0, 1), x)


def mish(x: Array) -> Array:
    """ONNX Mish: x * tanh(softplus(x))."""
    return _like(x * np.tanh(softplus(x)), x)


def gelu(x: Array, approximate: str = "none") -> Array:
    """ONNX Gelu (opset 20), exact or with the tanh approximation."""
    if approximate == "tanh":
        out = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    else:
        out = 0.5 * x * (1 + special.erf(x / np.sqrt(2)))
    return _like(out, x)


def shrink(x: Array, bias: float = 0.0, lambd: float = 0.5) -> Array:
    """ONNX Shrink: x + bias if x < -lambd, x - bias if x > lambd, else 0."""
    out = np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))
    return out.astype(np.asarray(x).dtype, copy=False)  # ONNX Shrink also takes integers


def is_inf(x: Array, detect_negative: int = 1, detect_positive: int = 1) -> Array:
    """ONNX IsInf."""
    return (np.isneginf(x) & bool(detect_negative)) | (np.isposinf(x) & bool(detect_positive))


def clip(
    x: Array, min: Optional[Array] = None, max: Optional[Array] = None, **attributes: Any
) -> Array:  # pylint: disable=redefined-builtin
    """ONNX Clip: bounds as inputs (opset 11+) or as ``min``/``max`` attributes (opset 6)."""
    out = x
    if min is not None:
        out = np.maximum(out, np.asarray(min, dtype=np.asarray(x).dtype))
    if max is not None:
        out = np.minimum(out, np.asarray(max, dtype=np.asarray(x).dtype))
    return np.asarray(out)


# ---------------------------------------------------------------------------------------------
# Elementwise binary / variadic ops
# ---------------------------------------------------------------------------------------------


def add(a: Array, b: Array) -> Array:
    """ONNX Add."""
    return np.add(a, b)


def sub(a: Array, b: Array) -> Array:
    """ONNX Sub."""
    return np.subtract(a, b)


def mul(a: Array, b: Array) -> Array:
    """ONNX Mul."""
    return np.multiply(a, b)


def div(a: Array, b: Array) -> Array:
    """ONNX Div; integer division truncates toward zero like C."""
    if np.issubdtype(np.asarray(a).dtype, np.integer):
        return np.trunc(np.true_divide(a, b)).astype(np.asarray(a).dtype)
    return np.true_divide(a, b)


def power(x: Array, y: Array) -> Array:
    """ONNX Pow: the output has the dtype of the base."""
    dtype = np.asarray(x).dtype
    if np.issubdtype(dtype, np.integer):
        return np.power(np.asarray(x, dtype=np.float64), y).astype(dtype)
    with np.errstate(all="ignore"):
        return np.power(x, y).astype(dtype, copy=False)


def mod(a: Array, b: Array, fmod: int = 0) -> Array:
    """ONNX Mod: sign of the divisor (``fmod=0``) or of the dividend (``fmod=1``, C fmod)."""
    with np.errstate(all="ignore"):
        return np.fmod(a, b) if fmod else np.mod(a, b)


def prelu(x: Array, slope: Array) -> Array:
    """ONNX PRelu: x if x >= 0 else slope * x (slope broadcast to x)."""
    return np.where(x < 0, slope * x, x).astype(np.asarray(x).dtype, copy=False)


def _variadic(function: Callable[[Array, Array], Array], name: str) -> Callable[..., Array]:
    """Fold a binary NumPy function over all inputs (Max, Min, Sum)."""

    def impl(*inputs: Array) -> Array:
        out = inputs[0]
        for value in inputs[1:]:
            out = function(out, value)
        return np.asarray(out)

    impl.__name__ = name
    impl.__doc__ = f"ONNX {name} over any number of broadcast inputs."
    return impl


def mean(*inputs: Array) -> Array:
    """ONNX Mean: elementwise mean of broadcast inputs."""
    return (_variadic(np.add, "Sum")(*inputs) / len(inputs)).astype(inputs[0].dtype, copy=False)


def where(condition: Array, x: Array, y: Array) -> Array:
    """ONNX Where."""
    return np.where(condition, x, y)


# ---------------------------------------------------------------------------------------------
# Reductions and softmax
# ---------------------------------------------------------------------------------------------


def _reduce_axes(x: Array, axes: Any, noop_with_empty_axes: int) -> Optional[tuple[int, ...]]:
    """Return the reduced axes as a tuple; ``()`` means no reduction, ``None`` means all."""
    if axes is None or len(np.atleast_1d(axes)) == 0:
        return () if noop_with_empty_axes else None
    return tuple(int(a) % x.ndim if x.ndim else 0 for a in np.atleast_1d(axes))


def _reduction(function: Callable[..., Array], name: str, empty_value: Any = None) -> Callable:
    """Build an ONNX Reduce* op from ``function(x, axis, keepdims)``; axes input or attribute."""

    def impl(
        x: Array,
        axes_input: Optional[Array] = None,
        axes: Optional[Sequence[int]] = None,
        keepdims: int = 1,
        noop_with_empty_axes: int = 0,
    ) -> Array:
        x = np.asarray(x)
        axis = _reduce_axes(x, axes_input if axes_input is not None else axes, noop_with_empty_axes)
        if axis == ():
            return x
        reduced = range(x.ndim) if axis is None else axis
        if empty_value is not None and any(x.shape[a] == 0 for a in reduced):
            shape = [1 if (axis is None or a in axis) else n for a, n in enumerate(x.shape)]
            out = np.full(shape, empty_value, dtype=x.dtype)
            return out if keepdims else out.reshape([n for a, n in enumerate(x.shape)
                                                     if not (axis is None or a in axis)])
        with np.errstate(all="ignore"):
            out = function(x, axis=axis, keepdims=bool(keepdims))
        return np.asarray(out).astype(x.dtype, copy=False)

    impl.__name__ = name
    impl.__doc__ = f"ONNX {name} (axes as attribute or, in newer opsets, as second input)."
    return impl


def _log_sum_exp(x: Array, axis: Any, keepdims: bool) -> Array:
    """Numerically stable log(sum(exp(x)))."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def _arg_reduction(function: Callable[..., Array], name: str) -> Callable:
    """Build ArgMax/ArgMin; result is int64."""

    def impl(x: Array, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Array:
        x = np.asarray(x)
        axis = axis % x.ndim
        if select_last_index:
            out = x.shape[axis] - 1 - function(np.flip(x, axis=axis), axis=axis)
        else:
            out = function(x, axis=axis)
        out = out.astype(np.int64)
        return np.expand_dims(out, axis) if keepdims else out

    impl.__name__ = name
    impl.__doc__ = f"ONNX {name}: int64 indices along ``axis``."
    return impl


def softmax(x: Array, axis: int = -1) -> Array:
    """ONNX Softmax with opset-13 semantics (normalize along ``axis``, default -1)."""
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def log_softmax(x: Array, axis: int = -1) -> Array:
    """ONNX LogSoftmax (opset-13 semantics)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def hardmax(x: Array, axis: int = -1) -> Array:
    """ONNX Hardmax: one-hot of the first maximum along ``axis``."""
    index = np.expand_dims(np.argmax(x, axis=axis), axis)
    out = np.zeros_like(x)
    np.put_along_axis(out, index, 1, axis=axis)
    return out


# ---------------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------------


def gemm(
    a: Array,
    b: Array,
    c: Optional[Array] = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,  # pylint: disable=invalid-name
    transB: int = 0,  # pylint: disable=invalid-name
) -> Array:
    """ONNX Gemm: alpha * A' @ B' + beta * C."""
    a = a.T if transA else a
    b = b.T if transB else b
    out = alpha * (a @ b)
    if c is not None:
        out = out + beta * c
    return np.asarray(out).astype(np.result_type(a, b), copy=False)


def matmul(a: Array, b: Array) -> Array:
    """ONNX MatMul (NumPy matmul semantics)."""
    return np.matmul(a, b)


def einsum(*inputs: Array, equation: str = "") -> Array:
    """ONNX Einsum."""
    return np.einsum(equation, *inputs)


# ---------------------------------------------------------------------------------------------
# Type conversion and quantization
# ---------------------------------------------------------------------------------------------


def _onnx_dtype(tensor_type: int) -> np.dtype:
    """NumPy dtype of an ONNX TensorProto data type."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type))


def cast(x: Array, to: int = onnx.TensorProto.FLOAT, saturate: int = 1) -> Array:
    """ONNX Cast to the TensorProto dtype ``to``."""
    with np.errstate(all="ignore"):
        return np.asarray(x).astype(_onnx_dtype(to))


def cast_like(x: Array, target: Array, saturate: int = 1) -> Array:
    """ONNX CastLike: cast ``x`` to the dtype of ``target``."""
    return np.asarray(x).astype(np.asarray(target).dtype)


def _per_axis(parameter: Array, x_shape: tuple[int, ...], axis: int, block_size: int = 0) -> Array:
    """Broadcastable quantization parameter: per tensor, per ``axis`` (1-D) or per block."""
    parameter = np.asarray(parameter)
    ndim = len(x_shape)
    if block_size:
        # Opset 21 blocked quantization: one parameter per ``block_size`` values along ``axis``.
        length = x_shape[axis % ndim]
        return np.repeat(parameter, block_size, axis=axis % ndim).take(range(length), axis=axis)
    if parameter.ndim == 0 or parameter.size == 1 and ndim <= 1:
        return parameter.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return parameter.reshape(shape)


def quantize_linear(
    x: Array,
    y_scale: Array,
    y_zero_point: Optional[Array] = None,
    axis: int = 1,
    saturate: int = 1,
    block_size: int = 0,
    output_dtype: int = 0,
) -> Array:
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point).

    Per tensor, per ``axis`` (1-D scale) or per block of ``block_size`` values (opset 21).
    """
    if y_zero_point is not None:
        dtype = np.asarray(y_zero_point).dtype
    else:
        dtype = _onnx_dtype(output_dtype) if output_dtype else np.dtype(np.uint8)
    zero_point = 0 if y_zero_point is None else _per_axis(y_zero_point, x.shape, axis, block_size)
    values = np.rint(x / _per_axis(y_scale, x.shape, axis, block_size)) + zero_point
    info = np.iinfo(dtype)
    return np.clip(values, info.min, info.max).astype(dtype)


def dequantize_linear(
    x: Array,
    x_scale: Array,
    x_zero_point: Optional[Array] = None,
    axis: int = 1,
    block_size: int = 0,
) -> Array:
    """ONNX DequantizeLinear: (x - zero_point) * scale, per tensor, axis or block."""
    scale = _per_axis(x_scale, x.shape, axis, block_size)
    zero_point = 0 if x_zero_point is None else _per_axis(x_zero_point, x.shape, axis, block_size)
    values = (x.astype(np.int64) - np.asarray(zero_point, dtype=np.int64)) * scale
    return values.astype(np.asarray(x_scale).dtype)


# ---------------------------------------------------------------------------------------------
# Shape, indexing and constant ops
# ---------------------------------------------------------------------------------------------


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
    return np.full(tuple(int(d) for d in shape), fill[0], dtype=fill.dtype)


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
        raise NotImplementedError(
            "Dropout in training mode is random; only inference is supported."
        )
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
    target = np.broadcast_shapes(np.shape(x), tuple(int(d) for d in new_shape))
    return np.broadcast_to(x, target).copy()


def tile(x: Array, repeats: Array) -> Array:
    """ONNX Tile."""
    return np.tile(x, [int(r) for r in repeats])


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
    if mode == "constant":
        fill = value if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
        return np.pad(x, widths, mode="constant", constant_values=fill)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def range_(start: Array, limit: Array, delta: Array) -> Array:
    """ONNX Range: ``start + delta * i`` for i in [0, ceil((limit - start) / delta))."""
    count = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + np.arange(count) * delta).astype(np.asarray(start).dtype)


def trilu(x: Array, k: Optional[Array] = None, upper: int = 1) -> Array:
    """ONNX Trilu: upper or lower triangle of the last two axes."""
    offset = 0 if k is None else int(k)
    return np.triu(x, offset) if upper else np.tril(x, offset)


# ---------------------------------------------------------------------------------------------
# Registries
# ---------------------------------------------------------------------------------------------

_UNARY_UFUNCS: dict[str, Callable[[Array], Array]] = {
    "Abs": np.abs,
    "Neg": np.negative,
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Sign": np.sign,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.rint,  # round half to even, as ONNX
    "Reciprocal": np.reciprocal,
    "Tanh": np.tanh,
    "Sin": np.sin,
    "Cos": np.cos,
    "Tan": np.tan,
    "Asin": np.arcsin,
    "Acos": np.arccos,
    "Atan": np.arctan,
    "Sinh": np.sinh,
    "Cosh": np.cosh,
    "Asinh": np.arcsinh,
    "Acosh": np.arccosh,
    "Atanh": np.arctanh,
}

ONNX_OPS_TO_NUMPY_IMPL: dict[str, Callable[..., Any]] = {
    # Elementwise unary
    **{name: _unary(function, name) for name, function in _UNARY_UFUNCS.items()},
    "Relu": relu,
    "Sigmoid": sigmoid,
    "Softplus": softplus,
    "Softsign": softsign,
    "Erf": erf,
    "Elu": elu,
    "Selu": selu,
    "Celu": celu,
    "LeakyRelu": leaky_relu,
    "ThresholdedRelu": thresholded_relu,
    "HardSigmoid": hard_sigmoid,
    "HardSwish": hard_swish,
    "Mish": mish,
    "Gelu": gelu,
    "Shrink": shrink,
    "Clip": clip,
    "Not": np.logical_not,
    "IsNaN": np.isnan,
    "IsInf": is_inf,
    # Elementwise binary and variadic
    "Add": add,
    "Sub": sub,
    "Mul": mul,
    "Div": div,
    "Pow": power,
    "Mod": mod,
    "PRelu": prelu,
    "Max": _variadic(np.maximum, "Max"),
    "Min": _variadic(np.minimum, "Min"),
    "Sum": _variadic(np.add, "Sum"),
    "Mean": mean,
    "Equal": np.equal,
    "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal,
    "Less": np.less,
    "LessOrEqual": np.less_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
    "Where": where,
    # Reductions and softmax
    "ReduceSum": _reduction(np.sum, "ReduceSum"),
    "ReduceMean": _reduction(np.mean, "ReduceMean"),
    "ReduceMax": _reduction(np.max, "ReduceMax", empty_value=-np.inf),
    "ReduceMin": _reduction(np.min, "ReduceMin", empty_value=np.inf),
    "ReduceProd": _reduction(np.prod, "ReduceProd"),
    "ReduceL1": _reduction(lambda x, **kw: np.sum(np.abs(x), **kw), "ReduceL1"),
    "ReduceL2": _reduction(lambda x, **kw: np.sqrt(np.sum(np.square(x), **kw)), "ReduceL2"),
    "ReduceSumSquare": _reduction(lambda x, **kw: np.sum(np.square(x), **kw), "ReduceSumSquare"),
    "ReduceLogSum": _reduction(lambda x, **kw: np.log(np.sum(x, **kw)), "ReduceLogSum"),
    "ReduceLogSumExp": _reduction(_log_sum_exp, "ReduceLogSumExp", empty_value=-np.inf),
    "ArgMax": _arg_reduction(np.argmax, "ArgMax"),
    "ArgMin": _arg_reduction(np.argmin, "ArgMin"),
    "Softmax": softmax,
    "LogSoftmax": log_softmax,
    "Hardmax": hardmax,
    # Linear algebra
    "Gemm": gemm,
    "MatMul": matmul,
    "Einsum": einsum,
    # Convolution, pooling and normalization layers (ops_conv.py)
    "BatchNormalization": batch_normalization,
    "InstanceNormalization": instance_normalization,
    "LayerNormalization": layer_normalization,
    "Conv": conv,
    "AveragePool": average_pool,
    "MaxPool": max_pool,
    "GlobalAveragePool": global_average_pool,
    "GlobalMaxPool": global_max_pool,
    # Type conversion and quantization
    "Cast": cast,
    "CastLike": cast_like,
    "QuantizeLinear": quantize_linear,
    "DequantizeLinear": dequantize_linear,
    # Shape, indexing and constants
    "Constant": constant,
    "ConstantOfShape": constant_of_shape,
    "Identity": identity,
    "Dropout": dropout,
    "Shape": shape,
    "Size": size,
    "Reshape": reshape,
    "Flatten": flatten,
    "Transpose": transpose,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Concat": concat,
    "Split": split,
    "Slice": slice_,
    "Gather": gather,
    "GatherElements": gather_elements,
    "Expand": expand,
    "Tile": tile,
    "Pad": pad,
    "Range": range_,
    "Trilu": trilu,
}

#: Variants returning every output, for ops whose extra outputs are optional; used instead of
#: the entry of :data:`ONNX_OPS_TO_NUMPY_IMPL` when a node declares more than one output.
ONNX_OPS_ALL_OUTPUTS_IMPL: dict[str, Callable[..., tuple[Array, ...]]] = {
    "MaxPool": max_pool_with_indices,
    "Dropout": dropout_all_outputs,
    "LayerNormalization": layer_normalization_all_outputs,
}
