"""Decision trees predicting on encrypted data (see ``tree_model`` for how)."""

from __future__ import annotations

from sklearn import tree
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .base import wrap_init
from .tree_model import TREE_DOC, FHETreeClassifierMixin, FHETreeRegressorMixin, defaults_doc

#: A tree of at most 64 leaves (see ``TREE_DOC``); scikit-learn's trees are unbounded.
TREE_DEFAULTS = {"max_depth": 6}


def document(cls: type) -> type:
    """Append the family's parameter docs and generate the constructor."""
    cls.__doc__ = (cls.__doc__ or "") + defaults_doc(cls) + TREE_DOC
    return wrap_init(cls)


@document
class FHEDecisionTreeClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Decision tree classifier (``sklearn.tree.DecisionTreeClassifier``) on encrypted data."""

    _float_class = tree.DecisionTreeClassifier
    _default_overrides = TREE_DEFAULTS


@document
class FHEDecisionTreeRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Decision tree regressor (``sklearn.tree.DecisionTreeRegressor``) on encrypted data."""

    _float_class = tree.DecisionTreeRegressor
    _default_overrides = TREE_DEFAULTS


__all__ = ["FHEDecisionTreeClassifier", "FHEDecisionTreeRegressor"]
