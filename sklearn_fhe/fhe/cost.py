"""What an encrypted prediction will cost, known before compiling: time, keys, memory.

The quantized model already says which table lookups (programmable bootstraps, PBS) its circuit
will hold and how wide they are (``QuantizedModule.lookups``); one clear run on a sample row says
how many elements each produces per row, and a clear run of the integer model gives the widest
integer (as concrete would measure it). From there, arithmetic only:

- concrete splits its error budget (``global_p_error``) over every PBS of the compiled module
  (all its batch shapes), so each PBS may err with ``global_p_error / total``; that probability,
  a lookup's width and the widest value its outputs feed fix the cryptographic parameters
  concrete will choose (``crypto_parameters``: a tiny proxy compiled once per machine, cached);
- the parameters give key bytes (serialized, and in memory), the size of a ciphertext and
  concrete's complexity of one PBS; this machine's measured constants (``machine_profile``)
  turn them into seconds: PBS time, encryption and decryption per ciphertext byte, the fixed
  cost of a call, key generation per unit of its work;
- the server evaluates each lookup op on the whole ``(batch, ...)`` tensor at once, spread over
  the cores: a lookup element costs the amortized PBS time; a rounded lookup first removes its
  low bits, one narrow PBS per bit;
- a circuit without lookups (a linear model) is leveled multiply-adds on wide ciphertexts,
  measured as such;
- peak memory beyond the process as it is: the keys as generated in memory, the ciphertext
  tensors of the widest step of a full batch (an input and an output of each of its elements),
  and concrete's own working set. ``check_memory_budget`` refuses a compilation that would
  pass ``sklearn_fhe.set_config(memory_budget=...)`` before anything is allocated.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..config import get_config, memory_budget_bytes
from ..quantization.quantizers import bits_for_range, round_half_up
from .batch_plan import batch_sizes_for
from .crypto_parameters import key_parameters
from .machine_profile import MachineProfile, calibrate, current_profile, save_profile

if TYPE_CHECKING:  # the quantization package imports this module's users
    from ..quantization.quantized_module import QuantizedModule

__all__ = [
    "CostWarning", "FHEMemoryBudgetError", "LookupCount", "check_memory_budget",
    "count_lookups", "estimate", "fhe_cost", "warn_if_slow",
]

#: concrete's default error probability of one circuit call (``Configuration.global_p_error``).
DEFAULT_GLOBAL_P_ERROR = 1e-5

#: Memory of concrete's compiler and runtime beyond the process as it was (measured on a model
#: without lookups), and the keys' working copies while they are generated (key generation
#: holds a standard and a Fourier form of the bootstrap key for a while).
_RUNTIME_BYTES = 50e6
_KEY_MEMORY_FACTOR = 1.3

#: Rounding removes one bit per PBS on a narrow integer: its parameters are those of 1 bit.
_ROUNDING_BITS = 1


class FHEMemoryBudgetError(MemoryError):
    """Compiling (and running) the circuit would need more memory than the budget allows."""


class CostWarning(UserWarning):
    """A fitted model whose encrypted predictions will be slow."""


@dataclass(frozen=True)
class LookupCount:
    """One table lookup of the circuit and how many elements it evaluates per row."""

    ops: str
    input_bits: int
    rounded_bits: int
    elements_per_row: int

    @property
    def pbs_per_row(self) -> int:
        """The lookup itself and one PBS per rounded-away bit, for each element."""
        return self.elements_per_row * (1 + self.rounded_bits)


def _lookup_op_type() -> type:
    from ..quantization.quantized_ops import QuantizedTableLookup

    return QuantizedTableLookup


def _circuit_rows(module: "QuantizedModule", inputset: Optional[np.ndarray]) -> np.ndarray:
    """Quantized rows to run the integer model on: ``inputset``, else zeros shaped like the
    compiled circuit's input."""
    if inputset is not None:
        inputset = np.asarray(inputset)
        if inputset.ndim == 0 or inputset.shape[0] == 0:
            raise ValueError("fhe_cost needs at least one representative input row.")
        return module.quantize_input(inputset)
    if module.fhe_circuit is None:
        raise ValueError(
            "fhe_cost needs representative inputs before the model is compiled: pass "
            "inputset (a few rows of the data you will predict on)."
        )
    circuit = module.fhe_circuit
    shape = circuit.function(circuit.batch_size).graph.ordered_inputs()[0].output.shape
    return np.zeros((1,) + tuple(shape[1:]), dtype=np.int64)


def _elements_per_step(module: "QuantizedModule", qrows: np.ndarray) -> list[tuple[Any, int]]:
    """Each step's op and the elements its result holds per row, from one clear run on the
    first of ``qrows`` (the input first, as ``(None, elements)``)."""
    row = np.asarray(qrows[:1], dtype=np.int64)
    values = {"input_0": row}
    elements = [(None, int(np.prod(row.shape[1:], dtype=np.int64)))]
    for step in module.steps:
        result = np.asarray(step.op(*(values[name] for name in step.inputs)))
        values[step.output] = result
        elements.append((step.op, int(np.prod(result.shape[1:], dtype=np.int64))))
    return elements


def count_lookups(module: "QuantizedModule", qrows: np.ndarray,
                  elements: Optional[list] = None) -> list[LookupCount]:
    """The lookups of ``module`` with their elements per row, from one clear run of the integer
    model on ``qrows`` (or its ``_elements_per_step``, when already known)."""
    elements = elements if elements is not None else _elements_per_step(module, qrows)
    counts = [count for op, count in elements if isinstance(op, _lookup_op_type())]
    if len(counts) != len(module.lookups):
        raise RuntimeError(
            f"The integer model holds {len(counts)} table-lookup steps but reports "
            f"{len(module.lookups)} lookups: the cost model is out of step with quantization."
        )
    return [
        LookupCount(report.ops, report.input_bits, report.rounded_bits, count)
        for report, count in zip(module.lookups, counts)
    ]


#: Multiply-adds of the clear integer run that sizes the widest integer; past it, an even
#: subsample of the rows (the hinted worst cases still count whole).
_WIDEST_INTEGER_WORK = 2e8


def widest_integer(module: "QuantizedModule", qrows: np.ndarray) -> int:
    """The circuit's widest integer on ``qrows``, as compiling would find it, without concrete.

    concrete sizes each value by its range over the compilation rows, widened by hints (the
    worst-case bounds of lookup inputs and outputs); a rounding may carry into one more bit.
    One clear run of the integer model gives the same ranges in milliseconds, where tracing
    through concrete took minutes for a large forest.
    """
    qrows = _subsample(np.asarray(qrows, dtype=np.int64), _work_per_row(module))
    values = {"input_0": qrows}
    widths = [_bits(qrows)]
    for step in module.steps:
        inputs = [values[name] for name in step.inputs]
        result = np.asarray(step.op(*inputs))
        values[step.output] = result
        widths.append(_bits(result))
        widths.extend(_bits(np.asarray(hint)) for hint in _hinted_ranges(step.op, inputs))
    return max(widths)


def _bits(values: np.ndarray) -> int:
    return bits_for_range(int(values.min(initial=0)), int(values.max(initial=0)))


def _hinted_ranges(op: Any, inputs: list) -> list:
    """Ranges concrete is told a value inside ``op`` may take, beyond the rows it sees: a
    bound's hint, and a rounded lookup input (its hint, or its rounded extremes)."""
    if getattr(op, "op_type", "") == "Bound":
        return [(op.low, op.high)]
    lsbs = getattr(op, "lsbs_to_remove", 0)
    if not lsbs:
        return []
    hinted = [op.rounded_range] if op.rounded_range is not None else []
    source = inputs[0]
    rounded = [round_half_up(int(source.min()), lsbs), round_half_up(int(source.max()), lsbs)]
    return hinted + [tuple(rounded)]


def _work_per_row(module: "QuantizedModule") -> float:
    """Multiply-adds of one row through the module's products by clear weights."""
    return float(sum(np.size(getattr(step.op, "weights", ())) for step in module.steps)) or 1.0


def _subsample(qrows: np.ndarray, work_per_row: float) -> np.ndarray:
    most = max(int(_WIDEST_INTEGER_WORK // work_per_row), 16)
    if qrows.shape[0] <= most:
        return qrows
    return qrows[np.linspace(0, qrows.shape[0] - 1, most).astype(np.int64)]


def pbs_per_row_by_partition(lookups: list[LookupCount], widest: int
                             ) -> dict[tuple[int, int], int]:
    """PBS per row by what concrete parameterizes them for: ``(input bits, bits of the values
    their outputs feed)``. A lookup's outputs feed sums up to the widest integer; a rounding
    step removes one bit with a narrow PBS whose output only corrects the value it rounds."""
    partitions: dict[tuple[int, int], int] = {}
    for lookup in lookups:
        key = (lookup.input_bits, widest)
        partitions[key] = partitions.get(key, 0) + lookup.elements_per_row
        if lookup.rounded_bits:
            rounding = (_ROUNDING_BITS, _ROUNDING_BITS)
            partitions[rounding] = (partitions.get(rounding, 0)
                                    + lookup.elements_per_row * lookup.rounded_bits)
    return partitions


def pbs_error_probability(pbs_per_module_call: int, p_error: Optional[float] = None,
                          global_p_error: Optional[float] = None) -> float:
    """The error probability concrete grants each PBS: ``p_error`` when given, else the
    circuit's ``global_p_error`` (concrete's default 1e-5) split over its PBS."""
    if p_error is not None:
        return float(p_error)
    return float(global_p_error or DEFAULT_GLOBAL_P_ERROR) / max(pbs_per_module_call, 1)


def estimate(
    module: "QuantizedModule",
    inputset: Optional[np.ndarray] = None,
    batch_size: Optional[int] = None,
    profile: Optional[MachineProfile] = None,
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> dict[str, Any]:
    """The estimated cost of running ``module`` encrypted, without compiling it.

    Parameters
    ----------
    module : QuantizedModule
        The integer model.
    inputset : numpy.ndarray, optional
        Representative float inputs (they fix element counts and the widest integer);
        required before the module is compiled.
    batch_size : int, optional
        Rows of the largest circuit call (default: the module's).
    profile : MachineProfile, optional
        This machine's measured constants (default: ``current_profile()``).
    p_error, global_p_error : float, optional
        The error probabilities the circuit will be compiled with.

    Returns
    -------
    cost : dict
        ``pbs_per_row``, ``pbs_per_row_by_bit_width`` ({width: count}), ``max_bit_width``
        (widest integer of the circuit), ``lookup_bit_width`` (widest lookup input),
        ``estimated_s_per_row`` (in full batches of ``batch_size`` rows),
        ``estimated_s_per_call`` (one full batch), ``estimated_s_one_row`` (a one-row
        request), ``estimated_key_bytes`` (serialized evaluation keys),
        ``estimated_keygen_s``, ``estimated_peak_memory_bytes`` (beyond the process as it
        is: compiling, generating keys and running a full batch) and ``batch_size``.
    """
    profile = profile or current_profile()
    batch_size = int(batch_size or module.batch_size)
    qrows = _circuit_rows(module, inputset)
    elements = _elements_per_step(module, qrows)
    lookups = count_lookups(module, qrows, elements)
    widest = widest_integer(module, qrows)
    by_width: dict[int, int] = {}
    for lookup in lookups:
        by_width[lookup.input_bits] = by_width.get(lookup.input_bits, 0) + lookup.pbs_per_row
    pbs_per_row = int(sum(by_width.values()))
    rows_per_module_call = sum(batch_sizes_for(batch_size))  # every shape shares the budget
    p_pbs = pbs_error_probability(pbs_per_row * rows_per_module_call, p_error, global_p_error)
    partitions = {key: (count, key_parameters(*key, p_pbs))
                  for key, count in pbs_per_row_by_partition(lookups, widest).items()}
    n_inputs = elements[0][1]
    n_outputs = _outputs_per_row(module, qrows)
    if partitions:
        largest = max((params for _, params in partitions.values()),
                      key=lambda params: params.ciphertext_bytes)
        ciphertext = largest.ciphertext_bytes
        server_row = sum(count * params.complexity_per_pbs for count, params in
                         partitions.values()) * profile.pbs_s_per_complexity
        client_row = ciphertext * (n_inputs * profile.encrypt_s_per_byte
                                   + n_outputs * profile.decrypt_s_per_byte)
        call_s = profile.call_s
        key_bytes = sum(params.serialized_key_bytes for _, params in partitions.values())
        memory_keys = sum(params.bootstrap_key_bytes + params.keyswitch_key_bytes
                          for _, params in partitions.values())
        keygen_work = sum(params.keygen_work for _, params in partitions.values())
    else:  # a dot product of every input with every output, on wide ciphertexts
        ciphertext = _LEVELED_CIPHERTEXT_BYTES
        server_row = n_inputs * n_outputs * profile.leveled_s
        client_row = n_inputs * profile.leveled_input_s + n_outputs * profile.leveled_output_s
        call_s = profile.leveled_call_s
        key_bytes = memory_keys = keygen_work = 0
    per_call = call_s + batch_size * (server_row + client_row)
    widest_step = max(count for _, count in elements)
    tensors = 2 * batch_size * widest_step * ciphertext  # a step's input and output, per row
    return {
        "pbs_per_row": pbs_per_row,
        "pbs_per_row_by_bit_width": dict(sorted(by_width.items())),
        "max_bit_width": int(widest),
        "lookup_bit_width": int(max(by_width, default=0)),
        "estimated_s_per_row": per_call / batch_size,
        "estimated_s_per_call": per_call,
        "estimated_s_one_row": call_s + server_row + client_row,
        "estimated_key_bytes": int(max(key_bytes, _LEVELED_KEY_BYTES)),
        "estimated_keygen_s": keygen_work * profile.keygen_s_per_work,
        "estimated_peak_memory_bytes": int(_RUNTIME_BYTES + _KEY_MEMORY_FACTOR * memory_keys
                                           + tensors),
        "batch_size": batch_size,
    }


#: Evaluation keys of a circuit without lookups: concrete's (empty) key set header.
_LEVELED_KEY_BYTES = 64

#: A ciphertext of a circuit without lookups, for its memory: concrete gives wide leveled
#: circuits LWE dimensions of a few thousand; the largest usual one bounds it.
_LEVELED_CIPHERTEXT_BYTES = 8 * (4096 + 1)


def _outputs_per_row(module: "QuantizedModule", qrows: np.ndarray) -> int:
    outputs = module.quantized_forward(qrows[:1], fhe="disable")
    parts = outputs if isinstance(outputs, tuple) else (outputs,)
    return int(sum(np.prod(np.shape(part)[1:], dtype=np.int64) for part in parts))


def compiled_figures(module: "QuantizedModule") -> dict[str, Any]:
    """The compiled circuit's own figures (``compiled_`` + ``batch_statistics``' keys), and the size
    of its evaluation keys once they exist."""
    figures = {f"compiled_{name}": value
               for name, value in module.fhe_circuit.batch_statistics().items()}
    keys = module.fhe_circuit.module.keys
    if keys.are_generated:  # reading keys.evaluation would generate them
        figures["compiled_key_bytes"] = len(keys.evaluation.serialize())
    return figures


def fhe_cost(
    module: "QuantizedModule",
    inputset: Optional[np.ndarray] = None,
    batch_size: Optional[int] = None,
) -> dict[str, Any]:
    """``estimate`` of ``module`` with this machine's measured profile (a quick calibration
    on first use, cached), plus ``compiled_figures`` once it is compiled."""
    cost = estimate(module, inputset, batch_size, current_profile(calibrate_if_missing=True))
    if module.fhe_circuit is not None:
        cost.update(compiled_figures(module))
    return cost


def _knobs(cost: dict) -> str:
    """What lowers a circuit's cost, for error and warning messages."""
    return (
        f"{cost['pbs_per_row']} table lookups (PBS) per row, the widest {cost['lookup_bit_width']} "
        f"bits, widest integer {cost['max_bit_width']} bits. To lower it: a smaller model (trees: "
        "max_depth, n_estimators; networks: fewer or narrower layers), a lower n_bits or "
        "rounding_threshold_bits, or a smaller batch_size in compile()"
    )


def check_memory_budget(
    module: "QuantizedModule",
    inputs: np.ndarray,
    batch_size: int,
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> dict[str, Any]:
    """Refuse, before anything is allocated, a compilation whose estimated peak memory exceeds
    ``sklearn_fhe.get_config()["memory_budget"]`` (by default a safe share of the memory
    available now). Returns the estimate."""
    cost = estimate(module, inputs, batch_size, p_error=p_error, global_p_error=global_p_error)
    budget = memory_budget_bytes()
    needed = cost["estimated_peak_memory_bytes"]
    if budget is not None and needed > budget:
        raise FHEMemoryBudgetError(
            f"Compiling and running this model encrypted needs about {needed / 1e9:.2f} GB "
            f"(keys {cost['estimated_key_bytes'] / 1e6:.0f} MB serialized, a batch of "
            f"{cost['batch_size']} rows), over the memory budget of {budget / 1e9:.2f} GB: "
            f"{_knobs(cost)}; or raise the budget with "
            f"sklearn_fhe.set_config(memory_budget=...) if this machine has the memory."
        )
    return cost


def warn_if_slow(module: "QuantizedModule", inputs: np.ndarray, what: str) -> None:
    """Warn when ``module``'s estimated seconds per encrypted row exceed
    ``sklearn_fhe.get_config()["slow_row_warning_s"]`` (None: never)."""
    threshold = get_config()["slow_row_warning_s"]
    if threshold is None:
        return
    cost = estimate(module, inputs)
    if cost["estimated_s_per_row"] > threshold:
        warnings.warn(
            f"{what} will take about {cost['estimated_s_per_row']:.1f} s per encrypted row "
            f"(estimated, threshold {threshold:g} s; memory about "
            f"{cost['estimated_peak_memory_bytes'] / 1e9:.1f} GB): {_knobs(cost)}. "
            f"fhe_cost() gives the details; sklearn_fhe.set_config(slow_row_warning_s=None) "
            f"silences this.",
            CostWarning,
            stacklevel=3,
        )


def main(argv: Optional[list] = None) -> int:
    """``python -m sklearn_fhe.fhe.cost [--calibrate] [--output FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_fhe.fhe.cost",
        description="Show or measure the machine profile behind fhe_cost().",
    )
    parser.add_argument("--calibrate", action="store_true",
                        help="measure this machine's profile (the full calibration, ~1 minute) "
                             "into the cache directory, or into --output")
    parser.add_argument("--quick", action="store_true",
                        help="with --calibrate: the few-second calibration of first use")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the measured profile to this file instead of the cache")
    args = parser.parse_args(argv)
    if args.calibrate:
        profile = calibrate(quick=args.quick, log=print)
        print(f"wrote {save_profile(profile, args.output)}")
    profile = current_profile()
    print(f"machine profile ({profile.machine}):")
    for name, value in profile.to_dict().items():
        print(f"  {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
