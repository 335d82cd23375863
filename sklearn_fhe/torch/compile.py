"""Public entry points: a torch module or an ONNX model → QuantizedModule with its FHE circuit."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import onnx
import torch
from concrete import fhe

from ..errors import BitWidthError
from ..fhe.compile import DEFAULT_BATCH_SIZE
from ..onnx.export import export_torch_to_onnx
from ..onnx.numpy_module import NumpyModule
from ..onnx.validation import check_float_inputs
from ..quantization.n_bits import NBitsLike
from ..quantization.post_training import PostTrainingQuantization
from ..quantization.quantized_module import QuantizedModule

#: Widest table lookup input ``rounding_threshold_bits="auto"`` tries first. Cost grows steeply
#: with it (measured here: a 6-bit lookup 27.5 ms, an 8-bit one needs 32768-coefficient
#: polynomials whose keys take minutes and gigabytes), so wider inputs are rounded to it.
AUTO_ROUNDING_MAX_BITS = 6

RoundingThreshold = Union[int, str, None]


def _is_auto(rounding_threshold_bits: RoundingThreshold) -> bool:
    if isinstance(rounding_threshold_bits, str):
        if rounding_threshold_bits != "auto":
            raise ValueError(
                f"rounding_threshold_bits must be an int, None or 'auto', got "
                f"{rounding_threshold_bits!r}."
            )
        return True
    return False


def check_inputset(inputset) -> np.ndarray:
    """The inputset as a finite float array with at least one row, or a clear error."""
    if isinstance(inputset, torch.Tensor):
        inputset = inputset.detach().cpu().numpy()
    try:
        array = np.asarray(inputset, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"The inputset must be numeric array-like: {error}") from error
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError("The inputset is empty: give at least one representative row.")
    if not np.all(np.isfinite(array)):
        raise ValueError("The inputset contains NaN or infinity.")
    return array


def quantize_onnx_model(
    onnx_model: onnx.ModelProto,
    inputset,
    n_bits: NBitsLike = 8,
    rounding_threshold_bits: Optional[int] = None,
) -> QuantizedModule:
    """ONNX model → NumpyModule → calibration and post-training quantization (no compilation).

    ``rounding_threshold_bits`` is an int or None here: "auto" needs the compiler (see
    ``compile_onnx_model``)."""
    array = check_inputset(inputset)
    numpy_module = NumpyModule(onnx_model)
    check_float_inputs(onnx_model.graph)
    # one float run first: a malformed graph (wrong arity, shapes that do not fit the inputset)
    # fails there with our error naming the node, not deep inside quantization
    numpy_module(array)
    ptq = PostTrainingQuantization(numpy_module, n_bits, rounding_threshold_bits)
    return ptq.quantize(array)


def compile_onnx_model(
    onnx_model: onnx.ModelProto,
    inputset,
    n_bits: NBitsLike = 8,
    rounding_threshold_bits: RoundingThreshold = "auto",
    configuration: Optional[fhe.Configuration] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> QuantizedModule:
    """Quantize an ONNX model on ``inputset`` and compile it to an FHE circuit.

    Parameters
    ----------
    onnx_model : onnx.ModelProto
        A model with one input tensor, batch first.
    inputset : array-like
        Representative inputs: calibration for quantization and bit widths for compilation.
    n_bits : int or dict, default=8
        Bits of inputs, weights and activations (a dict sets them apart: keys ``inputs``,
        ``weights``, ``activations``, ``outputs``).
    rounding_threshold_bits : int, None or "auto", default="auto"
        Round table-lookup inputs to at most this many bits (``fhe.round_bit_pattern``, exact:
        the three fhe modes still agree). "auto" picks the widest that compiles, from
        ``AUTO_ROUNDING_MAX_BITS`` (6) down, and keeps its choice in the returned module's
        ``rounding_threshold_bits``; None rounds nothing; an int is used as given.
    configuration : concrete.fhe.Configuration, optional
        Concrete's configuration.
    batch_size : int, default=16
        Rows of the largest circuit call (the circuit also takes 1, 4... rows).
    p_error, global_p_error : float, optional
        Error probability of each table lookup, or of any lookup in one circuit call
        (concrete's default: ``global_p_error=1e-5``).

    Returns
    -------
    QuantizedModule
        With its circuit in ``fhe_circuit``; run it with ``forward(x, fhe="execute")``.
        ``rounding_threshold_bits`` tells the rounding used (None: no lookup was rounded).

    Raises
    ------
    BitWidthError
        When no rounding makes the circuit compile (e.g. a MaxPool on a wide accumulator, which
        is never rounded), or the explicit ``rounding_threshold_bits`` does not.
    """
    array = check_inputset(inputset)
    errors = (p_error, global_p_error)
    if not _is_auto(rounding_threshold_bits):
        quantized = quantize_onnx_model(onnx_model, array, n_bits, rounding_threshold_bits)
        quantized.compile(array, configuration, batch_size, *errors)
        return quantized
    return _compile_with_auto_rounding(onnx_model, array, n_bits, configuration, batch_size, errors)


def _compile_with_auto_rounding(
    onnx_model: onnx.ModelProto,
    inputset: np.ndarray,
    n_bits: NBitsLike,
    configuration: Optional[fhe.Configuration],
    batch_size: int,
    errors: tuple,
) -> QuantizedModule:
    """Compile with the widest lookup input, at most ``AUTO_ROUNDING_MAX_BITS``, that concrete
    finds parameters for: each failure lowers the threshold by one bit. ``errors`` are the
    ``(p_error, global_p_error)`` of ``QuantizedModule.compile``."""
    # Quantizing errors (unsupported ops, a MaxPool too wide...) are not about rounding: raised.
    quantized = quantize_onnx_model(onnx_model, inputset, n_bits, AUTO_ROUNDING_MAX_BITS)
    widest = max((lookup.input_bits for lookup in quantized.lookups), default=0)
    threshold = min(widest, AUTO_ROUNDING_MAX_BITS)
    while True:
        try:
            quantized.compile(inputset, configuration, batch_size, *errors)
        except BitWidthError as error:
            if threshold <= 1:
                raise BitWidthError(
                    f"No rounding of the table lookup inputs makes this model compile (tried "
                    f"{min(widest, AUTO_ROUNDING_MAX_BITS)} bits down to 1). Lower n_bits. "
                    f"Last failure: {error}"
                ) from error
            threshold -= 1
            quantized = quantize_onnx_model(onnx_model, inputset, n_bits, threshold)
            continue
        rounded = any(lookup.rounded_bits for lookup in quantized.lookups)
        quantized.rounding_threshold_bits = threshold if rounded else None
        return quantized


def compile_torch_model(
    module: torch.nn.Module,
    inputset,
    n_bits: NBitsLike = 8,
    rounding_threshold_bits: RoundingThreshold = "auto",
    configuration: Optional[fhe.Configuration] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> QuantizedModule:
    """Export a torch module to ONNX, quantize it and compile it to an FHE circuit.

    Parameters are those of ``compile_onnx_model``; ``module`` is a ``torch.nn.Module`` whose
    forward takes one tensor, batch first.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_fhe import compile_torch_model
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> x = np.random.default_rng(0).normal(size=(50, 4))
    >>> qm = compile_torch_model(net, x, n_bits=4)
    >>> qm.forward(x[:3], fhe="simulate").shape
    (3, 2)
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            f"compile_torch_model expects a torch.nn.Module, got {type(module).__name__}."
        )
    array = check_inputset(inputset)
    onnx_model = export_torch_to_onnx(module, array[: min(len(array), 8)])
    return compile_onnx_model(
        onnx_model, array, n_bits, rounding_threshold_bits, configuration, batch_size,
        p_error, global_p_error,
    )
