"""``fhe_circuit.statistics`` is a property like concrete's ``Circuit.statistics``: concrete's keys
(of one call of the largest batch function) plus ours."""

from __future__ import annotations

import inspect

import pytest
from sklearn.datasets import make_classification

from sklearn_fhe import FHEDecisionTreeClassifier
from sklearn_fhe.fhe.batched_circuit import BatchedCircuit

#: concrete's module-level keys of ``Circuit.statistics`` (its function-level keys are read
#: from concrete below).
CONCRETE_MODULE_KEYS = {
    "size_of_secret_keys", "size_of_bootstrap_keys", "size_of_keyswitch_keys",
    "p_error", "global_p_error", "complexity",
}
OUR_KEYS = {"pbs_per_circuit", "pbs_per_row", "max_bit_width", "batch_size", "batch_sizes"}


@pytest.fixture(scope="module")
def tree(fhe_configuration):
    """A depth-2 tree compiled for 1-, 4- and 16-row calls: it has table lookups."""
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    model = FHEDecisionTreeClassifier(max_depth=2, n_bits=3).fit(X, y)
    return model.compile(X, configuration=fhe_configuration, batch_size=16)


def test_statistics_is_a_property_with_concretes_keys(tree):
    assert isinstance(inspect.getattr_static(BatchedCircuit, "statistics"), property)
    circuit = tree.fhe_circuit
    stats = circuit.statistics  # no call, as with concrete's circuits
    assert isinstance(stats, dict)
    largest = circuit.function(circuit.batch_size)
    assert set(largest.statistics) | CONCRETE_MODULE_KEYS | OUR_KEYS == set(stats)


def test_programmable_bootstrap_count_is_per_call_of_the_largest_batch(tree):
    circuit = tree.fhe_circuit
    stats = circuit.statistics
    assert circuit.batch_sizes == (1, 4, 16) and stats["batch_size"] == 16
    pbs = stats["programmable_bootstrap_count"]
    assert pbs > 0
    assert pbs == circuit.pbs_count() == circuit.function(16).programmable_bootstrap_count
    assert pbs == stats["pbs_per_circuit"] == 16 * stats["pbs_per_row"]
    assert circuit.function(1).programmable_bootstrap_count == stats["pbs_per_row"]
    assert stats["key_switch_count"] == circuit.function(16).key_switch_count


def test_quantized_module_statistics_method_is_the_circuits(tree):
    """``QuantizedModule.statistics()`` (a method, as before) returns the same figures."""
    assert tree.quantized_module_.statistics() == tree.fhe_circuit.statistics
