"""Malformed and adversarial ONNX models: our error, naming the problem, fast and in little
memory (never a traceback from NumPy or onnx, never a hang or an allocation of gigabytes)."""

from __future__ import annotations

import signal
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sklearn_fhe import compile_onnx_model
from sklearn_fhe.errors import InvalidONNXModelError, UnsupportedOpsError
from sklearn_fhe.onnx.numpy_module import NumpyModule

N_FEATURES = 4
#: Peak Python-side allocation a rejected model may cost (a valid one of this size costs less).
MAX_PEAK_BYTES = 64 * 2**20
#: A case still running after this long is a hang.
TIMEOUT_SECONDS = 60

INPUTSET = np.random.default_rng(0).normal(size=(20, N_FEATURES)).astype(np.float32)


def make_model(nodes, initializers=(), inputs=None, outputs=None, opset=14, **kwargs):
    """A model whose graph reads ``x`` (batch, 4 floats) and writes ``y``."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_FEATURES])]
    outputs = outputs if outputs is not None else [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] if opset is not None else []
    return helper.make_model(graph, opset_imports=opsets, **kwargs)


def weights(name="W", shape=(N_FEATURES, 2)):
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def gemm(a="x", b="W", out="y"):
    return helper.make_node("Gemm", [a, b], [out], name="gemm")


@pytest.fixture(autouse=True)
def no_hang():
    """Fail a case that runs longer than TIMEOUT_SECONDS instead of blocking the suite."""
    def hang(signum, frame):
        raise TimeoutError(f"still running after {TIMEOUT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(TIMEOUT_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def rejects(model, match: str, error=InvalidONNXModelError, inputset=INPUTSET) -> None:
    """compile_onnx_model raises ``error`` matching ``match``, within MAX_PEAK_BYTES."""
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match):
            compile_onnx_model(model, inputset, n_bits=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"{peak / 2**20:.0f} MiB to reject the model"


def test_the_base_model_compiles() -> None:
    """The unmutated model of these tests is valid: each case below breaks one thing."""
    module = compile_onnx_model(make_model([gemm()], [weights()]), INPUTSET, n_bits=4)
    assert module.forward(INPUTSET[:2], fhe="simulate").shape == (2, 2)


def test_missing_initializer() -> None:
    rejects(make_model([gemm()]), r"neither inputs, initializers nor node outputs: \['W'\]")


def test_cycle() -> None:
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second"),
             helper.make_node("Identity", ["b"], ["y"])]
    rejects(make_model(nodes), r"cycle: nodes \[.*'first', 'second'\]")


def test_output_nobody_produces() -> None:
    rejects(make_model([gemm(out="z")], [weights()]), r"No node produces the graph outputs")


def test_no_output() -> None:
    rejects(make_model([gemm()], [weights()], outputs=[]), "no output")


@pytest.mark.parametrize("opset, match", [
    (99, "opset 99; sklearn_fhe reads opsets 1 to"),
    (0, "opset 0;"),
    (None, "imports the default ONNX opset 0 times"),
])
def test_wrong_opset(opset, match) -> None:
    rejects(make_model([gemm()], [weights()], opset=opset), match)


def test_op_of_another_domain() -> None:
    node = helper.make_node("Gemm", ["x", "W"], ["y"], domain="com.example")
    model = make_model([node], [weights()])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    rejects(model, "outside the default ONNX domain: com.example::Gemm")


def test_unsupported_op_with_a_subgraph() -> None:
    branch = helper.make_graph([], "branch", [], [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, None)])
    node = helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=branch)
    rejects(make_model([node]), "If", error=UnsupportedOpsError)


def raw_tensor(dims, data: bytes) -> TensorProto:
    """A float initializer ``W`` as a file may hold it (onnx.helper would check its size)."""
    return TensorProto(name="W", data_type=TensorProto.FLOAT, dims=dims, raw_data=data)


def test_huge_initializer_shape_with_little_data() -> None:
    """An initializer claiming 2**40 elements is refused before any array is made."""
    rejects(make_model([gemm()], [raw_tensor([2**20, 2**20], b"\0" * 16)]),
            r"1099511627776 elements")


def test_initializer_shorter_than_its_shape() -> None:
    rejects(make_model([gemm()], [raw_tensor([N_FEATURES, 2], b"\0" * 8)]),
            "Initializer 'W' cannot be read")


def test_negative_dimension() -> None:
    rejects(make_model([gemm()], [raw_tensor([-1, 2], b"")]), "negative dimension")


@pytest.mark.parametrize("dtype", [TensorProto.STRING, TensorProto.COMPLEX64,
                                   TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN])
def test_unsupported_initializer_dtype(dtype) -> None:
    tensor = TensorProto(name="W", data_type=dtype, dims=[N_FEATURES, 2])
    rejects(make_model([gemm()], [tensor]), f"data type {TensorProto.DataType.Name(dtype)}")


@pytest.mark.parametrize("dtype", [TensorProto.INT64, TensorProto.STRING, TensorProto.BOOL])
def test_non_float_model_input(dtype) -> None:
    inputs = [helper.make_tensor_value_info("x", dtype, ["N", N_FEATURES])]
    rejects(make_model([gemm()], [weights()], inputs=inputs), "must be a float tensor")


def test_external_data_is_not_read(tmp_path) -> None:
    """An initializer pointing to a file outside the model is refused, the file never read."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(N_FEATURES * 2, dtype=np.float32).tobytes())
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[N_FEATURES, 2],
                         data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=str(secret))
    rejects(make_model([gemm()], [tensor]), "external file")


def shape_constant(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


@pytest.mark.parametrize("op, inputs, constants", [
    ("ConstantOfShape", ["shape"], [shape_constant("shape", [2**20, 2**20])]),
    ("Expand", ["x", "shape"], [shape_constant("shape", [2**20, 2**20, N_FEATURES])]),
    ("Tile", ["x", "repeats"], [shape_constant("repeats", [2**20, 2**20])]),
])
def test_op_building_a_huge_tensor(op, inputs, constants) -> None:
    """Shapes computed inside the graph are bounded too: no op allocates terabytes."""
    nodes = [helper.make_node(op, inputs, ["big"]), helper.make_node("Add", ["x", "big"], ["y"])]
    rejects(make_model(nodes, constants), f"{op} would build a tensor of")


def test_huge_padding_in_the_interpreter() -> None:
    """Pad (read by the float interpreter, not quantized) is bounded as well."""
    model = make_model([helper.make_node("Pad", ["x", "pads"], ["y"])],
                       [shape_constant("pads", [0, 2**30, 0, 2**30])])
    with pytest.raises(InvalidONNXModelError, match="Pad would build a tensor of"):
        NumpyModule(model)(INPUTSET)


@pytest.mark.parametrize("limit, delta, match", [
    (1e30, 1e-3, "Range would build a tensor of"),
    (1e30, 1e-30, "Range from 0.0 to 1.0.*e\\+30 by 1.0.*e-30 never ends"),
    (1.0, 0.0, "never ends"),
])
def test_range_without_end(limit, delta, match) -> None:
    constants = [numpy_helper.from_array(np.array(v, dtype=np.float32), n)
                 for n, v in [("start", 0.0), ("limit", limit), ("delta", delta)]]
    nodes = [helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
             helper.make_node("Add", ["x", "r"], ["y"])]
    rejects(make_model(nodes, constants), match)


def test_node_with_wrong_arity() -> None:
    rejects(make_model([helper.make_node("Gemm", ["x"], ["y"], name="gemm")]),
            r"node 'gemm' \(Gemm\) fails on inputs of shapes \[\(20, 4\)\]")


def test_inputset_of_the_wrong_width() -> None:
    rejects(make_model([gemm()], [weights()]), r"input 'x' has shape \(N, 4\)",
            inputset=np.zeros((10, N_FEATURES + 1), dtype=np.float32))


def test_non_finite_weights() -> None:
    nan = numpy_helper.from_array(np.full((N_FEATURES, 2), np.nan, dtype=np.float32), "W")
    rejects(make_model([gemm()], [nan]), "Initializer 'W' holds NaN or infinite values")


def test_not_a_model() -> None:
    with pytest.raises(TypeError, match="onnx.ModelProto"):
        compile_onnx_model(b"\x08\x07", INPUTSET)


def test_long_graph_in_reverse_order_is_read_in_linear_time() -> None:
    """20,000 nodes listed last-first (legal to read, not to write): sorted at once, not in
    quadratic time (which took minutes)."""
    n = 20_000
    names = ["x"] + [f"t{i}" for i in range(1, n)] + ["y"]
    nodes = [helper.make_node("Identity", [names[i]], [names[i + 1]]) for i in range(n)]
    module = NumpyModule(make_model(nodes[::-1]))
    np.testing.assert_array_equal(module(INPUTSET), INPUTSET)
