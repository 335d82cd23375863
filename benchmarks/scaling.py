"""Encrypted predict fanned out: rows per second with one process, n_jobs=2 local processes and a
Dask cluster of 2 worker processes (on 127.0.0.1), and the bytes that cross to the workers.

For each model: fit, compile, generate keys, then time ``predict_proba(X, fhe="execute")`` on
``--rows`` rows, sequentially, with ``sklearn_fhe.config_context(n_jobs=2)``, and inside
``joblib.parallel_config(backend="dask")``. Prints rows/s, the bytes per row (encrypted inputs
to the workers and results back) and the parts the workers fetched (server part + evaluation
keys, once per worker, kept across requests), and checks the three outputs are identical.
The worker pools are started before the timing (a loky warm-up task; the cluster is started
first), as on a long-running service.

Run: python benchmarks/scaling.py [rf nn] [--rows 64]
(``SKLEARN_FHE_KEY_CACHE=dir`` caches keys between runs; insecure, for benchmarks only.)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from joblib import Parallel, delayed, parallel_config
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

import sklearn_fhe

MODELS = {
    "rf": ("RandomForest 10x4 n_bits=6, cancer", load_breast_cancer,
           lambda: sklearn_fhe.FHERandomForestClassifier(n_estimators=10, max_depth=4,
                                                         random_state=0, n_bits=6)),
    "nn": ("NeuralNetClassifier defaults, digits", load_digits,
           lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)),
}


def timed_predict(estimator, rows) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = estimator.predict_proba(rows, fhe="execute")
    return out, time.perf_counter() - start


def run(name: str, n_rows: int, dask_client) -> None:
    title, loader, make = MODELS[name]
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    estimator = make().fit(X, y)
    estimator.compile()
    estimator.quantized_module_.keygen()
    rows = X[-n_rows:]
    print(f"\n{title}: {n_rows} rows, {len(estimator.fhe_circuit.plan(n_rows))} circuit calls")
    reference, seconds = timed_predict(estimator, rows)
    print(f"  one process      {n_rows / seconds:7.2f} rows/s  ({seconds:.1f} s)")
    settings = [("n_jobs=2", lambda: sklearn_fhe.config_context(n_jobs=2)),
                ("2 Dask workers", lambda: parallel_config(backend="dask"))]
    for label, context in settings:
        with context():
            out, seconds = timed_predict(estimator, rows)
        report = estimator.fhe_circuit.last_fan_out
        assert np.array_equal(out, reference), f"{label}: outputs differ from sequential"
        per_row = (report.input_bytes + report.output_bytes) / n_rows
        print(f"  {label:16s} {n_rows / seconds:7.2f} rows/s  ({seconds:.1f} s); "
              f"{len(report.workers)} workers, {report.tasks} tasks; per row "
              f"{report.input_bytes / n_rows / 1e3:.1f} KB up + "
              f"{report.output_bytes / n_rows / 1e3:.1f} KB back = {per_row / 1e3:.1f} KB; "
              f"parts fetched by workers {report.fetched_bytes / 1e6:.1f} MB, once per worker "
              f"(server {len(estimator.fhe_circuit._bundle[1].server) / 1e6:.2f} MB + keys)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))  # start the local worker processes
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        for name in args.models:
            run(name, args.rows, client)


if __name__ == "__main__":
    main()
