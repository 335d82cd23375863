"""sklearn_fhe: scikit-learn estimators that predict on encrypted data with TFHE."""

from .torch.compile import compile_onnx_model, compile_torch_model

__version__ = "0.1.0"

__all__ = ["compile_onnx_model", "compile_torch_model"]
