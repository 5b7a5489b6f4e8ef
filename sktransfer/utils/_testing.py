"""Settings for the common scikit-learn compliance test.

``all_estimators()`` walks the package and returns every public estimator class, so a new
estimator is checked automatically. ``INIT_PARAMS`` gives each a fast configuration and
``EXPECTED_FAILED_CHECKS`` lists, with the reason, each scikit-learn check that cannot apply.
"""

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

# Modules whose import needs an optional dependency or that hold no estimators.
_SKIP_MODULES = ("sktransfer.utils", "sktransfer.cli")


def all_estimators():
    """Return ``[(name, class)]`` for every public estimator defined in sktransfer."""
    import sktransfer

    found = {}
    for info in pkgutil.walk_packages(sktransfer.__path__, prefix="sktransfer."):
        if info.name.startswith(_SKIP_MODULES) or ".tests" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseEstimator)
                and not name.startswith("_")
                and obj.__module__.startswith("sktransfer")
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())


# --- fast settings for the compliance test, by class name -----------------------------------
INIT_PARAMS = {
    # feature transfer / fine-tuning
    # (filled by the modules' owners)
    # adaptation
}

# --- checks that cannot apply, by class name: {check name: reason} --------------------------
EXPECTED_FAILED_CHECKS = {
    # feature transfer / fine-tuning
    # adaptation
}


def expected_failed_checks(estimator):
    """Return the ``{check: reason}`` dict for ``estimator`` (for ``parametrize_with_checks``)."""
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
