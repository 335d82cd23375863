"""The clear-side half of a model, as the client part holds it.

Before encryption: check the inputs as the estimator does (their columns more strictly, and
their range, see ``input_checks``), encode them (e.g. tree thresholds), quantize them. After
decryption: dequantize, then the clear-side outputs (probabilities, class labels, links). Built
from a fitted estimator or a ``QuantizedModule``; saved as JSON.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _get_feature_names, validate_data

from ..clear_outputs import ClearOutputs
from ..quantization.quantized_module import QuantizedModule
from . import codec
from .errors import ArtifactError
from .input_checks import calibrated_range, check_columns, check_range

#: Estimator methods a client part can answer, when the estimator has them.
ESTIMATOR_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
_INPUT_DTYPES = [np.float64, np.float32]


@dataclass
class ClientModel:
    """Input checks, encoding and quantization; dequantization and clear-side outputs.

    Attributes
    ----------
    estimator : str
        Class name of the saved estimator (``"QuantizedModule"`` for a compiled torch / ONNX
        model).
    input_shape : tuple of int
        Shape of one input row.
    feature_names : numpy.ndarray or None
        Column names seen in fit, checked against DataFrame inputs.
    input_encoder : object or None
        Client-side encoding before quantization (tree thresholds), None for none.
    quantization : QuantizedModule
        Its clear parts only: input quantization and output dequantization.
    clear_outputs : ClearOutputs or None
        Estimators' clear-side outputs (None: the model's dequantized output is the answer).
    methods : tuple of str
        What the client answers: estimator methods, or ``("predict",)`` for a QuantizedModule.
    """

    estimator: str
    input_shape: tuple
    feature_names: Optional[np.ndarray]
    input_encoder: Any
    quantization: QuantizedModule
    clear_outputs: Optional[ClearOutputs]
    methods: tuple

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_estimator(cls, estimator: Any) -> "ClientModel":
        methods = tuple(m for m in ESTIMATOR_METHODS if hasattr(estimator, m)
                        and _answers(estimator.clear_outputs_, m))
        return cls(
            estimator=type(estimator).__name__,
            input_shape=(int(estimator.n_features_in_),),
            feature_names=getattr(estimator, "feature_names_in_", None),
            input_encoder=estimator._input_encoder(),
            quantization=_clear_parts(estimator.quantized_module_),
            clear_outputs=estimator.clear_outputs_,
            methods=methods,
        )

    @classmethod
    def from_quantized_module(cls, module: QuantizedModule, input_shape: tuple) -> "ClientModel":
        return cls("QuantizedModule", tuple(int(d) for d in input_shape), None, None,
                   _clear_parts(module), None, ("predict",))

    # -- the client's work --------------------------------------------------------------------
    def quantize(self, X: Any) -> np.ndarray:
        """Float inputs → the integers that get encrypted (after the estimator's checks)."""
        X = self._validated(X)
        if self.input_encoder is not None:
            X = self.input_encoder.encode(X)
        return self.quantization.quantize_input(X)

    def answer(self, method: str, q: Any) -> Any:
        """The answer of ``method`` from decrypted circuit integers ``q``."""
        if method not in self.methods:
            raise AttributeError(f"This {self.estimator} has no {method}.")
        raw = self.quantization.dequantize_output(q)
        return raw if self.clear_outputs is None else getattr(self.clear_outputs, method)(raw)

    def _validated(self, X: Any) -> np.ndarray:
        names = None
        if self.clear_outputs is None:  # a QuantizedModule: any array of rows of input_shape
            X = np.asarray(X, dtype=np.float64)
            if X.ndim < 1 or X.shape[1:] != self.input_shape or not np.all(np.isfinite(X)):
                raise ValueError(
                    f"Expected finite inputs of shape (n_samples, {', '.join(map(str, self.input_shape))}), "
                    f"got shape {X.shape}."
                )
        else:
            names = _get_feature_names(X)  # scikit-learn's rules (string column names only)
            check_columns(names, self.feature_names, self.estimator)
            stand_in = self._fitted_inputs()
            if names is not None and self.feature_names is None:
                # check_columns warned (scikit-learn's warning, with what to do): a stand-in of
                # this call only, with X's names, keeps scikit-learn from warning twice
                stand_in = copy.copy(stand_in)
                stand_in.feature_names_in_ = names
            X = validate_data(stand_in, X, reset=False, dtype=_INPUT_DTYPES)
        if self.input_encoder is None and len(self.input_shape) == 1:
            calibrated = calibrated_range(self.quantization, self.input_shape[0])
            if calibrated is not None:
                check_range(X, calibrated, self.estimator,
                            names if self.feature_names is None else self.feature_names)
        return X

    def _fitted_inputs(self) -> BaseEstimator:
        """A stand-in with the estimator's name and fitted input attributes, so that inputs are
        checked (and errors worded) exactly as the estimator's own ``predict`` does."""
        if getattr(self, "_stand_in", None) is None:
            stand_in = type(self.estimator, (BaseEstimator,), {})()
            stand_in.n_features_in_ = self.input_shape[0]
            if self.feature_names is not None:
                stand_in.feature_names_in_ = self.feature_names
            self._stand_in = stand_in
        return self._stand_in

    # -- saving ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        q = self.quantization
        return codec.encode_value({
            "estimator": self.estimator,
            "input_shape": list(self.input_shape),
            "feature_names": self.feature_names,
            "input_encoder": None if self.input_encoder is None
            else codec.encode_input_encoder(self.input_encoder),
            "input_quantizations": [codec.encode_input_quantization(i)
                                    for i in q.input_quantizations],
            "output_dequantizations": [codec.encode_output_dequantization(o)
                                       for o in q.output_dequantizations],
            "n_bits": codec.encode_n_bits(q.n_bits),
            "clear_outputs": None if self.clear_outputs is None
            else codec.encode_clear_outputs(self.clear_outputs),
            "methods": list(self.methods),
        })

    @classmethod
    def from_json(cls, data: dict) -> "ClientModel":
        try:
            data = codec.decode_value(data)
            quantization = QuantizedModule(
                [codec.decode_input_quantization(i) for i in data["input_quantizations"]],
                [],
                [codec.decode_output_dequantization(o) for o in data["output_dequantizations"]],
                [],
                codec.decode_n_bits(data["n_bits"]),
            )
            encoder = data["input_encoder"]
            outputs = data["clear_outputs"]
            return cls(
                estimator=str(data["estimator"]),
                input_shape=tuple(int(d) for d in data["input_shape"]),
                feature_names=data["feature_names"],
                input_encoder=None if encoder is None else codec.decode_input_encoder(encoder),
                quantization=quantization,
                clear_outputs=None if outputs is None else codec.decode_clear_outputs(outputs),
                methods=tuple(str(m) for m in data["methods"]),
            )
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactError(f"The client part's model.json is malformed: {error!r}") from error


def _clear_parts(module: QuantizedModule) -> QuantizedModule:
    """The client's share of ``module``: quantizers and clear-side ops, no circuit ops."""
    return QuantizedModule(module.input_quantizations, [], module.output_dequantizations, [],
                           module.n_bits)


def _answers(outputs: ClearOutputs, method: str) -> bool:
    """Whether ``outputs`` computes ``method`` (e.g. no predict_proba for LinearSVC)."""
    if method in ("predict_proba", "predict_log_proba"):
        return outputs.probabilities is not None
    if method == "decision_function":
        return outputs.has_decision_function
    return True
