"""Post-training quantization: NumpyModule + calibration data → QuantizedModule."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Optional

import numpy as np
from concrete import fhe

from ..onnx.numpy_module import NumpyModule, check_supported_ops
from ..onnx.ops import ONNX_OPS_TO_NUMPY_IMPL
from .calibration import choose_quantizer
from ..errors import BitWidthError, QuantizationError
from .n_bits import NBits, NBitsLike
from .quantized_module import (
    MAX_LOOKUP_BITS,
    InputQuantization,
    LookupReport,
    OutputDequantization,
    QuantizedModule,
    Step,
)
from .quantized_ops import (
    ONNX_OPS_TO_QUANTIZED_IMPL,
    IntegerOp,
    QuantizedClearOnly,
    QuantizedTableLookup,
)
from .quantizers import UniformQuantizer, bits_for_range, round_half_up, rounding_lsbs
from .bounds import Bound, input_interval, op_bounds
from .tensors import Constant, Deferred, Encrypted, TensorInfo

_LINEAR_CONSUMERS = {"Gemm", "MatMul"}


class PostTrainingQuantization:
    """Quantize a float ``NumpyModule`` into an integer-only ``QuantizedModule``.

    Parameters
    ----------
    numpy_module : NumpyModule
        The float model.
    n_bits : int or dict
        Bit widths (see ``NBits``): inputs, weights, activations, outputs.
    rounding_threshold_bits : int or None, default=None
        When set, the integer that indexes a table lookup keeps at most this many bits: its
        lowest bits are rounded away first (``fhe.round_bit_pattern``). Lower means cheaper
        lookups and coarser activations.
    """

    def __init__(
        self,
        numpy_module: NumpyModule,
        n_bits: NBitsLike,
        rounding_threshold_bits: Optional[int] = None,
    ) -> None:
        self.numpy_module = numpy_module
        self.n_bits = NBits.parse(n_bits)
        if rounding_threshold_bits is not None and not (
            isinstance(rounding_threshold_bits, (int, np.integer))
            and not isinstance(rounding_threshold_bits, bool)
        ):
            raise ValueError(
                f"rounding_threshold_bits must be an int or None here, got "
                f"{rounding_threshold_bits!r} ('auto' is resolved by compile_torch_model / "
                "compile_onnx_model, which need the compiler to choose)."
            )
        if rounding_threshold_bits is not None and not 1 <= int(rounding_threshold_bits) <= 16:
            raise ValueError(
                f"rounding_threshold_bits={rounding_threshold_bits} must be in [1, 16] or None."
            )
        self.rounding_threshold_bits = rounding_threshold_bits

    # -- public ---------------------------------------------------------------------------------
    def quantize(self, *calibration_inputs: np.ndarray) -> QuantizedModule:
        """Calibrate on ``calibration_inputs`` and build the QuantizedModule."""
        module = self.numpy_module
        check_supported_ops(module.onnx_model, ONNX_OPS_TO_QUANTIZED_IMPL, "quantization")
        self._inputs = [np.asarray(x, dtype=np.float64) for x in calibration_inputs]
        if len(self._inputs) != len(module.input_names):
            raise ValueError(
                f"The model takes {len(module.input_names)} input(s), got {len(self._inputs)}."
            )
        for x in self._inputs:
            if x.ndim < 1 or x.shape[0] == 0:
                raise ValueError("The calibration set is empty: give at least one row.")
        self._steps: list[Step] = []
        self._input_quantizations: list[InputQuantization] = []
        self._lookups: list[LookupReport] = []
        self._materialized: dict[int, tuple] = {}
        self._bounded_values: dict[str, Encrypted] = {}
        self._consumers = defaultdict(list)
        for node in module.nodes:
            for name in node.input:
                self._consumers[name].append(node.op_type)

        tensors: dict[str, Optional[TensorInfo]] = {"": None}
        tensors.update({name: Constant(value) for name, value in module.initializers.items()})
        for index, name in enumerate(module.input_names):
            tensors[name] = Deferred(source=None, input_index=index)
        for node, attrs in zip(module.nodes, module.node_attributes):
            infos = [tensors[name] for name in node.input]
            outputs = self._build_node(node, attrs, infos)
            tensors.update(zip(node.output, outputs))
        outputs = [self._output(name, tensors[name]) for name in module.output_names]
        quantized = QuantizedModule(
            input_quantizations=self._input_quantizations,
            steps=self._steps,
            output_dequantizations=outputs,
            lookups=self._lookups,
            n_bits=self.n_bits,
        )
        # the rounding the lookups were built with, for the user to read back
        quantized.rounding_threshold_bits = self.rounding_threshold_bits
        return quantized

    # -- context used by the quantized ops ------------------------------------------------------
    def add(self, op: IntegerOp, sources: list[Encrypted], quantizer: UniformQuantizer) -> Encrypted:
        """Append ``op`` to the circuit and run it on the calibration integers."""
        name = f"{len(self._steps)}:{op.op_type}"
        calibration = op(*(source.calibration for source in sources))
        calibration = np.asarray(calibration)
        if not np.issubdtype(calibration.dtype, np.integer):
            raise QuantizationError(f"{op.op_type} produced non-integer values ({calibration.dtype}).")
        self._steps.append(Step(op, tuple(s.name for s in sources), name))
        bounds = op_bounds(op, [source.bounds for source in sources])
        return Encrypted(name, quantizer, calibration, op.op_type, bounds)

    def _bounded(self, value: Encrypted) -> Encrypted:
        """``value``, whose every bit counts (a circuit output, a lookup's input), sized by
        concrete for its range over the whole input grid when that is wider than calibration
        showed (see ``bounds``)."""
        if value.bounds is None:
            return value
        low, high = int(np.min(value.bounds[0])), int(np.max(value.bounds[1]))
        seen_low, seen_high = int(value.calibration.min()), int(value.calibration.max())
        if seen_low <= low and high <= seen_high:
            return value
        if value.name not in self._bounded_values:  # several outputs may read one value
            quantizer, shift = value.quantizer, 0
            if low < 0 <= seen_low and quantizer.n_bits is None:
                shift = seen_low + 1  # calibration then sees -1: concrete makes it signed
                quantizer = UniformQuantizer(quantizer.scale, quantizer.zero_point - shift)
            bound = Bound(low - shift, high - shift, shift)
            bounded = self.add(bound, [value], quantizer)  # named by its producer in errors
            self._bounded_values[value.name] = replace(bounded, producer=value.producer)
        return self._bounded_values[value.name]

    def _lookup_source(self, value: Encrypted, threshold: Optional[int]) -> tuple:
        """The integer a lookup reads (``value`` sized for the whole grid: every bit of it
        indexes the table) and the low bits to round away from it (to ``threshold`` bits).

        A hint sizes, it does not sign, and the rounded value is signed by what calibration
        rounds to: when that is never negative but the rounded range over the grid is, the
        value is first shifted by a multiple of the rounding step (rounding commutes with it,
        the table's zero point absorbs it) until calibration rounds to a negative value too.
        """
        value = self._bounded(value)
        if threshold is None:
            return value, 0
        # (an op without an interval rule leaves calibration's range)
        low_end, high_end = (value.calibration,) * 2 if value.bounds is None else value.bounds
        low, high = int(np.min(low_end)), int(np.max(high_end))
        shift = 0
        while True:
            lsbs = rounding_lsbs(low - shift, high - shift, threshold)
            rounded = fhe.round_bit_pattern(value.calibration - shift, lsbs_to_remove=lsbs)
            seen = int(np.min(rounded)) if lsbs else -1
            if seen < 0 or round_half_up(low - shift, lsbs) >= 0 or value.quantizer.n_bits:
                break
            shift += seen + (1 << lsbs)
        if shift:
            quantizer = UniformQuantizer(value.quantizer.scale, value.quantizer.zero_point - shift)
            shifted = self.add(Bound(low - shift, high - shift, shift), [value], quantizer)
            value = replace(shifted, producer=value.producer)
        return value, lsbs

    def accumulator(self, quantizer: UniformQuantizer) -> UniformQuantizer:
        """The same affine map, for an unbounded integer (the result of a leveled op)."""
        return UniformQuantizer(quantizer.scale, quantizer.zero_point)

    def materialize(
        self,
        info: TensorInfo,
        node,
        input_index: int = 0,
        quantizer: Optional[UniformQuantizer] = None,
    ) -> Encrypted:
        """The integer tensor standing for input ``input_index`` of ``node``.

        Deferred ops are computed: on the client for a model input, else as one table lookup.
        A tensor that only feeds matrix products is quantized per feature (2-D) with a free
        zero point, which the products fold into their bias.
        """
        if isinstance(info, Encrypted):
            return info
        if isinstance(info, Constant):
            raise QuantizationError(f"{node.op_type} node {node.name!r} got a constant input.")
        if not info.elementwise:
            ops = ", ".join(step.op_type for step in info.steps if step.op_type)
            raise QuantizationError(
                f"{node.op_type} node {node.name!r} uses the result of {ops}, which mixes "
                "elements non-linearly and can only run in the clear after decryption: such ops "
                "must come last in the model."
            )
        if id(info) in self._materialized:
            return self._materialized[id(info)][1]
        linear_only = all(
            op in _LINEAR_CONSUMERS for op in self._consumers[node.input[input_index]]
        )
        if info.source is None:
            result = self._quantize_input(info, linear_only)
        else:
            result = self._table_lookup(info, node, linear_only, quantizer or info.grid)
        # the entry keeps ``info`` alive, so its id cannot be reused by another chain
        self._materialized[id(info)] = (info, result)
        return result

    def requantize(self, source: Encrypted, quantizer: UniformQuantizer, node) -> Encrypted:
        """``source`` mapped to ``quantizer`` by a table lookup."""
        return self._table_lookup(Deferred(source=source), node, False, quantizer)

    def common_quantizer(self, node, sources: list[Encrypted]) -> UniformQuantizer:
        """An ``activations``-bit quantizer covering the real ranges of all ``sources``."""
        values = [s.quantizer.dequant(s.calibration).reshape(-1) for s in sources]
        return choose_quantizer(np.concatenate(values), self.n_bits.activations)

    # -- internals ------------------------------------------------------------------------------
    def _build_node(self, node, attrs: dict, infos: list) -> tuple:
        variables = [i for i in infos if i is not None and not isinstance(i, Constant)]
        if not variables:  # constant folding: computed once, in float, at build time
            values = [None if i is None else i.value for i in infos]
            outputs = ONNX_OPS_TO_NUMPY_IMPL[node.op_type](*values, **attrs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            return tuple(Constant(np.asarray(v)) for v in outputs)
        if any(isinstance(i, Deferred) and not i.elementwise for i in variables):
            return (QuantizedClearOnly.build(self, node, attrs, infos),)
        result = ONNX_OPS_TO_QUANTIZED_IMPL[node.op_type].build(self, node, attrs, infos)
        return result if isinstance(result, tuple) else (result,)

    @staticmethod
    def _feature_axis(values: np.ndarray, linear_only: bool) -> Optional[int]:
        return -1 if linear_only and np.ndim(values) == 2 else None

    def _quantize_input(self, info: Deferred, linear_only: bool) -> Encrypted:
        """Client-side: the deferred ops on a model input, then its quantizer."""
        if any(q.input_index == info.input_index for q in self._input_quantizations):
            raise QuantizationError(
                "A model input feeds several branches with different elementwise preprocessing; "
                "this is not supported."
            )
        values = np.asarray(info.evaluate(self._inputs[info.input_index]))
        quantizer = choose_quantizer(
            values,
            self.n_bits.inputs,
            info.steps,
            axis=self._feature_axis(values, linear_only),
            clip_outliers=True,
            include_zero=not linear_only,
        )
        name = f"input_{len(self._input_quantizations)}"
        self._input_quantizations.append(InputQuantization(info.input_index, info.steps, quantizer))
        calibration = quantizer.quant(values)
        return Encrypted(name, quantizer, calibration, "input",
                         input_interval(quantizer, info.steps, calibration[:1]))

    def _table_lookup(
        self, info: Deferred, node, linear_only: bool, quantizer: Optional[UniformQuantizer]
    ) -> Encrypted:
        """In-circuit: the deferred ops as one table lookup on the source integers."""
        # concrete's optimizer finds no parameters for a rounded lookup of MaxPool results
        # (concrete-python 2.11): those are read at full width
        source = info.source
        threshold = None if source.producer == "MaxPool" else self.rounding_threshold_bits
        source, lsbs = self._lookup_source(source, threshold)
        qvalues = source.calibration
        reach = qvalues if source.bounds is None else np.concatenate(
            [np.ravel(end) for end in source.bounds])  # the grid's extremes, calibration within
        bits = bits_for_range(reach.min(), reach.max())
        source_reach = reach
        if lsbs:
            qvalues = fhe.round_bit_pattern(qvalues, lsbs_to_remove=lsbs)
            reach = fhe.round_bit_pattern(reach, lsbs_to_remove=lsbs)
            bits = bits_for_range(reach.min() >> lsbs, reach.max() >> lsbs)
        ops = "+".join(step.op_type for step in info.steps) or "requantization"
        if bits > MAX_LOOKUP_BITS:
            fix = (
                "set rounding_threshold_bits (e.g. 6) so accumulators are rounded before lookups"
                if threshold is not None or source.producer != "MaxPool" else
                "apply the activation before the MaxPool (a MaxPool result is read unrounded: "
                "concrete finds no parameters for a rounded lookup of it)"
            )
            raise BitWidthError(
                f"The table lookup computing {ops} (before {node.op_type} node {node.name!r}) "
                f"reads the {source.producer} result, which needs {bits} bits > "
                f"{MAX_LOOKUP_BITS} over the whole input grid, the widest input a TFHE table "
                f"lookup takes. Lower n_bits (inputs, weights or activations), or {fix}."
            )
        if quantizer is None:
            values = np.asarray(info.evaluate(source.quantizer.dequant(qvalues)))
            quantizer = choose_quantizer(
                values,
                self.n_bits.activations,
                info.steps,
                axis=self._feature_axis(values, linear_only),
                include_zero=not linear_only,
            )
        # The rounded value is hinted to hold its source's range too: concrete (2.11) gives a
        # rounded value it sizes narrower than its source a wrong overflow protection, which
        # turns values that round up to zero into others (found by the property tests: a
        # source in [-5, -2] rounded by 2 bits).
        rounded_range = (min(reach.min(), source_reach.min()),
                         max(reach.max(), source_reach.max())) if lsbs else None
        op = QuantizedTableLookup(source.quantizer, info.steps, quantizer, lsbs, rounded_range)
        result = self.add(op, [source], quantizer)
        out_bits = bits_for_range(result.calibration.min(), result.calibration.max())
        self._lookups.append(LookupReport(ops, source.producer, bits, out_bits, lsbs))
        return result

    def _output(self, name: str, info: TensorInfo) -> OutputDequantization:
        if isinstance(info, Encrypted):
            bounded = self._bounded(info)
            return OutputDequantization(bounded.name, bounded.quantizer, ())
        if isinstance(info, Deferred) and info.source is not None:
            bounded = self._bounded(info.source)
            return OutputDequantization(bounded.name, bounded.quantizer, info.steps)
        raise QuantizationError(
            f"Model output {name!r} does not depend on any computation that needs encryption "
            "(it is constant or a function of the input alone)."
        )
