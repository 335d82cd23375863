"""disable == simulate == execute, exactly, for an MLP and a CNN; modes and circuit statistics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sklearn_fhe import compile_torch_model
from sklearn_fhe.fhe.modes import FheMode
from tests.conftest import float_output

BATCH_SIZE = 4


@pytest.fixture(scope="module")
def compiled_mlp(small_digits_mlp, digits, fhe_configuration):
    """The 2-hidden-layer MLP, 2 bits, no rounding, 4 rows per circuit call."""
    return compile_torch_model(
        small_digits_mlp, digits["x16_train"], n_bits=2, configuration=fhe_configuration,
        batch_size=BATCH_SIZE,
    )


@pytest.fixture(scope="module")
def compiled_cnn(digits_cnn, digits, fhe_configuration):
    """Conv → ReLU → AvgPool → Flatten → Linear, 4 rows per call. Binary pixels, 3-bit weights
    (2-bit symmetric weights are ternary: too coarse for a 3x3 kernel), 2-bit activations: the
    lookups read 5-bit integers, cheap enough for encrypted execution in a test."""
    return compile_torch_model(
        digits_cnn, digits["images_train"], n_bits={"inputs": 1, "weights": 3, "activations": 2}, configuration=fhe_configuration,
        batch_size=BATCH_SIZE,
    )


@pytest.fixture(params=["mlp", "cnn"])
def case(request, digits, small_digits_mlp, digits_cnn):
    """(float model, quantized module, test inputs, test labels) for each architecture."""
    if request.param == "mlp":
        model, x = small_digits_mlp, digits["x16_test"]
    else:
        model, x = digits_cnn, digits["images_test"]
    compiled = request.getfixturevalue(f"compiled_{request.param}")
    return model, compiled, x, digits["y_test"]


def test_simulate_equals_disable_on_the_test_set(case) -> None:
    """The simulated circuit computes the very integers of the clear integer model, on all 597
    test rows (150 circuit calls, the last one padded); the model is a real classifier."""
    model, compiled, x, y = case
    clear = compiled.forward(x, fhe="disable")
    simulated = compiled.forward(x, fhe="simulate")
    assert np.array_equal(simulated, clear)
    # a real, if coarse, classifier (chance is 0.1): about 0.3 (MLP) and 0.4 (CNN) here
    assert len(np.unique(clear.argmax(1))) >= 5
    assert (clear.argmax(1) == y).mean() > 0.2
    assert (float_output(model, x).argmax(1) == y).mean() > 0.6


@pytest.mark.execute
def test_execute_equals_simulate_equals_disable(case) -> None:
    """Encrypt, run on ciphertexts, decrypt: the same outputs exactly, on one batch of rows."""
    _, compiled, x, _ = case
    rows = x[:BATCH_SIZE]
    executed = compiled.forward(rows, fhe="execute")
    assert np.array_equal(executed, compiled.forward(rows, fhe="simulate"))
    assert np.array_equal(executed, compiled.forward(rows, fhe="disable"))


def test_fewer_rows_than_a_batch_are_padded(compiled_mlp, digits) -> None:
    """A single row goes through a 4-row circuit (padded) and gives its own result."""
    x = digits["x16_test"]
    np.testing.assert_array_equal(
        compiled_mlp.forward(x[3:4], fhe="simulate"), compiled_mlp.forward(x[:5])[3:4]
    )


def test_statistics_pbs_count_is_hidden_neurons_times_batch(compiled_mlp, compiled_cnn) -> None:
    """Without rounding, one programmable bootstrap per hidden neuron and row: the MLP has
    8 + 8 ReLUs, the CNN 2x3x3 ReLUs; AvgPool and the linear layers are leveled (free)."""
    stats = compiled_mlp.statistics()
    assert stats["pbs_per_circuit"] == (8 + 8) * BATCH_SIZE
    assert stats["pbs_per_row"] == 16
    assert stats["batch_size"] == BATCH_SIZE
    assert [lookup.ops for lookup in compiled_mlp.lookups] == ["Relu", "Relu"]
    assert stats["max_bit_width"] == max(lookup.input_bits for lookup in compiled_mlp.lookups)
    assert compiled_cnn.statistics()["pbs_per_circuit"] == 2 * 3 * 3 * BATCH_SIZE


def test_pickle_drops_the_circuit_and_keeps_results(compiled_mlp, digits) -> None:
    """A pickled QuantizedModule loads without its circuit (recompile on demand) and gives the
    same clear results; simulate then asks for compile()."""
    x = digits["x16_test"]
    loaded = pickle.loads(pickle.dumps(compiled_mlp))
    assert loaded.fhe_circuit is None
    assert compiled_mlp.fhe_circuit is not None  # the original keeps its circuit
    np.testing.assert_array_equal(loaded.forward(x), compiled_mlp.forward(x))
    with pytest.raises(RuntimeError, match="not compiled: call compile"):
        loaded.forward(x, fhe="simulate")


@pytest.mark.parametrize(
    "value, mode",
    [
        (False, FheMode.DISABLE), (None, FheMode.DISABLE), ("disable", FheMode.DISABLE),
        ("SIMULATE", FheMode.SIMULATE), (True, FheMode.EXECUTE), ("execute", FheMode.EXECUTE),
        (FheMode.SIMULATE, FheMode.SIMULATE),
    ],
)
def test_fhe_mode_parse(value, mode) -> None:
    assert FheMode.parse(value) is mode


@pytest.mark.parametrize("value", ["encrypt", "fhe", 1, 0, "", "clear"])
def test_unknown_fhe_mode_raises(value, compiled_mlp, digits) -> None:
    """Anything else is a ValueError that lists the valid modes, before any computation."""
    with pytest.raises(ValueError, match="not a valid mode.*'simulate'"):
        compiled_mlp.forward(digits["x16_test"][:2], fhe=value)
