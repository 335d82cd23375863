"""Evaluation keys on disk, named by their digest: outlive a process, shared by several.

``sklearn-fhe serve --key-store DIR`` keeps every uploaded key set as a file named by the
SHA-256 of its bytes (concrete's serialized evaluation keys), so uploading the same keys twice is
one entry, and any service process on the same directory (a local disk, or a shared file system)
answers a key id that another one received, also after a restart. Layout::

    DIR/<model fingerprint, 16 hex>/keys/<sha256>       one key set
    DIR/<model fingerprint, 16 hex>/tmp/<...>.part       writes in progress
    DIR/<model fingerprint, 16 hex>/owners/<tag>/<sha256> which token holds which key set

A write goes to ``tmp/`` first, is flushed to disk, and only then renamed to its name (an atomic
rename within one file system): a process killed mid-write leaves at most a ``.part`` file,
never a half-written key set under a key id. Reads check the digest again, so a file damaged
afterwards is dropped, not served. Bounds on count, bytes and idle time hold on disk too (the
file's modification time is its last use; least recently used out first); leftover ``.part``
files of dead processes are removed when a store opens the directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Union

from .key_store import KeyTooLargeError, UnknownKeyError

_KEY_ID = re.compile(r"^[0-9a-f]{64}$")
#: A ``.part`` file older than this is a leftover, whoever wrote it.
STALE_PART_S = 3600.0
_CHUNK = 1 << 20


def key_digest(data: bytes) -> str:
    """A key set's id: the SHA-256 (hex) of concrete's serialized evaluation keys."""
    return hashlib.sha256(data).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DiskKeyStore:
    """Key sets as files named by their digest, bounded in count, bytes and idle time.

    Parameters
    ----------
    directory : str or pathlib.Path
        This model's directory in the store (created if absent).
    max_sets : int
        Most key sets kept on disk.
    max_bytes : int
        Most bytes of key sets kept on disk.
    ttl : float
        Seconds after its last use that a key set is deleted.
    clock : callable, optional
        Wall-clock seconds (``time.time``, as file times are); tests give their own.
    """

    def __init__(self, directory: Union[str, Path], max_sets: int, max_bytes: int, ttl: float,
                 clock: Optional[Callable[[], float]] = None) -> None:
        if max_sets < 1 or max_bytes < 1 or ttl <= 0:
            raise ValueError("max_sets, max_bytes and ttl must be positive.")
        self.directory = Path(directory)
        self.max_sets, self.max_bytes, self.ttl = max_sets, max_bytes, ttl
        self._clock = clock or time.time
        self.keys_dir = self.directory / "keys"
        self.tmp_dir = self.directory / "tmp"
        try:
            self.keys_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise OSError(f"The key store directory {self.directory} cannot be created or "
                          f"written ({error.strerror}): give --key-store a writable "
                          "directory.") from error
        self.remove_leftovers()

    # -- writes ------------------------------------------------------------------------------
    def put(self, data: bytes) -> tuple[str, bool]:
        """Keep ``data`` (one key set) → (its id, whether it was new). Evicts least recently
        used key sets past the bounds; ``KeyTooLargeError`` if it exceeds ``max_bytes``."""
        if len(data) > self.max_bytes:
            raise KeyTooLargeError(f"These evaluation keys take {len(data)} bytes, more than the "
                                   f"{self.max_bytes} bytes the key store keeps on disk.")
        key_id = key_digest(data)
        path = self.keys_dir / key_id
        if path.exists():
            self._touch(path)
            return key_id, False
        partial = self.tmp_dir / (f"{key_id}__{socket.gethostname()}__{os.getpid()}__"
                                  f"{secrets.token_hex(4)}.part")
        try:
            with open(partial, "wb") as file:
                view = memoryview(data)
                for start in range(0, len(data), _CHUNK):
                    file.write(view[start:start + _CHUNK])
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)  # atomic: the id names complete bytes or nothing
        finally:
            partial.unlink(missing_ok=True)
        self._touch(path)  # its first use
        self._sync_directory()
        self.evict(keep=key_id)
        return key_id, True

    def _sync_directory(self) -> None:
        try:
            descriptor = os.open(self.keys_dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(descriptor)  # the rename itself survives a power cut
        except OSError:  # a file system without directory fsync: the rename stands as is
            return
        finally:
            os.close(descriptor)

    def delete(self, key_id: str) -> None:
        """Forget ``key_id`` (if held)."""
        if _KEY_ID.match(key_id):
            (self.keys_dir / key_id).unlink(missing_ok=True)

    # -- reads -------------------------------------------------------------------------------
    def get(self, key_id: str) -> bytes:
        """The bytes of ``key_id`` (now its most recent use); ``UnknownKeyError`` if not held,
        expired, or damaged since it was written (then deleted)."""
        path = self.keys_dir / key_id if _KEY_ID.match(key_id) else None
        try:
            if path is None:
                raise FileNotFoundError
            if path.stat().st_mtime < self._clock() - self.ttl:
                path.unlink(missing_ok=True)
                raise FileNotFoundError
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnknownKeyError(f"Unknown or expired key id {key_id!r}: upload the "
                                  "evaluation keys again (POST /keys).") from None
        if key_digest(data) != key_id:
            path.unlink(missing_ok=True)
            raise UnknownKeyError(f"The key set {key_id!r} on disk is damaged (its bytes no "
                                  "longer match its id) and was deleted: upload the "
                                  "evaluation keys again (POST /keys).")
        self._touch(path)
        return data

    def __contains__(self, key_id: str) -> bool:
        return bool(_KEY_ID.match(key_id)) and (self.keys_dir / key_id).exists()

    # -- bounds --------------------------------------------------------------------------------
    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of each key set, least recently used first."""
        found = []
        for path in self.keys_dir.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted by another process meanwhile
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return sorted(found)

    def stats(self) -> dict:
        """``{"sets": count, "bytes": total}`` on disk now."""
        entries = self.entries()
        return {"sets": len(entries), "bytes": sum(size for _, size, _ in entries)}

    def evict(self, keep: Optional[str] = None) -> list[str]:
        """Delete expired key sets, then the least recently used past the bounds (never
        ``keep``) → the ids deleted."""
        entries, deleted = self.entries(), []
        deadline = self._clock() - self.ttl
        count, total = len(entries), sum(size for _, size, _ in entries)
        for used, size, path in entries:
            over = count > self.max_sets or total > self.max_bytes
            if path.name != keep and (used < deadline or over):
                path.unlink(missing_ok=True)
                deleted.append(path.name)
                count, total = count - 1, total - size
        return deleted

    def remove_leftovers(self) -> list[str]:
        """Delete ``.part`` files of writes that will never finish: this host's dead
        processes', and any older than ``STALE_PART_S`` → their names."""
        removed, host, now = [], socket.gethostname(), self._clock()
        for path in self.tmp_dir.glob("*.part"):
            fields = path.name[:-len(".part")].split("__")
            try:
                mine = fields[1] == host and not _pid_alive(int(fields[2]))
                old = path.stat().st_mtime < now - STALE_PART_S
            except (IndexError, ValueError, FileNotFoundError):
                mine, old = False, True
            if mine or old:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def _touch(self, path: Path) -> None:
        now = self._clock()
        try:
            os.utime(path, (now, now))
        except FileNotFoundError:  # evicted meanwhile: nothing to touch
            return
