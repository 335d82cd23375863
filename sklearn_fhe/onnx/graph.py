"""Helpers to read ONNX graphs: node attributes, initializers, topological order."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


def attribute_values(node: onnx.NodeProto) -> dict[str, Any]:
    """Return the attributes of ``node`` as Python values (tensors become numpy arrays)."""
    values: dict[str, Any] = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        values[attribute.name] = value
    has_split_input = len(node.input) > 1 and bool(node.input[1])
    if node.op_type == "Split" and "split" not in values and not has_split_input:
        # Before opset 18 an equal Split infers its part count from the node's outputs; opset 18
        # states it as the ``num_outputs`` attribute, which the NumPy implementation reads.
        values.setdefault("num_outputs", len(node.output))
    return values


def initializer_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Return the graph's initializers (trained parameters and constants) by name."""
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def graph_input_names(graph: onnx.GraphProto) -> list[str]:
    """Names of the graph inputs that are fed by the user (initializers excluded)."""
    initializers = {init.name for init in graph.initializer}
    return [inp.name for inp in graph.input if inp.name not in initializers]


def topological_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Return the graph's nodes so that every node comes after the producers of its inputs."""
    available = set(graph_input_names(graph)) | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            missing = sorted({n for node in pending for n in node.input if n not in available})
            raise ValueError(f"The ONNX graph has inputs no node produces: {missing}.")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [node for node in pending if node not in ready]
    return ordered
