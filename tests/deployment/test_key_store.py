"""The server's store of evaluation keys: bounded in count, bytes and age, least recently
used out first."""

from __future__ import annotations

import pytest

from sklearn_fhe.deployment.key_store import KeyStore, KeyTooLargeError, UnknownKeyError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_count_bound_evicts_the_least_recently_used():
    store = KeyStore(max_sets=2, max_bytes=100, ttl=60)
    a, b = store.add("A", 1), store.add("B", 1)
    assert store.get(a) == "A"  # now b is the least recently used
    c = store.add("C", 1)
    assert len(store) == 2 and store.get(a) == "A" and store.get(c) == "C"
    with pytest.raises(UnknownKeyError, match="upload the evaluation keys again"):
        store.get(b)


def test_byte_bound_evicts_until_it_fits():
    store = KeyStore(max_sets=10, max_bytes=100, ttl=60)
    a, b = store.add("A", 40), store.add("B", 40)
    c = store.add("C", 50)
    assert store.nbytes == 90
    with pytest.raises(UnknownKeyError):
        store.get(a)
    assert store.get(b) == "B" and store.get(c) == "C"


def test_too_large_for_the_whole_store():
    store = KeyStore(max_sets=10, max_bytes=100, ttl=60)
    kept = store.add("A", 10)
    with pytest.raises(KeyTooLargeError, match="more than the 100 bytes"):
        store.add("huge", 101)
    assert store.get(kept) == "A"


def test_unused_keys_expire():
    clock = Clock()
    store = KeyStore(max_sets=10, max_bytes=100, ttl=60, clock=clock)
    a, b = store.add("A", 1), store.add("B", 1)
    clock.now = 50
    store.get(a)  # used: lives 60 s more
    clock.now = 70
    assert store.get(a) == "A"
    with pytest.raises(UnknownKeyError, match="expired"):
        store.get(b)
    assert len(store) == 1


def test_ids_are_unguessable_and_distinct():
    store = KeyStore(max_sets=100, max_bytes=1000, ttl=60)
    ids = {store.add(i, 1) for i in range(50)}
    assert len(ids) == 50 and all(len(i) >= 24 for i in ids)


@pytest.mark.parametrize("bad", [dict(max_sets=0), dict(max_bytes=0), dict(ttl=0)])
def test_bounds_must_be_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        KeyStore(**{"max_sets": 1, "max_bytes": 1, "ttl": 1, **bad})
