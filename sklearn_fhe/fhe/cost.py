"""What an encrypted prediction will cost, known before compiling.

The quantized model already says which table lookups (programmable bootstraps, PBS) its circuit
will hold and how wide they are (``QuantizedModule.lookups``); one clear run on a sample row says
how many elements each produces per row. Times and key sizes come from a small table of
per-lookup costs measured on this machine (``cost_table.json`` beside this file), rebuilt by::

    python -m sklearn_fhe.fhe.cost --calibrate

The time model follows what concrete's runtime does with a batch of rows:

- the client encrypts every input element and decrypts the outputs; a ciphertext's size, hence
  its cost, grows with the widest integer of the circuit (traced by concrete, not compiled);
- the server evaluates each lookup op on the whole ``(batch, ...)`` tensor at once, its elements
  spread over the machine's cores: a lookup element costs the amortized ``lookup_s`` of its width;
- a rounded lookup (``rounding_threshold_bits``) first removes its low bits one at a time, one
  small PBS per removed bit (``round_s``, measured in front of a lookup of the same width: the
  lookup that follows a rounding keeps the parameters of its own, narrower width);
- every circuit call pays a fixed overhead (``call_s``): what a one-row request feels most;
- a circuit without lookups (a linear model) is all leveled multiply-adds on wide ciphertexts:
  each input-output term of its dot product costs ``leveled_s`` (measured on such a circuit).
  Behind lookups the leveled work runs on narrower ciphertexts and is not counted apart.
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

from .arrays import circuit_array

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

    @property
    def pbs_per_row(self) -> int:
        """The lookup itself and one PBS per rounded-away bit, for each element."""
        return self.elements_per_row * (1 + self.rounded_bits)


class CostTable:
    """Measured costs by lookup width (0 stands for a circuit without lookups).

    Each width maps to ``call_s`` (fixed cost of one circuit call), ``input_s`` (encrypting and
    sending one input element), ``output_s`` (decrypting one output element), ``lookup_s`` (one
    lookup element inside a wide tensor, amortized over the cores), ``round_s`` (removing one
    bit before a lookup of this width), ``key_bytes`` (serialized evaluation keys of a circuit
    whose widest lookup has this width) and ``rounded_key_bytes`` (the same when that lookup
    reads a rounded integer). Width 0 adds ``leveled_s``: one multiply-add term of a dot product
    between wide ciphertexts and clear weights.
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
        """``name``'s cost at ``width`` bits. Past the widest width measured, a lookup's time
        doubles per bit (its polynomial size grows with its width); the other costs (ciphertext
        and key sizes grow slowly) stay those of the widest width."""
        if width in self.entries:
            return self.entries[width][name]
        widest = max(self.entries)
        if width > widest:
            growth = 2.0 ** (width - widest) if name in ("lookup_s", "round_s") else 1.0
            return self.entries[widest][name] * growth
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
    circuit = module.fhe_circuit
    shape = circuit.function(circuit.batch_size).graph.ordered_inputs()[0].output.shape
    return np.zeros((1,) + tuple(shape[1:]), dtype=np.int64)


def count_lookups(module: "QuantizedModule", qrows: np.ndarray) -> list[LookupCount]:
    """The lookups of ``module`` with their elements per row, from one clear run of the integer
    model on ``qrows``."""
    values = {"input_0": np.asarray(qrows[:1], dtype=np.int64)}
    elements = []
    for step in module.steps:
        result = np.asarray(step.op(*(values[name] for name in step.inputs)))
        values[step.output] = result
        if isinstance(step.op, _lookup_op_type()):
            elements.append(int(np.prod(result.shape[1:], dtype=np.int64)))
    if len(elements) != len(module.lookups):
        raise RuntimeError(
            f"The integer model holds {len(elements)} table-lookup steps but reports "
            f"{len(module.lookups)} lookups: the cost model is out of step with quantization."
        )
    return [
        LookupCount(report.ops, report.input_bits, report.rounded_bits, count)
        for report, count in zip(module.lookups, elements)
    ]


def widest_integer(module: "QuantizedModule", qrows: np.ndarray) -> int:
    """The circuit's widest integer on ``qrows``, as compiling would find it: concrete traces
    the integer model (no compilation, no keys) and measures every intermediate value, rounding
    carries included."""
    from concrete import fhe

    graph = fhe.Compiler(module._forward, {"q": "encrypted"}).trace([circuit_array(qrows)])
    return int(graph.maximum_integer_bit_width())


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
    lookups = count_lookups(module, qrows)
    widest = widest_integer(module, qrows)
    by_width: dict[int, int] = {}
    for lookup in lookups:
        by_width[lookup.input_bits] = by_width.get(lookup.input_bits, 0) + lookup.pbs_per_row
    # the widest lookup fixes the evaluation keys; the widest integer, the size of the input
    # and output ciphertexts (a calibration circuit's widest integer is its lookup's input);
    # without lookups, the width-0 entry was measured on a wide leveled circuit
    params = max(by_width, default=0)
    ciphertexts = widest if by_width else 0
    rounded = any(lookup.rounded_bits for lookup in lookups if lookup.input_bits == params)
    n_inputs = int(np.prod(qrows.shape[1:], dtype=np.int64))
    n_outputs = _outputs_per_row(module, qrows)
    server_row = sum(
        lookup.elements_per_row * (table.cost(lookup.input_bits, "lookup_s")
                                   + lookup.rounded_bits * table.cost(lookup.input_bits, "round_s"))
        for lookup in lookups
    )
    if not lookups:  # a dot product of every input with every output, on wide ciphertexts
        server_row += n_inputs * n_outputs * table.cost(0, "leveled_s")
    client_row = (n_inputs * table.cost(ciphertexts, "input_s")
                  + n_outputs * table.cost(ciphertexts, "output_s"))
    per_call = table.cost(params, "call_s") + batch_size * (server_row + client_row)
    key_bytes = table.cost(params, "rounded_key_bytes" if rounded else "key_bytes")
    return {
        "pbs_per_row": int(sum(by_width.values())),
        "pbs_per_row_by_bit_width": dict(sorted(by_width.items())),
        "max_bit_width": int(widest),
        "lookup_bit_width": int(params),
        "estimated_s_per_row": per_call / batch_size,
        "estimated_s_per_call": per_call,
        "estimated_key_bytes": int(key_bytes),
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
    keys = module.fhe_circuit.module.keys
    if keys.are_generated:  # reading keys.evaluation would generate them
        figures["compiled_key_bytes"] = len(keys.evaluation.serialize())
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


def _dot_product(elements: int):
    # clear 5-bit weights on 8-bit inputs: a 19-bit accumulator, as in a linear model
    weights = np.random.default_rng(1).integers(-15, 16, size=elements)
    return lambda x: np.dot(x, weights)


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
    amortized lookup, encryption and decryption per element), and a ``b``-bit lookup after
    rounding one bit away from ``b + 1`` bits; plus a circuit without lookups (width 0, 8-bit
    inputs into a 19-bit dot product, which also gives ``leveled_s``). The entries measured replace those of ``into`` (default: an
    empty table); ``on_width(table)`` is called after each width, e.g. to save progress.
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
    if width == 0:  # 8-bit inputs into a 19-bit dot product, as in a linear model
        lone = _measure_circuit(_dot_product(1), 2 ** 8, 1, configuration)
        wide = _measure_circuit(_dot_product(elements), 2 ** 8, elements, configuration)
        return {**_client_costs(lone, wide, elements, outputs=1), "lookup_s": 0.0,
                "round_s": 0.0, "rounded_key_bytes": wide["key_bytes"],
                "leveled_s": max(wide["run_s"] - lone["run_s"], 0.0) / (elements - 1)}
    lone = _measure_circuit(_lookup(width), 2 ** width, 1, configuration)
    wide = _measure_circuit(_lookup(width), 2 ** width, elements, configuration)
    # a lookup of ``width`` bits after rounding one bit away (below the top value, rounding
    # never carries into one more bit)
    rounded = _measure_circuit(_rounded_lookup(width + 1), 2 ** (width + 1) - 1, elements,
                               configuration)
    lookup_s = max(wide["run_s"] - lone["run_s"], 0.0) / (elements - 1)
    return {
        **_client_costs(lone, wide, elements),
        "lookup_s": lookup_s,
        # what rounding one bit away adds to the lookup (0 if the rounded circuit's parameters
        # make the pair cheaper than the lookup alone)
        "round_s": max(rounded["run_s"] / elements - lookup_s, 0.0),
        "rounded_key_bytes": rounded["key_bytes"],
    }


def _client_costs(lone: dict, wide: dict, elements: int,
                  outputs: Optional[int] = None) -> dict[str, float]:
    return {
        "call_s": lone["encrypt_s"] + lone["run_s"] + lone["decrypt_s"],
        "input_s": wide["encrypt_s"] / elements,
        "output_s": wide["decrypt_s"] / (outputs or elements),
        "key_bytes": wide["key_bytes"],
    }


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
