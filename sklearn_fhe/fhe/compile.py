"""Compilation of an integer function into a concrete module, with our own checks and errors.

The function is compiled once per batch shape (see ``batch_plan``) into one concrete module
whose functions share one key set. Compilation runs under a process-wide lock (concrete's
compiler is not safe to run from several threads at once), and concrete's debug artifacts never
go to the user's working directory.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from concrete import fhe
from concrete.fhe.compilation.artifacts import ModuleDebugArtifacts

from .. import progress
from ..errors import BitWidthError
from .arrays import circuit_array
from .batch_plan import batch_sizes_for
from .batched_circuit import BatchedCircuit, function_name

#: Rows per circuit call (largest batch shape) unless the user chooses.
DEFAULT_BATCH_SIZE = 16

#: concrete's compiler shares state between compilations: one at a time per process.
_COMPILE_LOCK = threading.Lock()
_ARTIFACT_DIRECTORIES = itertools.count()


class FHECompilationError(RuntimeError):
    """concrete could not compile the integer circuit, for a reason other than bit widths."""


def default_configuration(**overrides) -> fhe.Configuration:
    """The concrete configuration we compile with.

    Input ciphertexts and evaluation keys are compressed (seeded): a row's upload shrinks from
    ~10 KB to ~33 bytes per encrypted value, evaluation keys by about half. Table lookups keep
    concrete's default error probability (``global_p_error=1e-5`` per circuit call; see
    ``compile``'s ``p_error`` / ``global_p_error``). No debug artifacts are written on failures.
    ``SKLEARN_FHE_KEY_CACHE`` (a directory), when set, turns on concrete's *insecure* key cache,
    meant for tests and benchmarks only.
    """
    options: dict = {
        "show_progress": False,
        "compress_input_ciphertexts": True,
        "compress_evaluation_keys": True,
        "dump_artifacts_on_unexpected_failures": False,
    }
    cache = os.environ.get("SKLEARN_FHE_KEY_CACHE")
    if cache:
        options.update(use_insecure_key_cache=True, insecure_key_cache_location=cache,
                       enable_unsafe_features=True)
    options.update(overrides)
    return fhe.Configuration(**options)


def with_error_probability(
    configuration: fhe.Configuration,
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> fhe.Configuration:
    """``configuration`` with the table lookups' error probability set, when given.

    ``p_error`` bounds each lookup's probability of an off-by-one-step result; ``global_p_error``
    bounds the probability that any lookup of a circuit call is off. Giving one unsets the other
    (concrete optimizes for the one that is set).
    """
    for name, value in (("p_error", p_error), ("global_p_error", global_p_error)):
        if value is not None and not (isinstance(value, (float, int)) and 0 < value < 1):
            raise ValueError(f"{name} must be a probability in (0, 1), got {value!r}.")
    if p_error is not None and global_p_error is not None:
        raise ValueError("Give p_error or global_p_error, not both.")
    if p_error is not None:
        return configuration.fork(p_error=float(p_error), global_p_error=None)
    if global_p_error is not None:
        return configuration.fork(global_p_error=float(global_p_error), p_error=None)
    return configuration


def batched_inputset(qinputs: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Cut integer calibration rows into full batches (the last one completed by wrapping)."""
    n_rows = qinputs.shape[0]
    n_batches = max(1, -(-n_rows // batch_size))
    index = np.arange(n_batches * batch_size) % n_rows
    return [circuit_array(qinputs[index[i * batch_size:(i + 1) * batch_size]])
            for i in range(n_batches)]


def module_compiler(function: Callable, batch_sizes: tuple[int, ...]):
    """A concrete module compiler with one function ``batch_<size>`` per batch size, each
    computing ``function`` on its encrypted argument ``x``; none feeds another."""
    members = {"composition": fhe.NotComposable()}
    for size in batch_sizes:
        def batch_function(x):
            return function(x)

        batch_function.__name__ = batch_function.__qualname__ = function_name(size)
        members[function_name(size)] = fhe.function({"x": "encrypted"})(batch_function)
    return fhe.module()(type("BatchedModule", (), members))


def compile_integer_function(
    function: Callable[[np.ndarray], np.ndarray],
    qinputs: np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
    configuration: Optional[fhe.Configuration] = None,
    context: str = "",
    p_error: Optional[float] = None,
    global_p_error: Optional[float] = None,
) -> BatchedCircuit:
    """Compile ``function`` (integers → integers) for encrypted batches of up to ``batch_size``
    rows (several shapes, one key set).

    Concrete's own errors are re-raised as ours, naming the widest integer of the circuit and
    ending with ``context`` (what the caller knows of the circuit, e.g. its widest lookup).
    """
    if qinputs.shape[0] == 0:
        raise ValueError("The compilation set is empty: give at least one row.")
    sizes = batch_sizes_for(batch_size if not isinstance(batch_size, np.integer)
                            else int(batch_size))
    qinputs = circuit_array(qinputs)
    inputsets = {function_name(size): batched_inputset(qinputs, size) for size in sizes}
    configuration = with_error_probability(
        configuration or default_configuration(), p_error, global_p_error
    )
    compiler = module_compiler(function, sizes)
    artifacts = ModuleDebugArtifacts(output_directory=_artifact_directory())
    with _COMPILE_LOCK, progress.activity("compiling"):
        try:
            module = compiler.compile(inputsets, configuration, module_artifacts=artifacts)
        except Exception as error:  # concrete raises RuntimeError/ValueError with MLIR dumps
            largest = inputsets[function_name(sizes[-1])]
            raise _compilation_error(error, function, largest, configuration, context) from error
    return BatchedCircuit(module, sizes)


def _artifact_directory() -> Path:
    """Where concrete may dump debug artifacts (only if the user's configuration asks): a fresh
    path in the temporary directory, never the working directory, never shared."""
    name = f"sklearn_fhe_artifacts_{os.getpid()}_{next(_ARTIFACT_DIRECTORIES)}"
    return Path(tempfile.gettempdir()) / name


def _compilation_error(
    error: Exception, function, inputset, configuration, context: str = ""
) -> Exception:
    """Our error for a failed concrete compilation: a BitWidthError when a table lookup is too
    wide (which our own checks should have caught first), else an FHECompilationError."""
    text = str(error)
    # concrete marks the faulty nodes of its graph dump with lines of carets then an explanation
    notes = [line.lstrip("^").strip() for line in text.splitlines() if line.startswith("^")]
    said = "; ".join(notes) or (text.splitlines()[0] if text else type(error).__name__)
    try:
        graph = fhe.Compiler(lambda x: function(x), {"x": "encrypted"}).trace(
            inputset, configuration)
        widest = f"{graph.maximum_integer_bit_width()} bits"
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
