"""Compilation of an integer function into a concrete-python circuit, with our own checks."""

from __future__ import annotations

import os
import re
from typing import Callable, Optional

import numpy as np
from concrete import fhe

from ..errors import BitWidthError

#: Rows per circuit call unless the user chooses: the runtime evaluates a batch in parallel.
DEFAULT_BATCH_SIZE = 16


class FHECompilationError(RuntimeError):
    """concrete could not compile the integer circuit, for a reason other than bit widths."""


def default_configuration(**overrides) -> fhe.Configuration:
    """The concrete configuration we compile with.

    ``SKLEARN_FHE_KEY_CACHE`` (a directory), when set, turns on concrete's *insecure* key cache,
    meant for tests and benchmarks only.
    """
    # (compress_input_ciphertexts was measured slower end to end here: 6.5 vs 4.4 ms per row
    # for logistic regression, 1.36 vs 1.30 s for XGBoost; users can still turn it on)
    options: dict = {"show_progress": False}
    cache = os.environ.get("SKLEARN_FHE_KEY_CACHE")
    if cache:
        options.update(use_insecure_key_cache=True, insecure_key_cache_location=cache,
                       enable_unsafe_features=True)
    options.update(overrides)
    return fhe.Configuration(**options)


def circuit_array(values) -> np.ndarray:
    """Integers laid out as concrete reads them: a C-contiguous int64 array.

    concrete reads an input's buffer in C order whatever its strides say, so a Fortran-ordered
    or strided view (what scikit-learn transformers return for mixed-dtype DataFrames, or a
    slice of every other column) would silently give other integers. Every array that crosses
    into concrete (compile inputsets, simulate, encrypt) goes through here.
    """
    return np.ascontiguousarray(values, dtype=np.int64)


def batched_inputset(qinputs: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Cut integer calibration rows into full batches (the last one completed by wrapping)."""
    n_rows = qinputs.shape[0]
    n_batches = max(1, -(-n_rows // batch_size))
    index = np.arange(n_batches * batch_size) % n_rows
    return [circuit_array(qinputs[index[i * batch_size:(i + 1) * batch_size]])
            for i in range(n_batches)]


def compile_integer_function(
    function: Callable[[np.ndarray], np.ndarray],
    qinputs: np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
    configuration: Optional[fhe.Configuration] = None,
    context: str = "",
) -> fhe.Circuit:
    """Compile ``function`` (integers → integers) for encrypted batches of ``batch_size`` rows.

    Concrete's own errors are re-raised as ours, naming the widest integer of the circuit and
    ending with ``context`` (what the caller knows of the circuit, e.g. its widest lookup).
    """
    if qinputs.shape[0] == 0:
        raise ValueError("The compilation set is empty: give at least one row.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")

    def circuit_function(x):
        return function(x)

    compiler = fhe.Compiler(circuit_function, {"x": "encrypted"})
    inputset = batched_inputset(np.asarray(qinputs, dtype=np.int64), int(batch_size))
    configuration = configuration or default_configuration()
    try:
        return compiler.compile(inputset, configuration)
    except Exception as error:  # concrete raises RuntimeError/ValueError with MLIR dumps
        raise _compilation_error(error, compiler, inputset, configuration, context) from error


def _compilation_error(
    error: Exception, compiler, inputset, configuration, context: str = ""
) -> Exception:
    """Our error for a failed concrete compilation: a BitWidthError when a table lookup is too
    wide (which our own checks should have caught first), else an FHECompilationError."""
    text = str(error)
    # concrete marks the faulty nodes of its graph dump with lines of carets then an explanation
    notes = [line.lstrip("^").strip() for line in text.splitlines() if line.startswith("^")]
    said = "; ".join(notes) or (text.splitlines()[0] if text else type(error).__name__)
    try:
        widest = f"{compiler.trace(inputset, configuration).maximum_integer_bit_width()} bits"
    except Exception:  # the failure was in tracing itself
        widest = "an unknown number of bits"
    if re.search(r"bit value is used as an input to a table lookup|NoParametersFound", text):
        return BitWidthError(
            f"Compilation to FHE failed: the circuit's widest integer has {widest}.{context} "
            f"Lower n_bits, or set rounding_threshold_bits to narrow table lookups. "
            f"(concrete: {said})"
        )
    return FHECompilationError(
        f"concrete could not compile the circuit (widest integer: {widest}):{context} {said}"
    )


def run_in_batches(
    run: Callable[[np.ndarray], np.ndarray], qinputs: np.ndarray, batch_size: int
) -> np.ndarray:
    """Apply a fixed-batch circuit ``run`` to any number of rows (the last batch is padded)."""
    n_rows = qinputs.shape[0]
    outputs = []
    for start in range(0, n_rows, batch_size):
        chunk = qinputs[start:start + batch_size]
        n_real = chunk.shape[0]
        if n_real < batch_size:  # pad with copies of the first row: valid, in-range values
            pad = np.repeat(chunk[:1], batch_size - n_real, axis=0)
            chunk = np.concatenate([chunk, pad], axis=0)
        result = run(circuit_array(chunk))
        outputs.append(result[:n_real] if not isinstance(result, tuple) else
                       tuple(r[:n_real] for r in result))
    if isinstance(outputs[0], tuple):
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs))
    return np.concatenate(outputs, axis=0)


def circuit_statistics(circuit: fhe.Circuit, batch_size: int) -> dict:
    """PBS count (per circuit and per row) and maximum bit width of a compiled circuit."""
    pbs = int(circuit.statistics.get("programmable_bootstrap_count", 0))
    return {
        "pbs_per_circuit": pbs,
        "pbs_per_row": pbs / batch_size,
        "max_bit_width": int(circuit.graph.maximum_integer_bit_width()),
        "batch_size": batch_size,
    }
