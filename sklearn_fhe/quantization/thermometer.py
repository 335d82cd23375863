"""Thermometer (unary) encoding of inputs on per-feature quantile bins.

``u[f, k] = [x_f >= edges[f, k]]``: a feature quantized to ``2**n_bits`` ordered bins becomes
``2**n_bits - 1`` bits. Any comparison of the feature with a threshold between bins is then one
of those bits (or its complement): linear, with no table lookup in the circuit. The encoding
depends only on the training data's quantiles (like any input quantizer), not on the model.
"""

from __future__ import annotations

import numpy as np

from .quantizers import UniformQuantizer


class QuantileThermometer:
    """Per-feature quantile bins, bin indices, and their unary code.

    Parameters
    ----------
    n_bits : int
        ``2**n_bits`` bins per feature.
    strategy : {"quantile", "uniform"}, default="quantile"
        Equal-frequency bins, or the uniform grid of the library's input quantizer.
    """

    def __init__(self, n_bits: int, strategy: str = "quantile") -> None:
        if strategy not in ("quantile", "uniform"):
            raise ValueError(f"binning={strategy!r} is not one of 'quantile', 'uniform'.")
        self.n_bits = int(n_bits)
        self.n_levels = 2**self.n_bits - 1
        self.strategy = strategy

    def fit(self, X: np.ndarray) -> "QuantileThermometer":
        """Bin edges per feature: at its quantiles (equal-frequency bins), or at the rounding
        boundaries of the library's uniform input quantizer over its range."""
        X = np.asarray(X, dtype=np.float64)
        if self.strategy == "quantile":
            quantiles = np.arange(1, self.n_levels + 1) / (self.n_levels + 1)
            edges = np.quantile(X, quantiles, axis=0).T  # (n_features, n_levels)
        else:
            quantizer = UniformQuantizer.from_range(X.min(axis=0), X.max(axis=0), self.n_bits)
            boundaries = np.arange(1, self.n_levels + 1)[None, :] - 0.5
            zero_point = np.asarray(quantizer.zero_point)[:, None]
            edges = (boundaries - zero_point) * np.asarray(quantizer.scale)[:, None]
        # an edge equal to the minimum would make a constant bit: push it just above
        lowest = X.min(axis=0, keepdims=True).T
        self.edges_ = np.where(edges <= lowest, np.nextafter(lowest, np.inf), edges)
        return self

    def bin_index(self, X: np.ndarray) -> np.ndarray:
        """Bin of each value, in ``[0, 2**n_bits - 1]`` (a monotonic map of each feature)."""
        return self.encode(X).reshape(len(X), X.shape[1], self.n_levels).sum(axis=2)

    def encode(self, X: np.ndarray, features=None) -> np.ndarray:
        """Unary code ``(n_samples, n_features_used * n_levels)`` of ``X`` (0/1 floats)."""
        X = np.asarray(X, dtype=np.float64)
        features = np.arange(X.shape[1]) if features is None else np.asarray(features)
        bits = X[:, features, None] >= self.edges_[None, features, :]
        return bits.reshape(len(X), -1).astype(np.float32)
