"""Properties of compile_torch_model on generated MLPs (architecture, weights, data, n_bits)."""

from __future__ import annotations

import torch
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from torch import nn

from sklearn_fhe import compile_torch_model
from sklearn_fhe.errors import BitWidthError
from sklearn_fhe.fhe.cost import FHEMemoryBudgetError
from tests.properties.invariants import check_extreme_inputs, check_modes_agree
from tests.properties.profiles import checks_execute, examples
from tests.properties.strategies import datasets, extreme_rows

ACTIVATIONS = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh,
               "LeakyReLU": nn.LeakyReLU, "Hardswish": nn.Hardswish}


@st.composite
def mlps(draw, n_inputs: int) -> nn.Module:
    """An MLP of 1-3 hidden layers of 1-8 units, one activation, weights of any scale."""
    widths = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3), label="hidden widths")
    activation = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)), label="activation")]
    weight_scale = 10.0 ** draw(st.integers(-3, 3), label="weight scale exponent")
    torch.manual_seed(draw(st.integers(0, 2**16), label="torch seed"))
    layers, width = [], n_inputs
    for hidden in widths:
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, draw(st.integers(1, 3), label="outputs")))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(weight_scale)
    return model.eval()


@settings(max_examples=examples(8))
@given(n_bits=st.integers(2, 8), rounding=st.one_of(st.none(), st.integers(2, 6)),
       data=st.data())
def test_compiled_mlps(n_bits, rounding, data) -> None:
    dataset = data.draw(datasets("regression"), label="data set")
    model = data.draw(mlps(dataset.X.shape[1]), label="mlp")
    note(repr(model))
    try:
        module = compile_torch_model(model, dataset.X, n_bits=n_bits,
                                     rounding_threshold_bits=rounding)
    except BitWidthError as error:  # a lookup wider than TFHE allows: our error, and its fix
        assert "rounding_threshold_bits" in str(error) or "n_bits" in str(error)
        assume(False)
    except FHEMemoryBudgetError as error:  # keys too large for this machine: refused, with fixes
        assert "n_bits" in str(error) and "memory_budget" in str(error)
        assume(False)
    check_modes_agree(lambda X, fhe: module.forward(X, fhe=fhe), dataset.X, checks_execute())
    extreme = extreme_rows(dataset.X)
    check_extreme_inputs(module, extreme, module.forward(extreme))
    check_modes_agree(lambda X, fhe: module.forward(X, fhe=fhe), extreme, False)
