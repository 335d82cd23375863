"""The torch implementation of fitted linear models: one affine layer."""

from __future__ import annotations

import numpy as np
import torch


class LinearTorchModule(torch.nn.Module):
    """``x @ coef.T + intercept``: the decision values (or linear predictor) of a linear model.

    Parameters
    ----------
    coef : numpy.ndarray of shape (n_outputs, n_features)
    intercept : numpy.ndarray of shape (n_outputs,)
    """

    def __init__(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        super().__init__()
        coef = np.atleast_2d(np.asarray(coef, dtype=np.float32))
        intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float32), (coef.shape[0],))
        self.linear = torch.nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(coef.copy()))
            self.linear.bias.copy_(torch.from_numpy(intercept.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
