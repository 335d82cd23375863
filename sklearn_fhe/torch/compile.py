"""Public entry points: a torch module or an ONNX model → QuantizedModule with its FHE circuit."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import onnx
import torch
from concrete import fhe

from ..errors import BitWidthError
from ..fhe.compile import DEFAULT_BATCH_SIZE, FHECompilationError
from ..onnx.export import export_torch_to_onnx
from ..onnx.numpy_module import NumpyModule
from ..onnx.validation import check_float_inputs
from ..quantization.n_bits import NBits, NBitsLike
from ..quantization.post_training import PostTrainingQuantization
from ..quantization.quantized_module import QuantizedModule
from ..quantization.quantizers import bits_for_range

#: Widest table lookup input ``rounding_threshold_bits="auto"`` tries first. Cost grows steeply
#: with it (measured here: a 6-bit lookup 27.5 ms, an 8-bit one needs 32768-coefficient
#: polynomials whose keys take minutes and gigabytes), so wider inputs are rounded to it.
AUTO_ROUNDING_MAX_BITS = 6

RoundingThreshold = Union[int, str, None]

#: The narrowest bit width "auto" gives a role of ``n_bits`` when it narrows them (weights need
#: 2 for a symmetric signed grid).
_AUTO_MIN_BITS = 2


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
        Round table-lookup inputs to at most this many bits (``fhe.round_bit_pattern``,
        exact: the three fhe modes still agree). "auto" quantizes every rounding from
        ``AUTO_ROUNDING_MAX_BITS`` (6) down to 1 bit, at ``n_bits`` and, when ``n_bits`` is
        one int, at each narrower width ``k`` down to 2 (a dict is kept as given), and
        compiles the most accurate on ``inputset`` (error against the float model) that
        concrete finds parameters for: more bits never give a larger error than fewer. The
        returned module's ``rounding_threshold_bits`` and ``n_bits`` tell what was chosen.
        None rounds nothing; an int is used as given, with ``n_bits`` as given.
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
        When no candidate compiles (the error names the widest value, e.g. a layer summing
        too many products, and what to change), when a table lookup cannot be narrowed (e.g.
        a MaxPool on a wide accumulator, never rounded; the error names the node), or when the
        explicit ``rounding_threshold_bits`` does not compile.
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
    """Compile the most accurate candidate that concrete finds parameters for.

    Candidates are every rounding of the lookup inputs from ``AUTO_ROUNDING_MAX_BITS`` down to 1
    bit, at the widths ``n_bits`` asks for and, when ``n_bits`` is one int (a budget), at each
    narrower width ``k`` down to 2 (a dict sets each role: its widths are kept). They are
    quantized (no compilation), ranked by their error against the float model on ``inputset``
    (mean absolute error over the mean absolute float output), and compiled in that order until
    one compiles.

    The narrower widths are where the search must look at high ``n_bits``: the circuit is
    sized for the worst case over the whole input grid (``quantization.bounds``), and that
    grows faster with the widths than the calibration data do, so a lookup input rounded to a
    few bits from a worst case of 18 keeps fewer bits of the data than one rounded from 14,
    and a worst-case accumulator past ~20 bits finds no parameters at all. Since every
    candidate of a narrower ``n_bits`` is also one of a wider, more bits never give a larger
    error on ``inputset`` than fewer. A candidate at least as wide as one that failed (widest
    integer and widest lookup) is skipped: it would fail too. ``errors`` are the
    ``(p_error, global_p_error)`` of ``QuantizedModule.compile``.
    """
    # Quantizing errors (unsupported ops, a MaxPool too wide...) are not about rounding:
    # raised by the first candidate, the widths asked for.
    candidates = _auto_candidates(onnx_model, inputset, n_bits)
    failed: list = []  # (widest integer, widest lookup) of the candidates that did not compile
    last_error: Optional[Exception] = None
    tried = 0
    for candidate in candidates:
        if any(candidate.widest >= widest and candidate.lookup_bits >= lookup
               for widest, lookup in failed):
            continue
        tried += 1
        try:
            candidate.module.compile(inputset, configuration, batch_size, *errors)
        except BitWidthError as error:
            failed.append((candidate.widest, candidate.lookup_bits))
            last_error = error
            continue
        except MemoryError as error:  # over the memory budget: a narrower one may not be
            failed.append((candidate.widest, candidate.lookup_bits))
            last_error = error
            continue
        except FHECompilationError as error:  # concrete failed otherwise: try the next one
            last_error = error
            continue
        except RuntimeError as error:  # concrete itself found no parameters
            if "NoParametersFound" not in str(error):
                raise
            failed.append((candidate.widest, candidate.lookup_bits))
            last_error = error
            continue
        quantized = candidate.module
        rounded = any(lookup.rounded_bits for lookup in quantized.lookups)
        quantized.rounding_threshold_bits = candidate.threshold if rounded else None
        return quantized
    if isinstance(last_error, MemoryError):  # the budget stopped the last: its error says so
        raise last_error
    narrowest = min(candidates, key=lambda c: (c.widest, c.lookup_bits))
    raise BitWidthError(
        f"No rounding of the table lookup inputs (\"auto\": {AUTO_ROUNDING_MAX_BITS} bits down "
        f"to 1) and no narrower int n_bits (down to {_AUTO_MIN_BITS}) makes this model compile "
        f"({tried} tried of {len(candidates)} candidates). The narrowest candidate "
        f"(n_bits={_n_bits_text(narrowest.n_bits)}, rounding {narrowest.threshold}) still "
        f"has {narrowest.widest}-bit integers: {narrowest.widest_value}. Make that layer "
        "narrower (fewer inputs or channels summed into each output), or train it with "
        "bounded accumulators (the QAT layers of sklearn_fhe.torch.qat, acc_max_bits). "
        f"Last failure: {last_error}"
    ) from last_error


class _Candidate:
    """A quantized model "auto" may compile, with what ranks and prunes it."""

    def __init__(self, module: QuantizedModule, n_bits: NBits, threshold: int,
                 error: float, inputset: np.ndarray) -> None:
        self.module, self.n_bits, self.threshold, self.error = module, n_bits, threshold, error
        self.lookup_bits = max((lookup.input_bits for lookup in module.lookups), default=0)
        self.widest, self.widest_value = _widest_value(module, inputset)

    def key(self) -> tuple:
        # most accurate first; ties to the widths asked for, then the cheaper lookup
        return (round(self.error, 9), -self.n_bits.weights - self.n_bits.inputs,
                self.lookup_bits, self.widest)


def _auto_candidates(onnx_model: onnx.ModelProto, inputset: np.ndarray,
                     n_bits: NBitsLike) -> list:
    """The candidates of ``_compile_with_auto_rounding``, most accurate first."""
    asked = NBits.parse(n_bits)
    reference = NumpyModule(onnx_model)(inputset)
    reference = reference[0] if isinstance(reference, tuple) else reference
    scale = float(np.mean(np.abs(reference))) or 1.0
    # one int is a budget ("at most"); a dict sets each role as the user wants it
    caps = range(int(n_bits) - 1, _AUTO_MIN_BITS - 1, -1) if _is_int(n_bits) else ()
    widths = [asked] + [NBits(*(min(bits, cap) for bits in (
        asked.inputs, asked.weights, asked.activations, asked.outputs))) for cap in caps]
    candidates: list = []
    seen: set = set()
    for index, bits in enumerate(widths):
        if bits in seen:
            continue
        seen.add(bits)
        widest_lookup = None
        for threshold in range(AUTO_ROUNDING_MAX_BITS, 0, -1):
            if widest_lookup is not None and threshold >= widest_lookup:
                continue  # rounds nothing: the model of the first threshold
            try:
                module = quantize_onnx_model(onnx_model, inputset, bits, threshold)
            except BitWidthError:
                if index == 0 and threshold == AUTO_ROUNDING_MAX_BITS:
                    raise
                continue
            if widest_lookup is None:
                widest_lookup = max((lookup.input_bits + lookup.rounded_bits
                                     for lookup in module.lookups), default=0)
            output = module.forward(inputset)
            output = output[0] if isinstance(output, tuple) else output
            error = float(np.mean(np.abs(np.asarray(output) - reference))) / scale
            candidates.append(_Candidate(module, bits, threshold, error, inputset))
    candidates.sort(key=_Candidate.key)
    return candidates


def _is_int(n_bits: NBitsLike) -> bool:
    return isinstance(n_bits, (int, np.integer)) and not isinstance(n_bits, bool)


def _widest_value(module: QuantizedModule, inputset: np.ndarray) -> tuple:
    """The circuit's widest integer (bits, as concrete sizes it: calibration widened by the
    worst-case hints) and a phrase naming the step that produces it."""
    values = {"input_0": module.quantize_input(inputset)}
    names = {"input_0": "the quantized input"}
    widest, where = _bits(values["input_0"]), names["input_0"]
    counts: dict = {}
    for step in module.steps:
        result = np.asarray(step.op(*(values[name] for name in step.inputs)))
        values[step.output] = result
        op_type = step.op.op_type
        if op_type == "Bound":  # a hint: the value of its input, over the whole input grid
            names[step.output] = names[step.inputs[0]] + " over the whole input grid"
        else:
            counts[op_type] = counts.get(op_type, 0) + 1
            names[step.output] = f"the result of {op_type} #{counts[op_type]}"
        bits = _bits(result)
        hint = getattr(step.op, "low", None), getattr(step.op, "high", None)
        if op_type == "Bound":
            bits = max(bits, _bits(np.asarray(hint)))
        if bits > widest:
            widest, where = bits, names[step.output]
    return widest, where


def _bits(values: np.ndarray) -> int:
    return bits_for_range(int(np.min(values, initial=0)), int(np.max(values, initial=0)))


def _n_bits_text(bits: NBits) -> str:
    return (f"{{'inputs': {bits.inputs}, 'weights': {bits.weights}, "
            f"'activations': {bits.activations}, 'outputs': {bits.outputs}}}")


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
