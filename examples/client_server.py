"""
Deploy a model: client and server
=================================

The client keeps its secret key, the server computes blind.

train → save (a client part and a server part) → the client generates keys and encrypts →
the server, in another process that holds only the server part, runs the circuit →
the client decrypts. Prints bytes and seconds at each step.

Run: python examples/client_server.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHEXGBClassifier
from sklearn_fhe.deployment import Client, save


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    # -- the model owner: train and save ---------------------------------------------------
    model = FHEXGBClassifier(n_estimators=10, max_depth=3, n_bits=6).fit(X_train, y_train)
    workdir = Path(tempfile.mkdtemp(prefix="sklearn_fhe_example_"))
    start = time.perf_counter()
    saved = save(model, workdir / "model")  # compiles the circuit first
    print(f"saved in {time.perf_counter() - start:.1f} s: client part for the data owner, "
          f"server part for the server ({saved})")
    server_side = workdir / "server_side"  # what the server is given: manifest + server part
    (server_side / "server").mkdir(parents=True)
    for name in ("manifest.json", "server/model.json", "server/server.zip"):
        shutil.copy(saved / name, server_side / name)

    # -- the data owner: keys, then encrypted rows -------------------------------------------
    client = Client(saved)
    start = time.perf_counter()
    client.keygen()
    keys = client.evaluation_keys()
    print(f"client: keys in {time.perf_counter() - start:.2f} s, evaluation keys "
          f"{len(keys) / 1e6:.1f} MB (sent once; the secret key stays here)")
    rows = X_test[:5]
    start = time.perf_counter()
    payload = client.encrypt(rows)
    print(f"client: {len(rows)} rows encrypted in {time.perf_counter() - start:.3f} s, "
          f"{len(payload) / len(rows):.0f} bytes per row")
    (workdir / "keys.bin").write_bytes(keys)
    (workdir / "payload.bin").write_bytes(payload)

    # -- the server: another process, the server part only ------------------------------------
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sklearn_fhe", "run", str(server_side),
                    "--keys", str(workdir / "keys.bin"), "--input", str(workdir / "payload.bin"),
                    "--output", str(workdir / "result.bin")], check=True)
    result = (workdir / "result.bin").read_bytes()
    print(f"server: ran on ciphertexts in {time.perf_counter() - start:.2f} s (process start "
          f"included), {len(result) / len(rows):.0f} bytes per row back")

    # -- the data owner: decrypt -----------------------------------------------------------
    predictions = client.predict(result)
    probabilities = client.predict_proba(result)
    print("client: predictions", predictions, "truth", y_test[:5])
    print("equal to the model's clear predictions:",
          np.array_equal(probabilities, model.predict_proba(rows)))
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
