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
``GET /metrics``        Prometheus' text format (``service_metrics``): requests, latency, rows,
                        bytes, key sets held, queue depth, worker loads.
======================  ==========================================================================

Key ids are the SHA-256 of the keys (``POST /keys`` answers 201 for new keys, 200 for keys
held already). With ``key_store`` (``--key-store DIR``) key sets are also kept in a directory
shared by every service process on it and across restarts (``service_keys``). With ``tokens``
(``--token-file``) every request but a bare ``/health`` needs ``Authorization: Bearer <token>``:
a missing or wrong token is 401 whatever the path, before anything else is read or said. With
``dask_scheduler`` (``--dask-scheduler``) the circuit runs on that Dask cluster's workers, which
keep server parts and key sets across requests.

Errors: 400 a body that is not a valid message for this model (random bytes, truncated, another
model's ciphertexts or keys, empty) or a missing ``X-Key-Id``; 404 an unknown or expired key id;
401 a missing or wrong bearer token (with tokens); 413 a body over the limit (or keys over the
store's whole byte bound); 415 a body that is not
``application/octet-stream``; 503 too many requests waiting for a worker (retry later). The
server keeps serving after each.

Encrypted work (key deserialization, circuit runs) goes to a bounded pool of threads (concrete
releases the GIL while it computes), so the event loop stays free for ``/health`` and uploads.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from concrete import fhe

try:
    from fastapi import FastAPI, HTTPException, Request, Response
    from fastapi.responses import JSONResponse

    from .service_metrics import ServiceMetrics
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("The HTTP service needs the serve extra: pip install 'sklearn_fhe[serve]' "
                      f"({error.name} is missing).") from error

from .access import Tokens
from .client import client_archive
from .errors import ArtifactError, PayloadError
from .key_store import KeyTooLargeError, UnknownKeyError, resident_key_bytes
from .payload import message_rows
from .server import Server
from .service_keys import ServiceKeys

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
    max_key_sets_per_token : int
        With bearer tokens: most key sets one token holds (its least recently used one is let
        go first).
    max_disk_key_sets : int
        With a key-store directory: most key sets kept on disk (all processes together).
    max_disk_key_bytes : int
        With a key-store directory: most bytes of key sets kept on disk (as uploaded).
    """

    max_request_bytes: int = 64 * MiB
    max_key_upload_bytes: int = 512 * MiB
    max_key_sets: int = 64
    max_key_bytes: int = 4096 * MiB
    key_ttl_s: float = 3600.0
    workers: int = max(1, os.cpu_count() or 1)
    max_pending: int = 64
    max_key_sets_per_token: int = 16
    max_disk_key_sets: int = 1024
    max_disk_key_bytes: int = 64 * 1024 * MiB

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


UNAUTHORIZED = ("Missing or invalid bearer token: send the header 'Authorization: Bearer "
                "<token>' (RemoteClient(url, token=...)).")


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
    request.state.bytes_in = size
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


def create_app(model_dir: Union[str, Path], limits: ServiceLimits = ServiceLimits(),
               key_store: Optional[Union[str, Path]] = None, tokens: Optional[Tokens] = None,
               dask_scheduler: Optional[str] = None) -> FastAPI:
    """The FastAPI application serving the saved model in ``model_dir``.

    Parameters
    ----------
    model_dir : str or pathlib.Path
        A directory written by :func:`sklearn_fhe.deployment.save`, with both its parts (the
        client part is served on ``GET /model``).
    limits : ServiceLimits
        Body sizes, key store bounds and the worker pool.
    key_store : str or pathlib.Path, optional
        A directory where key sets are kept, shared by every service process on it and across
        restarts; default: memory only.
    tokens : Tokens, optional
        The accepted bearer tokens; default: no authentication.
    dask_scheduler : str, optional
        A Dask scheduler's address (``tcp://host:8786``): the circuit runs on its workers.

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
    store = ServiceKeys(server, limits, resident, Path(key_store) if key_store else None)
    dask_client = _dask_client(dask_scheduler) if dask_scheduler else None
    pool = WorkerPool(limits.workers, limits.max_pending)
    metrics = ServiceMetrics(store.stats, lambda: pool.pending)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown()
        if dask_client is not None:
            dask_client.close()
        server.close()

    app = FastAPI(title="sklearn_fhe encrypted inference", lifespan=lifespan)

    @app.middleware("http")
    async def authorize_and_count(request: Request, call_next) -> Response:
        start = time.perf_counter()
        request.state.owner = tokens.owner(request.headers.get("authorization")) \
            if tokens is not None else None
        if tokens is not None and request.state.owner is None and request.url.path != "/health":
            response = JSONResponse({"detail": UNAUTHORIZED}, 401,
                                    headers={"WWW-Authenticate": "Bearer"})
        else:
            response = await call_next(request)
        announced = request.headers.get("content-length", "0")
        bytes_in = getattr(request.state, "bytes_in", int(announced) if announced.isdigit() else 0)
        bytes_out = response.headers.get("content-length")
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - start,
                        bytes_in, int(bytes_out) if bytes_out and bytes_out.isdigit() else None)
        return response

    @app.get("/health")
    async def health(request: Request) -> dict:
        if tokens is not None and request.state.owner is None:
            return {"status": "ok"}  # a liveness probe learns nothing else
        stats = store.stats()
        return {"status": "ok", "model": server.fingerprint, "key_sets": stats["memory"][0],
                "key_bytes": stats["memory"][1], "disk_key_sets": stats.get("disk", (0, 0))[0],
                "disk_key_bytes": stats.get("disk", (0, 0))[1], "pending": pool.pending,
                "pid": os.getpid(), "dask": dask_scheduler is not None}

    @app.get("/model")
    async def model() -> Response:
        return Response(archive, media_type="application/zip",
                        headers={"X-Model-Fingerprint": server.fingerprint})

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/keys", status_code=201)
    async def keys(request: Request, response: Response) -> dict:
        body = await read_body(request, limits.max_key_upload_bytes)
        try:
            key_id, new = await pool.run(store.upload, body, request.state.owner)
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        except KeyTooLargeError as error:
            raise HTTPException(413, str(error)) from error
        response.status_code = 201 if new else 200
        return {"key_id": key_id, "ttl_s": limits.key_ttl_s}

    def run(body: bytes, key_id: str, owner: Optional[str]) -> bytes:
        held = store.get(key_id, owner)  # from memory, else from disk
        result = server.run(body, held.keys, keys_digest=held.key_id, dask_client=dask_client)
        report = server.last_fan_out if dask_client is not None else None
        if report is not None:
            metrics.fan_out(report)
        metrics.rows.inc(message_rows(result))
        return result

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await read_body(request, limits.max_request_bytes)
        key_id = request.headers.get(KEY_ID_HEADER)
        if not key_id:
            raise HTTPException(400, f"Missing the {KEY_ID_HEADER} header: the id POST /keys "
                                     "returned for your evaluation keys.")
        try:
            result = await pool.run(run, body, key_id, request.state.owner)
        except UnknownKeyError as error:
            raise HTTPException(404, str(error)) from error
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        return Response(result, media_type=OCTET_STREAM)

    return app


def _dask_client(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (not the default client)."""
    try:
        from distributed import Client
    except ImportError as error:
        raise ImportError("--dask-scheduler needs the dask extra: pip install "
                          "'sklearn_fhe[dask]'.") from error
    try:
        return Client(address, set_as_default=False, timeout=30)
    except OSError as error:
        raise OSError(f"No Dask scheduler answers at {address} ({error}): start one "
                      "(dask scheduler) or give its address as tcp://host:port.") from error


def serve(model_dir: Union[str, Path], host: str = "127.0.0.1", port: int = 8000,
          limits: ServiceLimits = ServiceLimits(), log_level: str = "info",
          key_store: Optional[Union[str, Path]] = None, tokens: Optional[Tokens] = None,
          dask_scheduler: Optional[str] = None, ssl_keyfile: Optional[str] = None,
          ssl_certfile: Optional[str] = None) -> None:
    """Serve ``model_dir`` over HTTP (HTTPS with ``ssl_keyfile`` and ``ssl_certfile``, uvicorn's
    own options) until interrupted (``sklearn-fhe serve``); the other parameters are
    :func:`create_app`'s."""
    import uvicorn

    app = create_app(model_dir, limits, key_store=key_store, tokens=tokens,
                     dask_scheduler=dask_scheduler)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ssl_keyfile=ssl_keyfile,
                ssl_certfile=ssl_certfile)
