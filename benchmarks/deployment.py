"""Deployment as a user meets it: a client process and a server process, bytes in between.

For each case: fit, save, start a server process holding only the saved model's server part,
generate the client's keys, send the evaluation keys once, then time requests of 1 row (median
of several) and of 64 rows, end to end (quantize + encrypt, send, run on the server, receive,
decrypt + clear outputs). Prints seconds, bytes per row up and down, key bytes and key
generation time; with ``--peer`` the reference library's figures from the same run
(``../shared/reference/peer_latency.py`` in its own venv, see its docstring) and the ratios.

Run: python benchmarks/deployment.py [lr dt rf xgb nn ...] [--p-error 2**-40] [--peer PYTHON]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import Case, split  # noqa: E402

import sklearn_fhe  # noqa: E402
from sklearn_fhe.deployment import Client, Server, save  # noqa: E402

PEER_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "peer_latency.py"
_FRAME = struct.Struct(">Q")


def cases() -> dict:
    from sklearn.datasets import load_breast_cancer, load_digits

    none = lambda: None  # noqa: E731 (no float model needed here)
    return {
        "lr": Case("LogisticRegression n_bits=8, cancer", load_breast_cancer, none,
                   lambda: sklearn_fhe.FHELogisticRegression(n_bits=8)),
        "dt": Case("DecisionTree depth 5, n_bits=6, cancer", load_breast_cancer, none,
                   lambda: sklearn_fhe.FHEDecisionTreeClassifier(max_depth=5, random_state=0,
                                                                 n_bits=6)),
        "rf": Case("RandomForest 10x4, n_bits=6, cancer", load_breast_cancer, none,
                   lambda: sklearn_fhe.FHERandomForestClassifier(n_estimators=10, max_depth=4,
                                                                 random_state=0, n_bits=6)),
        "xgb": Case("XGBoost 10x3, n_bits=6, cancer", load_breast_cancer, none,
                    lambda: sklearn_fhe.FHEXGBClassifier(n_estimators=10, max_depth=3, n_bits=6)),
        "nn": Case("NeuralNetClassifier defaults, digits", load_digits, none,
                   lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)),
    }


# -- the server process -------------------------------------------------------------------------
def send(stream, data: bytes) -> None:
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def receive(stream) -> bytes:
    (length,) = _FRAME.unpack(stream.read(_FRAME.size))
    return stream.read(length)


def serve(model_dir: str) -> None:
    """Server process: keys once, then one result per request, on stdin/stdout."""
    server = Server(model_dir)
    keys = server.load_keys(receive(sys.stdin.buffer))
    while True:
        header = sys.stdin.buffer.read(_FRAME.size)
        if not header:
            return
        (length,) = _FRAME.unpack(header)
        send(sys.stdout.buffer, server.run(sys.stdin.buffer.read(length), keys))


class RemoteServer:
    """A server process on pipes: what a network hop would add is not counted."""

    def __init__(self, model_dir: Path) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(model_dir)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def keys(self, keys: bytes) -> None:
        send(self.process.stdin, keys)

    def run(self, payload: bytes) -> bytes:
        send(self.process.stdin, payload)
        return receive(self.process.stdout)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the client's measurements ------------------------------------------------------------------
def request(client: Client, server: RemoteServer, X: np.ndarray) -> tuple[float, int, int, np.ndarray]:
    start = time.perf_counter()
    payload = client.encrypt(X)
    result = server.run(payload)
    predictions = client.predict(result)
    return time.perf_counter() - start, len(payload), len(result), predictions


def measure(key: str, case: Case, rows: int, repeats: int, p_error) -> dict:
    X_train, X_test, y_train, _ = split(case)
    model = case.make_fhe().fit(X_train, y_train)
    model.compile(p_error=p_error)
    stats = model.quantized_module_.statistics()
    with tempfile.TemporaryDirectory() as directory:
        saved = save(model, Path(directory) / "model")
        client = Client(saved)
        start = time.perf_counter()
        client.keygen()
        keygen_s = time.perf_counter() - start
        keys = client.evaluation_keys()
        server = RemoteServer(saved)
        server.keys(keys)
        try:
            request(client, server, X_test[:1])  # warm-up: the server loads the circuit
            one = [request(client, server, X_test[i:i + 1]) for i in range(repeats)]
            many = request(client, server, X_test[:rows])
        finally:
            server.close()
    expected = model.predict(X_test[:rows])
    return {
        "side": "ours", "case": key, "name": case.name,
        "one_row_s": float(np.median([r[0] for r in one])),
        "per_row_s": many[0] / rows, "rows": rows,
        "in_bytes_per_row_1": one[0][1], "out_bytes_per_row_1": one[0][2],
        "in_bytes_per_row": many[1] / rows, "out_bytes_per_row": many[2] / rows,
        "eval_key_bytes": len(keys), "keygen_s": keygen_s,
        "pbs_per_row": stats["pbs_per_row"], "max_bits": stats["max_bit_width"],
        "batch_sizes": list(stats["batch_sizes"]),
        "equal_to_clear": bool(np.array_equal(many[3], expected)),
        "p_error": p_error,
    }


def peer(python: str, keys: list[str]) -> dict:
    """The reference library's figures (rows one by one), from its own venv."""
    out = subprocess.run([python, str(PEER_SCRIPT), ",".join(keys), "1,4"], capture_output=True,
                         text=True, check=True)
    figures = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        figures.setdefault(row["case"], {})[row["rows"]] = row
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", default=["lr", "dt", "xgb", "nn"])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="1-row requests timed")
    parser.add_argument("--p-error", type=lambda s: float(eval(s, {})), default=None,
                        help="error probability of each table lookup, e.g. 2**-40")
    parser.add_argument("--peer", help="python of the reference library's venv")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    all_cases = cases()
    ours = {}
    for key in args.cases:
        ours[key] = measure(key, all_cases[key], args.rows, args.repeats, args.p_error)
        print(json.dumps(ours[key]), flush=True)
    theirs = peer(args.peer, [k for k in args.cases if k != "rf"] + (
        ["rf"] if "rf" in args.cases else [])) if args.peer else {}
    print("\n| case | ours: 1-row request | ours: per row, 64-row request | peer: per row | "
          "1-row ratio ours/peer | upload per row ours / peer | download per row ours / peer | "
          "eval keys ours / peer | keygen ours / peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, row in ours.items():
        p = theirs.get(key, {}).get(1)
        peer_s = f"{p['s_per_row']:.4f} s" if p else "—"
        ratio = f"{row['one_row_s'] / p['s_per_row']:.2f}" if p else "—"
        up = f"{row['in_bytes_per_row_1']:.0f} B / {p['in_bytes_per_row']} B" if p else \
            f"{row['in_bytes_per_row_1']:.0f} B"
        down = f"{row['out_bytes_per_row_1']:.0f} B / {p['out_bytes_per_row']} B" if p else \
            f"{row['out_bytes_per_row_1']:.0f} B"
        keys = f"{row['eval_key_bytes'] / 1e6:.1f} MB / {p['eval_key_bytes'] / 1e6:.1f} MB" if p \
            else f"{row['eval_key_bytes'] / 1e6:.1f} MB"
        keygen = f"{row['keygen_s']:.2f} s / {p['keygen_s']:.2f} s" if p else f"{row['keygen_s']:.2f} s"
        print(f"| {row['name']} | {row['one_row_s']:.4f} s | {row['per_row_s']:.4f} s | {peer_s} | "
              f"{ratio} | {up} | {down} | {keys} | {keygen} |")


if __name__ == "__main__":
    main()
