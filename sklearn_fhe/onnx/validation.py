"""Checks on an ONNX model before it is interpreted: anything read from a file may be hostile.

A malformed or adversarial model (missing tensors, cycles, an opset or data type we do not
implement, external data, shapes that would exhaust memory) gets an ``InvalidONNXModelError``
naming what is wrong, before any tensor is built.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import InvalidONNXModelError

#: Oldest default-domain opset (ops whose signature changed read both forms, e.g. Clip's
#: bounds as attributes before opset 11 and as inputs after).
MIN_OPSET = 1

#: Largest tensor an op of the interpreted graph may build (float64: 2 GiB); more is an attack
#: or a mistake, never an FHE model.
MAX_TENSOR_ELEMENTS = 2**28

#: Data types of the tensors we read (inputs, initializers, constants).
SUPPORTED_DTYPES = {
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BOOL,
    TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
}

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _dtype_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"unknown ({elem_type})"


def check_opset(model: onnx.ModelProto) -> None:
    """The default-domain opset must be one we implement; no node may use another domain."""
    versions = {o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS}
    newest = onnx.defs.onnx_opset_version()
    if len(versions) != 1:
        raise InvalidONNXModelError(
            f"The model imports the default ONNX opset {len(versions)} times; it must import "
            f"it once (opset {MIN_OPSET} to {newest})."
        )
    version = versions.pop()
    if not MIN_OPSET <= version <= newest:
        raise InvalidONNXModelError(
            f"The model uses ONNX opset {version}; sklearn_fhe reads opsets {MIN_OPSET} to "
            f"{newest}. Convert it with onnx.version_converter.convert_version(model, 14)."
        )
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node
                      if n.domain not in _DEFAULT_DOMAINS})
    if foreign:
        raise InvalidONNXModelError(
            f"The model uses ops outside the default ONNX domain: {', '.join(foreign)}. "
            "sklearn_fhe implements standard ONNX ops only."
        )


def check_tensor(tensor: onnx.TensorProto, what: str) -> None:
    """A tensor stored in the model: a supported type, its data inside the model and as large
    as its shape says."""
    name = f"{what} '{tensor.name}'"
    if tensor.data_type not in SUPPORTED_DTYPES:
        raise InvalidONNXModelError(
            f"{name} has data type {_dtype_name(tensor.data_type)}; sklearn_fhe reads "
            f"{', '.join(sorted(_dtype_name(t) for t in SUPPORTED_DTYPES))}."
        )
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise InvalidONNXModelError(
            f"{name} keeps its data in an external file; load the model with its data first "
            "(onnx.load(path, load_external_data=True))."
        )
    if any(d < 0 for d in tensor.dims):
        raise InvalidONNXModelError(f"{name} has a negative dimension: {list(tensor.dims)}.")
    size = int(np.prod(tensor.dims, dtype=object))
    if size > MAX_TENSOR_ELEMENTS:
        raise InvalidONNXModelError(
            f"{name} has {size} elements (shape {list(tensor.dims)}), more than the "
            f"{MAX_TENSOR_ELEMENTS} sklearn_fhe accepts."
        )


def check_graph_tensors(graph: onnx.GraphProto) -> None:
    """Initializers, the tensors of Constant nodes and the declared inputs."""
    for tensor in graph.initializer:
        check_tensor(tensor, "Initializer")
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                check_tensor(attribute.t, f"The tensor of node '{node.name or node.op_type}'")
            elif attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise InvalidONNXModelError(
                    f"Node '{node.name or node.op_type}' ({node.op_type}) holds a subgraph; "
                    "sklearn_fhe reads graphs without control flow."
                )
    if not graph.output:
        raise InvalidONNXModelError("The model's graph has no output.")


def check_float_inputs(graph: onnx.GraphProto) -> None:
    """The user inputs of a model to encrypt are float tensors (quantized on the client)."""
    initializers = {tensor.name for tensor in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise InvalidONNXModelError(f"Model input '{value.name}' is not a tensor.")
        elem_type = value.type.tensor_type.elem_type
        if elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            raise InvalidONNXModelError(
                f"Model input '{value.name}' has data type {_dtype_name(elem_type)}; an "
                "encrypted input must be a float tensor (FLOAT, DOUBLE or FLOAT16)."
            )


def check_model(model: onnx.ModelProto) -> None:
    """Raise an ``InvalidONNXModelError`` unless ``model`` is an ONNX model we can read."""
    check_opset(model)
    check_graph_tensors(model.graph)


def check_allocation(shape: Sequence[int], op_type: str) -> tuple:
    """``shape`` as a tuple of ints, if a tensor of that shape is one we may build."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidONNXModelError(f"{op_type} asks for a negative dimension: {dims}.")
    size = int(np.prod(dims, dtype=object))
    if size > MAX_TENSOR_ELEMENTS:
        raise InvalidONNXModelError(
            f"{op_type} would build a tensor of {size} elements (shape {dims}), more than the "
            f"{MAX_TENSOR_ELEMENTS} sklearn_fhe accepts."
        )
    return dims


def check_inputs_match(graph: onnx.GraphProto, names: Sequence[str], inputs) -> None:
    """Each input array has the rank and the fixed dimensions its graph input declares."""
    declared = {value.name: value for value in graph.input}
    for name, array in zip(names, inputs):
        dims = declared[name].type.tensor_type.shape.dim
        if not declared[name].type.tensor_type.HasField("shape"):
            continue
        shape = np.shape(array)
        expected = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        if len(shape) != len(dims) or any(
            isinstance(e, int) and e != s for e, s in zip(expected[1:], shape[1:])
        ):
            raise InvalidONNXModelError(
                f"Model input '{name}' has shape ({', '.join(map(str, expected))}) but the "
                f"data has shape {shape}."
            )
