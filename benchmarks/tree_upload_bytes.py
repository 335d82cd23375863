"""Bytes a client uploads per row for the tree models, per input encoding.

For DecisionTree depth 5, RandomForest 10x4 and XGBoost 10x3 (n_bits=6, breast cancer, the
reference split), and each ``encoding`` of the tree estimators, prints: encrypted values per
row, serialized bytes of one encrypted row (a one-row circuit compiled with concrete's
``compress_input_ciphertexts=True``: ``len(circuit.encrypt(q).serialize())``), that size over
the reference library's upload (984 B per row, measured by ``../shared/reference/peer_latency.py``
on this split), test accuracy in the clear and simulated, PBS per row, and whether one
encrypted row decrypts to the clear integers.

Run: python benchmarks/tree_upload_bytes.py [--encodings thresholds thermometer]
(``SKLEARN_FHE_KEY_CACHE=<dir>`` caches the keys between runs, insecurely: benchmarks only.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.fhe.compile import default_configuration

#: Serialized upload per row of the reference library on breast cancer (compressed ciphertexts).
REFERENCE_UPLOAD_BYTES = 984

MODELS = {
    "DecisionTree depth 5": lambda encoding: sklearn_fhe.FHEDecisionTreeClassifier(
        max_depth=5, random_state=0, n_bits=6, encoding=encoding),
    "RandomForest 10x4": lambda encoding: sklearn_fhe.FHERandomForestClassifier(
        n_estimators=10, max_depth=4, random_state=0, n_bits=6, encoding=encoding),
    "XGBoost 10x3": lambda encoding: sklearn_fhe.FHEXGBClassifier(
        n_estimators=10, max_depth=3, n_bits=6, encoding=encoding),
}


def cancer_split():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train).astype(np.float32),
            scaler.transform(X_test).astype(np.float32), y_train, y_test)


def measure(model, X_test, y_test) -> dict:
    """Upload of one encrypted row, accuracy, PBS per row, one encrypted row checked."""
    model.compile(configuration=default_configuration(compress_input_ciphertexts=True),
                  batch_size=1)
    circuit = model.fhe_circuit
    one_row = circuit.function(1)  # the one-row function of the compiled module
    start = time.perf_counter()
    circuit.keygen()
    keygen = time.perf_counter() - start
    q = model.quantized_module_.quantize_input(model._encode_inputs(X_test[:1]))
    encrypted = one_row.encrypt(np.ascontiguousarray(q, dtype=np.int64))
    start = time.perf_counter()
    result = one_row.run(encrypted)
    run = time.perf_counter() - start
    clear = model.quantized_module_.quantized_forward(q)
    return {
        "values": model.input_bits_.n_bits,
        "bytes": len(encrypted.serialize()),
        "disable": model.score(X_test, y_test),
        "simulate": float(np.mean(model.predict(X_test, fhe="simulate") == y_test)),
        "pbs": model.quantized_module_.statistics()["pbs_per_row"],
        "exact": bool(np.array_equal(one_row.decrypt(result), clear)),
        "keygen": keygen,
        "run": run,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encodings", nargs="+", default=["thermometer", "thresholds"])
    args = parser.parse_args()
    X_train, X_test, y_train, y_test = cancer_split()
    print("| model | encoding | encrypted values / row | bytes / row | x reference (984 B) "
          "| accuracy disable / simulate | PBS / row | 1 row encrypted == clear | keygen s "
          "| 1-row run s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, make in MODELS.items():
        for encoding in args.encodings:
            m = measure(make(encoding).fit(X_train, y_train), X_test, y_test)
            print(f"| {name} | {encoding} | {m['values']} | {m['bytes']} "
                  f"| {m['bytes'] / REFERENCE_UPLOAD_BYTES:.2f} "
                  f"| {m['disable']:.3f} / {m['simulate']:.3f} | {m['pbs']:.0f} | {m['exact']} "
                  f"| {m['keygen']:.1f} | {m['run']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
