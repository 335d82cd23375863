"""The bytes exchanged between client and server: encrypted inputs, results, evaluation keys.

One compact binary layout for the three (all integers big endian)::

    MAGIC (4) | version (1) | kind (1) | model (8) | blob count (4)
    then per blob: rows per call (4) | real rows (4) | deflated (1) | length (8)
    then the blobs: concrete's serialized values, back to back, each ciphertext deflated
    (zlib) when that makes it shorter

``model`` is the first 8 bytes of the model's fingerprint (the SHA-256 of its client specs), so
a message meant for another model is refused by name; each blob says which circuit function
(the one taking that many rows) it goes to, and how many of its rows are real. Every field is
checked before anything is handed to concrete: a malformed or foreign message is a
``PayloadError``. The envelope costs 18 bytes plus 17 per circuit call; deflating pays for it
several times over on small requests, since part of each serialized value is a description of
its type repeated in every message (a 1-row upload of a 30-feature linear model: 984 bytes of
concrete's value, 907 bytes sent).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from .errors import PayloadError

MAGIC = b"SKFH"
VERSION = 2
KINDS = ("inputs", "outputs", "keys")
#: Most blobs accepted in one message (a million rows in 16-row calls stay far below).
MAX_BLOBS = 1 << 20
_HEADER = struct.Struct(">4sBB8sI")
_BLOB = struct.Struct(">IIBQ")
#: A deflated blob may inflate to at most this many times its size plus ``_INFLATE_SLACK``
#: (serialized ciphertexts deflate by ~10%, never by 4x): a zip bomb is refused, not inflated.
_INFLATE_RATIO = 4
_INFLATE_SLACK = 1 << 16


def fingerprint(client_specs: bytes) -> str:
    """A model's identity: the SHA-256 of its serialized client specs (keys' parameters, input
    and output types of every circuit function)."""
    return hashlib.sha256(client_specs).hexdigest()


@dataclass(frozen=True)
class Blob:
    """One serialized concrete value, for the circuit function ``function`` (a call of
    ``function``'s size holding ``rows`` real rows; none for keys)."""

    data: bytes
    function: str = ""
    rows: int = 0


@dataclass(frozen=True)
class Message:
    """A decoded message: its kind, its model's fingerprint, and its blobs in order."""

    kind: str
    model: str
    blobs: list = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return sum(blob.rows for blob in self.blobs)


def _function_size(name: str) -> int:
    return int(name.rpartition("_")[2]) if name else 0


def _deflated(data: bytes) -> tuple[bool, bytes]:
    """``data`` deflated when that is shorter (ciphertext bodies are random; only the type
    descriptions around them deflate), with whether it was."""
    packed = zlib.compress(data, 6)
    return (True, packed) if len(packed) < len(data) else (False, data)


def _inflated(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    limit = _INFLATE_RATIO * len(data) + _INFLATE_SLACK
    try:
        inflated = inflater.decompress(data, limit)
    except zlib.error as error:
        raise PayloadError(f"A deflated ciphertext of the message is corrupt ({error}).") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise PayloadError("A deflated ciphertext of the message is truncated or inflates "
                           "implausibly: refused.")
    return inflated


def pack(message: Message) -> bytes:
    """The message as bytes."""
    header = _HEADER.pack(MAGIC, VERSION, KINDS.index(message.kind),
                          bytes.fromhex(message.model)[:8], len(message.blobs))
    # evaluation keys are megabytes of seeded, random-looking data: not worth deflating
    packed = [_deflated(blob.data) if message.kind != "keys" else (False, blob.data)
              for blob in message.blobs]
    entries = [_BLOB.pack(_function_size(blob.function), blob.rows, deflated, len(data))
               for blob, (deflated, data) in zip(message.blobs, packed)]
    return b"".join([header, *entries, *(data for _, data in packed)])


def unpack(data: bytes, kind: str, model: str, functions: dict) -> Message:
    """Read and check a message of ``kind`` for ``model``.

    ``functions`` maps each circuit function's name to its number of rows; every blob of inputs
    and outputs must go to one of them, with at most that many real rows.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"Expected bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        raise PayloadError("These bytes are not an sklearn_fhe message (no sklearn_fhe header).")
    _, version, kind_index, owner, count = _HEADER.unpack_from(data)
    if version != VERSION:
        raise PayloadError(f"Message format version {version}; this sklearn_fhe reads {VERSION}.")
    if kind_index >= len(KINDS) or count > MAX_BLOBS:
        raise PayloadError("The message header is malformed.")
    if KINDS[kind_index] != kind:
        raise PayloadError(f"Expected {kind}, got {KINDS[kind_index]}.")
    if owner != bytes.fromhex(model)[:8]:
        raise PayloadError(
            f"This {kind} message belongs to another model (fingerprint {owner.hex()}…, this "
            f"model's is {model[:16]}…): the client must use this model's own client part."
        )
    offset = _HEADER.size + count * _BLOB.size
    if offset > len(data):
        raise PayloadError("The message is truncated (its header runs past its end).")
    by_size = {size: name for name, size in functions.items()}
    blobs = []
    for index in range(count):
        size, rows, deflated, length = _BLOB.unpack_from(data, _HEADER.size + index * _BLOB.size)
        if offset + length > len(data):
            raise PayloadError("The message is truncated (a ciphertext runs past its end).")
        if deflated > 1:
            raise PayloadError("The message header is malformed.")
        name = by_size.get(size, f"batch_{size}") if size else ""
        blob = data[offset:offset + length]
        blobs.append(Blob(_inflated(blob) if deflated else blob, name, rows))
        offset += length
    if offset != len(data):
        raise PayloadError(f"The message has {len(data) - offset} unexpected trailing bytes.")
    if kind != "keys":
        _check_calls(blobs, functions)
    elif len(blobs) != 1:
        raise PayloadError(f"A keys message holds one key set, not {len(blobs)}.")
    return Message(kind, model, blobs)


def message_rows(data: bytes) -> int:
    """The real rows of a message already checked by :func:`unpack` (headers only)."""
    _, _, _, _, count = _HEADER.unpack_from(data)
    return sum(_BLOB.unpack_from(data, _HEADER.size + index * _BLOB.size)[1]
               for index in range(count))


def _check_calls(blobs: list, functions: dict) -> None:
    if not blobs:
        raise PayloadError("The message holds no rows.")
    for blob in blobs:
        if blob.function not in functions:
            raise PayloadError(f"The message names an unknown circuit function {blob.function!r}.")
        if not 1 <= blob.rows <= functions[blob.function]:
            raise PayloadError(
                f"A call of {blob.function} holds {blob.rows} rows (1 to "
                f"{functions[blob.function]} expected)."
            )
