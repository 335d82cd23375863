"""The HTTP service under load, on this machine only (127.0.0.1).

For each case: fit, save, start ``sklearn-fhe serve`` in a child process on 127.0.0.1 and a free
port, create N RemoteClients (each its own keys, uploaded once), send one warm-up request (the
server loads its circuit then; timed apart), then let the N clients send R
one-row requests each, concurrently (threads; each request is encrypt → POST /predict →
decrypt). Meanwhile another process asks ``GET /health`` every 50 ms. Prints requests/s, p50/p95
request latency, the server's peak RSS, how many answers decrypted to the estimator's own
``predict(X, fhe="disable")``, and /health's p50/p95/max latency, which must stay under 100 ms
at p95. Bounded: N × R requests per case and a deadline (``--deadline``) after which clients
stop sending. Exits 1 if an answer was wrong, a request failed, or /health's p95 reached 100 ms.

Run: python benchmarks/serving_load.py [lr rf] [--deadline 900]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HEALTH_P95_LIMIT_S = 0.1


@dataclass
class LoadCase:
    name: str
    make: Callable
    clients: int
    requests: int


def cases() -> dict:
    import sklearn_fhe

    return {
        "lr": LoadCase("LogisticRegression n_bits=8, cancer",
                       lambda: sklearn_fhe.FHELogisticRegression(n_bits=8), 8, 20),
        "rf": LoadCase("RandomForest 3 trees depth 3, n_bits=6, cancer",
                       lambda: sklearn_fhe.FHERandomForestClassifier(
                           n_estimators=3, max_depth=3, random_state=0, n_bits=6), 4, 4),
    }


# -- /health prober, in its own process (the clients' threads must not slow its timing) --------
def probe(url: str, interval: float) -> None:
    """GET /health every ``interval`` s until stdin closes; print the latencies (JSON)."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies = []
    while not stop.is_set():
        start = time.perf_counter()
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            response.read()
        latencies.append(time.perf_counter() - start)
        stop.wait(interval)
    print(json.dumps(latencies))


class Prober:
    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--probe", url, "--interval", str(interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self) -> list:
        out, _ = self.process.communicate(input="", timeout=60)
        return json.loads(out)


# -- the load -----------------------------------------------------------------------------------
def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (Linux: VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_client(remote, rows: np.ndarray, expected: np.ndarray, deadline: float) -> list:
    """One client's requests, one row each → [(seconds, correct)]."""
    results = []
    for row, truth in zip(rows, expected):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        answer = remote.predict(row[None, :])
        results.append((time.perf_counter() - start, bool(np.array_equal(answer, truth[None]))))
    return results


def measure(key: str, case: LoadCase, deadline_s: float) -> dict:
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from sklearn_fhe.deployment import RemoteClient, save
    from sklearn_fhe.deployment.local_service import LocalService

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = case.make().fit(X[:400], y[:400])
    rows = X[400:400 + case.clients * case.requests].reshape(case.clients, case.requests, -1)
    expected = model.predict(rows.reshape(-1, X.shape[1]), fhe="disable").reshape(
        case.clients, case.requests)
    with tempfile.TemporaryDirectory() as directory:
        saved = save(model, Path(directory) / "model")
        with LocalService(saved, ["--max-key-sets", str(case.clients)]) as service:
            start = time.perf_counter()
            remotes = [RemoteClient(service.url) for _ in range(case.clients)]
            setup_s = time.perf_counter() - start
            start = time.perf_counter()  # the server loads its circuit at the first request
            remotes[0].predict(X[:1])
            first_s = time.perf_counter() - start
            prober = Prober(service.url)
            deadline = time.monotonic() + deadline_s
            start = time.perf_counter()
            with ThreadPoolExecutor(case.clients) as pool:
                done = list(pool.map(run_client, remotes, rows, expected,
                                     [deadline] * case.clients))
            wall_s = time.perf_counter() - start
            health = np.array(prober.stop())
            rss = peak_rss_mb(service.process.pid)
    latencies = np.array([s for client in done for s, _ in client])
    correct = sum(ok for client in done for _, ok in client)
    return {
        "case": key, "name": case.name, "clients": case.clients,
        "requests_per_client": case.requests, "requests": int(latencies.size),
        "requests_planned": case.clients * case.requests, "correct": int(correct),
        "requests_per_s": latencies.size / wall_s, "wall_s": wall_s,
        "p50_s": float(np.percentile(latencies, 50)), "p95_s": float(np.percentile(latencies, 95)),
        "server_peak_rss_mb": rss, "clients_setup_s": setup_s, "first_request_s": first_s,
        "health_probes": int(health.size), "health_p50_s": float(np.percentile(health, 50)),
        "health_p95_s": float(np.percentile(health, 95)), "health_max_s": float(health.max()),
    }


def verdict(row: dict) -> list:
    """What went wrong in a case (empty when all is well)."""
    problems = []
    if row["requests"] < row["requests_planned"]:
        problems.append(f"only {row['requests']} of {row['requests_planned']} requests before "
                        "the deadline")
    if row["correct"] < row["requests"]:
        problems.append(f"{row['requests'] - row['correct']} answers differ from the estimator")
    if row["health_p95_s"] >= HEALTH_P95_LIMIT_S:
        problems.append(f"/health p95 {row['health_p95_s'] * 1e3:.0f} ms >= 100 ms")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", default=["lr", "rf"])
    parser.add_argument("--deadline", type=float, default=900.0,
                        help="seconds of load per case after which clients stop sending")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=0.05, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.interval)
        return 0
    all_cases, rows = cases(), []
    for key in args.cases:
        rows.append(measure(key, all_cases[key], args.deadline))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| case | clients × requests | requests/s | p50 | p95 | server peak RSS | correct | "
          "/health p50 / p95 / max (probes) |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for row in rows:
        print(f"| {row['name']} | {row['clients']} × {row['requests_per_client']} | "
              f"{row['requests_per_s']:.2f} | {row['p50_s']:.3f} s | {row['p95_s']:.3f} s | "
              f"{row['server_peak_rss_mb']:.0f} MB | {row['correct']}/{row['requests_planned']} | "
              f"{row['health_p50_s'] * 1e3:.1f} / {row['health_p95_s'] * 1e3:.1f} / "
              f"{row['health_max_s'] * 1e3:.1f} ms ({row['health_probes']}) |")
    for row in rows:
        problems = verdict(row)
        failed |= bool(problems)
        print(f"{row['case']}: " + ("; ".join(problems) if problems else
                                    "every answer decrypted correctly, /health p95 < 100 ms"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
