"""The client: holds the secret key; encrypts inputs, decrypts and reads results."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from concrete import fhe

from ..fhe.batch_plan import Call, plan_calls
from ..fhe.batched_circuit import concatenate, function_name, padded_rows, unpad
from ..fhe.runtime import ClientRuntime
from .client_model import ClientModel
from .errors import ArtifactError, PayloadError
from .manifest import CLIENT_FILES, MANIFEST, read_manifest
from .payload import Blob, Message, pack, unpack


class Client:
    """The data owner's side of a deployed model: keys, encryption, decryption, outputs.

    Reads only the client part of a saved model (``path/client``), after checking the manifest.
    The secret key never leaves this object; the server gets ``evaluation_keys()`` only.

    Parameters
    ----------
    path : str or pathlib.Path
        A directory written by :func:`sklearn_fhe.deployment.save` (its server part may be
        absent).

    Examples
    --------
    >>> client = Client("model_dir")                     # doctest: +SKIP
    >>> client.keygen()                                  # doctest: +SKIP
    >>> keys = client.evaluation_keys()                  # bytes, once, to the server
    >>> payload = client.encrypt(X)                      # bytes, to the server
    >>> client.predict(server.run(payload, keys))        # doctest: +SKIP
    """

    def __init__(self, path: Union[str, Path]) -> None:
        path = Path(path)
        read_manifest(path, CLIENT_FILES)
        try:
            info = json.loads((path / "client" / "model.json").read_text())
            self.functions = {str(k): int(v) for k, v in info.pop("functions").items()}
            self.fingerprint = str(info.pop("fingerprint"))
        except (ValueError, KeyError, AttributeError, TypeError) as error:
            raise ArtifactError(f"The client part's model.json is malformed: {error!r}") from error
        self.model = ClientModel.from_json(info)
        try:
            specs = fhe.ClientSpecs.deserialize((path / "client" / "client.specs").read_bytes())
        except RuntimeError as error:
            raise ArtifactError(f"The client part's client.specs is unreadable: {error}") from error
        self._client = fhe.Client(specs)
        self._runtime = ClientRuntime(self._client)
        self._sizes = tuple(sorted(self.functions.values()))

    @classmethod
    def from_archive(cls, archive: bytes) -> "Client":
        """A client from the bytes of :func:`client_archive` (e.g. fetched from a server)."""
        directory = Path(tempfile.mkdtemp(prefix="sklearn_fhe_client_"))
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
                names = set(bundle.namelist())
                if not names <= {MANIFEST, *CLIENT_FILES}:
                    raise ArtifactError(f"Unexpected files in a client archive: {sorted(names)}.")
                bundle.extractall(directory)
        except zipfile.BadZipFile as error:
            raise ArtifactError(f"Not a client archive: {error}") from error
        return cls(directory)

    # -- keys ------------------------------------------------------------------------------
    def keygen(self, seed: Optional[int] = None) -> None:
        """Generate a new key set (secret and evaluation keys); ``seed`` makes it reproducible."""
        self._client.keys.generate(force=True, secret_seed=seed)

    def evaluation_keys(self) -> bytes:
        """The evaluation keys, for the server (they let it compute, not decrypt)."""
        self._require_keys()
        data = self._client.evaluation_keys.serialize()
        return pack(Message("keys", self.fingerprint, [Blob(data)]))

    def _require_keys(self) -> None:
        if not self._client.keys.are_generated:
            raise RuntimeError("No keys yet: call keygen() first.")

    # -- encrypt / decrypt -------------------------------------------------------------------
    def encrypt(self, X: Any) -> bytes:
        """Check, encode, quantize and encrypt ``X`` (float rows) for the server."""
        self._require_keys()
        q = self.model.quantize(X)
        blobs = []
        for call in plan_calls(q.shape[0], self._sizes):
            name = function_name(call.size)
            value = self._runtime.encrypt(name, padded_rows(q, call))
            blobs.append(Blob(value.serialize(), name, call.n_rows))
        return pack(Message("inputs", self.fingerprint, blobs))

    def decrypt(self, result: bytes) -> Any:
        """The circuit's integer outputs from the server's result (padding rows removed)."""
        self._require_keys()
        message = unpack(result, "outputs", self.fingerprint, self.functions)
        parts = []
        for blob in message.blobs:
            try:
                value = fhe.Value.deserialize(blob.data)
                decrypted = self._runtime.decrypt(blob.function, (value,))
            except RuntimeError as error:
                raise PayloadError(f"A result is not a ciphertext of this model: {error}") from error
            parts.append(unpad(decrypted, Call(0, blob.rows, self.functions[blob.function])))
        return concatenate(parts)

    # -- answers ---------------------------------------------------------------------------
    def predict(self, result: bytes) -> np.ndarray:
        """Predictions (an estimator's ``predict``; a QuantizedModule's float outputs)."""
        return self.model.answer("predict", self.decrypt(result))

    def predict_proba(self, result: bytes) -> np.ndarray:
        """Class probabilities, for classifiers that have ``predict_proba``."""
        return self.model.answer("predict_proba", self.decrypt(result))

    def predict_log_proba(self, result: bytes) -> np.ndarray:
        """Logarithm of the class probabilities, where the estimator has it."""
        return self.model.answer("predict_log_proba", self.decrypt(result))

    def decision_function(self, result: bytes) -> np.ndarray:
        """Decision values, where the estimator has ``decision_function``."""
        return self.model.answer("decision_function", self.decrypt(result))


def client_archive(path: Union[str, Path]) -> bytes:
    """The client part of a saved model (and its manifest) as one zip, e.g. for a server to
    hand to its clients; :meth:`Client.from_archive` reads it."""
    path = Path(path)
    read_manifest(path, CLIENT_FILES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in (MANIFEST, *CLIENT_FILES):
            bundle.write(path / name, name)
    return buffer.getvalue()
