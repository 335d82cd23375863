"""Tree ensembles whose input is the thermometer code of the features (see
``quantization/thermometer.py``): every comparison is one input bit, so the circuit's only table
lookups are the leaf tests, at ``ceil(log2(depth + 1))`` bits.

For a model trained on bin indices ``q``, ``q <= t`` (scikit-learn) or ``q < t`` (XGBoost) is
``q < k`` with ``k = floor(t) + 1`` or ``ceil(t)``, i.e. ``1 - u[f, k]``::

    b    = 1 - u @ S                      # S selects the bit of each comparison
    s    = b @ C_left + (1 - b) @ C_right # decisions agreeing with each leaf's path
    hit  = (s == path_length)             # one lookup per leaf
    raw  = hit @ E                        # leaf values summed over the trees
"""

from __future__ import annotations

import numpy as np
import torch

from .tree_to_torch import TreeTensors


def comparison_levels(tensors: TreeTensors) -> np.ndarray:
    """The bin ``k`` of each comparison: the test is true exactly when ``q < k``."""
    thresholds = tensors.thresholds.astype(np.float64)
    if tensors.decision == "<=":
        return (np.floor(thresholds) + 1).astype(np.int64)
    return np.ceil(thresholds).astype(np.int64)


def fold_constant_comparisons(tensors: TreeTensors, n_levels: int) -> TreeTensors:
    """Comparisons outside the bins (always true or always false) folded into the leaves."""
    levels = comparison_levels(tensors)
    constant = np.where(levels <= 0, 0, np.where(levels > n_levels, 1, -1))
    return tensors.simplified(constant)


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
    tensors = TreeTensors(**{**tensors.__dict__, "leaf_values": values})
    return tensors, shift


class ThermometerTreeEnsemble(torch.nn.Module):
    """GEMM evaluation of stacked trees on thermometer-coded inputs.

    Parameters
    ----------
    tensors : TreeTensors
        Trees trained on bin indices, constant comparisons already folded.
    n_levels : int
        Bits per feature in the code (``2**n_bits - 1``).

    Attributes
    ----------
    used_features : numpy.ndarray
        The features the trees test, in the order of the input code.
    """

    def __init__(self, tensors: TreeTensors, n_levels: int) -> None:
        super().__init__()
        self.constant = tensors.n_nodes == 0 or tensors.n_leaves == 0
        if self.constant:  # every tree folded to a constant: a zero output from feature 0
            tensors = TreeTensors(
                **{**tensors.__dict__, "feature_index": np.zeros(1, np.int64),
                   "thresholds": np.ones(1), "decision": "<", "C": np.zeros((1, 1)),
                   "leaf_bias": np.zeros(1), "path_length": np.ones(1),
                   "leaf_values": np.zeros((1, tensors.n_outputs)),
                   "leaf_tree": np.zeros(1, np.int64)}
            )
        self.used_features = np.unique(tensors.feature_index)
        position = {int(f): i for i, f in enumerate(self.used_features)}
        levels = comparison_levels(tensors)
        select = np.zeros((len(self.used_features) * n_levels, tensors.n_nodes), np.float32)
        for node, (feature, level) in enumerate(zip(tensors.feature_index, levels)):
            select[position[int(feature)] * n_levels + level - 1, node] = 1.0

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
