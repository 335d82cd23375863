"""compile_torch_model with its defaults (rounding_threshold_bits="auto") on common networks.

Prints, per network and n_bits: the rounding chosen, the widths "auto" compiled (it may narrow
n_bits where that is more accurate: the circuit is sized for the worst case over the input
grid), PBS per row, the widest integer, and the mean absolute error of the simulated circuit
relative to the float model's mean output, on the 200 calibration rows and on 200 other rows of
the same distribution (standard normal, seeds 0 and 1).

Run: python benchmarks/auto_rounding_table.py [--n-bits 2 4 6 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sklearn_fhe import compile_torch_model  # noqa: E402
# the networks of the tests: what is measured here is what is tested there
from tests.torch.test_auto_rounding import MODELS as NETWORKS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-bits", type=int, nargs="+", default=[2, 4, 6, 8])
    args = parser.parse_args()
    print("| network | n_bits | rounding chosen | widths compiled (in/w/act/out) | PBS/row | "
          "widest integer | error vs float | on other rows | compile s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (factory, shape) in NETWORKS.items():
        model = factory()
        x = np.random.default_rng(0).normal(size=(200,) + shape).astype(np.float32)
        other = np.random.default_rng(1).normal(size=(200,) + shape).astype(np.float32)
        for n_bits in args.n_bits:
            start = time.perf_counter()
            quantized = compile_torch_model(model, x, n_bits=n_bits, batch_size=1)
            seconds = time.perf_counter() - start
            stats = quantized.statistics()
            used = quantized.n_bits
            errors = [_relative_error(model, quantized, rows) for rows in (x, other)]
            print(f"| {name} | {n_bits} | {quantized.rounding_threshold_bits} | "
                  f"{used.inputs}/{used.weights}/{used.activations}/{used.outputs} | "
                  f"{stats['pbs_per_row']:.0f} | {stats['max_bit_width']} | "
                  f"{errors[0]:.4f} | {errors[1]:.4f} | {seconds:.1f} |", flush=True)


def _relative_error(model: torch.nn.Module, quantized, x: np.ndarray) -> float:
    with torch.no_grad():
        reference = model(torch.as_tensor(x)).numpy()
    error = np.abs(quantized.forward(x, fhe="simulate") - reference).mean()
    return float(error / np.abs(reference).mean())


if __name__ == "__main__":
    main()
