"""Encrypted calls fanned out to joblib workers: local processes (n_jobs=2) and a Dask cluster
on this machine. Outputs must equal sequential execution bit for bit, and each worker must
receive and load the server part and the evaluation keys once, not once per circuit call nor
per request: a second request sends its ciphertexts only."""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.deployment import Client, Server, save
from sklearn_fhe.fhe.worker_parts import worker_loads

N_ROWS = 64  # four 16-row calls: more calls than workers

pytestmark = pytest.mark.execute


def scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


#: name → (data, estimator): a small tree ensemble and the default network
MODELS = {
    "RandomForest": (lambda: scaled(load_breast_cancer),
                     lambda: sklearn_fhe.FHERandomForestClassifier(
                         n_estimators=2, max_depth=3, random_state=0, n_bits=5)),
    "NeuralNetClassifier": (lambda: scaled(load_digits),
                            lambda: sklearn_fhe.FHENeuralNetClassifier(random_state=0)),
}


@pytest.fixture(scope="module")
def models(fhe_configuration) -> dict:
    """name → (compiled estimator, rows, sequential predict_proba): encrypted in this process for
    the forest; for the network, its clear integers (the same integers, as the mode tests show:
    64 sequential encrypted rows of it would cost CI a minute for nothing more)."""
    out = {}
    for name, (data, make) in MODELS.items():
        X, y = data()
        estimator = make().fit(X, y)
        estimator.compile(configuration=fhe_configuration)
        rows = X[-N_ROWS:]
        mode = "execute" if name == "RandomForest" else "disable"
        out[name] = (estimator, rows, estimator.predict_proba(rows, fhe=mode))
    return out


@pytest.fixture(scope="module")
def dask_client():
    """A Dask cluster of two worker processes on the loopback address, started here."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def check_once_per_worker(report, n_calls: int) -> None:
    """Each worker process loaded the server and the keys once over its life, never once per
    call or per request."""
    assert report.tasks == 2 < n_calls
    assert 1 <= len(report.workers) <= 2
    for note in report.workers.values():
        assert (note.server_loads, note.key_loads) == (1, 1), note


def check_ciphertexts_only(first, second, strict: bool) -> None:
    """The second request published nothing and its workers fetched no part: the bytes it
    sent them are its ciphertexts and the parts' references. ``strict=False`` (local
    processes, where joblib may give a worker no task of the first request) lets a worker new
    to the second request fetch its parts, once."""
    assert second.published_bytes == 0
    overhead = 1024 * second.tasks  # part references and pickle framing
    for worker, note in second.workers.items():
        assert note.fetched_bytes == 0 or (not strict and worker not in first.workers), note
    if strict:
        assert second.fetched_bytes == 0
    assert second.input_bytes <= second.task_bytes <= second.input_bytes + overhead
    assert first.fetched_bytes > 0 and first.task_bytes <= first.input_bytes + overhead


@pytest.mark.parametrize("name", MODELS)
def test_two_processes_equal_sequential(models, name):
    """Two consecutive requests on n_jobs=2 local processes (the second on two calls)."""
    estimator, rows, sequential = models[name]
    reports = []
    for n_rows in (N_ROWS, 32):
        with sklearn_fhe.config_context(n_jobs=2):
            np.testing.assert_array_equal(estimator.predict_proba(rows[:n_rows], fhe="execute"),
                                          sequential[:n_rows])
        reports.append(estimator.fhe_circuit.last_fan_out)
    check_once_per_worker(reports[0], 4)
    check_ciphertexts_only(*reports, strict=False)


@pytest.mark.parametrize("name", MODELS)
def test_dask_cluster_equals_sequential(models, dask_client, name):
    """Two consecutive requests on a 2-worker cluster (the second on two calls): the same
    results; each worker loads each part once in total; the second sends ciphertexts only."""
    estimator, rows, sequential = models[name]
    reports = []
    for n_rows in (N_ROWS, 32):
        with parallel_config(backend="dask"):
            np.testing.assert_array_equal(estimator.predict_proba(rows[:n_rows], fhe="execute"),
                                          sequential[:n_rows])
        reports.append(estimator.fhe_circuit.last_fan_out)
    check_once_per_worker(reports[0], 4)
    check_ciphertexts_only(*reports, strict=True)
    keys = estimator.fhe_circuit._bundle[1].keys_digest  # noqa: SLF001
    loads = [seen["loads"].get(keys, 0) for seen in dask_client.run(worker_loads).values()]
    assert max(loads) == 1, loads
    workers = set(dask_client.scheduler_info()["workers"])
    assert all(address.startswith("tcp://127.0.0.1:") for address in workers)


def test_sequential_by_default(models):
    """No n_jobs and no joblib context: the calls run in this process, as before."""
    estimator, rows, sequential = models["RandomForest"]
    estimator.fhe_circuit.last_fan_out = None
    np.testing.assert_array_equal(estimator.predict_proba(rows[:20], fhe="execute"),
                                  sequential[:20])
    assert estimator.fhe_circuit.last_fan_out is None


@pytest.fixture(scope="module")
def deployed(models, tmp_path_factory):
    """The forest saved; a client's keys and 64 encrypted rows; the sequential server result."""
    estimator, rows, _ = models["RandomForest"]
    path = save(estimator, tmp_path_factory.mktemp("parallel") / "model")
    client = Client(path)
    client.keygen(seed=0)
    server = Server(path)
    keys = server.load_keys(client.evaluation_keys())
    payload = client.encrypt(rows)
    return client, server, keys, payload, client.predict_proba(server.run(payload, keys))


def test_server_run_two_processes(deployed):
    client, server, keys, payload, sequential = deployed
    np.testing.assert_array_equal(client.predict_proba(server.run(payload, keys, n_jobs=2)),
                                  sequential)
    check_once_per_worker(server.last_fan_out, 4)


def test_server_run_on_dask(deployed, dask_client):
    client, server, keys, payload, sequential = deployed
    with parallel_config(backend="dask"):
        result = server.run(payload, keys)
    np.testing.assert_array_equal(client.predict_proba(result), sequential)
    check_once_per_worker(server.last_fan_out, 4)
