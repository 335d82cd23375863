"""Worst-case widths of the default network's lookup inputs, and what sizing for them costs.

For ``FHENeuralNetClassifier`` on load_digits (standardized, 25% stratified split,
random_state=0, as in benchmark.py) prints, per table lookup: the range of its input (the hidden
accumulator, before rounding) on the calibration rows and over the whole input grid (interval
arithmetic, what the circuit is sized for), their bit widths and the bits rounded away; then
the circuit's PBS per row, its widest integer, concrete's complexity, and the accuracy of the
float (QAT) model, of the integer model and of the simulated circuit on the whole test split.

Run: python benchmarks/lookup_bounds.py [--seeds 0 1 2] [--module-param NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sklearn_fhe
from sklearn_fhe.quantization.quantized_ops import QuantizedTableLookup
from sklearn_fhe.quantization.quantizers import bits_for_range


def digits_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def lookup_widths(model, X_train: np.ndarray) -> list[str]:
    """One line per lookup: calibration and worst-case ranges of its input."""
    module = model.quantized_module_
    values = {"input_0": module.quantize_input(X_train)}
    bounds = module_bounds(module)
    lines = []
    for step in module.steps:
        values[step.output] = np.asarray(step.op(*(values[name] for name in step.inputs)))
        if isinstance(step.op, QuantizedTableLookup):
            seen = values[step.inputs[0]]
            low, high = bounds[step.inputs[0]]
            magnitude = int(np.abs(seen).max())
            lines.append(
                f"lookup {step.op.op_type} on {step.inputs[0]}: calibration "
                f"[{seen.min()}, {seen.max()}] ({bits_for_range(-magnitude, magnitude)} bits, "
                f"symmetric), whole grid [{low.min()}, {high.max()}] "
                f"({bits_for_range(low.min(), high.max())} bits), "
                f"{step.op.lsbs_to_remove} bits rounded away")
    return lines


def module_bounds(module) -> dict:
    """Each value's interval over the whole input grid (see sklearn_fhe.quantization.bounds)."""
    from sklearn_fhe.quantization.bounds import input_interval, op_bounds

    quantization = module.input_quantizations[0]
    row = np.zeros(module.input_shape, dtype=np.int64)
    intervals = {"input_0": input_interval(quantization.quantizer, quantization.steps, row)}
    for step in module.steps:
        intervals[step.output] = op_bounds(step.op, [intervals[name] for name in step.inputs])
    return intervals


def float_accuracy(model, X, y) -> float:
    with torch.no_grad():
        out = model.module_(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy()
    return float(np.mean(model.classes_[out.argmax(axis=1)] == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--module-param", action="append", default=[],
                        help="module__NAME=VALUE for FHEMLP (VALUE is a Python literal)")
    args = parser.parse_args()
    import ast

    params = {f"module__{k}": ast.literal_eval(v)
              for k, v in (item.split("=", 1) for item in args.module_param)}
    X_train, X_test, y_train, y_test = digits_split()
    for seed in args.seeds:
        start = time.perf_counter()
        model = sklearn_fhe.FHENeuralNetClassifier(random_state=seed, **params)
        model.fit(X_train, y_train)
        fitted = time.perf_counter() - start
        model.compile(X_train)
        stats = model.quantized_module_.statistics()
        complexity = getattr(model.quantized_module_.fhe_circuit.module, "complexity", None)
        clear = model.predict(X_test, fhe="disable")
        simulated = model.predict(X_test, fhe="simulate")
        print(f"seed {seed} {params or ''}: fit {fitted:.1f} s")
        for line in lookup_widths(model, X_train):
            print("  " + line)
        print(f"  PBS/row {stats['pbs_per_row']}, max bit width {stats['max_bit_width']}, "
              f"concrete's complexity (all batch shapes) {complexity:.4g}")
        print(f"  accuracy: float (QAT) {float_accuracy(model, X_test, y_test):.3f}, "
              f"simulate {np.mean(simulated == y_test):.3f} (== disable: "
              f"{bool(np.array_equal(simulated, clear))})")


if __name__ == "__main__":
    main()
