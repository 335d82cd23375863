"""Concurrency scenarios, each run in a child process by ``test_concurrency.py``.

A child process, started in an empty working directory, keeps a crash of concrete's native code
from taking the test session down and lets the test check that nothing was written there.
Run one by hand with ``python -m tests.concurrency.scenarios NAME``.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

import sklearn_fhe

N_THREADS = 8
MODES = ("disable", "simulate", "execute")
#: Rows each thread predicts: few, for encrypted execution stays cheap.
N_ROWS = 4

_keys = importlib.import_module("concrete.fhe.compilation.keys")


class Calls:
    """Counts the calls of functions it wraps, from any thread."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def wrap(self, name: str, function: Callable) -> Callable:
        def counted(*args, **kwargs):
            with self._lock:
                self.counts[name] += 1
            return function(*args, **kwargs)

        return counted


def count_key_generations(calls: Calls) -> None:
    """Count concrete's key set constructions (a key generation, or a load from the cache)."""
    _keys.Keyset = calls.wrap("keygen", _keys.Keyset)


def count_compilations(calls: Calls, estimator, name: str = "compile") -> None:
    module = estimator.quantized_module_
    module.compile = calls.wrap(name, module.compile)


def data(n_features: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, n_features)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def fitted(family: str):
    """A fitted, uncompiled classifier of ``family``, with small settings."""
    X, y = data()
    if family == "linear":
        model = sklearn_fhe.FHELogisticRegression(n_bits=4)
    elif family == "forest":
        model = sklearn_fhe.FHERandomForestClassifier(n_estimators=3, max_depth=2,
                                                      random_state=0, n_bits=3)
    else:
        model = sklearn_fhe.FHENeuralNetClassifier(max_epochs=3, random_state=0,
                                                   module__hidden_layer_sizes=(4,))
    return model.fit(X, y), X[:N_ROWS]


def in_threads(calls: list[Callable]) -> list:
    """Run every call in its own thread, all released at once; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(run, call) for call in calls]]


def mixed_modes(model, X) -> list:
    """8 threads predicting at once, the three modes interleaved."""
    return in_threads([
        (lambda mode=MODES[i % 3]: (mode, model.predict_proba(X, fhe=mode)))
        for i in range(N_THREADS)
    ])


def same_estimator(family: str, compiled: bool) -> None:
    """One estimator, 8 threads, three modes: the sequential results; one compilation and one
    key generation however many threads need them."""
    model, X = fitted(family)
    expected = model.predict_proba(X)  # clear integers: what every mode must give
    calls = Calls()
    count_key_generations(calls)
    if compiled:
        model.compile()
    count_compilations(calls, model)
    for mode, result in mixed_modes(model, X):
        assert np.array_equal(result, expected), (family, mode, result, expected)
    assert calls.counts["compile"] == (0 if compiled else 1), calls.counts
    assert calls.counts["keygen"] == 1, calls.counts
    # and again, now that everything exists: nothing is made twice
    for mode, result in mixed_modes(model, X):
        assert np.array_equal(result, expected), (family, mode)
    assert calls.counts["compile"] == (0 if compiled else 1), calls.counts
    assert calls.counts["keygen"] == 1, calls.counts


def same_linear_uncompiled() -> None:
    same_estimator("linear", compiled=False)


def same_forest_uncompiled() -> None:
    same_estimator("forest", compiled=False)


def same_network_uncompiled() -> None:
    same_estimator("network", compiled=False)


def same_forest_compiled() -> None:
    same_estimator("forest", compiled=True)


def two_estimators_compile_at_once() -> None:
    """Two estimators compiled lazily by threads at the same time: no collision, each compiled
    once, each giving its own clear results."""
    (linear, X), (forest, _) = fitted("linear"), fitted("forest")
    expected = {"linear": linear.predict_proba(X), "forest": forest.predict_proba(X)}
    calls = Calls()
    count_compilations(calls, linear, "linear")
    count_compilations(calls, forest, "forest")
    models = {"linear": linear, "forest": forest}
    results = in_threads([
        (lambda name=name: (name, models[name].predict_proba(X, fhe="simulate")))
        for name in ["linear", "forest"] * (N_THREADS // 2)
    ])
    for name, result in results:
        assert np.array_equal(result, expected[name]), name
    assert calls.counts == Counter(linear=1, forest=1), calls.counts


def torch_models_compile_at_once() -> None:
    """compile_torch_model called from 4 threads at once on different MLPs."""
    import torch

    X, _ = data()

    def compile_one(seed: int):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        module = sklearn_fhe.compile_torch_model(net, X, n_bits=3)
        return module.forward(X[:N_ROWS], fhe="simulate"), module.forward(X[:N_ROWS])

    for simulated, clear in in_threads([lambda s=s: compile_one(s) for s in range(4)]):
        assert np.array_equal(simulated, clear)


def failed_compilation_writes_nothing() -> None:
    """A compilation concrete rejects (a 17-bit lookup) raises our error and leaves no debug
    folder in the working directory, with our configuration or the user's own."""
    from concrete import fhe

    from sklearn_fhe.errors import BitWidthError
    from sklearn_fhe.fhe.compile import compile_integer_function

    def too_wide(x):
        return fhe.univariate(lambda v: v // 3)(x * 1000)

    for configuration in (None, fhe.Configuration(show_progress=False)):
        try:
            compile_integer_function(too_wide, np.arange(100).reshape(50, 2), 2, configuration)
        except BitWidthError:
            pass
        else:
            raise AssertionError("a 17-bit lookup compiled")


SCENARIOS = {
    function.__name__: function
    for function in [
        same_linear_uncompiled, same_forest_uncompiled, same_network_uncompiled,
        same_forest_compiled, two_estimators_compile_at_once, torch_models_compile_at_once,
        failed_compilation_writes_nothing,
    ]
}


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    leftovers = os.listdir(".")
    assert not leftovers, f"written into the working directory: {leftovers}"
    print("ok")
