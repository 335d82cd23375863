"""sklearn_fhe: scikit-learn estimators that predict on encrypted data with TFHE."""

from .linear_model import (
    FHEElasticNet,
    FHEGammaRegressor,
    FHELasso,
    FHELinearRegression,
    FHELinearSVC,
    FHELinearSVR,
    FHELogisticRegression,
    FHEPoissonRegressor,
    FHERidge,
    FHESGDClassifier,
    FHESGDRegressor,
    FHETweedieRegressor,
)
from .torch.compile import compile_onnx_model, compile_torch_model

__version__ = "0.1.0"

__all__ = [
    "FHEElasticNet",
    "FHEGammaRegressor",
    "FHELasso",
    "FHELinearRegression",
    "FHELinearSVC",
    "FHELinearSVR",
    "FHELogisticRegression",
    "FHEPoissonRegressor",
    "FHERidge",
    "FHESGDClassifier",
    "FHESGDRegressor",
    "FHETweedieRegressor",
    "compile_onnx_model",
    "compile_torch_model",
]
