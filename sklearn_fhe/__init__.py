"""sklearn_fhe: scikit-learn estimators that predict on encrypted data with TFHE."""

from .dependencies import check_dependencies
from .dependency_warnings import quiet_pkg_resources_warning

# before anything imports concrete: an incompatible numpy or concrete fails here, clearly,
# not inside concrete at predict time
check_dependencies()
# concrete's import warns through pkg_resources, here and in joblib workers
quiet_pkg_resources_warning()

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
