"""Key sets on disk, named by their digest: one entry per distinct key set, atomic writes, never a
partial or damaged file served, bounds on count, bytes and idle time; and the per-token holdings
of a service."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sklearn_fhe.deployment.disk_key_store import DiskKeyStore, key_digest
from sklearn_fhe.deployment.key_store import KeyTooLargeError, UnknownKeyError
from sklearn_fhe.deployment.service_keys import Owners


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(tmp_path: Path, **bounds) -> DiskKeyStore:
    options = {"max_sets": 10, "max_bytes": 1000, "ttl": 60.0, **bounds}
    return DiskKeyStore(tmp_path / "model", **options)


def test_content_addressed_one_entry(tmp_path):
    keys = store(tmp_path)
    first, new = keys.put(b"A" * 10)
    again, new_again = keys.put(b"A" * 10)
    assert first == again == key_digest(b"A" * 10) and (new, new_again) == (True, False)
    assert keys.stats() == {"sets": 1, "bytes": 10}
    assert keys.get(first) == b"A" * 10


def test_a_second_store_on_the_directory_sees_the_keys(tmp_path):
    """Another process (or a restarted one) on the same directory answers the same id."""
    key_id, _ = store(tmp_path).put(b"shared")
    assert store(tmp_path).get(key_id) == b"shared"


@pytest.mark.parametrize("key_id", ["no-such-key", "../../etc/passwd", key_digest(b"never")])
def test_unknown_ids(tmp_path, key_id):
    with pytest.raises(UnknownKeyError, match="upload the evaluation keys again"):
        store(tmp_path).get(key_id)


def test_a_partial_write_is_never_served(tmp_path):
    """A write in progress (or cut by a crash) lives in tmp/ under another name: the id is
    unknown until the complete bytes are renamed to it."""
    keys = store(tmp_path)
    data = b"K" * 100
    key_id = key_digest(data)
    (keys.tmp_dir / f"{key_id}__{socket.gethostname()}__{os.getpid()}__00.part").write_bytes(
        data[:50])
    with pytest.raises(UnknownKeyError):
        keys.get(key_id)
    assert keys.stats()["sets"] == 0


def test_damaged_file_is_dropped_not_served(tmp_path):
    keys = store(tmp_path)
    key_id, _ = keys.put(b"B" * 100)
    (keys.keys_dir / key_id).write_bytes(b"B" * 50)  # truncated afterwards
    with pytest.raises(UnknownKeyError, match="damaged"):
        keys.get(key_id)
    assert key_id not in keys
    assert keys.put(b"B" * 100) == (key_id, True)  # a new upload heals it


def test_leftovers_of_dead_writers_are_removed(tmp_path):
    keys = store(tmp_path)
    host = socket.gethostname()
    dead = keys.tmp_dir / f"{'0' * 64}__{host}__999999999__aa.part"
    alive = keys.tmp_dir / f"{'1' * 64}__{host}__{os.getpid()}__bb.part"
    dead.write_bytes(b"x")
    alive.write_bytes(b"y")
    store(tmp_path)  # a store opening the directory cleans up
    assert not dead.exists() and alive.exists()


def test_count_bound_least_recently_used_out(tmp_path):
    clock = Clock()
    keys = store(tmp_path, max_sets=2, clock=clock)
    a, _ = keys.put(b"a")
    clock.now += 1
    b, _ = keys.put(b"b")
    clock.now += 1
    keys.get(a)  # now b is the least recently used
    clock.now += 1
    c, _ = keys.put(b"c")
    assert keys.get(a) == b"a" and keys.get(c) == b"c"
    with pytest.raises(UnknownKeyError):
        keys.get(b)


def test_byte_bound_and_too_large(tmp_path):
    clock = Clock()
    keys = store(tmp_path, max_bytes=100, clock=clock)
    a, _ = keys.put(b"a" * 60)
    clock.now += 1
    b, _ = keys.put(b"b" * 60)
    assert keys.stats() == {"sets": 1, "bytes": 60} and keys.get(b)
    with pytest.raises(KeyTooLargeError, match="more than the 100 bytes"):
        keys.put(b"c" * 101)
    with pytest.raises(UnknownKeyError):
        keys.get(a)


def test_idle_key_sets_expire(tmp_path):
    clock = Clock()
    keys = store(tmp_path, ttl=60, clock=clock)
    a, _ = keys.put(b"a")
    b, _ = keys.put(b"b")
    clock.now += 50
    keys.get(a)
    clock.now += 20
    assert keys.get(a) == b"a"
    with pytest.raises(UnknownKeyError, match="expired"):
        keys.get(b)


def test_unwritable_directory_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="give --key-store a writable directory"):
        DiskKeyStore(blocker / "model", 1, 1, 1)


@pytest.mark.parametrize("on_disk", [False, True])
def test_owners_bound_per_token(tmp_path, on_disk):
    owners = Owners(bound=2, directory=tmp_path / "owners" if on_disk else None)
    assert owners.claim("t1", "k1") == [] and owners.claim("t1", "k2") == []
    assert owners.claim("t2", "k1") == []
    assert owners.holds("t1", "k1")  # k2 is now t1's least recently used
    assert owners.claim("t1", "k3") == ["k2"]
    assert not owners.holds("t1", "k2") and not owners.holds("t2", "k2")
    assert owners.anyone_holds("k1") and not owners.anyone_holds("k2")
