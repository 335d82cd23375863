"""Peak memory of large predictions: 10,000 rows simulated and 256 rows encrypted.

Each measurement runs in a fresh child process: the model is fitted and compiled, keys are
made, then ``predict`` runs while a thread samples the process's resident memory (RSS) every
5 ms. Printed per model and mode: RSS before the call, the peak during it, and the growth,
next to the same figures for one batch of 16 rows. Rows go through the circuit batch by
batch (encrypt, run, decrypt, keep only the decrypted integers), so the growth must not scale
with the number of rows: the 16-row and the large call should grow alike.

Usage::

    python benchmarks/predict_memory.py                 # 10000 simulated, 256 encrypted rows
    python benchmarks/predict_memory.py --simulate-rows 2000 --execute-rows 64 --models linear

Set ``SKLEARN_FHE_KEY_CACHE`` to a directory to reuse keys between runs (insecure, for
benchmarks only).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time

import numpy as np
import psutil

N_FEATURES = 10
SMALL_ROWS = 16


def make_model(name: str):
    import sklearn_fhe

    if name == "linear":
        return sklearn_fhe.FHELogisticRegression(n_bits=8)
    if name == "forest":
        return sklearn_fhe.FHERandomForestClassifier(n_estimators=10, max_depth=4,
                                                     random_state=0, n_bits=6)
    return sklearn_fhe.FHENeuralNetClassifier(max_epochs=10, random_state=0)  # default network


def data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    return X, y


class PeakRSS:
    """Samples this process's RSS in a thread while the ``with`` block runs."""

    def __init__(self, interval: float = 0.005) -> None:
        self.process, self.interval = psutil.Process(), interval
        self.before = self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.before = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(name: str, mode: str, n_rows: int, queue) -> None:
    """In a child: fit, compile, keygen, warm up, then the measured predicts."""
    model = make_model(name)
    X, y = data(2000)
    model.fit(X, y).compile()
    model.quantized_module_.fhe_circuit.keygen()
    X_test, _ = data(n_rows, seed=1)
    model.predict(X_test[:SMALL_ROWS], fhe=mode)  # warm-up: runtimes and buffers allocated
    figures = {}
    for rows in (SMALL_ROWS, n_rows):
        start = time.perf_counter()
        with PeakRSS() as rss:
            model.predict(X_test[:rows], fhe=mode)
        figures[rows] = (rss.before, rss.peak, time.perf_counter() - start)
    queue.put(figures)


def run(name: str, mode: str, n_rows: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=measure, args=(name, mode, n_rows, queue))
    child.start()
    figures = queue.get()
    child.join()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate-rows", type=int, default=10_000)
    parser.add_argument("--execute-rows", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=["linear", "forest", "network"])
    args = parser.parse_args()
    mib = 2**20
    print(f"load average: {os.getloadavg()}")
    print(f"{'model':8} {'mode':9} {'rows':>6} {'RSS before':>11} {'peak':>9} {'growth':>8} "
          f"{'time':>8}")
    for name in args.models:
        for mode, n_rows in (("simulate", args.simulate_rows), ("execute", args.execute_rows)):
            for rows, (before, peak, seconds) in run(name, mode, n_rows).items():
                print(f"{name:8} {mode:9} {rows:6d} {before / mib:9.0f} MiB {peak / mib:5.0f} "
                      f"MiB {(peak - before) / mib:4.0f} MiB {seconds:7.1f}s", flush=True)


if __name__ == "__main__":
    main()
