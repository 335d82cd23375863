"""The bytes exchanged between client and server: encrypted inputs, results, evaluation keys.

One binary layout for the three::

    MAGIC | version (1 byte) | header length (4 bytes, big endian) | header (JSON) | blobs

The header names the kind of message, the model it belongs to (a fingerprint of its client
specs) and, for inputs and results, the circuit call each blob goes to and how many of its rows
are real; the blobs are concrete's serialized values, back to back. Every field is checked before
anything is handed to concrete, so a malformed or foreign message is a ``PayloadError``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

from .errors import PayloadError

MAGIC = b"SKLEARN-FHE"
VERSION = 1
KINDS = ("inputs", "outputs", "keys")
#: Largest JSON header accepted (a request of millions of rows stays far below).
MAX_HEADER_BYTES = 1 << 22
_PREFIX = struct.Struct(">BI")


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


def pack(message: Message) -> bytes:
    """The message as bytes."""
    header = json.dumps({
        "kind": message.kind,
        "model": message.model,
        "blobs": [{"function": b.function, "rows": b.rows, "nbytes": len(b.data)}
                  for b in message.blobs],
    }).encode()
    return b"".join([MAGIC, _PREFIX.pack(VERSION, len(header)), header,
                     *(blob.data for blob in message.blobs)])


def unpack(data: bytes, kind: str, model: str, functions: dict) -> Message:
    """Read and check a message of ``kind`` for ``model``.

    ``functions`` maps each circuit function's name to its number of rows; every blob of inputs
    and outputs must name one of them, with at most that many real rows.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"Expected bytes, got {type(data).__name__}.")
    data = bytes(data)
    start = len(MAGIC) + _PREFIX.size
    if len(data) < start or not data.startswith(MAGIC):
        raise PayloadError("These bytes are not an sklearn_fhe message (no sklearn_fhe header).")
    version, header_length = _PREFIX.unpack_from(data, len(MAGIC))
    if version != VERSION:
        raise PayloadError(f"Message format version {version}; this sklearn_fhe reads {VERSION}.")
    if header_length > min(MAX_HEADER_BYTES, len(data) - start):
        raise PayloadError("The message is truncated (its header runs past its end).")
    header = _read_header(data[start:start + header_length])
    if header["kind"] != kind:
        raise PayloadError(f"Expected {kind}, got {header['kind']}.")
    if header["model"] != model:
        raise PayloadError(
            f"This {kind} message belongs to another model (fingerprint {header['model'][:12]}…, "
            f"this model's is {model[:12]}…): the client must use this model's own client part."
        )
    blobs, offset = [], start + header_length
    for entry in header["blobs"]:
        end = offset + entry["nbytes"]
        if end > len(data):
            raise PayloadError("The message is truncated (a ciphertext runs past its end).")
        blobs.append(Blob(data[offset:end], entry["function"], entry["rows"]))
        offset = end
    if offset != len(data):
        raise PayloadError(f"The message has {len(data) - offset} unexpected trailing bytes.")
    if kind != "keys":
        _check_calls(blobs, functions)
    elif len(blobs) != 1:
        raise PayloadError(f"A keys message holds one key set, not {len(blobs)}.")
    return Message(header["kind"], header["model"], blobs)


def _read_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode())
        kind, model, blobs = header["kind"], header["model"], header["blobs"]
        valid = (kind in KINDS and isinstance(model, str) and isinstance(blobs, list) and all(
            isinstance(b, dict) and isinstance(b.get("function"), str)
            and _natural(b.get("rows")) and _natural(b.get("nbytes")) for b in blobs))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise PayloadError("The message header is malformed.")
    return header


def _natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
