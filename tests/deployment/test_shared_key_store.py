"""Key sets that outlive a process and are shared: ``sklearn-fhe serve --key-store DIR`` in real
child processes on 127.0.0.1 and free ports.

Two processes on one directory answer each other's key ids; a process killed (SIGKILL) while it
writes an uploaded key set and started again answers the key ids it had, without a re-upload,
and never serves the key set it was writing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sklearn_fhe.deployment import Client, RemoteClient
from sklearn_fhe.deployment.disk_key_store import key_digest
from sklearn_fhe.deployment.local_service import LocalService

pytest.importorskip("fastapi")
pytestmark = pytest.mark.execute


def requests_to(service, endpoint: str) -> float:
    """Requests the service counted on ``endpoint`` (its /metrics, parsed)."""
    text = service.get("/metrics").decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "sklearn_fhe_requests_total"
               and sample.labels["endpoint"] == endpoint)


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream",
                                              **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def forbid_uploads(remote: RemoteClient) -> None:
    def upload_keys():
        raise AssertionError("the keys were uploaded again")

    remote.upload_keys = upload_keys


def check_complete(store) -> None:
    """Every key set on disk holds the bytes its name says; no write is left over."""
    for path in store.glob("*/keys/*"):
        assert key_digest(path.read_bytes()) == path.name, path
    assert not list(store.glob("*/tmp/*.part"))


def test_two_processes_share_one_key_store(saved_forest, tmp_path):
    model, rows, path = saved_forest
    store = tmp_path / "keys"
    options = ["--key-store", str(store)]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: LocalService(path, options), range(2))
    with first, second:
        expected = model.predict(rows, fhe="disable")
        remote = RemoteClient(first.url, seed=0)
        np.testing.assert_array_equal(remote.predict(rows[:2]), expected[:2])
        remote.url = second.url  # the other process: as a load balancer would send it
        forbid_uploads(remote)
        np.testing.assert_array_equal(remote.predict(rows), expected)
        assert requests_to(second, "/keys") == 0
        assert second.health()["disk_key_sets"] == 1
        # the same keys uploaded to the second process: the same entry, not a second one
        status, answer = post(second.url + "/keys", remote.client.evaluation_keys(), {})
        assert (status, answer["key_id"]) == (200, remote.key_id)
        assert len(list(store.glob("*/keys/*"))) == 1
        check_complete(store)


def upload_until_written(service, body: bytes, tmp_dir, timeout: float = 120.0) -> bool:
    """POST ``body`` to /keys and freeze the server (SIGSTOP) the moment a partial key file
    appears → whether it was caught writing (False: the upload finished first)."""
    finished = threading.Event()

    def upload() -> None:
        try:
            post(service.url + "/keys", body, {})
        except OSError:  # the server is killed under the request
            pass
        finished.set()

    threading.Thread(target=upload, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not finished.is_set() and time.monotonic() < deadline:
        if any(name.endswith(".part") for name in os.listdir(tmp_dir)):
            os.kill(service.process.pid, signal.SIGSTOP)
            return True
        time.sleep(0.0005)
    return False


def test_killed_during_key_upload_restarts_with_old_keys(saved_forest, tmp_path):
    model, rows, path = saved_forest
    store = tmp_path / "keys"
    options = ["--key-store", str(store)]
    service = LocalService(path, options)
    try:
        old = RemoteClient(service.url, seed=0)  # kept on disk
        tmp_dir = next(store.glob("*/tmp"))
        caught = None
        for seed in range(1, 6):  # the write lasts tens of ms: caught at the first try, as a rule
            client = Client(path)
            client.keygen(seed=seed)
            new_id = key_digest(client._client.evaluation_keys.serialize())  # noqa: SLF001
            if upload_until_written(service, client.evaluation_keys(), tmp_dir):
                # frozen mid-write: a partial file, and nothing under the new key id yet
                assert not (tmp_dir.parent / "keys" / new_id).exists()
                caught = new_id
                break
        assert caught, "the server finished every key write before it could be stopped"
        service.kill()  # SIGKILL, while stopped mid-write
    finally:
        service.close()
    assert list(tmp_dir.glob("*.part")), "the killed write left no partial file"
    with LocalService(path, options) as restarted:
        check_complete(store)  # the partial file of the dead process is gone
        old.url = restarted.url
        forbid_uploads(old)
        np.testing.assert_array_equal(old.predict(rows), model.predict(rows, fhe="disable"))
        status, answer = post(restarted.url + "/predict", old.client.encrypt(rows[:1]),
                              {"X-Key-Id": caught})
        assert status == 404 and "Unknown or expired key id" in answer["detail"]
        assert requests_to(restarted, "/keys") == 0
