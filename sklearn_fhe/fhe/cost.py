"""What an encrypted prediction will cost, known before compiling.

The quantized model already says which table lookups (programmable bootstraps, PBS) its circuit
will hold and how wide they are (``QuantizedModule.lookups``); one clear run on a sample row says
how many elements each produces per row. Times and key sizes come from a small table of
per-lookup costs measured on this machine (``cost_table.json`` beside this file), rebuilt by::

    python -m sklearn_fhe.fhe.cost --calibrate

The time model follows what concrete's runtime does with a batch of rows:

- the client encrypts every input element (its cost depends on the crypto parameters, which the
  widest lookup fixes), and decrypts the outputs;
- the server evaluates each lookup op on the whole ``(batch, ...)`` tensor at once, its elements
  spread over the machine's cores: a lookup element costs the amortized ``lookup_s`` of its width;
- a rounded lookup (``rounding_threshold_bits``) first removes its low bits one at a time, one
  small PBS per removed bit (``round_s`` of the width before each step);
- every circuit call pays a fixed overhead (``call_s``): what a one-row request feels most.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..quantization.quantizers import bits_for_range

if TYPE_CHECKING:  # the quantization package imports this module's users
    from ..quantization.quantized_module import QuantizedModule

__all__ = ["CostTable", "LookupCount", "calibrate", "count_lookups", "estimate", "fhe_cost"]

#: The calibrated per-lookup costs shipped with the package (rewritten by ``--calibrate``).
COST_TABLE_PATH = Path(__file__).with_name("cost_table.json")

#: Lookup widths the calibration measures; wider ones are extrapolated (cost doubles per bit).
#: (A 7-bit lookup circuit already needs 1.2 GB of evaluation keys with the default p_error.)
CALIBRATED_WIDTHS = tuple(range(1, 8))


@dataclass(frozen=True)
class LookupCount:
    """One table lookup of the circuit and how many elements it evaluates per row."""

    ops: str
    input_bits: int
    rounded_bits: int
    elements_per_row: int

    def pbs_by_width(self) -> dict[int, int]:
        """PBS per row by input width: the lookup itself, and one per rounded-away bit
        (taken at the width before that bit goes)."""
        counts = {self.input_bits: self.elements_per_row}
        for removed in range(self.rounded_bits):
            width = self.input_bits + self.rounded_bits - removed
            counts[width] = counts.get(width, 0) + self.elements_per_row
        return counts


class CostTable:
    """Measured costs by lookup width (0 stands for a circuit without lookups).

    Each width maps to ``call_s`` (fixed cost of one circuit call), ``input_s`` (encrypting and
    sending one input element), ``output_s`` (decrypting one output element), ``lookup_s`` (one
    lookup element inside a wide tensor, amortized over the cores), ``round_s`` (removing one
    bit before a lookup) and ``key_bytes`` (serialized evaluation keys of a circuit whose widest
    lookup has this width).
    """

    def __init__(self, entries: dict[int, dict[str, float]], machine: str = "") -> None:
        if not entries:
            raise ValueError("The cost table is empty: run python -m sklearn_fhe.fhe.cost --calibrate.")
        self.entries = {int(width): dict(costs) for width, costs in entries.items()}
        self.machine = machine

    @classmethod
    def load(cls, path: Path = COST_TABLE_PATH) -> "CostTable":
        """Read a table written by ``calibrate``."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No cost table at {path}: run python -m sklearn_fhe.fhe.cost --calibrate."
            ) from None
        return cls(data["widths"], data.get("machine", ""))

    def save(self, path: Path = COST_TABLE_PATH) -> None:
        data = {"machine": self.machine, "widths": {str(w): c for w, c in sorted(self.entries.items())}}
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    def cost(self, width: int, name: str) -> float:
        """``name``'s cost at ``width`` bits; past the widest width measured it doubles per bit
        (a TFHE lookup's polynomial size grows with its width)."""
        if width in self.entries:
            return self.entries[width][name]
        widest = max(self.entries)
        if width > widest:
            return self.entries[widest][name] * 2.0 ** (width - widest)
        narrower = [w for w in self.entries if w < width]
        return self.entries[max(narrower) if narrower else min(self.entries)][name]


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
    shape = module.fhe_circuit.graph.ordered_inputs()[0].output.shape
    return np.zeros((1,) + tuple(shape[1:]), dtype=np.int64)


def count_lookups(module: "QuantizedModule", qrows: np.ndarray) -> tuple[list[LookupCount], int]:
    """The lookups of ``module`` with their elements per row, and the widest integer of the
    circuit, from one clear run of the integer model on ``qrows``."""
    values = {"input_0": np.asarray(qrows, dtype=np.int64)}
    widest = bits_for_range(values["input_0"].min(), values["input_0"].max())
    elements = []
    for step in module.steps:
        result = np.asarray(step.op(*(values[name] for name in step.inputs)))
        values[step.output] = result
        widest = max(widest, bits_for_range(result.min(), result.max()) if result.size else 1)
        if isinstance(step.op, _lookup_op_type()):
            elements.append(int(np.prod(result.shape[1:], dtype=np.int64)))
            if step.op.lsbs_to_remove:  # rounding may carry into one more bit: concrete widens
                source = values[step.inputs[0]]
                widest = max(widest, bits_for_range(source.min(), source.max()) + 1)
    if len(elements) != len(module.lookups):
        raise RuntimeError(
            f"The integer model holds {len(elements)} table-lookup steps but reports "
            f"{len(module.lookups)} lookups: the cost model is out of step with quantization."
        )
    lookups = [
        LookupCount(report.ops, report.input_bits, report.rounded_bits, count)
        for report, count in zip(module.lookups, elements)
    ]
    return lookups, widest


def estimate(
    module: "QuantizedModule",
    inputset: Optional[np.ndarray] = None,
    batch_size: Optional[int] = None,
    table: Optional[CostTable] = None,
) -> dict[str, Any]:
    """The estimated cost of running ``module`` encrypted, without compiling it.

    Returns a dict with ``pbs_per_row``, ``pbs_per_row_by_bit_width`` ({width: count}),
    ``max_bit_width`` (widest integer of the circuit), ``lookup_bit_width`` (widest lookup
    input), ``estimated_s_per_row`` (in full batches of ``batch_size`` rows),
    ``estimated_s_per_call`` (one batch), ``estimated_key_bytes`` (serialized evaluation keys)
    and ``batch_size``.
    """
    table = table or CostTable.load()
    batch_size = int(batch_size or module.batch_size)
    qrows = _circuit_rows(module, inputset)
    lookups, widest = count_lookups(module, qrows)
    by_width: dict[int, int] = {}
    for lookup in lookups:
        for width, count in lookup.pbs_by_width().items():
            by_width[width] = by_width.get(width, 0) + count
    # the widest PBS fixes the parameters the inputs are encrypted with (0: no PBS at all)
    params = max(by_width, default=0)
    n_inputs = int(np.prod(qrows.shape[1:], dtype=np.int64))
    n_outputs = _outputs_per_row(module, qrows)
    server_row = sum(
        lookup.elements_per_row * table.cost(lookup.input_bits, "lookup_s")
        + sum(lookup.elements_per_row * table.cost(width, "round_s")
              for width in lookup.pbs_by_width() if width != lookup.input_bits)
        for lookup in lookups
    )
    client_row = n_inputs * table.cost(params, "input_s") + n_outputs * table.cost(params, "output_s")
    per_call = table.cost(params, "call_s") + batch_size * (server_row + client_row)
    return {
        "pbs_per_row": int(sum(by_width.values())),
        "pbs_per_row_by_bit_width": dict(sorted(by_width.items())),
        "max_bit_width": int(widest),
        "lookup_bit_width": int(params),
        "estimated_s_per_row": per_call / batch_size,
        "estimated_s_per_call": per_call,
        "estimated_key_bytes": int(table.cost(params, "key_bytes")),
        "batch_size": batch_size,
    }


def _outputs_per_row(module: "QuantizedModule", qrows: np.ndarray) -> int:
    outputs = module.quantized_forward(qrows[:1], fhe="disable")
    parts = outputs if isinstance(outputs, tuple) else (outputs,)
    return int(sum(np.prod(np.shape(part)[1:], dtype=np.int64) for part in parts))


def compiled_figures(module: "QuantizedModule") -> dict[str, Any]:
    """The compiled circuit's own figures (``compiled_`` + the statistics' keys), and the size
    of its evaluation keys once they exist."""
    figures = {f"compiled_{name}": value for name, value in module.statistics().items()}
    circuit = module.fhe_circuit
    stats = circuit.statistics.get("programmable_bootstrap_count_per_parameter", {})
    figures["compiled_pbs_per_circuit_by_parameter"] = {str(k): int(v) for k, v in stats.items()}
    keys = getattr(circuit, "keys", None)
    evaluation = getattr(keys, "evaluation", None) if keys is not None else None
    if evaluation is not None:
        figures["compiled_key_bytes"] = len(evaluation.serialize())
    return figures


def fhe_cost(
    module: "QuantizedModule",
    inputset: Optional[np.ndarray] = None,
    batch_size: Optional[int] = None,
) -> dict[str, Any]:
    """``estimate`` of ``module``, plus ``compiled_figures`` once it is compiled."""
    cost = estimate(module, inputset, batch_size)
    if module.fhe_circuit is not None:
        cost.update(compiled_figures(module))
    return cost


# -- calibration ---------------------------------------------------------------------------------
def _timed(function, *args, repeat: int = 3) -> tuple[float, Any]:
    """Best of ``repeat`` wall times (noise on a shared machine only adds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def _measure_circuit(function, high: int, elements: int, configuration) -> dict[str, float]:
    """Compile ``function`` on ``elements`` integers in ``[0, high)``, generate its keys, and
    time encryption, run and decryption separately."""
    from concrete import fhe

    rng = np.random.default_rng(0)
    inputset = [rng.integers(0, high, size=elements) for _ in range(16)]
    inputset.append(np.full(elements, high - 1))
    inputset.append(np.zeros(elements, dtype=np.int64))
    circuit = fhe.Compiler(function, {"x": "encrypted"}).compile(inputset, configuration)
    circuit.keygen()
    sample = rng.integers(0, high, size=elements)
    circuit.encrypt_run_decrypt(sample)  # the first call loads the circuit
    encrypt_s, encrypted = _timed(circuit.encrypt, sample)
    run_s, result = _timed(circuit.run, encrypted)
    decrypt_s, _ = _timed(circuit.decrypt, result)
    return {"encrypt_s": encrypt_s, "run_s": run_s, "decrypt_s": decrypt_s,
            "key_bytes": float(len(circuit.keys.evaluation.serialize()))}


def _lookup(width: int):
    from concrete import fhe

    table = fhe.LookupTable([(3 * i + 1) % 2 ** width for i in range(2 ** width)])
    return lambda x: table[x]


def _rounded_lookup(width: int):
    from concrete import fhe

    # a bijection of the rounded values (a constant table would be folded away)
    function = fhe.univariate(lambda v: (3 * (v >> 1) + 1) % 2 ** (width - 1))
    return lambda x: function(fhe.round_bit_pattern(x, lsbs_to_remove=1))


def calibrate(
    widths: tuple = CALIBRATED_WIDTHS,
    elements: int = 64,
    into: Optional[CostTable] = None,
    on_width=None,
    log=print,
) -> CostTable:
    """Measure the cost table on this machine (a few minutes: three circuits per width).

    Per width ``b``: one lookup of ``b`` bits on 1 and on ``elements`` values (call overhead,
    amortized lookup, encryption and decryption per element), and a lookup after rounding one
    bit away from ``b`` bits; plus a circuit without lookups (width 0). The entries measured
    replace those of ``into`` (default: an empty table); ``on_width(table)`` is called after
    each width, e.g. to save progress.
    """
    import os
    import platform

    from .compile import default_configuration

    machine = f"{platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    entries = dict(into.entries) if into is not None else {}
    with tempfile.TemporaryDirectory() as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)  # concrete's debug folder lands here, not in the user's folder
        try:
            configuration = default_configuration()
            for width in (0, *widths):
                entries[width] = _measure_width(width, elements, configuration)
                log(f"width {width}: " + ", ".join(f"{k} {v:.3g}" for k, v in entries[width].items()))
                if on_width is not None:
                    on_width(CostTable(entries, machine))
        finally:
            os.chdir(cwd)
    return CostTable(entries, machine)


def _measure_width(width: int, elements: int, configuration) -> dict[str, float]:
    """The cost entry of one lookup width (0: a circuit without lookups)."""
    if width == 0:
        lone = _measure_circuit(lambda x: x + 1, 2 ** 8, 1, configuration)
        wide = _measure_circuit(lambda x: x + 1, 2 ** 8, elements, configuration)
        rounded = None
    else:
        lone = _measure_circuit(_lookup(width), 2 ** width, 1, configuration)
        wide = _measure_circuit(_lookup(width), 2 ** width, elements, configuration)
        # below the top value, rounding never carries into one more bit
        rounded = (_measure_circuit(_rounded_lookup(width), 2 ** width - 1, elements,
                                    configuration) if width >= 2 else None)
    entry = {
        "call_s": lone["encrypt_s"] + lone["run_s"] + lone["decrypt_s"],
        "input_s": wide["encrypt_s"] / elements,
        "output_s": wide["decrypt_s"] / elements,
        "lookup_s": max(wide["run_s"] - lone["run_s"], 0.0) / (elements - 1) if width else 0.0,
        "key_bytes": wide["key_bytes"],
    }
    # a rounded lookup holds two PBS per element (the bit removed, then the lookup): each bit
    # rounded away is costed as their mean, measured inside one circuit (its parameters are
    # chosen for both together, as in a real rounded lookup)
    entry["round_s"] = rounded["run_s"] / elements / 2 if rounded is not None else entry["lookup_s"]
    return entry


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_fhe.fhe.cost",
        description="Show or re-measure the per-lookup cost table behind fhe_cost().",
    )
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the table on this machine and write it into the package")
    parser.add_argument("--widths", type=int, nargs="*", default=list(CALIBRATED_WIDTHS),
                        help="lookup widths to measure (default: 1 to 7; the rest of an existing table is kept)")
    parser.add_argument("--output", type=Path, default=COST_TABLE_PATH,
                        help="where to write the table (default: inside the package)")
    args = parser.parse_args(argv)
    if args.calibrate:
        # widths not measured again keep their entries: calibration can go width by width
        existing = CostTable.load(args.output) if args.output.exists() else None
        calibrate(tuple(args.widths), into=existing, on_width=lambda t: t.save(args.output))
        print(f"wrote {args.output}")
    table = CostTable.load(args.output)
    print(f"cost table ({table.machine}):")
    for width, costs in sorted(table.entries.items()):
        print(f"  {width} bits: " + ", ".join(f"{k} {v:.3g}" for k, v in costs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
