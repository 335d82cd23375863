"""The n_bits setting: one int, or a width per role in the model."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping, Union

NBitsLike = Union[int, Mapping[str, int], "NBits"]

_ROLES = ("inputs", "weights", "activations", "outputs")


@dataclass(frozen=True)
class NBits:
    """Bit widths used by post-training quantization.

    Attributes
    ----------
    inputs : int
        Bits of each quantized model input (quantized on the client, before encryption).
    weights : int
        Bits of each constant weight (Gemm, MatMul, Conv), symmetric per output channel.
    activations : int
        Bits of every tensor produced by a table lookup (non-linear ops) inside the circuit.
    outputs : int
        Bits of a model output produced by a table lookup (outputs of linear ops are exact
        accumulators and need none).
    """

    inputs: int
    weights: int
    activations: int
    outputs: int

    @classmethod
    def parse(cls, n_bits: NBitsLike) -> "NBits":
        """Build from an int (all roles) or a dict with some of the role names as keys."""
        if isinstance(n_bits, NBits):
            return n_bits
        if isinstance(n_bits, numbers.Integral) and not isinstance(n_bits, bool):
            values = dict.fromkeys(_ROLES, int(n_bits))
        elif isinstance(n_bits, Mapping):
            unknown = set(n_bits) - set(_ROLES)
            if unknown:
                raise ValueError(
                    f"Unknown n_bits keys {sorted(unknown)}; expected some of {list(_ROLES)}."
                )
            default = n_bits.get("activations", n_bits.get("inputs", 8))
            values = {role: n_bits.get(role, default) for role in _ROLES}
            values["outputs"] = n_bits.get("outputs", values["activations"])
        else:
            raise TypeError(
                f"n_bits must be an int or a dict of ints, got {type(n_bits).__name__}."
            )
        given = dict(n_bits) if isinstance(n_bits, Mapping) else {}
        # the roles the user set first, so an error names the key they wrote, not a default
        for role, value in {**given, **values}.items():
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"n_bits[{role!r}] must be an int, got {value!r}.")
            if not 1 <= value <= 16:
                raise ValueError(
                    f"n_bits[{role!r}]={value} is out of range: use an integer in [1, 16]."
                )
        return cls(**{role: int(value) for role, value in values.items()})
