"""
A quantization-aware CNN compiled with compile_torch_model
==========================================================

A quantization-aware CNN on load_digits (8x8, one channel), compiled with compile_torch_model.

The network is built from sklearn_fhe's QAT layers::

    QuantConv2d(1 -> 4, 3x3, stride 2, pad 1; signed 4-bit inputs, 3-bit weights,
                accumulators rounded to 5 bits)              # 4 x 4 x 4 = 64 accumulators
    -> QuantReLU(3 bits)                                      # 64 table lookups per image
    -> flatten -> QuantLinear(64 -> 10, 3-bit weights)        # logits, decrypted as is

Trained with skorch (Adam, cosine learning rate), then:

1. ``calibrate_accumulators(net, X_train)`` fixes each layer's accumulator rounding to
   ``lsbs = signed_bit_width(-M, M) - acc_bits`` with ``M = max |sum q_x q_w|`` over X_train;
2. ``compile_torch_model(net, X_train, n_bits={"weights": 3}, rounding_threshold_bits=5)``
   reproduces it: the post-training quantizer derives the same ``lsbs`` from the same rows when
   ``rounding_threshold_bits`` equals the layers' ``acc_bits`` (5) and the calibration set is
   the one the layers were calibrated on; ``n_bits["weights"]`` must be the QAT weight width so
   the trained integer weights are kept as they are. The fake quantizers' grids fix the input and
   activation quantization (their ``n_bits`` do not matter).

Then the float QAT model, the integer model and the simulated circuit predict the same classes.

Run: python examples/qat_cnn_digits.py [--epochs 100] [--seed 0] [--execute 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from concrete import fhe
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from skorch.callbacks import LRScheduler
from torch import nn

from sklearn_fhe import compile_torch_model
from sklearn_fhe.torch.qat import (
    QuantConv2d,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    accumulator_bit_widths,
    calibrate_accumulators,
)

N_W_BITS, N_A_BITS, N_INPUT_BITS, N_ACCUM_BITS = 3, 3, 4, 5


class QATDigitsCNN(nn.Module):
    """One strided QAT convolution, a QAT ReLU and a QAT linear classifier.

    The activation quantizer (``QuantReLU``) comes before the flatten: the post-training
    quantizer then fuses ReLU and the activation grid into the one table lookup that follows the
    convolution.
    """

    def __init__(self, n_classes: int = 10, channels: int = 4):
        super().__init__()
        self.conv = QuantConv2d(
            1, channels, kernel_size=3, stride=2, padding=1, n_bits=N_W_BITS,
            input_quant=QuantIdentity(N_INPUT_BITS, signed=True), acc_bits=N_ACCUM_BITS,
        )
        self.act = QuantReLU(N_A_BITS)
        self.fc = QuantLinear(channels * 4 * 4, n_classes, n_bits=N_W_BITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.fc(self.act(self.conv(x)).flatten(1))


def load(seed_split: int = 0):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed_split, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    images = lambda a: scaler.transform(a).astype(np.float32).reshape(-1, 1, 8, 8)  # noqa: E731
    return images(X_train), images(X_test), y_train.astype(np.int64), y_test


def train(X_train, y_train, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small network trains fastest on one thread
    try:
        net = NeuralNetClassifier(
            QATDigitsCNN, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-2,
            max_epochs=epochs, batch_size=64, train_split=None, verbose=0,
            callbacks=[LRScheduler(policy=torch.optim.lr_scheduler.CosineAnnealingLR,
                                   T_max=epochs)],
        ).fit(X_train, y_train)
    finally:
        torch.set_num_threads(threads)
    return net.module_


def main(epochs: int = 100, seed: int = 0, execute_rows: int = 0, configuration=None) -> dict:
    X_train, X_test, y_train, y_test = load()
    start = time.perf_counter()
    module = train(X_train, y_train, epochs, seed)
    fit_seconds = time.perf_counter() - start
    calibrate_accumulators(module, X_train)  # the layers' rounding = the compiler's
    with torch.no_grad():
        float_logits = module(torch.as_tensor(X_test)).numpy()
    start = time.perf_counter()
    quantized = compile_torch_model(
        module, X_train, n_bits={"weights": N_W_BITS},
        rounding_threshold_bits=N_ACCUM_BITS, configuration=configuration, batch_size=16,
    )
    compile_seconds = time.perf_counter() - start
    disable = quantized.forward(X_test)
    simulate = quantized.forward(X_test, fhe="simulate")
    stats = quantized.statistics()
    result = {
        "float_qat": float((float_logits.argmax(1) == y_test).mean()),
        "disable": float((disable.argmax(1) == y_test).mean()),
        "simulate": float((simulate.argmax(1) == y_test).mean()),
        "simulate==disable": bool(np.array_equal(simulate, disable)),
        "float==disable (classes)": bool(np.array_equal(float_logits.argmax(1),
                                                        disable.argmax(1))),
        "max |float - disable| logit": float(np.abs(float_logits - disable).max()),
        "pbs/row": stats["pbs_per_row"],
        "max bits": stats["max_bit_width"],
        "fit s": fit_seconds,
        "compile s": compile_seconds,
        "accumulators": [(s["name"], s["bits"], s["rounded_bits"], s["n_outputs"])
                         for s in accumulator_bit_widths(module, X_train)],
    }
    if execute_rows:
        rows = X_test[:execute_rows]
        quantized.keygen()
        start = time.perf_counter()
        execute = quantized.forward(rows, fhe="execute")
        result["s/row"] = (time.perf_counter() - start) / len(rows)
        result["execute==simulate"] = bool(np.array_equal(execute, simulate[:execute_rows]))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="A quantization-aware CNN on load_digits, compiled with compile_torch_model.")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--execute", type=int, default=0, help="encrypted rows to run")
    args = parser.parse_args()
    for key, value in main(args.epochs, args.seed, args.execute).items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
