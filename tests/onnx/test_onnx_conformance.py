"""ONNX backend node tests run through NumpyModule.

The installed onnx wheel ships the official per-operator test cases
(``onnx/backend/test/data/node/test_*``: a one-node model plus reference inputs and outputs). Every
case whose ops are all in ``ONNX_OPS_TO_NUMPY_IMPL`` is run, except those in ``EXCLUDED`` (each
with its reason). Cases using unsupported ops are not collected; their number is reported.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from sklearn_fhe.onnx import NumpyModule
from sklearn_fhe.onnx.numpy_module import UnsupportedOpsError
from sklearn_fhe.onnx.ops import ONNX_OPS_TO_NUMPY_IMPL

NODE_TESTS_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"

#: Ops every implementation must cover with at least one passing conformance case.
REQUIRED_OPS = sorted(
    """Abs Add ArgMax AveragePool BatchNormalization Cast Clip Concat Constant Conv Div Elu Equal
    Erf Exp Flatten Gather Gemm Greater GreaterOrEqual HardSigmoid Identity LeakyRelu Less
    LessOrEqual Log MatMul Max MaxPool Min Mul Neg Not Pad Pow PRelu ReduceMean ReduceSum Relu
    Reshape Selu Sigmoid Sign Slice Softmax Softplus Sqrt Squeeze Sub Tanh Transpose Unsqueeze
    Where Round Floor Ceil QuantizeLinear DequantizeLinear Shape ConstantOfShape Expand Tile Split
    ReduceMax ReduceMin Or And Xor Mod HardSwish Softsign Reciprocal Dropout Gelu""".split()
)

_NO_FLOAT8 = "float8 tensors: NumPy has no float8 dtype and the FHE pipeline never produces them"
_TRAINING_DROPOUT = (
    "training-mode Dropout with ratio > 0 draws a random mask (the expected output depends on the "
    "reference's RNG); the library only runs inference, where Dropout is the identity"
)
_NO_INT4 = "4-bit int4/uint4 tensors (opset 21): no NumPy dtype; our quantizers use int8+ carriers"

#: Node tests that are collected (all their ops are registered) but deliberately not run.
#: Keys are exact names or ``fnmatch`` patterns (``*`` matches any run of characters).
EXCLUDED: dict[str, str] = {
    # --- dtypes outside the pipeline ----------------------------------------------------------
    "test_cast_*FLOAT8*": _NO_FLOAT8,
    "test_castlike_*FLOAT8*": _NO_FLOAT8,
    "test_cast_*BFLOAT16*": "bfloat16 tensors: NumPy has no bfloat16 dtype",
    "test_castlike_*BFLOAT16*": "bfloat16 tensors: NumPy has no bfloat16 dtype",
    "test_cast_*STRING*": "string tensors have no meaning in an FHE circuit",
    "test_castlike_*STRING*": "string tensors have no meaning in an FHE circuit",
    "test_cast_*INT4*": _NO_INT4,
    "test_quantizelinear_e4m3fn": _NO_FLOAT8,
    "test_quantizelinear_e5m2": _NO_FLOAT8,
    "test_dequantizelinear_e4m3fn*": _NO_FLOAT8,
    "test_dequantizelinear_e5m2": _NO_FLOAT8,
    "test_quantizelinear_int4": _NO_INT4,
    "test_quantizelinear_uint4": _NO_INT4,
    "test_dequantizelinear_int4": _NO_INT4,
    "test_dequantizelinear_uint4": _NO_INT4,
    # --- non-tensor types ---------------------------------------------------------------------
    "test_identity_opt": "optional-typed inputs: the interpreter handles tensors only",
    "test_identity_sequence": "sequence-typed inputs: the interpreter handles tensors only",
    # --- training-mode randomness -------------------------------------------------------------
    "test_training_dropout": _TRAINING_DROPOUT,
    "test_training_dropout_default": _TRAINING_DROPOUT,
    "test_training_dropout_default_mask": _TRAINING_DROPOUT,
    "test_training_dropout_mask": _TRAINING_DROPOUT,
}


def _is_excluded(name: str) -> Optional[str]:
    """Return the exclusion reason of a node test, if any."""
    for pattern, reason in EXCLUDED.items():
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def _collect() -> tuple[list[str], list[str], list[str]]:
    """Split the node tests into supported, excluded and unsupported-op ones."""
    supported, excluded, unsupported = [], [], []
    for directory in sorted(NODE_TESTS_DIR.iterdir()):
        if not (directory / "model.onnx").exists():
            continue
        model = onnx.load(str(directory / "model.onnx"), load_external_data=False)
        ops = {node.op_type for node in model.graph.node}
        if not ops <= set(ONNX_OPS_TO_NUMPY_IMPL):
            unsupported.append(directory.name)
        elif _is_excluded(directory.name):
            excluded.append(directory.name)
        else:
            supported.append(directory.name)
    return supported, excluded, unsupported


SUPPORTED, EXCLUDED_CASES, UNSUPPORTED = _collect()
_RESULTS: dict[str, Optional[str]] = {}


def _read_tensor(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _run_case(name: str) -> None:
    """Run one node test through NumpyModule and compare every output."""
    directory = NODE_TESTS_DIR / name
    model = onnx.load(str(directory / "model.onnx"))
    module = NumpyModule(model)
    data_dir = directory / "test_data_set_0"
    inputs = [_read_tensor(data_dir / f"input_{i}.pb") for i in range(len(module.input_names))]
    expected = [
        _read_tensor(data_dir / f"output_{i}.pb") for i in range(len(module.output_names))
    ]
    values = module.run_with_intermediates(*inputs)
    for output_name, want in zip(module.output_names, expected):
        got = np.asarray(values[output_name])
        assert got.shape == want.shape, f"{output_name}: shape {got.shape} != {want.shape}"
        assert got.dtype.kind == want.dtype.kind, f"{output_name}: {got.dtype} != {want.dtype}"
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=output_name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=output_name)


@pytest.mark.parametrize("name", SUPPORTED)
def test_node_conformance(name: str) -> None:
    """One ONNX backend node test passes through NumpyModule."""
    try:
        _run_case(name)
    except BaseException as error:  # noqa: B036 - recorded for the summary, then re-raised
        _RESULTS[name] = f"{type(error).__name__}: {error}"
        raise
    _RESULTS[name] = None


def test_excluded_entries_are_used_and_explained() -> None:
    """Every exclusion matches a collected case and has a reason."""
    for pattern, reason in EXCLUDED.items():
        assert reason.strip(), pattern
        assert any(fnmatch.fnmatchcase(n, pattern) for n in EXCLUDED_CASES), (
            f"EXCLUDED entry {pattern!r} matches no collected node test"
        )


def test_unsupported_cases_raise_unsupported_ops_error() -> None:
    """A node test with an unregistered op is rejected up front, naming the op."""
    name = UNSUPPORTED[0]
    model = onnx.load(str(NODE_TESTS_DIR / name / "model.onnx"))
    with pytest.raises(UnsupportedOpsError):
        NumpyModule(model)


UNARY_OPS = """Abs Acos Acosh Asin Asinh Atan Atanh Ceil Celu Cos Cosh Elu Erf Exp Floor Gelu
    HardSigmoid HardSwish LeakyRelu Log Mish Neg Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin
    Sinh Softplus Softsign Sqrt Tan Tanh ThresholdedRelu""".split()


@pytest.mark.parametrize("op", UNARY_OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_ops_are_elementwise_and_pure(op: str, dtype: type) -> None:
    """Unary ops (used to build table lookups) are vectorized, keep dtype and shape, and do not
    modify their input."""
    x = np.linspace(-3, 3, 24, dtype=dtype).reshape(2, 3, 4)
    original = x.copy()
    with np.errstate(all="ignore"):
        whole = ONNX_OPS_TO_NUMPY_IMPL[op](x)
        one_by_one = np.array([ONNX_OPS_TO_NUMPY_IMPL[op](v) for v in x.ravel()]).reshape(x.shape)
    np.testing.assert_array_equal(x, original)
    assert whole.shape == x.shape and whole.dtype == dtype
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-5, atol=1e-7, equal_nan=True)


def test_multi_output_variants_are_used_only_when_asked() -> None:
    """MaxPool/Dropout return one array, unless the node declares their optional outputs."""
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    helper = onnx.helper
    for outputs in (["y"], ["y", "indices"]):
        node = helper.make_node("MaxPool", ["x"], outputs, kernel_shape=[2, 2], strides=[2, 2])
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outputs],
        )
        result = NumpyModule(helper.make_model(graph))(x)
        if len(outputs) == 1:
            np.testing.assert_array_equal(result, [[[[5, 7], [13, 15]]]])
        else:
            np.testing.assert_array_equal(result[1], [[[[5, 7], [13, 15]]]])
    assert isinstance(ONNX_OPS_TO_NUMPY_IMPL["Dropout"](x), np.ndarray)


def test_conformance_summary() -> None:
    """Report the counts and check that every required op has a passing node test."""
    for name in SUPPORTED:
        if name not in _RESULTS:  # this test run alone: run the cases here
            try:
                _run_case(name)
                _RESULTS[name] = None
            except Exception as error:  # pylint: disable=broad-except
                _RESULTS[name] = f"{type(error).__name__}: {error}"
    passed = [name for name in SUPPORTED if _RESULTS[name] is None]
    print(
        f"\nONNX node tests: {len(SUPPORTED)} run, {len(passed)} passed, "
        f"{len(EXCLUDED_CASES)} excluded, {len(UNSUPPORTED)} not collected (unsupported ops)"
    )
    covered: set[str] = set()
    for name in passed:
        model = onnx.load(str(NODE_TESTS_DIR / name / "model.onnx"))
        covered |= {node.op_type for node in model.graph.node}
    missing = [op for op in REQUIRED_OPS if op not in covered]
    assert not missing, f"Required ops without a passing conformance test: {missing}"
    assert len(passed) == len(SUPPORTED), {n: r for n, r in _RESULTS.items() if r is not None}
