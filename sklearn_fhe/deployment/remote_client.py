"""``RemoteClient``: a model served over HTTP (``sklearn-fhe serve``), used like an estimator.

Only the standard library speaks HTTP here, so a data owner needs no server-side extra.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .client import Client

OCTET_STREAM = "application/octet-stream"
KEY_ID_HEADER = "X-Key-Id"


class ServiceError(RuntimeError):
    """The service refused a request; ``status`` is the HTTP status, ``detail`` its reason."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {url} answered {status}: {detail}")
        self.status, self.detail = status, detail


class RemoteClient:
    """Encrypted predictions from a model served over HTTP, with the secret key kept here.

    On creation it fetches the model's client part (``GET /model``), generates keys and uploads
    the evaluation keys once (``POST /keys``). Each prediction encrypts ``X``, sends it
    (``POST /predict``) and decrypts the answer; if the server forgot the keys (expired or
    evicted), they are uploaded again and the request retried once.

    Parameters
    ----------
    url : str
        The service's base URL, e.g. ``"http://127.0.0.1:8000"``.
    seed : int, optional
        Seed of the key generation (reproducible keys); default: fresh randomness.
    timeout : float, default=600
        Seconds to wait for one HTTP answer.
    token : str, optional
        A bearer token the service accepts (``serve --token-file``), sent with every request.
    ca_file : str or pathlib.Path, optional
        For an ``https://`` URL: the certificate authority (PEM) to verify the service's
        certificate against, e.g. a private CA or a self-signed certificate; default: the
        system's. Certificates and host names are always verified.

    Attributes
    ----------
    client : Client
        The local client (secret key, encryption, decryption).
    key_id : str
        The id under which the server holds this client's evaluation keys.

    Examples
    --------
    >>> remote = RemoteClient("http://127.0.0.1:8000")   # doctest: +SKIP
    >>> remote.predict(X)                                # doctest: +SKIP
    """

    def __init__(self, url: str, seed: Optional[int] = None, timeout: float = 600.0,
                 token: Optional[str] = None, ca_file: Optional[Union[str, Path]] = None
                 ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.client = Client.from_archive(self._request("GET", "/model"))
        self.client.keygen(seed)
        self.key_id = self.upload_keys()

    @property
    def methods(self) -> tuple:
        """The answers the served model gives (estimator method names)."""
        return self.client.model.methods

    def upload_keys(self) -> str:
        """Send the evaluation keys (``POST /keys``) → the key id the server holds them by."""
        answer = self._request("POST", "/keys", self.client.evaluation_keys())
        self.key_id = json.loads(answer)["key_id"]
        return self.key_id

    def run(self, X: Any) -> bytes:
        """Encrypt ``X``, have the server compute on it → the encrypted results."""
        payload = self.client.encrypt(X)
        try:
            return self._request("POST", "/predict", payload, {KEY_ID_HEADER: self.key_id})
        except ServiceError as error:
            if error.status != 404:
                raise
        self.upload_keys()  # the server forgot them: expired or evicted
        return self._request("POST", "/predict", payload, {KEY_ID_HEADER: self.key_id})

    def predict(self, X: Any) -> np.ndarray:
        """The model's ``predict``, computed encrypted."""
        return self._answer("predict", X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The model's ``predict_proba``, for classifiers that have it."""
        return self._answer("predict_proba", X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The model's ``predict_log_proba``, where it has it."""
        return self._answer("predict_log_proba", X)

    def decision_function(self, X: Any) -> np.ndarray:
        """The model's ``decision_function``, where it has it."""
        return self._answer("decision_function", X)

    def _answer(self, method: str, X: Any) -> np.ndarray:
        if method not in self.methods:  # before any encrypted work
            raise AttributeError(f"This {self.client.model.estimator} has no {method}.")
        return getattr(self.client, method)(self.run(X))

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[dict] = None) -> bytes:
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = OCTET_STREAM
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url + path, data=body, headers=headers,
                                         method=method)
        context = self._tls if self.url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=context) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise ServiceError(method, self.url + path, error.code, _detail(error)) from None


def _detail(error: urllib.error.HTTPError) -> str:
    """The reason a service gave (its JSON ``detail``), or the raw body."""
    text = error.read().decode("utf-8", "replace")
    try:
        return str(json.loads(text)["detail"])
    except (ValueError, KeyError, TypeError):
        return text or error.reason
