"""The tree-model family on the shared mixin: decision trees, forests, gradient boosting.

Features are binned into ``2**n_bits`` quantile bins and the float model is trained on the bin
indices (trees only care about the order of values, so nothing but the binning is lost). The
client sends thermometer bits ``[x_f >= edge]``: by default only those the model's comparisons
read (``encoding="thresholds"``), or every bit of each used feature (``"thermometer"``). In the
circuit, each comparison is one input bit and each leaf one small table lookup; the sum over
trees stays in the circuit; the base score, sigmoid/softmax and argmax run on the client after
decryption.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any, Union

import numpy as np

from .base import FHEModelMixin, signature_with
from .clear_outputs import ClearOutputs
from .quantization.n_bits import NBits
from .quantization.thermometer import QuantileThermometer, ThermometerBits
from .torch.thermometer_trees import (
    ThermometerTreeEnsemble,
    center_leaf_values,
    check_encoding,
    comparisons_on_levels,
    input_bits,
)
from .torch.tree_to_torch import extract_tree_tensors

FheArg = Union[bool, str]

#: Bits of the leaf values of classifiers (their outputs only feed an argmax / a probability).
CLASSIFIER_LEAF_BITS = 3

#: Leaves per output that the families' default sizes stay within: one depth-6 tree, four of
#: depth 4, sixteen of depth 2 (see the defaults in ``TREE_DOC``).
DEFAULT_MAX_LEAVES = 64

TREE_DOC = """
    Every parameter of the wrapped estimator is accepted, with the same meaning and default,
    but for the size of the model (above; gradient boosting's fewer trees also learn at
    xgboost's rate). Each leaf of each tree is one table lookup per
    encrypted row, the bulk of the server's work: the wrapped estimators' defaults (100 trees,
    unbounded or of depth 6) hold thousands of leaves, too slow to predict on encrypted data
    and too large to compile on a small machine. The defaults here stay within 64 leaves per
    output, with an accuracy close to the float model's of the same size. With more than two
    classes, gradient boosting and XGBoost fit one tree per class and round, so their lookups
    grow with the number of classes (a leaf of a forest or a single tree holds every class).
    Every parameter stays settable: ``max_depth=None`` grows unbounded trees as in
    scikit-learn (xgboost reads None as its own default depth, 6); ``fhe_cost()`` tells what a
    fitted model costs before compiling.

    Our parameters:

    n_bits : int or dict, default=6
        An int ``n``: each feature is binned into ``2**n`` quantile bins (a comparison is one
        encrypted bit whatever ``n``: finer bins cost no server lookups, and upload only with
        ``encoding="thermometer"``), and leaf values are quantized to ``n`` bits (classifiers:
        ``min(n, 3)``, enough for their probabilities).
        A dict ``{"inputs": ..., "weights": ...}`` sets bins and leaf bits apart.
    binning : {"quantile", "uniform"}, default="quantile"
        Equal-frequency bins per feature, or the uniform grid of the library's input quantizer.
    encoding : {"thresholds", "thermometer"}, default="thresholds"
        The encrypted bits ``[x_f >= edge]`` the client sends per row.

        - ``"thresholds"``: one bit per distinct comparison of the model (a ``(feature, bin)``
          pair tested by any node of any tree): the smallest upload. The client part of a
          deployed model holds the model's split points (on the bin grid) and so reveals them,
          with the features used and how many distinct splits each has.
        - ``"thermometer"``: every bit of every used feature, ``2**n - 1`` per feature, whatever
          the trees test. The client part holds the bin grid of the used features and so
          reveals which features the model uses, not where it splits them.

        Neither reveals the tree structure (which split leads where) nor the leaf values, which
        stay on the server; both give the same predictions and the same table lookups.

    Attributes
    ----------
    sklearn_model_ : estimator
        The float model, trained on bin indices.
    thermometer_ : QuantileThermometer
        The per-feature bins.
    input_bits_ : ThermometerBits
        The client's encoder: feature and edge of each encrypted bit (``input_bits_.n_bits``
        values per row). Plain arrays: ``input_bits_.to_dict()``.
    used_features_ : numpy.ndarray
        The features the trees test (only their bits are sent).
    onnx_model_, quantized_module_ :
        The inference graph and its integer-only version.
"""


def defaults_doc(cls: type) -> str:
    """The docstring paragraph of ``cls``'s defaults that differ from its wrapped estimator's
    (``_default_overrides``), with the wrapped estimator's own."""
    wrapped = signature_with(cls._float_class).parameters
    name = cls._float_class.__name__
    changes = ", ".join(f"``{key}={value!r}`` ({name}: ``{wrapped[key].default!r}``)"
                        for key, value in cls._default_overrides.items())
    if not changes:
        return ""
    text = f"Defaults differing from {name}'s: {changes}."
    return "\n\n" + textwrap.fill(text, 96, initial_indent=" " * 4, subsequent_indent=" " * 4,
                                   break_on_hyphens=False) + "\n"


class FHETreeModelMixin(FHEModelMixin):
    """Shared fit / encoding / post-processing of tree models."""

    _fhe_parameters = {"n_bits": 6, "binning": "quantile", "encoding": "thresholds"}
    _leaf_bits_cap = None  # classifiers cap leaf bits (see CLASSIFIER_LEAF_BITS)

    def _n_bits(self) -> NBits:
        if isinstance(self.n_bits, dict):
            return NBits.parse(self.n_bits)
        n_bits = NBits.parse(self.n_bits)
        leaf_bits = min(n_bits.weights, self._leaf_bits_cap or n_bits.weights)
        return NBits.parse({"inputs": n_bits.inputs, "weights": max(leaf_bits, 2)})

    def _fit_float_model(self, X: np.ndarray, y: np.ndarray, **fit_params: Any) -> Any:
        check_encoding(self.encoding)  # before any training
        self.thermometer_ = QuantileThermometer(self._n_bits().inputs, self.binning).fit(X)
        bins = self.thermometer_.bin_index(X)
        return self._float_class(**self._float_params()).fit(bins, y, **fit_params)

    def _torch_module(self) -> ThermometerTreeEnsemble:
        tensors, post = extract_tree_tensors(self.sklearn_model_)
        n_levels = self.thermometer_.n_levels
        folded, shift = center_leaf_values(comparisons_on_levels(tensors, n_levels))
        # what left the circuit (folded trees, per-tree centres) is added back in the clear
        extra = folded.constant_output - tensors.constant_output + shift
        self.post_processing_ = replace(post, offset=post.offset + extra)
        features, levels = input_bits(folded, n_levels, self.encoding)
        self.input_bits_ = self.thermometer_.bits(features, levels)
        self.used_features_ = np.unique(features)
        return ThermometerTreeEnsemble(folded, features, levels)

    def _clear_outputs(self) -> ClearOutputs:
        return self.post_processing_

    def _input_encoder(self) -> ThermometerBits:
        return self.input_bits_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False  # one output column per class/target only
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = False
        return tags


class FHETreeClassifierMixin(FHETreeModelMixin):
    """Classifiers: probabilities and classes in the clear, from the decrypted scores."""

    _leaf_bits_cap = CLASSIFIER_LEAF_BITS

    def predict_proba(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        fhe : {False, "disable", "simulate", True, "execute"}, default="disable"
            Clear integers, simulated circuit, or encrypted execution.
        """
        return self._clear_output("predict_proba", X, fhe)

    def predict(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Predicted classes (see ``predict_proba`` for ``fhe``)."""
        return self._clear_output("predict", X, fhe)


class FHETreeRegressorMixin(FHETreeModelMixin):
    """Regressors: base score and inverse link in the clear."""

    def predict(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        fhe : {False, "disable", "simulate", True, "execute"}, default="disable"
            Clear integers, simulated circuit, or encrypted execution.
        """
        return self._clear_output("predict", X, fhe)
