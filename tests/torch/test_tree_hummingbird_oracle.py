"""Our GEMM tree tensors against hummingbird-ml's GEMM conversion of the same fitted models.

hummingbird (``tree_implementation="gemm"``) is an independent implementation of the strategy
``sklearn_fhe/torch/tree_to_torch.py`` follows, so it is the oracle for the float module before
quantization. It rounds scikit-learn's float64 thresholds to the nearest float32, where we round
them down (so ``x <= t`` keeps scikit-learn's answer for every float32 ``x``): the two disagree,
by design, only on inputs between the two roundings of a threshold. The comparison is made on
rows that lie clear of every threshold, where hummingbird's conversion is right.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sklearn_fhe.torch.tree_to_torch import tree_model_to_torch

hummingbird = pytest.importorskip("hummingbird.ml")

MODELS = [
    DecisionTreeClassifier(max_depth=5, random_state=0),
    RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
    DecisionTreeRegressor(max_depth=5, random_state=0),
    RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0),
    GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0),
]


def _thresholds(model) -> list[tuple[int, float]]:
    """Every (feature, threshold) test of a fitted scikit-learn tree model."""
    trees = getattr(model, "estimators_", [model])
    tests = []
    for tree in np.ravel(trees):
        inner = tree.tree_.children_left >= 0
        tests += zip(tree.tree_.feature[inner], tree.tree_.threshold[inner])
    return tests


def clear_of_thresholds(model, X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` farther than float32 resolution from every threshold of ``model``."""
    clear = np.ones(len(X), dtype=bool)
    for feature, threshold in _thresholds(model):
        clear &= np.abs(X[:, feature] - threshold) > 1e-5 * (1 + abs(threshold))
    return clear


def jittered(X: np.ndarray) -> np.ndarray:
    """Training rows moved by 1% of each feature's spread: off the thresholds (midpoints of
    training values) and still in the region the trees split."""
    noise = np.random.default_rng(0).normal(scale=0.01, size=X.shape) * X.std(axis=0)
    return (X + noise).astype(np.float32)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_tree_tensors_equal_hummingbird_gemm(model):
    classifier = hasattr(model, "predict_proba")
    if classifier:
        X, y = load_iris(return_X_y=True)  # three classes: softmax for gradient boosting
    else:
        X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    model.fit(X, y)
    rows = jittered(X)
    rows = rows[clear_of_thresholds(model, rows)]
    assert len(rows) > 0.9 * len(X)

    ours = tree_model_to_torch(model)
    oracle = hummingbird.convert(model, "torch", extra_config={"tree_implementation": "gemm"})
    raw = ours.predict_raw(rows)
    if classifier:
        expected, got = oracle.predict_proba(rows), ours.post_processing.predict_proba(raw)
    else:
        expected, got = oracle.predict(rows), ours.post_processing.predict(raw)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, np.reshape(expected, got.shape), atol=1e-5 * scale)
    if classifier:
        np.testing.assert_array_equal(ours.post_processing.predict(raw), oracle.predict(rows))


def test_binary_gradient_boosting_equals_hummingbird():
    """Binary gradient boosting: one margin and a sigmoid on both sides."""
    X, y = load_iris(return_X_y=True)
    X, y = X[y < 2].astype(np.float32), y[y < 2]
    model = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    rows = jittered(X)
    rows = rows[clear_of_thresholds(model, rows)]
    ours = tree_model_to_torch(model)
    oracle = hummingbird.convert(model, "torch", extra_config={"tree_implementation": "gemm"})
    np.testing.assert_allclose(
        ours.post_processing.predict_proba(ours.predict_raw(rows)),
        oracle.predict_proba(rows),
        atol=1e-5,
    )
