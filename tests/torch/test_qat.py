"""Tests of the QAT layers: grids, STE gradients and the ONNX export contract."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from sklearn_fhe.onnx.export import export_torch_to_onnx
from sklearn_fhe.torch.modules import FHEMLP
from sklearn_fhe.torch.qat import (
    QuantConv2d,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    accumulator_aware_weight,
    accumulator_bit_widths,
    accumulator_budget,
    auto_accumulator_bits,
    calibrate_accumulators,
    quantize_weight,
    signed_bit_width,
    worst_case_accumulators,
)


def _small_cnn():
    return nn.Sequential(
        QuantIdentity(n_bits=3, signed=True),
        QuantConv2d(1, 2, kernel_size=3, stride=2, padding=1, n_bits=3),
        QuantReLU(n_bits=3),
        QuantConv2d(2, 3, kernel_size=3, stride=2, padding=1, n_bits=4),
        QuantReLU(n_bits=2),
        nn.Flatten(),
        QuantLinear(12, 4, n_bits=3),
    )


def _trained_once(module, x):
    """One training step so that scales are initialized and weights moved off their init."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    loss = module(x).pow(2).mean()
    loss.backward()
    optimizer.step()
    return module


@pytest.mark.parametrize("n_bits", [1, 2, 3, 5])
@pytest.mark.parametrize("signed", [False, True])
def test_fake_quant_on_grid(n_bits, signed):
    if signed and n_bits < 2:
        with pytest.raises(ValueError):
            QuantIdentity(n_bits=n_bits, signed=signed)
        return
    torch.manual_seed(0)
    quant = QuantIdentity(n_bits=n_bits, signed=signed)
    x = torch.randn(256, 7) * 3
    out = quant(x)
    integers = out / quant.scale
    assert torch.allclose(integers, torch.round(integers), atol=1e-4)
    levels = torch.unique(torch.round(integers))
    assert len(levels) <= 2**n_bits
    assert levels.min() >= quant.q_min and levels.max() <= quant.q_max
    if not signed:
        assert levels.min() >= 0
    assert torch.equal(quant.integer(x), torch.round(integers))


def test_quant_relu_matches_relu_then_quant():
    x = torch.linspace(-3, 3, 61)
    quant_relu = QuantReLU(n_bits=2, init_scale=0.5)
    expected = torch.clamp(torch.round(torch.relu(x) / 0.5), 0, 3) * 0.5
    assert torch.allclose(quant_relu(x), expected)


def test_ste_gradients_flow():
    torch.manual_seed(0)
    quant = QuantIdentity(n_bits=3, signed=True, init_scale=0.25)
    x = (torch.randn(64, 5) * 0.5).requires_grad_()
    quant(x).sum().backward()
    inside = (x.detach() / 0.25 >= -4) & (x.detach() / 0.25 <= 3)
    # STE: identity inside the clipping range, zero outside; the scale gets a gradient (LSQ).
    assert torch.allclose(x.grad[inside], torch.ones_like(x.grad[inside]))
    assert torch.all(x.grad[~inside] == 0)
    assert quant.log_scale.grad is not None and torch.isfinite(quant.log_scale.grad)

    layer = QuantLinear(5, 3, n_bits=2)
    x = torch.randn(8, 5, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_weight_quantization_grid():
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 2, 2, requires_grad=True)
    fake, scale = quantize_weight(weight, n_bits=3)
    expected_scale = weight.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 3
    assert torch.allclose(scale, expected_scale)
    integers = fake.detach() / scale
    assert torch.allclose(integers, torch.round(integers), atol=1e-5)
    assert integers.abs().max() <= 3 + 1e-5
    fake.sum().backward()
    assert torch.allclose(weight.grad, torch.ones_like(weight))


def test_signed_bit_width():
    assert signed_bit_width(0, 7) == 3
    assert signed_bit_width(0, 8) == 4
    assert signed_bit_width(-8, 7) == 4
    assert signed_bit_width(-9, 7) == 5
    assert signed_bit_width(-1, 0) == 1


def _check_export_contract(model: onnx.ModelProto, weight_bits: dict):
    onnx.checker.check_model(model)
    inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    consts = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    values = {**inits, **consts}
    producers = {out: node for node in model.graph.node for out in node.output}

    dequantize = [node for node in model.graph.node if node.op_type == "DequantizeLinear"]
    assert dequantize, "no fake quantizer in the export"
    for dq in dequantize:
        quant = producers[dq.input[0]]
        assert quant.op_type == "QuantizeLinear"
        clip = producers[quant.input[0]]
        assert clip.op_type == "Clip"
        scale, zero = values[dq.input[1]], values[dq.input[2]]
        assert scale.dtype == np.float32 and scale.shape == ()
        assert zero.dtype in (np.uint8, np.int8)
        assert np.array_equal(values[quant.input[1]], scale)
        assert np.array_equal(values[quant.input[2]], zero)
        low, high = values[clip.input[1]], values[clip.input[2]]
        q_range = (high - low) / scale
        assert abs(q_range - round(float(q_range))) < 1e-3
        n_levels = round(float(q_range)) + 1
        # 2**a_bits levels, or one less on a narrow signed grid (symmetric around 0)
        assert n_levels & (n_levels - 1) == 0 or (n_levels + 1) & n_levels == 0

    linear = [node for node in model.graph.node if node.op_type in ("Gemm", "Conv")]
    assert len(linear) == len(weight_bits)
    for node, n_bits in zip(linear, weight_bits.values()):
        assert node.input[1] in inits, f"{node.op_type} weight is not an initializer"
        weight = inits[node.input[1]].astype(np.float64)
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        if node.op_type == "Gemm" and not trans_b:
            weight = weight.T
        flat = weight.reshape(weight.shape[0], -1)
        scale = np.abs(flat).max(axis=1, keepdims=True) / (2 ** (n_bits - 1) - 1)
        integers = flat / scale
        assert np.abs(integers - np.round(integers)).max() < 1e-4
        assert np.abs(np.round(integers)).max() <= 2 ** (n_bits - 1) - 1


def _run_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    model = onnx.ModelProto.FromString(model.SerializeToString())
    # The reference evaluator implements (De)QuantizeLinear from opset 19; same semantics here.
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 19
    return ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x})[0]


def test_export_mlp_contract_and_values():
    torch.manual_seed(0)
    # No accumulator rounding: the export is the unrounded model (the compiler rounds).
    module = FHEMLP(6, 3, hidden_layer_sizes=(5, 4), n_w_bits=3, n_output_bits=4, n_accum_bits=None)
    x = torch.randn(32, 6)
    _trained_once(module, x)
    model = export_torch_to_onnx(module, x[:2].numpy())
    ops = [node.op_type for node in model.graph.node if node.op_type != "Constant"]
    chain = ["Clip", "QuantizeLinear", "DequantizeLinear"]
    assert ops == chain + ["Gemm", "Relu"] + chain + ["Gemm", "Relu"] + chain + ["Gemm"]
    _check_export_contract(model, {"l0": 3, "l1": 3, "l2": 4})
    # The exported graph computes what the (eval mode) QAT module computes.
    module.eval()
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(_run_reference(model, x.numpy()), expected, rtol=1e-5, atol=1e-5)


def test_export_cnn_contract_and_values():
    torch.manual_seed(0)
    module = _small_cnn()
    x = torch.randn(16, 1, 8, 8)
    _trained_once(module, x)
    model = export_torch_to_onnx(module, x[:2].numpy())
    ops = [node.op_type for node in model.graph.node if node.op_type != "Constant"]
    assert ops.count("Conv") == 2 and ops.count("Gemm") == 1 and ops.count("QuantizeLinear") == 3
    _check_export_contract(model, {"c0": 3, "c1": 4, "fc": 3})
    module.eval()
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(_run_reference(model, x.numpy()), expected, rtol=1e-5, atol=1e-5)


def test_export_sees_weights_updated_after_last_forward():
    torch.manual_seed(0)
    layer = QuantLinear(4, 2, n_bits=3)
    module = nn.Sequential(QuantIdentity(3, signed=True, init_scale=0.5), layer)
    module.eval()
    with torch.no_grad():
        layer.weight.mul_(-2.0)  # changed after the buffer was last refreshed
    model = export_torch_to_onnx(module, np.zeros((1, 4), np.float32))
    exported = numpy_helper.to_array(
        next(i for i in model.graph.initializer if i.name.endswith("weight_quantized"))
    )
    np.testing.assert_allclose(exported, layer.quantized_weight().detach().numpy())


def test_accumulator_rounding_mirrors_round_bit_pattern():
    torch.manual_seed(0)
    input_quant = QuantIdentity(4, signed=True, init_scale=0.25)
    layer = QuantLinear(16, 3, n_bits=4, input_quant=input_quant, acc_bits=3)
    x = torch.randn(64, 16)
    layer.eval()
    calibrate_accumulators(layer, x)
    lsbs = layer.lsbs_to_remove
    assert lsbs > 0
    with torch.no_grad():
        acc = torch.nn.functional.linear(input_quant.integer(x), layer.integer_weight())
        acc_int = acc.numpy().astype(np.int64)
        rounded = (acc_int + (1 << (lsbs - 1))) >> lsbs << lsbs  # fhe.round_bit_pattern
        unit = (input_quant.scale * layer.weight_scale()).numpy()
        expected = rounded * unit + layer.bias.numpy()
        np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    (stats,) = accumulator_bit_widths(layer, x)
    assert stats["rounded_bits"] == stats["bits"] - lsbs
    # rounded from the width over the whole input grid (the compiled circuit's), not the data's
    worst = layer.worst_case_abs_accumulator()
    assert worst >= layer.acc_abs_max
    assert signed_bit_width(-worst, worst) - lsbs == 3


def test_accumulator_bit_widths_of_mlp():
    torch.manual_seed(0)
    module = FHEMLP(10, 2, hidden_layer_sizes=(6,), n_input_bits=3, n_w_bits=3, n_accum_bits=None)
    x = torch.randn(100, 10)
    _trained_once(module, x)
    stats = accumulator_bit_widths(module, x)
    assert [s["n_outputs"] for s in stats] == [6, 2]
    for entry in stats:
        assert entry["integral"]
        # |q_x| <= 4, |q_w| <= 3 on 10 inputs: |acc| <= 120.
        assert -120 <= entry["min"] <= entry["max"] <= 120
        assert entry["bits"] == signed_bit_width(entry["min"], entry["max"])


def test_fhemlp_validation():
    with pytest.raises(ValueError):
        FHEMLP(4, 2, hidden_layer_sizes=(0,))
    with pytest.raises(TypeError):
        FHEMLP(4, 2, activation=torch.relu)
    with pytest.raises(ValueError):
        QuantLinear(3, 2, acc_bits=4)  # rounding needs the input grid


# --------------------------------------------------------------------------------------------------
# Accumulator-aware training
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("products", [1, 3, 10, 1000])
@pytest.mark.parametrize("grid", [(-3, 3), (-4, 3), (0, 7)])
def test_accumulator_aware_weight_meets_its_budget_on_the_grid(products, grid):
    """A budget of ``products`` times the largest weight (3) times the largest input."""
    torch.manual_seed(0)
    budget = products * 3 * max(-grid[0], grid[1])
    weight = torch.randn(8, 64, requires_grad=True)
    fake, scale = accumulator_aware_weight(weight, 3, *grid, budget)
    w_int = torch.round(fake.detach() / scale)
    assert torch.allclose(fake.detach(), w_int * scale)  # on the channel's grid
    smallest, largest = worst_case_accumulators(w_int, *grid)
    assert int(torch.maximum(-smallest, largest).max()) <= budget
    # each channel keeps the grid's largest integer (the post-training grid reproduces it)
    assert torch.all(w_int.abs().amax(dim=1) == 3)
    plain = torch.round(quantize_weight(weight, 3)[0].detach() / scale)
    assert torch.all((w_int == 0) | (w_int == plain))  # pruned, never changed otherwise
    if products == 1000:
        assert torch.equal(w_int, plain)
    fake.sum().backward()  # straight through
    assert torch.equal(weight.grad, torch.ones_like(weight))


def test_worst_case_accumulators_are_reached():
    w_int = torch.tensor([[3.0, -2.0, 0.0], [-1.0, -1.0, 1.0]])
    smallest, largest = worst_case_accumulators(w_int, -4, 3)
    inputs = torch.cartesian_prod(*[torch.arange(-4.0, 4.0)] * 3)
    products = inputs @ w_int.T
    assert torch.equal(smallest, products.min(dim=0).values)
    assert torch.equal(largest, products.max(dim=0).values)


def test_accumulator_aware_layer_trains_within_its_width():
    torch.manual_seed(0)
    quant = QuantIdentity(3, signed=True, narrow_range=True)
    layer = QuantLinear(64, 16, n_bits=3, input_quant=quant, acc_bits=5, acc_max_bits=8)
    x = torch.randn(256, 64) * 2
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        layer(x).pow(2).mean().neg().backward()  # pushes the weights up
        optimizer.step()
    layer.eval()
    assert layer.worst_case_abs_accumulator() <= accumulator_budget(8, 5) == 123
    calibrate_accumulators(layer, x)
    assert layer.lsbs_to_remove == 3
    (stats,) = accumulator_bit_widths(layer, x)
    assert stats["bits"] <= 8
    assert torch.equal(layer.weight_quantized, layer.quantized_weight().detach())


def test_accumulator_aware_errors():
    quant = QuantIdentity(6, signed=True)
    with pytest.raises(ValueError, match="acc_max_bits=8 cannot hold even one"):
        QuantLinear(4, 2, n_bits=4, input_quant=quant, acc_bits=5, acc_max_bits=8)
    with pytest.raises(ValueError, match="acc_max_bits needs the layer's input grid"):
        QuantLinear(4, 2, acc_max_bits=8)
    with pytest.raises(ValueError, match="narrow_range applies to signed grids"):
        QuantIdentity(3, signed=False, narrow_range=True)
    assert QuantIdentity(3, signed=True, narrow_range=True).q_min == -3
    assert auto_accumulator_bits(QuantIdentity(3, signed=True, narrow_range=True), 3) == 8
    assert auto_accumulator_bits(QuantIdentity(6, signed=True), 4) == 13
    assert auto_accumulator_bits(QuantIdentity(3, signed=True, narrow_range=True), 3, 2) == 6
    for products in (1, 2, 3, 8):  # "auto" always holds at least one product
        FHEMLP(4, 2, n_input_bits=6, n_w_bits=4, n_accum_products=products)
    with pytest.raises(ValueError, match="n_accum_max_bits must be an int, 'auto' or None"):
        FHEMLP(4, 2, n_accum_max_bits="big")
