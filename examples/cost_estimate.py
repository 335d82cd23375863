"""
What an encrypted prediction costs, before compiling
====================================================

``fhe_cost()`` counts a fitted model's table lookups (PBS) per row and estimates the seconds per
encrypted row and the size of the evaluation keys, without compiling anything. After compiling
(and generating keys), the same call puts the circuit's own figures beside the estimates.

Run: python examples/cost_estimate.py
"""

import time

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHEDecisionTreeClassifier, FHELogisticRegression

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, random_state=0, stratify=y
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# %%
# Before compiling: a linear model has no table lookup at all, a tree one small lookup per leaf.
linear = FHELogisticRegression(n_bits=8).fit(X_train, y_train)
tree = FHEDecisionTreeClassifier(max_depth=5, n_bits=6, random_state=0).fit(X_train, y_train)
for name, model in [("logistic regression", linear), ("decision tree", tree)]:
    cost = model.fhe_cost()
    print(f"{name}: {cost['pbs_per_row']} PBS per row {cost['pbs_per_row_by_bit_width']}, "
          f"widest integer {cost['max_bit_width']} bits, "
          f"~{cost['estimated_s_per_row']:.3f} s per encrypted row, "
          f"~{cost['estimated_key_bytes'] / 1e6:.0f} MB of evaluation keys")

# %%
# After compiling and generating keys, the circuit's figures stand beside the estimates.
tree.compile()
tree.quantized_module_.keygen()
tree.predict(X_test[:1], fhe="execute")  # the first call loads the circuit
start = time.perf_counter()
tree.predict(X_test[:16], fhe="execute")
measured = (time.perf_counter() - start) / 16
cost = tree.fhe_cost()
print(f"PBS per row: estimated {cost['pbs_per_row']}, compiled {cost['compiled_pbs_per_row']:.0f}")
print(f"widest integer: estimated {cost['max_bit_width']}, "
      f"compiled {cost['compiled_max_bit_width']} bits")
print(f"evaluation keys: estimated {cost['estimated_key_bytes'] / 1e6:.0f} MB, "
      f"generated {cost['compiled_key_bytes'] / 1e6:.0f} MB")
print(f"seconds per encrypted row: estimated {cost['estimated_s_per_row']:.3f}, "
      f"measured {measured:.3f}")
