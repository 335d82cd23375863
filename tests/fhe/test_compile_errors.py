"""Compilation failures become our errors, named after their cause."""

from __future__ import annotations

import numpy as np
import pytest

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
    from concrete import fhe

    def function(x):
        return fhe.univariate(lambda v: v // 3)(x * 1000)

    with pytest.raises(BitWidthError, match="widest integer has 17 bits.*rounding_threshold_bits"):
        compile_integer_function(function, np.arange(100).reshape(50, 2), 2, fhe_configuration)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_bad_batch_size(batch_size) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        compile_integer_function(lambda x: x, np.arange(4).reshape(4, 1), batch_size)


def test_batched_inputset_wraps_the_last_batch() -> None:
    batches = batched_inputset(np.arange(5).reshape(5, 1), 2)
    assert [b.ravel().tolist() for b in batches] == [[0, 1], [2, 3], [4, 0]]
