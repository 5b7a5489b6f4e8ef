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
    "PretrainedFeatureExtractor": {"image_size": 32, "batch_size": 8},
    "FineTunedClassifier": {"image_size": 32, "batch_size": 8, "max_epochs": 1},
    # adaptation
}

_IMAGES = (
    "image estimators take image batches (n, H, W[, C]), file paths or PIL images; "
    "the same property is tested on real images in the estimator's own tests"
)
_TABULAR = "feeds 2-D tabular data (n_samples, n_features); " + _IMAGES
# Checks whose only input is generated tabular data.
_TABULAR_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_transformer_general",
    "check_classifiers_train",
    "check_classifiers_regression_target",
    "check_supervised_y_2d",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifier_data_not_an_array",
    "check_classifiers_multilabel_output_format_predict",
    "check_classifiers_multilabel_output_format_predict_proba",
    "check_classifiers_multilabel_output_format_decision_function",
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
    "check_class_weight_classifiers",
    "check_classifiers_predictions",
    "check_estimators_nan_inf",
)

_NO_TARGET = (
    "the check's data has no target rows; domain adaptation needs unlabelled target rows "
    "(y = -1) beside the source, and says so with 'No target rows' (tests/test_adaptation.py)"
)
# Checks that fit on plain (X, y) data, which has source rows only.
_NO_TARGET_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_supervised_y_2d",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
)

# --- checks that cannot apply, by class name: {check name: reason} --------------------------
EXPECTED_FAILED_CHECKS = {
    # feature transfer / fine-tuning
    "PretrainedFeatureExtractor": dict.fromkeys(_TABULAR_CHECKS, _TABULAR)
    | {
        "check_transformer_data_not_an_array": "feeds a non-array 2-D tabular container; "
        + _IMAGES,
        "check_dtype_object": "feeds rows of Python objects; " + _IMAGES,
        "check_estimators_empty_data_messages": "expects a message about 0 tabular features; "
        + "empty image input is rejected with 'No images: X is empty' (tests/test_images.py)",
        "check_fit2d_1sample": "expects a message about 1 tabular sample; one image is valid "
        + "input for a feature extractor, which learns nothing in fit",
        "check_fit2d_1feature": "expects a message about 1 tabular feature; " + _IMAGES,
        "check_positive_only_tag_during_fit": _TABULAR,
    },
    "FineTunedClassifier": dict.fromkeys(_TABULAR_CHECKS, _TABULAR)
    | {
        "check_dtype_object": "feeds rows of Python objects; " + _IMAGES,
        "check_estimators_empty_data_messages": "expects a message about 0 tabular features; "
        + "empty image input is rejected with 'No images: X is empty' (tests/test_images.py)",
        "check_fit2d_1sample": "expects a message about 1 tabular sample; " + _IMAGES,
        "check_fit2d_1feature": "expects a message about 1 tabular feature; " + _IMAGES,
        "check_positive_only_tag_during_fit": _TABULAR,
    },
    # adaptation
    **dict.fromkeys(
        (
            "CORAL",
            "SubspaceAlignment",
            "TransferComponentAnalysis",
            "KMM",
            "KLIEP",
            "DiscriminatorReweight",
            "TrAdaBoost",
        ),
        {
            "check_classifiers_classes": "its last problem has the classes -1 and 1; y = -1 "
            "marks unlabelled target rows in domain adaptation (skada's convention), so -1 "
            "cannot be a class (the same check with string and other integer classes passes "
            "in the same test)",
        },
    ),
}


def expected_failed_checks(estimator):
    """Return the ``{check: reason}`` dict for ``estimator`` (for ``parametrize_with_checks``)."""
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
