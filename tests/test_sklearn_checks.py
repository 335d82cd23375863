"""scikit-learn's own estimator checks, run on every sklearn_fhe estimator."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_fhe.estimators import check_instances, expected_failed_checks


@parametrize_with_checks(
    check_instances(), expected_failed_checks=expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
