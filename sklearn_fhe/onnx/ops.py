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
Convolution, pooling and normalization layers live in :mod:`sklearn_fhe.onnx.ops_conv`, shape,
indexing and constant ops in :mod:`sklearn_fhe.onnx.ops_shape`; both are registered here.
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

from .ops_shape import (
    concat,
    constant,
    constant_of_shape,
    dropout,
    dropout_all_outputs,
    expand,
    flatten,
    gather,
    gather_elements,
    identity,
    pad,
    range_,
    reshape,
    shape,
    size,
    slice_,
    split,
    squeeze,
    tile,
    transpose,
    trilu,
    unsqueeze,
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
