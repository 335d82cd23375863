"""Networks take inputs on their own scale (issue 21): FHEMLP maps each raw feature onto its
input grid by a per-feature affine map calibrated on the training data, on the client, so the
default networks need no scaler.

Split of the comparisons: ``train_test_split(X, y, test_size=0.25, random_state=0)``; networks
with ``random_state=0``, otherwise at their defaults.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_friedman1
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHENeuralNetClassifier, FHENeuralNetRegressor
from sklearn_fhe.torch.input_grid import grid_calibration_rows, input_quantizer, input_scaling
from sklearn_fhe.torch.input_scaling import InputScaling, robust_standardization
from sklearn_fhe.torch.modules import FHEMLP


def split(X, y):
    return train_test_split(X, y, test_size=0.25, random_state=0)


# -- the map ---------------------------------------------------------------------------------------
def test_robust_standardization_ignores_outliers_and_keeps_sparse_columns():
    rng = np.random.default_rng(0)
    x = np.column_stack([
        rng.normal(5.0, 2.0, 1000),          # plain
        rng.normal(5.0, 2.0, 1000),          # with one huge outlier
        np.zeros(1000),                      # constant
        (np.arange(1000) < 3).astype(float),  # almost always 0: clipped away entirely
    ])
    x[0, 1] = 1e6
    offset, scale = robust_standardization(x)
    np.testing.assert_allclose(offset[:2], 5.0, atol=0.2)
    np.testing.assert_allclose(scale[:2], 2.0, rtol=0.1)  # the outlier moves neither
    assert scale[2] == 1.0 and offset[2] == 0.0
    assert scale[3] == pytest.approx(x[:, 3].std())  # its unclipped spread, not 0


def test_input_scaling_is_the_identity_until_calibrated_and_a_buffer_after():
    scaling = InputScaling(3)
    x = torch.randn(5, 3) * torch.tensor([1.0, 1e3, 1e-3]) + 7
    assert scaling(x) is x
    scaling.calibrate(x.numpy())
    z = scaling(x)
    np.testing.assert_allclose(z.mean(0).numpy(), 0, atol=1e-3)  # no outlier: a StandardScaler
    np.testing.assert_allclose(scaling.inverse(z), x.numpy(), rtol=1e-5)
    assert {"offset", "scale", "calibrated"} <= set(scaling.state_dict())
    with pytest.raises(ValueError, match="rows of 3 features"):
        scaling.calibrate(np.zeros((4, 2)))


def test_parameters_saved_before_the_map_existed_load_as_the_identity():
    mlp = FHEMLP(n_inputs=4, n_outputs=2)
    old = {k: v for k, v in mlp.state_dict().items() if not k.startswith("input_scaling.")}
    new = FHEMLP(n_inputs=4, n_outputs=2)
    new.input_scaling.calibrate(np.random.default_rng(0).normal(3, 5, (20, 4)))
    new.load_state_dict(old)  # strict: no missing-key error
    assert not bool(new.input_scaling.calibrated)
    assert FHEMLP(n_inputs=4, n_outputs=2, input_scaling=False).input_scaling is None


# -- the estimators --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(1000, random_state=0)
    X_train, X_test, y_train, y_test = split(X, y)
    raw = FHENeuralNetRegressor(random_state=0).fit(X_train, y_train)
    scaled = make_pipeline(StandardScaler(), FHENeuralNetRegressor(random_state=0))
    scaled.fit(X_train, y_train)
    linear = LinearRegression().fit(X_train, y_train)
    return raw, scaled, linear, X_test, y_test


def test_regressor_needs_no_scaler_on_friedman1(friedman, fhe_configuration):
    """Raw make_friedman1(1000, random_state=0): simulated R² within 0.01 of the same network
    after a StandardScaler, and at least LinearRegression's - 0.02 (measured: 0.857 raw, 0.857
    scaled, 0.790 linear; before the map, 0.694 raw)."""
    raw, scaled, linear, X_test, y_test = friedman
    raw.compile(configuration=fhe_configuration)
    r2_raw = r2_score(y_test, raw.predict(X_test, fhe="simulate"))
    r2_scaled = r2_score(y_test, scaled.predict(X_test))
    assert abs(r2_raw - r2_scaled) <= 0.01, (r2_raw, r2_scaled)
    assert r2_raw >= linear.score(X_test, y_test) - 0.02, r2_raw


def test_classifier_needs_no_scaler_on_raw_digits(fhe_configuration):
    """load_digits as it comes (pixels 0-16): accuracy within 0.01 of the same network after a
    StandardScaler (measured: 0.960 raw, 0.956 scaled; before the map, 0.782 raw)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = split(X, y)
    raw = FHENeuralNetClassifier(random_state=0).fit(X_train, y_train)
    scaled = make_pipeline(StandardScaler(), FHENeuralNetClassifier(random_state=0))
    scaled.fit(X_train, y_train)
    accuracy_raw = accuracy_score(y_test, raw.predict(X_test))
    accuracy_scaled = accuracy_score(y_test, scaled.predict(X_test))
    assert abs(accuracy_raw - accuracy_scaled) <= 0.01, (accuracy_raw, accuracy_scaled)
    raw.compile(configuration=fhe_configuration)
    np.testing.assert_array_equal(raw.predict(X_test[:50], fhe="simulate"),
                                  raw.predict(X_test[:50]))


def test_inputs_far_outside_the_training_range_stay_exact(friedman, fhe_configuration):
    """The map is monotone and before the grid's Clip: the worst-case sizing over the whole
    input grid still holds, whatever the raw values (simulate == the clear integers)."""
    raw = friedman[0]
    raw.compile(configuration=fhe_configuration)
    rows = np.array([[1e6] * 10, [-1e6] * 10, [1e6, -1e6] * 5, [-1e6, 1e6] * 5])
    np.testing.assert_array_equal(raw.predict(rows, fhe="simulate"), raw.predict(rows))


@pytest.mark.execute
def test_raw_inputs_execute_like_simulate(friedman, fhe_configuration):
    raw, X_test = friedman[0], friedman[3]
    raw.compile(configuration=fhe_configuration, batch_size=2)
    np.testing.assert_array_equal(raw.predict(X_test[:2], fhe="execute"),
                                  raw.predict(X_test[:2], fhe="simulate"))


def test_the_map_is_calibrated_on_fit_and_kept_by_continued_training():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * [1.0, 1e3, 1e-3] + [0.0, 5e3, 1.0]
    y = (X[:, 0] > 0).astype(int)
    net = FHENeuralNetClassifier(max_epochs=2, random_state=0).partial_fit(X, y)
    scaling = net.module_.input_scaling
    offset, scale = robust_standardization(X.astype(np.float32))
    np.testing.assert_allclose(scaling.offset.numpy(), offset, rtol=1e-5)
    np.testing.assert_allclose(scaling.scale.numpy(), scale, rtol=1e-5)
    kept = scaling.offset.clone()
    net.partial_fit(X * 10, y)  # the weights were trained on the first map: it stays
    np.testing.assert_array_equal(net.module_.input_scaling.offset.numpy(), kept.numpy())
    net.fit(X * 10, y)  # a new fit calibrates it again
    assert not np.allclose(net.module_.input_scaling.offset.numpy(), kept.numpy())


def test_save_initialize_load_round_trip_on_raw_inputs(tmp_path):
    """skorch's round trip into a new, only initialized net: the map is a buffer of the module,
    so the calibration rows drawn on the input grid are mapped back to raw units and the loaded
    net predicts what the saved one did."""
    X, y = load_digits(return_X_y=True)
    net = FHENeuralNetClassifier(max_epochs=3, random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "params.pt")
    new = FHENeuralNetClassifier(module__n_inputs=64, module__n_outputs=10)
    new.initialize().load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(new.module_.input_scaling.scale.numpy(),
                                  net.module_.input_scaling.scale.numpy())
    grid = input_quantizer(new.module_, 64)
    assert grid is new.module_.layers[0].input_quant
    assert input_scaling(new.module_, 64) is new.module_.input_scaling
    rows = grid_calibration_rows(grid, 64, n_rows=20, scaling=new.module_.input_scaling)
    on_grid = grid(new.module_.input_scaling(torch.as_tensor(rows))).detach().numpy()
    levels = on_grid / float(grid.scale.detach())
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    np.testing.assert_array_equal(new.predict_proba(X), net.predict_proba(X))
