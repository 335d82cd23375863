"""
Grid search over n_bits in a Pipeline
=====================================

Grid search over the bit width inside a Pipeline, then encrypted predictions.

Run: python examples/pipeline_gridsearch.py
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_fhe import FHELogisticRegression

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, random_state=0, stratify=y
)
pipe = Pipeline([("scaler", StandardScaler()), ("clf", FHELogisticRegression())])
search = GridSearchCV(pipe, {"clf__n_bits": [2, 3, 4, 6, 8], "clf__C": [0.1, 1.0]}, cv=3)
search.fit(X_train, y_train)
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"{params}: cv accuracy {score:.3f}")
best = search.best_estimator_
print("best:", search.best_params_, f"test accuracy {best.score(X_test, y_test):.3f}")
encrypted = best.predict(X_test[:32], fhe="execute")
print("encrypted predictions equal clear ones:", np.array_equal(encrypted, best.predict(X_test[:32])))
