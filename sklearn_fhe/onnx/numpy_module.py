"""NumpyModule: interprets an ONNX graph in float with the NumPy implementation of each op."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import onnx

from ..errors import InvalidONNXModelError, UnsupportedOpsError
from .graph import attribute_values, graph_input_names, initializer_values, topological_nodes
from .ops import ONNX_OPS_ALL_OUTPUTS_IMPL, ONNX_OPS_TO_NUMPY_IMPL
from .validation import check_inputs_match, check_model

__all__ = ["NumpyModule", "UnsupportedOpsError", "check_supported_ops"]


def check_supported_ops(model: onnx.ModelProto, registry: dict, what: str = "sklearn_fhe") -> None:
    """Raise one error listing every op type of ``model`` missing from ``registry``."""
    unsupported = sorted({node.op_type for node in model.graph.node} - set(registry))
    if unsupported:
        raise UnsupportedOpsError(
            f"The model uses ONNX ops that {what} does not support: {', '.join(unsupported)}. "
            f"Supported ops: {', '.join(sorted(registry))}. Rewrite the model with supported "
            "operations (for example torch.nn layers and elementwise activations)."
        )


class NumpyModule:
    """Run an ONNX model with NumPy, node by node in topological order.

    Parameters
    ----------
    onnx_model : onnx.ModelProto
        The model to interpret. Every op must be in ``ONNX_OPS_TO_NUMPY_IMPL``.

    Attributes
    ----------
    onnx_model : onnx.ModelProto
        The interpreted model.
    input_names, output_names : list of str
        The graph's user inputs and its outputs.
    initializers : dict of str to numpy.ndarray
        The model's trained parameters and constants.
    nodes : list of onnx.NodeProto
        The nodes in execution order.
    """

    def __init__(self, onnx_model: onnx.ModelProto) -> None:
        if not isinstance(onnx_model, onnx.ModelProto):
            raise TypeError(f"Expected an onnx.ModelProto, got {type(onnx_model).__name__}.")
        check_supported_ops(onnx_model, ONNX_OPS_TO_NUMPY_IMPL)  # first: it names every op
        check_model(onnx_model)
        graph = onnx_model.graph
        self.onnx_model = onnx_model
        self.input_names = graph_input_names(graph)
        self.output_names = [out.name for out in graph.output]
        self.initializers = initializer_values(graph)
        self.nodes = topological_nodes(graph)
        self.node_attributes = [attribute_values(node) for node in self.nodes]
        # Ops with optional extra outputs (MaxPool indices, Dropout mask) compute them only when
        # the node declares them.
        self.node_impls = [
            ONNX_OPS_ALL_OUTPUTS_IMPL.get(node.op_type, ONNX_OPS_TO_NUMPY_IMPL[node.op_type])
            if len(node.output) > 1
            else ONNX_OPS_TO_NUMPY_IMPL[node.op_type]
            for node in self.nodes
        ]

    def run_with_intermediates(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph and return every tensor it computes (inputs included), by name."""
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"The model takes {len(self.input_names)} input(s), got {len(inputs)}."
            )
        check_inputs_match(self.onnx_model.graph, self.input_names, inputs)
        values: dict[str, Optional[np.ndarray]] = {"": None, **self.initializers}
        values.update(zip(self.input_names, inputs))
        for node, impl, attributes in zip(self.nodes, self.node_impls, self.node_attributes):
            args = [values[name] for name in node.input]
            try:
                outputs = impl(*args, **attributes)
            except InvalidONNXModelError:
                raise
            except Exception as error:  # a malformed node: wrong arity, attributes, shapes...
                shapes = [None if a is None else np.shape(a) for a in args]
                raise InvalidONNXModelError(
                    f"ONNX node '{node.name or node.op_type}' ({node.op_type}) fails on inputs "
                    f"of shapes {shapes} with attributes {sorted(attributes)}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if not isinstance(outputs, tuple):
                outputs = (outputs,)
            values.update(zip(node.output, outputs))
        return values

    def __call__(self, *inputs: np.ndarray) -> Union[np.ndarray, tuple[np.ndarray, ...]]:
        """Run the model in float; one array per graph output (a tuple if several)."""
        values = self.run_with_intermediates(*inputs)
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs
