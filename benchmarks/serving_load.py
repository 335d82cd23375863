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

Past one process (``scale``): the forest served four ways on one key-store directory, each
with C concurrent clients sending R one-row requests — 1 service process; 2 service processes
(each request to the next process, as a round-robin load balancer would: keys uploaded to the
first are used through the second); one service on a Dask cluster of 1 worker; and of 2 workers.
Prints requests/s, p50/p95, correct answers / total, peak memory (services and workers, summed),
key uploads, the bytes sent to the workers by the first and by the second request (counted by
the service, ``/metrics``), and what the figures imply for N machines.

Run: python benchmarks/serving_load.py [lr rf scale] [--deadline 900]
"""

from __future__ import annotations

import argparse
import json
import os
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


# -- past one process: service processes and Dask workers ---------------------------------------
@dataclass
class Topology:
    label: str
    processes: int  # service processes on one key-store directory
    dask_workers: int  # 0: the circuit runs in the service process


TOPOLOGIES = [Topology("1 service process", 1, 0), Topology("2 service processes", 2, 0),
              Topology("1 Dask worker", 1, 1), Topology("2 Dask workers", 1, 2)]
SCALE_CLIENTS, SCALE_REQUESTS = 4, 6
FIRST_ROWS = 20


def metric_sums(services) -> dict:
    """Counters of the services' /metrics summed over processes: (name, label value) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict = {}
    for service in services:
        text = service.get("/metrics").decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                label = sample.labels.get("what") or sample.labels.get("endpoint") or ""
                if sample.name.startswith("sklearn_fhe_") and sample.name.endswith("_total"):
                    key = (sample.name, label)
                    sums[key] = sums.get(key, 0.0) + sample.value
    return sums


def moved(after: dict, before: dict, name: str, label: str = "") -> float:
    return after.get((name, label), 0.0) - before.get((name, label), 0.0)


def worker_peak_rss_mb() -> float:
    """In a Dask worker: its peak resident memory in MB."""
    import os

    return peak_rss_mb(os.getpid())


def measure_topology(top: Topology, saved: Path, X: np.ndarray, rows: np.ndarray,
                     expected: np.ndarray, deadline_s: float) -> dict:
    from contextlib import ExitStack

    from sklearn_fhe.deployment import RemoteClient
    from sklearn_fhe.deployment.local_service import LocalService

    with ExitStack() as stack:
        store = stack.enter_context(tempfile.TemporaryDirectory())
        options = ["--key-store", store, "--max-key-sets", str(SCALE_CLIENTS)]
        dask = None
        if top.dask_workers:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(
                n_workers=top.dask_workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0"))
            dask = stack.enter_context(Client(cluster))
            options += ["--dask-scheduler", cluster.scheduler_address]
        with ThreadPoolExecutor(top.processes) as pool:
            services = list(pool.map(lambda _: LocalService(saved, options),
                                     range(top.processes)))
        for service in services:
            stack.callback(service.close)
        start = time.perf_counter()
        remotes = [RemoteClient(services[0].url) for _ in range(SCALE_CLIENTS)]  # keys: once
        setup_s = time.perf_counter() - start
        counted = [metric_sums(services)]
        for _ in range(2):  # client 0's first and second request: 20 rows, two circuit calls
            remotes[0].predict(X[:FIRST_ROWS])  # (one per worker with 2 workers)
            counted.append(metric_sums(services))
        urls = [service.url for service in services]

        def client(index: int) -> list:
            remote, results = remotes[index], []
            for request, (row, truth) in enumerate(zip(rows[index], expected[index])):
                if time.monotonic() > deadline:
                    break
                remote.url = urls[(index + request) % len(urls)]  # round robin
                begin = time.perf_counter()
                answer = remote.predict(row[None, :])
                results.append((time.perf_counter() - begin,
                                bool(np.array_equal(answer, truth[None]))))
            return results

        deadline = time.monotonic() + deadline_s
        start = time.perf_counter()
        with ThreadPoolExecutor(SCALE_CLIENTS) as pool:
            done = list(pool.map(client, range(SCALE_CLIENTS)))
        wall_s = time.perf_counter() - start
        after = metric_sums(services)
        rss = sum(peak_rss_mb(service.process.pid) for service in services)
        workers_rss = sum(dask.run(worker_peak_rss_mb).values()) if dask is not None else 0.0
    latencies = np.array([s for part in done for s, _ in part])
    first = {what: moved(counted[1], counted[0], "sklearn_fhe_worker_bytes_total", what)
             for what in ("ciphertexts", "parts")}
    second = {what: moved(counted[2], counted[1], "sklearn_fhe_worker_bytes_total", what)
              for what in ("ciphertexts", "parts")}
    return {
        "topology": top.label, "processes": top.processes, "dask_workers": top.dask_workers,
        "requests": int(latencies.size), "requests_planned": SCALE_CLIENTS * SCALE_REQUESTS,
        "correct": int(sum(ok for part in done for _, ok in part)),
        "requests_per_s": latencies.size / wall_s, "wall_s": wall_s,
        "p50_s": float(np.percentile(latencies, 50)), "p95_s": float(np.percentile(latencies, 95)),
        "services_peak_rss_mb": rss, "workers_peak_rss_mb": workers_rss,
        "key_uploads": int(moved(after, {}, "sklearn_fhe_requests_total", "/keys")),
        "first_request_to_workers": first, "second_request_to_workers": second,
        "parts_to_workers_during_load": moved(after, counted[2], "sklearn_fhe_worker_bytes_total",
                                              "parts"),
        "clients_setup_s": setup_s,
    }


def measure_scale(deadline_s: float) -> list:
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from sklearn_fhe.deployment import save

    case = cases()["rf"]
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = case.make().fit(X[:400], y[:400])
    n = SCALE_CLIENTS * SCALE_REQUESTS
    rows = X[400:400 + n].reshape(SCALE_CLIENTS, SCALE_REQUESTS, -1)
    expected = model.predict(rows.reshape(n, -1), fhe="disable").reshape(SCALE_CLIENTS, -1)
    out = []
    with tempfile.TemporaryDirectory() as directory:
        saved = save(model, Path(directory) / "model")
        keys_mb = None
        for top in TOPOLOGIES:
            out.append(measure_topology(top, saved, X, rows, expected, deadline_s))
            print(json.dumps(out[-1]), flush=True)
        from sklearn_fhe.deployment import Client

        client = Client(saved)
        client.keygen()
        keys_mb = len(client.evaluation_keys()) / 1e6
    for row in out:
        row["key_set_mb"] = keys_mb
    return out


def print_scale(rows: list) -> None:
    print(f"\n{case_title()}: {SCALE_CLIENTS} clients × {SCALE_REQUESTS} one-row requests, on "
          f"{os.cpu_count()} cores (clients, services and workers share them)")
    print("| topology | requests/s | p50 | p95 | correct | key uploads | peak memory "
          "(services + workers) | 1st request → workers | 2nd request → workers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        first, second = row["first_request_to_workers"], row["second_request_to_workers"]
        to_workers = (lambda d: f"{d['parts'] / 1e6:.1f} MB parts + {d['ciphertexts'] / 1e3:.1f} "
                      "KB ciphertexts") if row["dask_workers"] else (lambda d: "-")
        print(f"| {row['topology']} | {row['requests_per_s']:.2f} | {row['p50_s']:.3f} s | "
              f"{row['p95_s']:.3f} s | {row['correct']}/{row['requests_planned']} | "
              f"{row['key_uploads']} | {row['services_peak_rss_mb']:.0f} + "
              f"{row['workers_peak_rss_mb']:.0f} MB | {to_workers(first)} | {to_workers(second)} |")
    by = {row["topology"]: row for row in rows}
    one, two = by["1 Dask worker"], by["2 Dask workers"]
    second = two["second_request_to_workers"]
    key_mb = rows[0]["key_set_mb"]
    print(f"\nBytes to workers are for client 0's first and second request of {FIRST_ROWS} rows "
          "(two circuit calls). On paper, for N machines: once a worker holds a client's key "
          f"set, a request sends it ciphertexts only ({second['ciphertexts'] / 1e3:.1f} KB for "
          f"{FIRST_ROWS} rows, {second['parts']:.0f} B of keys), so a 1 Gbit/s link carries "
          f"~{125e6 / max(second['ciphertexts'], 1) * FIRST_ROWS:.0f} rows/s of them: compute, "
          "not transfer, bounds throughput, and it adds up over worker machines. Here every "
          "process shares the same 2 cores (clients' encryption, services, workers), so 2 "
          f"workers ({two['requests_per_s']:.2f} requests/s) cannot beat 1 "
          f"({one['requests_per_s']:.2f}) by much, nor 2 service processes "
          f"({by['2 service processes']['requests_per_s']:.2f}) 1 "
          f"({by['1 service process']['requests_per_s']:.2f}); with N worker machines of c "
          f"cores, expect about N × c / 2 × {one['requests_per_s']:.2f} requests/s of this "
          "model, as long as the service processes (which only route and hold keys) keep up — "
          "add replicas on the shared key store until they do. The one-off cost: each client's "
          f"key set ({key_mb:.1f} MB) crosses to each worker that runs its calls once, at most "
          f"K × N × {key_mb:.1f} MB for K clients on N workers, and each worker holds at most "
          "SKLEARN_FHE_WORKER_KEY_SETS expanded key sets (memory per worker grows with it). "
          f"Key uploads: {by['2 service processes']['key_uploads']} for {SCALE_CLIENTS} clients "
          "with 2 processes, none repeated (the key store is shared).")


def case_title() -> str:
    return cases()["rf"].name


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
    parser.add_argument("cases", nargs="*", default=["lr", "rf", "scale"])
    parser.add_argument("--deadline", type=float, default=900.0,
                        help="seconds of load per case after which clients stop sending")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=0.05, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.interval)
        return 0
    all_cases, rows, scale = cases(), [], []
    for key in args.cases:
        if key == "scale":
            scale = measure_scale(args.deadline)
            continue
        rows.append(measure(key, all_cases[key], args.deadline))
        print(json.dumps(rows[-1]), flush=True)
    failed = False
    if scale:
        print_scale(scale)
        for row in scale:
            if row["correct"] < row["requests_planned"]:
                failed = True
                print(f"{row['topology']}: {row['correct']}/{row['requests_planned']} correct")
            if row["dask_workers"] and row["second_request_to_workers"]["parts"]:
                failed = True
                print(f"{row['topology']}: the second request sent keys to the workers again")
    if not rows:
        return 1 if failed else 0
    print("\n| case | clients × requests | requests/s | p50 | p95 | server peak RSS | correct | "
          "/health p50 / p95 / max (probes) |")
    print("|---|---|---|---|---|---|---|---|")
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
