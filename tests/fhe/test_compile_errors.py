"""Compilation failures become our errors, named after their cause."""

from __future__ import annotations

import re

import numpy as np
import pytest
from concrete import fhe

from sklearn_fhe.errors import BitWidthError
from sklearn_fhe.fhe.compile import FHECompilationError, batched_inputset, compile_integer_function


def test_concrete_failure_other_than_bit_width(fhe_configuration) -> None:
    """A function concrete cannot compile for another reason is not blamed on n_bits."""
    with pytest.raises(FHECompilationError, match="np.sort' is not supported"):
        compile_integer_function(
            lambda x: np.sort(x, axis=1), np.arange(8).reshape(4, 2), 2, fhe_configuration
        )


def test_too_wide_lookup_reaching_concrete_is_a_bit_width_error(fhe_configuration) -> None:
    """Should a lookup wider than 16 bits slip past our checks, concrete's refusal is reported
    as a BitWidthError naming the width and the knobs."""
    def function(x):
        return fhe.univariate(lambda v: v // 3)(x * 1000)

    with pytest.raises(BitWidthError, match="widest integer has 17 bits.*rounding_threshold_bits"):
        compile_integer_function(function, np.arange(100).reshape(50, 2), 2, fhe_configuration)


def test_compilation_errors_name_the_widest_lookup(fhe_configuration) -> None:
    """A QuantizedModule tells concrete's failures which of its lookups is the widest."""
    import torch
    from torch import nn

    from sklearn_fhe import compile_torch_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    quantized = compile_torch_model(model, x, n_bits=4, rounding_threshold_bits=3,
                                    configuration=fhe_configuration)
    sentence = quantized._widest_lookup()
    assert re.search(r"widest table lookup computes Relu on the Gemm result \(3 bits, after "
                     r"rounding away \d+; 1 in the circuit\)", sentence), sentence
    with pytest.raises(BitWidthError, match="widest integer has 17 bits. Its widest lookup"):
        compile_integer_function(
            lambda v: fhe.univariate(lambda w: w // 3)(v * 1000), np.arange(100).reshape(50, 2),
            2, fhe_configuration, context=" Its widest lookup is X.",
        )


@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_bad_batch_size(batch_size) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        compile_integer_function(lambda x: x, np.arange(4).reshape(4, 1), batch_size)


def test_batched_inputset_wraps_the_last_batch() -> None:
    batches = batched_inputset(np.arange(5).reshape(5, 1), 2)
    assert [b.ravel().tolist() for b in batches] == [[0, 1], [2, 3], [4, 0]]
