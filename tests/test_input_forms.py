"""The input forms users have give the same answers in every mode.

Every estimator family and ``compile_torch_model`` is asked about the same values in many forms
(C- and Fortran-ordered arrays, strided views, float16/32/64, integers, lists, pandas DataFrames
with mixed and nullable dtypes, a ColumnTransformer pipeline on a DataFrame with missing values and
categories), for row counts that are and are not multiples of the batch size. The answer in each
mode must equal the clear answer on a C-ordered float64 copy of the same values.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_fhe import (
    FHELogisticRegression,
    FHENeuralNetClassifier,
    FHERandomForestClassifier,
    compile_torch_model,
)

N_FEATURES = 6
BATCH_SIZE = 16
ROW_COUNTS = [1, BATCH_SIZE, BATCH_SIZE + 5]
MODES = ["disable", "simulate", "execute"]


def base_data() -> tuple[np.ndarray, np.ndarray]:
    """Six standardized breast-cancer features; the first holds small integers (so integer and
    mixed-dtype forms carry the very values the model was fitted on)."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:, :N_FEATURES])
    X[:, 0] = np.round(X[:, 0] * 2)
    return np.ascontiguousarray(X), y


def strided_view(X: np.ndarray) -> np.ndarray:
    """``X`` as every other row and column of a larger array (a non-contiguous view)."""
    big = np.zeros((2 * X.shape[0], 2 * X.shape[1]))
    big[::2, ::2] = X
    return big[::2, ::2]


def mixed_frame(X: np.ndarray) -> pd.DataFrame:
    """An int64 column beside float columns: scikit-learn reads it back Fortran-ordered."""
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return frame.astype({"f0": np.int64, "f1": np.float32})


def nullable_frame(X: np.ndarray) -> pd.DataFrame:
    """pandas' nullable extension dtypes (no missing value)."""
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return frame.astype({"f0": "Int64", **{f"f{i}": "Float64" for i in range(1, X.shape[1])}})


#: name → form of a C-ordered float64 array
FORMS: dict[str, Callable] = {
    "c_float64": np.ascontiguousarray,
    "fortran_float64": np.asfortranarray,
    "strided_view": strided_view,
    "fortran_float32": lambda X: np.asfortranarray(X, dtype=np.float32),
    "float16": lambda X: X.astype(np.float16),
    "int64": lambda X: np.round(X).astype(np.int64),
    "list": lambda X: X.tolist(),
    "dataframe_mixed": mixed_frame,
    "dataframe_nullable": nullable_frame,
}
#: forms also checked encrypted (the others differ from them only before quantization)
EXECUTE_FORMS = {"fortran_float64", "strided_view", "dataframe_mixed"}


class TorchModel:
    """A ``compile_torch_model`` MLP behind the ``output(X, fhe)`` interface of the tests."""

    def __init__(self, X: np.ndarray, y: np.ndarray, configuration) -> None:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
        inputs, targets = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
        for _ in range(60):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
        self.module = compile_torch_model(
            net.eval(), X, n_bits=4, rounding_threshold_bits=6,
            configuration=configuration, batch_size=BATCH_SIZE,
        )

    def output(self, X, fhe: str) -> np.ndarray:
        return self.module.forward(np.asarray(X, dtype=np.float64), fhe=fhe)


class EstimatorModel:
    """A fitted estimator (or pipeline) behind ``output(X, fhe)``: its ``predict_proba``."""

    def __init__(self, estimator, X, y, configuration) -> None:
        self.estimator = estimator.fit(X, y)
        last = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        fitted_X = estimator[:-1].transform(X) if isinstance(estimator, Pipeline) else None
        last.compile(fitted_X, configuration=configuration, batch_size=BATCH_SIZE)

    def output(self, X, fhe: str) -> np.ndarray:
        return self.estimator.predict_proba(X, fhe=fhe)


FAMILIES: dict[str, Callable] = {
    "linear": lambda: FHELogisticRegression(n_bits=3),
    "tree_ensemble": lambda: FHERandomForestClassifier(
        n_estimators=3, max_depth=3, random_state=0, n_bits=3),
    "neural_network": lambda: FHENeuralNetClassifier(
        module__hidden_layer_sizes=(8,), max_epochs=10, random_state=0),
}


@pytest.fixture(scope="module")
def data():
    return base_data()


@pytest.fixture(scope="module")
def models(data, fhe_configuration) -> dict:
    X, y = data
    built = {name: EstimatorModel(make(), X, y, fhe_configuration)
             for name, make in FAMILIES.items()}
    built["compile_torch_model"] = TorchModel(X, y, fhe_configuration)
    return built


def clear_reference(model, form) -> np.ndarray:
    """The clear answer on a C-ordered float64 copy of the values ``form`` holds."""
    values = np.ascontiguousarray(np.asarray(form, dtype=np.float64))
    return model.output(values, "disable")


def matrix_cases():
    for family in [*FAMILIES, "compile_torch_model"]:
        for form in FORMS:
            for n_rows in ROW_COUNTS:
                for mode in MODES:
                    if mode == "execute" and (form not in EXECUTE_FORMS
                                              or n_rows != BATCH_SIZE + 5):
                        continue
                    yield pytest.param(
                        family, form, n_rows, mode,
                        marks=[pytest.mark.execute] if mode == "execute" else [],
                        id=f"{family}-{form}-{n_rows}rows-{mode}",
                    )


@pytest.mark.filterwarnings("ignore:X (does not have|has) feature names")
@pytest.mark.parametrize("family, form, n_rows, mode", list(matrix_cases()))
def test_input_form(models, data, family, form, n_rows, mode):
    X, _ = data
    # rows 100.. hold varied values; the same rows for every form
    values = FORMS[form](X[100:100 + n_rows])
    model = models[family]
    np.testing.assert_array_equal(model.output(values, mode), clear_reference(model, values))


# -- a ColumnTransformer pipeline on a DataFrame with missing values and categories ----------

def census_like_frame(n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers of several dtypes with missing values, a nullable int, and two categories."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n_rows)
    income = rng.lognormal(10, 0.5, n_rows).astype(np.float32)
    hours = pd.array(rng.integers(10, 60, n_rows), dtype="Int64")
    city = rng.choice(["paris", "lyon", "nice"], n_rows)
    job = rng.choice(["a", "b", "c", "d"], n_rows)
    score = 0.04 * age + np.log(income) / 3 + (city == "paris") - (job == "d") + rng.normal(0, .5, n_rows)
    frame = pd.DataFrame({"age": age, "income": income, "hours": hours, "city": city, "job": job})
    frame.loc[rng.random(n_rows) < 0.1, "income"] = np.nan
    frame.loc[rng.random(n_rows) < 0.1, "city"] = np.nan
    return frame, (score > np.median(score)).astype(int)


def column_pipeline(estimator) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    prepare = ColumnTransformer([
        ("numeric", numeric, ["age", "income", "hours"]),
        ("categorical", categorical, ["city", "job"]),
    ])
    return Pipeline([("prepare", prepare), ("model", estimator)])


@pytest.fixture(scope="module")
def frame_pipelines(fhe_configuration) -> dict:
    frame, y = census_like_frame(400)
    return {name: EstimatorModel(column_pipeline(make()), frame, y, fhe_configuration)
            for name, make in FAMILIES.items()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_column_transformer_pipeline(frame_pipelines, family, mode):
    frame, _ = census_like_frame(BATCH_SIZE + 5, seed=1)
    pipeline = frame_pipelines[family].estimator
    transformed = pipeline[:-1].transform(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no hidden conversion warnings on the way
        expected = pipeline[-1].predict_proba(np.ascontiguousarray(transformed), fhe="disable")
    got = pipeline[-1].predict_proba(transformed, fhe=mode)
    np.testing.assert_array_equal(got, expected)
    # and through the pipeline itself, as a user calls it
    np.testing.assert_array_equal(pipeline.predict(frame, fhe=mode), expected.argmax(axis=1))
