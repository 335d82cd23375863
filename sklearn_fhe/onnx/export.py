"""Export of torch modules to ONNX with a pinned opset."""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import onnx
import torch

#: The opset every exported model uses; the NumPy and quantized registries follow its semantics.
OPSET_VERSION = 14

#: torch's ONNX exporter keeps its state in globals: two exports at once in one process fail
#: ("GLOBALS.in_onnx_export must be True"), so they take turns.
_EXPORT_LOCK = threading.Lock()


def export_torch_to_onnx(module: torch.nn.Module, example_input: np.ndarray) -> onnx.ModelProto:
    """Export ``module`` to an ONNX model whose first axis (the batch) is dynamic.

    Parameters
    ----------
    module : torch.nn.Module
        The float model. It is put in eval mode for the export.
    example_input : numpy.ndarray
        A representative input (a few rows suffice) used to trace the module.

    Returns
    -------
    onnx.ModelProto
        The exported model, with one input named ``input_0``.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, got {type(module).__name__}.")
    example = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    module = module.eval()
    buffer = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and about tracing; neither is
        # actionable for our users.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=["input_0"],
            output_names=["output_0"],
            dynamic_axes={"input_0": {0: "batch"}, "output_0": {0: "batch"}},
            opset_version=OPSET_VERSION,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model
