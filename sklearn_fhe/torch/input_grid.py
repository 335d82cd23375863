"""The fixed input grid of a quantization-aware network, and calibration rows drawn on it.

A QAT network whose inputs go first through a fake quantizer (:class:`QuantIdentity`, as the
default ``FHEMLP``'s do) sees only the levels of that grid: every input it will ever be given is
one of ``levels ** n_inputs`` rows, known from its parameters alone. Rows drawn on that grid
calibrate the post-training quantizer without the training data, e.g. for a net given trained
parameters by skorch's ``initialize()`` + ``load_params()``, which carry no data.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

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
    runs: it is the input's grid when what it receives is the input itself and its scale is
    set (trained or loaded); anything computed before it (a float layer, a scaling) means the
    input is not on a fixed grid. The forward pass stops there, so no quantizer initializes
    itself from the probe.

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
    probe = torch.zeros(1, int(n_inputs))

    def first_quantizer(quantizer: nn.Module, inputs: tuple) -> None:
        raise _Stop(quantizer if inputs and inputs[0] is probe else None)

    handles = [m.register_forward_pre_hook(first_quantizer) for m in module.modules()
               if isinstance(m, QuantIdentity)]
    if not handles:
        return None
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(probe)
    except _Stop as stop:  # a quantizer never run has no grid yet (it takes one from a batch)
        quantizer = stop.quantizer
        return quantizer if quantizer is not None and bool(quantizer.initialized) else None
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return None


def grid_calibration_rows(quantizer: QuantIdentity, n_inputs: int,
                          n_rows: int = GRID_CALIBRATION_ROWS, seed: int = 0) -> np.ndarray:
    """Calibration rows on ``quantizer``'s grid: every feature at its lowest level, at its
    highest, at 0, then rows of levels drawn uniformly and independently (seeded: the same
    parameters always give the same rows, hence the same quantized model).

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

    Returns
    -------
    numpy.ndarray of shape (n_rows, n_inputs), float32
    """
    scale = float(quantizer.scale.detach())
    levels = (np.arange(quantizer.q_min, quantizer.q_max + 1) - quantizer.zero_point) * scale
    rows = np.random.default_rng(seed).choice(levels, size=(max(int(n_rows), 3), int(n_inputs)))
    rows[0], rows[1], rows[2] = levels[0], levels[-1], 0.0
    return rows.astype(np.float32)
