"""
Serve a model over HTTP and query it
====================================

Query a served model with only its URL: the secret key never leaves here.

train → save → ``sklearn-fhe serve MODEL_DIR`` in a child process on 127.0.0.1 and a free port
→ ``RemoteClient(url)`` fetches the client part, generates keys, uploads the evaluation keys
once → predictions on encrypted rows, equal to the model's clear predictions. Then one bad
request, to show the service's answer.

Run: python examples/serve_and_query.py   (needs the serve extra: pip install "sklearn_fhe[serve]")
"""

from __future__ import annotations

import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHELogisticRegression
from sklearn_fhe.deployment import RemoteClient, save
from sklearn_fhe.deployment.local_service import LocalService


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit(X[:450]).transform(X)
    model = FHELogisticRegression(n_bits=8).fit(X[:450], y[:450])
    X_test, y_test = X[450:], y[450:]

    with tempfile.TemporaryDirectory() as workdir:
        saved = save(model, Path(workdir) / "model")  # compiles the circuit first
        start = time.perf_counter()
        # the same as: sklearn-fhe serve MODEL_DIR --host 127.0.0.1 --port PORT
        with LocalService(saved) as service:
            print(f"server up at {service.url} in {time.perf_counter() - start:.1f} s:",
                  service.health())

            # -- the data owner: only the URL ------------------------------------------------
            start = time.perf_counter()
            remote = RemoteClient(service.url)
            print(f"client ready in {time.perf_counter() - start:.2f} s (client part fetched, "
                  f"keys generated, evaluation keys uploaded as {remote.key_id[:8]}…)")
            rows = X_test[:10]
            start = time.perf_counter()
            probabilities = remote.predict_proba(rows)
            print(f"{len(rows)} rows predicted encrypted in {time.perf_counter() - start:.2f} s")
            print("predictions", probabilities.argmax(axis=1), "truth", y_test[:10])
            print("equal to the model's clear predictions:",
                  np.array_equal(probabilities, model.predict_proba(rows, fhe="disable")))

            # -- what a bad request gets ---------------------------------------------------------
            request = urllib.request.Request(
                service.url + "/predict", data=b"not a ciphertext", method="POST",
                headers={"Content-Type": "application/octet-stream", "X-Key-Id": remote.key_id})
            try:
                urllib.request.urlopen(request, timeout=60)
            except urllib.error.HTTPError as error:
                print(f"random bytes → {error.code}: {error.read().decode()}")
            print("still serving:", service.health()["status"])


if __name__ == "__main__":
    main()
