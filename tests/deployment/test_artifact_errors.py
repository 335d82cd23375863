"""Saved models and messages that are not what they claim give clear errors, loading nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import zlib

import numpy as np
import pytest

import sklearn_fhe
from sklearn_fhe.deployment import ArtifactError, Client, PayloadError, Server, save
from sklearn_fhe.deployment.client import client_archive
from sklearn_fhe.deployment.manifest import MANIFEST
from sklearn_fhe.deployment.payload import Message, pack, unpack


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 5)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def fitted(data, n_bits=4, configuration=None):
    X, y = data
    model = sklearn_fhe.FHELogisticRegression(n_bits=n_bits).fit(X, y)
    return model.compile(configuration=configuration)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data, fhe_configuration):
    path = tmp_path_factory.mktemp("models") / "lr"
    return save(fitted(data, configuration=fhe_configuration), path)


@pytest.fixture(scope="module")
def other(tmp_path_factory, data, fhe_configuration):
    """Another model (other quantization, so other circuit types)."""
    path = tmp_path_factory.mktemp("models") / "other"
    return save(fitted(data, n_bits=7, configuration=fhe_configuration), path)


@pytest.fixture(scope="module")
def session(saved):
    client = Client(saved)
    client.keygen(seed=1)
    return client, Server(saved), client.evaluation_keys()


def copy_of(saved, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


# -- artifacts ------------------------------------------------------------------------------------
def test_round_trip_equals_the_estimator(session, data, saved):
    client, server, keys = session
    X, _ = data
    result = server.run(client.encrypt(X[:5]), keys)
    model_proba = client.predict_proba(result)
    assert model_proba.shape == (5, 2)
    assert np.allclose(model_proba.sum(axis=1), 1)


@pytest.mark.parametrize("part, file", [("client", "client/model.json"),
                                        ("server", "server/server.zip"),
                                        ("client", "client/client.specs")])
def test_tampered_file(saved, tmp_path, part, file):
    copy = copy_of(saved, tmp_path)
    with open(copy / file, "ab") as handle:
        handle.write(b" ")
    with pytest.raises(ArtifactError, match="has changed since the model was saved"):
        (Client if part == "client" else Server)(copy)


def test_wrong_format_version(saved, tmp_path):
    copy = copy_of(saved, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["format_version"] = 99
    (copy / MANIFEST).write_text(json.dumps(manifest))
    for role in (Client, Server):
        with pytest.raises(ArtifactError, match="format version 99; this sklearn_fhe reads"):
            role(copy)


def test_other_concrete_version(saved, tmp_path):
    copy = copy_of(saved, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["concrete_python"] = "0.0.1"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="compiled with concrete-python 0.0.1"):
        Server(copy)


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"format": "other"})])
def test_not_a_model_directory(tmp_path, content):
    (tmp_path / "something.txt").write_text("hello")
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    for role in (Client, Server):
        with pytest.raises(ArtifactError, match="not (a saved sklearn_fhe model|a valid sklearn_fhe"
                                                " manifest|an sklearn_fhe model)"):
            role(tmp_path)


def test_missing_part(saved, tmp_path):
    import shutil

    copy = copy_of(saved, tmp_path)
    shutil.rmtree(copy / "server")
    Client(copy)  # the client needs only its part
    with pytest.raises(ArtifactError, match="has no server/"):
        Server(copy)


def test_save_refuses_to_clobber(saved, data):
    with pytest.raises(FileExistsError, match="not empty"):
        save(fitted(data), saved)


def test_save_needs_a_fitted_model(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save(sklearn_fhe.FHELogisticRegression(), tmp_path / "m")
    with pytest.raises(TypeError, match="fitted sklearn_fhe estimator or a QuantizedModule"):
        save(object(), tmp_path / "m")


def test_client_archive_round_trip(saved, session, data):
    client = Client.from_archive(client_archive(saved))
    assert client.fingerprint == session[0].fingerprint
    with pytest.raises(ArtifactError, match="Not a client archive"):
        Client.from_archive(b"not a zip")


def test_client_checks_inputs_like_the_estimator(session, data):
    client, _, _ = session
    X, _ = data
    with pytest.raises(ValueError, match="X has 4 features, but FHELogisticRegression is "
                                         "expecting 5 features"):
        client.encrypt(X[:3, :4])
    with pytest.raises(ValueError, match="NaN"):
        client.encrypt(np.full((2, 5), np.nan))


# -- messages -------------------------------------------------------------------------------------
def test_random_bytes(session):
    client, server, keys = session
    with pytest.raises(PayloadError, match="not an sklearn_fhe message"):
        server.run(os.urandom(2000), keys)
    with pytest.raises(PayloadError, match="not an sklearn_fhe message"):
        server.run(client.encrypt(np.zeros((1, 5))), os.urandom(100))


def test_truncated(session, data):
    client, server, keys = session
    payload = client.encrypt(data[0][:3])
    with pytest.raises(PayloadError, match="truncated"):
        server.run(payload[: len(payload) - 10], keys)
    with pytest.raises(PayloadError, match="truncated|malformed"):
        server.run(payload[:30], keys)


def _rewrapped(payload: bytes, server: Server, change) -> bytes:
    """``payload`` with ``change`` applied to its first ciphertext, inside a valid envelope."""
    message = unpack(payload, "inputs", server.fingerprint, server.functions)
    first = dataclasses.replace(message.blobs[0], data=change(message.blobs[0].data))
    return pack(Message(message.kind, message.model, [first, *message.blobs[1:]]))


def test_corrupt_ciphertext(session, data):
    client, server, keys = session
    payload = client.encrypt(data[0][:1])
    corrupt = _rewrapped(payload, server, lambda blob: blob[:-200] + os.urandom(200))
    with pytest.raises(PayloadError, match="not a valid input"):
        server.run(corrupt, keys)
    deflated = bytearray(payload)  # the deflated stream itself damaged
    deflated[-200:] = os.urandom(200)
    with pytest.raises(PayloadError, match="deflated ciphertext .* corrupt|not a valid input"):
        server.run(bytes(deflated), keys)


def test_small_ciphertexts_travel_deflated(session, data):
    client, server, keys = session
    payload = client.encrypt(data[0][:1])
    message = unpack(payload, "inputs", server.fingerprint, server.functions)
    assert len(payload) < len(message.blobs[0].data)  # the envelope pays for itself


def test_deflate_bomb_is_refused(session, data):
    client, server, keys = session
    payload = client.encrypt(data[0][:1])
    header = 18  # the envelope's fixed part; one call follows
    bomb = zlib.compress(b"\0" * (64 << 20))  # 64 MB from ~64 KB
    message = unpack(payload, "inputs", server.fingerprint, server.functions)
    blob = message.blobs[0]
    forged = (payload[:header] + (1).to_bytes(4, "big") + blob.rows.to_bytes(4, "big")
              + b"\1" + len(bomb).to_bytes(8, "big") + bomb)
    with pytest.raises(PayloadError, match="inflates implausibly"):
        server.run(forged, keys)


def test_another_models_messages(session, other, data):
    client, server, keys = session
    foreign = Client(other)
    foreign.keygen(seed=2)
    with pytest.raises(PayloadError, match="belongs to another model"):
        server.run(foreign.encrypt(data[0][:2]), keys)
    with pytest.raises(PayloadError, match="belongs to another model"):
        server.run(client.encrypt(data[0][:2]), foreign.evaluation_keys())
    result = server.run(client.encrypt(data[0][:2]), keys)
    with pytest.raises(PayloadError, match="belongs to another model"):
        foreign.predict(result)


def test_wrong_kind(session, data):
    client, server, keys = session
    with pytest.raises(PayloadError, match="Expected inputs, got keys"):
        server.run(keys, keys)


def test_no_keys_yet(saved):
    client = Client(saved)
    with pytest.raises(RuntimeError, match="call keygen"):
        client.encrypt(np.zeros((1, 5)))
