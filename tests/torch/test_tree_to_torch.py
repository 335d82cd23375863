"""Float equivalence of the GEMM tree modules with the source models, and their ONNX export."""

import numpy as np
import onnx
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sklearn_fhe.onnx.export import export_torch_to_onnx
from sklearn_fhe.torch.tree_to_torch import GemmTreeEnsemble, tree_model_to_torch

xgb = pytest.importorskip("xgboost")


def _data(kind):
    loader = {"binary": load_breast_cancer, "multiclass": load_iris, "regression": load_diabetes}[kind]
    X, y = loader(return_X_y=True)
    if kind == "multiclass":
        y = np.array(["setosa", "versicolor", "virginica"])[y]  # non-integer labels
    return X.astype(np.float32), y


CLASSIFIERS = [
    lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
    lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    lambda: ExtraTreesClassifier(n_estimators=5, max_depth=4, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=5, loss="exponential", random_state=0),
    lambda: xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1),
]
REGRESSORS = [
    lambda: DecisionTreeRegressor(max_depth=5, random_state=0),
    lambda: RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0),
    lambda: GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0),
    lambda: xgb.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1),
    lambda: xgb.XGBRegressor(n_estimators=5, max_depth=3, objective="count:poisson", n_jobs=1),
]


def _check_export(module, X):
    model = export_torch_to_onnx(module, X[:4])
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert ops <= {"MatMul", "LessOrEqual", "Less", "Cast", "Sub", "Add", "Equal"}, ops


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("make", CLASSIFIERS)
def test_classifier_matches_sklearn(make, kind):
    X, y = _data(kind)
    model = make()
    if getattr(model, "loss", None) == "exponential" and kind == "multiclass":
        pytest.skip("the exponential loss is binary only")
    if type(model).__module__.startswith("xgboost"):
        y = np.unique(y, return_inverse=True)[1]  # XGBoost wants encoded labels
    model.fit(X, y)
    module = tree_model_to_torch(model)
    assert isinstance(module, GemmTreeEnsemble)
    post = module.post_processing
    raw = module.predict_raw(X)
    np.testing.assert_allclose(post.predict_proba(raw), model.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(post.predict(raw), model.predict(X))
    # The float64 reference evaluation of the tensors agrees with the float32 module.
    np.testing.assert_allclose(module.tensors.forward_numpy(X), raw, atol=1e-5)
    _check_export(module, X)


@pytest.mark.parametrize("make", REGRESSORS)
def test_regressor_matches_sklearn(make):
    X, y = _data("regression")
    model = make().fit(X, y)
    module = tree_model_to_torch(model)
    pred = module.post_processing.predict(module.predict_raw(X))
    expected = model.predict(X)
    # float32 sums of values of magnitude ~150: relative tolerance.
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=1e-5 * np.abs(expected).max())
    _check_export(module, X)


def test_thresholds_are_exact_on_float32_ties():
    """Inputs equal to the float32 rounding of a float64 threshold go the same way as sklearn."""
    X, y = _data("binary")
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    module = tree_model_to_torch(model)
    t = model.tree_
    internal = t.children_left != -1
    probes = np.repeat(X[:1], internal.sum() * 3, axis=0)
    for i, (f, thr) in enumerate(zip(t.feature[internal], t.threshold[internal])):
        t32 = np.float32(thr)
        for j, v in enumerate([t32, np.nextafter(t32, np.float32(-np.inf)), np.nextafter(t32, np.float32(np.inf))]):
            probes[3 * i + j, f] = v
    raw = module.predict_raw(probes)
    np.testing.assert_array_equal(module.post_processing.predict(raw), model.predict(probes))


def test_merged_comparisons_are_fewer_and_exact():
    X, y = _data("binary")
    model = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    module = tree_model_to_torch(model)
    n_internal = sum(int((e.tree_.children_left != -1).sum()) for e in model.estimators_[:, 0])
    assert module.tensors.n_nodes < n_internal  # GB trees reuse the same midpoints


def test_quantized_thresholds_match_integer_comparisons():
    X, y = _data("binary")
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    tensors = tree_model_to_torch(model).tensors
    n_bits = 4
    lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
    scale = (hi - lo) / (2**n_bits - 1)
    zp = np.round(-lo / scale)
    q = np.clip(np.round(X / scale) + zp, 0, 2**n_bits - 1)
    dq = (q - zp) * scale
    snapped = tensors.quantize_thresholds(scale, zp, n_bits)
    assert snapped.n_nodes <= tensors.n_nodes and snapped.n_leaves <= tensors.n_leaves
    # Same predictions on the grid as the original trees, through fewer comparisons.
    expected = tensors.forward_numpy(dq) + tensors.constant_output
    np.testing.assert_allclose(snapped.forward_numpy(dq) + snapped.constant_output, expected, atol=1e-12)
    # Integer thresholds: x_q <= T is the decision of the snapped module.
    T = snapped.integer_thresholds(scale, zp, n_bits)
    assert np.all((T >= 0) & (T < 2**n_bits - 1))  # constant comparisons were folded
    b_int = q[:, snapped.feature_index] <= T
    b_float = dq[:, snapped.feature_index] <= snapped.thresholds
    np.testing.assert_array_equal(b_int, b_float)
    # Exactly one leaf per tree is reached (or none for trees folded into constant_output).
    hits = snapped.leaf_indicators_numpy(dq)
    for tree in np.unique(snapped.leaf_tree):
        np.testing.assert_array_equal(hits[:, snapped.leaf_tree == tree].sum(axis=1), 1)


def test_unsupported_model_raises():
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _data("binary")
    with pytest.raises(ValueError):
        tree_model_to_torch(KNeighborsClassifier().fit(X, y))


def test_xgboost_early_stopping_uses_best_iteration():
    X, y = _data("binary")
    model = xgb.XGBClassifier(n_estimators=50, max_depth=2, early_stopping_rounds=2, n_jobs=1)
    model.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])], verbose=False)
    assert model.best_iteration + 1 < 50
    module = tree_model_to_torch(model)
    raw = module.predict_raw(X)
    np.testing.assert_allclose(module.post_processing.predict_proba(raw), model.predict_proba(X), atol=1e-5)
