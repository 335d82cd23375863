"""What a skorch user brings: EarlyStopping, partial_fit, save_params / load_params (into a
fitted net, or skorch's round trip into a new, only initialized one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit
from torch import nn

from sklearn_fhe import FHENeuralNetClassifier, FHENeuralNetRegressor
from sklearn_fhe.torch.input_grid import grid_calibration_rows, input_quantizer
from sklearn_fhe.torch.modules import FHEMLP
from sklearn_fhe.torch.qat import QuantIdentity


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


# -- skorch's round trip: save_params → a new net → initialize() → load_params (issue 19)

def test_round_trip_into_a_new_initialized_net_predicts_the_same(cancer, tmp_path,
                                                                 fhe_configuration):
    """The plain skorch idiom: the new net has no data, so it calibrates on its input grid
    (FHEMLP's first fake quantizer); its predictions are the saved net's in every mode."""
    X, y = cancer
    net = FHENeuralNetClassifier(max_epochs=5, random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "params.pt")
    new = FHENeuralNetClassifier(module__n_inputs=30, module__n_outputs=2, max_epochs=5)
    new.initialize()
    new.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.predict(X), net.predict(X))
    np.testing.assert_array_equal(new.predict_proba(X), net.predict_proba(X))
    assert new.n_features_in_ == 30 and list(new.classes_) == [0, 1]
    assert new.fhe_cost()["pbs_per_row"] == net.fhe_cost()["pbs_per_row"]
    new.compile(configuration=fhe_configuration, batch_size=4)
    np.testing.assert_array_equal(new.predict_proba(X[:4], fhe="simulate"),
                                  net.predict_proba(X[:4]))


def test_round_trip_labels_come_from_classes(cancer, tmp_path):
    """skorch's files hold no labels: ``classes`` gives them (skorch's own predict returns
    the output index, which is what a new net without ``classes`` predicts)."""
    X, y = cancer
    labels = np.array(["benign", "malignant"])[y]
    net = FHENeuralNetClassifier(max_epochs=2, random_state=0).fit(X, labels)
    net.save_params(f_params=tmp_path / "params.pt")
    shape = {"module__n_inputs": 30, "module__n_outputs": 2}
    new = FHENeuralNetClassifier(classes=list(net.classes_), **shape).initialize()
    new.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.predict(X), net.predict(X))
    without = FHENeuralNetClassifier(**shape).initialize()
    without.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(net.classes_[without.predict(X)], net.predict(X))
    wrong = FHENeuralNetClassifier(classes=["a", "b", "c"], **shape).initialize()
    with pytest.raises(ValueError, match="classes has 3 labels but the loaded module has 2"):
        wrong.load_params(f_params=tmp_path / "params.pt")


def test_round_trip_of_a_regressor_says_what_to_do(tmp_path):
    """The target standardization is not in skorch's files: predict says how to get it, and
    doing so gives the saved net's predictions."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    net = FHENeuralNetRegressor(max_epochs=3, random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "params.pt")
    new = FHENeuralNetRegressor(module__n_inputs=10, module__n_outputs=1).initialize()
    new.load_params(f_params=tmp_path / "params.pt")
    with pytest.raises(NotFittedError, match=r"y_mean_, y_scale_.*"
                       r"net.set_params\(max_epochs=0\).fit\(X, y\).*load_params"):
        new.predict(X)
    new.set_params(max_epochs=0).fit(X, y)
    new.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.predict(X), net.predict(X))


def test_round_trip_of_a_module_without_input_grid_says_what_to_do(cancer, tmp_path):
    X, y = cancer
    def float_module():
        return nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 2))

    params = {"n_bits": 4, "rounding_threshold_bits": 6}
    net = FHENeuralNetClassifier(float_module(), max_epochs=2, random_state=0, **params)
    net.fit(X, y).save_params(f_params=tmp_path / "params.pt")
    new = FHENeuralNetClassifier(float_module(), **params)
    new.initialize().load_params(f_params=tmp_path / "params.pt")
    with pytest.raises(NotFittedError, match=r"\(Sequential\) does not put its inputs on a "
                       r"fixed grid.*set_params\(max_epochs=0\).fit\(X, y\)"):
        new.predict(X)
    new.set_params(max_epochs=0).fit(X, y)
    new.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.predict_proba(X), net.predict_proba(X))


def test_input_quantizer_is_the_grid_the_input_goes_through_first():
    mlp = FHEMLP(n_inputs=4, n_outputs=2)
    assert input_quantizer(mlp, 4) is None  # not initialized: none ran, none was initialized
    assert not bool(mlp.layers[0].input_quant.initialized)
    mlp(torch.randn(16, 4))  # the quantizers set their scales from a first batch
    assert input_quantizer(mlp, 4) is mlp.layers[0].input_quant
    scaled_first = nn.Sequential(nn.Linear(4, 4), QuantIdentity(3, signed=True, init_scale=0.5))
    assert input_quantizer(scaled_first, 4) is None
    rows = grid_calibration_rows(mlp.layers[0].input_quant, 4, n_rows=50)
    grid = mlp.layers[0].input_quant
    assert rows.shape == (50, 4)
    np.testing.assert_allclose(grid(torch.as_tensor(rows)).detach().numpy(), rows, atol=1e-6)
    assert rows.min() == rows[0, 0] < 0 < rows[1, 0] == rows.max()
