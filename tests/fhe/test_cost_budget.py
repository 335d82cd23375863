"""Costs bounded before they are spent: the memory budget refuses a compilation before anything
is allocated, fit warns of slow models, fhe_cost answers fast for any model."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

import sklearn_fhe
from sklearn_fhe import (
    FHEDecisionTreeClassifier,
    FHERandomForestClassifier,
    compile_torch_model,
    config_context,
)
from sklearn_fhe.config import memory_budget_bytes, parse_bytes
from sklearn_fhe.fhe.cost import CostWarning, FHEMemoryBudgetError


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=600, n_features=10, n_informative=6, random_state=0)


def test_fhe_cost_of_a_large_unbounded_forest_answers_in_under_a_second(data):
    X, y = data
    with config_context(slow_row_warning_s=None):
        forest = FHERandomForestClassifier(n_estimators=100, max_depth=None, random_state=0)
        forest.fit(X, y)
    forest.fhe_cost()  # concrete's parameter choices for these widths, cached from now on
    start = time.perf_counter()
    cost = forest.fhe_cost()
    assert time.perf_counter() - start < 1.0
    assert forest.fhe_circuit is None  # nothing compiled
    assert cost["pbs_per_row"] > 1000  # one lookup per leaf of 100 unbounded trees
    assert cost["estimated_peak_memory_bytes"] > cost["estimated_key_bytes"]


def test_compiling_over_the_budget_is_refused_before_allocating(data):
    X, y = data
    model = FHEDecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    needed = model.fhe_cost()["estimated_peak_memory_bytes"]
    start = time.perf_counter()
    with config_context(memory_budget=needed // 2):
        with pytest.raises(FHEMemoryBudgetError, match="memory budget.*max_depth.*memory_budget"):
            model.compile()
        # the lazy compilation of an encrypted predict is refused alike
        with pytest.raises(FHEMemoryBudgetError, match="n_bits"):
            model.predict(X[:2], fhe="simulate")
    assert time.perf_counter() - start < 30
    assert model.fhe_circuit is None
    assert isinstance(FHEMemoryBudgetError("x"), MemoryError)


def test_compile_torch_model_is_held_to_the_budget_too():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    with config_context(memory_budget="1MB"):
        with pytest.raises(FHEMemoryBudgetError, match="GB"):
            compile_torch_model(net, x, n_bits=4)


def test_fit_warns_once_when_encrypted_rows_would_be_slow(data):
    X, y = data
    with config_context(slow_row_warning_s=1e-6):
        with pytest.warns(CostWarning, match="per encrypted row.*max_depth") as caught:
            FHEDecisionTreeClassifier(max_depth=3).fit(X, y)
    assert len([w for w in caught if issubclass(w.category, CostWarning)]) == 1
    with config_context(slow_row_warning_s=None), warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)
        FHEDecisionTreeClassifier(max_depth=3).fit(X, y)


def test_memory_budget_settings():
    assert parse_bytes("8GB") == 8 * 10 ** 9 and parse_bytes("512 MiB") == 512 * 2 ** 20
    assert parse_bytes(1e6) == 10 ** 6
    for wrong in ("lots", "-1GB", 0, -5, "8 parsecs"):
        with pytest.raises(ValueError, match="memory_budget"):
            sklearn_fhe.set_config(memory_budget=wrong)
    with pytest.raises(ValueError, match="slow_row_warning_s"):
        sklearn_fhe.set_config(slow_row_warning_s="slow")
    default = memory_budget_bytes()
    assert default is None or default > 0  # a share of the memory available now
    with config_context(memory_budget="2GB"):
        assert memory_budget_bytes() == 2 * 10 ** 9
    assert sklearn_fhe.get_config()["memory_budget"] is None


def test_an_unbounded_forest_over_the_budget_is_refused_at_fit(data):
    X, y = data
    with config_context(memory_budget="1MB"):
        with pytest.raises(FHEMemoryBudgetError, match="max_depth.*memory_budget"):
            FHERandomForestClassifier(n_estimators=50, max_depth=None).fit(X, y)
