"""The HTTP service of a saved model (``sklearn-fhe serve MODEL_DIR``; needs the ``serve`` extra).

Endpoints (binary bodies are ``application/octet-stream``, errors are JSON ``{"detail": ...}``):

======================  ==========================================================================
``GET /health``         ``{"status": "ok", "model": fingerprint, ...}``; answered on the event loop,
                        also while predictions run.
``GET /model``          the client part of the model (:func:`client_archive`, a zip): a client needs
                        only the URL (:class:`RemoteClient`).
``POST /keys``          a client's evaluation keys (``Client.evaluation_keys()``) → 201
                        ``{"key_id": ..., "ttl_s": ...}``. Never a secret key: the body must be an
                        evaluation-keys message of this model.
``POST /predict``       header ``X-Key-Id`` + encrypted inputs (``Client.encrypt``) → encrypted
                        results (``Client.predict`` & co. read them).
======================  ==========================================================================

Errors: 400 a body that is not a valid message for this model (random bytes, truncated, another
model's ciphertexts or keys, empty) or a missing ``X-Key-Id``; 404 an unknown or expired key id;
413 a body over the limit (or keys over the store's whole byte bound); 415 a body that is not
``application/octet-stream``; 503 too many requests waiting for a worker (retry later). The
server keeps serving after each.

Encrypted work (key deserialization, circuit runs) goes to a bounded pool of threads (concrete
releases the GIL while it computes), so the event loop stays free for ``/health`` and uploads.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from concrete import fhe

try:
    from fastapi import FastAPI, HTTPException, Request, Response
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("The HTTP service needs the serve extra: pip install 'sklearn_fhe[serve]'."
                      ) from error

from .client import client_archive
from .errors import ArtifactError, PayloadError
from .key_store import KeyStore, KeyTooLargeError, UnknownKeyError, resident_key_bytes
from .server import Server

OCTET_STREAM = "application/octet-stream"
KEY_ID_HEADER = "X-Key-Id"
MiB = 1 << 20
#: Bytes of an oversized body read (and dropped) before answering 413.
DRAIN_BYTES = 64 * MiB


@dataclass(frozen=True)
class ServiceLimits:
    """What one server accepts and holds.

    Parameters
    ----------
    max_request_bytes : int
        Largest ``/predict`` body (encrypted inputs).
    max_key_upload_bytes : int
        Largest ``/keys`` body (one client's evaluation keys).
    max_key_sets : int
        Most clients' key sets held at once (least recently used out first).
    max_key_bytes : int
        Most bytes of key sets held at once, each counted at its size in memory (several
        times its compressed upload).
    key_ttl_s : float
        Seconds after its last use that a key set is forgotten.
    workers : int
        Threads running encrypted work.
    max_pending : int
        Most requests running or waiting for a worker; more are refused with 503.
    """

    max_request_bytes: int = 64 * MiB
    max_key_upload_bytes: int = 512 * MiB
    max_key_sets: int = 64
    max_key_bytes: int = 4096 * MiB
    key_ttl_s: float = 3600.0
    workers: int = max(1, os.cpu_count() or 1)
    max_pending: int = 64

    def __post_init__(self) -> None:
        bad = [name for name, value in vars(self).items() if not value > 0]
        if bad:
            raise ValueError(f"Service limits must be positive: {', '.join(bad)}.")


class WorkerPool:
    """Threads for encrypted work, with a bound on the requests running or waiting."""

    def __init__(self, workers: int, max_pending: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="sklearn-fhe-worker")
        self.max_pending = max_pending
        self.pending = 0  # touched on the event loop only

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on a worker thread; 503 when the pool is full."""
        if self.pending >= self.max_pending:
            raise HTTPException(503, f"The server is busy ({self.pending} requests pending): "
                                     "retry later.", headers={"Retry-After": "1"})
        self.pending += 1
        try:
            return await asyncio.wrap_future(self._executor.submit(function, *args))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's octet-stream body, refused (415 / 413 / 400) when it has another type,
    announces or reaches more than ``limit`` bytes, or is empty. A refused body is still read
    and dropped (up to ``limit + DRAIN_BYTES``) before the answer, so that a client still
    sending gets the answer rather than a broken connection."""
    announced = request.headers.get("content-length")
    if announced is not None and not announced.isdigit():
        raise HTTPException(400, f"Invalid Content-Length {announced!r}.")
    if announced is not None and int(announced) > limit + DRAIN_BYTES:
        raise _too_large(announced, limit)  # not worth reading: the connection closes
    keep = announced is None or int(announced) <= limit
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + DRAIN_BYTES:
            break
        if keep and size <= limit:
            chunks.append(chunk)
    require_octet_stream(request)
    if size > limit:
        raise _too_large(announced or f"more than {limit}", limit)
    if not size:
        raise HTTPException(400, "The request has no body: send the message's bytes.")
    return b"".join(chunks)


def require_octet_stream(request: Request) -> None:
    """415 unless the request's body is declared ``application/octet-stream``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OCTET_STREAM:
        raise HTTPException(415, f"Expected a body of type {OCTET_STREAM}, got "
                                 f"{content_type or 'none'}: send the raw bytes of the message.")


def _too_large(size: str, limit: int) -> HTTPException:
    return HTTPException(413, f"The body ({size} bytes) is over this server's limit of {limit} "
                              "bytes: send fewer rows per request.")


def create_app(model_dir: Union[str, Path], limits: ServiceLimits = ServiceLimits()) -> FastAPI:
    """The FastAPI application serving the saved model in ``model_dir``.

    Parameters
    ----------
    model_dir : str or pathlib.Path
        A directory written by :func:`sklearn_fhe.deployment.save`, with both its parts (the
        client part is served on ``GET /model``).
    limits : ServiceLimits
        Body sizes, key store bounds and the worker pool.

    Returns
    -------
    fastapi.FastAPI
    """
    server = Server(model_dir)
    try:
        archive = client_archive(model_dir)
    except ArtifactError as error:
        server.close()
        raise ArtifactError(f"The service serves the model's client part on GET /model: {error}"
                            ) from error
    # a key set is charged what it takes once expanded in memory, not its compressed upload
    resident = resident_key_bytes(fhe.ClientSpecs.deserialize(
        (Path(model_dir) / "client" / "client.specs").read_bytes()))
    store = KeyStore(limits.max_key_sets, limits.max_key_bytes, limits.key_ttl_s)
    pool = WorkerPool(limits.workers, limits.max_pending)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown()
        server.close()

    app = FastAPI(title="sklearn_fhe encrypted inference", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": server.fingerprint, "key_sets": len(store),
                "key_bytes": store.nbytes, "pending": pool.pending}

    @app.get("/model")
    async def model() -> Response:
        return Response(archive, media_type="application/zip",
                        headers={"X-Model-Fingerprint": server.fingerprint})

    @app.post("/keys", status_code=201)
    async def keys(request: Request) -> dict:
        body = await read_body(request, limits.max_key_upload_bytes)
        try:
            evaluation_keys = await pool.run(server.load_keys, body)
            key_id = store.add(evaluation_keys, max(len(body), resident))
            return {"key_id": key_id, "ttl_s": limits.key_ttl_s}
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        except KeyTooLargeError as error:
            raise HTTPException(413, str(error)) from error

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await read_body(request, limits.max_request_bytes)
        key_id = request.headers.get(KEY_ID_HEADER)
        if not key_id:
            raise HTTPException(400, f"Missing the {KEY_ID_HEADER} header: the id POST /keys "
                                     "returned for your evaluation keys.")
        try:
            evaluation_keys = store.get(key_id)
        except UnknownKeyError as error:
            raise HTTPException(404, str(error)) from error
        try:
            result = await pool.run(server.run, body, evaluation_keys)
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        return Response(result, media_type=OCTET_STREAM)

    return app


def serve(model_dir: Union[str, Path], host: str = "127.0.0.1", port: int = 8000,
          limits: ServiceLimits = ServiceLimits(), log_level: str = "info") -> None:
    """Serve ``model_dir`` over HTTP with uvicorn until interrupted (``sklearn-fhe serve``)."""
    import uvicorn

    uvicorn.run(create_app(model_dir, limits), host=host, port=port, log_level=log_level)
