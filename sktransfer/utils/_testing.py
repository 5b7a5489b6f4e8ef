"""Settings for the common scikit-learn compliance test.

``all_estimators()`` walks the public modules and returns every public estimator class, so
a new estimator is checked automatically. ``INIT_PARAMS`` gives each class a fast
configuration and ``EXPECTED_FAILED_CHECKS`` lists, by class and with the reason, each
scikit-learn check that cannot apply to it. Both are keyed by class and built on first
use.
"""

import functools
import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

import sktransfer

from .. import FineTunedClassifier, FineTunedRegressor, PretrainedFeatureExtractor
from ..adaptation import (
    CORAL,
    KLIEP,
    KMM,
    AdaptationSelector,
    DiscriminatorReweight,
    JointDistributionAdaptation,
    OTMapping,
    SourceOnly,
    SubspaceAlignment,
    TrAdaBoost,
    TransferComponentAnalysis,
)
from ..selection import BackboneSelector

# Modules whose import needs an optional dependency or that hold no estimators.
_SKIP_MODULES = ("sktransfer.utils", "sktransfer.cli")


def _public_modules():
    """``sktransfer`` and every module under it whose dotted path has no private part."""
    yield sktransfer
    for info in pkgutil.walk_packages(sktransfer.__path__, prefix="sktransfer."):
        parts = info.name.split(".")
        if info.name.startswith(_SKIP_MODULES) or any(p.startswith("_") for p in parts):
            continue
        if "tests" in parts:
            continue
        yield importlib.import_module(info.name)


def all_estimators():
    """Return ``[(name, class)]`` for every public estimator of sktransfer.

    A public estimator is a concrete :class:`~sklearn.base.BaseEstimator` subclass defined
    in sktransfer and reachable from a public module under a public name; the private
    base classes of the private modules are left out.
    """
    found = {}
    for module in _public_modules():
        for name in dir(module):  # sktransfer's own names are lazy: dir lists them
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not name.startswith("_")
                and obj.__module__.startswith("sktransfer")
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())


_TABULAR = (
    "feeds 2-D tabular data (n_samples, n_features), which an image estimator refuses "
    "('tabular data, not images')"
)
_CONTRACT = "tests/test_contract.py::"


def _in_image_form(test):
    return f"{_TABULAR}; the image form is {_CONTRACT}{test}"


# The checks whose data is tabular and what covers each in image form, for both image
# estimators; the ones that only a transformer or only a classifier runs follow.
_IMAGE_CHECKS = {
    "check_fit_score_takes_y": _in_image_form("test_fit_and_score_take_y_second"),
    "check_estimators_overwrite_params": _in_image_form("test_fit_leaves_the_parameters_alone"),
    "check_dont_overwrite_parameters": _in_image_form("test_fit_leaves_the_parameters_alone"),
    "check_estimators_fit_returns_self": _in_image_form("test_fit_returns_self"),
    "check_readonly_memmap_input": _in_image_form("test_fortran_ordered_and_read_only_images"),
    "check_f_contiguous_array_estimator": _in_image_form(
        "test_fortran_ordered_and_read_only_images"
    ),
    "check_estimators_dtypes": _in_image_form("test_image_dtypes"),
    "check_dtype_object": _in_image_form("test_non_array_containers_give_the_same_outputs"),
    "check_pipeline_consistency": _in_image_form("test_pipeline_gives_the_same_outputs"),
    "check_estimators_pickle": _in_image_form("test_pickle_round_trip_gives_the_same_outputs"),
    "check_dict_unchanged": _in_image_form("test_methods_leave_the_estimator_unchanged"),
    "check_fit_idempotent": _in_image_form("test_fit_is_idempotent"),
    "check_fit_check_is_fitted": _in_image_form("test_every_method_needs_fit"),
    "check_fit2d_predict1d": _in_image_form("test_bad_input_is_refused_by_every_method"),
    "check_estimators_nan_inf": _in_image_form("test_bad_input_is_refused_by_every_method"),
    "check_estimators_empty_data_messages": "expects a message about 0 tabular features; "
    f"the image form is {_CONTRACT}test_bad_input_is_refused_by_every_method ('X is empty')",
    "check_n_features_in": "an image estimator takes images of any size, and file paths: "
    "there is no n_features_in_ to set",
    "check_n_features_in_after_fitting": "an image estimator takes images of any size, and "
    "file paths: there is no n_features_in_ to set or to check",
    "check_fit2d_1feature": "feeds tabular data with one feature, which has no image form",
    "check_positive_only_tag_during_fit": "feeds tabular data with negative values; images "
    "hold values in [0, 255] (or [0, 1] as floats) and others are refused "
    "(tests/test_images.py::test_bad_inputs_get_clear_errors)",
}
_TRANSFORMER_CHECKS = {
    "check_transformer_general": _in_image_form("test_fit_transform_is_fit_then_transform"),
    "check_transformer_data_not_an_array": _in_image_form(
        "test_non_array_containers_give_the_same_outputs"
    ),
    "check_methods_sample_order_invariance": _in_image_form("test_sample_order_invariance"),
    "check_methods_subset_invariance": _in_image_form("test_subset_invariance"),
    "check_fit2d_1sample": "expects an error for one tabular sample; one image is valid input "
    f"for a feature extractor, which learns nothing in fit ({_CONTRACT}"
    "test_one_image_fits_a_transformer)",
}
_CLASSIFIER_CHECKS = {
    "check_classifier_data_not_an_array": _in_image_form(
        "test_non_array_containers_give_the_same_outputs"
    ),
    "check_supervised_y_2d": _in_image_form("test_column_y_warns_and_fits_the_same_model"),
    "check_classifiers_regression_target": _in_image_form("test_continuous_labels_are_refused"),
    "check_classifiers_one_label": _in_image_form("test_one_class_is_refused"),
    "check_fit2d_1sample": _in_image_form("test_one_class_is_refused"),
    "check_classifiers_classes": _in_image_form("test_classes_are_the_sorted_labels"),
    "check_classifiers_train": f"{_TABULAR}; training accuracy, probabilities and classes on "
    "real photos: tests/test_finetune.py::test_head_only_training_beats_chance_on_real_photos",
    "check_class_weight_classifiers": f"{_TABULAR}; class_weight='balanced' weighs the loss: "
    "tests/test_finetune.py::test_integer_labels_class_weight_and_mlp_head",
}
_TARGETS = "tests/test_targets.py::"
# sample_weight checks (both fine-tuned estimators), in image form in tests/test_targets.py
_SAMPLE_WEIGHT_CHECKS = {
    **dict.fromkeys(
        (
            "check_sample_weights_pandas_series",
            "check_sample_weights_not_an_array",
            "check_sample_weights_list",
            "check_sample_weights_shape",
            "check_sample_weights_not_overwritten",
            "check_all_zero_sample_weights_error",
        ),
        f"{_TABULAR}; the image form is {_TARGETS}"
        "test_sample_weight_combines_with_class_weight_and_is_checked",
    ),
    "check_sample_weight_equivalence_on_dense_data": f"{_TABULAR}; the image form is "
    f"{_TARGETS}test_integer_sample_weights_train_as_repeated_rows",
}
_MULTI_LABEL = (
    f"{_TABULAR}; the image form is {_TARGETS}"
    "test_multi_label_beats_a_trivial_predictor_and_has_scikit_learn_s_format"
)
_CLASSIFIER_TARGET_CHECKS = {
    "check_classifiers_one_label_sample_weights": _in_image_form("test_one_class_is_refused"),
    "check_classifiers_multilabel_representation_invariance": _MULTI_LABEL,
    "check_classifiers_multilabel_output_format_predict": _MULTI_LABEL,
    "check_classifiers_multilabel_output_format_predict_proba": _MULTI_LABEL,
    "check_classifiers_multilabel_output_format_decision_function": _MULTI_LABEL,
}
_REGRESSOR_CHECKS = {
    "check_regressors_train": f"{_TABULAR}; training on real photos: "
    f"{_TARGETS}test_a_regressor_learns_what_a_pretrained_network_sees",
    "check_regressor_data_not_an_array": _in_image_form(
        "test_non_array_containers_give_the_same_outputs"
    ),
    "check_regressor_multioutput": f"{_TABULAR}; the image form is "
    f"{_TARGETS}test_several_targets_and_a_column_target",
    "check_supervised_y_2d": f"{_TABULAR}; the image form is "
    f"{_TARGETS}test_several_targets_and_a_column_target",
    "check_regressors_int": f"{_TABULAR}; the image form is "
    f"{_TARGETS}test_targets_are_standardised_and_mapped_back",
    "check_regressors_no_decision_function": f"{_TABULAR}; the image form is "
    f"{_TARGETS}test_the_regressor_has_no_decision_function_or_probabilities",
    "check_fit2d_1sample": "expects an error for one tabular sample; one image with one "
    "target trains (its scale is then 1), as one tabular row would",
}
_SELECTOR_CHECKS = {
    "check_fit2d_1sample": "expects an error that names one tabular sample; the selector "
    "refuses tabular data first, and one image too, since scoring needs two classes "
    "(tests/test_selection.py::test_selector_needs_labels_of_two_classes)",
}
_MINUS_ONE_CLASS = {
    "check_classifiers_classes": "its last problem has the classes -1 and 1; y = -1 marks "
    "unlabelled target rows in domain adaptation (skada's convention), so -1 cannot be a "
    "class (the same check with string and other integer classes passes in the same test)",
}


@functools.cache
def _settings():
    """``(INIT_PARAMS, EXPECTED_FAILED_CHECKS)``, keyed by class."""
    init_params = {
        PretrainedFeatureExtractor: {"image_size": 32, "batch_size": 8},
        FineTunedClassifier: {"image_size": 32, "batch_size": 8, "max_epochs": 1},
        FineTunedRegressor: {"image_size": 32, "batch_size": 8, "max_epochs": 1},
        BackboneSelector: {"image_size": 32, "batch_size": 8, "n_resamples": 0},
        JointDistributionAdaptation: {"n_iter": 2},
        KLIEP: {"cv": 2, "max_iter": 200},  # the checks test the contract, not the fit
        DiscriminatorReweight: {"cv": 2},
        TrAdaBoost: {"n_estimators": 3},
        AdaptationSelector: {"candidates": [CORAL()], "cv": 2},
    }
    adaptation = (
        CORAL,
        SubspaceAlignment,
        TransferComponentAnalysis,
        KMM,
        KLIEP,
        DiscriminatorReweight,
        TrAdaBoost,
        JointDistributionAdaptation,
        OTMapping,
        SourceOnly,
        AdaptationSelector,
    )
    expected_failed = {
        PretrainedFeatureExtractor: _IMAGE_CHECKS | _TRANSFORMER_CHECKS,
        # FineTunedClassifier is tagged non-deterministic, so scikit-learn runs no order or
        # subset invariance check on it (tests/test_contract.py runs both).
        FineTunedClassifier: _IMAGE_CHECKS
        | _CLASSIFIER_CHECKS
        | _SAMPLE_WEIGHT_CHECKS
        | _CLASSIFIER_TARGET_CHECKS,
        FineTunedRegressor: _IMAGE_CHECKS | _REGRESSOR_CHECKS | _SAMPLE_WEIGHT_CHECKS,
        **dict.fromkeys(adaptation, _MINUS_ONE_CLASS),
        BackboneSelector: _IMAGE_CHECKS | _TRANSFORMER_CHECKS | _SELECTOR_CHECKS,
    }
    return init_params, expected_failed


def __getattr__(name):
    if name == "INIT_PARAMS":
        return _settings()[0]
    if name == "EXPECTED_FAILED_CHECKS":
        return _settings()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def expected_failed_checks(estimator):
    """Return the ``{check: reason}`` dict for ``estimator`` (for ``parametrize_with_checks``)."""
    return _settings()[1].get(type(estimator), {})
