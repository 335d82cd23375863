"""What post-training quantization knows about each tensor of the ONNX graph while it walks it.

A tensor is either a clear ``Constant``, an ``Encrypted`` integer tensor of the circuit, or a
``Deferred`` float function of one integer tensor that has not been computed yet. Deferring lets a
run of elementwise ops (Relu, then BatchNormalization, then a fake quantizer...) become one table
lookup, lets ops on the model input run on the client before encryption, and lets ops at the end of
the model (sigmoid, softmax, argmax) run on the client after decryption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np

from .quantizers import UniformQuantizer


@dataclass(frozen=True)
class Constant:
    """A clear float tensor: an initializer, or computed from initializers only."""

    value: np.ndarray


@dataclass(frozen=True)
class Encrypted:
    """An integer tensor computed by the circuit.

    Attributes
    ----------
    name : str
        Name of the tensor in the circuit's value table.
    quantizer : UniformQuantizer
        How its integers map to reals.
    calibration : numpy.ndarray
        Its integer values on the calibration set (for ranges and bit widths).
    producer : str
        The op that computed it, for error messages.
    bounds : tuple of numpy.ndarray or None
        Its range over every input of the grid, per element of a row (see ``bounds``), when
        known.
    """

    name: str
    quantizer: UniformQuantizer
    calibration: np.ndarray
    producer: str = ""
    bounds: Optional[tuple] = None


@dataclass(frozen=True)
class ChainStep:
    """One ONNX op applied to the running float value, the other inputs being constants."""

    op_type: str
    impl: Callable[..., Any]
    args: tuple
    position: int
    attributes: dict

    def __call__(self, value: np.ndarray) -> np.ndarray:
        args = list(self.args)
        args[self.position] = value
        out = self.impl(*args, **self.attributes)
        return out[0] if isinstance(out, tuple) else out


@dataclass(frozen=True)
class Deferred:
    """A float function of one integer tensor, not computed yet.

    ``source`` is None when the function applies to a raw model input (so it runs on the client
    before quantization). ``elementwise`` is False once the chain holds an op that mixes elements
    (Softmax, ArgMax...): such a chain can only run in the clear after decryption. ``grid`` is
    the quantizer an empty chain is materialized on (an exact copy of its source, see MaxPool).
    """

    source: Optional[Encrypted]
    steps: tuple = field(default_factory=tuple)
    elementwise: bool = True
    input_index: int = 0
    grid: Optional[UniformQuantizer] = None

    def then(self, step: ChainStep, elementwise: bool) -> "Deferred":
        """This chain followed by ``step``."""
        return Deferred(
            self.source, self.steps + (step,), self.elementwise and elementwise, self.input_index
        )

    def evaluate(self, values: np.ndarray) -> np.ndarray:
        """Apply the chain to float values of the source."""
        for step in self.steps:
            values = step(values)
        return values


TensorInfo = Union[Constant, Encrypted, Deferred]
