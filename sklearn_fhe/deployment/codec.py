"""Plain JSON for the client part of a saved model: arrays and our plain-data objects.

Nothing here instantiates a class named by the file: every object type has its own explicit
encoder and decoder below, and ONNX ops are looked up in our own registry. Loading a client part
therefore never runs code that came from the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..clear_outputs import ClearOutputs
from ..onnx.ops import ONNX_OPS_TO_NUMPY_IMPL
from ..quantization.n_bits import NBits
from ..quantization.quantized_module import InputQuantization, OutputDequantization
from ..quantization.quantizers import UniformQuantizer
from ..quantization.tensors import ChainStep
from .errors import ArtifactError

_ARRAY = "__ndarray__"
_NUMERIC_KINDS = "biuf"


# -- values -------------------------------------------------------------------------------------
def encode_value(value: Any) -> Any:
    """``value`` (nested lists/tuples/dicts of numbers, strings, None and arrays) as JSON data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)) or isinstance(value, (int, float)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    raise TypeError(f"Cannot save a {type(value).__name__} in a model's client part.")


def decode_value(data: Any) -> Any:
    """The inverse of :func:`encode_value` (tuples come back as lists)."""
    if isinstance(data, dict):
        if _ARRAY in data:
            return _decode_array(data[_ARRAY])
        return {k: decode_value(v) for k, v in data.items()}
    if isinstance(data, list):
        return [decode_value(v) for v in data]
    return data


def _encode_array(array: np.ndarray) -> dict:
    if array.dtype.kind in _NUMERIC_KINDS:
        dtype = array.dtype.str
    elif array.dtype.kind in "OU" and all(isinstance(v, str) for v in array.ravel()):
        dtype = "str" if array.dtype.kind == "U" else "object_str"
    else:
        raise TypeError(f"Cannot save an array of dtype {array.dtype} in a model's client part.")
    return {_ARRAY: {"dtype": dtype, "shape": list(array.shape), "data": array.ravel().tolist()}}


def _decode_array(spec: dict) -> np.ndarray:
    dtype, shape, data = spec["dtype"], tuple(spec["shape"]), spec["data"]
    if dtype == "object_str":
        array = np.empty(len(data), dtype=object)
        array[:] = data
        return array.reshape(shape)
    if dtype == "str":
        return np.asarray(data, dtype=str).reshape(shape)
    if np.dtype(dtype).kind not in _NUMERIC_KINDS:
        raise ArtifactError(f"Unsupported array dtype {dtype!r} in the client part.")
    return np.asarray(data, dtype=np.dtype(dtype)).reshape(shape)


# -- our objects --------------------------------------------------------------------------------
def encode_quantizer(quantizer: UniformQuantizer) -> dict:
    return {"scale": np.asarray(quantizer.scale), "zero_point": np.asarray(quantizer.zero_point),
            "n_bits": quantizer.n_bits, "is_signed": quantizer.is_signed}


def decode_quantizer(data: dict) -> UniformQuantizer:
    return UniformQuantizer(data["scale"], data["zero_point"], data["n_bits"],
                            bool(data["is_signed"]))


def encode_step(step: ChainStep) -> dict:
    return {"op_type": step.op_type, "args": list(step.args), "position": step.position,
            "attributes": step.attributes}


def decode_step(data: dict) -> ChainStep:
    op_type = data["op_type"]
    if op_type not in ONNX_OPS_TO_NUMPY_IMPL:
        raise ArtifactError(f"The client part uses the unknown op {op_type!r}.")
    return ChainStep(op_type, ONNX_OPS_TO_NUMPY_IMPL[op_type], tuple(data["args"]),
                     int(data["position"]), dict(data["attributes"]))


def encode_input_quantization(quantization: InputQuantization) -> dict:
    return {"input_index": quantization.input_index,
            "steps": [encode_step(s) for s in quantization.steps],
            "quantizer": encode_quantizer(quantization.quantizer)}


def decode_input_quantization(data: dict) -> InputQuantization:
    return InputQuantization(int(data["input_index"]),
                             tuple(decode_step(s) for s in data["steps"]),
                             decode_quantizer(data["quantizer"]))


def encode_output_dequantization(dequantization: OutputDequantization) -> dict:
    return {"source": dequantization.source,
            "quantizer": encode_quantizer(dequantization.quantizer),
            "steps": [encode_step(s) for s in dequantization.steps]}


def decode_output_dequantization(data: dict) -> OutputDequantization:
    return OutputDequantization(data["source"], decode_quantizer(data["quantizer"]),
                                tuple(decode_step(s) for s in data["steps"]))


def encode_n_bits(n_bits: NBits) -> dict:
    return dict(vars(n_bits))


def decode_n_bits(data: dict) -> NBits:
    return NBits.parse(data)


def encode_clear_outputs(outputs: ClearOutputs) -> dict:
    return {name: getattr(outputs, name) for name in ClearOutputs.__dataclass_fields__}


def decode_clear_outputs(data: dict) -> ClearOutputs:
    unknown = set(data) - set(ClearOutputs.__dataclass_fields__)
    if unknown:
        raise ArtifactError(f"Unknown fields {sorted(unknown)} in the client part's outputs.")
    return ClearOutputs(**data)


def _input_encoders() -> dict[str, type]:
    """Classes whose instances a client may use to encode inputs (an allow-list)."""
    from ..quantization.thermometer import ThermometerBits

    return {"ThermometerBits": ThermometerBits}


def encode_input_encoder(encoder: Any) -> dict:
    name = type(encoder).__name__
    if _input_encoders().get(name) is not type(encoder):
        raise TypeError(f"Cannot save the input encoder {name}: it is not a known encoder.")
    return {"type": name, "state": encoder.to_dict()}


def decode_input_encoder(data: dict) -> Any:
    encoders = _input_encoders()
    if data["type"] not in encoders:
        raise ArtifactError(f"The client part uses the unknown input encoder {data['type']!r}.")
    return encoders[data["type"]].from_dict(data["state"])


