"""Hypothesis strategies: data sets of any shape and scale, and extreme inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

#: How far outside the calibration range extreme inputs go (times the column's largest value).
EXTREME = 1e6


@dataclass
class DataSet:
    """Training rows, their targets and a short description for failure reports."""

    X: np.ndarray
    y: np.ndarray
    description: str

    def __repr__(self) -> str:
        return f"DataSet({self.description}, X{self.X.shape})"


@st.composite
def datasets(draw, task: str = "classification", target: str = "real") -> DataSet:
    """A data set with 1-6 features, each at its own scale (1e-6 to 1e6) and offset, some
    constant, some duplicates of others; ``task`` "classification" (2-4 classes, all present)
    or "regression" (``target`` "real", "non-negative" or "positive").
    """
    n_features = draw(st.integers(1, 6), label="n_features")
    n_classes = draw(st.integers(2, 4), label="n_classes") if task == "classification" else 1
    n_rows = draw(st.integers(max(12, 4 * n_classes), 80), label="n_rows")
    exponents = np.array(draw(st.lists(st.integers(-6, 6), min_size=n_features,
                                       max_size=n_features), label="scale exponents"))
    constant = draw(st.lists(st.integers(0, n_features - 1), max_size=2, unique=True),
                    label="constant columns")
    duplicated = draw(st.lists(st.tuples(st.integers(0, n_features - 1),
                                         st.integers(0, n_features - 1)), max_size=2),
                      label="duplicated (source, copy) columns")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    scale = 10.0 ** exponents
    standard = rng.normal(size=(n_rows, n_features))
    offset = rng.normal(size=n_features) * 3
    X = (standard + offset) * scale
    for column in constant:
        X[:, column] = offset[column] * scale[column]
        standard[:, column] = 0
    for source, copy in duplicated:
        X[:, copy], standard[:, copy] = X[:, source], standard[:, source]
    score = standard @ rng.normal(size=n_features) + 0.3 * rng.normal(size=n_rows)
    if task == "classification":
        # equal-frequency classes: every class present, several times
        y = np.argsort(np.argsort(score)) * n_classes // n_rows
    elif target == "real":
        y = score * 10.0 ** draw(st.integers(-3, 3), label="target scale")
    else:
        y = np.exp(score / max(1.0, np.abs(score).max()))
        if target == "non-negative":
            y[rng.random(n_rows) < 0.2] = 0.0
    description = (f"{n_rows} rows, scales 1e{list(exponents)}, constant {constant}, "
                   f"duplicated {duplicated}, {n_classes if task == 'classification' else task}"
                   f", seed {seed}")
    return DataSet(X.astype(np.float32), y, description)


def extreme_rows(X: np.ndarray) -> np.ndarray:
    """Rows far outside the calibration range: each feature alone at +/- EXTREME times its
    largest magnitude (one-hot extremes, the others at their mean), all features at either
    end, and alternating signs."""
    n_features = X.shape[1]
    reach = EXTREME * np.maximum(1.0, np.abs(X).max(axis=0))
    rows = [np.where(np.arange(n_features) == j, sign * reach, X.mean(axis=0))
            for j in range(n_features) for sign in (1, -1)]
    alternating = np.where(np.arange(n_features) % 2 == 0, 1, -1)
    rows += [reach, -reach, alternating * reach, -alternating * reach]
    return np.asarray(rows, dtype=np.float32)
