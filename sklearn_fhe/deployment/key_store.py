"""Evaluation keys a server holds for its clients: bounded in count, bytes and age.

Each client uploads its evaluation keys once and names them by the id it gets back. The store
forgets the least recently used key sets when it is over its count or byte bound, and any key
set unused for longer than its time to live, so a server's memory stays bounded however many
clients come and go. A client whose keys were forgotten uploads them again.

Keys travel compressed and are expanded in memory at their first use (a 14 MB upload becomes
~100 MB resident for a small tree ensemble), so a key set is charged its expanded size, computed
from the model's key parameters (:func:`resident_key_bytes`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

from concrete import fhe

#: Bytes of one coefficient of a key in memory (64-bit integers, or 64-bit floats in the
#: Fourier domain for bootstrap keys: two per complex value of half the polynomial).
_WORD = 8


def resident_key_bytes(specs: fhe.ClientSpecs) -> int:
    """Bytes that one set of evaluation keys of a model takes in a server's memory, from the
    model's client specs: bootstrap keys ``n · l · (k+1)² · N`` and key-switching keys
    ``n_in · l · (n_out + 1)`` words (packing key-switching keys, which sklearn_fhe's circuits
    do not use, are not counted)."""
    keyset = specs.program_info.get_keyset_info()
    dimensions = [key.dimension() for key in keyset.secret_keys()]
    words = sum(key.input_lwe_dimension() * key.level() * (key.glwe_dimension() + 1) ** 2
                * key.polynomial_size() for key in keyset.bootstrap_keys())
    words += sum(dimensions[key.input_secret_key_id()] * key.level()
                 * (dimensions[key.output_secret_key_id()] + 1)
                 for key in keyset.keyswitch_keys())
    return words * _WORD


class UnknownKeyError(KeyError):
    """A key id that the store does not hold: never issued, expired or evicted."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0])


class KeyTooLargeError(ValueError):
    """A key set larger than the store's whole byte bound."""


@dataclass
class _Entry:
    keys: Any
    size: int
    last_used: float


class KeyStore:
    """Key sets by id, least recently used first out.

    Parameters
    ----------
    max_sets : int
        Most key sets held at once.
    max_bytes : int
        Most bytes held at once (each key set counted at the size it was added with).
    ttl : float
        Seconds after its last use that a key set is forgotten.
    clock : callable, optional
        Monotonic seconds (``time.monotonic``); tests give their own.
    """

    def __init__(self, max_sets: int, max_bytes: int, ttl: float,
                 clock: Optional[Callable[[], float]] = None) -> None:
        if max_sets < 1 or max_bytes < 1 or ttl <= 0:
            raise ValueError("max_sets, max_bytes and ttl must be positive.")
        self.max_sets, self.max_bytes, self.ttl = max_sets, max_bytes, ttl
        self._clock = clock or time.monotonic
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, keys: Any, size: int, key_id: Optional[str] = None) -> str:
        """Store ``keys`` (``size`` bytes) under ``key_id`` (default: a new random id) → the
        id; evicts the least recently used sets that no longer fit. Raises
        ``KeyTooLargeError`` if ``size`` exceeds ``max_bytes``."""
        if size > self.max_bytes:
            raise KeyTooLargeError(f"These evaluation keys take {size} bytes, more than the "
                                   f"{self.max_bytes} bytes this server keeps for all clients.")
        key_id = key_id or secrets.token_urlsafe(18)
        with self._lock:
            self._entries.pop(key_id, None)
            self._expire()
            self._entries[key_id] = _Entry(keys, size, self._clock())
            while len(self._entries) > self.max_sets or self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)
        return key_id

    def get(self, key_id: str) -> Any:
        """The key set of ``key_id`` (now its most recent use); ``UnknownKeyError`` if the
        store does not hold it."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key_id)
            if entry is None:
                raise UnknownKeyError(f"Unknown or expired key id {key_id!r}: upload the "
                                      "evaluation keys again (POST /keys).")
            entry.last_used = self._clock()
            self._entries.move_to_end(key_id)
            return entry.keys

    def discard(self, key_id: str) -> None:
        """Forget ``key_id`` (if held)."""
        with self._lock:
            self._entries.pop(key_id, None)

    def __contains__(self, key_id: str) -> bool:
        with self._lock:
            self._expire()
            return key_id in self._entries

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(entry.size for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        deadline = self._clock() - self.ttl
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.last_used >= deadline:
                return
            self._entries.popitem(last=False)
