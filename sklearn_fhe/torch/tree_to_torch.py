"""Tree ensembles (scikit-learn, XGBoost) as a small GEMM-style torch module.

The layout follows hummingbird's ``tree_implementation="gemm"`` strategy, rebuilt from the fitted
trees so that every tree of a model lives in the same few tensors (the ONNX graph has a handful of
nodes whatever the number of trees)::

    xs   = x @ A                         # (batch, n_nodes)   A: 0/1 feature selection, exact
    b    = (xs <= thresholds)            # (batch, n_nodes)   "<" for XGBoost; one lookup per node
    s    = b @ C_left + (1 - b) @ C_right  # (batch, n_leaves) C_left/C_right: 0/1, node on the path
                                         #                    going left (test true) / right
    hit  = (s == path_length)            # (batch, n_leaves)  one lookup per leaf, input in [0, depth]
    raw  = hit @ E                       # (batch, n_outputs) E: leaf values; sums over the trees

``s`` counts the decisions along the leaf's path that agree with the sample, so it lies in
``[0, path_length]`` and equals ``path_length`` only for the leaf the sample reaches. Every
intermediate is unsigned, so the integer circuit runs the leaf lookups at
``ceil(log2(depth + 1))`` bits (hummingbird's ``b @ C == n_left`` with C in {-1, 0, 1} goes
through a signed intermediate that costs one more bit); this is ``b @ C + leaf_bias`` with
``C = C_left - C_right`` and ``leaf_bias = C_right.sum(0)``.

``raw`` is the model output before any non-linearity that can run in the clear after decryption;
:func:`tree_clear_outputs` builds what turns it into ``predict`` / ``predict_proba``:

================================  ==============================  ======================
model                             ``raw`` (module output)          post_transform
================================  ==============================  ======================
DecisionTree/RandomForest/Extra   mean class probabilities         ``"identity"``
  ...Classifier
DecisionTree/RandomForest/Extra   mean prediction                  ``"identity"``
  ...Regressor
GradientBoostingRegressor         sum of learning_rate * leaves    ``"identity"``
GradientBoostingClassifier        raw margin without the prior     ``"sigmoid"`` (binary)
                                                                   / ``"softmax"``
XGBRegressor                      margin without base_score        ``"identity"`` / ``"exp"``
XGBClassifier                     margin without base_score        ``"sigmoid"`` / ``"softmax"``
================================  ==============================  ======================

``post.scores(raw) = raw + base_prediction``; ``post.predict_proba`` applies the
transform (binary sigmoid models get the two columns ``[1 - p, p]``); ``post.predict`` maps the
argmax to ``classes`` (classifiers) or returns the (squeezed) prediction (regressors).

Decisions are computed in float32 like the source libraries: scikit-learn compares float32
inputs with float64 thresholds using ``<=``, so thresholds are rounded *down* to float32 (which
keeps ``x <= t`` identical for every float32 ``x``); XGBoost thresholds are float32 already and
use ``<``. Missing values (NaN) are not supported: the default direction of XGBoost is ignored.

Identical ``(feature, threshold)`` comparisons of different trees are merged (exact), and
:meth:`TreeTensors.quantize_thresholds` maps thresholds onto the integer grid of a per-feature
uniform input quantizer, merging the comparisons that become identical and folding those that
become constant; this is what lowers the number of table lookups of the FHE circuit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..clear_outputs import ClearOutputs
from ..errors import UnsupportedModelError
from ..config import memory_budget_bytes
from ..fhe.cost import FHEMemoryBudgetError

__all__ = [
    "TreeTensors",
    "tree_clear_outputs",
    "GemmTreeEnsemble",
    "tree_model_to_torch",
    "extract_tree_tensors",
]

_DECISIONS = ("<=", "<")


# ---------------------------------------------------------------------------------------------
# Plain tree description shared by the parsers
# ---------------------------------------------------------------------------------------------
@dataclass
class _Tree:
    """One binary tree. ``left[i] == -1`` marks a leaf; ``values`` is (n_nodes, n_outputs)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    values: np.ndarray
    output_offset: int = 0  # column of the ensemble output this tree writes to (GB multiclass)


def _float32_threshold(threshold: np.ndarray, decision: str) -> np.ndarray:
    """float32 thresholds ``t32`` with ``x <= t32`` (or ``x < t32``) == the float64 test."""
    t64 = np.asarray(threshold, dtype=np.float64)
    t32 = t64.astype(np.float32)
    if decision == "<=":
        # Largest float32 not above t: x <= t  <=>  x <= t32 for every float32 x.
        too_big = t32.astype(np.float64) > t64
        t32[too_big] = np.nextafter(t32[too_big], np.float32(-np.inf))
    else:
        # Smallest float32 not below t: x < t  <=>  x < t32 for every float32 x.
        too_small = t32.astype(np.float64) < t64
        t32[too_small] = np.nextafter(t32[too_small], np.float32(np.inf))
    return t32


# ---------------------------------------------------------------------------------------------
# The stacked GEMM tensors
# ---------------------------------------------------------------------------------------------
@dataclass
class TreeTensors:
    """All trees of a model as GEMM matrices (numpy, float64 except ``thresholds``).

    Attributes
    ----------
    n_features : int
    feature_index : ndarray of shape (n_nodes,)
        Feature tested by each (deduplicated) comparison; ``A = one_hot(feature_index).T``.
    thresholds : ndarray of shape (n_nodes,), float32 or float64
    decision : {"<=", "<"}
    C : ndarray of shape (n_nodes, n_leaves)
        +1 when the leaf's path goes left at the node (test true), -1 when it goes right, else 0.
    leaf_bias : ndarray of shape (n_leaves,)
        Number of right turns on the path: ``b @ C + leaf_bias`` counts agreeing decisions.
    path_length : ndarray of shape (n_leaves,)
    leaf_values : ndarray of shape (n_leaves, n_outputs)
        ``E``: already scaled (1/n_trees for forests, learning rate for boosting).
    leaf_tree : ndarray of shape (n_leaves,)
        Index of the tree each leaf belongs to (for the batched layout and for reports).
    constant_output : ndarray of shape (n_outputs,)
        Contribution of trees that are constant (no split, or folded by quantization).
    """

    n_features: int
    feature_index: np.ndarray
    thresholds: np.ndarray
    decision: str
    C: np.ndarray
    leaf_bias: np.ndarray
    path_length: np.ndarray
    leaf_values: np.ndarray
    leaf_tree: np.ndarray
    constant_output: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.C.shape[0])

    @property
    def n_leaves(self) -> int:
        return int(self.C.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.leaf_values.shape[1])

    @property
    def n_trees(self) -> int:
        return int(len(np.unique(self.leaf_tree)))

    @property
    def max_depth(self) -> int:
        return int(self.path_length.max()) if self.n_leaves else 0

    @property
    def selection_matrix(self) -> np.ndarray:
        """``A`` of shape (n_features, n_nodes), 0/1."""
        a = np.zeros((self.n_features, self.n_nodes))
        a[self.feature_index, np.arange(self.n_nodes)] = 1.0
        return a

    # ----------------------------------------------------------------------------------------
    def forward_numpy(self, x: np.ndarray, *, dtype=np.float64) -> np.ndarray:
        """Reference evaluation (float64 by default); returns ``raw`` without constant_output."""
        x = np.asarray(x, dtype=dtype)
        xs = x[:, self.feature_index]
        thr = self.thresholds.astype(dtype)
        b = (xs <= thr) if self.decision == "<=" else (xs < thr)
        s = b.astype(np.float64) @ self.C + self.leaf_bias
        hit = (s == self.path_length).astype(np.float64)
        return hit @ self.leaf_values

    def leaf_indicators_numpy(self, x: np.ndarray) -> np.ndarray:
        """0/1 matrix (n_samples, n_leaves) of the leaves reached."""
        xs = np.asarray(x)[:, self.feature_index]
        b = (xs <= self.thresholds) if self.decision == "<=" else (xs < self.thresholds)
        return (b.astype(np.float64) @ self.C + self.leaf_bias == self.path_length).astype(np.int64)

    # ----------------------------------------------------------------------------------------
    def simplified(self, constant_decisions: Optional[np.ndarray] = None) -> "TreeTensors":
        """Merge identical comparisons, fold constant ones, drop unreachable leaves.

        Parameters
        ----------
        constant_decisions : ndarray of shape (n_nodes,), optional
            -1 where the comparison depends on the input, 0/1 where it is constant.
        """
        n_nodes = self.n_nodes
        const = (
            np.full(n_nodes, -1, dtype=np.int64)
            if constant_decisions is None
            else np.asarray(constant_decisions, dtype=np.int64)
        )
        C = self.C.copy()
        # Fold constant comparisons into the leaves: a leaf whose path needs the other outcome
        # is unreachable.
        reachable = np.ones(self.n_leaves, dtype=bool)
        for n in np.flatnonzero(const >= 0):
            needs_true = C[n] > 0
            needs_false = C[n] < 0
            reachable &= ~(needs_true if const[n] == 0 else needs_false)
            C[n] = 0
        # Merge identical (feature, threshold) rows; count left/right requirements separately.
        variable = np.flatnonzero(const < 0)
        keys = {}
        pos: List[np.ndarray] = []
        neg: List[np.ndarray] = []
        feats: List[int] = []
        thrs: List[float] = []
        for n in variable:
            key = (int(self.feature_index[n]), float(self.thresholds[n]))
            if key not in keys:
                keys[key] = len(pos)
                pos.append(np.zeros(self.n_leaves, dtype=bool))
                neg.append(np.zeros(self.n_leaves, dtype=bool))
                feats.append(key[0])
                thrs.append(self.thresholds[n])
            pos[keys[key]] |= C[n] > 0
            neg[keys[key]] |= C[n] < 0
        pos_m = np.array(pos, dtype=bool).reshape(len(pos), self.n_leaves)
        neg_m = np.array(neg, dtype=bool).reshape(len(neg), self.n_leaves)
        # A path needing both outcomes of one comparison is unreachable (a path testing the
        # same comparison twice on the same side counts it once).
        reachable &= ~(pos_m & neg_m).any(axis=0)
        C_new = pos_m.astype(np.float64) - neg_m.astype(np.float64)
        path_length = np.abs(C_new).sum(axis=0)
        leaf_bias = (C_new < 0).sum(axis=0).astype(np.float64)

        constant_output = self.constant_output.copy()
        always = reachable & (path_length == 0)
        constant_output = constant_output + self.leaf_values[always].sum(axis=0)
        keep = reachable & ~always
        C_new = C_new[:, keep]
        used = np.abs(C_new).sum(axis=1) > 0
        C_new = C_new[used]
        feats_arr = np.asarray(feats, dtype=np.int64)[used]
        thr_arr = np.asarray(thrs, dtype=self.thresholds.dtype)[used]
        order = np.lexsort((thr_arr, feats_arr))  # sorted by feature then threshold (readable)
        return replace(
            self,
            feature_index=feats_arr[order],
            thresholds=thr_arr[order],
            C=C_new[order],
            leaf_bias=leaf_bias[keep],
            path_length=path_length[keep].astype(np.float64),
            leaf_values=self.leaf_values[keep],
            leaf_tree=self.leaf_tree[keep],
            constant_output=constant_output,
        )

    def integer_thresholds(self, scale, zero_point, n_bits: int) -> np.ndarray:
        """Integer thresholds ``T`` with ``x_q <= T`` <=> ``dequant(x_q) (decision) t``.

        The input quantizer is ``x_q = clip(round(x / scale) + zero_point, 0, 2**n_bits - 1)``
        (per feature ``scale`` / ``zero_point`` arrays of shape (n_features,) or scalars) and
        ``dequant(q) = (q - zero_point) * scale``.
        """
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (self.n_features,))
        zp = np.broadcast_to(np.asarray(zero_point, dtype=np.float64), (self.n_features,))
        f = self.feature_index
        u = self.thresholds.astype(np.float64) / scale[f] + zp[f]
        if self.decision == "<=":
            return np.floor(u).astype(np.int64)
        return (np.ceil(u) - 1).astype(np.int64)

    def quantize_thresholds(self, scale, zero_point, n_bits: int) -> "TreeTensors":
        """The same trees on the dequantized input grid, with ``<=`` and midpoint thresholds.

        Thresholds become ``(T + 0.5 - zero_point) * scale`` so that the float module run on
        dequantized inputs and the integer comparison ``x_q <= T`` agree exactly; comparisons that
        end up identical are merged and constant ones (``T < 0`` or ``T >= 2**n_bits - 1``) are
        folded, which removes their table lookups and the leaves they make unreachable.
        """
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (self.n_features,))
        zp = np.broadcast_to(np.asarray(zero_point, dtype=np.float64), (self.n_features,))
        T = self.integer_thresholds(scale, zp, n_bits)
        q_max = 2**n_bits - 1
        const = np.where(T < 0, 0, np.where(T >= q_max, 1, -1))
        f = self.feature_index
        thr = (T + 0.5 - zp[f]) * scale[f]
        snapped = replace(self, thresholds=thr.astype(np.float64), decision="<=")
        return snapped.simplified(const)


def _tree_gemm_blocks(tree: _Tree):
    """Per-tree (internal nodes, C block, leaf_bias, path_length, leaf values)."""
    left, right = tree.left, tree.right
    internal = np.flatnonzero(left != -1)
    node_pos = {int(n): i for i, n in enumerate(internal)}
    leaves: List[int] = []
    paths: List[List[Tuple[int, int]]] = []
    stack = [(0, [])]
    while stack:  # depth-first, left before right (same order as hummingbird)
        node, path = stack.pop()
        if left[node] == -1:
            leaves.append(node)
            paths.append(path)
        else:
            stack.append((int(right[node]), path + [(node_pos[node], -1)]))
            stack.append((int(left[node]), path + [(node_pos[node], +1)]))
    C = np.zeros((len(internal), len(leaves)))
    for j, path in enumerate(paths):
        for pos, sign in path:
            C[pos, j] = sign
    leaf_bias = (C < 0).sum(axis=0).astype(np.float64)
    path_length = np.abs(C).sum(axis=0)
    return internal, C, leaf_bias, path_length, tree.values[leaves]


#: Copies of the dense nodes x leaves path matrix alive at once while a model is exported,
#: quantized and calibrated (float and integer weights, the ONNX initializer, a product).
_PATH_MATRIX_COPIES = 6


def _check_path_matrix_memory(n_nodes: int, n_leaves: int, n_trees: int) -> None:
    """Refuse, before allocating it, a path matrix whose copies would pass the memory budget:
    an unbounded forest (thousands of leaves per tree) would otherwise end in a raw
    MemoryError, or the process killed, inside fit."""
    needed = _PATH_MATRIX_COPIES * 8 * n_nodes * n_leaves
    budget = memory_budget_bytes()
    if budget is not None and needed > budget:
        raise FHEMemoryBudgetError(
            f"The {n_trees} trees hold {n_leaves} leaves and {n_nodes} comparisons: their "
            f"encrypted form needs about {needed / 1e9:.1f} GB to build, over the memory budget "
            f"of {budget / 1e9:.1f} GB, and one table lookup per leaf and row. Bound the trees "
            "(max_depth, max_leaf_nodes, n_estimators; the defaults are sized for FHE), or "
            "raise sklearn_fhe.set_config(memory_budget=...) if this machine has the memory."
        )


def _stack_trees(
    trees: Sequence[_Tree], n_features: int, n_outputs: int, decision: str, simplify: bool = True
) -> TreeTensors:
    feats, thrs, blocks, biases, lengths, values, leaf_tree = [], [], [], [], [], [], []
    constant = np.zeros(n_outputs)
    for t, tree in enumerate(trees):
        internal, C, bias, plen, vals = _tree_gemm_blocks(tree)
        full_vals = np.zeros((len(vals), n_outputs))
        full_vals[:, tree.output_offset : tree.output_offset + vals.shape[1]] = vals
        if len(internal) == 0:  # a single leaf: constant contribution
            constant += full_vals[0]
            continue
        feats.append(tree.feature[internal])
        thrs.append(_float32_threshold(tree.threshold[internal], decision))
        blocks.append(C)
        biases.append(bias)
        lengths.append(plen)
        values.append(full_vals)
        leaf_tree.append(np.full(len(bias), t))
    if not blocks:  # every tree is constant: keep one never-used comparison so shapes are valid
        feats, thrs = [np.zeros(1, np.int64)], [np.array([np.inf], np.float32)]
        blocks, biases, lengths = [np.ones((1, 1))], [np.zeros(1)], [np.ones(1)]
        values, leaf_tree = [np.zeros((1, n_outputs))], [np.zeros(1, np.int64)]
    n_nodes = sum(b.shape[0] for b in blocks)
    n_leaves = sum(b.shape[1] for b in blocks)
    _check_path_matrix_memory(n_nodes, n_leaves, len(trees))
    C_all = np.zeros((n_nodes, n_leaves))
    r = c = 0
    for b in blocks:
        C_all[r : r + b.shape[0], c : c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    tensors = TreeTensors(
        n_features=n_features,
        feature_index=np.concatenate(feats).astype(np.int64),
        thresholds=np.concatenate(thrs).astype(np.float32),
        decision=decision,
        C=C_all,
        leaf_bias=np.concatenate(biases),
        path_length=np.concatenate(lengths),
        leaf_values=np.concatenate(values),
        leaf_tree=np.concatenate(leaf_tree).astype(np.int64),
        constant_output=constant,
    )
    return tensors.simplified() if simplify else tensors


# ---------------------------------------------------------------------------------------------
# Clear-side post-processing
# ---------------------------------------------------------------------------------------------
def tree_clear_outputs(
    post_transform: str, base_prediction: np.ndarray, classes: Optional[np.ndarray]
) -> ClearOutputs:
    """What turns the module output into the source model's predictions, after decryption.

    ``post_transform`` ({"identity", "sigmoid", "softmax", "exp"}) is applied to
    ``raw + base_prediction`` (prior / init / base_score margin, plus constant trees): for a
    classifier it gives the probabilities (identity: mean leaf probabilities, normalized;
    sigmoid: the positive class of a binary model), for a regressor the prediction.
    """
    offset = np.asarray(base_prediction, dtype=np.float64)
    if classes is None:
        return ClearOutputs(offset=offset, inverse_link=post_transform)
    probabilities = {"identity": "normalized", "sigmoid": "ovr_logistic"}.get(
        post_transform, post_transform)
    return ClearOutputs(classes=classes, offset=offset, probabilities=probabilities)


# ---------------------------------------------------------------------------------------------
# The torch module
# ---------------------------------------------------------------------------------------------
class GemmTreeEnsemble(torch.nn.Module):
    """GEMM evaluation of stacked trees; forward maps float X (batch, n_features) to ``raw``.

    ONNX ops (opset 14): MatMul, LessOrEqual (``<=``) or Less (``<``), Cast, Sub, MatMul, Add,
    Equal. Only the comparison and the Equal are non-linear (one lookup per node / leaf); the
    other ops have constant weights and, on the 0/1 and small-integer values they see, are exact.

    Parameters
    ----------
    tensors : TreeTensors
    post_processing : ClearOutputs
        Stored as ``self.post_processing``; not part of the graph.
    """

    def __init__(self, tensors: TreeTensors, post_processing: ClearOutputs):
        super().__init__()
        self.tensors = tensors
        self.post_processing = post_processing
        self.decision = tensors.decision

        def buf(name, value):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.float32)))

        buf("A", tensors.selection_matrix)
        buf("thresholds", tensors.thresholds)
        buf("C_left", tensors.C > 0)
        buf("C_right", tensors.C < 0)
        buf("one", 1.0)  # a buffer, so that ONNX gets an initializer rather than a Constant node
        buf("path_length", tensors.path_length)
        buf("E", tensors.leaf_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x @ self.A
        if self.decision == "<=":
            b = xs <= self.thresholds
        else:
            b = xs < self.thresholds
        b = b.float()
        s = b @ self.C_left + (self.one - b) @ self.C_right
        hit = (s == self.path_length).float()
        return hit @ self.E

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------
def _sklearn_tree(est, output_offset=0, normalize=False, scale=1.0) -> _Tree:
    t = est.tree_
    if t.n_outputs != 1:
        raise UnsupportedModelError("Multi-output trees are not supported.")
    values = np.asarray(t.value[:, 0, :], dtype=np.float64)
    if normalize:
        sums = values.sum(axis=1, keepdims=True)
        values = values / np.where(sums == 0, 1.0, sums)
    return _Tree(
        left=np.asarray(t.children_left),
        right=np.asarray(t.children_right),
        feature=np.asarray(t.feature),
        threshold=np.asarray(t.threshold, dtype=np.float64),
        values=values * scale,
        output_offset=output_offset,
    )


def _xgb_trees(model) -> List[_Tree]:
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    n_parallel = int(config["learner"]["gradient_booster"].get("gbtree_model_param", {}).get("num_parallel_tree", 1))
    if config["learner"]["gradient_booster"].get("name", "gbtree") != "gbtree":
        raise UnsupportedModelError("Only the 'gbtree' booster is supported for XGBoost.")
    if int(config["learner"]["learner_model_param"].get("num_target", "1")) > 1:
        raise UnsupportedModelError("Multi-target XGBoost models are not supported.")
    n_classes = int(getattr(model, "n_classes_", 1) or 1) if hasattr(model, "classes_") else 1
    n_groups = n_classes if n_classes > 2 else 1
    names = booster.feature_names
    fmap = {name: i for i, name in enumerate(names)} if names is not None else {}
    dumps = booster.get_dump(dump_format="json")
    best_iteration = getattr(model, "best_iteration", None)  # set after early stopping only
    if best_iteration is not None:  # the sklearn wrapper then predicts with the best iteration
        dumps = dumps[: (int(best_iteration) + 1) * n_parallel * n_groups]
    trees = []
    for k, dump in enumerate(dumps):
        nodes = []

        def walk(node):
            idx = len(nodes)
            nodes.append(node)
            if "leaf" not in node:
                kids = {c["nodeid"]: c for c in node["children"]}
                node["_l"] = walk(kids[node["yes"]])
                node["_r"] = walk(kids[node["no"]])
            return idx

        walk(json.loads(dump))
        n = len(nodes)
        left, right = np.full(n, -1), np.full(n, -1)
        feature, threshold = np.full(n, -2), np.zeros(n)
        values = np.zeros((n, 1))
        for i, nd in enumerate(nodes):
            if "leaf" in nd:
                values[i, 0] = nd["leaf"]
            else:
                left[i], right[i] = nd["_l"], nd["_r"]
                split = nd["split"]
                feature[i] = fmap[split] if split in fmap else int(str(split).lstrip("f"))
                threshold[i] = np.float32(nd["split_condition"])
        trees.append(_Tree(left, right, feature, threshold, values, output_offset=(k // n_parallel) % n_groups))
    return trees, n_groups


def _xgb_base_margin(model, n_features: int) -> np.ndarray:
    """base_score as a margin, read back from XGBoost itself (works for every objective)."""
    import xgboost as xgb

    booster = model.get_booster()
    probe = np.zeros((1, n_features), dtype=np.float32)
    full = booster.predict(xgb.DMatrix(probe), output_margin=True)
    n_groups = int(np.asarray(full).reshape(1, -1).shape[1])
    zeros = np.zeros(1) if n_groups == 1 else np.zeros((1, n_groups))
    zero = booster.predict(xgb.DMatrix(probe, base_margin=zeros), output_margin=True)
    return (np.asarray(full, np.float64) - np.asarray(zero, np.float64)).reshape(-1)


_XGB_TRANSFORMS = {
    "binary:logistic": "sigmoid",
    "reg:logistic": "sigmoid",
    "binary:logitraw": "identity",
    "multi:softprob": "softmax",
    "multi:softmax": "softmax",
    "reg:squarederror": "identity",
    "reg:squaredlogerror": "identity",
    "reg:pseudohubererror": "identity",
    "reg:absoluteerror": "identity",
    "reg:quantileerror": "identity",
    "count:poisson": "exp",
    "reg:gamma": "exp",
    "reg:tweedie": "exp",
}


def extract_tree_tensors(model) -> Tuple[TreeTensors, ClearOutputs]:
    """Parse a fitted tree model into stacked GEMM tensors and its clear post-processing."""
    from sklearn.base import is_classifier
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import BaseDecisionTree

    n_features = int(model.n_features_in_)
    classifier = is_classifier(model)
    classes = np.asarray(model.classes_) if classifier else None

    if isinstance(model, BaseDecisionTree):
        trees = [_sklearn_tree(model, normalize=classifier)]
        n_out = len(classes) if classifier else 1
        tensors = _stack_trees(trees, n_features, n_out, "<=")
        post = tree_clear_outputs("identity", tensors.constant_output.copy(), classes)
    elif isinstance(model, (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)):
        ests = model.estimators_
        trees = [_sklearn_tree(e, normalize=classifier, scale=1.0 / len(ests)) for e in ests]
        n_out = len(classes) if classifier else 1
        tensors = _stack_trees(trees, n_features, n_out, "<=")
        post = tree_clear_outputs("identity", tensors.constant_output.copy(), classes)
    elif isinstance(model, (GradientBoostingClassifier, GradientBoostingRegressor)):
        ests = model.estimators_  # (n_estimators, K)
        n_out = ests.shape[1]
        lr = float(model.learning_rate)
        factor = 1.0
        transform = "identity"
        if classifier:
            if getattr(model, "loss", "log_loss") == "exponential":
                factor = 2.0  # predict_proba = expit(2 * raw)
            transform = "sigmoid" if n_out == 1 else "softmax"
        trees = [_sklearn_tree(ests[i, k], output_offset=k, scale=lr * factor) for i in range(ests.shape[0]) for k in range(n_out)]
        tensors = _stack_trees(trees, n_features, n_out, "<=")
        probe = np.zeros((1, n_features))
        init = np.asarray(model.decision_function(probe) if classifier else model.predict(probe), np.float64)
        init = init.reshape(1, -1) * factor - (tensors.forward_numpy(probe) + tensors.constant_output)
        if model.init not in (None, "zero"):
            raise UnsupportedModelError("GradientBoosting with a custom `init` estimator is not supported.")
        post = tree_clear_outputs(transform, init.reshape(-1) + tensors.constant_output, classes)
    elif type(model).__module__.startswith("xgboost"):
        objective = model.get_xgb_params().get("objective") or ("binary:logistic" if classifier else "reg:squarederror")
        if objective not in _XGB_TRANSFORMS:
            raise UnsupportedModelError(f"XGBoost objective {objective!r} is not supported.")
        trees, n_out = _xgb_trees(model)
        tensors = _stack_trees(trees, n_features, n_out, "<")
        base = _xgb_base_margin(model, n_features)
        post = tree_clear_outputs(_XGB_TRANSFORMS[objective], base + tensors.constant_output, classes)
    else:
        raise UnsupportedModelError(f"Tree model {type(model).__name__} is not supported.")
    return tensors, post


def tree_model_to_torch(model) -> GemmTreeEnsemble:
    """Build the GEMM torch module of a fitted tree model.

    Supported: DecisionTree{Classifier,Regressor}, RandomForest{Classifier,Regressor},
    ExtraTrees{Classifier,Regressor}, GradientBoosting{Classifier,Regressor} (default init),
    xgboost XGB{Classifier,Regressor} (gbtree).

    Parameters
    ----------
    model : fitted estimator

    Returns
    -------
    GemmTreeEnsemble
        ``module(X)`` gives ``raw`` (batch, n_outputs); ``module.post_processing`` (a
        :class:`~sklearn_fhe.clear_outputs.ClearOutputs`) gives ``predict`` / ``predict_proba`` from it, and
        ``module.tensors`` (a :class:`TreeTensors`) the matrices.

    Examples
    --------
    >>> module = tree_model_to_torch(clf)                       # doctest: +SKIP
    >>> raw = module.predict_raw(X)                             # doctest: +SKIP
    >>> module.post_processing.predict_proba(raw)               # doctest: +SKIP
    """
    tensors, post = extract_tree_tensors(model)
    return GemmTreeEnsemble(tensors, post)
