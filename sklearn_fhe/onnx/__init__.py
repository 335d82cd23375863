"""ONNX layer: export torch modules and interpret ONNX graphs with NumPy."""

from .export import OPSET_VERSION, export_torch_to_onnx
from .numpy_module import NumpyModule
from .ops import ONNX_OPS_TO_NUMPY_IMPL

__all__ = ["OPSET_VERSION", "export_torch_to_onnx", "NumpyModule", "ONNX_OPS_TO_NUMPY_IMPL"]
