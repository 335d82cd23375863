"""Encrypted circuit calls fanned out to joblib workers: local processes, or a Dask cluster.

The driver encrypts and decrypts; the workers only run circuit calls on ciphertexts. concrete's
circuits are not picklable, so a worker receives a ``ServerBundle`` (the saved server part and the
client's evaluation keys, as bytes) and loads it once per process: the calls of a request are cut
into one task per worker (as scikit-learn's forests cut their trees), so each worker receives the
bundle once per request, never once per circuit call. Under ``joblib.parallel_config(backend=
"dask")`` joblib scatters the bundle to the cluster once (its ``__sizeof__`` tells Dask it is
large) and each worker fetches it once.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from concrete import fhe
from joblib import Parallel, delayed, effective_n_jobs

from .. import progress
from .runtime import ServerRuntime

#: One circuit call: the function's name and its serialized encrypted input.
CallBytes = tuple[str, bytes]

# -- worker side: what this process received and loaded ---------------------------------------
_RECEIVED: Counter = Counter()  # bundles unpickled in this process, by digest
_LOADED: Counter = Counter()  # servers and key sets loaded in this process, by digest
_SERVERS: dict = {}
_KEYS: dict = {}
_LOAD_LOCK = threading.Lock()
_MAX_CACHED = 4  # models kept loaded per worker process


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ServerBundle:
    """What a worker needs to run circuit calls: the server part and the evaluation keys.

    Parameters
    ----------
    server : bytes
        concrete's saved server (the ``server.zip`` of a saved model).
    keys : bytes
        The client's serialized evaluation keys (concrete's ``EvaluationKeys.serialize()``).
    """

    def __init__(self, server: bytes, keys: bytes) -> None:
        self.server = server
        self.keys = keys
        self.server_digest = _digest(server)
        self.keys_digest = _digest(keys)

    @property
    def digest(self) -> str:
        """Identity of the server and key set together."""
        return self.server_digest + self.keys_digest

    def __sizeof__(self) -> int:  # read by Dask (through joblib) to scatter it once
        return len(self.server) + len(self.keys)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        _RECEIVED[self.digest] += 1  # counted where it arrives: once per worker is the contract

    def load(self) -> tuple[ServerRuntime, fhe.EvaluationKeys]:
        """The server runtime and keys, loaded on first use in this process."""
        with _LOAD_LOCK:
            if self.server_digest not in _SERVERS:
                _evict(_SERVERS)
                directory = Path(tempfile.mkdtemp(prefix="sklearn_fhe_worker_"))
                (directory / "server.zip").write_bytes(self.server)
                _SERVERS[self.server_digest] = ServerRuntime(
                    fhe.Server.load(directory / "server.zip"))
                _LOADED[self.server_digest] += 1
            if self.keys_digest not in _KEYS:
                _evict(_KEYS)
                _KEYS[self.keys_digest] = fhe.EvaluationKeys.deserialize(self.keys)
                _LOADED[self.keys_digest] += 1
            return _SERVERS[self.server_digest], _KEYS[self.keys_digest]


def _evict(cache: dict) -> None:
    while len(cache) >= _MAX_CACHED:
        cache.pop(next(iter(cache)))


@dataclass(frozen=True)
class WorkerNote:
    """What one task saw in its worker: who it was, and how often the bundle reached it and
    was loaded there (over the process's life)."""

    worker: str
    received: int
    server_loads: int
    key_loads: int


def run_calls(bundle: ServerBundle, calls: list) -> tuple[list, WorkerNote]:
    """Worker task: run ``calls`` (name, serialized input) → serialized outputs per call."""
    runtime, keys = bundle.load()
    results = [[value.serialize() for value in runtime.run(name, fhe.Value.deserialize(data), keys)]
               for name, data in calls]
    note = WorkerNote(f"{socket.gethostname()}:{os.getpid()}", _RECEIVED[bundle.digest],
                      _LOADED[bundle.server_digest], _LOADED[bundle.keys_digest])
    return results, note


# -- driver side ------------------------------------------------------------------------------
def n_tasks(n_jobs: Optional[int], n_calls: int) -> int:
    """How many tasks to cut ``n_calls`` circuit calls into (1: run them here, in-process),
    with joblib's meaning of ``n_jobs`` and its active backend (``parallel_config``)."""
    if n_calls < 2:
        return 1
    return max(1, min(effective_n_jobs(n_jobs), n_calls))


@dataclass
class FanOutReport:
    """Figures of one fanned-out run: tasks, bytes that crossed, and each worker's note."""

    tasks: int
    bundle_bytes: int
    input_bytes: int
    output_bytes: int
    workers: dict = field(default_factory=dict)

    @property
    def bytes_to_workers(self) -> int:
        """Bundles (one per worker that ran a task) plus the encrypted inputs."""
        return self.bundle_bytes * len(self.workers) + self.input_bytes


def fan_out(bundle: ServerBundle, calls: list, n_jobs: Optional[int],
            description: str = "circuit calls") -> tuple[list, FanOutReport]:
    """Run ``calls`` on joblib workers in ``n_tasks`` contiguous chunks; results in order.

    Returns the serialized outputs of each call and a :class:`FanOutReport`.
    """
    tasks = n_tasks(n_jobs, len(calls))
    chunks = [list(part) for part in np.array_split(np.arange(len(calls)), tasks) if len(part)]
    report = FanOutReport(len(chunks), len(bundle.server) + len(bundle.keys),
                          sum(len(data) for _, data in calls), 0)
    results: list = []
    bar = progress.steps(len(calls), description)
    try:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        for index, (outputs, note) in zip(chunks, parallel(
                delayed(run_calls)(bundle, [calls[i] for i in index]) for index in chunks)):
            results.extend(outputs)
            report.workers[note.worker] = note
            bar.update(len(index))
    finally:
        bar.close()
    report.output_bytes = sum(len(value) for outputs in results for value in outputs)
    return results, report
