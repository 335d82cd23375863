"""The server: runs the compiled circuit on ciphertexts with a client's evaluation keys.

It reads only the server part of a saved model, never receives, loads or stores a secret key,
and learns nothing of the inputs or the outputs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Optional, Union

from concrete import fhe

from ..config import get_config
from ..fhe import parallel
from ..fhe.runtime import ServerRuntime
from ..fhe.worker_parts import Part, digest
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
        self._server_part_cache: Optional[Part] = None
        self._local = threading.local()  # each thread's last fan-out report

    def load_keys(self, keys: bytes) -> fhe.EvaluationKeys:
        """A client's evaluation keys (bytes from ``Client.evaluation_keys``), checked and
        deserialized once, to reuse over many ``run`` calls."""
        message = unpack(keys, "keys", self.fingerprint, self.functions)
        try:
            return fhe.EvaluationKeys.deserialize(message.blobs[0].data)
        except RuntimeError as error:
            raise PayloadError(f"These are not evaluation keys concrete can read: {error}") from error

    def run(self, payload: bytes, keys: Keys, n_jobs: Optional[int] = None, *,
            keys_digest: Optional[str] = None, dask_client: Optional[Any] = None) -> bytes:
        """Run the circuit on encrypted inputs (``Client.encrypt``'s bytes) → encrypted results.

        The circuit calls of a large payload can run on joblib workers: ``n_jobs`` local
        processes, or a Dask cluster inside ``joblib.parallel_config(backend="dask")`` (with
        a ``distributed.Client`` connected to its scheduler), or on ``dask_client``'s cluster.
        Each worker receives the server part and a key set once, and keeps them across
        requests (see ``sklearn_fhe.fhe.worker_parts``).

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
        keys_digest : str, optional
            The SHA-256 (hex) of the keys' serialized bytes, where the caller knows it (a key
            store's id): names them for the workers without serializing them again.
        dask_client : distributed.Client, optional
            Run every circuit call on this cluster's workers, even a one-call request (a
            service whose processes only route: ``sklearn-fhe serve --dask-scheduler``).

        Returns
        -------
        bytes
            Encrypted results, for ``Client.decrypt`` / ``predict``.
        """
        evaluation_keys = keys if isinstance(keys, fhe.EvaluationKeys) else self.load_keys(keys)
        message = unpack(payload, "inputs", self.fingerprint, self.functions)
        n_jobs = get_config()["n_jobs"] if n_jobs is None else n_jobs
        if dask_client is not None or parallel.n_tasks(n_jobs, len(message.blobs)) > 1:
            outputs = self._fan_out(message.blobs, self._keys_part(keys, keys_digest), n_jobs,
                                    dask_client)
        else:
            outputs = [self._run_one(blob, evaluation_keys) for blob in message.blobs]
        blobs = [Blob(data, blob.function, blob.rows) for data, blob in zip(outputs, message.blobs)]
        return pack(Message("outputs", self.fingerprint, blobs))

    @property
    def last_fan_out(self) -> Optional[parallel.FanOutReport]:
        """Figures of this thread's last run fanned out to workers (None if none)."""
        return getattr(self._local, "report", None)

    def _keys_part(self, keys: Keys, keys_digest: Optional[str]) -> Part:
        """The keys as a part for workers, named by the digest of concrete's serialized keys."""
        if isinstance(keys, fhe.EvaluationKeys):
            if keys_digest is None:
                return Part.from_bytes("keys", keys.serialize())
            return Part("keys", keys_digest, keys.serialize)
        data = unpack(keys, "keys", self.fingerprint, self.functions).blobs[0].data
        return Part("keys", keys_digest or digest(data), lambda: data, len(data))

    def _server_part(self) -> Part:
        """The saved server as a part for workers (digested once)."""
        if self._server_part_cache is None:
            data = self._archive.read_bytes()
            self._server_part_cache = Part("server", digest(data), self._archive.read_bytes,
                                           len(data))
        return self._server_part_cache

    def _fan_out(self, blobs: list, keys: Part, n_jobs: Optional[int],
                 dask_client: Optional[Any] = None) -> list:
        """The blobs' results computed on workers (see ``sklearn_fhe.fhe.parallel``)."""
        bundle = parallel.ServerBundle(self._server_part(), keys)
        try:
            results, self._local.report = parallel.fan_out(
                bundle, [(blob.function, blob.data) for blob in blobs], n_jobs,
                dask_client=dask_client)
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
