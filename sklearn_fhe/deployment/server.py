"""The server: runs the compiled circuit on ciphertexts with a client's evaluation keys.

It reads only the server part of a saved model, never receives, loads or stores a secret key,
and learns nothing of the inputs or the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from concrete import fhe

from ..config import get_config
from ..fhe import parallel
from ..fhe.runtime import ServerRuntime
from .errors import ArtifactError, PayloadError
from .manifest import SERVER_FILES, read_manifest
from .payload import Blob, Message, pack, unpack

Keys = Union[bytes, fhe.EvaluationKeys]


class Server:
    """The computing side of a deployed model.

    Parameters
    ----------
    path : str or pathlib.Path
        A directory written by :func:`sklearn_fhe.deployment.save` (its client part may be
        absent).

    Attributes
    ----------
    fingerprint : str
        The model's identity; messages for other models are refused.
    functions : dict
        Circuit function name → rows per call.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        path = Path(path)
        read_manifest(path, SERVER_FILES)
        try:
            info = json.loads((path / "server" / "model.json").read_text())
            self.functions = {str(k): int(v) for k, v in info["functions"].items()}
            self.fingerprint = str(info["fingerprint"])
        except (ValueError, KeyError, AttributeError, TypeError) as error:
            raise ArtifactError(f"The server part's model.json is malformed: {error!r}") from error
        try:
            self._archive = path / "server" / "server.zip"
            self._server = fhe.Server.load(self._archive)
        except Exception as error:  # a corrupt zip or library: concrete's own exceptions
            raise ArtifactError(f"The server part cannot be loaded: {error}") from error
        self._runtime = ServerRuntime(self._server)

    def load_keys(self, keys: bytes) -> fhe.EvaluationKeys:
        """A client's evaluation keys (bytes from ``Client.evaluation_keys``), checked and
        deserialized once, to reuse over many ``run`` calls."""
        message = unpack(keys, "keys", self.fingerprint, self.functions)
        try:
            return fhe.EvaluationKeys.deserialize(message.blobs[0].data)
        except RuntimeError as error:
            raise PayloadError(f"These are not evaluation keys concrete can read: {error}") from error

    def run(self, payload: bytes, keys: Keys, n_jobs: Optional[int] = None) -> bytes:
        """Run the circuit on encrypted inputs (``Client.encrypt``'s bytes) → encrypted results.

        The circuit calls of a large payload can run on joblib workers: ``n_jobs`` local
        processes, or a Dask cluster inside ``joblib.parallel_config(backend="dask")`` (with
        a ``distributed.Client`` connected to its scheduler). Each worker receives the server
        part and the keys once per request.

        Parameters
        ----------
        payload : bytes
            Encrypted inputs.
        keys : bytes or concrete.fhe.EvaluationKeys
            The client's evaluation keys, as bytes or from :meth:`load_keys`.
        n_jobs : int, optional
            Workers for the circuit calls (joblib's meaning); default
            ``sklearn_fhe.get_config()["n_jobs"]``: None, one unless in a
            ``joblib.parallel_config`` context.

        Returns
        -------
        bytes
            Encrypted results, for ``Client.decrypt`` / ``predict``.
        """
        evaluation_keys = keys if isinstance(keys, fhe.EvaluationKeys) else self.load_keys(keys)
        message = unpack(payload, "inputs", self.fingerprint, self.functions)
        n_jobs = get_config()["n_jobs"] if n_jobs is None else n_jobs
        if parallel.n_tasks(n_jobs, len(message.blobs)) > 1:
            outputs = self._fan_out(message.blobs, evaluation_keys, n_jobs)
        else:
            outputs = [self._run_one(blob, evaluation_keys) for blob in message.blobs]
        blobs = [Blob(data, blob.function, blob.rows) for data, blob in zip(outputs, message.blobs)]
        return pack(Message("outputs", self.fingerprint, blobs))

    def _fan_out(self, blobs: list, keys: fhe.EvaluationKeys, n_jobs: Optional[int]) -> list:
        """The blobs' results computed on joblib workers (see ``sklearn_fhe.fhe.parallel``)."""
        bundle = parallel.ServerBundle(self._archive.read_bytes(), keys.serialize())
        try:
            results, self.last_fan_out = parallel.fan_out(
                bundle, [(blob.function, blob.data) for blob in blobs], n_jobs)
        except RuntimeError as error:  # concrete's, raised in a worker
            raise PayloadError(f"A ciphertext is not a valid input for this model: {error}") \
                from error
        return [result for (result,) in results]

    def _run_one(self, blob: Blob, keys: fhe.EvaluationKeys) -> bytes:
        try:
            value = fhe.Value.deserialize(blob.data)
            (result,) = self._runtime.run(blob.function, value, keys)
        except RuntimeError as error:
            raise PayloadError(
                f"A ciphertext is not a valid input of {blob.function} for this model: {error}"
            ) from error
        return result.serialize()

    def close(self) -> None:
        """Remove the loaded circuit's temporary files."""
        self._server.cleanup()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
