"""The compiled model: one concrete module holding a function per batch shape, one key set.

``BatchedCircuit`` runs any number of rows through the module, planning the calls (see
``batch_plan``), padding the last ones, and cutting the padding off the results. Keys are
generated once, under a lock, whichever thread asks first.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
from concrete import fhe

from .. import progress
from ..config import get_config
from . import parallel
from .arrays import circuit_array
from .batch_plan import Call, plan_calls
from .runtime import ClientRuntime, ServerRuntime

Output = Union[np.ndarray, tuple]


def function_name(size: int) -> str:
    """Name of the module function taking ``size`` rows."""
    return f"batch_{size}"


def padded_rows(q: np.ndarray, call: Call) -> np.ndarray:
    """The rows of ``call``, completed to ``call.size`` rows with copies of its first row (valid,
    in-range values), laid out as concrete reads them."""
    rows = q[call.start:call.stop]
    if call.n_rows < call.size:
        rows = np.concatenate([rows, np.repeat(rows[:1], call.size - call.n_rows, axis=0)])
    return circuit_array(rows)


def unpad(result: Output, call: Call) -> Output:
    """``result`` without the rows that padded ``call``."""
    if isinstance(result, tuple):
        return tuple(np.asarray(r)[:call.n_rows] for r in result)
    return np.asarray(result)[:call.n_rows]


def concatenate(results: list) -> Output:
    """Per-call results (arrays, or tuples of arrays for several outputs) joined along rows."""
    if isinstance(results[0], tuple):
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*results))
    return np.concatenate(results, axis=0)


def _rows(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q)
    if q.shape[0] == 0:
        raise ValueError("No rows to run: give at least one row.")
    return q


class BatchedCircuit:
    """A concrete module compiled for several batch shapes, run on any number of rows.

    Parameters
    ----------
    module : concrete.fhe.module.FheModule
        Functions named ``batch_<size>``, one per size, sharing one key set.
    batch_sizes : tuple of int
        The compiled sizes, ascending.

    Attributes
    ----------
    module : FheModule
        The compiled module (its ``server`` and ``client`` are what deployment saves).
    batch_sizes : tuple of int
        Rows per call of each function.
    """

    def __init__(self, module: Any, batch_sizes: tuple[int, ...]) -> None:
        self.module = module
        self.batch_sizes = tuple(sorted(batch_sizes))
        self._keys_lock = threading.Lock()
        self._bundle: Optional[tuple] = None  # (key set, ServerBundle) for workers
        #: Figures of the last run fanned out to workers (``sklearn_fhe.set_config(n_jobs=)``).
        self.last_fan_out: Optional[parallel.FanOutReport] = None

    @property
    def batch_size(self) -> int:
        """The largest batch shape."""
        return self.batch_sizes[-1]

    def function(self, size: int) -> Any:
        """The module function taking ``size`` rows."""
        return getattr(self.module, function_name(size))

    def plan(self, n_rows: int) -> list[Call]:
        """The circuit calls that cover ``n_rows`` rows."""
        return plan_calls(n_rows, self.batch_sizes)

    # -- running ---------------------------------------------------------------------------
    def _run_planned(self, q: np.ndarray, run: Callable[[Any, np.ndarray], Output]) -> Output:
        q = _rows(q)
        calls = self.plan(q.shape[0])
        bar = progress.steps(len(calls), "circuit calls")
        results = []
        try:
            for call in calls:
                results.append(unpad(run(self.function(call.size), padded_rows(q, call)), call))
                bar.update(1)
        finally:
            bar.close()
        return concatenate(results)

    def simulate(self, q: np.ndarray) -> Output:
        """The circuit simulated in the clear on integer rows ``q`` (same integers as encrypted)."""
        return self._run_planned(q, lambda function, rows: function.simulate(rows))

    def encrypt_run_decrypt(self, q: np.ndarray) -> Output:
        """Encrypt ``q`` batch by batch, run on ciphertexts, decrypt (keys made on first use).

        With ``sklearn_fhe.set_config(n_jobs=...)`` or in a ``joblib.parallel_config`` context,
        the circuit calls run on joblib workers (encryption and decryption stay here).
        """
        self.keygen()
        client, server = self._runtimes()
        q, n_jobs = _rows(q), get_config()["n_jobs"]
        if parallel.n_tasks(n_jobs, len(self.plan(q.shape[0]))) > 1:
            return self._fan_out(q, client, n_jobs)
        keys = client.client.evaluation_keys

        def run(function, rows):
            name = function.name
            return client.decrypt(name, server.run(name, client.encrypt(name, rows), keys))

        return self._run_planned(q, run)

    def _fan_out(self, q: np.ndarray, client: ClientRuntime, n_jobs: Optional[int]) -> Output:
        """``encrypt_run_decrypt`` with the circuit calls on joblib workers."""
        calls = self.plan(q.shape[0])
        inputs = [(function_name(call.size),
                   client.encrypt(function_name(call.size), padded_rows(q, call)).serialize())
                  for call in calls]
        outputs, self.last_fan_out = parallel.fan_out(self._server_bundle(client), inputs, n_jobs)
        return concatenate([
            unpad(client.decrypt(name, tuple(fhe.Value.deserialize(v) for v in values)), call)
            for call, (name, _), values in zip(calls, inputs, outputs)])

    def _server_bundle(self, client: ClientRuntime) -> parallel.ServerBundle:
        """The saved server and the current evaluation keys, as bytes for workers (made once
        per key set)."""
        keyset = self.module.keys._keyset  # noqa: SLF001 - new keys, new bundle
        if self._bundle is None or self._bundle[0] is not keyset:
            with tempfile.TemporaryDirectory(prefix="sklearn_fhe_server_") as directory:
                path = Path(directory) / "server.zip"
                self.module.server.save(path)
                server = path.read_bytes()
            keys = client.client.evaluation_keys.serialize()
            self._bundle = (keyset, parallel.ServerBundle(server, keys))
        return self._bundle[1]

    def _runtimes(self) -> tuple[ClientRuntime, ServerRuntime]:
        """The module's client and server, with their programs built once."""
        if getattr(self, "_client_runtime", None) is None:
            execution = self.module.execution_runtime.val
            self._client_runtime = ClientRuntime(execution.client)
            self._server_runtime = ServerRuntime(execution.server)
        return self._client_runtime, self._server_runtime

    def keygen(self, force: bool = False, seed: Optional[int] = None) -> None:
        """Generate the key set once (or again with ``force``); thread-safe."""
        with self._keys_lock:
            if force or not self.module.keys.are_generated:
                with progress.activity("key generation"):
                    self.module.keygen(force=force, seed=seed)

    # -- figures ---------------------------------------------------------------------------
    def pbs_count(self, size: Optional[int] = None) -> int:
        """Programmable bootstrappings of one call of the ``size``-row function (largest)."""
        return int(self.function(size or self.batch_size).programmable_bootstrap_count)

    def maximum_integer_bit_width(self) -> int:
        """The widest integer of the circuit."""
        return int(self.function(self.batch_size).graph.maximum_integer_bit_width())

    def batch_statistics(self) -> dict:
        """Our figures: PBS per call of the largest shape (``pbs_per_circuit``) and per row,
        widest integer, batch shapes."""
        pbs = self.pbs_count()
        return {
            "pbs_per_circuit": pbs,
            "pbs_per_row": pbs / self.batch_size,
            "max_bit_width": self.maximum_integer_bit_width(),
            "batch_size": self.batch_size,
            "batch_sizes": self.batch_sizes,
        }

    @property
    def statistics(self) -> dict:
        """concrete's statistics of the circuit, as ``concrete.fhe.Circuit.statistics`` gives
        them, plus ours (``batch_statistics``).

        concrete's keys (``programmable_bootstrap_count``, ``key_switch_count``,
        ``size_of_bootstrap_keys``, ``global_p_error``...) describe one call of the largest
        batch function, ``batch_size`` rows: a concrete circuit's figures are per call too, and
        that is the call a full batch makes. Divide the counts by ``batch_size`` for one row
        (``pbs_per_row``); the smaller shapes' functions have proportionally fewer.
        """
        module = dict(self.module.statistics)  # key sizes, p_error, complexity; per function
        largest = module.pop("functions")[function_name(self.batch_size)]
        return {**module, **largest, **self.batch_statistics()}
