"""Thermometer (unary) encoding of inputs on per-feature bins, and the bits a client sends.

``u[f, k] = [x_f >= edges[f, k - 1]]`` for ``k = 1 .. 2**n_bits - 1``: a feature quantized to
``2**n_bits`` ordered bins is ``2**n_bits - 1`` bits, and the bin index ``q`` is their sum. Any
comparison of the feature with a threshold between bins, ``q < k``, is then one of those bits
(complemented): linear, with no table lookup in the circuit.

:class:`QuantileThermometer` fits the bin grid on the training data; :class:`ThermometerBits` is
the client's encoder: the subset of the bits ``(feature, level)`` that a model reads, as plain
arrays (it is what a deployed client holds, saved without pickle).
"""

from __future__ import annotations

import numpy as np

from .quantizers import UniformQuantizer


class ThermometerBits:
    """The bits a client encrypts: bit ``j`` of a row is ``x[feature[j]] >= edges[j]``.

    Plain data (two arrays and an int) so that a deployed client can be saved as JSON / npz.

    Parameters
    ----------
    features : array-like of int, shape (n_bits,)
        Input feature (column of ``X``) of each bit.
    edges : array-like of float, shape (n_bits,)
        Bin edge of each bit: the bit is 1 when the feature is at or above it.
    n_features : int
        Columns of the inputs ``X`` the bits are read from.
    """

    def __init__(self, features, edges, n_features: int) -> None:
        self.features = np.asarray(features, dtype=np.int64).reshape(-1)
        self.edges = np.asarray(edges, dtype=np.float64).reshape(-1)
        self.n_features = int(n_features)
        if self.features.shape != self.edges.shape:
            raise ValueError(
                f"ThermometerBits needs one edge per bit: {self.features.size} features, "
                f"{self.edges.size} edges."
            )
        if self.features.size and not 0 <= self.features.min() <= self.features.max() < self.n_features:
            raise ValueError(
                f"ThermometerBits reads features {self.features.min()}..{self.features.max()} "
                f"of inputs with {self.n_features} features."
            )

    @property
    def n_bits(self) -> int:
        """Encrypted values per row."""
        return int(self.features.size)

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The bits ``(n_samples, n_bits)`` of ``X`` (0/1 floats, the model's input)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X has shape {X.shape}; these bits are read from rows of {self.n_features} "
                "features."
            )
        return (X[:, self.features] >= self.edges).astype(np.float32)

    def to_dict(self) -> dict:
        """The encoder as plain values: ``{"features", "edges"}`` arrays and ``n_features``."""
        return {"features": self.features, "edges": self.edges, "n_features": self.n_features}

    @classmethod
    def from_dict(cls, state: dict) -> "ThermometerBits":
        """The encoder back from :meth:`to_dict`'s values (lists or arrays)."""
        return cls(state["features"], state["edges"], int(state["n_features"]))

    def __repr__(self) -> str:
        used = len(np.unique(self.features))
        return f"ThermometerBits(n_bits={self.n_bits}, features used={used}/{self.n_features})"


class QuantileThermometer:
    """Per-feature bins and bin indices; it selects the bits a client sends.

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
        X = np.asarray(X, dtype=np.float64)
        return (X[:, :, None] >= self.edges_[None, :, :]).sum(axis=2)

    def bits(self, features, levels) -> ThermometerBits:
        """The encoder of the bits ``u[features[j], levels[j]]`` (levels in ``1 .. n_levels``)."""
        features = np.asarray(features, dtype=np.int64)
        levels = np.asarray(levels, dtype=np.int64)
        if levels.size and not 1 <= levels.min() <= levels.max() <= self.n_levels:
            raise ValueError(f"Thermometer levels must lie in 1..{self.n_levels}.")
        return ThermometerBits(features, self.edges_[features, levels - 1], len(self.edges_))
