"""The compiled model: one concrete module holding a function per batch shape, one key set.

``BatchedCircuit`` runs any number of rows through the module, planning the calls (see
``batch_plan``), padding the last ones, and cutting the padding off the results. Keys are
generated once, under a lock, whichever thread asks first.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Union

import numpy as np
from concrete import fhe

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
        q = np.asarray(q)
        if q.shape[0] == 0:
            raise ValueError("No rows to run: give at least one row.")
        results = [unpad(run(self.function(call.size), padded_rows(q, call)), call)
                   for call in self.plan(q.shape[0])]
        return concatenate(results)

    def simulate(self, q: np.ndarray) -> Output:
        """The circuit simulated in the clear on integer rows ``q`` (same integers as encrypted)."""
        return self._run_planned(q, lambda function, rows: function.simulate(rows))

    def encrypt_run_decrypt(self, q: np.ndarray) -> Output:
        """Encrypt ``q`` batch by batch, run on ciphertexts, decrypt (keys made on first use)."""
        self.keygen()
        client, server = self._runtimes()
        keys = client.client.evaluation_keys

        def run(function, rows):
            name = function.name
            return client.decrypt(name, server.run(name, client.encrypt(name, rows), keys))

        return self._run_planned(q, run)

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
                self.module.keygen(force=force, seed=seed)

    # -- figures ---------------------------------------------------------------------------
    def pbs_count(self, size: Optional[int] = None) -> int:
        """Programmable bootstrappings of one call of the ``size``-row function (largest)."""
        return int(self.function(size or self.batch_size).programmable_bootstrap_count)

    def maximum_integer_bit_width(self) -> int:
        """The widest integer of the circuit."""
        return int(self.function(self.batch_size).graph.maximum_integer_bit_width())

    def statistics(self) -> dict:
        """PBS per call of the largest shape and per row, widest integer, batch shapes."""
        pbs = self.pbs_count()
        return {
            "pbs_per_circuit": pbs,
            "pbs_per_row": pbs / self.batch_size,
            "max_bit_width": self.maximum_integer_bit_width(),
            "batch_size": self.batch_size,
            "batch_sizes": self.batch_sizes,
        }
