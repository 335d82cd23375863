"""Integer-only counterparts of ONNX ops, and the registry ``ONNX_OPS_TO_QUANTIZED_IMPL``.

Each registry entry is a class whose ``build`` classmethod receives the post-training
quantization context, the ONNX node, its attributes and what is known of its inputs
(``Constant``, ``Encrypted`` or ``Deferred``), and returns what is known of its output. Linear ops
with clear weights run exactly on integers in the circuit (no table lookup); elementwise ops are
deferred so that a whole run of them becomes one table lookup (``QuantizedTableLookup``); ops that
mix elements and are not linear (Softmax, ArgMax) are left for the client after decryption.

Every runtime op takes and returns integer arrays, numpy ones in the clear or concrete tracers
while compiling, so ``disable``, ``simulate`` and ``execute`` compute the very same integers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

import numpy as np
from concrete import fhe

from ..onnx.ops import ONNX_OPS_TO_NUMPY_IMPL
from ..errors import BitWidthError, QuantizationError
from .quantized_module import MAX_LOOKUP_BITS
from .quantizers import QuantizedArray, UniformQuantizer, bits_for_range
from .tensors import ChainStep, Constant, Deferred, Encrypted, TensorInfo


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def quantize_weights(weights: np.ndarray, n_bits: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization of clear weights along ``axis`` (the output channel).

    Each channel's integers are then divided by their greatest common divisor, which changes no
    value but narrows the accumulator (a 0/1 selection matrix stays 0/1 whatever ``n_bits``).

    Returns the integer weights and the per-channel scale (broadcastable against ``weights``).
    """
    qarray = QuantizedArray(weights, n_bits, symmetric=True, axis=axis)
    qweights, scale = qarray.qvalues, np.asarray(qarray.quantizer.scale, dtype=np.float64)
    other_axes = tuple(i for i in range(weights.ndim) if i != axis % weights.ndim)
    gcd = np.gcd.reduce(np.abs(qweights), axis=other_axes, keepdims=True)
    gcd = np.where(gcd == 0, 1, gcd)
    return qweights // gcd, scale * gcd


def per_axis_vector(array: Any, size: int, axis: int, ndim: int, what: str) -> np.ndarray:
    """The values of a quantizer parameter along ``axis``, asserting it is constant elsewhere."""
    array = np.asarray(array)
    array = array.reshape((1,) * (ndim - array.ndim) + array.shape)
    moved = np.moveaxis(array, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    if not np.all(rows == rows[:1]) or rows.shape[-1] not in (1, size):
        raise QuantizationError(
            f"{what}: its input is quantized per element, not per channel along axis {axis}."
        )
    return np.broadcast_to(rows[0], (size,)).copy()


def integer_zero_point(zero_point: np.ndarray, what: str) -> np.ndarray:
    """The zero point as integers, for ops whose padding must stand for a real 0."""
    if not np.all(zero_point == np.rint(zero_point)):
        raise QuantizationError(
            f"{what} pads its input, whose zero point is not an integer (it comes straight "
            "from a matrix product with a bias): add an activation or a fake quantizer before it."
        )
    return np.rint(zero_point).astype(np.int64)


def broadcast_param(array: Any, shape: Sequence[int]) -> np.ndarray:
    """A quantizer parameter broadcast to ``(1, *shape[1:])``."""
    return np.broadcast_to(np.asarray(array), (1,) + tuple(shape[1:])).copy()


def compress_param(array: np.ndarray) -> np.ndarray:
    """A scalar when every element is equal, else the array itself."""
    flat = np.asarray(array).reshape(-1)
    return np.asarray(flat[0]) if flat.size and np.all(flat == flat[0]) else np.asarray(array)


def non_constant_inputs(node_name: str, op_type: str, inputs: Sequence[Optional[TensorInfo]]):
    """Indices of the inputs that depend on the model input."""
    return [i for i, info in enumerate(inputs) if info is not None and not isinstance(info, Constant)]


def single_variable_input(node_name: str, op_type: str, inputs) -> int:
    """Index of the only non-constant input, or a clear error when there are several."""
    variables = non_constant_inputs(node_name, op_type, inputs)
    if len(variables) != 1:
        raise QuantizationError(
            f"{op_type} node {node_name!r} combines {len(variables)} encrypted tensors; only one "
            "of its inputs may depend on the model input (the others must be constants)."
        )
    return variables[0]


def chain_step(op_type: str, attrs: dict, inputs, position: int) -> ChainStep:
    """A ``ChainStep`` applying the NumPy implementation of ``op_type``."""
    args = tuple(None if info is None else getattr(info, "value", None) for info in inputs)
    return ChainStep(op_type, ONNX_OPS_TO_NUMPY_IMPL[op_type], args, position, dict(attrs))


def pad_spatial(q: Any, pads: Sequence[int], value: int = 0) -> Any:
    """``q`` with ``pads`` (ONNX order: every begin, then every end) added around its spatial
    axes and filled with the integer ``value``, for numpy arrays and concrete tracers alike:
    concrete's ``conv`` and ``maxpool`` reject non-zero ``pads``, so padding is explicit."""
    n = len(pads) // 2
    if not any(pads):
        return q
    shape = tuple(q.shape)
    padded = fhe.zeros(shape[:2] + tuple(shape[2 + i] + pads[i] + pads[i + n] for i in range(n)))
    if value:
        padded = padded + int(value)
    inside = tuple(slice(pads[i], pads[i] + shape[2 + i]) for i in range(n))
    padded[(slice(None), slice(None)) + inside] = q
    return padded


#: Integers up to this magnitude are exact in float64 (its 53-bit significand).
_EXACT_FLOAT_INTEGER = 2 ** 53


def exact_integer_matmul(q: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``q @ weights`` on integer arrays, through float64 BLAS when every partial sum is exact.

    numpy multiplies integer matrices without BLAS, hundreds of times slower: a tree
    ensemble's path matrix over the calibration rows took minutes. Every partial sum is bounded
    by ``max|q| * max column sum of |weights|``; below 2**53 the float product is exact.
    """
    weights = np.asarray(weights)
    largest = float(np.abs(q).max(initial=0)) * float(np.abs(weights).sum(axis=-2).max(initial=0))
    if largest >= _EXACT_FLOAT_INTEGER:
        return q @ weights
    product = q.astype(np.float64) @ weights.astype(np.float64)
    return np.rint(product).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Runtime integer ops
# --------------------------------------------------------------------------------------------
class IntegerOp(ABC):
    """Base of the ops run by ``QuantizedModule._forward`` on integers only."""

    op_type: str = ""

    @abstractmethod
    def __call__(self, *qvalues: Any) -> Any:
        """Integers in, integers out (numpy arrays, or concrete tracers while compiling)."""


class QuantizedGemm(IntegerOp):
    """``(q - zero_point) @ W`` with clear integer weights: Gemm and MatMul by a constant matrix.

    Input scales (per feature) are folded into ``W``; the bias is kept exactly in the output
    zero point, so the result is exact and needs no table lookup. The integer zero point is
    subtracted before the product, not folded into an offset after it: concrete encodes an
    input, the product and everything added to it at one bit width, the widest of them, and
    ``(q - zp) @ W`` is centred where ``q @ W`` can be a bit wider (e.g. 9 instead of 8 bits for
    unsigned 3-bit inputs), which would make every later rounding and lookup dearer.
    """

    op_type = "Gemm"

    def __init__(self, weights: np.ndarray, zero_point: np.ndarray, op_type: str = "Gemm") -> None:
        self.weights = weights
        self.zero_point = zero_point
        self.op_type = op_type

    def __call__(self, q: Any) -> Any:
        if np.any(self.zero_point):
            q = q - self.zero_point
        if isinstance(q, np.ndarray) and q.dtype.kind in "iu":
            return exact_integer_matmul(q, self.weights)
        return q @ self.weights

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        op_type = node.op_type
        if len(non_constant_inputs(node.name, op_type, inputs)) != 1 or isinstance(
            inputs[1], (Encrypted, Deferred)
        ):
            raise QuantizationError(
                f"{op_type} node {node.name!r}: only the product of an encrypted tensor (left) by "
                "a clear constant matrix (right) is supported."
            )
        if attrs.get("transA", 0):
            raise QuantizationError(f"Gemm node {node.name!r}: transA=1 is not supported.")
        weights = np.asarray(inputs[1].value, dtype=np.float64)
        if attrs.get("transB", 0):
            weights = weights.T
        weights = weights * attrs.get("alpha", 1.0)
        source = ctx.materialize(inputs[0], node)
        n_in = weights.shape[-2]
        ndim = source.calibration.ndim
        scale = per_axis_vector(source.quantizer.scale, n_in, -1, ndim, f"{op_type} {node.name!r}")
        zero_point = per_axis_vector(
            source.quantizer.zero_point, n_in, -1, ndim, f"{op_type} {node.name!r}"
        )
        # A feature constant on the calibration set (an always-zero pixel...) has an arbitrary
        # scale (1 for a zero-width range) that must not set the weight scale of every output
        # channel: its constant contribution goes to the bias and its weights to 0.
        calibration = source.calibration.reshape(-1, n_in)
        constant = np.all(calibration == calibration[:1], axis=0)
        folded = weights * scale[:, None]
        folded[..., constant, :] = 0.0
        qweights, wscale = quantize_weights(folded, ctx.n_bits.weights, axis=-1)
        wscale = wscale.reshape(-1)
        bias = np.zeros(weights.shape[-1])
        if len(inputs) > 2 and inputs[2] is not None:
            bias = np.broadcast_to(
                np.asarray(inputs[2].value, dtype=np.float64) * attrs.get("beta", 1.0),
                (weights.shape[-1],),
            )
        constant_values = (calibration[0] - zero_point) * scale * constant
        bias = bias + constant_values @ weights
        # The circuit sums (q - round(zp)) * w only: the bias and the fractional part of the
        # input zero point stay exact in the (float) output zero point, applied in the next
        # table lookup or after decryption, and the sum is what accumulator rounding sees
        # (as in quantization-aware training).
        integer_zp = np.rint(zero_point)
        out_zero_point = (zero_point - integer_zp) @ qweights - bias / wscale
        out_quantizer = UniformQuantizer(wscale, out_zero_point)
        op = cls(qweights, compress_param(integer_zp.astype(np.int64)), op_type)
        return ctx.add(op, [source], out_quantizer)


class QuantizedConv(IntegerOp):
    """Convolution of ``q - zero_point`` by clear integer weights.

    Also serves AveragePool, as a sum over the window (a depthwise convolution by ones) whose
    division by the window size moves into the output scale.
    """

    op_type = "Conv"

    def __init__(self, weights, bias, zero_point, pads, strides, dilations, group, op_type="Conv"):
        self.weights = weights
        self.bias = bias
        self.zero_point = zero_point
        self.pads = list(pads)
        self.strides = list(strides)
        self.dilations = list(dilations)
        self.group = int(group)
        self.op_type = op_type

    def __call__(self, q: Any) -> Any:
        return fhe.conv(
            pad_spatial(q - self.zero_point, self.pads),
            self.weights,
            self.bias,
            strides=self.strides,
            dilations=self.dilations,
            group=self.group,
        )

    @staticmethod
    def window_geometry(attrs: dict, spatial: Sequence[int], kernel: Sequence[int]):
        """Explicit pads, strides and dilations of a conv/pool node (auto_pad resolved)."""
        n = len(kernel)
        strides = list(attrs.get("strides", [1] * n))
        dilations = list(attrs.get("dilations", [1] * n))
        pads = list(attrs.get("pads", [0] * (2 * n)))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * (2 * n)
            for i in range(n):
                out = -(-spatial[i] // strides[i])
                total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i], 0)
                small, large = total // 2, total - total // 2
                pads[i], pads[i + n] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        elif auto_pad == "VALID":
            pads = [0] * (2 * n)
        return pads, strides, dilations

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        if isinstance(inputs[1], (Encrypted, Deferred)):
            raise QuantizationError(f"Conv node {node.name!r}: encrypted weights are not supported.")
        source = ctx.materialize(inputs[0], node)
        weights = np.asarray(inputs[1].value, dtype=np.float64)
        channels = source.calibration.shape[1]
        ndim = source.calibration.ndim
        scale = per_axis_vector(source.quantizer.scale, channels, 1, ndim, f"Conv {node.name!r}")
        zero_point = per_axis_vector(
            source.quantizer.zero_point, channels, 1, ndim, f"Conv {node.name!r}"
        )
        group = int(attrs.get("group", 1))
        out_channels = weights.shape[0]
        # Input channel seen by weight [o, c]: group(o) * C/group + c.
        in_index = (np.arange(out_channels) // (out_channels // group))[:, None] * (
            channels // group
        ) + np.arange(channels // group)[None, :]
        folded = weights * scale[in_index].reshape(in_index.shape + (1,) * (ndim - 2))
        qweights, wscale = quantize_weights(folded, ctx.n_bits.weights, axis=0)
        wscale = wscale.reshape(-1)
        bias = np.zeros(out_channels)
        if len(inputs) > 2 and inputs[2] is not None:
            bias = np.asarray(inputs[2].value, dtype=np.float64)
        pads, strides, dilations = cls.window_geometry(
            attrs, source.calibration.shape[2:], weights.shape[2:]
        )
        zp_shape = (1, channels) + (1,) * (ndim - 2)
        zero_point = integer_zero_point(zero_point, f"Conv {node.name!r}")
        op = cls(qweights, None, zero_point.reshape(zp_shape), pads, strides, dilations, group)
        out_shape = (1, out_channels) + (1,) * (ndim - 2)
        # the bias stays exact in the output zero point (see QuantizedGemm)
        out_quantizer = UniformQuantizer(
            wscale.reshape(out_shape), (-bias / wscale).reshape(out_shape)
        )
        return ctx.add(op, [source], out_quantizer)


class QuantizedAveragePool(QuantizedConv):
    """AveragePool as a window sum (leveled) whose division moves into the output scale."""

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        if attrs.get("ceil_mode", 0):
            raise QuantizationError(f"AveragePool node {node.name!r}: ceil_mode=1 is not supported.")
        source = ctx.materialize(inputs[0], node)
        shape = source.calibration.shape
        channels, ndim = shape[1], source.calibration.ndim
        kernel = list(attrs["kernel_shape"])
        scale = per_axis_vector(source.quantizer.scale, channels, 1, ndim, f"AveragePool {node.name!r}")
        zero_point = per_axis_vector(
            source.quantizer.zero_point, channels, 1, ndim, f"AveragePool {node.name!r}"
        )
        pads, strides, dilations = cls.window_geometry(attrs, shape[2:], kernel)
        ones = np.ones([channels, 1] + kernel, dtype=np.int64)
        zp_shape = (1, channels) + (1,) * (ndim - 2)
        zero_point = integer_zero_point(zero_point, f"AveragePool {node.name!r}")
        op = cls(ones, None, zero_point.reshape(zp_shape), pads, strides, dilations, channels,
                 "AveragePool")
        if attrs.get("count_include_pad", 0) or not any(pads):
            count = np.asarray(float(np.prod(kernel)))
        else:  # the divisor is the number of real (non-padded) cells under the window
            count = fhe.conv(np.ones((1, 1) + tuple(shape[2:]), dtype=np.int64),
                             np.ones([1, 1] + kernel, dtype=np.int64), None, pads=pads,
                             strides=strides, dilations=dilations).astype(np.float64)
        out_scale = scale.reshape(zp_shape) / count
        out_quantizer = UniformQuantizer(compress_param(out_scale),
                                         np.zeros_like(out_scale, dtype=np.int64))
        return ctx.add(op, [source], out_quantizer)


class QuantizedMaxPool(IntegerOp):
    """MaxPool on integers: with a positive scale, the max commutes with dequantization."""

    op_type = "MaxPool"

    def __init__(self, kernel_shape, strides, pads, dilations, ceil_mode, pad_value=0) -> None:
        self.pad_value = int(pad_value)
        self.kernel_shape = list(kernel_shape)
        self.strides = list(strides)
        self.pads = list(pads)
        self.dilations = list(dilations)
        self.ceil_mode = int(ceil_mode)

    def __call__(self, q: Any) -> Any:
        # padded cells hold the smallest integer of the input's range: never a window's max
        return fhe.maxpool(pad_spatial(q, self.pads, self.pad_value),
                           kernel_shape=self.kernel_shape, strides=self.strides,
                           dilations=self.dilations, ceil_mode=self.ceil_mode)

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        if len(node.output) > 1 and node.output[1]:
            raise QuantizationError(f"MaxPool node {node.name!r}: the indices output is not supported.")
        source = ctx.materialize(inputs[0], node)
        if source.calibration.size and source.calibration.min() == source.calibration.max():
            # concrete's optimizer aborts the whole process on a max of constants
            raise QuantizationError(
                f"MaxPool node {node.name!r} reads the {source.producer} result, which is the "
                "same constant on every calibration row: the layer before it is dead (e.g. a "
                "ReLU whose inputs are all negative). Retrain or remove that layer, or calibrate "
                "on more varied data."
            )
        kernel = list(attrs["kernel_shape"])
        channels, ndim = source.calibration.shape[1], source.calibration.ndim
        per_axis_vector(source.quantizer.scale, channels, 1, ndim, f"MaxPool {node.name!r}")
        pads, strides, dilations = QuantizedConv.window_geometry(
            attrs, source.calibration.shape[2:], kernel
        )
        quantizer = source.quantizer
        lowest = quantizer.qmin if quantizer.n_bits is not None else source.calibration.min()
        # concrete compares window elements with table lookups on their differences: one bit more
        bits = bits_for_range(min(lowest, source.calibration.min()), source.calibration.max()) + 1
        if bits > MAX_LOOKUP_BITS:
            raise BitWidthError(
                f"MaxPool node {node.name!r} compares values of the {source.producer} result with "
                f"{bits}-bit table lookups > {MAX_LOOKUP_BITS}, the widest a TFHE table lookup "
                "takes. Lower n_bits (inputs, weights or activations), or apply an activation "
                "before the MaxPool so it reads an n_bits activation (rounding_threshold_bits "
                "does not apply to MaxPool inputs)."
            )
        op = cls(kernel, strides, pads, dilations, attrs.get("ceil_mode", 0), lowest)
        pooled = ctx.add(op, [source], source.quantizer)
        if ctx.rounding_threshold_bits is None:
            return pooled
        # concrete computes max(a, b) as b + lookup(a - b), which ties the window's values to the
        # bit width of whatever adds the result up. After rounded lookups, concrete's optimizer
        # then finds no parameters (NoParametersFound) unless the pooled values are decoupled
        # from a following Gemm/Conv: a following activation reads them through its own lookup,
        # any other consumer through an identity lookup on the same grid. (Without rounding,
        # the identity lookup is what makes it fail: measured with concrete-python 2.11.)
        return Deferred(source=pooled, grid=source.quantizer)


class QuantizedAdd(IntegerOp):
    """``sign_a * a + sign_b * b + offset`` on integers: Add and Sub.

    With a constant operand, the constant is rounded to the encrypted operand's scale. Two encrypted
    operands on different scales are first brought to one scale by table lookups.
    """

    op_type = "Add"

    def __init__(self, signs: Sequence[int], offset: Any, op_type: str) -> None:
        self.signs = tuple(int(s) for s in signs)
        self.offset = offset
        self.op_type = op_type

    def __call__(self, *qvalues: Any) -> Any:
        total = self.offset
        for sign, q in zip(self.signs, qvalues):
            total = total + q if sign > 0 else total - q
        return total

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        op_type = node.op_type
        variables = non_constant_inputs(node.name, op_type, inputs)
        second_sign = -1 if op_type == "Sub" else 1
        if len(variables) == 1:
            index = variables[0]
            if isinstance(inputs[index], Deferred):
                return QuantizedElementwise.build(ctx, node, attrs, inputs)
            source = inputs[index]
            constant = np.asarray(inputs[1 - index].value, dtype=np.float64)
            offset = np.rint(constant / source.quantizer.scale).astype(np.int64)
            if index == 0:  # a ± c
                op = cls([1], second_sign * offset, op_type)
                return ctx.add(op, [source], ctx.accumulator(source.quantizer))
            # c - s (a - zp) = s ((c/s - a) - (-zp))
            op = cls([-1], offset, op_type)
            negated = UniformQuantizer(source.quantizer.scale, -np.asarray(source.quantizer.zero_point))
            return ctx.add(op, [source], negated)
        left, right = (ctx.materialize(inputs[i], node, i) for i in variables)
        if not (np.array_equal(left.quantizer.scale, right.quantizer.scale)):
            target = ctx.common_quantizer(node, [left, right])
            left, right = ctx.requantize(left, target, node), ctx.requantize(right, target, node)
        zero_point = np.asarray(left.quantizer.zero_point) + second_sign * np.asarray(
            right.quantizer.zero_point
        )
        out_quantizer = UniformQuantizer(left.quantizer.scale, zero_point)
        return ctx.add(cls([1, second_sign], 0, op_type), [left, right], out_quantizer)


class QuantizedReduceSum(IntegerOp):
    """Sum (or mean, through the scale) over non-batch axes: the circuit sums the integers, the
    zero points are summed in the output quantizer."""

    op_type = "ReduceSum"

    def __init__(self, axes: tuple, keepdims: bool, op_type: str) -> None:
        self.axes = tuple(axes)
        self.keepdims = bool(keepdims)
        self.op_type = op_type

    def __call__(self, q: Any) -> Any:
        return np.sum(q, axis=self.axes, keepdims=self.keepdims)

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        source = ctx.materialize(inputs[0], node)
        ndim = source.calibration.ndim
        axes = attrs.get("axes")
        if axes is None and len(inputs) > 1 and inputs[1] is not None:
            axes = inputs[1].value.tolist()
        axes = tuple(range(1, ndim)) if axes is None or len(axes) == 0 else tuple(
            a % ndim for a in axes
        )
        if 0 in axes:
            raise QuantizationError(f"{node.op_type} node {node.name!r} reduces over the batch axis.")
        keepdims = bool(attrs.get("keepdims", 1))
        shape = source.calibration.shape
        scale = broadcast_param(source.quantizer.scale, shape)
        first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(ndim))
        if not np.all(scale == scale[first]):
            raise QuantizationError(
                f"{node.op_type} node {node.name!r}: its input has different scales along "
                "the reduced axes."
            )
        scale = scale[first]
        if node.op_type == "ReduceMean":
            scale = scale / float(np.prod([shape[a] for a in axes]))
        zero_point = broadcast_param(source.quantizer.zero_point, shape).astype(np.float64)
        zero_point = np.sum(zero_point, axis=axes, keepdims=True)
        if not keepdims:
            scale, zero_point = np.squeeze(scale, axis=axes), np.squeeze(zero_point, axis=axes)
        out_quantizer = UniformQuantizer(compress_param(scale), compress_param(zero_point))
        return ctx.add(cls(axes, keepdims, node.op_type), [source], out_quantizer)


class QuantizedShapeOp(IntegerOp):
    """An op that only moves, selects or copies elements (Reshape, Transpose, Concat, Slice...).

    The quantizer parameters, broadcast to one row, go through the same op, so per-channel or
    per-element scales follow their elements.
    """

    def __init__(self, op_type: str, args: tuple, positions: Sequence[int], attributes: dict):
        self.op_type = op_type
        self.args = args
        self.positions = tuple(positions)
        self.attributes = attributes

    def apply(self, *values: Any) -> Any:
        """Run the NumPy implementation with ``values`` at the variable positions."""
        args = list(self.args)
        for position, value in zip(self.positions, values):
            args[position] = value
        out = ONNX_OPS_TO_NUMPY_IMPL[self.op_type](*args, **self.attributes)
        return out[0] if isinstance(out, tuple) else out

    def __call__(self, *qvalues: Any) -> Any:
        return self.apply(*qvalues)

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        positions = non_constant_inputs(node.name, node.op_type, inputs)
        sources = [ctx.materialize(inputs[i], node, i) for i in positions]
        args = tuple(None if info is None else getattr(info, "value", None) for info in inputs)
        op = cls(node.op_type, args, positions, dict(attrs))
        scale = op.apply(*(broadcast_param(s.quantizer.scale, s.calibration.shape) for s in sources))
        zero_point = op.apply(
            *(broadcast_param(s.quantizer.zero_point, s.calibration.shape) for s in sources)
        )
        bits = {(s.quantizer.n_bits, s.quantizer.is_signed) for s in sources}
        n_bits, signed = bits.pop() if len(bits) == 1 else (None, False)
        out_quantizer = UniformQuantizer(
            compress_param(np.asarray(scale, dtype=np.float64)),
            compress_param(np.asarray(zero_point, dtype=np.float64)),
            n_bits,
            signed,
        )
        return ctx.add(op, sources, out_quantizer)


class QuantizedTableLookup(IntegerOp):
    """One table lookup per element: dequantize, apply a run of elementwise ops, requantize.

    The input may first lose ``lsbs_to_remove`` low bits (``fhe.round_bit_pattern``) so the table
    is indexed by a narrower integer. ``rounded_range`` is the range the rounded input may reach
    (the source's range over the whole input grid, rounded), hinted to concrete: its rounding
    keeps one more bit when the rounded value is wider than its input, and it compares the two
    widths concrete gave them, so a source sized past calibration needs its rounding sized alike.
    """

    op_type = "TableLookup"

    def __init__(self, source_quantizer, steps, out_quantizer, lsbs_to_remove: int = 0,
                 rounded_range: Optional[tuple] = None) -> None:
        self.source_quantizer = source_quantizer
        self.steps = tuple(steps)
        self.out_quantizer = out_quantizer
        self.lsbs_to_remove = int(lsbs_to_remove)
        self.rounded_range = None if rounded_range is None else tuple(map(int, rounded_range))
        self.op_type = "+".join(step.op_type for step in steps) or "Requantize"

    def table_function(self, q: np.ndarray) -> np.ndarray:
        """The integer → integer function the table holds (evaluated elementwise)."""
        values = self.source_quantizer.dequant(q)
        for step in self.steps:
            values = step(values)
        return self.out_quantizer.quant(np.asarray(values, dtype=np.float64))

    def __call__(self, q: Any) -> Any:
        if self.lsbs_to_remove:
            q = fhe.round_bit_pattern(q, lsbs_to_remove=self.lsbs_to_remove)
            if self.rounded_range is not None:
                q = fhe.hint(q, can_store=np.array(self.rounded_range))
        return fhe.univariate(self.table_function)(q)


class QuantizedElementwise:
    """Elementwise ops (activations, comparisons with constants, affine maps, fake quantizers).

    They are not computed on their own: they extend the deferred chain of their input, which
    becomes one table lookup where an integer is needed, or runs in the clear before encryption
    (on model inputs) or after decryption (on model outputs).
    """

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        index = single_variable_input(node.name, node.op_type, inputs)
        info = inputs[index]
        deferred = info if isinstance(info, Deferred) else Deferred(source=info)
        return deferred.then(chain_step(node.op_type, attrs, inputs, index), elementwise=True)


class QuantizedConstantOnly:
    """Ops that make constants or read shapes (Constant, Shape...). With constant inputs they are
    folded at build time like any op; reading a tensor computed from the encrypted input is an
    error."""

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        raise QuantizationError(
            f"{node.op_type} node {node.name!r} reads a tensor computed from the model input; "
            f"{node.op_type} is only supported on constants. Build shapes from constants, e.g. "
            "x.flatten(1) or x.reshape(-1, k) rather than x.view(x.size(0), -1)."
        )


class QuantizedClearOnly:
    """Non-linear ops that mix elements (Softmax, ArgMax): run on the client after decryption."""

    @classmethod
    def build(cls, ctx, node, attrs: dict, inputs) -> TensorInfo:
        index = single_variable_input(node.name, node.op_type, inputs)
        info = inputs[index]
        deferred = info if isinstance(info, Deferred) else Deferred(source=info)
        return deferred.then(chain_step(node.op_type, attrs, inputs, index), elementwise=False)


_ELEMENTWISE = (
    "Abs Acos Asin Atan BatchNormalization Cast Ceil Clip Cos Cosh DequantizeLinear Div Dropout Elu "
    "Equal Erf Exp Floor Gelu Greater GreaterOrEqual HardSigmoid HardSwish Identity IsInf IsNaN "
    "LeakyRelu Less LessOrEqual Log Max Min Mish Mod Mul Neg Not Or And Xor Pow PRelu "
    "QuantizeLinear Reciprocal Relu Round Selu Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Tan "
    "Tanh ThresholdedRelu Where"
).split()
_CLEAR_ONLY = "ArgMax ArgMin Hardmax LogSoftmax ReduceMax ReduceMin ReduceProd Softmax".split()
_CONSTANT_ONLY = "Constant ConstantOfShape Range Shape Size".split()
_SHAPE = (
    "Concat Expand Flatten Gather Reshape Slice Squeeze Tile Transpose Unsqueeze"
).split()

#: ONNX op type → quantized implementation (a class with a ``build`` classmethod).
ONNX_OPS_TO_QUANTIZED_IMPL: dict[str, Any] = {
    "Gemm": QuantizedGemm,
    "MatMul": QuantizedGemm,
    "Conv": QuantizedConv,
    "AveragePool": QuantizedAveragePool,
    "MaxPool": QuantizedMaxPool,
    "Add": QuantizedAdd,
    "Sub": QuantizedAdd,
    "ReduceSum": QuantizedReduceSum,
    "ReduceMean": QuantizedReduceSum,
    **{op: QuantizedElementwise for op in _ELEMENTWISE},
    **{op: QuantizedClearOnly for op in _CLEAR_ONLY},
    **{op: QuantizedShapeOp for op in _SHAPE},
    **{op: QuantizedConstantOnly for op in _CONSTANT_ONLY},
}
# Only ops the float interpreter knows can be quantized.
ONNX_OPS_TO_QUANTIZED_IMPL = {
    op: impl for op, impl in ONNX_OPS_TO_QUANTIZED_IMPL.items() if op in ONNX_OPS_TO_NUMPY_IMPL
}
