"""fhe_cost()'s estimates against what compiling, key generation and encrypted runs measure.

For each model of the issue's list (logistic regression n_bits=8, a depth-5 decision tree, a
10x4 random forest, a 10x3 XGBoost, the default digits network), in a child process of its own
so that peak memories do not mix: the estimate (seconds per row in full batches and for a
one-row request, key bytes, key-generation seconds, peak memory), then the measured figures,
and their ratios. As a user meets it: the machine profile is the first-use quick calibration,
made here in a fresh cache directory (timed) unless ``--keep-cache``.

Run: python benchmarks/cost_accuracy.py [--models lr,dt,rf,xgb,nn] [--keep-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CASES = {
    "lr": ("cancer", "FHELogisticRegression", {"n_bits": 8}),
    "dt": ("cancer", "FHEDecisionTreeClassifier", {"max_depth": 5, "n_bits": 6}),
    "rf": ("cancer", "FHERandomForestClassifier",
           {"n_estimators": 10, "max_depth": 4, "n_bits": 6, "random_state": 0}),
    "xgb": ("cancer", "FHEXGBClassifier", {"n_estimators": 10, "max_depth": 3, "n_bits": 6}),
    "nn": ("digits", "FHENeuralNetClassifier", {}),
}
#: Rows of the measured request (full batches of the default batch size).
ROWS = 32


def _status_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Start the peak RSS afresh (Linux: writing 5 to clear_refs), so fit's peak is not
    counted as compiling's."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def measure(case: str) -> dict:
    """Runs in the child: fit, estimate, then compile, keygen and run, measuring each."""
    import numpy as np
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    import sklearn_fhe

    name, estimator, params = CASES[case]
    loader = {"cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0,
                                                   stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train = scaler.transform(X_train).astype(np.float32)
    X_test = np.tile(scaler.transform(X_test).astype(np.float32), (2, 1))[:ROWS]
    model = getattr(sklearn_fhe, estimator)(**params).fit(X_train, y_train)
    start = time.perf_counter()
    cost = model.fhe_cost()
    cost_s = time.perf_counter() - start
    _reset_peak()
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    model.compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    model.fhe_circuit.keygen()
    keygen_s = time.perf_counter() - start
    model.predict(X_test[:1], fhe="execute")  # loads the circuit
    start = time.perf_counter()
    model.predict(X_test, fhe="execute")
    s_per_row = (time.perf_counter() - start) / ROWS
    start = time.perf_counter()
    model.predict(X_test[:1], fhe="execute")
    one_row_s = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    key_bytes = len(model.fhe_circuit.module.keys.evaluation.serialize())
    return {
        "case": case, "fhe_cost_s": round(cost_s, 3),
        "pbs_per_row": cost["pbs_per_row"],
        "est_s_per_row": cost["estimated_s_per_row"], "s_per_row": s_per_row,
        "est_1_row_s": cost["estimated_s_one_row"], "one_row_s": one_row_s,
        "est_key_bytes": cost["estimated_key_bytes"], "key_bytes": key_bytes,
        "est_keygen_s": cost["estimated_keygen_s"], "keygen_s": keygen_s,
        "est_peak_bytes": cost["estimated_peak_memory_bytes"],
        "peak_bytes": peak - before, "compile_s": compile_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CASES))
    parser.add_argument("--keep-cache", action="store_true",
                        help="use the profile already cached instead of a fresh calibration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if not args.keep_cache:
        os.environ["SKLEARN_FHE_CACHE_DIR"] = tempfile.mkdtemp(prefix="sklearn_fhe_cache_")
        from sklearn_fhe.fhe.machine_profile import current_profile

        start = time.perf_counter()
        profile = current_profile(calibrate_if_missing=True)
        print(f"first-use calibration: {time.perf_counter() - start:.1f} s ({profile.machine})")
    print(f"{'model':5} {'PBS':>5} {'s/row est/meas':>20} {'ratio':>6} {'1-row s est/meas':>18}"
          f" {'keys MB est/meas':>18} {'ratio':>6} {'keygen s est/meas':>18}"
          f" {'ratio':>6} {'peak MB est/meas':>18} {'ratio':>6} {'fhe_cost s':>10}")
    for case in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"{case:5} {r['pbs_per_row']:5d} {r['est_s_per_row']:9.3f} /{r['s_per_row']:8.3f} "
              f"{r['est_s_per_row'] / r['s_per_row']:6.2f} {r['est_1_row_s']:8.3f} /{r['one_row_s']:8.3f} "
              f"{r['est_key_bytes'] / 1e6:8.1f} /{r['key_bytes'] / 1e6:8.1f} "
              f"{r['est_key_bytes'] / r['key_bytes']:6.2f} {r['est_keygen_s']:8.2f} /{r['keygen_s']:8.2f} "
              f"{r['est_keygen_s'] / max(r['keygen_s'], 1e-9):6.2f} "
              f"{r['est_peak_bytes'] / 1e6:8.0f} /{r['peak_bytes'] / 1e6:8.0f} "
              f"{r['est_peak_bytes'] / r['peak_bytes']:6.2f} {r['fhe_cost_s']:10.3f}", flush=True)


if __name__ == "__main__":
    main()
