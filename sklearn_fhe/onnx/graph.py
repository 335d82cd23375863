"""Helpers to read ONNX graphs: node attributes, initializers, topological order."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import InvalidONNXModelError


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
    values = {}
    for init in graph.initializer:
        try:
            values[init.name] = numpy_helper.to_array(init)
        except (ValueError, TypeError) as error:  # data shorter than the shape says...
            raise InvalidONNXModelError(
                f"Initializer '{init.name}' cannot be read: {error}"
            ) from error
        value = values[init.name]
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise InvalidONNXModelError(
                f"Initializer '{init.name}' holds NaN or infinite values: retrain or fix the "
                "model, its outputs would be meaningless."
            )
    return values


def graph_input_names(graph: onnx.GraphProto) -> list[str]:
    """Names of the graph inputs that are fed by the user (initializers excluded)."""
    initializers = {init.name for init in graph.initializer}
    return [inp.name for inp in graph.input if inp.name not in initializers]


def topological_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Return the graph's nodes so that every node comes after the producers of its inputs
    (Kahn's algorithm: linear in the size of the graph, whatever its order in the file)."""
    available = set(graph_input_names(graph)) | {init.name for init in graph.initializer} | {""}
    produced = {name for node in graph.node for name in node.output}
    missing = sorted({name for node in graph.node for name in node.input
                      if name not in available and name not in produced})
    if missing:
        raise InvalidONNXModelError(
            f"The ONNX graph reads tensors that are neither inputs, initializers nor node "
            f"outputs: {missing}."
        )
    waiting = [sum(1 for name in set(node.input) if name not in available) for node in graph.node]
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in set(node.input) - available:
            consumers.setdefault(name, []).append(index)
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    ordered: list[onnx.NodeProto] = []
    while ready:
        node = graph.node[ready.popleft()]
        ordered.append(node)
        for name in node.output:
            for index in consumers.pop(name, ()):
                waiting[index] -= 1
                if waiting[index] == 0:
                    ready.append(index)
    if len(ordered) < len(graph.node):
        stuck = sorted({node.name or node.op_type for i, node in enumerate(graph.node)
                        if waiting[i] > 0})
        raise InvalidONNXModelError(
            f"The ONNX graph has a cycle: nodes {stuck[:10]} wait on each other's outputs."
        )
    graph_outputs = {out.name for out in graph.output}
    unproduced = sorted(graph_outputs - produced - available)
    if unproduced:
        raise InvalidONNXModelError(f"No node produces the graph outputs {unproduced}.")
    return ordered
