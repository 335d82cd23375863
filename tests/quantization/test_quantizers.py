"""Quantizers, per-axis quantized arrays, the n_bits setting and calibration rules."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_fhe.onnx.ops import ONNX_OPS_TO_NUMPY_IMPL
from sklearn_fhe.quantization import NBits, QuantizationError, QuantizedArray, UniformQuantizer
from sklearn_fhe.quantization.calibration import choose_quantizer
from sklearn_fhe.quantization.quantized_ops import quantize_weights
from sklearn_fhe.quantization.quantizers import bits_for_range
from sklearn_fhe.quantization.tensors import ChainStep


# -- UniformQuantizer --------------------------------------------------------------------------
@pytest.mark.parametrize("n_bits", [2, 4, 8])
@pytest.mark.parametrize("is_signed", [False, True])
def test_from_range_round_trip_within_half_a_step(n_bits: int, is_signed: bool) -> None:
    """Every real of [rmin, rmax] comes back from quant → dequant within scale / 2, the integers
    stay in the n_bits range and use both of its ends, and 0 is represented exactly."""
    values = np.linspace(-1.3, 2.9, 1001)
    quantizer = UniformQuantizer.from_range(values.min(), values.max(), n_bits, is_signed)
    q = quantizer.quant(values)
    assert q.dtype == np.int64
    assert (quantizer.qmin, quantizer.qmax) == (
        (-(2 ** (n_bits - 1)), 2 ** (n_bits - 1) - 1) if is_signed else (0, 2**n_bits - 1)
    )
    assert q.min() == quantizer.qmin and q.max() == quantizer.qmax
    error = np.abs(quantizer.dequant(q) - values)
    assert error.max() <= quantizer.scale / 2 + 1e-12
    assert quantizer.dequant(quantizer.quant(0.0)) == 0.0


def test_from_range_extends_to_zero_and_clips_outside() -> None:
    """A positive-only range still holds 0; values outside the range saturate at its ends."""
    quantizer = UniformQuantizer.from_range(2.0, 5.0, 3)
    assert quantizer.zero_point == 0 and np.isclose(quantizer.scale, 5.0 / 7)
    assert quantizer.quant(-10.0) == 0 and quantizer.quant(100.0) == 7
    np.testing.assert_allclose(quantizer.dequant(quantizer.quant(5.0)), 5.0)


def test_symmetric_quantizer() -> None:
    """Symmetric: zero point 0, signed, levels ±(2**(n-1) - 1), round trip within scale / 2."""
    values = np.linspace(-0.5, 2.0, 501)
    quantizer = UniformQuantizer.from_range(values.min(), values.max(), 4, symmetric=True)
    assert quantizer.is_signed and np.all(quantizer.zero_point == 0)
    np.testing.assert_allclose(quantizer.scale, 2.0 / 7)
    q = quantizer.quant(values)
    assert q.max() == 7 and q.min() == -2  # -0.5 / (2/7) = -1.75 → -2
    assert quantizer.quant(-2.0) == -7  # the most negative level mirrors the most positive
    assert np.abs(quantizer.dequant(q) - values).max() <= quantizer.scale / 2 + 1e-12


def test_accumulator_quantizer_is_not_clipped() -> None:
    """n_bits=None describes an exact accumulator: quant never saturates."""
    quantizer = UniformQuantizer(np.asarray(0.5), np.asarray(3))
    np.testing.assert_array_equal(quantizer.quant([-1000.0, 1000.0]), [-1997, 2003])
    np.testing.assert_array_equal(quantizer.dequant([-1997, 2003]), [-1000.0, 1000.0])


def test_constant_range_gets_a_valid_scale() -> None:
    """A range of zero width (a constant tensor) must not divide by zero."""
    quantizer = UniformQuantizer.from_range(0.0, 0.0, 4)
    assert quantizer.scale == 1.0
    assert quantizer.dequant(quantizer.quant(0.0)) == 0.0


@pytest.mark.parametrize(
    "qmin, qmax, bits", [(0, 0, 1), (0, 1, 1), (0, 15, 4), (0, 16, 5), (-8, 7, 4), (-9, 7, 5)]
)
def test_bits_for_range(qmin: int, qmax: int, bits: int) -> None:
    """Bits concrete needs for [qmin, qmax], a sign bit for negative ranges."""
    assert bits_for_range(qmin, qmax) == bits


# -- QuantizedArray ----------------------------------------------------------------------------
def test_per_axis_quantized_array() -> None:
    """Per feature (axis=-1), each column has its own scale: a column of small values keeps its
    precision, which one scale for the whole array would lose."""
    rng = np.random.default_rng(0)
    values = np.stack(
        [rng.uniform(-100, 100, 50), rng.uniform(0, 0.01, 50), rng.uniform(-1, 1, 50)], axis=1
    )
    per_axis = QuantizedArray(values, 4, axis=-1)
    per_tensor = QuantizedArray(values, 4)
    scale = np.asarray(per_axis.quantizer.scale)
    assert scale.shape == (1, 3)
    np.testing.assert_allclose(scale[0], (values.max(0) - np.minimum(values.min(0), 0)) / 15)
    error = np.abs(per_axis.dequant() - values)
    assert np.all(error <= scale / 2 + 1e-12)
    small_column_error = np.abs(per_tensor.dequant() - values)[:, 1]
    assert error[:, 1].max() < small_column_error.max() / 10
    assert per_axis.qvalues.dtype == np.int64
    assert per_axis.qvalues.min() >= 0 and per_axis.qvalues.max() <= 15


def test_symmetric_per_channel_weights() -> None:
    """Weights: symmetric per output channel, every channel uses its largest level."""
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(4, 6)) * np.array([[1.0], [10.0], [0.1], [3.0]])
    qarray = QuantizedArray(weights, 5, symmetric=True, axis=0)
    assert np.asarray(qarray.quantizer.scale).shape == (4, 1)
    np.testing.assert_array_equal(np.abs(qarray.qvalues).max(axis=1), [15, 15, 15, 15])
    assert np.all(np.abs(qarray.dequant() - weights) <= qarray.quantizer.scale / 2 + 1e-12)


def test_quantize_weights_divides_channels_by_their_gcd() -> None:
    """A 0/1 selection matrix stays 0/1 whatever n_bits (narrow accumulators), values exact."""
    selection = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    qweights, scale = quantize_weights(selection, 8, axis=-1)
    np.testing.assert_array_equal(qweights, selection)
    np.testing.assert_allclose(qweights * scale, selection)


# -- n_bits ------------------------------------------------------------------------------------
def test_n_bits_from_int() -> None:
    assert NBits.parse(5) == NBits(inputs=5, weights=5, activations=5, outputs=5)
    assert NBits.parse(np.int64(3)) == NBits(3, 3, 3, 3)
    parsed = NBits(2, 3, 4, 5)
    assert NBits.parse(parsed) is parsed


def test_n_bits_from_dict() -> None:
    """Roles left out take the activations width (else the inputs width); outputs default to
    the activations width."""
    assert NBits.parse({"inputs": 6, "weights": 3, "activations": 4, "outputs": 7}) == NBits(
        6, 3, 4, 7
    )
    assert NBits.parse({"weights": 3, "activations": 5}) == NBits(5, 3, 5, 5)
    assert NBits.parse({"inputs": 6}) == NBits(6, 6, 6, 6)
    assert NBits.parse({"inputs": 6, "activations": 2}) == NBits(6, 2, 2, 2)


@pytest.mark.parametrize(
    "n_bits, error, match",
    [
        ({"input": 4}, ValueError, "Unknown n_bits keys \\['input'\\]"),
        ({"weights": 0}, ValueError, "n_bits\\['weights'\\]=0 is out of range"),
        (17, ValueError, "n_bits\\['inputs'\\]=17 is out of range"),
        ({"activations": 2.5}, TypeError, "n_bits\\['activations'\\] must be an int"),
        (True, TypeError, "n_bits must be an int or a dict"),
        ("8", TypeError, "n_bits must be an int or a dict"),
        (4.0, TypeError, "n_bits must be an int or a dict"),
    ],
)
def test_n_bits_errors(n_bits, error, match) -> None:
    with pytest.raises(error, match=match):
        NBits.parse(n_bits)


# -- calibration rules -------------------------------------------------------------------------
def _dequantize_linear_step(scale: float, zero_point: int) -> ChainStep:
    """The chain step a QAT fake quantizer leaves at the end of a deferred chain."""
    impl = ONNX_OPS_TO_NUMPY_IMPL["DequantizeLinear"]
    args = (None, np.float32(scale), np.int8(zero_point))
    return ChainStep("DequantizeLinear", impl, args, 0, {})


def test_dequantize_linear_output_keeps_the_training_grid() -> None:
    """After DequantizeLinear the quantizer is the fake-quantization grid itself: integer
    inference reproduces every value exactly, though the values do not span a power-of-two
    range (the min/max rule would put its levels elsewhere)."""
    scale = 0.1
    levels = np.array([-3, -1, 0, 2, 5, 9])
    values = scale * levels
    quantizer = choose_quantizer(values, 8, steps=(_dequantize_linear_step(scale, 0),))
    np.testing.assert_allclose(quantizer.scale, scale)
    np.testing.assert_array_equal(quantizer.quant(values), levels + 3)
    np.testing.assert_allclose(quantizer.dequant(quantizer.quant(values)), values, atol=1e-12)
    assert quantizer.n_bits == 4  # 13 levels from -3 to 9
    affine = choose_quantizer(values, 8)
    assert not np.allclose(affine.dequant(affine.quant(values)), values, atol=1e-6)


def test_integer_valued_results_are_exact() -> None:
    """Counts and comparisons (integer-valued) that fit in n_bits get scale 1: exact."""
    values = np.array([-3.0, 0.0, 1.0, 4.0])
    quantizer = choose_quantizer(values, 3)
    assert quantizer.scale == 1.0 and quantizer.n_bits == 3
    np.testing.assert_array_equal(quantizer.quant(values), [0, 3, 4, 7])
    np.testing.assert_array_equal(quantizer.dequant(quantizer.quant(values)), values)
    booleans = choose_quantizer(np.array([True, False, True]), 2)
    assert booleans.scale == 1.0 and booleans.n_bits == 1


def test_integer_values_too_wide_fall_back_to_affine() -> None:
    """Integers spanning more than 2**n_bits levels get an ordinary n_bits quantizer."""
    values = np.arange(0.0, 20.0)
    quantizer = choose_quantizer(values, 3)
    assert quantizer.scale > 1.0 and quantizer.n_bits == 3


def test_non_finite_calibration_values_raise() -> None:
    with pytest.raises(QuantizationError, match="non-finite"):
        choose_quantizer(np.array([0.0, np.inf]), 4)
