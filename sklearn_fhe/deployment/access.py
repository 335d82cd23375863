"""Who may use a service: bearer tokens from a file (``sklearn-fhe serve --token-file F``).

The file holds one token per line (blank lines and lines starting with ``#`` are skipped), each
at least ``MIN_TOKEN_LENGTH`` characters, e.g. from ``python -c "import secrets;
print(secrets.token_urlsafe(32))"``. A client sends ``Authorization: Bearer <token>``
(``RemoteClient(url, token=...)``). The service keeps only the tokens' SHA-256, compares them
in constant time, and names each token by a tag (the first 16 hex digits of its SHA-256), which
is what its key sets are held under: a token sees only the key sets it uploaded.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Optional, Union

MIN_TOKEN_LENGTH = 16
#: Bytes of a token's SHA-256 that name it (hex: twice as many digits).
_TAG_BYTES = 8


class TokenFileError(ValueError):
    """A token file that cannot be used: unreadable, empty, or with a token too short."""


class Tokens:
    """The accepted bearer tokens, kept as SHA-256 digests.

    Parameters
    ----------
    tokens : iterable of str
        The accepted tokens.
    """

    def __init__(self, tokens) -> None:
        tokens = list(tokens)
        short = [index for index, token in enumerate(tokens) if len(token) < MIN_TOKEN_LENGTH]
        if short:
            raise TokenFileError(f"Tokens must be at least {MIN_TOKEN_LENGTH} characters long "
                                 f"(token number {short[0] + 1} is shorter): generate them with "
                                 "secrets.token_urlsafe(32).")
        if not tokens:
            raise TokenFileError("No token given: write one token per line.")
        self._digests = [hashlib.sha256(token.encode()).digest() for token in tokens]

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Tokens":
        """The tokens of a token file."""
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise TokenFileError(f"The token file {path} cannot be read: {error}") from error
        tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not tokens:
            raise TokenFileError(f"The token file {path} holds no token: write one token per "
                                 "line.")
        try:
            return cls(tokens)
        except TokenFileError as error:
            raise TokenFileError(f"The token file {path}: {error}") from None

    def __len__(self) -> int:
        return len(self._digests)

    def owner(self, authorization: Optional[str]) -> Optional[str]:
        """The tag of the token an ``Authorization`` header carries, or None when it carries
        none or a token not accepted (told apart from nothing else)."""
        scheme, _, token = (authorization or "").partition(" ")
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for digest in self._digests:  # every comparison runs: the time says nothing
            if hmac.compare_digest(presented, digest) and scheme.lower() == "bearer":
                found = digest
        return found[:_TAG_BYTES].hex() if found is not None else None
