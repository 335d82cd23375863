"""Decision trees predicting on encrypted data (see ``tree_model`` for how)."""

from __future__ import annotations

from sklearn import tree
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .base import wrap_init
from .tree_model import TREE_DOC, FHETreeClassifierMixin, FHETreeRegressorMixin


def document(cls: type) -> type:
    """Append the family's parameter docs and generate the constructor."""
    cls.__doc__ = (cls.__doc__ or "") + TREE_DOC
    return wrap_init(cls)


@document
class FHEDecisionTreeClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Decision tree classifier (``sklearn.tree.DecisionTreeClassifier``) on encrypted data."""

    _float_class = tree.DecisionTreeClassifier


@document
class FHEDecisionTreeRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Decision tree regressor (``sklearn.tree.DecisionTreeRegressor``) on encrypted data."""

    _float_class = tree.DecisionTreeRegressor


__all__ = ["FHEDecisionTreeClassifier", "FHEDecisionTreeRegressor"]
