"""FHE-friendly torch modules used by the skorch-based estimators."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from .input_scaling import InputScaling
from .qat import QuantIdentity, QuantLinear, auto_accumulator_bits

__all__ = ["FHEMLP"]

#: Activations whose output is never negative: their output grid is unsigned (one more bit of
#: resolution for the same number of levels).
_NON_NEGATIVE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)


class FHEMLP(nn.Module):
    """Fully connected network trained with quantization-aware training, cheap to run in FHE.

    The network is::

        InputScaling(n_inputs)                           # clear, on the client
        -> QuantIdentity(n_input_bits, signed, narrow)   # clear, on the client
        -> [QuantLinear(n_w_bits) -> activation -> QuantIdentity(n_a_bits)]  # per hidden layer
        -> QuantLinear(n_w_bits)                        # output accumulator, decrypted as is

    In FHE each hidden unit costs one table lookup (activation and requantization fused), whose
    input is the integer accumulator ``sum_k q_x q_w`` of the unit rounded exactly to
    ``n_accum_bits`` bits; concrete charges one more lookup (PBS) per bit the rounding removes.
    The output layer costs none. The defaults were chosen on ``load_digits`` (standardized, 25%
    stratified test split, Adam lr=1e-2, 50 epochs, batch 64, cosine learning rate): 16 hidden
    units whose 8-bit accumulators are rounded to 5 bits, i.e. 64 PBS per row, 0.958 to 0.967
    test accuracy over seeds 0-2 (0.967 with ``random_state=0``; ``python
    benchmarks/lookup_bounds.py --seeds 0 1 2``). 8 bits is each accumulator's width over
    *every* input of the grid, not only the training data's, which accumulator-aware training
    guarantees (``n_accum_max_bits``); without it the worst case is 9 bits, and sizing for it
    costs 80 to 96 PBS and, rounded from there, accuracy (0.83-0.91). Measured alternatives (same
    split, seeds 0-2, sized by calibration as before the worst case was; concrete's cost
    estimate relative to the defaults): 32 units with 2-bit
    activations, 128 PBS, 0.962, cost 1.6x; 16 units with 2-bit activations, 0.953, cost 0.8x;
    32 units rounded to 6 bits, 96 PBS, 0.963, cost 3.4x (a 6-bit lookup needs 8192-coefficient
    polynomials where a 5-bit one needs 4096); truncating instead of rounding costs the same
    PBS; a lookup on the unrounded 8-bit accumulator (rounding fused into it), 32 PBS, cost 18x.
    ``FHENeuralNetRegressor`` trains the same module with weight decay
    (``optimizer__weight_decay=0.015``), measured on small tabular regression sets (see there).
    After training, call :func:`~sklearn_fhe.torch.qat.calibrate_accumulators` on the training
    set so that the simulated rounding is the one the compiler derives.

    Parameters
    ----------
    n_inputs : int
        Number of input features (set by the estimator from the data).
    n_outputs : int
        Number of outputs: classes for a classifier, targets for a regressor.
    hidden_layer_sizes : int or sequence of int, default=(16,)
        Width of each hidden layer; its sum times ``1 + (accumulator bits - n_accum_bits)`` is
        the number of PBS per row.
    activation : type of torch.nn.Module, default=torch.nn.ReLU
        Elementwise activation class, instantiated without arguments after each hidden layer.
    n_w_bits : int, default=3
        Signed bit width of the weights (symmetric per-output-channel grid).
    n_a_bits : int, default=3
        Bit width of the hidden activations (unsigned grid after a non-negative activation,
        signed otherwise).
    n_input_bits : int, default=3
        Bit width of the signed input grid: each feature takes ``2**n_input_bits - 1`` levels
        (the narrow grid) whatever its own range, once ``input_scaling`` has mapped it there.
    n_accum_bits : int or None, default=5
        Bit width to which each hidden layer's integer accumulator is rounded, simulated during
        training (see :class:`~sklearn_fhe.torch.qat.QuantLinear` ``acc_bits``); it is the input
        width of the table lookups. None keeps the full accumulator.
    n_output_bits : int or None, default=3
        Weight bit width of the output layer; None uses ``n_w_bits``.
    n_accum_max_bits : int, "auto" or None, default="auto"
        Widest a hidden accumulator may grow on *any* input of the grid, not only on the
        training data: accumulator-aware training prunes each unit's smallest integer weights
        until it fits (see :class:`~sklearn_fhe.torch.qat.QuantLinear` ``acc_max_bits``). The
        circuit is sized for that worst case, so it rounds ``n_accum_max_bits - n_accum_bits``
        bits away (one PBS each per unit). "auto" leaves room for about ``n_accum_products``
        products of the largest input and weight
        (:func:`~sklearn_fhe.torch.qat.auto_accumulator_bits`: 8 bits with the defaults). None
        leaves the weights free: the worst case then sets the width, one or two bits above
        what the training data reach (dearer, and coarser once rounded).
    n_accum_products : int, default=8
        How many products of the largest input and the largest weight a hidden accumulator
        has room for when ``n_accum_max_bits="auto"`` (rounded up to a power of two).
    input_scaling : bool, default=True
        Map each raw feature onto the input grid by its own ``(x - offset) / scale``
        (:class:`~sklearn_fhe.torch.input_scaling.InputScaling`: a mean and standard
        deviation, gross outliers clipped), so inputs need no scaler. The map is the
        identity until calibrated: ``FHENeuralNetClassifier`` / ``FHENeuralNetRegressor``
        calibrate it on the training data before training; call
        ``module.input_scaling.calibrate(X)`` when training the module yourself. It runs on
        the client with the input quantizer: no cost in FHE.
        False leaves the inputs as given (standardize them first).

    Attributes
    ----------
    input_scaling : InputScaling or None
        The per-feature map of the raw inputs (None with ``input_scaling=False``).
    layers : torch.nn.ModuleList
        The :class:`~sklearn_fhe.torch.qat.QuantLinear` layers, each owning its input quantizer.
    activations : torch.nn.ModuleList
        The activation modules after the hidden layers.

    Examples
    --------
    >>> import torch
    >>> module = FHEMLP(n_inputs=4, n_outputs=3, hidden_layer_sizes=(8,))
    >>> module(torch.randn(5, 4)).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden_layer_sizes: Union[int, Sequence[int]] = (16,),
        activation: type = nn.ReLU,
        n_w_bits: int = 3,
        n_a_bits: int = 3,
        n_input_bits: int = 3,
        n_accum_bits: Optional[int] = 5,
        n_output_bits: Optional[int] = 3,
        n_accum_max_bits: Union[int, str, None] = "auto",
        n_accum_products: int = 8,
        input_scaling: bool = True,
    ):
        super().__init__()
        if isinstance(hidden_layer_sizes, int):
            hidden_layer_sizes = (hidden_layer_sizes,)
        sizes = [int(n_inputs), *(int(size) for size in hidden_layer_sizes), int(n_outputs)]
        if any(size < 1 for size in sizes):
            raise ValueError(f"Every layer size must be positive, got {sizes}.")
        if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
            raise TypeError(
                f"activation must be a torch.nn.Module class such as torch.nn.ReLU, "
                f"got {activation!r}."
            )
        if isinstance(n_accum_max_bits, str) and n_accum_max_bits != "auto":
            raise ValueError(
                f"n_accum_max_bits must be an int, 'auto' or None, got {n_accum_max_bits!r}."
            )
        self.n_inputs, self.n_outputs = sizes[0], sizes[-1]
        self.hidden_layer_sizes = tuple(sizes[1:-1])
        self.input_scaling = InputScaling(self.n_inputs) if input_scaling else None
        signed_activation = not issubclass(activation, _NON_NEGATIVE_ACTIVATIONS)
        n_layers = len(sizes) - 1
        self.layers = nn.ModuleList()
        self.activations = nn.ModuleList()
        for index in range(n_layers):
            is_first, is_last = index == 0, index == n_layers - 1
            input_quant = (
                # symmetric (narrow) when accumulators are bounded: a negative weight then
                # costs its worst case no more than a positive one
                QuantIdentity(n_input_bits, signed=True,
                              narrow_range=n_accum_max_bits is not None)
                if is_first
                else QuantIdentity(n_a_bits, signed=signed_activation)
            )
            weight_bits = n_output_bits if (is_last and n_output_bits) else n_w_bits
            max_bits = n_accum_max_bits
            if isinstance(max_bits, str) and max_bits == "auto":
                max_bits = auto_accumulator_bits(input_quant, weight_bits, n_accum_products)
            self.layers.append(
                QuantLinear(
                    sizes[index],
                    sizes[index + 1],
                    n_bits=weight_bits,
                    input_quant=input_quant,
                    # The output accumulator is decrypted, never looked up: no rounding, and
                    # the circuit's output is sized for its worst case whatever its width.
                    acc_bits=None if is_last else n_accum_bits,
                    acc_max_bits=None if is_last else max_bits,
                )
            )
            if not is_last:
                self.activations.append(activation())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.input_scaling is not None:
            x = self.input_scaling(x)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.activations):
                x = self.activations[index](x)
        return x
