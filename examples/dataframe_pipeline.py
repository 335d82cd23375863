"""
A mixed-dtype DataFrame through a ColumnTransformer pipeline
============================================================

A pandas DataFrame of mixed dtypes, through a ColumnTransformer pipeline, predicted encrypted.

Numbers of several dtypes (int, float32, pandas' nullable Int64) with missing values, and two
categorical columns: imputed, one-hot encoded and scaled by scikit-learn, then an encrypted
logistic regression and an encrypted gradient-boosted forest. scikit-learn hands such frames on
as Fortran-ordered arrays; the encrypted answers equal the clear ones all the same.

Run: python examples/dataframe_pipeline.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_fhe import FHELogisticRegression, FHEXGBClassifier


def customers(n_rows: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic customer table: will the customer renew?"""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n_rows),
        "income": rng.lognormal(10, 0.5, n_rows).astype(np.float32),
        "visits": pd.array(rng.integers(0, 30, n_rows), dtype="Int64"),
        "city": rng.choice(["paris", "lyon", "nice", "lille"], n_rows),
        "plan": rng.choice(["basic", "plus", "pro"], n_rows),
    })
    score = (0.03 * frame["age"] + np.log(frame["income"]) / 2 + 0.08 * frame["visits"].astype(float)
             + (frame["plan"] == "pro") - (frame["city"] == "nice") + rng.normal(0, 0.7, n_rows))
    frame.loc[rng.random(n_rows) < 0.08, "income"] = np.nan
    frame.loc[rng.random(n_rows) < 0.05, "city"] = np.nan
    return frame, (score > score.median()).to_numpy().astype(int)


def pipeline(model) -> Pipeline:
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    prepare = ColumnTransformer([("numbers", numbers, ["age", "income", "visits"]),
                                 ("categories", categories, ["city", "plan"])],
                                sparse_threshold=0)
    return Pipeline([("prepare", prepare), ("model", model)])


def main() -> None:
    frame, y = customers()
    X_train, X_test, y_train, y_test = train_test_split(frame, y, test_size=0.25, random_state=0)
    print(X_test.dtypes.to_string(), "\n")
    for model in (FHELogisticRegression(n_bits=4), FHEXGBClassifier(n_estimators=10, max_depth=3)):
        pipe = pipeline(model).fit(X_train, y_train)
        clear = pipe.predict(X_test)
        rows = X_test.iloc[:20]
        pipe.predict(rows.iloc[:1], fhe="execute")  # compiles and makes the keys, once
        start = time.perf_counter()
        encrypted = pipe.predict(rows, fhe="execute")
        seconds = (time.perf_counter() - start) / len(rows)
        print(f"{type(model).__name__}: clear accuracy {np.mean(clear == y_test):.3f}, "
              f"simulated {np.mean(pipe.predict(X_test, fhe='simulate') == y_test):.3f}; "
              f"encrypted on {len(rows)} rows: equal to clear {np.array_equal(encrypted, clear[:20])}"
              f", {seconds:.3f} s per row")


if __name__ == "__main__":
    main()
