"""Client and server in separate processes, sharing only the saved directories and bytes.

Every family is saved; the client part alone generates keys, encrypts and reads results; a
separate Python process holding only the server part (and the manifest) runs the ciphertexts.
The decrypted answers must equal the estimator's own ``fhe="disable"`` answers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from concrete import fhe
from concrete.compiler import Keyset, LweSecretKey
from concrete.fhe.compilation.keys import Keys
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe import compile_torch_model
from sklearn_fhe.deployment import Client, Server, save
from sklearn_fhe.deployment.manifest import MANIFEST, SERVER_FILES
from sklearn_fhe.deployment.payload import unpack

N_ROWS = 17  # a full 16-row call and a 1-row call

pytestmark = pytest.mark.execute


def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def small_cnn(configuration):
    """A compile_torch_model CNN on 1x8x8 digits."""
    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, stride=2), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2, stride=1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 10))
    optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(cnn(torch.as_tensor(images)), torch.as_tensor(y)).backward()
        optimizer.step()
    module = compile_torch_model(cnn.eval(), images[:500], n_bits={"inputs": 1, "weights": 3,
                                 "activations": 2}, configuration=configuration)
    return module, images


#: name → (data, estimator); the reference configurations, sized for a test
ESTIMATORS = {
    "LogisticRegression": (cancer, lambda: sklearn_fhe.FHELogisticRegression(n_bits=8)),
    "DecisionTree": (cancer, lambda: sklearn_fhe.FHEDecisionTreeClassifier(
        max_depth=5, random_state=0, n_bits=6)),
    "RandomForest": (cancer, lambda: sklearn_fhe.FHERandomForestClassifier(
        n_estimators=4, max_depth=3, random_state=0, n_bits=6)),
    "XGBoost": (cancer, lambda: sklearn_fhe.FHEXGBClassifier(n_estimators=4, max_depth=3,
                                                             n_bits=6)),
    "NeuralNetClassifier": (digits, lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)),
    "Ridge": (diabetes, lambda: sklearn_fhe.FHERidge(n_bits=8)),
    "NeuralNetRegressor": (diabetes, lambda: sklearn_fhe.FHENeuralNetRegressor(
        random_state=0, max_epochs=20)),
}

SERVER_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sklearn_fhe.deployment import Server
    for job in Path(sys.argv[1]).iterdir():
        server = Server(job / "model")
        keys = server.load_keys((job / "keys.bin").read_bytes())
        result = server.run((job / "payload.bin").read_bytes(), keys)
        (job / "result.bin").write_bytes(result)
        print(job.name, "ok", flush=True)
""")


@pytest.fixture(scope="module")
def deployments(tmp_path_factory, fhe_configuration) -> dict:
    """Save each model; on the client side, keys and encrypted rows; the server part alone
    (manifest + server/) copied where the server process reads it."""
    root = tmp_path_factory.mktemp("deploy")
    jobs = root / "server_jobs"
    jobs.mkdir()
    cases = {}
    for name, (data, make) in ESTIMATORS.items():
        X, y = data()
        estimator = make().fit(X, y)
        estimator.compile(configuration=fhe_configuration)
        cases[name] = (estimator, X[-N_ROWS:])
    module, images = small_cnn(fhe_configuration)
    cases["TorchCNN"] = (module, images[-N_ROWS:])
    out = {}
    for name, (model, rows) in cases.items():
        saved = save(model, root / name)
        client = Client(saved)
        client.keygen(seed=0)
        job = jobs / name
        (job / "model" / "server").mkdir(parents=True)
        for file in (MANIFEST, *SERVER_FILES):
            shutil.copy(saved / file, job / "model" / file)
        (job / "keys.bin").write_bytes(client.evaluation_keys())
        (job / "payload.bin").write_bytes(client.encrypt(rows))
        out[name] = (model, rows, client, job)
    server = subprocess.run([sys.executable, "-c", SERVER_SCRIPT, str(jobs)], cwd=root,
                            capture_output=True, text=True, timeout=1800)
    assert server.returncode == 0, server.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", [*ESTIMATORS, "TorchCNN"])
def test_client_outputs_equal_the_clear_model(deployments, name):
    model, rows, client, job = deployments[name]
    result = (job / "result.bin").read_bytes()
    if name == "TorchCNN":
        np.testing.assert_array_equal(client.predict(result), model.forward(rows))
        return
    for method in client.model.methods:
        expected = getattr(model, method)(rows, fhe="disable")
        np.testing.assert_array_equal(getattr(client, method)(result), expected, err_msg=method)


def test_methods_are_those_of_the_estimator(deployments):
    assert deployments["LogisticRegression"][2].model.methods == (
        "predict", "predict_proba", "predict_log_proba", "decision_function")
    assert deployments["DecisionTree"][2].model.methods == ("predict", "predict_proba")
    assert deployments["Ridge"][2].model.methods == ("predict",)
    with pytest.raises(AttributeError, match="no predict_proba"):
        _, _, client, job = deployments["Ridge"]
        client.predict_proba((job / "result.bin").read_bytes())


def test_server_holds_no_secret_key(deployments):
    """The server part is the compiled circuit only; a server built from it holds nothing
    from which a secret key can be had, and running writes nothing next to it."""
    _, _, _, job = deployments["DecisionTree"]
    files = sorted(p.relative_to(job / "model").as_posix() for p in (job / "model").rglob("*")
                   if p.is_file())
    assert files == sorted([MANIFEST, *SERVER_FILES])  # unchanged by the server's run
    server = Server(job / "model")
    key_holders = (fhe.Client, Keys, Keyset, LweSecretKey)
    held = {**vars(server), **{f"_server.{n}": v for n, v in vars(server._server).items()}}
    assert not [n for n, v in held.items() if isinstance(v, key_holders)], held
    assert not any("key" in name.lower() for name in held), sorted(held)
    import zipfile
    with zipfile.ZipFile(job / "model" / "server" / "server.zip") as bundle:
        names = bundle.namelist()
    assert not [n for n in names if "key" in n.lower()], names


def test_payload_sizes_are_small(deployments):
    """Compressed input ciphertexts: about a kilobyte per linear row; trees send one small
    ciphertext per distinct comparison of the model."""
    model, rows, client, job = deployments["LogisticRegression"]
    payload = (job / "payload.bin").read_bytes()
    assert len(payload) / len(rows) < 1100
    message = unpack(payload, "inputs", client.fingerprint, client.functions)
    assert [(b.function, b.rows) for b in message.blobs] == [("batch_16", 16), ("batch_1", 1)]
