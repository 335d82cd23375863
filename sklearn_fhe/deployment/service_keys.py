"""Where a service's key sets live: a memory LRU in front of an optional shared directory, and
which token holds which.

A key set's id is the SHA-256 of concrete's serialized evaluation keys
(:func:`~sklearn_fhe.deployment.disk_key_store.key_digest`): the same keys uploaded twice are one
entry, and every service process computes the same id. The memory tier (:class:`KeyStore`) holds
deserialized keys, charged their expanded size; the disk tier (:class:`DiskKeyStore`, with
``--key-store DIR``) holds the uploaded bytes, shared by every process on that directory and
kept across restarts. A key id missing from memory is read from disk and loaded again.

With bearer tokens, each token holds the key sets it uploaded, at most
``max_key_sets_per_token`` (its least recently used one is let go first; a key set no token holds
is deleted). A token asking for a key set it does not hold gets the same answer as for an
unknown id. Without a key-store directory ownership is per process.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from concrete import fhe

from ..fhe.worker_parts import Part
from .disk_key_store import DiskKeyStore, key_digest
from .key_store import KeyStore, UnknownKeyError
from .payload import unpack

_KEY_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HeldKeys:
    """One client's evaluation keys as a service holds them: its id, the deserialized keys,
    and the part that workers fetch them as."""

    key_id: str
    keys: fhe.EvaluationKeys
    part: Part


class Owners:
    """Which owner (a token's tag) holds which key ids, at most ``bound`` each, least recently
    used out first; on disk (``directory/<tag>/<key id>``, shared) or in memory."""

    def __init__(self, bound: int, directory: Optional[Path] = None) -> None:
        self.bound, self.directory = bound, directory
        self._memory: dict[str, OrderedDict] = {}
        self._lock = threading.Lock()

    def claim(self, owner: str, key_id: str) -> list[str]:
        """``owner`` holds ``key_id`` (now its most recent) → the ids it let go."""
        with self._lock:
            if self.directory is None:
                held = self._memory.setdefault(owner, OrderedDict())
                held[key_id] = True
                held.move_to_end(key_id)
                return [held.popitem(last=False)[0] for _ in range(len(held) - self.bound)]
            folder = self.directory / owner
            folder.mkdir(parents=True, exist_ok=True)
            (folder / key_id).touch()
            held = sorted(folder.iterdir(), key=lambda path: path.stat().st_mtime)
            excess = max(0, len(held) - self.bound)
            dropped = [path for path in held if path.name != key_id][:excess]
            for path in dropped:
                path.unlink(missing_ok=True)
            return [path.name for path in dropped]

    def holds(self, owner: str, key_id: str) -> bool:
        """Whether ``owner`` holds ``key_id`` (a use: now its most recent)."""
        with self._lock:
            if self.directory is None:
                held = self._memory.get(owner, {})
                if key_id in held:
                    held.move_to_end(key_id)
                    return True
                return False
            try:
                os.utime(self.directory / owner / key_id)
            except FileNotFoundError:
                return False
            return True

    def anyone_holds(self, key_id: str) -> bool:
        """Whether any owner holds ``key_id``."""
        with self._lock:
            if self.directory is None:
                return any(key_id in held for held in self._memory.values())
            return any(self.directory.glob(f"*/{key_id}"))


class ServiceKeys:
    """The key sets of one served model.

    Parameters
    ----------
    server : Server
        The model's server (checks and loads uploaded keys).
    limits : ServiceLimits
        Memory bounds, disk bounds, per-token bound, idle time.
    resident : int
        Bytes one key set takes in memory once expanded.
    directory : pathlib.Path, optional
        The key-store directory shared by service processes (``--key-store``); this model's
        key sets go to its subdirectory named by the model's fingerprint.
    """

    def __init__(self, server: Any, limits: Any, resident: int,
                 directory: Optional[Path] = None) -> None:
        self.server, self.resident = server, resident
        self.memory = KeyStore(limits.max_key_sets, limits.max_key_bytes, limits.key_ttl_s)
        self.disk: Optional[DiskKeyStore] = None
        owners_dir = None
        if directory is not None:
            root = Path(directory) / server.fingerprint[:16]
            self.disk = DiskKeyStore(root, limits.max_disk_key_sets, limits.max_disk_key_bytes,
                                     limits.key_ttl_s)
            owners_dir = root / "owners"
        self.owners = Owners(limits.max_key_sets_per_token, owners_dir)
        self._loading = threading.Lock()
        self._disk_stats = (0.0, {"sets": 0, "bytes": 0})

    def upload(self, body: bytes, owner: Optional[str] = None) -> tuple[str, bool]:
        """Check and keep an uploaded keys message → (key id, whether it was new here)."""
        data = unpack(body, "keys", self.server.fingerprint, self.server.functions).blobs[0].data
        key_id = key_digest(data)
        held_here = key_id in self.memory
        on_disk = self.disk is not None and key_id in self.disk
        if not held_here:
            keys = self.server.load_keys(body)  # concrete must read them before they are kept
        if self.disk is not None and not on_disk:  # also if another process evicted them
            self.disk.put(data)
        if not held_here:
            self._hold(key_id, keys, len(data))
        new = not (held_here or on_disk)
        if owner is not None:
            for dropped in self.owners.claim(owner, key_id):
                if not self.owners.anyone_holds(dropped):
                    self.forget(dropped)
        return key_id, new

    def get(self, key_id: str, owner: Optional[str] = None) -> HeldKeys:
        """The key set of ``key_id``: from memory, else from disk (loaded again);
        ``UnknownKeyError`` if not held, expired, or not held by ``owner``."""
        if not _KEY_ID.match(key_id) or (owner is not None
                                         and not self.owners.holds(owner, key_id)):
            raise UnknownKeyError(f"Unknown or expired key id {key_id!r}: upload the "
                                  "evaluation keys again (POST /keys).")
        try:
            return self.memory.get(key_id)
        except UnknownKeyError:
            if self.disk is None:
                raise
        with self._loading:  # one read per key set, however many requests wait for it
            try:
                return self.memory.get(key_id)
            except UnknownKeyError:
                data = self.disk.get(key_id)
                return self._hold(key_id, fhe.EvaluationKeys.deserialize(data), len(data))

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from both tiers."""
        self.memory.discard(key_id)
        if self.disk is not None:
            self.disk.delete(key_id)

    def stats(self) -> dict:
        """``{"memory": (sets, bytes), "disk": (sets, bytes)}`` (disk: listed at most once a
        second, and only with a key-store directory)."""
        out = {"memory": (len(self.memory), self.memory.nbytes)}
        if self.disk is not None:
            listed_at, stats = self._disk_stats
            if time.monotonic() - listed_at > 1.0:
                stats = self.disk.stats()
                self._disk_stats = (time.monotonic(), stats)
            out["disk"] = (stats["sets"], stats["bytes"])
        return out

    def _hold(self, key_id: str, keys: fhe.EvaluationKeys, size: int) -> HeldKeys:
        disk = self.disk
        read = (lambda: disk.get(key_id)) if disk is not None else keys.serialize
        held = HeldKeys(key_id, keys, Part("keys", key_id, read, size))
        self.memory.add(held, max(size, self.resident), key_id)
        return held
