"""The mixin every sklearn_fhe estimator shares: fit → torch → ONNX → quantize; compile; predict.

An estimator family only says how to train its float model (``_fit_float_model``), how to
express its inference in torch (``_torch_module``), and what runs in the clear on the decrypted
output (its predict / predict_proba methods, built on ``_quantized_output``).
"""

from __future__ import annotations

import inspect
import threading
from abc import ABC, abstractmethod
from typing import Any, Optional, Union

import numpy as np
import onnx
import torch
from concrete import fhe as concrete_fhe
from sklearn.utils.validation import check_is_fitted, validate_data

from .clear_outputs import ClearOutputs
from .fhe.batched_circuit import BatchedCircuit
from .fhe.compile import DEFAULT_BATCH_SIZE
from .fhe.cost import warn_if_slow
from .fhe.modes import FheMode
from .onnx.export import export_torch_to_onnx
from .onnx.numpy_module import NumpyModule
from .quantization.n_bits import NBits
from .quantization.post_training import PostTrainingQuantization
from .quantization.quantized_module import QuantizedModule

#: Rows of the training set kept to compile the circuit on demand (and to calibrate).
MAX_CALIBRATION_ROWS = 2000

#: Fitted attributes set by our own input validation, never copied from the float model.
_OWN_ATTRIBUTES = {"n_features_in_", "feature_names_in_"}

#: Instance attribute holding the per-estimator lock of the lazy compilation (never pickled).
_COMPILE_LOCK = "_fhe_compile_lock"

#: Guards the creation of the per-estimator locks (two threads must not make two).
_LOCK_CREATION = threading.Lock()


def signature_with(
    base: type, overrides: Optional[dict] = None, **extra: Any
) -> inspect.Signature:
    """``base.__init__``'s signature plus keyword-only parameters ``extra`` (name → default),
    with the defaults ``overrides`` (name → default) in place of ``base``'s.

    A constructor taking ``**kwargs`` (xgboost's) is read through ``get_params`` instead.
    """
    parameters = list(inspect.signature(base.__init__).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        parameters = [parameters[0]] + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in base().get_params(deep=False).items()
        ]
    overrides = overrides or {}
    unknown = set(overrides) - {p.name for p in parameters}
    if unknown:
        raise TypeError(f"{sorted(unknown)} are not parameters of {base.__name__}")
    parameters = [p.replace(default=overrides[p.name]) if p.name in overrides else p
                  for p in parameters]
    parameters += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in extra.items()
        if name not in {p.name for p in parameters}
    ]
    return inspect.Signature(parameters)


def wrap_init(cls: type) -> type:
    """Give ``cls`` an ``__init__`` with the parameters of its float counterpart plus its own.

    scikit-learn reads the constructor parameters from the signature; this one is generated from
    the wrapped scikit-learn class (so the defaults are always that version's, but for the
    family's deliberate ``_default_overrides``) and only stores the arguments, as scikit-learn
    requires.
    """
    signature = signature_with(cls._float_class, cls._default_overrides, **cls._fhe_parameters)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__doc__ = f"See the class docstring (parameters of {cls._float_class.__name__} + ours)."
    cls.__init__ = __init__
    return cls


class FHEModelMixin(ABC):
    """Shared fit/compile/predict machinery of sklearn_fhe estimators.

    Subclasses set ``_float_class`` (the scikit-learn or skorch estimator they wrap),
    ``_fhe_parameters`` (our extra constructor parameters and their defaults, ``n_bits`` at
    least), optionally ``_default_overrides`` (defaults of the wrapped estimator's parameters
    that the family changes, e.g. a bounded tree size), and implement ``_torch_module``.
    """

    _float_class: type
    _fhe_parameters: dict = {"n_bits": 8}
    _default_overrides: dict = {}

    # scikit-learn's metadata routing: request ``fhe`` by default, so that a Pipeline (or any
    # router) forwards ``pipe.predict_proba(X, fhe=...)`` to us with routing enabled, without
    # ``set_predict_proba_request(fhe=True)``. A method a family lacks requests nothing.
    __metadata_request__predict = {"fhe": True}
    __metadata_request__predict_proba = {"fhe": True}
    __metadata_request__predict_log_proba = {"fhe": True}
    __metadata_request__decision_function = {"fhe": True}

    # -- hooks of the estimator families -------------------------------------------------------
    def _float_params(self) -> dict:
        """Constructor parameters of the wrapped float estimator."""
        params = self.get_params(deep=False)
        return {k: v for k, v in params.items() if k not in self._fhe_parameters}

    def _fit_float_model(self, X: np.ndarray, y: np.ndarray, **fit_params: Any) -> Any:
        """Train the float model (by default the wrapped class with our float parameters)."""
        return self._float_class(**self._float_params()).fit(X, y, **fit_params)

    @abstractmethod
    def _torch_module(self) -> torch.nn.Module:
        """The fitted model's inference (up to what runs in the clear) as a torch module."""

    @abstractmethod
    def _clear_outputs(self) -> ClearOutputs:
        """What the client computes from the decrypted outputs (called at the end of fit)."""

    def _n_bits(self) -> NBits:
        """The bit widths to quantize with (families may widen clear weights, for example).

        Called before training (to validate ``n_bits`` early) and after it (the widths used),
        so a family may derive them from the trained model."""
        return NBits.parse(self.n_bits)

    def _rounding_threshold_bits(self) -> Optional[int]:
        return getattr(self, "rounding_threshold_bits", None)

    def _validate_fit_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        multi_output = self.__sklearn_tags__().target_tags.multi_output
        return validate_data(
            self, X, y, dtype=[np.float64, np.float32], multi_output=multi_output
        )

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, **fit_params: Any) -> "FHEModelMixin":
        """Train the float model, then build its quantized (integer-only) counterpart.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; also the calibration set of quantization.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        **fit_params : dict
            Passed to the float model's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._n_bits()  # validates n_bits before any training
        X, y = self._validate_fit_data(X, y)
        self.sklearn_model_ = self._fit_float_model(X, y, **fit_params)
        self._after_float_fit(X, y)
        X = np.asarray(X, dtype=np.float32)
        module = self._torch_module()  # may set the input encoder (trees)
        self._calibration_inputs = self._encode_inputs(X[:MAX_CALIBRATION_ROWS])
        self._quantize(module, self._calibration_inputs)
        self.clear_outputs_ = self._clear_outputs()
        warn_if_slow(self.quantized_module_, self._calibration_inputs, type(self).__name__)
        return self

    def _quantize(self, module: torch.nn.Module, inputs: np.ndarray) -> None:
        """Export ``module`` to ONNX and quantize it, calibrated on the encoded ``inputs``.

        Sets ``onnx_model_`` and ``quantized_module_``. Families whose float model changes after
        fit (a network trained further or given loaded weights) call it again.
        """
        self.onnx_model_ = export_torch_to_onnx(module, inputs[:8])
        # asked after training: a family may derive its bit widths from the trained model
        ptq = PostTrainingQuantization(
            NumpyModule(self.onnx_model_), self._n_bits(), self._rounding_threshold_bits()
        )
        self.quantized_module_ = ptq.quantize(inputs)

    def _input_encoder(self) -> Optional[Any]:
        """The client-side encoder of validated inputs before quantization and encryption: an
        object with ``encode(X)`` and plain-data ``to_dict()`` (see ``deployment.codec``), or
        None when the torch module takes the inputs as they are."""
        return None

    def _encode_inputs(self, X: np.ndarray) -> np.ndarray:
        """``X`` through the input encoder (the torch module takes the encoded inputs)."""
        encoder = self._input_encoder()
        return X if encoder is None else encoder.encode(X)

    def _after_float_fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Expose the float model's public fitted attributes (``classes_``, ``coef_``,
        ``n_iter_``...), as users of the wrapped estimator expect them."""
        for name, value in vars(self.sklearn_model_).items():
            if name.endswith("_") and not name.startswith("_") and name not in _OWN_ATTRIBUTES:
                setattr(self, name, value)

    # -- FHE -----------------------------------------------------------------------------------
    def compile(
        self,
        X: Optional[Any] = None,
        configuration: Optional[concrete_fhe.Configuration] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        p_error: Optional[float] = None,
        global_p_error: Optional[float] = None,
    ) -> "FHEModelMixin":
        """Compile the quantized model into an FHE circuit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Representative inputs fixing the circuit's bit widths; defaults to the training
            data kept from ``fit``.
        configuration : concrete.fhe.Configuration, optional
            Concrete's configuration (e.g. an insecure key cache for tests); by default
            ``sklearn_fhe.fhe.compile.default_configuration()``.
        batch_size : int, default=16
            Rows of the largest encrypted circuit call; the circuit also takes 1, 4... rows, so
            a small request pays for its own rows only.
        p_error, global_p_error : float, optional
            Error probability of each table lookup, or of any lookup in one circuit call
            (concrete's default: ``global_p_error=1e-5``). Encrypted results equal
            ``fhe="disable"`` unless a lookup errs (then by one step of its output grid).

        Returns
        -------
        self : object
            The estimator, with ``fhe_circuit`` set.
        """
        check_is_fitted(self)
        inputs = self._calibration_inputs
        if X is not None:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            inputs = self._encode_inputs(X)
        self.quantized_module_.compile(inputs, configuration, batch_size, p_error, global_p_error)
        return self

    def fhe_cost(self, X: Optional[Any] = None, batch_size: Optional[int] = None) -> dict:
        """What an encrypted prediction will cost, before compiling (and measured after).

        Counts the circuit's table lookups (PBS) per row by bit width from the quantized
        model, derives the cryptographic parameters concrete will choose, and estimates
        seconds per row, evaluation-key bytes, key-generation seconds and peak memory from
        constants measured on this machine (a few-second calibration on first use, cached;
        ``python -m sklearn_fhe.fhe.cost --calibrate`` for the full one). Nothing is compiled.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Representative inputs; defaults to the training data kept from ``fit``.
        batch_size : int, optional
            Rows per circuit call; defaults to the compiled (or default) batch size.

        Returns
        -------
        cost : dict
            ``pbs_per_row``, ``pbs_per_row_by_bit_width``, ``max_bit_width``,
            ``estimated_s_per_row``, ``estimated_s_one_row``, ``estimated_key_bytes``,
            ``estimated_keygen_s``, ``estimated_peak_memory_bytes``, ``batch_size``...; once the
            estimator is compiled, the circuit's figures beside them (``compiled_pbs_per_row``,
            ``compiled_max_bit_width``, ``compiled_key_bytes`` after key generation...).

        Examples
        --------
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn_fhe import FHEDecisionTreeClassifier
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> model = FHEDecisionTreeClassifier(max_depth=3, n_bits=4).fit(X, y)
        >>> cost = model.fhe_cost()
        >>> sorted(cost["pbs_per_row_by_bit_width"])  # lookups of 2 bits only
        [2]
        """
        check_is_fitted(self)
        inputs = self._calibration_inputs
        if X is not None:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            inputs = self._encode_inputs(X)
        return self.quantized_module_.fhe_cost(inputs, batch_size)

    @property
    def fhe_circuit(self) -> Optional[BatchedCircuit]:
        """The compiled circuit (None before ``compile`` or the first encrypted predict)."""
        module = getattr(self, "quantized_module_", None)
        return None if module is None else module.fhe_circuit

    @property
    def onnx_model(self) -> onnx.ModelProto:
        """The float model as ONNX (save it with ``onnx.save`` and open it in Netron)."""
        check_is_fitted(self)
        return self.onnx_model_

    @property
    def quantized_module(self) -> QuantizedModule:
        """The integer-only model run by ``predict``."""
        check_is_fitted(self)
        return self.quantized_module_

    # -- inference -----------------------------------------------------------------------------
    def _quantized_output(self, X: Any, fhe: Union[bool, str] = "disable") -> np.ndarray:
        """The model's raw output through the integer model: clear, simulated or encrypted.

        The first "simulate" / "execute" call of a fitted, uncompiled estimator compiles it
        once on the training data kept from ``fit``.
        """
        mode = FheMode.parse(fhe)
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        if mode is not FheMode.DISABLE:
            self._compile_once()
        return self.quantized_module_.forward(self._encode_inputs(X), fhe=mode)

    def _clear_output(self, method: str, X: Any, fhe: Union[bool, str]) -> np.ndarray:
        """``clear_outputs_.<method>`` (predict, predict_proba...) of the model's raw output."""
        raw = self._quantized_output(X, fhe)  # checks the model is fitted first
        return getattr(self.clear_outputs_, method)(raw)

    def _compile_once(self) -> None:
        """Compile on the training data unless compiled: once, however many threads ask."""
        if self.quantized_module_.fhe_circuit is not None:
            return
        with self._compile_lock():
            if self.quantized_module_.fhe_circuit is None:  # another thread may have compiled
                self.compile()

    def _compile_lock(self) -> threading.Lock:
        """This estimator's lock for the lazy compilation, made on first use (also after a
        clone or an unpickling, which do not carry it)."""
        lock = self.__dict__.get(_COMPILE_LOCK)
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.setdefault(_COMPILE_LOCK, threading.Lock())
        return lock

    def __getstate__(self) -> dict:
        # a lock cannot be pickled (nor deep-copied); a copy makes its own on first use
        # (a new dict: object.__getstate__ may hand back the instance's own __dict__)
        return {k: v for k, v in super().__getstate__().items() if k != _COMPILE_LOCK}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        float_model = self._float_class(**self._float_params())
        if hasattr(float_model, "__sklearn_tags__"):
            # what the targets may be (positive only, multi-output...) is the float model's
            float_tags = float_model.__sklearn_tags__()
            tags.target_tags = float_tags.target_tags
            tags.classifier_tags = float_tags.classifier_tags or tags.classifier_tags
            tags.regressor_tags = float_tags.regressor_tags or tags.regressor_tags
        # the quantizer calibrates on dense, finite data
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags
