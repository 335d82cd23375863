"""Server parts and key sets on workers: published once by digest, loaded once per worker.

A worker (a joblib process, a Dask worker) needs two things besides ciphertexts to run circuit
calls: the compiled server part and the client's evaluation keys, 0.1 to 100+ MB each. Both are
*parts* named by the SHA-256 of their bytes. The driver publishes a part once (it stays
published across requests, bounded, least recently used out first) and sends workers only a
:class:`PartRef`: its digest and where to fetch it. A worker keeps what it loaded, by digest
(bounded, least recently used out first), and fetches a part only when it lacks it, so after
the first request only ciphertexts travel.

Where a part is published:

- local joblib processes: a file in a spool directory private to the driver process (removed at
  exit); the worker reads it (no pipe copy);
- a Dask cluster: scattered once under the key ``sklearn-fhe-<kind>-<digest>`` and held by the
  driver; a worker that lacks it fetches it by that key from the worker holding it.

Worker-side bounds come from the environment of the worker process:
``SKLEARN_FHE_WORKER_SERVERS`` (server parts kept, default 4) and
``SKLEARN_FHE_WORKER_KEY_SETS`` (key sets kept, default 8).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from concrete import fhe

from .runtime import ServerRuntime

KINDS = ("server", "keys")
#: Parts the driver keeps published, per kind (least recently used unpublished first).
PUBLISHED_BOUNDS = {"server": 4, "keys": 16}


def digest(data: bytes) -> str:
    """A part's name: the SHA-256 of its bytes (hex)."""
    return hashlib.sha256(data).hexdigest()


class Part:
    """Bytes that workers need, named by their digest and read only if a worker lacks them.

    Parameters
    ----------
    kind : {"server", "keys"}
        A saved concrete server (``server.zip``) or serialized evaluation keys.
    digest : str
        The SHA-256 of the bytes (hex).
    read : callable
        Returns the bytes; called only when the part must be published.
    size : int, optional
        Its length in bytes, where known without reading it (for reports).
    """

    def __init__(self, kind: str, digest: str, read: Callable[[], bytes],
                 size: Optional[int] = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"A part is one of {KINDS}, not {kind!r}.")
        self.kind, self.digest, self.read, self.size = kind, digest, read, size

    @classmethod
    def from_bytes(cls, kind: str, data: bytes) -> "Part":
        """A part from bytes in hand (digested now)."""
        return cls(kind, digest(data), lambda: data, len(data))


@dataclass(frozen=True)
class PartRef:
    """What a task carries instead of a part: its kind, digest, and where to fetch it
    (``file`` with a path, or ``dask`` with a key)."""

    kind: str
    digest: str
    source: str
    location: str


# -- driver side: publishing ------------------------------------------------------------------
class _Published:
    """Parts published to one target, by digest; least recently used unpublished first."""

    def __init__(self) -> None:
        self.entries: dict[str, OrderedDict] = {kind: OrderedDict() for kind in KINDS}
        self.lock = threading.Lock()

    def use(self, kind: str, key: str, alive: Callable[[Any], bool],
            make: Callable[[], Any], drop: Callable[[Any], None]) -> tuple[Any, bool]:
        """The published handle of ``key`` (made now if absent or dead) → (handle, made)."""
        with self.lock:
            entries = self.entries[kind]
            handle = entries.get(key)
            made = handle is None or not alive(handle)
            if made:
                handle = entries[key] = make()
            entries.move_to_end(key)
            while len(entries) > PUBLISHED_BOUNDS[kind]:
                drop(entries.popitem(last=False)[1])
            return handle, made


_SPOOL: dict = {}  # "directory" → this process's spool directory, made on first use
_SPOOLED = _Published()
_SCATTERED: dict = {}  # a distributed client's id → its published parts
_SCATTERED_LOCK = threading.Lock()


def _spool_directory() -> Path:
    with _SPOOLED.lock:
        if "directory" not in _SPOOL:
            directory = Path(tempfile.mkdtemp(prefix="sklearn_fhe_parts_"))
            atexit.register(shutil.rmtree, directory, True)
            _SPOOL["directory"] = directory
        return _SPOOL["directory"]


def publish_to_files(part: Part) -> tuple[PartRef, int]:
    """``part`` in this process's spool directory (written once, atomically) → its reference and
    the bytes written now (0 when it was there already)."""
    path = _spool_directory() / f"{part.kind}-{part.digest}"
    written = [0]

    def write() -> Path:
        data = part.read()
        partial = path.with_name(path.name + f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # a reader never sees a half-written part
        written[0] = len(data)
        return path

    _SPOOLED.use(part.kind, part.digest, Path.exists, write,
                 lambda old: old.unlink(missing_ok=True))
    return PartRef(part.kind, part.digest, "file", str(path)), written[0]


def dask_key(kind: str, part_digest: str) -> str:
    """The Dask key a part is scattered under."""
    return f"sklearn-fhe-{kind}-{part_digest}"


def publish_to_dask(part: Part, client: Any) -> tuple[PartRef, int]:
    """``part`` scattered once to the cluster of the ``distributed.Client`` ``client`` (held
    by this process until unpublished) → its reference and the bytes scattered now."""
    with _SCATTERED_LOCK:
        published = _SCATTERED.setdefault(getattr(client, "id", id(client)), _Published())
    key = dask_key(part.kind, part.digest)
    sent = [0]

    def scatter() -> Any:
        data = part.read()
        sent[0] = len(data)
        # one worker receives it; the others fetch it from there when they need it
        return client.scatter({key: data}, broadcast=False, hash=False)[key]

    published.use(part.kind, part.digest, lambda future: future.status == "finished", scatter,
                  lambda future: future.release())
    return PartRef(part.kind, part.digest, "dask", key), sent[0]


# -- worker side: what this process holds --------------------------------------------------------
def _bound(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


class _WorkerCache:
    """Loaded parts of this process by digest, per kind, least recently used out first."""

    def __init__(self) -> None:
        self.held: dict[str, OrderedDict] = {kind: OrderedDict() for kind in KINDS}
        self.loads: Counter = Counter()  # digest → times loaded in this process
        self.fetched_bytes = 0
        self.lock = threading.Lock()

    def get(self, ref: PartRef) -> tuple[Any, int]:
        """The loaded part of ``ref`` → (it, bytes fetched now: 0 when it was held)."""
        with self.lock:
            held = self.held[ref.kind]
            if ref.digest in held:
                held.move_to_end(ref.digest)
                return held[ref.digest], 0
            data = _fetch(ref)
            if digest(data) != ref.digest:
                raise RuntimeError(f"The {ref.kind} part fetched from {ref.location} is not "
                                   f"the one named {ref.digest[:16]}…: refused.")
            bound = (_bound("SKLEARN_FHE_WORKER_SERVERS", 4) if ref.kind == "server"
                     else _bound("SKLEARN_FHE_WORKER_KEY_SETS", 8))
            while len(held) >= bound:
                held.popitem(last=False)
            held[ref.digest] = _load(ref.kind, data)
            self.loads[ref.digest] += 1
            self.fetched_bytes += len(data)
            return held[ref.digest], len(data)


_CACHE = _WorkerCache()


def _fetch(ref: PartRef) -> bytes:
    if ref.source == "file":
        try:
            return Path(ref.location).read_bytes()
        except FileNotFoundError:
            raise RuntimeError(f"The {ref.kind} part {ref.location} is gone: the driver "
                               "unpublished it (run the request again).") from None
    from distributed import Future, get_client  # only ever on a Dask worker

    # the driver holds the scattered key: its data is in memory on some worker
    return Future(ref.location, client=get_client(), state="memory").result()


def _load(kind: str, data: bytes) -> Any:
    if kind == "keys":
        return fhe.EvaluationKeys.deserialize(data)
    directory = Path(tempfile.mkdtemp(prefix="sklearn_fhe_worker_"))
    (directory / "server.zip").write_bytes(data)
    return ServerRuntime(fhe.Server.load(directory / "server.zip"))


def resolve(ref: PartRef) -> tuple[Any, int]:
    """In a worker: the loaded part (a ``ServerRuntime`` or ``EvaluationKeys``) of ``ref``,
    fetched and loaded only if this process does not hold it → (it, bytes fetched now)."""
    return _CACHE.get(ref)


def worker_loads() -> dict:
    """In a worker: how many times this process loaded each part (digest → count) and the
    bytes of parts it fetched, over its life (``distributed.Client.run(worker_loads)``)."""
    return {"loads": dict(_CACHE.loads), "fetched_bytes": _CACHE.fetched_bytes}


def loads_of(part_digest: str) -> int:
    """In a worker: how many times this process loaded the part ``part_digest``."""
    return _CACHE.loads[part_digest]
