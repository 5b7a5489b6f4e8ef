"""Every public estimator goes through scikit-learn's compliance checks."""

import functools
import inspect
import re
from pathlib import Path

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

import sktransfer
import sktransfer.adaptation
import sktransfer.selection
from sktransfer.utils._testing import (
    EXPECTED_FAILED_CHECKS,
    INIT_PARAMS,
    all_estimators,
    expected_failed_checks,
)

# An expected failure that passes is an error: each entry must name a check that fails.
# (scikit-learn >= 1.8; older versions run the entries as plain xfails.)
_STRICT = (
    {"xfail_strict": True}
    if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters
    else {}
)


def _instances():
    return [cls(**INIT_PARAMS.get(cls, {})) for _, cls in all_estimators()]


def _public_estimators():
    """The estimator classes that the public packages export in ``__all__``."""
    found = set()
    for package in (sktransfer, sktransfer.adaptation, sktransfer.selection):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
                found.add(obj)
    return found


def test_all_estimators_found():
    found = {cls for _, cls in all_estimators()}
    assert found == _public_estimators()
    assert {cls.__name__ for cls in found} == {
        "PretrainedFeatureExtractor",
        "FineTunedClassifier",
        "FineTunedRegressor",
        "ZeroShotTextClassifier",
        "FewShotTextClassifier",
        "CORAL",
        "SubspaceAlignment",
        "TransferComponentAnalysis",
        "KMM",
        "KLIEP",
        "DiscriminatorReweight",
        "TrAdaBoost",
        "JointDistributionAdaptation",
        "OTMapping",
        "SourceOnly",
        "AdaptationSelector",
        "BackboneSelector",
    }


def test_settings_name_public_estimators():
    estimators = {cls for _, cls in all_estimators()}
    assert set(INIT_PARAMS) <= estimators
    assert set(EXPECTED_FAILED_CHECKS) <= estimators


def _check_name(check):
    return (check.func if isinstance(check, functools.partial) else check).__name__


@pytest.mark.parametrize("estimator", _instances(), ids=lambda est: type(est).__name__)
def test_expected_failures_name_checks_that_run(estimator):
    """An entry for a check that scikit-learn never runs on the estimator claims nothing."""
    ran = {_check_name(check) for _, check in estimator_checks_generator(estimator, mark=None)}
    assert set(expected_failed_checks(estimator)) - ran == set()


@parametrize_with_checks(_instances(), expected_failed_checks=expected_failed_checks, **_STRICT)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_reasons_name_tests_that_exist():
    """A reason that says which test covers a check names a test that is there."""
    root = Path(__file__).parent.parent
    named = 0
    for reasons in EXPECTED_FAILED_CHECKS.values():
        for reason in reasons.values():
            for path, test in re.findall(r"(tests/\w+\.py)::(\w+)", reason):
                assert re.search(rf"^def {test}\(", (root / path).read_text(), re.M), test
                named += 1
    assert named
