"""The promises every generated model must keep, as reusable checks."""

from __future__ import annotations

import numpy as np
from concrete.fhe.dtypes import Integer

from sklearn_fhe.errors import QuantizationError, UnsupportedModelError
from sklearn_fhe.fhe.arrays import circuit_array
from sklearn_fhe.quantization.quantized_module import QuantizedModule

#: What fit may raise on valid data: scikit-learn's type for bad input and ours for a model
#: that cannot be quantized as configured (both ValueErrors with a message saying why).
ALLOWED_FIT_ERRORS = (QuantizationError, UnsupportedModelError)

#: Rows checked in encrypted execution (``execute`` profile): one padded batch.
EXECUTE_ROWS = 2


def _checked_nodes(graph) -> set:
    """The values whose every bit counts: circuit outputs (decrypted with their sign) and the
    inputs of table lookups (they index the table). Leveled intermediates share their chain's
    modular encoding: a wrap there is undone by the time the output is read."""
    checked = set(graph.ordered_outputs())
    for node in graph.graph.nodes:
        if node.converted_to_table_lookup:
            checked.update(graph.ordered_preds_of(node))
    return checked


def overflows(module: QuantizedModule, q: np.ndarray) -> list[str]:
    """The circuit outputs and lookup inputs (of each batch shape) that integer inputs ``q``
    push outside the bit width and sign concrete gave them: a wrong encrypted result."""
    circuit = module.fhe_circuit
    found = []
    for size in circuit.batch_sizes:
        graph = circuit.function(size).graph
        checked = _checked_nodes(graph)
        for start in range(0, len(q), size):
            chunk = q[start:start + size]
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk), axis=0)])
            for node, value in graph.evaluate(circuit_array(chunk)).items():
                dtype = node.output.dtype
                if node not in checked or not (node.output.is_encrypted
                                                and isinstance(dtype, Integer)):
                    continue
                low, high = int(np.min(value)), int(np.max(value))
                if low < dtype.min() or high > dtype.max():
                    found.append(f"batch_{size}: {node.label()} in [{low}, {high}] overflows "
                                 f"{dtype}")
    return found


def check_modes_agree(predict, X: np.ndarray, execute: bool) -> np.ndarray:
    """``predict(X, fhe=mode)``: simulate gives exactly the clear integer model's result (and
    execute, on a few rows, when asked). Returns the clear result."""
    clear = predict(X, fhe="disable")
    np.testing.assert_array_equal(predict(X, fhe="simulate"), clear)
    if execute:
        rows = X[:EXECUTE_ROWS]
        np.testing.assert_array_equal(predict(rows, fhe="execute"), predict(rows, fhe="disable"))
    return clear


def check_extreme_inputs(module: QuantizedModule, encoded: np.ndarray, outputs) -> None:
    """Inputs far outside calibration: integers on the input grid, no overflow in the
    circuit (outputs and lookup inputs are sized for the whole grid, see
    sklearn_fhe.quantization.bounds), finite outputs."""
    quantizer = module.input_quantizations[0].quantizer
    q = module.quantize_input(encoded)
    assert np.issubdtype(q.dtype, np.integer), q.dtype
    assert q.min() >= quantizer.qmin and q.max() <= quantizer.qmax, (q.min(), q.max())
    assert overflows(module, q) == []
    for output in outputs if isinstance(outputs, tuple) else (outputs,):  # no NaN, no inf
        assert np.all(np.isfinite(np.asarray(output, dtype=np.float64))), output
