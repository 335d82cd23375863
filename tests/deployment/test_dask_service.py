"""The service on a Dask cluster: ``sklearn-fhe serve --dask-scheduler`` in a child process, a
``LocalCluster`` of 2 worker processes, all on 127.0.0.1.

For a small forest and the default network, two consecutive requests: the answers equal
``predict(X, fhe="disable")``; each worker loads each key set (and server part) at most once in
total; and the second request sends the workers its ciphertexts only — counted by the service
(``/metrics``) and by the workers themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.deployment import RemoteClient, save
from sklearn_fhe.deployment.local_service import LocalService
from sklearn_fhe.deployment.payload import unpack
from sklearn_fhe.fhe.worker_parts import worker_loads

pytest.importorskip("fastapi")
distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.execute

N_ROWS = 20  # two circuit calls (16 + 4 rows): one per worker
#: Pickled part references and framing of one task, beyond its ciphertexts.
TASK_OVERHEAD = 1024


def scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


MODELS = {
    "forest": (load_breast_cancer, lambda: sklearn_fhe.FHERandomForestClassifier(
        n_estimators=2, max_depth=3, random_state=0, n_bits=5)),
    "network": (load_digits, lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)),
}


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes and their scheduler on the loopback address, and a client of it."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as local, \
            distributed.Client(local) as client:
        assert all(address.startswith("tcp://127.0.0.1:")
                   for address in client.scheduler_info()["workers"])
        yield local, client


def worker_bytes(service) -> dict:
    """The service's counters of bytes sent to workers and of worker part loads."""
    text = service.get("/metrics").decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sklearn_fhe_worker_bytes_total":
                out[sample.labels["what"]] = sample.value
            if sample.name == "sklearn_fhe_worker_part_loads_total":
                out["loads_" + sample.labels["kind"]] = sample.value
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_two_requests_on_the_cluster(cluster, name, tmp_path, fhe_configuration):
    local, client = cluster
    loader, make = MODELS[name]
    X, y = scaled(loader)
    model = make().fit(X, y).compile(configuration=fhe_configuration)
    rows = X[-N_ROWS:]
    expected = model.predict(rows, fhe="disable")
    path = save(model, tmp_path / "model")
    with LocalService(path, ["--dask-scheduler", local.scheduler_address]) as service:
        assert service.health()["dask"]
        remote = RemoteClient(service.url, seed=0)
        payload = remote.client.encrypt(rows)
        message = unpack(payload, "inputs", remote.client.fingerprint, remote.client.functions)
        ciphertexts = sum(len(blob.data) for blob in message.blobs)
        counted, seen = [worker_bytes(service)], [client.run(worker_loads)]
        for _ in range(2):
            np.testing.assert_array_equal(remote.predict(rows), expected)
            counted.append(worker_bytes(service))
            seen.append(client.run(worker_loads))

    # each worker loaded this key set at most once, over both requests; together, at least once
    loads = [seen[-1][worker]["loads"].get(remote.key_id, 0) for worker in seen[-1]]
    assert max(loads) == 1 and sum(loads) >= 1, seen[-1]
    assert all(max(worker["loads"].values(), default=0) == 1 for worker in seen[-1].values())
    # the first request sent the parts to the workers; the second, its ciphertexts only
    first = {k: counted[1].get(k, 0) - counted[0].get(k, 0) for k in counted[1]}
    second = {k: counted[2].get(k, 0) - counted[1].get(k, 0) for k in counted[2]}
    assert first["parts"] > 0 and first.get("loads_keys", 0) >= 1
    assert second["parts"] == 0
    assert second.get("loads_keys", 0) == second.get("loads_server", 0) == 0
    assert ciphertexts <= second["ciphertexts"] <= ciphertexts + TASK_OVERHEAD * len(message.blobs)
    # the workers' own count: nothing fetched during the second request
    assert {w: s["fetched_bytes"] for w, s in seen[2].items()} == \
        {w: s["fetched_bytes"] for w, s in seen[1].items()}
