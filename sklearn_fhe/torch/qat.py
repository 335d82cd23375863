"""Quantization-aware training (QAT) layers whose ONNX export the post-training quantizer honours.

The layers fake-quantize in the forward pass (values stay float but lie on an integer grid) and
let gradients through with the straight-through estimator (STE). Their ONNX export follows the
contract of :mod:`sklearn_fhe.quantization`:

* weights of :class:`QuantLinear` / :class:`QuantConv2d` are on a symmetric per-output-channel
  grid, ``scale_j = max_k |W_jk| / (2**(n_bits - 1) - 1)``, and are exported as constant
  initializers (already rounded) feeding ``Gemm`` / ``Conv``; biases stay float;
* activations quantized by :class:`QuantIdentity` / :class:`QuantReLU` export as the op chain
  ``Clip(x, s*(qmin - z), s*(qmax - z)) -> QuantizeLinear(x, s, z) -> DequantizeLinear(q, s, z)``
  with the same constants ``s`` (float32 scalar) and ``z`` (uint8 or int8 scalar). The post-training
  quantizer uses that grid as the output grid of the table lookup, so the integer circuit
  reproduces the QAT model exactly.

A network is typically ``QuantIdentity -> QuantLinear -> ReLU -> QuantIdentity -> QuantLinear ...``
(or ``QuantReLU`` instead of ``ReLU -> QuantIdentity``); the first :class:`QuantIdentity`
quantizes the clear input on the client before encryption.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..quantization.quantizers import rounding_lsbs

#: Bisection steps of accumulator-aware pruning (the threshold to 2**-30 of the largest weight).
_BISECTION_STEPS = 30

#: Per-batch decay of the running peak of the accumulator's largest magnitude (see QuantLinear).
ACC_MAX_DECAY = 0.99

__all__ = [
    "QuantIdentity",
    "QuantReLU",
    "QuantLinear",
    "QuantConv2d",
    "quantize_weight",
    "accumulator_aware_weight",
    "accumulator_budget",
    "auto_accumulator_bits",
    "worst_case_accumulators",
    "accumulator_bit_widths",
    "calibrate_accumulators",
    "signed_bit_width",
]


# --------------------------------------------------------------------------------------------------
# Integer helpers
# --------------------------------------------------------------------------------------------------


def signed_bit_width(low: float, high: float) -> int:
    """Bits of the smallest integer type holding every value of ``[low, high]``.

    Follows concrete-python: unsigned width when ``low >= 0``, two's complement width otherwise.

    Parameters
    ----------
    low, high : float
        Integer bounds of the range, ``low <= high``.

    Returns
    -------
    int
        The bit width (at least 1).
    """
    low, high = int(round(float(low))), int(round(float(high)))
    if low >= 0:
        return max(1, int(high).bit_length())
    return max(int(high).bit_length(), int(-low - 1).bit_length()) + 1


def _round_half_up_to_multiple(acc: torch.Tensor, lsbs: int) -> torch.Tensor:
    """Integer-valued ``acc`` rounded like ``fhe.round_bit_pattern(acc, lsbs)``.

    ``(acc + 2**(lsbs-1)) >> lsbs << lsbs``, i.e. to the nearest multiple of ``2**lsbs`` with ties
    going up.
    """
    if lsbs <= 0:
        return acc
    step = float(2**lsbs)
    return torch.floor((acc + step / 2) / step) * step


def _untraced_float(tensor: torch.Tensor) -> float:
    """The value of a one-element tensor as a Python float, without recording an op in a trace."""
    return float(np.asarray(tensor.detach().cpu().numpy()).reshape(-1)[0])


# --------------------------------------------------------------------------------------------------
# Weight quantization
# --------------------------------------------------------------------------------------------------


def _weight_scale(weight: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scale, shaped to broadcast against ``weight``."""
    q_max = 2 ** (n_bits - 1) - 1
    reduce_dims = tuple(range(1, weight.dim()))
    max_abs = weight.detach().abs().amax(dim=reduce_dims, keepdim=True)
    # A channel of zeros keeps a harmless scale of 1 (its integers are all 0).
    return torch.where(max_abs > 0, max_abs / q_max, torch.ones_like(max_abs))


def quantize_weight(weight: torch.Tensor, n_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize ``weight`` on its symmetric per-output-channel grid, with an STE gradient.

    Parameters
    ----------
    weight : torch.Tensor
        Weight of shape ``(out_channels, ...)``; channel ``j`` is ``weight[j]``.
    n_bits : int
        Signed bit width, at least 2: integers lie in ``[-(2**(n_bits-1) - 1), 2**(n_bits-1) - 1]``.

    Returns
    -------
    fake_weight : torch.Tensor
        ``round(weight / scale) * scale``; its gradient with respect to ``weight`` is the identity.
    scale : torch.Tensor
        The per-channel scale, shaped ``(out_channels, 1, ...)``, detached.
    """
    scale = _weight_scale(weight, n_bits)
    w_int = torch.round(weight.detach() / scale)
    fake = w_int * scale
    return weight + (fake - weight).detach(), scale


def worst_case_accumulators(
    w_int: torch.Tensor, low: int, high: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest ``sum_k q_x q_w`` of each output channel over every input of the grid
    ``q_x`` in ``[low, high]`` (``low <= 0 <= high``): the ends each weight's sign picks.

    Parameters
    ----------
    w_int : torch.Tensor
        Integer weights of shape ``(out_channels, ...)``.
    low, high : int
        The input grid's integer range (after its zero point).

    Returns
    -------
    tuple of torch.Tensor
        ``(smallest, largest)``, each of shape ``(out_channels,)``.
    """
    flat = w_int.reshape(w_int.shape[0], -1)
    positive, negative = flat.clamp(min=0).sum(dim=1), flat.clamp(max=0).sum(dim=1)
    return positive * low + negative * high, positive * high + negative * low


def accumulator_budget(max_bits: int, acc_bits: Optional[int]) -> int:
    """Largest ``|sum_k q_x q_w|`` a ``max_bits`` accumulator rounded to ``acc_bits`` may hold:
    its signed symmetric range, less half a rounding step at the top (rounded up, the largest
    value must stay within the width too)."""
    lsbs = max(0, int(max_bits) - int(acc_bits)) if acc_bits is not None else 0
    return 2 ** (int(max_bits) - 1) - 1 - (2 ** (lsbs - 1) if lsbs else 0)


def auto_accumulator_bits(input_quant: "QuantIdentity", n_bits: int, products: int = 8) -> int:
    """A worst-case accumulator width for a layer with ``n_bits`` weights on ``input_quant``'s
    grid: room for about ``products`` products of the largest input and the largest weight
    (8 bits for 8 products of 3-bit weights on a 3-bit narrow signed grid, largest 3 each)."""
    if int(products) < 1:
        raise ValueError(f"products must be a positive integer, got {products}.")
    largest_input = max(-(input_quant.q_min - input_quant.zero_point),
                        input_quant.q_max - input_quant.zero_point)
    return (largest_input.bit_length() + (2 ** (n_bits - 1) - 1).bit_length() + 1
            + (int(products) - 1).bit_length())


def accumulator_aware_weight(
    weight: torch.Tensor, n_bits: int, low: int, high: int, budget: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize ``weight`` like :func:`quantize_weight`, each output channel pruned just
    enough that its accumulator over the whole input grid ``[low, high]`` stays within
    ``budget`` in magnitude (accumulator-aware quantization).

    A channel's accumulator reaches ``sum_k max(q_w low, q_w high)`` at worst, a weighted L1
    norm of its integer weights. Its smallest weights are zeroed (those below a magnitude
    threshold, the smallest threshold that meets the budget, found by bisection) and the others
    keep their integers on the channel's grid: the largest keeps the grid's largest integer, so
    the post-training quantizer's symmetric grid reproduces the integers exactly. Gradients
    pass straight through, so a pruned weight can grow back past a smaller one.

    Returns
    -------
    fake_weight : torch.Tensor
        The pruned weight on its grid, with the gradient of ``weight``.
    scale : torch.Tensor
        The per-channel scale, shaped ``(out_channels, 1, ...)``, detached.
    """
    scale = _weight_scale(weight, n_bits)
    magnitude = weight.detach().abs()
    w_int = torch.round(weight.detach() / scale)
    shape = (-1,) + (1,) * (weight.dim() - 1)

    def kept(threshold: torch.Tensor) -> torch.Tensor:
        return w_int * (magnitude >= threshold.view(shape))

    def worst(threshold: torch.Tensor) -> torch.Tensor:
        smallest, largest = worst_case_accumulators(kept(threshold), low, high)
        return torch.maximum(-smallest, largest)

    # at the channel's largest magnitude only its largest weights are left
    lo = torch.zeros(weight.shape[0], dtype=magnitude.dtype, device=magnitude.device)
    hi = magnitude.reshape(weight.shape[0], -1).amax(dim=1)
    over = worst(lo) > budget
    for _ in range(_BISECTION_STEPS if bool(over.any()) else 0):
        middle = (lo + hi) / 2
        fits = worst(middle) <= budget
        hi, lo = torch.where(fits, middle, hi), torch.where(fits, lo, middle)
    fake = kept(torch.where(over, hi, lo)) * scale
    return weight + (fake - weight).detach(), scale


# --------------------------------------------------------------------------------------------------
# Activation quantization
# --------------------------------------------------------------------------------------------------


def _fake_quant_value(x: torch.Tensor, scale: float, zero_point: int, q_min: int, q_max: int):
    """Reference float computation of the Clip -> QuantizeLinear -> DequantizeLinear chain."""
    # Computed on q - z directly: the same values as the chain, and no "+ 0" for the TorchScript
    # peephole pass to remove (removing it inside the traced Function breaks the export).
    low, high = q_min - zero_point, q_max - zero_point
    clipped = torch.clamp(x, scale * low, scale * high)
    return torch.clamp(torch.round(clipped / scale), low, high) * scale


class _FakeQuantExport(torch.autograd.Function):
    """Constant-grid fake quantization whose ONNX export is Clip -> QuantizeLinear -> Dequantize."""

    @staticmethod
    def forward(ctx, x, scale: float, zero_point: int, q_min: int, q_max: int):  # noqa: D102
        return _fake_quant_value(x, scale, zero_point, q_min, q_max)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102  # pragma: no cover - export path only
        return grad_output, None, None, None, None

    @staticmethod
    def symbolic(g, x, scale: float, zero_point: int, q_min: int, q_max: int):  # noqa: D102
        scale_f = np.float32(scale)
        low = torch.tensor(np.float32(scale_f * np.float32(q_min - zero_point)))
        high = torch.tensor(np.float32(scale_f * np.float32(q_max - zero_point)))
        zp_dtype = torch.uint8 if q_min >= 0 else torch.int8
        scale_c = g.op("Constant", value_t=torch.tensor(scale_f))
        zp_c = g.op("Constant", value_t=torch.tensor(zero_point, dtype=zp_dtype))
        clipped = g.op(
            "Clip", x, g.op("Constant", value_t=low), g.op("Constant", value_t=high)
        )
        q = g.op("QuantizeLinear", clipped, scale_c, zp_c)
        return g.op("DequantizeLinear", q, scale_c, zp_c)


class QuantIdentity(nn.Module):
    """Fake-quantize activations on a learned uniform grid (LSQ), with STE gradients.

    The output is ``s * (clip(round(x / s) + z, qmin, qmax) - z)``. Unsigned grids use
    ``[qmin, qmax] = [0, 2**n_bits - 1]``, signed grids ``[-2**(n_bits-1), 2**(n_bits-1) - 1]``;
    the zero point ``z`` is 0 so that integer accumulators of the next layer are plain products
    ``sum_k q_x q_w``.

    The scale is learned with the LSQ estimator (Esser et al., 2020): inside the range the gradient
    with respect to ``s`` is ``round(x/s) - x/s``, outside it is the clipping bound. Compared with
    an EMA of the observed maximum, a learned scale chooses its own clipping point: at 2 to 4 bits
    clipping rare large activations buys much finer steps for the common ones, which is where the
    accuracy of low bit-width networks comes from; and it needs no calibration pass nor momentum.
    The scale is parametrized by its logarithm, so it stays positive and Adam's steps are relative.
    It is initialized on the first forward pass from that batch, as
    ``max(2 * mean|x| / sqrt(qmax), quantile(|x|, 0.999) / qmax / 2)`` — close to the LSQ rule but
    never so small that most of the batch is clipped.

    Parameters
    ----------
    n_bits : int, default=3
        Bit width of the integer grid (``2**n_bits`` levels), at least 1 for unsigned grids, 2 for
        signed.
    signed : bool, default=False
        Whether the grid is symmetric around 0 (use it for inputs and pre-activation values) or
        non-negative (after a ReLU).
    init_scale : float or None, default=None
        Initial scale. When None, it is set from the first batch seen.
    narrow_range : bool, default=False
        Signed grids only: drop the lowest level, ``[-(2**(n_bits-1) - 1), 2**(n_bits-1) - 1]``.
        Symmetric around 0, the grid bounds the next layer's accumulators by its largest
        magnitude times the weights' L1 norm, whatever their signs (see ``acc_max_bits``).

    Attributes
    ----------
    log_scale : torch.nn.Parameter
        Logarithm of the grid step ``s``.
    q_min, q_max : int
        Integer range of the grid.

    Examples
    --------
    >>> import torch
    >>> quant = QuantIdentity(n_bits=2, signed=False, init_scale=0.5)
    >>> quant(torch.tensor([-1.0, 0.2, 0.3, 0.9, 5.0]))
    tensor([0.0000, 0.0000, 0.5000, 1.0000, 1.5000], grad_fn=<MulBackward0>)
    """

    def __init__(self, n_bits: int = 3, signed: bool = False, init_scale: Optional[float] = None,
                 narrow_range: bool = False):
        super().__init__()
        n_bits = int(n_bits)
        if n_bits < (2 if signed else 1):
            raise ValueError(f"n_bits must be at least {2 if signed else 1}, got {n_bits}.")
        if narrow_range and not signed:
            raise ValueError("narrow_range applies to signed grids: pass signed=True.")
        self.n_bits = n_bits
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)
        self.zero_point = 0
        if self.signed:
            self.q_max = 2 ** (n_bits - 1) - 1
            self.q_min = -self.q_max if self.narrow_range else -self.q_max - 1
        else:
            self.q_min, self.q_max = 0, 2**n_bits - 1
        init = 1.0 if init_scale is None else float(init_scale)
        if init <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}.")
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.register_buffer("initialized", torch.tensor(init_scale is not None))

    @property
    def scale(self) -> torch.Tensor:
        """The current grid step ``s`` (a scalar tensor)."""
        return self.log_scale.exp()

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        magnitude = x.detach().abs().flatten().float()
        if magnitude.numel() == 0:
            return
        positive_max = float(max(abs(self.q_max), abs(self.q_min)))
        lsq = 2.0 * magnitude.mean().item() / math.sqrt(positive_max)
        if magnitude.numel() > 1:
            high = torch.quantile(magnitude[: 1 << 24], 0.999).item()
        else:
            high = magnitude.item()
        scale = max(lsq, high / positive_max / 2.0, 1e-6)
        self.log_scale.fill_(math.log(scale))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if torch.onnx.is_in_onnx_export():
            return _FakeQuantExport.apply(
                x, _untraced_float(self.scale), self.zero_point, self.q_min, self.q_max
            )
        if not bool(self.initialized):
            self._initialize(x)
        # LSQ gradient scale 1 / sqrt(numel * qmax): balances the scale's update with the
        # weights' under SGD (Adam is invariant to it, so it does no harm there).
        per_row = x[0].numel() if x.dim() > 1 else x.numel()
        grad_scale = 1.0 / math.sqrt(max(per_row, 1) * self.q_max)
        log_scale = self.log_scale * grad_scale + (self.log_scale * (1 - grad_scale)).detach()
        scale = log_scale.exp()
        v = torch.clamp(x / scale, self.q_min - self.zero_point, self.q_max - self.zero_point)
        v = v + (torch.round(v) - v).detach()
        return v * scale

    def integer(self, x: torch.Tensor) -> torch.Tensor:
        """The integers ``q - z`` of the grid points that ``forward`` returns for ``x``."""
        with torch.no_grad():
            return torch.round(self.forward(x) / self.scale)

    def extra_repr(self) -> str:  # noqa: D102
        narrow = ", narrow_range=True" if self.narrow_range else ""
        return f"n_bits={self.n_bits}, signed={self.signed}{narrow}"


class QuantReLU(QuantIdentity):
    """ReLU followed by an unsigned fake quantizer (see :class:`QuantIdentity`).

    Exports as ``Relu -> Clip -> QuantizeLinear -> DequantizeLinear``; the post-training quantizer
    fuses the whole chain into one table lookup.

    Parameters
    ----------
    n_bits : int, default=3
        Bit width of the output grid (``2**n_bits`` levels in ``[0, (2**n_bits - 1) * s]``).
    init_scale : float or None, default=None
        Initial scale; None sets it from the first batch.

    Examples
    --------
    >>> import torch
    >>> QuantReLU(n_bits=2, init_scale=1.0)(torch.tensor([-2.0, 0.4, 1.6, 9.0]))
    tensor([0., 0., 2., 3.], grad_fn=<MulBackward0>)
    """

    def __init__(self, n_bits: int = 3, init_scale: Optional[float] = None):
        super().__init__(n_bits=n_bits, signed=False, init_scale=init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(F.relu(x))

    def extra_repr(self) -> str:  # noqa: D102
        return f"n_bits={self.n_bits}"


# --------------------------------------------------------------------------------------------------
# Linear layers
# --------------------------------------------------------------------------------------------------


class _QuantWeightMixin:
    """Shared weight quantization, accumulator rounding and statistics of QAT layers."""

    weight: torch.Tensor
    bias: Optional[torch.Tensor]

    def _init_quant(self, n_bits, input_quant, acc_bits, acc_max_bits=None):
        n_bits = int(n_bits)
        if n_bits < 2:
            raise ValueError(f"n_bits must be at least 2 for signed weights, got {n_bits}.")
        for name, value in (("acc_bits", acc_bits), ("acc_max_bits", acc_max_bits)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {value}.")
            if value is not None and input_quant is None:
                raise ValueError(
                    f"{name} needs the layer's input grid: pass input_quant=QuantIdentity(...)."
                )
        self.n_bits = n_bits
        self.acc_bits = None if acc_bits is None else int(acc_bits)
        self.acc_max_bits = None if acc_max_bits is None else int(acc_max_bits)
        self.input_quant = input_quant
        if self.acc_max_bits is not None:
            low, high = self.input_range()
            smallest = (2 ** (n_bits - 1) - 1) * max(-low, high)  # one weight, at the grid's top
            if smallest > accumulator_budget(self.acc_max_bits, self.acc_bits):
                raise ValueError(
                    f"acc_max_bits={self.acc_max_bits} cannot hold even one {n_bits}-bit weight "
                    f"times an input of the grid [{low}, {high}] (|{smallest}|) once rounded to "
                    f"acc_bits={self.acc_bits}: raise acc_max_bits or lower n_bits."
                )
        # Largest |integer accumulator| seen while training (a running maximum), from which the
        # rounding of the accumulator to ``acc_bits`` bits is derived.
        self.register_buffer("acc_abs_max", torch.tensor(0.0))
        # The ONNX export reads the weight from this buffer: a buffer becomes an initializer,
        # whereas the ops computing the fake-quantized weight from the parameter would be exported
        # as ops (the exporter does not fold Abs/ReduceMax/Round). Kept current by ``train(False)``.
        self.register_buffer("weight_quantized", self._quantize(self.weight.detach())[0])

    def input_range(self) -> tuple[int, int]:
        """The integer range ``q - z`` of the layer's input grid (its ``input_quant``)."""
        quant = self.input_quant
        return quant.q_min - quant.zero_point, quant.q_max - quant.zero_point

    def _quantize(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.acc_max_bits is None:
            return quantize_weight(weight, self.n_bits)
        low, high = self.input_range()
        budget = accumulator_budget(self.acc_max_bits, self.acc_bits)
        return accumulator_aware_weight(weight, self.n_bits, low, high, budget)

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight ``w_int * scale`` (STE gradient); with ``acc_max_bits``,
        shrunk so every accumulator fits that width (see :func:`accumulator_aware_weight`)."""
        return self._quantize(self.weight)[0]

    def weight_scale(self) -> torch.Tensor:
        """Per-output-channel weight scale, shaped ``(out_channels,)``."""
        return self._quantize(self.weight.detach())[1].flatten()

    def integer_weight(self) -> torch.Tensor:
        """The integer weights ``w_int``."""
        with torch.no_grad():
            fake, scale = self._quantize(self.weight)
            return torch.round(fake / scale)

    def worst_case_accumulator(self, w_int: Optional[torch.Tensor] = None) -> tuple[int, int]:
        """Smallest and largest ``sum_k q_x q_w`` of any unit over every input of the grid
        (``(0, 0)`` without ``input_quant``): what the compiled circuit sizes it for."""
        if self.input_quant is None:
            return 0, 0
        w_int = self.integer_weight() if w_int is None else w_int
        smallest, largest = worst_case_accumulators(w_int, *self.input_range())
        return int(smallest.min()), int(largest.max())

    def worst_case_abs_accumulator(self, w_int: Optional[torch.Tensor] = None) -> int:
        """Largest ``|sum_k q_x q_w|`` over every input of the grid (see
        ``worst_case_accumulator``)."""
        low, high = self.worst_case_accumulator(w_int)
        return max(-low, high)

    @property
    def lsbs_to_remove(self) -> int:
        """Bits the accumulator rounding removes, as in ``fhe.round_bit_pattern`` (0 if off).

        As the compiler does: the accumulator's signed width over the whole input grid (its
        worst case, at least the largest magnitude seen) less ``acc_bits``."""
        return self._lsbs_to_remove(None)

    def _lsbs_to_remove(self, w_int: Optional[torch.Tensor]) -> int:
        if self.acc_bits is None:
            return 0
        low, high = self.worst_case_accumulator(w_int)
        seen = int(round(float(self.acc_abs_max)))  # within the worst case on the grid
        return rounding_lsbs(min(low, -seen), max(high, seen), self.acc_bits)

    @torch.no_grad()
    def refresh_quantized_weight(self) -> None:
        """Store the current fake-quantized weight in the ``weight_quantized`` buffer.

        Called automatically when the layer switches to eval mode (``torch.onnx.export`` and
        :func:`sklearn_fhe.onnx.export.export_torch_to_onnx` do), so the export always sees the
        trained weight.
        """
        self.weight_quantized.copy_(self._quantize(self.weight)[0])

    def train(self, mode: bool = True):  # noqa: D102
        if not mode:
            self.refresh_quantized_weight()
        return super().train(mode)

    def _linear_forward(self, x: torch.Tensor, op) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        if torch.onnx.is_in_onnx_export():
            # The ONNX graph is the unrounded model; accumulator rounding is applied by the
            # compiler (lsbs_to_remove tells it by how much).
            return op(x, self.weight_quantized, self.bias)
        weight_q, weight_scale = self._quantize(self.weight)
        acc = op(x, weight_q, None)
        if self.input_quant is not None and (self.training or self.acc_bits is not None):
            # Integer accumulator sum_k q_x q_w (exact in float32 at these widths).
            channel_shape = (1, -1) + (1,) * (acc.dim() - 2)
            unit = (self.input_quant.scale.detach() * weight_scale.flatten()).view(channel_shape)
            acc_int = torch.round(acc.detach() / unit)
            if self.training:
                # Peak hold with a slow decay: follows the maximum over roughly the last epoch,
                # which is what calibrate_accumulators (and the compiler) will measure.
                self.acc_abs_max.copy_(
                    torch.maximum(acc_int.abs().max(), self.acc_abs_max * ACC_MAX_DECAY)
                )
            w_int = torch.round(weight_q.detach() / weight_scale)
            lsbs = self._lsbs_to_remove(w_int)
            if lsbs > 0:
                rounded = _round_half_up_to_multiple(acc_int, lsbs)
                acc = acc + ((rounded - acc_int) * unit).detach()
        if self.bias is not None:
            acc = acc + self.bias.view((1, -1) + (1,) * (acc.dim() - 2))
        return acc


class QuantLinear(_QuantWeightMixin, nn.Linear):
    """``nn.Linear`` with a symmetric per-output-channel fake-quantized weight.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output row.
    bias : bool, default=True
        Whether to add a (float) bias.
    n_bits : int, default=3
        Signed bit width of the weights: integers in ``[-(2**(n_bits-1) - 1), 2**(n_bits-1) - 1]``.
    input_quant : QuantIdentity or None, default=None
        Optional quantizer applied to the input first. It gives the layer its input grid, which
        accumulator rounding (``acc_bits``) and :func:`accumulator_bit_widths` need.
    acc_bits : int or None, default=None
        When set (and ``input_quant`` given), simulate in training and evaluation the rounding of
        the integer accumulator ``sum_k q_x q_w`` to its ``acc_bits`` most significant bits,
        exactly like ``fhe.round_bit_pattern(acc, lsbs_to_remove)`` with
        ``lsbs_to_remove = width(max |acc|) - acc_bits`` (in training the maximum is a peak over
        recent batches decaying by ``ACC_MAX_DECAY`` per batch; call
        :func:`calibrate_accumulators` on the training set after training to fix it exactly).
        The ONNX export stays unrounded; the compiler must round the same
        way for the circuit to match. The width rounded from is the accumulator's over the
        whole input grid when that is wider (the compiled circuit is sized for any input).
    acc_max_bits : int or None, default=None
        When set (and ``input_quant`` given), accumulator-aware training: each output unit's
        integer weights are shrunk (:func:`accumulator_aware_weight`) so that its accumulator
        fits ``acc_max_bits`` signed bits for *every* input of the grid, hence the circuit's
        rounding to ``acc_bits`` removes ``acc_max_bits - acc_bits`` bits (one PBS each) at most.

    Attributes
    ----------
    weight, bias : torch.nn.Parameter
        Float parameters; the forward pass uses ``quantized_weight()``.
    acc_abs_max : torch.Tensor
        Running maximum of the integer accumulator's magnitude (only tracked with ``input_quant``).
    weight_quantized : torch.Tensor
        Buffer holding the fake-quantized weight, refreshed on ``eval()``; the ONNX export reads it,
        so the exported ``Gemm``/``Conv`` weight is an initializer already on the grid.

    Examples
    --------
    >>> import torch
    >>> layer = QuantLinear(4, 2, n_bits=3)
    >>> w_int = layer.integer_weight()
    >>> bool((w_int.abs() <= 3).all())
    True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        n_bits: int = 3,
        input_quant: Optional[QuantIdentity] = None,
        acc_bits: Optional[int] = None,
        acc_max_bits: Optional[int] = None,
        device=None,
        dtype=None,
    ):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_quant(n_bits, input_quant, acc_bits, acc_max_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._linear_forward(x, F.linear)

    def extra_repr(self) -> str:  # noqa: D102
        extra = f", acc_bits={self.acc_bits}" if self.acc_bits is not None else ""
        extra += f", acc_max_bits={self.acc_max_bits}" if self.acc_max_bits is not None else ""
        return f"{super().extra_repr()}, n_bits={self.n_bits}{extra}"


class QuantConv2d(_QuantWeightMixin, nn.Conv2d):
    """``nn.Conv2d`` with a symmetric per-output-channel fake-quantized weight.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        As for :class:`torch.nn.Conv2d` (``padding_mode`` must be ``"zeros"``: other modes export
        a ``Pad`` op).
    n_bits : int, default=3
        Signed bit width of the weights (see :class:`QuantLinear`).
    input_quant : QuantIdentity or None, default=None
        Optional quantizer applied to the input first (see :class:`QuantLinear`).
    acc_bits : int or None, default=None
        Simulated accumulator rounding (see :class:`QuantLinear`).
    acc_max_bits : int or None, default=None
        Accumulator-aware training (see :class:`QuantLinear`).

    Examples
    --------
    >>> import torch
    >>> conv = QuantConv2d(1, 2, kernel_size=3, stride=2, padding=1, n_bits=2)
    >>> conv(torch.zeros(1, 1, 8, 8)).shape
    torch.Size([1, 2, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, tuple[int, int]],
        stride: Union[int, tuple[int, int]] = 1,
        padding: Union[int, tuple[int, int], str] = 0,
        dilation: Union[int, tuple[int, int]] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        n_bits: int = 3,
        input_quant: Optional[QuantIdentity] = None,
        acc_bits: Optional[int] = None,
        acc_max_bits: Optional[int] = None,
        device=None,
        dtype=None,
    ):
        if padding_mode != "zeros":
            raise ValueError(f"Only padding_mode='zeros' is supported, got {padding_mode!r}.")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self._init_quant(n_bits, input_quant, acc_bits, acc_max_bits)

    def _conv(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._linear_forward(x, self._conv)

    def extra_repr(self) -> str:  # noqa: D102
        extra = f", acc_bits={self.acc_bits}" if self.acc_bits is not None else ""
        extra += f", acc_max_bits={self.acc_max_bits}" if self.acc_max_bits is not None else ""
        return f"{super().extra_repr()}, n_bits={self.n_bits}{extra}"


# --------------------------------------------------------------------------------------------------
# Accumulator statistics
# --------------------------------------------------------------------------------------------------


def accumulator_bit_widths(module: nn.Module, x: Union[np.ndarray, torch.Tensor]) -> list[dict]:
    """Measure the integer accumulators of every QAT linear/conv layer of ``module`` on ``x``.

    The accumulator of a layer is ``sum_k q_x q_w`` in integers (bias excluded), with ``q_x`` the
    integers of its input grid and ``q_w`` its integer weights. The input grid is the layer's
    ``input_quant`` when it has one, otherwise the last :class:`QuantIdentity` (or
    :class:`QuantReLU`) run before it — right for sequential networks whose quantizer directly
    feeds the layer (a pooling in between makes the grid non-integral; the entry then says so).

    Parameters
    ----------
    module : torch.nn.Module
        A network built from the layers of this module. It is run in eval mode.
    x : array-like
        Inputs, e.g. the training set.

    Returns
    -------
    list of dict
        One dict per layer, in execution order, with keys ``name``, ``min``, ``max`` (integer
        range of the accumulator), ``bits`` (signed width of that range, as concrete counts it),
        ``rounded_bits`` (width after the layer's simulated rounding, if any), ``n_outputs``
        (accumulators per row: the number of table lookups the layer's output costs if it is
        followed by an activation) and ``integral`` (False when the input was off-grid).
    """
    names = {mod: name for name, mod in module.named_modules()}
    last_grid: dict = {}
    stats: list[dict] = []
    handles = []

    def quant_hook(mod, inputs, output):
        last_grid["scale"] = float(mod.scale)

    def layer_hook(mod, inputs, output):
        x_in = inputs[0]
        if mod.input_quant is not None:
            x_in = mod.input_quant(x_in)
            scale = float(mod.input_quant.scale)
        elif "scale" in last_grid:
            scale = last_grid["scale"]
        else:
            raise ValueError(
                f"Layer {names.get(mod, type(mod).__name__)!r} has no quantized input: put a "
                "QuantIdentity before it or pass input_quant."
            )
        q_x = x_in / scale
        integral = bool(torch.allclose(q_x, torch.round(q_x), atol=1e-3))
        w_int = mod.integer_weight()
        if isinstance(mod, QuantConv2d):
            acc = mod._conv(torch.round(q_x), w_int, None)
        else:
            acc = F.linear(torch.round(q_x), w_int)
        low, high = float(acc.min()), float(acc.max())
        bits = signed_bit_width(low, high)
        lsbs = mod.lsbs_to_remove
        stats.append(
            {
                "name": names.get(mod, type(mod).__name__),
                "min": int(low),
                "max": int(high),
                "bits": bits,
                "rounded_bits": bits - lsbs if lsbs else bits,
                "n_outputs": int(acc[0].numel()),
                "integral": integral,
            }
        )

    for mod in module.modules():
        if isinstance(mod, QuantIdentity):
            handles.append(mod.register_forward_hook(quant_hook))
        if isinstance(mod, _QuantWeightMixin):
            handles.append(mod.register_forward_hook(layer_hook))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            x_t = torch.as_tensor(np.asarray(x, dtype=np.float32))
            module(x_t)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return stats


def calibrate_accumulators(module: nn.Module, x: Union[np.ndarray, torch.Tensor]) -> nn.Module:
    """Set each layer's accumulator maximum (hence its rounding) from the data ``x``.

    During training the largest accumulator magnitude of each layer with ``input_quant`` is a
    slowly decaying peak over batches. Call this after training, on the training set, so that the
    rounding the layers simulate (``lsbs_to_remove``) is the one a compiler calibrating on the same
    data derives: ``lsbs_to_remove = signed_bit_width(-M, M) - acc_bits`` with ``M`` the largest
    ``|sum_k q_x q_w|`` (bias excluded) over ``x``.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network.
    x : array-like
        Calibration inputs, typically the training set.

    Returns
    -------
    torch.nn.Module
        ``module``, in eval mode.
    """
    module.eval()
    layers = [mod for mod in module.modules() if isinstance(mod, _QuantWeightMixin)]
    by_name = {mod: name for name, mod in module.named_modules()}
    # Layers run in order, and a layer's rounding changes what the next ones see: calibrate them
    # one at a time, with every earlier layer already rounded as it will be.
    for layer in layers:
        if layer.input_quant is None:
            continue
        layer.acc_abs_max.zero_()  # no rounding while measuring this layer
        stats = {s["name"]: s for s in accumulator_bit_widths(module, x)}
        entry = stats[by_name[layer]]
        layer.acc_abs_max.fill_(float(max(abs(entry["min"]), abs(entry["max"]))))
    return module
