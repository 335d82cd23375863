"""Tree ensembles predicting on encrypted data: random forests, gradient boosting, XGBoost.

See ``tree_model`` for how trees run on encrypted data. The XGBoost models need the optional
``xgboost`` package (``pip install sklearn_fhe[xgboost]``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sklearn import ensemble
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets

from .tree import document
from .tree_model import FHETreeClassifierMixin, FHETreeRegressorMixin


@document
class FHERandomForestClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Random forest classifier (``sklearn.ensemble.RandomForestClassifier``), encrypted."""

    _float_class = ensemble.RandomForestClassifier


@document
class FHERandomForestRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Random forest regressor (``sklearn.ensemble.RandomForestRegressor``), encrypted."""

    _float_class = ensemble.RandomForestRegressor


@document
class FHEGradientBoostingClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Gradient boosting classifier (``sklearn.ensemble.GradientBoostingClassifier``), encrypted."""

    _float_class = ensemble.GradientBoostingClassifier


@document
class FHEGradientBoostingRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Gradient boosting regressor (``sklearn.ensemble.GradientBoostingRegressor``), encrypted."""

    _float_class = ensemble.GradientBoostingRegressor


try:
    import xgboost
except ImportError:  # pragma: no cover - exercised only without the optional extra
    xgboost = None


def _missing_xgboost(name: str) -> type:
    """A placeholder class that explains how to install the optional dependency."""

    class MissingXGBoost:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(
                f"{name} needs the optional package xgboost: pip install 'sklearn_fhe[xgboost]'"
            )

    MissingXGBoost.__name__ = MissingXGBoost.__qualname__ = name
    return MissingXGBoost


if xgboost is not None:

    @document
    class FHEXGBClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
        """XGBoost classifier (``xgboost.XGBClassifier``) on encrypted data."""

        _float_class = xgboost.XGBClassifier

        def _fit_float_model(self, X, y, **fit_params):
            # xgboost wants labels 0..n_classes-1: encode them, keep the originals as classes
            check_classification_targets(y)
            self._labels, encoded = np.unique(y, return_inverse=True)
            return super()._fit_float_model(X, encoded, **fit_params)

        def _after_float_fit(self, X, y) -> None:
            super()._after_float_fit(X, y)
            self.classes_ = self._labels

        def _torch_module(self):
            module = super()._torch_module()
            self.post_processing_ = replace(self.post_processing_, classes=self._labels)
            return module

    @document
    class FHEXGBRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
        """XGBoost regressor (``xgboost.XGBRegressor``) on encrypted data."""

        _float_class = xgboost.XGBRegressor

else:  # pragma: no cover
    FHEXGBClassifier = _missing_xgboost("FHEXGBClassifier")
    FHEXGBRegressor = _missing_xgboost("FHEXGBRegressor")


__all__ = [
    "FHERandomForestClassifier",
    "FHERandomForestRegressor",
    "FHEGradientBoostingClassifier",
    "FHEGradientBoostingRegressor",
    "FHEXGBClassifier",
    "FHEXGBRegressor",
]
