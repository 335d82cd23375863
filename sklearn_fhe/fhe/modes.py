"""The ``fhe`` argument of predict/forward: where the integer computation runs."""

from __future__ import annotations

from enum import Enum
from typing import Union


class FheMode(str, Enum):
    """``disable``: integers in the clear; ``simulate``: the circuit simulated in the clear (same
    integers, no encryption); ``execute``: encrypt, run on ciphertexts, decrypt."""

    DISABLE = "disable"
    SIMULATE = "simulate"
    EXECUTE = "execute"

    @classmethod
    def parse(cls, fhe: Union[bool, str, "FheMode", None]) -> "FheMode":
        """Accept False/None/"disable", True/"execute", "simulate" (or an FheMode)."""
        if isinstance(fhe, FheMode):
            return fhe
        if fhe is None or fhe is False:
            return cls.DISABLE
        if fhe is True:
            return cls.EXECUTE
        if isinstance(fhe, str) and fhe.lower() in {m.value for m in cls}:
            return cls(fhe.lower())
        raise ValueError(
            f"fhe={fhe!r} is not a valid mode: use False or 'disable' (clear integers), "
            "'simulate' (the FHE circuit simulated in the clear) or True or 'execute' "
            "(encrypted execution)."
        )
