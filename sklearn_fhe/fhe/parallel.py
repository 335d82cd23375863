"""Encrypted circuit calls fanned out to joblib workers: local processes, or a Dask cluster.

The driver encrypts and decrypts; the workers only run circuit calls on ciphertexts. concrete's
circuits are not picklable, so a worker needs the saved server part and the client's evaluation
keys as bytes (a ``ServerBundle``). These cross to a worker **once**, not once per request: the
driver publishes them by digest (see ``sklearn_fhe.fhe.worker_parts``), each task carries only
their references and its ciphertexts, and a worker keeps what it loaded across requests. The
calls of a request are cut into one task per worker (as scikit-learn's forests cut their
trees).

Under ``joblib.parallel_config(backend="dask")`` (or with ``dask_client=``) the tasks go to the
cluster through the ``distributed.Client`` directly: the parts are scattered once and fetched
by their key by the workers that lack them. Otherwise joblib runs the tasks (local processes)
and the parts are read from a spool file.
"""

from __future__ import annotations

import os
import pickle
import socket
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
from concrete import fhe
from joblib import Parallel, delayed, effective_n_jobs
from joblib.parallel import get_active_backend

from .. import progress
from .worker_parts import Part, PartRef, loads_of, publish_to_dask, publish_to_files, resolve

#: One circuit call: the function's name and its serialized encrypted input.
CallBytes = tuple[str, bytes]


class ServerBundle:
    """What a worker needs to run circuit calls: the server part and the evaluation keys.

    Parameters
    ----------
    server : bytes or Part
        concrete's saved server (the ``server.zip`` of a saved model).
    keys : bytes or Part
        The client's serialized evaluation keys (concrete's ``EvaluationKeys.serialize()``);
        a :class:`~sklearn_fhe.fhe.worker_parts.Part` names them by digest and reads them only
        if they must be published.
    """

    def __init__(self, server: Union[bytes, Part], keys: Union[bytes, Part]) -> None:
        self.server_part = server if isinstance(server, Part) else Part.from_bytes("server", server)
        self.keys_part = keys if isinstance(keys, Part) else Part.from_bytes("keys", keys)
        self.server_digest = self.server_part.digest
        self.keys_digest = self.keys_part.digest

    @property
    def server(self) -> bytes:
        """The server part's bytes."""
        return self.server_part.read()

    @property
    def keys(self) -> bytes:
        """The evaluation keys' bytes."""
        return self.keys_part.read()


@dataclass(frozen=True)
class WorkerNote:
    """What one task saw in its worker: who it was, how many times that process loaded the
    server part and the key set (over its life), and the bytes of parts it fetched for this
    task (0 when it held both)."""

    worker: str
    server_loads: int
    key_loads: int
    fetched_bytes: int
    loaded: tuple = ()  # the kinds of part this task fetched and loaded ("server", "keys")


def run_calls(refs: tuple, calls: list) -> tuple[list, WorkerNote]:
    """Worker task: run ``calls`` (name, serialized input) with the parts of ``refs`` (server,
    keys) → serialized outputs per call, and a note."""
    server_ref, keys_ref = refs
    runtime, server_fetched = resolve(server_ref)
    keys, keys_fetched = resolve(keys_ref)
    results = [[value.serialize() for value in runtime.run(name, fhe.Value.deserialize(data), keys)]
               for name, data in calls]
    loaded = tuple(kind for kind, fetched in (("server", server_fetched), ("keys", keys_fetched))
                   if fetched)
    note = WorkerNote(f"{socket.gethostname()}:{os.getpid()}", loads_of(server_ref.digest),
                      loads_of(keys_ref.digest), server_fetched + keys_fetched, loaded)
    return results, note


# -- driver side ------------------------------------------------------------------------------
def active_dask_client() -> Optional[Any]:
    """The ``distributed.Client`` of an active ``parallel_config(backend="dask")``, or None."""
    backend, _ = get_active_backend()
    if type(backend).__name__ != "DaskDistributedBackend":
        return None
    return backend.client


def n_tasks(n_jobs: Optional[int], n_calls: int) -> int:
    """How many tasks to cut ``n_calls`` circuit calls into (1: run them here, in-process),
    with joblib's meaning of ``n_jobs`` and its active backend (``parallel_config``)."""
    if n_calls < 2:
        return 1
    return max(1, min(effective_n_jobs(n_jobs), n_calls))


@dataclass
class FanOutReport:
    """Figures of one fanned-out run: tasks, bytes that crossed, and each worker's note.

    ``task_bytes`` are the pickled arguments of the tasks (part references and ciphertexts),
    ``fetched_bytes`` the parts that workers fetched because they lacked them, and
    ``published_bytes`` the parts the driver published for this run (written to its spool, or
    scattered to one worker of the cluster); all 0 but ``task_bytes`` once the workers hold
    the parts.
    """

    tasks: int
    bundle_bytes: int  # server part + keys, where known: what crossed per worker before
    input_bytes: int
    output_bytes: int
    task_bytes: int = 0
    fetched_bytes: int = 0
    published_bytes: int = 0
    workers: dict = field(default_factory=dict)
    part_loads: list = field(default_factory=list)  # kinds of part loaded by tasks, in order

    @property
    def bytes_to_workers(self) -> int:
        """Task arguments plus the parts fetched by workers."""
        return self.task_bytes + self.fetched_bytes


def fan_out(bundle: ServerBundle, calls: list, n_jobs: Optional[int],
            description: str = "circuit calls", dask_client: Optional[Any] = None
            ) -> tuple[list, FanOutReport]:
    """Run ``calls`` on workers in contiguous chunks, one per worker; results in order.

    Parameters
    ----------
    bundle : ServerBundle
        The server part and the keys (published once per digest, not per call).
    calls : list of (str, bytes)
        Circuit function names and serialized encrypted inputs.
    n_jobs : int or None
        joblib's meaning, with its active backend; ignored on a Dask cluster (one task per
        worker thread).
    description : str
        The progress bar's label.
    dask_client : distributed.Client, optional
        Run on this cluster (even a single call); default: the client of an active
        ``parallel_config(backend="dask")``, else joblib.

    Returns
    -------
    list
        The serialized outputs of each call.
    FanOutReport
    """
    client = dask_client if dask_client is not None else active_dask_client()
    if client is not None:
        tasks = max(1, min(sum(client.nthreads().values()) or 1, len(calls)))
        published = [publish_to_dask(part, client)
                     for part in (bundle.server_part, bundle.keys_part)]
    else:
        tasks = n_tasks(n_jobs, len(calls))
        published = [publish_to_files(part) for part in (bundle.server_part, bundle.keys_part)]
    refs: tuple[PartRef, PartRef] = (published[0][0], published[1][0])
    chunks = [[calls[i] for i in part]
              for part in np.array_split(np.arange(len(calls)), tasks) if len(part)]
    report = FanOutReport(
        len(chunks), (bundle.server_part.size or 0) + (bundle.keys_part.size or 0),
        sum(len(data) for _, data in calls), 0,
        task_bytes=sum(len(pickle.dumps((refs, chunk), protocol=5)) for chunk in chunks),
        published_bytes=sum(sent for _, sent in published))
    bar = progress.steps(len(calls), description)
    results: list = []
    try:
        if client is not None:
            futures = [client.submit(run_calls, refs, chunk, pure=False) for chunk in chunks]
            answers = (future.result() for future in futures)
        else:
            answers = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(run_calls)(refs, chunk) for chunk in chunks)
        for chunk, (outputs, note) in zip(chunks, answers):
            results.extend(outputs)
            report.workers[note.worker] = note
            report.fetched_bytes += note.fetched_bytes
            report.part_loads.extend(note.loaded)
            bar.update(len(chunk))
    finally:
        bar.close()
    report.output_bytes = sum(len(value) for outputs in results for value in outputs)
    return results, report
