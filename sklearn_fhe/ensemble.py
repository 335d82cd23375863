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

# Default sizes within DEFAULT_MAX_LEAVES leaves per output (see ``tree_model.TREE_DOC``).
#: Four trees of depth 4 rather than eight of depth 3 (as many leaves): the more accurate of
#: the two on the larger data sets, where the difference is more than the draw.
FOREST_DEFAULTS = {"n_estimators": 4, "max_depth": 4}
#: Sixteen trees of depth 2: leaf tests of 2 bits, the cheapest lookups. With so few trees,
#: scikit-learn's learning rate (0.1) underfits; 0.3 is xgboost's.
BOOSTING_DEFAULTS = {"n_estimators": 16, "max_depth": 2, "learning_rate": 0.3}
#: As gradient boosting (xgboost's learning rate is already 0.3).
XGB_DEFAULTS = {"n_estimators": 16, "max_depth": 2}


@document
class FHERandomForestClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Random forest classifier (``sklearn.ensemble.RandomForestClassifier``), encrypted."""

    _float_class = ensemble.RandomForestClassifier
    _default_overrides = FOREST_DEFAULTS


@document
class FHERandomForestRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Random forest regressor (``sklearn.ensemble.RandomForestRegressor``), encrypted."""

    _float_class = ensemble.RandomForestRegressor
    _default_overrides = FOREST_DEFAULTS


@document
class FHEGradientBoostingClassifier(ClassifierMixin, FHETreeClassifierMixin, BaseEstimator):
    """Gradient boosting classifier (``sklearn.ensemble.GradientBoostingClassifier``), encrypted."""

    _float_class = ensemble.GradientBoostingClassifier
    _default_overrides = BOOSTING_DEFAULTS


@document
class FHEGradientBoostingRegressor(RegressorMixin, FHETreeRegressorMixin, BaseEstimator):
    """Gradient boosting regressor (``sklearn.ensemble.GradientBoostingRegressor``), encrypted."""

    _float_class = ensemble.GradientBoostingRegressor
    _default_overrides = BOOSTING_DEFAULTS


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
        _default_overrides = XGB_DEFAULTS

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
        _default_overrides = XGB_DEFAULTS

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
