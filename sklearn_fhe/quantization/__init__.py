"""Quantization: quantizers, calibration, post-training quantization, the integer module."""

from ..errors import BitWidthError, QuantizationError
from .n_bits import NBits
from .post_training import PostTrainingQuantization
from .quantized_module import QuantizedModule
from .quantized_ops import ONNX_OPS_TO_QUANTIZED_IMPL
from .quantizers import QuantizedArray, UniformQuantizer

__all__ = [
    "BitWidthError",
    "NBits",
    "ONNX_OPS_TO_QUANTIZED_IMPL",
    "PostTrainingQuantization",
    "QuantizationError",
    "QuantizedArray",
    "QuantizedModule",
    "UniformQuantizer",
]
