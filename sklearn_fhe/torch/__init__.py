"""Torch side: compiling users' torch modules."""

from .compile import compile_onnx_model, compile_torch_model, quantize_onnx_model

__all__ = ["compile_onnx_model", "compile_torch_model", "quantize_onnx_model"]
