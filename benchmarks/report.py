"""Benchmark report: accuracy, PBS and encrypted seconds per row against n_bits, per family.

For each family (linear, tree, ensemble, network) and each bit width of its sweep, the report
fits the model, scores it in the clear (``fhe="disable"``, which gives the same integers as the
simulated and the encrypted circuit), asks ``fhe_cost()`` for the estimate made before
compiling, compiles, and for the timed widths generates keys and times an encrypted predict over
full batches (the protocol of ``benchmark.py``: one warm-up call, then wall time / rows).

Writes into ``--output`` (default ``docs/report/``): ``results.json`` (every figure),
``results.md`` and ``results.csv`` (the table), ``accuracy.png``, ``seconds_per_row.png`` and
``pbs_per_row.png``; prints the table and, per family's reference case, estimated against
measured seconds per encrypted row.

Run: python benchmarks/report.py [--quick] [--output DIR]
(--quick: fewer widths and one batch of encrypted rows, under 5 minutes on 2 idle cores.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.metrics import accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import Case, split  # noqa: E402  (the shared dataset protocol)

import sklearn_fhe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Family:
    """One estimator family's sweep: which bit width the x-axis varies and where to time."""

    name: str
    label: str
    case: Case
    make_fhe: Callable[[int], object]
    widths: list
    quick_widths: list
    timed: list
    quick_timed: list
    reference: int
    x_label: str = "n_bits"
    extra: dict = field(default_factory=dict)


def families() -> list[Family]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    def case(name, loader, make_float):
        return Case(name, loader, make_float, make_fhe=None)

    return [
        Family(
            "linear", "FHELogisticRegression, breast cancer",
            case("linear", load_breast_cancer, LogisticRegression),
            lambda n: sklearn_fhe.FHELogisticRegression(n_bits=n),
            widths=[2, 3, 4, 5, 6, 8], quick_widths=[2, 3, 4, 6, 8],
            timed=[2, 4, 8], quick_timed=[2, 8], reference=8,
        ),
        Family(
            "tree", "FHEDecisionTreeClassifier depth 5, breast cancer",
            case("tree", load_breast_cancer,
                 lambda: DecisionTreeClassifier(max_depth=5, random_state=0)),
            lambda n: sklearn_fhe.FHEDecisionTreeClassifier(max_depth=5, random_state=0, n_bits=n),
            widths=[2, 3, 4, 5, 6, 7], quick_widths=[2, 4, 6],
            timed=[2, 4, 6], quick_timed=[6], reference=6,
        ),
        Family(
            "ensemble", "FHEXGBClassifier 10 trees depth 3, breast cancer",
            case("ensemble", load_breast_cancer,
                 lambda: XGBClassifier(n_estimators=10, max_depth=3)),
            lambda n: sklearn_fhe.FHEXGBClassifier(n_estimators=10, max_depth=3, n_bits=n),
            widths=[2, 3, 4, 5, 6, 7], quick_widths=[2, 4, 6],
            timed=[2, 4, 6], quick_timed=[6], reference=6,
        ),
        Family(
            "network", "FHENeuralNetClassifier (default module), digits",
            case("network", load_digits,
                 lambda: MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=0)),
            lambda n: sklearn_fhe.FHENeuralNetClassifier(random_state=0, module__n_accum_bits=n),
            widths=[3, 4, 5, 6, 7], quick_widths=[4, 5],
            timed=[4, 5, 6], quick_timed=[5], reference=5,
            x_label="module__n_accum_bits (lookup input bits)",
        ),
    ]


def encrypted_seconds_per_row(model, X: np.ndarray, rows: int) -> tuple[float, np.ndarray]:
    """Wall time of an encrypted predict over ``rows`` rows / rows, after one warm-up call
    (as benchmark.py measures)."""
    model.predict(X[:1], fhe="execute")  # the runtime's first call loads the circuit
    start = time.perf_counter()
    predicted = model.predict(X[:rows], fhe="execute")
    return (time.perf_counter() - start) / rows, predicted


def run_point(family: Family, width: int, data, timed: bool, rows: int) -> dict:
    """Fit, score, estimate, compile and (if ``timed``) time one configuration."""
    X_train, X_test, y_train, y_test = data
    model = family.make_fhe(width).fit(X_train, y_train)
    disable = model.predict(X_test)
    estimate = model.fhe_cost()
    start = time.perf_counter()
    model.compile()
    point = {
        "family": family.name, "n_bits": width,
        "accuracy": float(accuracy_score(y_test, disable)),
        "compile_s": time.perf_counter() - start,
    }
    if timed:
        start = time.perf_counter()
        model.quantized_module_.keygen()
        point["keygen_s"] = time.perf_counter() - start
        rows = min(rows, len(X_test))
        point["measured_s_per_row"], predicted = encrypted_seconds_per_row(model, X_test, rows)
        point["execute_equals_disable"] = bool(np.array_equal(predicted, disable[:rows]))
        point["encrypted_rows"] = rows
    cost = model.fhe_cost()  # now with the compiled circuit's figures beside the estimates
    point.update({k: v for k, v in cost.items() if not isinstance(v, dict)})
    point["pbs_per_row_by_bit_width"] = {str(k): v for k, v in estimate["pbs_per_row_by_bit_width"].items()}
    return point


def float_accuracy(family: Family, data) -> float:
    X_train, X_test, y_train, y_test = data
    return float(accuracy_score(y_test, family.case.make_float().fit(X_train, y_train).predict(X_test)))


# -- outputs -------------------------------------------------------------------------------------
COLUMNS = [
    ("family", "family", "{}"), ("n_bits", "n_bits", "{}"), ("accuracy", "accuracy", "{:.3f}"),
    ("float", "float", "{:.3f}"), ("pbs_per_row", "PBS/row", "{:.0f}"),
    ("compiled_pbs_per_row", "compiled PBS/row", "{:.0f}"),
    ("max_bit_width", "max bits (est.)", "{}"), ("compiled_max_bit_width", "max bits", "{}"),
    ("estimated_s_per_row", "est. s/row", "{:.4f}"), ("measured_s_per_row", "s/row", "{:.4f}"),
    ("estimated_key_bytes", "est. key MB", "{:.0f}"), ("compiled_key_bytes", "key MB", "{:.0f}"),
]


def _cell(point: dict, key: str, fmt: str) -> str:
    value = point.get(key)
    if value is None:
        return ""
    if key.endswith("key_bytes"):
        value = value / 1e6
    return fmt.format(value)


def write_table(points: list[dict], output: Path) -> str:
    header = [title for _, title, _ in COLUMNS]
    rows = [[_cell(p, key, fmt) for key, _, fmt in COLUMNS] for p in points]
    markdown = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(row) + " |" for row in rows]
    )
    (output / "results.md").write_text(markdown + "\n")
    csv = "\n".join(",".join(f'"{c}"' for c in row) for row in [header] + rows)
    (output / "results.csv").write_text(csv + "\n")
    return markdown


def plot(points: list[dict], fams: list[Family], floats: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def by_family(name):
        return sorted((p for p in points if p["family"] == name), key=lambda p: p["n_bits"])

    fig, axes = plt.subplots(1, len(fams), figsize=(4 * len(fams), 3.8), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        series = by_family(fam.name)
        ax.plot([p["n_bits"] for p in series], [p["accuracy"] for p in series], "o-",
                label="sklearn_fhe (clear = simulated = encrypted)")
        ax.axhline(floats[fam.name], color="gray", linestyle="--", label="float model")
        ax.set_title(fam.label, fontsize=9)
        ax.set_xlabel(fam.x_label, fontsize=8)
        ax.set_ylabel("test accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(output / "accuracy.png", dpi=110)
    plt.close(fig)

    for name, ylabel, est_key, measured_key, log in [
        ("seconds_per_row", "seconds per encrypted row", "estimated_s_per_row",
         "measured_s_per_row", True),
        ("pbs_per_row", "PBS (table lookups) per row", "pbs_per_row", "compiled_pbs_per_row", False),
    ]:
        fig, ax = plt.subplots(figsize=(9, 4.2))
        for index, fam in enumerate(fams):
            color = f"C{index}"
            series = by_family(fam.name)
            ax.plot([p["n_bits"] for p in series], [p[est_key] for p in series], "--",
                    color=color, label=f"{fam.name}: estimated before compiling")
            measured = [p for p in series if p.get(measured_key) is not None]
            ax.plot([p["n_bits"] for p in measured], [p[measured_key] for p in measured], "o",
                    color=color, label=f"{fam.name}: " + ("measured" if log else "compiled"))
        ax.set_xlabel("n_bits (network: accumulator bits)")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
        batch = points[0].get("batch_size", "")
        ax.set_title(f"{ylabel} (full batches of {batch} rows)" if log else ylabel, fontsize=10)
        fig.tight_layout()
        fig.savefig(output / f"{name}.png", dpi=110)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer widths, one encrypted batch per timed point (< 5 minutes)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "report")
    parser.add_argument("--families", nargs="*", help="only these families (linear, tree...)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    rows = 16 if args.quick else 64
    started = time.perf_counter()
    fams = [f for f in families() if not args.families or f.name in args.families]
    points, floats = [], {}
    for fam in fams:
        data = split(fam.case)
        floats[fam.name] = float_accuracy(fam, data)
        widths = fam.quick_widths if args.quick else fam.widths
        timed = fam.quick_timed if args.quick else fam.timed
        for width in widths:
            point = run_point(fam, width, data, width in timed or width == fam.reference, rows)
            point["float"] = floats[fam.name]
            points.append(point)
            print(f"{fam.name} n_bits={width}: accuracy {point['accuracy']:.3f} "
                  f"(float {point['float']:.3f}), PBS/row {point['pbs_per_row']} "
                  f"(compiled {point['compiled_pbs_per_row']:.0f}), est. "
                  f"{point['estimated_s_per_row']:.4f} s/row"
                  + (f", measured {point['measured_s_per_row']:.4f} s/row"
                     if "measured_s_per_row" in point else ""), flush=True)
    load = os.getloadavg()
    summary = {
        "quick": args.quick, "seconds": time.perf_counter() - started,
        "load_average": load, "cpu_count": os.cpu_count(), "points": points, "float": floats,
    }
    (args.output / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n" + write_table(points, args.output))
    plot(points, fams, floats, args.output)
    print("\nEstimated vs measured seconds per encrypted row (reference cases):")
    for fam in fams:
        ref = next(p for p in points if p["family"] == fam.name and p["n_bits"] == fam.reference)
        ratio = ref["estimated_s_per_row"] / ref["measured_s_per_row"]
        verdict = "within 2x" if 0.5 <= ratio <= 2 else "OFF BY MORE THAN 2x"
        print(f"  {fam.label}, n_bits={fam.reference}: estimated {ref['estimated_s_per_row']:.4f}"
              f", measured {ref['measured_s_per_row']:.4f} s/row (ratio {ratio:.2f}, {verdict})")
    print(f"\nwrote {args.output} in {summary['seconds']:.0f} s (load average "
          f"{load[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
