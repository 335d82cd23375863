"""The fixed input grid of a quantization-aware network, and calibration rows drawn on it.

A QAT network whose inputs go first through a fake quantizer (:class:`QuantIdentity`, as the
default ``FHEMLP``'s do) sees only the levels of that grid: every input it will ever be given is
one of ``levels ** n_inputs`` rows, known from its parameters alone. Rows drawn on that grid
calibrate the post-training quantizer without the training data, e.g. for a net given trained
parameters by skorch's ``initialize()`` + ``load_params()``, which carry no data. A per-feature
:class:`~sklearn_fhe.torch.input_scaling.InputScaling` run on the input before that quantizer
(FHEMLP's) keeps the grid fixed (its map is a buffer, loaded with the weights): the rows are the
grid's levels mapped back through it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .input_scaling import InputScaling
from .qat import QuantIdentity

#: Rows drawn on the input grid: every level combination of a small input is among them, and
#: for wide inputs enough random combinations that each hidden grid's ends are reached (the
#: hidden grids are the trained fake quantizers' own; calibration only finds which of their
#: levels occur). On the digits, breast cancer and diabetes nets 200 rows already gave the
#: training data's predictions and the same lookups (64 PBS of 5 bits).
GRID_CALIBRATION_ROWS = 1024


class _Stop(Exception):
    """Ends the probe's forward pass at the first fake quantizer (nothing after it runs)."""

    def __init__(self, quantizer: Optional[QuantIdentity]) -> None:
        super().__init__()
        self.quantizer = quantizer


def input_quantizer(module: nn.Module, n_inputs: int) -> Optional[QuantIdentity]:
    """The fake quantizer that ``module`` applies to its raw input first, or None.

    A probe row is run (in eval mode, without gradients) until the first :class:`QuantIdentity`
    runs: it is the input's grid when what it receives is the input itself (or the input
    through an :class:`InputScaling`, see :func:`input_scaling`) and its scale is set (trained
    or loaded); anything else computed before it (a float layer) means the input is not on a
    fixed grid. The forward pass stops there, so no quantizer initializes itself from the probe.

    Parameters
    ----------
    module : torch.nn.Module
        The network, with its trained (or loaded) parameters.
    n_inputs : int
        Features per input row.

    Returns
    -------
    QuantIdentity or None
    """
    return _probe(module, n_inputs)[0]


def input_scaling(module: nn.Module, n_inputs: int) -> Optional[InputScaling]:
    """The :class:`InputScaling` that maps ``module``'s raw input onto the grid of
    :func:`input_quantizer`, or None (no map, or no fixed grid).

    Parameters
    ----------
    module : torch.nn.Module
    n_inputs : int

    Returns
    -------
    InputScaling or None
    """
    quantizer, scaling = _probe(module, n_inputs)
    return scaling if quantizer is not None else None


def _probe(module: nn.Module, n_inputs: int) -> tuple:
    """``(quantizer, scaling)``: the first fake quantizer if it reads the raw input (directly
    or through one input scaling), and that scaling (None if none). Behind several scalings,
    ``(None, None)``: rows on the grid are then not mapped back."""
    probe = torch.zeros(1, int(n_inputs))
    raw = [probe]  # the probe, and what input scalings made of it
    scalings: list = []

    def first_quantizer(quantizer: nn.Module, inputs: tuple) -> None:
        reads_raw = bool(inputs) and any(inputs[0] is value for value in raw)
        raise _Stop(quantizer if reads_raw else None)

    def scaled(scaling: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs and any(inputs[0] is value for value in raw):
            raw.append(output)
            scalings.append(scaling)

    handles = [m.register_forward_pre_hook(first_quantizer) for m in module.modules()
               if isinstance(m, QuantIdentity)]
    if not handles:
        return None, None
    handles += [m.register_forward_hook(scaled) for m in module.modules()
                if isinstance(m, InputScaling)]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(probe)
    except _Stop as stop:  # a quantizer never run has no grid yet (it takes one from a batch)
        quantizer = stop.quantizer
        if quantizer is None or not bool(quantizer.initialized) or len(scalings) > 1:
            return None, None
        return quantizer, (scalings[0] if scalings else None)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return None, None


def grid_calibration_rows(quantizer: QuantIdentity, n_inputs: int,
                          n_rows: int = GRID_CALIBRATION_ROWS, seed: int = 0,
                          scaling: Optional[InputScaling] = None) -> np.ndarray:
    """Calibration rows on ``quantizer``'s grid: every feature at its lowest level, at its
    highest, at 0, then rows of levels drawn uniformly and independently (seeded: the same
    parameters always give the same rows, hence the same quantized model); in the raw inputs'
    units through ``scaling``'s inverse when the grid reads them through it.

    Parameters
    ----------
    quantizer : QuantIdentity
        The input's fake quantizer (see :func:`input_quantizer`).
    n_inputs : int
        Features per row.
    n_rows : int, default=GRID_CALIBRATION_ROWS
        Rows returned (at least 3).
    seed : int, default=0
        Seed of the draw.
    scaling : InputScaling or None, default=None
        The map from raw inputs to the grid (see :func:`input_scaling`).

    Returns
    -------
    numpy.ndarray of shape (n_rows, n_inputs), float32
    """
    scale = float(quantizer.scale.detach())
    levels = (np.arange(quantizer.q_min, quantizer.q_max + 1) - quantizer.zero_point) * scale
    rows = np.random.default_rng(seed).choice(levels, size=(max(int(n_rows), 3), int(n_inputs)))
    rows[0], rows[1], rows[2] = levels[0], levels[-1], 0.0
    return rows.astype(np.float32) if scaling is None else scaling.inverse(rows)
