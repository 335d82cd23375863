"""What a skorch user brings: EarlyStopping, partial_fit, save_params / load_params."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit

from sklearn_fhe import FHENeuralNetClassifier, FHENeuralNetRegressor


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def test_early_stopping_without_a_validation_split_says_what_to_do(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match=r"monitors 'valid_loss'.*train_split=skorch.dataset"):
        FHENeuralNetClassifier(callbacks=[EarlyStopping()], max_epochs=3).fit(X, y)


def test_early_stopping_with_its_defaults_stops_early(cancer, fhe_configuration):
    X, y = cancer
    net = FHENeuralNetClassifier(callbacks=[EarlyStopping()], train_split=ValidSplit(5),
                                 max_epochs=200, random_state=0).fit(X, y)
    assert len(net.history) < 200  # stopped by valid_loss (patience 5)
    assert net.score(X, y) > 0.9
    net.compile(configuration=fhe_configuration)
    np.testing.assert_array_equal(net.predict(X[:20], fhe="simulate"), net.predict(X[:20]))


def test_partial_fit_continues_training_and_requantizes(cancer, fhe_configuration):
    X, y = cancer
    net = FHENeuralNetClassifier(max_epochs=3, random_state=0)
    net.partial_fit(X[:100], y[:100], classes=[0, 1])
    first_weights = net.module_.layers[0].weight.detach().clone()
    first_module = net.quantized_module_
    net.partial_fit(X[100:], y[100:])
    assert len(net.history) == 6  # continued: skorch's history grows
    assert not np.array_equal(first_weights, net.module_.layers[0].weight.detach())
    assert net.quantized_module_ is not first_module  # re-quantized from the new weights
    assert net.score(X, y) > 0.9
    net.compile(configuration=fhe_configuration, batch_size=4)
    rows = X[:4]
    disable = net.predict_proba(rows)
    np.testing.assert_array_equal(net.predict_proba(rows, fhe="simulate"), disable)


@pytest.mark.execute
def test_partial_fit_then_execute_equals_disable(cancer, fhe_configuration):
    X, y = cancer
    net = FHENeuralNetClassifier(max_epochs=2, random_state=0)
    net.partial_fit(X[:200], y[:200]).partial_fit(X[200:], y[200:])
    net.compile(configuration=fhe_configuration, batch_size=4)
    rows = X[:4]
    execute = net.predict_proba(rows, fhe="execute")
    np.testing.assert_array_equal(execute, net.predict_proba(rows, fhe="simulate"))
    np.testing.assert_array_equal(execute, net.predict_proba(rows))


def test_partial_fit_keeps_labels_and_features(cancer):
    X, y = cancer
    net = FHENeuralNetClassifier(max_epochs=1, random_state=0)
    net.partial_fit(X[:50], np.zeros(50, dtype=int), classes=[0, 1])  # one class in the batch
    assert list(net.classes_) == [0, 1]
    with pytest.raises(ValueError, match="labels \\[2\\] not in classes"):
        net.partial_fit(X[:10], np.full(10, 2))
    with pytest.raises(ValueError, match="features"):
        net.partial_fit(X[:10, :5], y[:10])


def test_partial_fit_regressor_keeps_target_scaling():
    X, y = load_diabetes(return_X_y=True)
    net = FHENeuralNetRegressor(max_epochs=2, random_state=0).partial_fit(X[:200], y[:200])
    mean = net.y_mean_.copy()
    net.partial_fit(X[200:], y[200:] + 1000.0)
    np.testing.assert_array_equal(net.y_mean_, mean)


def test_initialize_before_fit_says_what_to_do():
    with pytest.raises(ValueError, match="FHEMLP needs n_inputs and n_outputs.*call fit first"):
        FHENeuralNetClassifier().initialize()
    net = FHENeuralNetClassifier(module__n_inputs=4, module__n_outputs=2).initialize()
    assert net.module_.n_inputs == 4


def test_save_params_new_net_load_params_same_predictions(cancer, tmp_path, fhe_configuration):
    X, y = cancer
    net = FHENeuralNetClassifier(max_epochs=10, random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "params.pt")
    new = clone(net).set_params(max_epochs=1, random_state=1).fit(X, y)  # calibrated, other weights
    assert not np.array_equal(new.predict_proba(X), net.predict_proba(X))
    new.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.predict_proba(X), net.predict_proba(X))
    new.compile(configuration=fhe_configuration)
    np.testing.assert_array_equal(new.predict_proba(X[:8], fhe="simulate"), net.predict_proba(X[:8]))
