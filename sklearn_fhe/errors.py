"""Errors raised while quantizing or compiling a model."""


class QuantizationError(ValueError):
    """The model cannot be turned into an integer-only circuit as configured."""


class BitWidthError(QuantizationError):
    """A table lookup would need more bits than TFHE allows."""


class UnsupportedModelError(ValueError):
    """A fitted model (or one of its settings) that sklearn_fhe cannot convert."""


class InvalidONNXModelError(ValueError):
    """An ONNX model that is malformed, or outside what sklearn_fhe can read (its opset, its
    data types, the size of its tensors)."""


class UnsupportedOpsError(InvalidONNXModelError):
    """An ONNX graph holds ops that have no implementation here."""
