"""Encrypt, run and decrypt with concrete's client and server programs built once.

concrete-python's ``Client.encrypt`` / ``decrypt`` rebuild the client program from the specs
(and re-parse them as JSON) on every call, and ``Server.run`` reloads the server program: for a
one-row request that is more time than the encryption itself. These wrappers build them once per
key set (per thread: the programs are not documented as thread-safe) and then only prepare
inputs, call the circuit and read outputs. Values and keys stay concrete's own types.
"""

from __future__ import annotations

import threading
from typing import Any, Union

import numpy as np
from concrete import fhe
from concrete.compiler import ClientProgram, ServerProgram
from concrete.compiler import Value as RuntimeValue

from .arrays import circuit_array


class ClientRuntime:
    """Encryption and decryption with one client's keys.

    Parameters
    ----------
    client : concrete.fhe.Client
        Holds the specs and the key set (generated before the first call).
    """

    def __init__(self, client: fhe.Client) -> None:
        self.client = client
        self._local = threading.local()

    def _circuit(self, function: str) -> Any:
        keyset = self.client.keys._keyset  # noqa: SLF001 - concrete's key set, as its Client uses it
        cache = getattr(self._local, "circuits", None)
        if cache is None or self._local.keyset is not keyset:  # new keys: new programs
            self._local.keyset, self._local.program = keyset, ClientProgram.create_encrypted(
                self.client.specs.program_info, keyset)
            cache = self._local.circuits = {}
        if function not in cache:
            cache[function] = self._local.program.get_client_circuit(function)
        return cache[function]

    def encrypt(self, function: str, q: np.ndarray) -> fhe.Value:
        """Encrypt integer rows ``q`` (in range: they come from our quantizers) for ``function``."""
        prepared = self._circuit(function).prepare_input(RuntimeValue(circuit_array(q)), 0)
        return fhe.Value(prepared)

    def decrypt(self, function: str, values: tuple) -> Union[np.ndarray, tuple]:
        """The integers of ``function``'s encrypted outputs ``values`` (one array per output)."""
        circuit = self._circuit(function)
        outputs = tuple(
            np.asarray(circuit.process_output(value._inner, position).to_py_val(),  # noqa: SLF001
                       dtype=np.int64)
            for position, value in enumerate(values))
        return outputs[0] if len(outputs) == 1 else outputs


class ServerRuntime:
    """Runs the circuit functions of a compiled concrete server.

    Parameters
    ----------
    server : concrete.fhe.Server
        A compiled (or loaded) server, not a simulated one.
    """

    def __init__(self, server: fhe.Server) -> None:
        self.server = server
        self._local = threading.local()

    def _circuit(self, function: str) -> Any:
        cache = getattr(self._local, "circuits", None)
        if cache is None:
            self._local.program = ServerProgram(self.server._library, False)  # noqa: SLF001
            cache = self._local.circuits = {}
        if function not in cache:
            cache[function] = self._local.program.get_server_circuit(function)
        return cache[function]

    def run(self, function: str, value: fhe.Value, keys: fhe.EvaluationKeys) -> tuple:
        """``function`` on the encrypted input ``value`` with the client's evaluation keys: its
        encrypted outputs (a tuple, one value per output)."""
        results = self._circuit(function).call([value._inner], keys.server_keyset)  # noqa: SLF001
        return tuple(fhe.Value(result) for result in results)
