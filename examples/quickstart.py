"""
Quickstart: a pipeline that predicts on encrypted data
======================================================

A scikit-learn pipeline whose classifier predicts on encrypted data.

Run: python examples/quickstart.py
"""

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHELogisticRegression

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, random_state=0, stratify=y
)

# The user's lines: swap LogisticRegression for FHELogisticRegression, search n_bits.
pipe = Pipeline([("scaler", StandardScaler()), ("clf", FHELogisticRegression(n_bits=2))])
search = GridSearchCV(pipe, {"clf__n_bits": [2, 3, 4, 6, 8]}).fit(X_train, y_train)
scores = dict(zip(search.cv_results_["param_clf__n_bits"], search.cv_results_["mean_test_score"]))
print("cross-validated accuracy by n_bits: "
      + ", ".join(f"{n_bits}: {score:.3f}" for n_bits, score in scores.items()))
# What follows reports the search's result: the best pipeline, refitted on all training rows.
pipe = search.best_estimator_
n_bits = search.best_params_["clf__n_bits"]
print(f"GridSearchCV best n_bits: {n_bits} (the pipeline reported below)")

float_pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())])
float_accuracy = float_pipe.fit(X_train, y_train).score(X_test, y_test)
quantized_accuracy = np.mean(pipe.predict(X_test) == y_test)

start = time.perf_counter()
pipe.predict(X_test[:1], fhe=True)  # first encrypted call: compiles once, generates keys
setup_seconds = time.perf_counter() - start

start = time.perf_counter()
fhe_predictions = pipe.predict(X_test, fhe=True)  # encrypt → run on ciphertexts → decrypt
seconds = time.perf_counter() - start
fhe_accuracy = np.mean(fhe_predictions == y_test)

print(f"float accuracy     : {float_accuracy:.3f}")
print(f"quantized ({n_bits} bits) : {quantized_accuracy:.3f}")
print(f"FHE (encrypted)    : {fhe_accuracy:.3f}")
print(f"encrypted inference: {1000 * seconds / len(X_test):.1f} ms per row over {len(X_test)} rows "
      f"(compile + keys: {setup_seconds:.1f} s, once)")
assert np.array_equal(fhe_predictions, pipe.predict(X_test)), "FHE must equal clear integers"
