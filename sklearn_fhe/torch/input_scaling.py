"""A per-feature affine map of a network's raw inputs, calibrated on the training data.

A quantization-aware network puts its inputs on one grid (the first :class:`QuantIdentity`'s
``2**n_input_bits`` levels, one learned step for every feature): columns on their own scale
(a price in thousands beside a rate in [0, 1]) use a sliver of it, or are clipped by it. The
map ``(x - offset) / scale`` before that grid gives each feature its own range on it, like a
``StandardScaler`` would. It runs where the input quantizer runs, on the client in the clear
(its ONNX export, ``Sub -> Div``, is part of the input's quantization), so it costs nothing in
FHE, and it is monotone, so the worst-case sizing of the circuit (``quantization.bounds``)
still covers every input: the grid's Clip after it bounds what reaches the circuit.

``offset`` and ``scale`` are buffers: ``state_dict`` (skorch's ``save_params`` /
``load_params``) carries them with the weights trained on them.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import nn

__all__ = ["InputScaling", "robust_standardization"]

#: Each feature's bulk: the values between these quantiles. A few outliers (one value 1e6
#: among values in [0, 1] would otherwise put all the others on one level of a 3-bit grid)
#: lie outside it.
CLIP_QUANTILE = 0.01

#: Values further than this share of the bulk's width beyond it are clipped before the mean and
#: the spread are taken: gross outliers are, the tails of ordinary data are not (so on data
#: without outliers the map is a ``StandardScaler``'s; on ``load_digits``, clipping the top
#: 0.5% of each pixel instead cost up to 0.02 of accuracy).
FENCE_MARGIN = 0.5


def robust_standardization(x: np.ndarray, clip_quantile: float = CLIP_QUANTILE
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation after clipping its outliers: values beyond
    ``[lo - m w, hi + m w]``, with ``lo, hi`` its ``clip_quantile`` and ``1 - clip_quantile``
    quantiles, ``w = hi - lo`` and ``m = FENCE_MARGIN``.

    A column whose clipped values are all equal (e.g. a pixel that is almost always 0) keeps
    its unclipped standard deviation, a constant column a scale of 1.

    Parameters
    ----------
    x : numpy.ndarray of shape (n_samples, n_features)
        Training inputs (finite).
    clip_quantile : float, default=CLIP_QUANTILE
        Quantile of each end of the bulk, in ``[0, 0.5)``.

    Returns
    -------
    offset, scale : numpy.ndarray of shape (n_features,), float64
        ``scale`` is positive.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if not 0 <= clip_quantile < 0.5:
        raise ValueError(f"clip_quantile must be in [0, 0.5), got {clip_quantile}.")
    low = np.quantile(x, clip_quantile, axis=0)
    high = np.quantile(x, 1 - clip_quantile, axis=0)
    margin = FENCE_MARGIN * (high - low)
    clipped = np.clip(x, low - margin, high + margin)
    offset, scale = clipped.mean(axis=0), clipped.std(axis=0)
    spread = x.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    return offset, scale


class InputScaling(nn.Module):
    """``(x - offset) / scale`` per feature, calibrated on training data; the identity before.

    Parameters
    ----------
    n_features : int
        Features per input row (the last axis).

    Attributes
    ----------
    offset, scale : torch.Tensor of shape (n_features,)
        Buffers (saved with the weights); 0 and 1 until :meth:`calibrate`.
    calibrated : torch.Tensor
        Boolean buffer: False, the map is skipped (a module never calibrated exports no op).

    Examples
    --------
    >>> import numpy as np, torch
    >>> scaling = InputScaling(2)
    >>> x = np.array([[0.0, 1000.0], [1.0, 3000.0]])
    >>> scaling.calibrate(x)(torch.tensor(x, dtype=torch.float32))
    tensor([[-1., -1.],
            [ 1.,  1.]])
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.register_buffer("offset", torch.zeros(self.n_features))
        self.register_buffer("scale", torch.ones(self.n_features))
        self.register_buffer("calibrated", torch.tensor(False))

    @torch.no_grad()
    def calibrate(self, x: Union[np.ndarray, torch.Tensor],
                  clip_quantile: float = CLIP_QUANTILE) -> "InputScaling":
        """Set ``offset`` and ``scale`` from ``x`` (see :func:`robust_standardization`).

        Returns
        -------
        InputScaling
            ``self``.
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"InputScaling takes rows of {self.n_features} features, got an array of shape "
                f"{x.shape}."
            )
        offset, scale = robust_standardization(x, clip_quantile)
        self.offset.copy_(torch.as_tensor(offset, dtype=self.offset.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))
        self.calibrated.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not bool(self.calibrated):
            return x
        return (x - self.offset) / self.scale

    @torch.no_grad()
    def inverse(self, z: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
        """Inputs in their own units that :meth:`forward` maps to ``z``.

        Returns
        -------
        numpy.ndarray, float32
        """
        z = np.asarray(z, dtype=np.float64)
        if not bool(self.calibrated):
            return z.astype(np.float32)
        return (z * self.scale.double().numpy() + self.offset.double().numpy()).astype(np.float32)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # parameters saved before the map existed load as the identity (what they were trained
        # with), not as a missing-key error
        names = ("offset", "scale", "calibrated")
        absent = all(prefix + name not in state_dict for name in names)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if absent:
            self.calibrated.fill_(False)
            for name in names:
                if prefix + name in missing_keys:
                    missing_keys.remove(prefix + name)

    def extra_repr(self) -> str:  # noqa: D102
        return f"n_features={self.n_features}, calibrated={bool(self.calibrated)}"
