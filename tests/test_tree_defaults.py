"""The tree families' own defaults (issue 19): bounded sizes, documented, and still settable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier

import sklearn_fhe
from sklearn_fhe.base import signature_with
from sklearn_fhe.tree_model import DEFAULT_MAX_LEAVES, TREE_DOC

USER_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "families.rst"

#: The defaults the docs state, by estimator; every other parameter keeps the wrapped default.
DOCUMENTED = {
    sklearn_fhe.FHEDecisionTreeClassifier: {"max_depth": 6},
    sklearn_fhe.FHEDecisionTreeRegressor: {"max_depth": 6},
    sklearn_fhe.FHERandomForestClassifier: {"n_estimators": 4, "max_depth": 4},
    sklearn_fhe.FHERandomForestRegressor: {"n_estimators": 4, "max_depth": 4},
    sklearn_fhe.FHEGradientBoostingClassifier: {
        "n_estimators": 16, "max_depth": 2, "learning_rate": 0.3},
    sklearn_fhe.FHEGradientBoostingRegressor: {
        "n_estimators": 16, "max_depth": 2, "learning_rate": 0.3},
    sklearn_fhe.FHEXGBClassifier: {"n_estimators": 16, "max_depth": 2},
    sklearn_fhe.FHEXGBRegressor: {"n_estimators": 16, "max_depth": 2},
}
CLASSIFIERS = [c for c in DOCUMENTED if c.__name__.endswith("Classifier")]
REGRESSORS = [c for c in DOCUMENTED if c.__name__.endswith("Regressor")]


@pytest.fixture(scope="module")
def binary():
    return make_classification(n_samples=1000, n_features=10, n_informative=6, random_state=0)


@pytest.mark.parametrize("estimator_class", DOCUMENTED, ids=lambda c: c.__name__)
def test_defaults_are_the_documented_ones(estimator_class):
    expected = DOCUMENTED[estimator_class]
    params = estimator_class().get_params()
    assert {name: params[name] for name in expected} == expected
    # every other parameter keeps the wrapped estimator's default
    wrapped = estimator_class._float_class().get_params()
    assert {k: params[k] for k in wrapped if k not in expected} == {
        k: v for k, v in wrapped.items() if k not in expected}
    assert any(wrapped[name] != value for name, value in expected.items())
    # clone (hence GridSearchCV) and the float model see the same defaults
    assert clone(estimator_class()).get_params() == params
    assert estimator_class()._float_params() == {
        k: v for k, v in params.items() if k not in estimator_class._fhe_parameters}
    # the class docstring and the user guide state them
    for name, value in expected.items():
        assert f"``{name}={value!r}``" in estimator_class.__doc__
    assert f"within {DEFAULT_MAX_LEAVES} leaves per" in " ".join(TREE_DOC.split())
    guide = USER_GUIDE.read_text()
    row = next(line for line in guide.splitlines() if f"``{estimator_class.__name__}``" in line
               and "=" in line)
    assert all(f"``{name}={value!r}``" in row for name, value in expected.items()), row


def test_an_override_must_name_a_parameter():
    with pytest.raises(TypeError, match=r"\['max_dept'\] are not parameters of Decision"):
        signature_with(DecisionTreeClassifier, {"max_dept": 3})
    signature = signature_with(DecisionTreeClassifier, {"max_depth": 3}, n_bits=6)
    assert signature.parameters["max_depth"].default == 3
    assert signature.parameters["n_bits"].default == 6


@pytest.mark.parametrize("estimator_class", CLASSIFIERS, ids=lambda c: c.__name__)
def test_default_classifiers_fit_fast_within_the_leaf_budget(estimator_class, binary):
    X, y = binary
    start = time.perf_counter()
    model = estimator_class().fit(X, y)
    assert time.perf_counter() - start < 30  # seconds; unbounded forests took minutes
    assert model.score(X, y) > 0.8
    cost = model.fhe_cost()
    assert 0 < cost["pbs_per_row"] <= DEFAULT_MAX_LEAVES  # one lookup per leaf


@pytest.mark.parametrize("estimator_class", REGRESSORS, ids=lambda c: c.__name__)
def test_default_regressors_within_the_leaf_budget(estimator_class):
    X, y = make_regression(n_samples=1000, n_features=10, n_informative=6, random_state=0)
    model = estimator_class().fit(X, y)
    assert model.score(X, y) > 0.5
    assert 0 < model.fhe_cost()["pbs_per_row"] <= DEFAULT_MAX_LEAVES


@pytest.mark.parametrize("estimator_class", CLASSIFIERS, ids=lambda c: c.__name__)
def test_multiclass_boosting_pays_per_class(estimator_class):
    X, y = make_classification(n_samples=600, n_features=10, n_informative=6, n_classes=3,
                               random_state=0)
    pbs = estimator_class().fit(X, y).fhe_cost()["pbs_per_row"]
    # boosting fits one tree per class and round; a forest's or tree's leaf holds every class
    per_class = "Boosting" in estimator_class.__name__ or "XGB" in estimator_class.__name__
    assert pbs <= DEFAULT_MAX_LEAVES * (3 if per_class else 1)
    assert pbs > DEFAULT_MAX_LEAVES if per_class else True


@pytest.mark.filterwarnings("ignore:.*per encrypted row")  # fit's warning on the large models
def test_every_parameter_stays_settable(binary):
    X, y = binary
    bounded = sklearn_fhe.FHEDecisionTreeClassifier(random_state=0).fit(X, y)
    unbounded = sklearn_fhe.FHEDecisionTreeClassifier(max_depth=None, random_state=0).fit(X, y)
    assert unbounded.sklearn_model_.max_depth is None
    assert unbounded.sklearn_model_.get_depth() > 6 == bounded.sklearn_model_.get_depth()
    assert unbounded.fhe_cost()["pbs_per_row"] > bounded.fhe_cost()["pbs_per_row"]
    forest = sklearn_fhe.FHERandomForestClassifier(random_state=0).set_params(
        n_estimators=10, max_depth=None).fit(X, y)
    assert len(forest.estimators_) == 10
    assert forest.fhe_cost()["pbs_per_row"] > DEFAULT_MAX_LEAVES
    xgb = sklearn_fhe.FHEXGBClassifier(max_depth=None).fit(X, y)  # xgboost's own depth (6)
    assert xgb.fhe_cost()["pbs_per_row"] > DEFAULT_MAX_LEAVES
    search = GridSearchCV(sklearn_fhe.FHEGradientBoostingClassifier(random_state=0),
                          {"learning_rate": [0.1, 0.3]}, cv=2).fit(X, y)
    assert search.best_estimator_.n_estimators == 16
