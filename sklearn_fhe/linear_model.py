"""Linear models predicting on encrypted data.

The circuit computes only the dot product (no table lookup, so no programmable bootstrapping);
the link (sigmoid, softmax, argmax, exp) runs on the client after decryption.

``n_bits`` of a linear model: an int ``n`` quantizes each encrypted input feature to ``n`` bits,
with its own scale and offset and MSE-optimal outlier clipping; the weights, clear constants that
cost no lookup, get ``max(n, 8)`` bits per output. A dict ``{"inputs": ..., "weights": ...}``
sets both explicitly.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from sklearn import linear_model, svm
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._available_if import available_if

from .base import FHEModelMixin, wrap_init
from .clear_outputs import ClearOutputs
from .errors import UnsupportedModelError
from .quantization.n_bits import NBits
from .torch.linear import LinearTorchModule

FheArg = Union[bool, str]

#: Clear weights cost no lookup: at least this many bits.
MIN_WEIGHT_BITS = 8

_COMMON_DOC = """
    Every parameter of the scikit-learn estimator named above is accepted, with the same
    meaning and default, plus:

    n_bits : int or dict, default=8
        Bits of each encrypted input feature (weights get ``max(n_bits, 8)`` bits since they
        are clear); a dict ``{"inputs": int, "weights": int}`` sets both.

    Attributes
    ----------
    sklearn_model_ : estimator
        The fitted float scikit-learn model.
    coef_, intercept_ : numpy.ndarray
        Its coefficients.
    onnx_model_ : onnx.ModelProto
        The exported inference graph.
    quantized_module_ : QuantizedModule
        The integer-only model (``fhe_circuit`` once compiled).
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : numpy.ndarray
        Feature names seen in fit, when X had string column names.
"""


class FHELinearModelMixin(FHEModelMixin):
    """Linear models: the float model's coefficients in one affine torch layer."""

    def _n_bits(self) -> NBits:
        if isinstance(self.n_bits, dict):
            return NBits.parse(self.n_bits)
        n_bits = NBits.parse(self.n_bits)
        return NBits.parse(
            {"inputs": n_bits.inputs, "weights": max(n_bits.weights, MIN_WEIGHT_BITS)}
        )

    def _torch_module(self) -> LinearTorchModule:
        return LinearTorchModule(self.coef_, self.intercept_)


class FHELinearClassifierMixin(FHELinearModelMixin):
    """Decision values from the circuit; class choice and probabilities in the clear."""

    #: how decision values become probabilities (None: no predict_proba)
    _probabilities: Optional[str] = None

    def _clear_outputs(self) -> ClearOutputs:
        return ClearOutputs(classes=self.classes_, probabilities=self._probabilities,
                            has_decision_function=True)

    def decision_function(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Confidence scores per class (1-D for binary problems).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        fhe : {False, "disable", "simulate", True, "execute"}, default="disable"
            Clear integers, simulated circuit, or encrypted execution.
        """
        return self._clear_output("decision_function", X, fhe)

    def predict(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Predicted class labels (see ``decision_function`` for ``fhe``)."""
        return self._clear_output("predict", X, fhe)


class FHELinearRegressorMixin(FHELinearModelMixin):
    """Linear predictor from the circuit; the inverse link (GLMs) in the clear."""

    def _inverse_link(self) -> str:
        return "identity"

    def _clear_outputs(self) -> ClearOutputs:
        return ClearOutputs(squeeze=np.ndim(self.coef_) == 1, inverse_link=self._inverse_link())

    def predict(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        fhe : {False, "disable", "simulate", True, "execute"}, default="disable"
            Clear integers, simulated circuit, or encrypted execution.
        """
        return self._clear_output("predict", X, fhe)


class FHEGLMRegressorMixin(FHELinearRegressorMixin):
    """Generalized linear models: the fitted model's own inverse link, after decryption."""

    def _inverse_link(self) -> str:
        link = type(self.sklearn_model_._base_loss.link).__name__
        if link not in _INVERSE_LINKS:
            raise UnsupportedModelError(f"{type(self).__name__}: the {link} is not supported.")
        return _INVERSE_LINKS[link]


#: scikit-learn's link classes → the inverse link applied after decryption
_INVERSE_LINKS = {"IdentityLink": "identity", "LogLink": "exp"}


def _document(cls: type) -> type:
    cls.__doc__ = (cls.__doc__ or "") + _COMMON_DOC
    return wrap_init(cls)


@_document
class FHELogisticRegression(ClassifierMixin, FHELinearClassifierMixin, BaseEstimator):
    """Logistic regression (``sklearn.linear_model.LogisticRegression``) on encrypted data.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_fhe import FHELogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), FHELogisticRegression(n_bits=2)).fit(X, y)
    >>> pipe.predict(X[:3], fhe="simulate")
    array([0, 0, 0])
    """

    _float_class = linear_model.LogisticRegression
    _probabilities = "logistic"

    def predict_proba(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Class probabilities: sigmoid (binary) or softmax of the decrypted scores."""
        return self._clear_output("predict_proba", X, fhe)

    def predict_log_proba(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Logarithm of ``predict_proba``."""
        return self._clear_output("predict_log_proba", X, fhe)


def _has_probabilistic_loss(estimator: Any) -> bool:
    if estimator.loss not in ("log_loss", "modified_huber"):
        raise AttributeError(f"probability estimates are not available for loss={estimator.loss!r}")
    return True


@_document
class FHESGDClassifier(ClassifierMixin, FHELinearClassifierMixin, BaseEstimator):
    """Linear classifier trained by SGD (``sklearn.linear_model.SGDClassifier``), encrypted."""

    _float_class = linear_model.SGDClassifier

    @property
    def _probabilities(self) -> Optional[str]:
        return {"log_loss": "ovr_logistic", "modified_huber": "ovr_modified_huber"}.get(self.loss)

    @available_if(_has_probabilistic_loss)
    def predict_proba(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Probabilities for ``loss="log_loss"`` or ``"modified_huber"`` (as scikit-learn)."""
        return self._clear_output("predict_proba", X, fhe)

    @available_if(_has_probabilistic_loss)
    def predict_log_proba(self, X: Any, fhe: FheArg = "disable") -> np.ndarray:
        """Logarithm of ``predict_proba``."""
        return self._clear_output("predict_log_proba", X, fhe)


@_document
class FHELinearSVC(ClassifierMixin, FHELinearClassifierMixin, BaseEstimator):
    """Linear support vector classifier (``sklearn.svm.LinearSVC``) on encrypted data."""

    _float_class = svm.LinearSVC


@_document
class FHELinearRegression(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Ordinary least squares (``sklearn.linear_model.LinearRegression``) on encrypted data."""

    _float_class = linear_model.LinearRegression


@_document
class FHERidge(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Ridge regression (``sklearn.linear_model.Ridge``) on encrypted data."""

    _float_class = linear_model.Ridge


@_document
class FHELasso(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Lasso (``sklearn.linear_model.Lasso``) on encrypted data."""

    _float_class = linear_model.Lasso


@_document
class FHEElasticNet(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Elastic net (``sklearn.linear_model.ElasticNet``) on encrypted data."""

    _float_class = linear_model.ElasticNet


@_document
class FHELinearSVR(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Linear support vector regression (``sklearn.svm.LinearSVR``) on encrypted data."""

    _float_class = svm.LinearSVR


@_document
class FHESGDRegressor(RegressorMixin, FHELinearRegressorMixin, BaseEstimator):
    """Linear regression trained by SGD (``sklearn.linear_model.SGDRegressor``), encrypted."""

    _float_class = linear_model.SGDRegressor


@_document
class FHEPoissonRegressor(RegressorMixin, FHEGLMRegressorMixin, BaseEstimator):
    """Poisson GLM (``sklearn.linear_model.PoissonRegressor``): exp applied after decryption."""

    _float_class = linear_model.PoissonRegressor


@_document
class FHEGammaRegressor(RegressorMixin, FHEGLMRegressorMixin, BaseEstimator):
    """Gamma GLM (``sklearn.linear_model.GammaRegressor``): exp applied after decryption."""

    _float_class = linear_model.GammaRegressor


@_document
class FHETweedieRegressor(RegressorMixin, FHEGLMRegressorMixin, BaseEstimator):
    """Tweedie GLM (``sklearn.linear_model.TweedieRegressor``): its inverse link after decryption."""

    _float_class = linear_model.TweedieRegressor


__all__ = [
    "FHELogisticRegression",
    "FHESGDClassifier",
    "FHELinearSVC",
    "FHELinearRegression",
    "FHERidge",
    "FHELasso",
    "FHEElasticNet",
    "FHELinearSVR",
    "FHESGDRegressor",
    "FHEPoissonRegressor",
    "FHEGammaRegressor",
    "FHETweedieRegressor",
]
