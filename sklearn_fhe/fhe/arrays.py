"""The memory layout of every array that crosses into concrete."""

from __future__ import annotations

import numpy as np


def circuit_array(values) -> np.ndarray:
    """Integers laid out as concrete reads them: a C-contiguous int64 array.

    concrete reads an input's buffer in C order whatever its strides say, so a Fortran-ordered
    or strided view (what scikit-learn transformers return for mixed-dtype DataFrames, or a
    slice of every other column) would silently give other integers. Every array that crosses
    into concrete (compile inputsets, simulate, encrypt) goes through here.
    """
    return np.ascontiguousarray(values, dtype=np.int64)
