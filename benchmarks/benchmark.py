"""Accuracy and encrypted latency of sklearn_fhe estimators on scikit-learn's datasets.

Prints, per case: float / disable / simulate / execute scores, PBS per row, max bit width,
compile and key generation seconds, encrypted seconds per row.

Run: python benchmarks/benchmark.py [case-name-substring ...] [--rows N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn import linear_model
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sklearn_fhe


@dataclass
class Case:
    """One benchmark: a dataset, a float model, and its FHE counterpart."""

    name: str
    loader: Callable
    make_float: Callable
    make_fhe: Callable
    classification: bool = True


def linear_cases() -> list[Case]:
    return [
        Case("LogisticRegression n_bits=8, breast cancer", load_breast_cancer,
             linear_model.LogisticRegression, lambda: sklearn_fhe.FHELogisticRegression(n_bits=8)),
        Case("LogisticRegression n_bits=2, breast cancer", load_breast_cancer,
             linear_model.LogisticRegression, lambda: sklearn_fhe.FHELogisticRegression(n_bits=2)),
        Case("LogisticRegression n_bits=8, digits", load_digits,
             linear_model.LogisticRegression, lambda: sklearn_fhe.FHELogisticRegression(n_bits=8)),
        Case("LinearRegression n_bits=8, diabetes (R2)", load_diabetes,
             linear_model.LinearRegression, lambda: sklearn_fhe.FHELinearRegression(n_bits=8),
             classification=False),
    ]


class QATFloat:
    """The float (QAT) network of an sklearn_fhe neural network: its torch module, unquantized."""

    def __init__(self, make: Callable):
        self.make = make

    def fit(self, X, y):
        self.model_ = self.make().fit(X, y)
        return self

    def predict(self, X):
        import torch

        with torch.no_grad():
            out = self.model_.module_(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy()
        if hasattr(self.model_, "classes_"):
            return self.model_.classes_[out.argmax(axis=1)]
        return (out * self.model_.y_scale_ + self.model_.y_mean_)[:, 0]


def neural_network_cases() -> list[Case]:
    clf = lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)  # noqa: E731
    reg = lambda: sklearn_fhe.FHENeuralNetRegressor(random_state=0)  # noqa: E731
    return [
        Case("NeuralNetClassifier defaults, digits", load_digits, lambda: QATFloat(clf), clf),
        Case("NeuralNetClassifier defaults, breast cancer", load_breast_cancer,
             lambda: QATFloat(clf), clf),
        Case("NeuralNetRegressor defaults, diabetes (R2)", load_diabetes,
             lambda: QATFloat(reg), reg, classification=False),
    ]


def tree_cases() -> list[Case]:
    from sklearn import ensemble, tree
    from xgboost import XGBClassifier

    return [
        Case("DecisionTreeClassifier depth 5, n_bits=6, breast cancer", load_breast_cancer,
             lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=0),
             lambda: sklearn_fhe.FHEDecisionTreeClassifier(max_depth=5, random_state=0, n_bits=6)),
        Case("RandomForestClassifier 10x depth 4, n_bits=6, breast cancer", load_breast_cancer,
             lambda: ensemble.RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
             lambda: sklearn_fhe.FHERandomForestClassifier(
                 n_estimators=10, max_depth=4, random_state=0, n_bits=6)),
        Case("XGBClassifier 10x depth 3, n_bits=6, breast cancer", load_breast_cancer,
             lambda: XGBClassifier(n_estimators=10, max_depth=3),
             lambda: sklearn_fhe.FHEXGBClassifier(n_estimators=10, max_depth=3, n_bits=6)),
    ]


#: Families register their cases here (see the other *_cases functions).
CASE_FACTORIES: list[Callable[[], list[Case]]] = [linear_cases, tree_cases, neural_network_cases]


def split(case: Case):
    X, y = case.loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if case.classification else None
    )
    scaler = StandardScaler().fit(X_train)
    as32 = lambda a: scaler.transform(a).astype(np.float32)  # noqa: E731
    return as32(X_train), as32(X_test), y_train, y_test


def run(case: Case, rows: int, batch_size: int) -> dict:
    X_train, X_test, y_train, y_test = split(case)
    score = accuracy_score if case.classification else r2_score
    float_score = score(y_test, case.make_float().fit(X_train, y_train).predict(X_test))
    model = case.make_fhe()
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.compile(batch_size=batch_size)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.quantized_module_.keygen()
    keygen_seconds = time.perf_counter() - start
    disable = model.predict(X_test)
    simulate = model.predict(X_test, fhe="simulate")
    rows = min(rows, len(X_test))
    model.predict(X_test[:1], fhe="execute")  # warm-up: the runtime's first call loads the circuit
    start = time.perf_counter()
    execute = model.predict(X_test[:rows], fhe="execute")
    seconds_per_row = (time.perf_counter() - start) / rows
    stats = model.quantized_module_.statistics()
    return {
        "case": case.name,
        "float": float_score,
        "disable": score(y_test, disable),
        "simulate": score(y_test, simulate),
        "execute": score(y_test[:rows], execute),
        "execute==disable": bool(np.array_equal(execute, disable[:rows])),
        "simulate==disable": bool(np.array_equal(simulate, disable)),
        "pbs/row": stats["pbs_per_row"],
        "max bits": stats["max_bit_width"],
        "fit s": fit_seconds,
        "compile s": compile_seconds,
        "keygen s": keygen_seconds,
        "s/row": seconds_per_row,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("filters", nargs="*", help="run only cases whose name contains one")
    parser.add_argument("--rows", type=int, default=64, help="encrypted rows per case")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per circuit call")
    args = parser.parse_args()
    cases = [case for factory in CASE_FACTORIES for case in factory()]
    cases = [c for c in cases if not args.filters or any(f in c.name for f in args.filters)]
    for case in cases:
        result = run(case, args.rows, args.batch_size)
        print(
            f"{result['case']}: float {result['float']:.3f} | disable {result['disable']:.3f} | "
            f"simulate {result['simulate']:.3f} | execute {result['execute']:.3f} "
            f"(on {result['rows']} rows; execute==disable {result['execute==disable']}, "
            f"simulate==disable {result['simulate==disable']}) | PBS/row {result['pbs/row']:.1f} "
            f"| max bits {result['max bits']} | fit {result['fit s']:.1f} s | compile "
            f"{result['compile s']:.1f} s | keygen {result['keygen s']:.1f} s | "
            f"{result['s/row']:.4f} s/row",
            flush=True,
        )


if __name__ == "__main__":
    main()
