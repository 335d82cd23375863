"""The list of sklearn_fhe estimators, and the scikit-learn checks they are expected to fail."""

from __future__ import annotations

from typing import Any

from . import ensemble, linear_model, neural_network, tree

_FAMILIES = [linear_model, tree, ensemble, neural_network]
ALL_ESTIMATORS = [
    getattr(module, name)
    for module in _FAMILIES
    for name in module.__all__
    if hasattr(getattr(module, name), "_float_class")  # xgboost models need the extra
]


def check_instances() -> list:
    """One instance of every estimator, with its defaults, for ``parametrize_with_checks``.

    The tree ensembles' defaults are already small (``tree_model.DEFAULT_MAX_LEAVES``), so the
    checks run on what users get.
    """
    return [estimator_class() for estimator_class in ALL_ESTIMATORS]


def _sklearn_expected_failures(float_estimator: Any) -> dict:
    """scikit-learn's own expected failures for the estimator we wrap (private, may vanish)."""
    try:
        from sklearn.utils._test_common.instance_generator import _get_expected_failed_checks
    except ImportError:  # pragma: no cover - depends on the scikit-learn version
        return {}
    return _get_expected_failed_checks(float_estimator)


def expected_failed_checks(estimator: Any) -> dict:
    """``{check name: reason}`` for ``parametrize_with_checks``.

    Only the failures scikit-learn itself expects of the float model we wrap (our estimator
    behaves as that model there, e.g. Ridge's closed-form solver sets no iteration count), plus
    our own entries, each with its reason.
    """
    failures = {}
    float_class = getattr(estimator, "_float_class", None)
    if float_class is not None:
        float_estimator = float_class(**estimator._float_params())
        for check, reason in _sklearn_expected_failures(float_estimator).items():
            failures[check] = f"as scikit-learn's own {float_class.__name__}: {reason}"
    failures.update(getattr(estimator, "_expected_failed_checks", dict)())
    return failures
