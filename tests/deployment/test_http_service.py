"""The HTTP service over real HTTP: ``sklearn-fhe serve`` (uvicorn) in child processes on
127.0.0.1 and free ports, queried by RemoteClient and by hand with bad input.

One server per model for the whole module: a linear model, a small tree ensemble and the
default neural network. Each bad input gets its documented 4xx and the server keeps serving.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from concrete import fhe
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.deployment import Client, RemoteClient, ServiceError, save
from sklearn_fhe.deployment.key_store import resident_key_bytes
from sklearn_fhe.deployment.local_service import LocalService

pytest.importorskip("fastapi")
pytestmark = pytest.mark.execute

MAX_REQUEST = 64 * 1024
MAX_KEY_UPLOAD = 1 << 20
LR_OPTIONS = ["--max-request-bytes", "64K", "--max-key-upload-bytes", "1M", "--max-key-sets", "4"]


def scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


#: name → (data, estimator, rows queried, serve options)
MODELS = {
    "linear": (load_breast_cancer, lambda: sklearn_fhe.FHELogisticRegression(n_bits=8), 17,
               LR_OPTIONS),
    "trees": (load_breast_cancer, lambda: sklearn_fhe.FHERandomForestClassifier(
        n_estimators=3, max_depth=3, random_state=0, n_bits=6), 5, ["--max-key-sets", "4"]),
    "network": (load_digits, lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0), 5, []),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, fhe_configuration):
    """name → (estimator, rows, service); the servers start together."""
    root = tmp_path_factory.mktemp("served")
    fitted = {}
    for name, (loader, make, n_rows, options) in MODELS.items():
        X, y = scaled(loader)
        model = make().fit(X, y).compile(configuration=fhe_configuration)
        fitted[name] = (model, X[-n_rows:], save(model, root / name), options)
    with ThreadPoolExecutor(len(fitted)) as pool:
        services = dict(zip(fitted, pool.map(lambda f: LocalService(f[2], f[3]),
                                             fitted.values())))
    yield {name: (model, rows, services[name]) for name, (model, rows, _, _) in fitted.items()}
    for service in services.values():
        service.close()


@pytest.fixture(scope="module")
def linear_remote(served):
    model, rows, service = served["linear"]
    return model, rows, service, RemoteClient(service.url, seed=0)


@pytest.fixture
def linear(linear_remote):
    """The linear model's service and a RemoteClient of it whose keys the server holds now
    (the server keeps 4 key sets: a test's uploads may evict another's)."""
    linear_remote[3].upload_keys()
    return linear_remote


@pytest.fixture(scope="module")
def other_client(tmp_path_factory, fhe_configuration):
    """A client of another linear model (other quantization, other circuit)."""
    X, y = scaled(load_breast_cancer)
    model = sklearn_fhe.FHELogisticRegression(n_bits=6).fit(X, y)
    saved = save(model.compile(configuration=fhe_configuration),
                 tmp_path_factory.mktemp("other") / "lr6")
    client = Client(saved)
    client.keygen(seed=2)
    return client, X


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    """POST by hand → (status, JSON answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_inputs(service, body: bytes, key_id: str = None, content_type=None) -> tuple[int, dict]:
    headers = {"Content-Type": content_type or "application/octet-stream"}
    if key_id is not None:
        headers["X-Key-Id"] = key_id
    return post(service.url + "/predict", body, headers)


def assert_refused(answer: tuple, status: int, words: str, service) -> None:
    """``answer`` is ``status`` with a detail that says ``words``, and /health still answers."""
    code, payload = answer
    assert code == status, payload
    assert words in payload["detail"], payload["detail"]
    assert service.health()["status"] == "ok"


# -- RemoteClient equals the local estimator -------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_remote_client_equals_the_estimator(served, name):
    model, rows, service = served[name]
    remote = RemoteClient(service.url, seed=0)
    assert remote.methods == remote.client.model.methods
    for method in remote.methods:
        if method == "predict_log_proba":
            continue  # the same decrypted values as predict_proba
        expected = getattr(model, method)(rows, fhe="disable")
        np.testing.assert_array_equal(getattr(remote, method)(rows), expected, err_msg=method)


def test_model_endpoint_serves_the_client_part(linear):
    _, _, service, remote = linear
    with urllib.request.urlopen(service.url + "/model", timeout=30) as response:
        assert response.headers["Content-Type"] == "application/zip"
        assert response.headers["X-Model-Fingerprint"] == remote.client.fingerprint
        assert Client.from_archive(response.read()).fingerprint == remote.client.fingerprint
    assert service.health()["model"] == remote.client.fingerprint


def test_key_sets_are_charged_their_size_in_memory(served):
    """Compressed keys expand at their first use: the store counts the expanded size."""
    _, _, service = served["trees"]
    before = service.health()
    remote = RemoteClient(service.url, seed=4)
    after = service.health()
    specs = fhe.ClientSpecs.deserialize((service.model_dir / "client" / "client.specs").read_bytes())
    charged = after["key_bytes"] - before["key_bytes"]
    assert after["key_sets"] == before["key_sets"] + 1
    assert charged == resident_key_bytes(specs) > 5 * len(remote.client.evaluation_keys())


def test_missing_method_is_refused_before_any_request(served):
    _, _, service = served["trees"]
    remote = RemoteClient(service.url, seed=1)
    with pytest.raises(AttributeError, match="has no decision_function"):
        remote.decision_function(np.zeros((1, 30)))


# -- bad input: a documented 4xx each, and the server keeps serving -------------------------------
def test_oversized_body(linear):
    _, _, service, remote = linear
    assert_refused(post_inputs(service, b"\0" * (MAX_REQUEST + 1), remote.key_id), 413,
                   "over this server's limit", service)
    chunked = iter([b"\0" * 40_000] * 2)  # no Content-Length: counted as it arrives
    assert_refused(post_inputs(service, chunked, remote.key_id), 413, "more than 65536", service)
    assert_refused(post(service.url + "/keys", b"\0" * (MAX_KEY_UPLOAD + 1),
                        {"Content-Type": "application/octet-stream"}), 413,
                   "over this server's limit", service)


def test_random_bytes(linear):
    _, _, service, remote = linear
    noise = np.random.RandomState(0).bytes(2000)
    assert_refused(post_inputs(service, noise, remote.key_id), 400, "not an sklearn_fhe message",
                   service)
    assert_refused(post(service.url + "/keys", noise, {"Content-Type": "application/octet-stream"}),
                   400, "not an sklearn_fhe message", service)


def test_truncated_ciphertext(linear):
    _, rows, service, remote = linear
    payload = remote.client.encrypt(rows[:1])
    assert_refused(post_inputs(service, payload[:-10], remote.key_id), 400, "truncated", service)


def test_corrupt_ciphertext(linear):
    """A well-formed envelope around bytes concrete cannot read."""
    _, rows, service, remote = linear
    payload = bytearray(remote.client.encrypt(rows[:1]))
    payload[-200:] = bytes(200)
    code, answer = post_inputs(service, bytes(payload), remote.key_id)
    assert code == 400, answer
    assert service.health()["status"] == "ok"


def test_another_models_ciphertext_and_keys(linear, other_client):
    _, _, service, remote = linear
    client, X = other_client
    assert_refused(post_inputs(service, client.encrypt(X[:1]), remote.key_id), 400,
                   "belongs to another model", service)
    assert_refused(post(service.url + "/keys", client.evaluation_keys(),
                        {"Content-Type": "application/octet-stream"}), 400,
                   "belongs to another model", service)


def test_inputs_sent_as_keys(linear):
    """Keys must be an evaluation-keys message: a secret key or anything else is refused."""
    _, rows, service, remote = linear
    assert_refused(post(service.url + "/keys", remote.client.encrypt(rows[:1]),
                        {"Content-Type": "application/octet-stream"}), 400, "Expected keys",
                   service)


def test_unknown_key_id(linear):
    _, rows, service, remote = linear
    assert_refused(post_inputs(service, remote.client.encrypt(rows[:1]), "no-such-key"), 404,
                   "Unknown or expired key id", service)
    # a body near the limit too: answered, not cut off
    assert_refused(post_inputs(service, bytes(MAX_REQUEST), "no-such-key"), 404,
                   "Unknown or expired key id", service)


def test_missing_fields(linear):
    _, rows, service, remote = linear
    assert_refused(post_inputs(service, remote.client.encrypt(rows[:1])), 400,
                   "Missing the X-Key-Id header", service)
    assert_refused(post_inputs(service, b"", remote.key_id), 400, "has no body", service)


def test_wrong_content_type(linear):
    _, rows, service, remote = linear
    body = json.dumps({"inputs": remote.client.encrypt(rows[:1]).hex()}).encode()
    assert_refused(post_inputs(service, body, remote.key_id, "application/json"), 415,
                   "application/octet-stream", service)
    assert_refused(post_inputs(service, bytes(4 * MAX_REQUEST), remote.key_id, "text/plain"), 415,
                   "application/octet-stream", service)
    assert_refused(post(service.url + "/keys", remote.client.evaluation_keys(),
                        {"Content-Type": "text/plain"}), 415, "application/octet-stream", service)


def test_evicted_keys_are_uploaded_again(served):
    """The trees' server holds at most 4 key sets (least recently used out): a client whose
    keys were evicted gets 404, and RemoteClient uploads them again by itself (under the same
    id: the id is the keys' digest)."""
    model, rows, service = served["trees"]
    first = RemoteClient(service.url, seed=3)
    evicted = first.key_id
    for seed in range(4, 8):
        RemoteClient(service.url, seed=seed)
    assert service.health()["key_sets"] == 4
    assert_refused(post_inputs(service, first.client.encrypt(rows[:1]), evicted), 404,
                   "Unknown or expired key id", service)
    np.testing.assert_array_equal(first.predict(rows[:2]), model.predict(rows[:2], fhe="disable"))
    assert first.key_id == evicted


def test_same_keys_are_one_entry(linear):
    """Key ids are the digest of the keys: the same keys uploaded twice are one entry (201
    then 200). A linear model has no table lookup, so no evaluation key at all: its clients'
    (empty) key sets are all the same one."""
    _, _, service, remote = linear
    keys = remote.client.evaluation_keys()
    code, answer = post(service.url + "/keys", keys, {"Content-Type": "application/octet-stream"})
    assert (code, answer["key_id"]) == (200, remote.key_id)
    assert RemoteClient(service.url, seed=11).key_id == remote.key_id


def test_service_error_names_the_status(linear):
    _, _, service, _ = linear
    with pytest.raises(ServiceError, match="/nothing/model answered 404: Not Found") as error:
        RemoteClient(service.url + "/nothing")
    assert error.value.status == 404
