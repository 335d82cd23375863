"""Properties of every estimator family on generated data sets (see conftest for profiles).

For any data set (shapes, scales 1e-6..1e6, constant and duplicate columns) and n_bits 2-8:
fit succeeds or raises one of our documented errors; the simulated circuit gives exactly the
clear integer results; inputs far outside the calibration range are clipped onto the input
grid, overflow no integer of the circuit (outputs and lookup inputs are sized for the whole
grid, see sklearn_fhe.quantization.bounds) and give finite predictions equal to the
simulated circuit's.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

import sklearn_fhe
from tests.properties.invariants import check_extreme_inputs, check_modes_agree
from tests.properties.profiles import checks_execute, examples
from tests.properties.strategies import datasets, extreme_rows

#: Linear models by the targets they accept.
LINEAR = {
    "FHELogisticRegression": "classification", "FHELinearSVC": "classification",
    "FHESGDClassifier": "classification", "FHELinearRegression": "real", "FHERidge": "real",
    "FHELasso": "real", "FHEElasticNet": "real", "FHELinearSVR": "real",
    "FHESGDRegressor": "real", "FHETweedieRegressor": "real",
    "FHEPoissonRegressor": "non-negative", "FHEGammaRegressor": "positive",
}
TREES = {
    "FHEDecisionTreeClassifier": "classification", "FHERandomForestClassifier": "classification",
    "FHEGradientBoostingClassifier": "classification", "FHEXGBClassifier": "classification",
    "FHEDecisionTreeRegressor": "real", "FHERandomForestRegressor": "real",
    "FHEGradientBoostingRegressor": "real", "FHEXGBRegressor": "real",
}
NETWORKS = {"FHENeuralNetClassifier": "classification", "FHENeuralNetRegressor": "real"}


def draw_data(data, target: str):
    task = "classification" if target == "classification" else "regression"
    return data.draw(datasets(task, target), label="data set")


def raw_output(model, X, fhe="disable"):
    """The decrypted circuit output, before the clear post-processing."""
    return model._quantized_output(X, fhe)


def check_estimator(model, dataset, grid_clip) -> None:
    """Fit, then the promises on training rows and on extreme rows. ``grid_clip(model, rows,
    X_train)``, if given, clips rows to the real range the model's input grid represents."""
    note(repr(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the float models
        model.fit(dataset.X, dataset.y)
    execute = checks_execute()
    check_modes_agree(model.predict, dataset.X, execute)
    check_modes_agree(lambda X, fhe: raw_output(model, X, fhe), dataset.X, execute)
    extreme = extreme_rows(dataset.X)
    clear = (model.predict(extreme), raw_output(model, extreme))
    check_extreme_inputs(model.quantized_module_, model._encode_inputs(extreme), clear)
    check_modes_agree(model.predict, extreme, False)
    # what reaches the circuit is the grid: clipping to it first changes nothing
    if grid_clip is not None:
        np.testing.assert_array_equal(raw_output(model, grid_clip(model, extreme, dataset.X)),
                                      raw_output(model, extreme))


def clip_to_input_grid(model, rows: np.ndarray, X_train: np.ndarray) -> np.ndarray:
    """Rows clipped to the real range of the input quantizer's integers."""
    quantization = model.quantized_module_.input_quantizations[0]
    assert not quantization.steps  # the quantizer reads the features themselves
    quantizer = quantization.quantizer
    low, high = quantizer.dequant(quantizer.qmin), quantizer.dequant(quantizer.qmax)
    return np.clip(rows.astype(np.float64), low, high)


def clip_to_training_range(model, rows: np.ndarray, X_train: np.ndarray) -> np.ndarray:
    """Rows clipped to the training range: the first bin starts above its minimum, the last
    one ends at or below its maximum."""
    return np.clip(rows, X_train.min(axis=0), X_train.max(axis=0))


@settings(max_examples=examples(12))
@given(name=st.sampled_from(sorted(LINEAR)), n_bits=st.integers(2, 8), data=st.data())
def test_linear_models(name, n_bits, data) -> None:
    dataset = draw_data(data, LINEAR[name])
    check_estimator(getattr(sklearn_fhe, name)(n_bits=n_bits), dataset, clip_to_input_grid)


@settings(max_examples=examples(8))
@given(name=st.sampled_from(sorted(TREES)), n_bits=st.integers(2, 8),
       n_estimators=st.integers(1, 4), max_depth=st.integers(1, 4), data=st.data())
def test_tree_models(name, n_bits, n_estimators, max_depth, data) -> None:
    dataset = draw_data(data, TREES[name])
    model = getattr(sklearn_fhe, name)(n_bits=n_bits, max_depth=max_depth)
    if "n_estimators" in model.get_params():
        model.set_params(n_estimators=n_estimators)
    check_estimator(model, dataset, clip_to_training_range)


@settings(max_examples=examples(4))
@given(name=st.sampled_from(sorted(NETWORKS)), hidden=st.integers(1, 8),
       input_bits=st.integers(2, 8), weight_bits=st.integers(2, 4),
       activation_bits=st.integers(2, 4), data=st.data())
def test_neural_networks(name, hidden, input_bits, weight_bits, activation_bits, data) -> None:
    dataset = draw_data(data, NETWORKS[name])
    model = getattr(sklearn_fhe, name)(
        max_epochs=3, random_state=0, module__hidden_layer_sizes=(hidden,),
        module__n_input_bits=input_bits, module__n_w_bits=weight_bits,
        module__n_a_bits=activation_bits,
    )
    # (no real-space clip: the QAT input quantizer clips and rescales in client-side steps)
    check_estimator(model, dataset, None)
