"""A deployed client refuses what the model was not trained on (issue 19).

The last step of a fitted pipeline is saved; the client applies no preprocessing. Columns named
otherwise than at fit are refused; a raw DataFrame given to a model fitted on the scaler's
output (no names recorded) is warned about twice: scikit-learn's feature-names warning, with
what to do, and the range check (its columns lie far outside the calibrated input range).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import sklearn_fhe
from sklearn_fhe.deployment import Client, InputRangeWarning, RemoteClient, Server, save
from sklearn_fhe.deployment.client_model import ClientModel
from sklearn_fhe.deployment.input_checks import FAR_WIDTHS, MIN_ROWS, calibrated_range

N_ROWS = 17


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def deployed(cancer, tmp_path_factory, fhe_configuration):
    """kind → (pipeline, client): the pipeline's last step saved alone, fitted on the scaler's
    output as a DataFrame ("named", ``set_output(transform="pandas")``) or as an array
    ("unnamed", scikit-learn's default: the case issue 19 reported)."""
    X, y = cancer
    root = tmp_path_factory.mktemp("input_checks")
    out = {}
    for kind in ("named", "unnamed"):
        pipe = make_pipeline(StandardScaler(), sklearn_fhe.FHELogisticRegression(n_bits=8))
        if kind == "named":
            pipe.set_output(transform="pandas")
        pipe.fit(X, y)
        pipe[-1].compile(configuration=fhe_configuration)
        client = Client(save(pipe[-1], root / kind))
        client.keygen(seed=0)
        out[kind] = (pipe, client, root / kind)
    return out


@pytest.mark.parametrize("change, message", [
    (lambda X: X[X.columns[::-1]], r"another order: column 0 is 'worst fractal dimension', "
                                   r"expected 'mean radius'"),
    (lambda X: X.drop(columns="mean area"), r"Missing: \['mean area'\]"),
    (lambda X: X.assign(extra=0.0), r"Not seen at fit: \['extra'\]"),
    (lambda X: X.rename(columns={"mean radius": "radius"}),
     r"Missing: \['mean radius'\]. Not seen at fit: \['radius'\]"),
])
def test_columns_other_than_at_fit_are_refused(deployed, cancer, change, message):
    pipe, client, _ = deployed["named"]
    X = pipe[:-1].transform(cancer[0][:N_ROWS])
    with pytest.raises(ValueError, match=message) as error:
        client.encrypt(change(X))
    text = str(error.value)
    assert text.startswith("The feature names should match those that were passed during fit.")
    assert "fitted on 30 columns ['mean radius', 'mean texture'" in text  # expected, then given
    assert "X has " in text and "pipe[:-1].transform(X)" in text  # what to do


@pytest.mark.execute
def test_the_columns_of_fit_in_their_order_work(deployed, cancer):
    pipe, client, path = deployed["named"]
    X = pipe[:-1].transform(cancer[0][-N_ROWS:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        payload = client.encrypt(X)
    server = Server(path)
    result = server.run(payload, server.load_keys(client.evaluation_keys()))
    np.testing.assert_array_equal(client.predict_proba(result),
                                  pipe[-1].predict_proba(X, fhe="disable"))


def test_pipeline_last_step_given_the_raw_frame_is_warned_about(deployed, cancer):
    """The reported case: fitted on the scaler's array output, no names to check. The frame's
    names give scikit-learn's warning (with what to do); its unscaled areas and perimeters lie
    far outside the calibrated range: the range warning names them."""
    pipe, client, _ = deployed["unnamed"]
    with pytest.warns(UserWarning) as record:
        client.encrypt(cancer[0][:N_ROWS])
    messages = {w.category: str(w.message) for w in record}
    assert set(messages) == {UserWarning, InputRangeWarning}, messages
    assert messages[UserWarning].startswith(
        "X has feature names, but FHELogisticRegression was fitted without feature names")
    assert "pipe[:-1].transform(X)" in messages[UserWarning]
    assert "'mean area'" in messages[InputRangeWarning]
    assert "pipe[:-1].transform(X)" in messages[InputRangeWarning]
    with pytest.warns(InputRangeWarning, match=r"column\(s\) 2, 3, 22, 23"):  # an array: indices
        client.encrypt(cancer[0].to_numpy()[:N_ROWS])


def test_pipeline_last_step_given_preprocessed_rows_warns_nothing(deployed, cancer):
    pipe, client, _ = deployed["unnamed"]
    X = pipe[:-1].transform(cancer[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for start in range(0, len(X), 16):
            client.model.quantize(X[start:start + 16])


def test_range_is_judged_from_a_few_rows(deployed, cancer):
    """One value can lie far out on ordinary data: fewer than MIN_ROWS rows are not judged."""
    _, client, _ = deployed["unnamed"]
    raw = cancer[0].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        client.model.quantize(raw[: MIN_ROWS - 1])
    with pytest.warns(InputRangeWarning):
        client.model.quantize(raw[:MIN_ROWS])


def _scaled_split(loader, scaler, seed):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    fitted = scaler().fit(X_train)
    return fitted.transform(X_train), fitted.transform(X_test), y_train, X_test


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine, load_digits])
@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler])
def test_ordinary_test_data_is_never_warned_about(loader, scaler):
    """The range check on held-out data preprocessed as at fit, in batches of MIN_ROWS and 16
    and whole: no warning (a linear model's ranges are per feature, a network's one for all)."""
    X_train, X_test, y_train, raw_test = _scaled_split(loader, scaler, seed=0)
    models = [sklearn_fhe.FHELogisticRegression(max_iter=300).fit(X_train, y_train)]
    if scaler is StandardScaler:  # the networks expect standardized inputs
        models.append(sklearn_fhe.FHENeuralNetClassifier(max_epochs=2, random_state=0)
                      .fit(X_train.astype(np.float32), y_train))
    for model in models:
        client_model = ClientModel.from_estimator(model)
        assert calibrated_range(client_model.quantization, X_train.shape[1]) is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error", InputRangeWarning)
            for size in (MIN_ROWS, 16, len(X_test)):
                for start in range(0, len(X_test) - size + 1, size):
                    client_model.quantize(X_test[start:start + size])


def test_calibrated_range_of_each_family(cancer):
    X = StandardScaler().fit_transform(cancer[0]).astype(np.float32)
    y = cancer[1].to_numpy()
    linear = ClientModel.from_estimator(sklearn_fhe.FHELogisticRegression().fit(X, y))
    low, high = calibrated_range(linear.quantization, 30)
    assert low.shape == high.shape == (30,) and np.all(low < high)
    # the MSE-optimal range: it may clip a few outliers, not the bulk of the data
    assert np.all(low <= np.quantile(X, 0.01, axis=0) + 1e-5)
    assert np.all(high >= np.quantile(X, 0.99, axis=0) - 1e-5)
    net = sklearn_fhe.FHENeuralNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    low, high = calibrated_range(ClientModel.from_estimator(net).quantization, 30)
    # the input fake quantizer's Clip, mapped back through the network's per-feature map
    scaling = net.module_.input_scaling
    offset, scale = scaling.offset.numpy(), scaling.scale.numpy()
    np.testing.assert_allclose((low - offset) / scale, (low[0] - offset[0]) / scale[0], rtol=1e-5)
    np.testing.assert_allclose(high - offset, offset - low, rtol=1e-5)
    # trees encrypt comparison bits (values past the outer thresholds encode alike): no check
    tree = sklearn_fhe.FHEDecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    assert ClientModel.from_estimator(tree).input_encoder is not None
    assert FAR_WIDTHS >= 10


@pytest.mark.execute
def test_remote_client_checks_like_the_client(deployed, cancer):
    """RemoteClient encrypts through a Client: the same refusal, before any request."""
    pytest.importorskip("fastapi")
    from sklearn_fhe.deployment.local_service import LocalService

    pipe, _, path = deployed["named"]
    X = pipe[:-1].transform(cancer[0][-5:])
    with LocalService(path) as service:
        remote = RemoteClient(service.url, seed=0)
        with pytest.raises(ValueError, match="feature names should match.*Missing"):
            remote.predict(X.drop(columns="mean area"))
        np.testing.assert_array_equal(remote.predict(X), pipe[-1].predict(X))
