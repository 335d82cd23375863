"""Tree ensembles whose input is thermometer bits of the features (see
``quantization/thermometer.py``): every comparison is one input bit, so the circuit's only table
lookups are the leaf tests, at ``ceil(log2(depth + 1))`` bits.

For a model trained on bin indices ``q``, ``q <= t`` (scikit-learn) or ``q < t`` (XGBoost) is
``q < k`` with ``k = floor(t) + 1`` or ``ceil(t)``, i.e. ``1 - u[f, k]``::

    b    = 1 - u @ S                      # S: the input bit of each comparison
    s    = b @ C_left + (1 - b) @ C_right # decisions agreeing with each leaf's path
    hit  = (s == path_length)             # one lookup per leaf
    raw  = hit @ E                        # leaf values summed over the trees

Which bits ``u`` the client sends is the encoding (:data:`ENCODINGS`): only the distinct
``(feature, level)`` pairs the comparisons read (``S`` is then the identity), or the whole
thermometer code of every used feature.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .tree_to_torch import TreeTensors

#: The input encodings of thermometer trees: the bits of the model's comparisons only, or every
#: bit of each used feature.
ENCODINGS = ("thresholds", "thermometer")


def check_encoding(encoding) -> str:
    """``encoding`` if it is one of :data:`ENCODINGS`, else a ValueError saying what each is."""
    if isinstance(encoding, str) and encoding in ENCODINGS:
        return encoding
    raise ValueError(
        f"encoding={encoding!r} is not one of 'thresholds' (the bits of the model's comparisons "
        "only) or 'thermometer' (every bin of each feature the model uses)."
    )


def comparison_levels(tensors: TreeTensors) -> np.ndarray:
    """The bin ``k`` of each comparison: the test is true exactly when ``q < k``."""
    # infinite thresholds (the always-true placeholder of a constant model) on a finite level
    thresholds = np.clip(tensors.thresholds.astype(np.float64), -2.0**31, 2.0**31)
    if tensors.decision == "<=":
        return (np.floor(thresholds) + 1).astype(np.int64)
    return np.ceil(thresholds).astype(np.int64)


def comparisons_on_levels(tensors: TreeTensors, n_levels: int) -> TreeTensors:
    """The trees with each comparison written ``q < level``: comparisons reading the same
    ``(feature, level)`` merged, those outside the bins (always true or false) folded into the
    leaves. A model left without comparisons gets one placeholder that no leaf reads (its
    output is then all in ``constant_output``), so that the circuit still has an input."""
    levels = comparison_levels(tensors)
    constant = np.where(levels <= 0, 0, np.where(levels > n_levels, 1, -1))
    on_levels = replace(tensors, thresholds=levels.astype(np.float64), decision="<")
    folded = on_levels.simplified(constant)
    if folded.n_nodes and folded.n_leaves:
        return folded
    return replace(
        folded, feature_index=np.zeros(1, np.int64), thresholds=np.ones(1), C=np.zeros((1, 1)),
        leaf_bias=np.zeros(1), path_length=np.ones(1),
        leaf_values=np.zeros((1, folded.n_outputs)), leaf_tree=np.zeros(1, np.int64),
    )


def center_leaf_values(tensors: TreeTensors) -> tuple[TreeTensors, np.ndarray]:
    """Leaf values centred per tree (one leaf of each tree is hit): a narrower sum in the
    circuit; the returned shift is added back in the clear."""
    values = tensors.leaf_values.copy()
    shift = np.zeros(values.shape[1])
    for tree in np.unique(tensors.leaf_tree):
        rows = tensors.leaf_tree == tree
        center = (values[rows].max(axis=0) + values[rows].min(axis=0)) / 2
        values[rows] -= center
        shift += center
    return replace(tensors, leaf_values=values), shift


def input_bits(tensors: TreeTensors, n_levels: int, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features, levels)`` of the bits the client sends, for trees on levels.

    ``"thresholds"``: one bit per distinct comparison (the trees' nodes, already merged by
    :func:`comparisons_on_levels`); ``"thermometer"``: all ``n_levels`` bits of every feature
    the trees test.
    """
    if check_encoding(encoding) == "thresholds":
        return tensors.feature_index.copy(), tensors.thresholds.astype(np.int64)
    used = np.unique(tensors.feature_index)
    levels = np.arange(1, n_levels + 1)
    return np.repeat(used, n_levels), np.tile(levels, len(used))


class ThermometerTreeEnsemble(torch.nn.Module):
    """GEMM evaluation of stacked trees on thermometer bits.

    Parameters
    ----------
    tensors : TreeTensors
        Trees on levels (:func:`comparisons_on_levels`): node ``i`` tests
        ``q[feature_index[i]] < thresholds[i]``.
    bit_features, bit_levels : numpy.ndarray of int, shape (n_bits,)
        The input bits, ``u[j] = [q[bit_features[j]] >= bit_levels[j]]``; they must hold every
        ``(feature, level)`` a node tests.
    """

    def __init__(self, tensors: TreeTensors, bit_features: np.ndarray, bit_levels: np.ndarray):
        super().__init__()
        bit_of = {(int(f), int(k)): j for j, (f, k) in enumerate(zip(bit_features, bit_levels))}
        select = np.zeros((len(bit_of), tensors.n_nodes), np.float32)
        for node, (feature, level) in enumerate(zip(tensors.feature_index, tensors.thresholds)):
            select[bit_of[int(feature), int(level)], node] = 1.0

        def buffer(name: str, value) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.float32)))

        buffer("S", select)
        buffer("one", 1.0)
        buffer("C_left", tensors.C > 0)
        buffer("C_right", tensors.C < 0)
        buffer("path_length", tensors.path_length)
        buffer("E", tensors.leaf_values)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        b = self.one - code @ self.S
        s = b @ self.C_left + (self.one - b) @ self.C_right
        hit = (s == self.path_length).float()
        return hit @ self.E
