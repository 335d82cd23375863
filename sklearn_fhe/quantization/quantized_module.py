"""QuantizedModule: the integer-only model, and its FHE circuit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
from concrete import fhe
from concrete.fhe.tracing import Tracer

from ..fhe.batched_circuit import BatchedCircuit
from ..fhe.compile import DEFAULT_BATCH_SIZE, compile_integer_function
from ..fhe.modes import FheMode
from .n_bits import NBits
from .quantizers import UniformQuantizer

#: Widest integer a TFHE table lookup can take.
MAX_LOOKUP_BITS = 16


@dataclass(frozen=True)
class Step:
    """One integer op of ``_forward``: the names of its inputs and of its output."""

    op: Any
    inputs: tuple
    output: str


@dataclass(frozen=True)
class InputQuantization:
    """Client side, before encryption: elementwise ops on a model input, then its quantizer."""

    input_index: int
    steps: tuple
    quantizer: UniformQuantizer

    def __call__(self, x: np.ndarray) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        for step in self.steps:
            values = step(values)
        return self.quantizer.quant(values)


@dataclass(frozen=True)
class OutputDequantization:
    """Client side, after decryption: dequantize a circuit output, then the ops left for the
    clear (sigmoid, softmax, argmax...)."""

    source: str
    quantizer: UniformQuantizer
    steps: tuple

    def __call__(self, q: np.ndarray) -> np.ndarray:
        values = self.quantizer.dequant(q)
        for step in self.steps:
            values = step(values)
        return values


@dataclass(frozen=True)
class LookupReport:
    """A table lookup of the circuit: what it computes and how wide its input and output are."""

    ops: str
    reads: str
    input_bits: int
    output_bits: int
    rounded_bits: int


class QuantizedModule:
    """An integer-only model: quantize on the client, integers in the circuit, dequantize.

    Built by post-training quantization; ``compile`` turns ``_forward`` into an FHE circuit.

    Attributes
    ----------
    input_quantizations : list of InputQuantization
        One per circuit input (client side, before encryption).
    steps : list of Step
        The integer ops of ``_forward``, in order.
    output_dequantizations : list of OutputDequantization
        One per model output (client side, after decryption).
    lookups : list of LookupReport
        The table lookups of the circuit, with their bit widths.
    rounding_threshold_bits : int or None
        The width table-lookup inputs were rounded to (the one "auto" chose, in
        ``compile_torch_model``), None when nothing is rounded.
    fhe_circuit : BatchedCircuit or None
        The compiled circuit (a concrete module with one function per batch shape, one key
        set), after ``compile``.
    """

    def __init__(
        self,
        input_quantizations: Sequence[InputQuantization],
        steps: Sequence[Step],
        output_dequantizations: Sequence[OutputDequantization],
        lookups: Sequence[LookupReport],
        n_bits: NBits,
    ) -> None:
        if len(input_quantizations) != 1:
            raise ValueError(
                f"The model has {len(input_quantizations)} encrypted inputs; sklearn_fhe compiles "
                "models with exactly one input tensor."
            )
        self.input_quantizations = list(input_quantizations)
        self.steps = list(steps)
        self.output_dequantizations = list(output_dequantizations)
        self.lookups = list(lookups)
        self.n_bits = n_bits
        self._circuit_outputs = list(dict.fromkeys(o.source for o in output_dequantizations))
        self.fhe_circuit: Optional[BatchedCircuit] = None
        self.batch_size = DEFAULT_BATCH_SIZE
        self.input_shape: Optional[tuple] = None  # of one row, known once compiled

    # -- the three stages ----------------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Client side: float input → integers (the values that get encrypted)."""
        quantization = self.input_quantizations[0]
        return quantization(x)

    def _forward(self, q: Any) -> Any:
        """Integers → integers, with integer-only ops (traced by concrete for the circuit)."""
        values = {"input_0": q}
        tracing = isinstance(q, Tracer)
        for step in self.steps:
            result = step.op(*(values[name] for name in step.inputs))
            if not tracing:
                result = np.asarray(result)
                assert np.issubdtype(result.dtype, np.integer), (
                    f"{step.op.op_type} produced {result.dtype} values inside the circuit"
                )
            values[step.output] = result
        outputs = tuple(values[name] for name in self._circuit_outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def dequantize_output(self, q: Any) -> Union[np.ndarray, tuple]:
        """Client side: circuit integers → float model outputs (one per model output)."""
        parts = q if isinstance(q, tuple) else (q,)
        by_name = dict(zip(self._circuit_outputs, parts))
        outputs = tuple(o(by_name[o.source]) for o in self.output_dequantizations)
        return outputs[0] if len(outputs) == 1 else outputs

    # -- running -------------------------------------------------------------------------------
    def quantized_forward(self, q: np.ndarray, fhe: Union[bool, str] = "disable") -> Any:
        """Run the integer part on quantized inputs, in the clear or through the circuit."""
        mode = FheMode.parse(fhe)
        if mode is FheMode.DISABLE:
            return self._forward(np.asarray(q, dtype=np.int64))
        circuit = self._require_circuit()
        run = circuit.simulate if mode is FheMode.SIMULATE else circuit.encrypt_run_decrypt
        return run(q)

    def forward(self, x: np.ndarray, fhe: Union[bool, str] = "disable") -> Any:
        """Float inputs → float outputs through the integer model.

        Parameters
        ----------
        x : numpy.ndarray
            Model input, batch first.
        fhe : {False, "disable", "simulate", True, "execute"}, default="disable"
            Where the integer part runs: in the clear, in the simulated circuit, or encrypted.
        """
        mode = FheMode.parse(fhe)
        return self.dequantize_output(self.quantized_forward(self.quantize_input(x), mode))

    __call__ = forward

    # -- FHE -----------------------------------------------------------------------------------
    def compile(
        self,
        inputset: np.ndarray,
        configuration: Optional[fhe.Configuration] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        p_error: Optional[float] = None,
        global_p_error: Optional[float] = None,
    ) -> BatchedCircuit:
        """Compile ``_forward`` into an FHE circuit taking up to ``batch_size`` rows per call.

        The circuit holds one function per batch shape (1, 4, 16... rows, up to ``batch_size``),
        sharing one key set: a request of ``n`` rows runs full batches, then the cheapest shapes
        for the rest, so a one-row request pays for one row.

        Parameters
        ----------
        inputset : numpy.ndarray
            Representative float inputs (the calibration set is a good choice); they fix the
            bit width of every integer of the circuit.
        configuration : concrete.fhe.Configuration, optional
            Concrete's configuration; default ``sklearn_fhe.fhe.compile.default_configuration()``
            (compressed input ciphertexts and evaluation keys).
        batch_size : int, default=16
            Rows of the largest circuit call.
        p_error, global_p_error : float, optional
            Error probability of each table lookup, or of any lookup in one circuit call
            (concrete's default: ``global_p_error=1e-5``). A lookup that errs is off by one step
            of its output grid, so encrypted results equal ``fhe="disable"`` with at least this
            probability; 2**-40 per lookup is the reference library's default.

        Raises
        ------
        FHEMemoryBudgetError
            Before anything is allocated, when the estimated peak memory (``fhe_cost()``)
            exceeds ``sklearn_fhe.set_config(memory_budget=...)``.
        """
        inputset = np.asarray(inputset)
        if inputset.ndim == 0 or inputset.shape[0] == 0:
            raise ValueError("The compilation inputset is empty: give at least one row.")
        self.input_shape = tuple(inputset.shape[1:])
        from ..fhe.cost import check_memory_budget  # the cost model reads this module

        check_memory_budget(self, inputset, batch_size, p_error, global_p_error)
        self.fhe_circuit = compile_integer_function(
            self._forward, self.quantize_input(inputset), batch_size, configuration,
            context=self._widest_lookup(), p_error=p_error, global_p_error=global_p_error,
        )
        self.batch_size = self.fhe_circuit.batch_size
        return self.fhe_circuit

    def _widest_lookup(self) -> str:
        """A sentence naming the widest table lookup, for compilation errors."""
        if not self.lookups:
            return " The circuit has no table lookup."
        widest = max(self.lookups, key=lambda lookup: lookup.input_bits)
        rounded = f", after rounding away {widest.rounded_bits}" if widest.rounded_bits else ""
        return (
            f" Its widest table lookup computes {widest.ops} on the {widest.reads} result "
            f"({widest.input_bits} bits{rounded}; {len(self.lookups)} in the circuit)."
        )

    def keygen(self, force: bool = False, seed: Optional[int] = None) -> None:
        """Generate the keys now (otherwise they are made on the first encrypted run)."""
        self._require_circuit().keygen(force=force, seed=seed)

    def fhe_cost(
        self, inputset: Optional[np.ndarray] = None, batch_size: Optional[int] = None
    ) -> dict:
        """What running encrypted will cost: estimated before compiling, measured after.

        Parameters
        ----------
        inputset : numpy.ndarray, optional
            A few representative float input rows (they fix each lookup's elements per row
            and the circuit's widest integer). Required before the model is compiled.
        batch_size : int, optional
            Rows per circuit call to estimate for; defaults to the module's batch size.

        Returns
        -------
        cost : dict
            ``pbs_per_row``, ``pbs_per_row_by_bit_width``, ``max_bit_width``,
            ``estimated_s_per_row``, ``estimated_key_bytes``... (see
            :func:`sklearn_fhe.fhe.cost.estimate`); once compiled, also the circuit's own
            figures under ``compiled_*`` names.
        """
        from ..fhe.cost import fhe_cost

        return fhe_cost(self, inputset, batch_size)

    def statistics(self) -> dict:
        """The compiled circuit's statistics: ``fhe_circuit.statistics``.

        concrete's keys (``programmable_bootstrap_count``..., per call of the largest batch
        shape) plus ours: ``pbs_per_circuit``, ``pbs_per_row``, ``max_bit_width``,
        ``batch_size``, ``batch_sizes``.
        """
        return self._require_circuit().statistics

    def _require_circuit(self) -> fhe.Circuit:
        if self.fhe_circuit is None:
            raise RuntimeError(
                "The model is not compiled: call compile(inputset) before running with "
                "fhe='simulate' or fhe='execute'."
            )
        return self.fhe_circuit

    def __getstate__(self) -> dict:
        # Circuits hold native objects and keys: they are not pickled, compile again instead.
        state = self.__dict__.copy()
        state["fhe_circuit"] = None
        return state
