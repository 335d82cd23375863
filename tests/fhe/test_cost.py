"""fhe_cost(): PBS counts and bit widths known before compiling, equal to the compiled circuit's;
key bytes from the parameters concrete will choose."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from sklearn_fhe import (
    FHEDecisionTreeClassifier,
    FHELogisticRegression,
    FHENeuralNetClassifier,
    compile_torch_model,
)
from sklearn_fhe.fhe.cost import LookupCount

ESTIMATE_KEYS = {"pbs_per_row", "pbs_per_row_by_bit_width", "max_bit_width", "lookup_bit_width",
                 "estimated_s_per_row", "estimated_s_per_call", "estimated_s_one_row",
                 "estimated_key_bytes", "estimated_keygen_s", "estimated_peak_memory_bytes",
                 "batch_size"}


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[:300].astype(np.float32), y[:300]


def fitted(cancer, kind):
    X, y = cancer
    if kind == "linear":
        return FHELogisticRegression(n_bits=6).fit(X, y)
    if kind == "tree":
        return FHEDecisionTreeClassifier(max_depth=4, n_bits=4, random_state=0).fit(X, y)
    # 8 hidden neurons whose 6-bit accumulators are rounded to 4 bits: rounding PBS are counted
    return FHENeuralNetClassifier(module__hidden_layer_sizes=(8,), module__n_accum_bits=4,
                                  max_epochs=3, random_state=0).fit(X, y)


@pytest.mark.parametrize("kind", ["linear", "tree", "network"])
def test_estimate_before_compiling_matches_the_compiled_circuit(cancer, kind, fhe_configuration):
    model = fitted(cancer, kind)
    before = model.fhe_cost()
    assert set(before) == ESTIMATE_KEYS
    assert model.fhe_circuit is None  # estimating compiled nothing
    assert sum(before["pbs_per_row_by_bit_width"].values()) == before["pbs_per_row"]
    assert before["estimated_s_per_row"] > 0 and before["estimated_key_bytes"] > 0

    model.compile(configuration=fhe_configuration)
    after = model.fhe_cost()
    assert {k: after[k] for k in ESTIMATE_KEYS} == before  # the estimate does not change
    # concrete may fold one step of an accumulator's rounding into the lookup that follows it
    # (seen since Gemm subtracts its zero point before the product): the estimate counts every
    # removed bit, so it may exceed the circuit by one PBS per rounded lookup element, never less
    rounded_elements = 8 if kind == "network" else 0
    assert 0 <= after["pbs_per_row"] - after["compiled_pbs_per_row"] <= rounded_elements
    assert after["max_bit_width"] == after["compiled_max_bit_width"]
    assert after["batch_size"] == after["compiled_batch_size"]
    assert "compiled_key_bytes" not in after and not model.fhe_circuit.module.keys.are_generated
    if kind == "linear":
        assert before["pbs_per_row"] == 0 and before["lookup_bit_width"] == 0
    else:
        assert before["pbs_per_row"] > 0 and before["lookup_bit_width"] >= 2
    if kind == "network":  # one lookup per hidden neuron, plus one PBS per rounded-away bit
        lookup = model.quantized_module_.lookups[0]
        assert lookup.rounded_bits > 0
        assert before["pbs_per_row"] == 8 * (1 + lookup.rounded_bits)


def test_rows_and_batch_size_scale_the_estimate(cancer):
    model = fitted(cancer, "tree")
    assert model.fhe_cost(cancer[0][:3]) == model.fhe_cost()  # element counts need one row
    one, sixteen = model.fhe_cost(batch_size=1), model.fhe_cost(batch_size=16)
    assert one["estimated_s_per_call"] < sixteen["estimated_s_per_call"]
    assert one["estimated_s_per_row"] > sixteen["estimated_s_per_row"]  # the call overhead
    with pytest.raises(ValueError, match="features"):
        model.fhe_cost(cancer[0][:2, :5])


@pytest.mark.execute
def test_quantized_module_needs_inputs_until_compiled(small_digits_mlp, digits, fhe_configuration):
    module = compile_torch_model(small_digits_mlp, digits["x16_train"], n_bits=2,
                                 configuration=fhe_configuration, batch_size=4)
    compiled = module.fhe_cost()  # compiled: the circuit's input shape is known
    assert compiled["pbs_per_row"] == compiled["compiled_pbs_per_row"] == 16
    assert compiled["batch_size"] == 4
    module.keygen()
    assert module.fhe_cost()["compiled_key_bytes"] > 1e6  # the evaluation keys, serialized
    module.fhe_circuit = None
    with pytest.raises(ValueError, match="pass inputset"):
        module.fhe_cost()
    assert module.fhe_cost(digits["x16_test"][:2])["pbs_per_row"] == 16


def test_a_rounded_lookup_costs_one_pbs_per_removed_bit():
    lookup = LookupCount("Relu", input_bits=5, rounded_bits=3, elements_per_row=32)
    assert lookup.pbs_per_row == 32 * 4


@pytest.mark.execute
def test_estimated_key_bytes_are_those_of_the_generated_keys(cancer, fhe_configuration):
    # the parameters concrete chooses follow from the lookups' width, the widest integer, the
    # error probability of each PBS and the noise the circuit's sums add: the proxy compiled
    # for the first three gets the same choice or a neighbouring one
    model = fitted(cancer, "tree")
    estimated = model.fhe_cost()["estimated_key_bytes"]
    model.compile(configuration=fhe_configuration)
    model.quantized_module_.keygen()
    generated = model.fhe_cost()["compiled_key_bytes"]
    assert 0.5 < estimated / generated < 2


def test_a_model_without_lookups_has_no_keys_to_speak_of(cancer):
    cost = fitted(cancer, "linear").fhe_cost()
    assert cost["estimated_key_bytes"] < 1000 and cost["estimated_keygen_s"] == 0
    assert 0 < cost["estimated_peak_memory_bytes"] < 1e9
