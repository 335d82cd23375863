"""sklearn_fhe: scikit-learn estimators that predict on encrypted data with TFHE."""

import warnings

# concrete declares its namespace through pkg_resources, which warns on every import
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from .fhe.exit_status import keep_exit_status
from .fhe.threads import trace_from_any_thread

# before anything runs a circuit: concrete's own exit handler would report every exit as success
keep_exit_status()
# concrete traces circuits only in the thread that imported it unless told otherwise
trace_from_any_thread()

from .config import config_context, get_config, set_config
from .ensemble import (
    FHEGradientBoostingClassifier,
    FHEGradientBoostingRegressor,
    FHERandomForestClassifier,
    FHERandomForestRegressor,
    FHEXGBClassifier,
    FHEXGBRegressor,
)
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
from .neural_network import FHENeuralNetClassifier, FHENeuralNetRegressor
from .torch.compile import compile_onnx_model, compile_torch_model
from .tree import FHEDecisionTreeClassifier, FHEDecisionTreeRegressor

__version__ = "0.1.0"

__all__ = [
    "FHEDecisionTreeClassifier",
    "FHEDecisionTreeRegressor",
    "FHEGradientBoostingClassifier",
    "FHEGradientBoostingRegressor",
    "FHERandomForestClassifier",
    "FHERandomForestRegressor",
    "FHEXGBClassifier",
    "FHEXGBRegressor",
    "FHEElasticNet",
    "FHEGammaRegressor",
    "FHELasso",
    "FHELinearRegression",
    "FHELinearSVC",
    "FHELinearSVR",
    "FHELogisticRegression",
    "FHENeuralNetClassifier",
    "FHENeuralNetRegressor",
    "FHEPoissonRegressor",
    "FHERidge",
    "FHESGDClassifier",
    "FHESGDRegressor",
    "FHETweedieRegressor",
    "compile_onnx_model",
    "compile_torch_model",
    "config_context",
    "get_config",
    "set_config",
]
