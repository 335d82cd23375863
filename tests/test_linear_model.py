"""The linear-model family: accuracy, exactness of the encrypted path, scikit-learn behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
from sklearn import linear_model, svm
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe import linear_model as fhe_linear_model
from sklearn_fhe.linear_model import FHELinearRegression, FHELogisticRegression


def split(loader, stratify=True):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if stratify else None
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.fixture(scope="module")
def cancer():
    return split(load_breast_cancer)


@pytest.fixture(scope="module")
def digits():
    return split(load_digits)


@pytest.fixture(scope="module")
def diabetes():
    return split(load_diabetes, stratify=False)


CLASSIFIERS = ["FHELogisticRegression", "FHESGDClassifier", "FHELinearSVC"]
REGRESSORS = [
    "FHELinearRegression", "FHERidge", "FHELasso", "FHEElasticNet", "FHELinearSVR",
    "FHESGDRegressor", "FHEPoissonRegressor", "FHEGammaRegressor", "FHETweedieRegressor",
]


def regression_target(name, y):
    # GLMs with a log link need positive targets
    return y if name in {"FHELinearRegression", "FHERidge", "FHELasso", "FHEElasticNet",
                         "FHELinearSVR", "FHESGDRegressor", "FHETweedieRegressor"} else y / 100


def test_public_names():
    for name in CLASSIFIERS + REGRESSORS:
        assert getattr(sklearn_fhe, name) is getattr(fhe_linear_model, name)


@pytest.mark.parametrize("name", CLASSIFIERS + REGRESSORS)
def test_parameters_mirror_sklearn(name):
    estimator = getattr(sklearn_fhe, name)()
    float_params = estimator._float_class().get_params()
    params = estimator.get_params()
    assert params.pop("n_bits") == 8
    assert params == float_params


@pytest.mark.execute
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_execute_equals_disable(name, digits, fhe_configuration):
    X_train, X_test, y_train, _ = digits
    model = getattr(sklearn_fhe, name)(n_bits=6).fit(X_train, y_train)
    rows = X_test[:24]
    model.compile(configuration=fhe_configuration, batch_size=24)
    assert model.quantized_module_.statistics()["pbs_per_circuit"] == 0
    clear = model.decision_function(rows)
    assert np.array_equal(model.decision_function(rows, fhe="execute"), clear)
    assert np.array_equal(model.decision_function(X_test, fhe="simulate"),
                          model.decision_function(X_test))
    assert np.array_equal(model.predict(rows, fhe=True), model.predict(rows))


@pytest.mark.execute
@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_execute_equals_disable(name, diabetes, fhe_configuration):
    X_train, X_test, y_train, _ = diabetes
    model = getattr(sklearn_fhe, name)(n_bits=8).fit(X_train, regression_target(name, y_train))
    rows = X_test[:24]
    model.compile(configuration=fhe_configuration, batch_size=24)
    assert model.quantized_module_.statistics()["pbs_per_circuit"] == 0
    assert np.array_equal(model.predict(rows, fhe="execute"), model.predict(rows))
    assert np.array_equal(model.predict(X_test, fhe="simulate"), model.predict(X_test))


def test_low_bit_accuracy_breast_cancer(cancer):
    X_train, X_test, y_train, y_test = cancer
    float_accuracy = linear_model.LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    accuracy_2 = FHELogisticRegression(n_bits=2).fit(X_train, y_train).score(X_test, y_test)
    accuracy_8 = FHELogisticRegression(n_bits=8).fit(X_train, y_train).score(X_test, y_test)
    assert accuracy_2 >= 0.93, accuracy_2
    assert abs(accuracy_8 - float_accuracy) <= 0.01


def test_8_bits_accuracy_digits(digits):
    X_train, X_test, y_train, y_test = digits
    float_accuracy = linear_model.LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    accuracy = FHELogisticRegression(n_bits=8).fit(X_train, y_train).score(X_test, y_test)
    assert abs(accuracy - float_accuracy) <= 0.01


def test_8_bits_r2_diabetes(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    float_r2 = linear_model.LinearRegression().fit(X_train, y_train).score(X_test, y_test)
    r2 = FHELinearRegression(n_bits=8).fit(X_train, y_train).score(X_test, y_test)
    assert abs(r2 - float_r2) <= 0.01


def test_quantized_output_tracks_float(cancer):
    X_train, X_test, y_train, _ = cancer
    model = FHELogisticRegression(n_bits=8).fit(X_train, y_train)
    float_scores = model.sklearn_model_.decision_function(X_test)
    error = np.abs(model.decision_function(X_test) - float_scores)
    assert np.median(error) < 0.05 and error.max() < 0.1 * np.abs(float_scores).max()
    proba = model.predict_proba(X_test)
    assert np.allclose(proba.sum(axis=1), 1)
    assert np.abs(proba - model.sklearn_model_.predict_proba(X_test)).max() < 0.05


def test_user_pipeline_and_grid_search(cancer):
    X_train, X_test, y_train, y_test = cancer
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", FHELogisticRegression(n_bits=2))])
    pipe.fit(X_train, y_train)
    search = GridSearchCV(pipe, {"clf__n_bits": [2, 3, 4, 6, 8]}, cv=3).fit(X_train, y_train)
    assert search.best_params_["clf__n_bits"] in [2, 3, 4, 6, 8]
    assert search.score(X_test, y_test) > 0.9
    predictions = pipe.predict(X_test[:5], fhe="simulate")
    assert np.array_equal(predictions, pipe.predict(X_test[:5]))


def test_string_labels_and_multiclass_proba(digits):
    X_train, X_test, y_train, _ = digits
    labels = np.array([f"digit-{d}" for d in range(10)])
    model = FHELogisticRegression(n_bits=4).fit(X_train, labels[y_train])
    assert list(model.classes_) == sorted(labels)
    assert set(model.predict(X_test)) <= set(labels)
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and np.allclose(proba.sum(axis=1), 1)


def test_sgd_proba_only_for_probabilistic_losses(cancer):
    X_train, _, y_train, _ = cancer
    assert not hasattr(sklearn_fhe.FHESGDClassifier(loss="hinge").fit(X_train, y_train),
                       "predict_proba")
    model = sklearn_fhe.FHESGDClassifier(loss="log_loss", random_state=0).fit(X_train, y_train)
    assert model.predict_proba(X_train[:3]).shape == (3, 2)


def test_multi_output_regression():
    X, y = make_regression(n_samples=120, n_features=5, n_targets=3, random_state=0)
    model = FHELinearRegression(n_bits=8).fit(X, y)
    assert model.predict(X).shape == (120, 3)
    assert model.score(X, y) > 0.99


def test_glm_inverse_link_in_clear(diabetes):
    X_train, X_test, y_train, _ = diabetes
    model = sklearn_fhe.FHEPoissonRegressor(n_bits=8).fit(X_train, y_train)
    float_model = linear_model.PoissonRegressor().fit(X_train, y_train)
    np.testing.assert_allclose(model.predict(X_test), float_model.predict(X_test), rtol=0.1)
    assert np.all(model.predict(X_test) > 0)


def test_clone_pickle_and_lazy_compile(cancer, tmp_path):
    X_train, X_test, y_train, _ = cancer
    model = FHELogisticRegression(n_bits=3).fit(X_train, y_train)
    assert clone(model).get_params() == model.get_params()
    model.predict(X_test[:4], fhe="simulate")  # compiles once, lazily
    assert model.fhe_circuit is not None
    restored = pickle.loads(pickle.dumps(model))
    assert restored.fhe_circuit is None  # circuits and keys are rebuilt, not pickled
    assert np.array_equal(restored.predict(X_test), model.predict(X_test))
    assert np.array_equal(restored.predict(X_test[:4], fhe="simulate"), model.predict(X_test[:4]))
    path = tmp_path / "model.onnx"
    onnx.save(model.onnx_model, str(path))
    assert onnx.load(str(path)).graph.node[0].op_type == "Gemm"


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.full((3, 30), np.nan), ValueError, "NaN"),
        (np.full((3, 30), np.inf), ValueError, "infinity"),
        (np.zeros((3, 29)), ValueError, "features"),
        (np.zeros(30), ValueError, "2D array"),
        (np.zeros((0, 30)), ValueError, "0 sample"),
        (np.array([["a"] * 30] * 2), ValueError, "could not convert"),
    ],
)
def test_bad_inputs(cancer, X, error, message):
    X_train, _, y_train, _ = cancer
    model = FHELogisticRegression(n_bits=4).fit(X_train, y_train)
    with pytest.raises(error, match=message):
        model.predict(X)


def test_bad_fhe_mode_and_not_fitted(cancer):
    X_train, X_test, y_train, _ = cancer
    with pytest.raises(NotFittedError):
        FHELogisticRegression().predict(X_test)
    model = FHELogisticRegression(n_bits=4).fit(X_train, y_train)
    with pytest.raises(ValueError, match="fhe='encrypted' is not a valid mode"):
        model.predict(X_test, fhe="encrypted")


@pytest.mark.parametrize("n_bits", [0, 17, 2.5, "8", {"inputs": 4, "wieghts": 4}])
def test_bad_n_bits(cancer, n_bits):
    X_train, _, y_train, _ = cancer
    with pytest.raises((ValueError, TypeError), match="n_bits"):
        FHELogisticRegression(n_bits=n_bits).fit(X_train, y_train)
