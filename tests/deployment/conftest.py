"""Fixtures of the service tests: a small saved forest (the quickest model with table lookups)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.deployment import save


@pytest.fixture(scope="session")
def saved_forest(tmp_path_factory, fhe_configuration):
    """(estimator, 6 rows, saved model directory): 2 trees of depth 3 at n_bits=5 on breast
    cancer, compiled with the insecure key cache."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    model = sklearn_fhe.FHERandomForestClassifier(n_estimators=2, max_depth=3, random_state=0,
                                                  n_bits=5).fit(X, y)
    model.compile(configuration=fhe_configuration)
    return model, X[-6:], save(model, tmp_path_factory.mktemp("forest") / "model")
