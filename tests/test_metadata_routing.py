"""``Pipeline.predict / predict_proba / decision_function(X, fhe=...)`` with and without
scikit-learn's metadata routing: our estimators request ``fhe`` by default.

Without routing, scikit-learn's Pipeline passes ``predict``'s and ``predict_proba``'s keywords to
the last step as they are and refuses any keyword to ``decision_function``; with routing, it
forwards what the last step requests.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHEDecisionTreeClassifier, FHELogisticRegression, FHENeuralNetClassifier

METHODS = ["predict", "predict_proba", "predict_log_proba", "decision_function"]


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=80, n_features=4, random_state=0)


@pytest.fixture(scope="module")
def pipe(data, fhe_configuration):
    """Scaler → 2-bit logistic regression (no lookup: compiles in a moment), compiled."""
    X, y = data
    pipe = make_pipeline(StandardScaler(), FHELogisticRegression(n_bits=2)).fit(X, y)
    pipe[-1].compile(pipe[:-1].transform(X), configuration=fhe_configuration)
    return pipe


def own(pipe, method: str, X: np.ndarray, fhe: str) -> np.ndarray:
    """The last step's own result on the transformed rows."""
    return getattr(pipe[-1], method)(pipe[:-1].transform(X), fhe=fhe)


def call(pipe, method: str, X: np.ndarray, routing: bool, fhe) -> np.ndarray:
    with sklearn.config_context(enable_metadata_routing=routing):
        return getattr(pipe, method)(X, fhe=fhe)


@pytest.mark.parametrize("routing", [False, True])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba"])
def test_pipeline_forwards_fhe(pipe, data, method, routing):
    X, _ = data
    np.testing.assert_array_equal(
        call(pipe, method, X, routing, "simulate"), own(pipe, method, X, "simulate"))
    # simulate equals disable by design: a value only our estimator refuses shows it got there
    with pytest.raises(ValueError, match="fhe='nonsense' is not a valid mode"):
        call(pipe, method, X, routing, "nonsense")


def test_decision_function_forwards_fhe_with_routing(pipe, data):
    X, _ = data
    np.testing.assert_array_equal(
        call(pipe, "decision_function", X, True, "simulate"),
        own(pipe, "decision_function", X, "simulate"))
    with pytest.raises(ValueError, match="fhe='nonsense' is not a valid mode"):
        call(pipe, "decision_function", X, True, "nonsense")


@pytest.mark.parametrize("estimator", [
    FHEDecisionTreeClassifier(max_depth=2, n_bits=3),
    FHENeuralNetClassifier(max_epochs=2, verbose=0),  # skorch's nets are routers themselves
], ids=["tree", "skorch"])
def test_every_family_receives_fhe_with_routing(data, estimator):
    X, y = data
    pipe = make_pipeline(StandardScaler(), estimator).fit(X.astype(np.float32), y)
    for method in ["predict", "predict_proba"]:
        with pytest.raises(ValueError, match="fhe='nonsense' is not a valid mode"):
            call(pipe, method, X.astype(np.float32), True, "nonsense")


def test_decision_function_without_routing_is_refused_by_scikit_learn(pipe, data):
    """scikit-learn's own rule (documented in the README with the workaround)."""
    X, _ = data
    with sklearn.config_context(enable_metadata_routing=False):
        with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
            pipe.decision_function(X, fhe="simulate")


def test_fhe_is_requested_by_default_and_can_be_declined():
    requests = FHELogisticRegression().get_metadata_routing()
    for method in METHODS:
        assert getattr(requests, method).requests == {"fhe": True}, method
    # a family without decision_function requests nothing for it
    tree_requests = FHEDecisionTreeClassifier().get_metadata_routing()
    assert tree_requests.decision_function.requests == {}
    with sklearn.config_context(enable_metadata_routing=True):
        declined = FHELogisticRegression().set_predict_proba_request(fhe=False)
    assert declined.get_metadata_routing().predict_proba.requests == {"fhe": False}
    assert FHELogisticRegression().get_metadata_routing().predict_proba.requests == {"fhe": True}
