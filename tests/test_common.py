"""Every public estimator goes through scikit-learn's compliance checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer.utils._testing import INIT_PARAMS, all_estimators, expected_failed_checks


def _instances():
    return [cls(**INIT_PARAMS.get(name, {})) for name, cls in all_estimators()]


def test_all_estimators_found():
    names = {name for name, _ in all_estimators()}
    assert {"PretrainedFeatureExtractor", "FineTunedClassifier"} <= names


@parametrize_with_checks(_instances(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
