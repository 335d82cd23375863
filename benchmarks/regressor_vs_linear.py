"""Default FHENeuralNetRegressor against LinearRegression on small tabular regression sets.

Prints, per data set: LinearRegression's test R², the default network's R² in FHE simulation,
their difference (the target: >= -0.02), the network's fit seconds and PBS per row.

Run: python benchmarks/regressor_vs_linear.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHENeuralNetRegressor

DATA_SETS = {
    "make_friedman1(n_samples=1000, random_state=0)": lambda: make_friedman1(
        n_samples=1000, random_state=0
    ),
    "load_diabetes": lambda: load_diabetes(return_X_y=True),
}


def run(name: str, seed: int) -> dict:
    X, y = DATA_SETS[name]()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    linear = make_pipeline(StandardScaler(), LinearRegression()).fit(X_train, y_train)
    network = make_pipeline(StandardScaler(), FHENeuralNetRegressor(random_state=seed))
    start = time.perf_counter()
    network.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    network[-1].compile()
    simulate = network.predict(X_test, fhe="simulate")
    return {
        "linear": r2_score(y_test, linear.predict(X_test)),
        "network": r2_score(y_test, simulate),
        "fit s": fit_seconds,
        "pbs/row": network[-1].quantized_module_.statistics()["pbs_per_row"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="network random_state")
    args = parser.parse_args()
    for name in DATA_SETS:
        for seed in args.seeds:
            r = run(name, seed)
            print(
                f"{name} seed {seed}: LinearRegression R2 {r['linear']:.3f} | "
                f"FHENeuralNetRegressor simulate R2 {r['network']:.3f} | "
                f"difference {r['network'] - r['linear']:+.3f} | fit {r['fit s']:.1f} s | "
                f"PBS/row {r['pbs/row']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
