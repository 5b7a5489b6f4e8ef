"""Seeing why: one entry point, :func:`explain`, that picks the method for the model.

=============  ==============================================  ===========================
method         models                                          inputs
=============  ==============================================  ===========================
``gradcam``    FineTunedClassifier, FineTunedRegressor         images
``cam``        Pipeline(PretrainedFeatureExtractor, linear)    images (final layer, avg)
``occlusion``  every model above, and any Pipeline starting    images (a patch) and texts
               with a PretrainedFeatureExtractor,              (a word)
               FewShotTextClassifier, ZeroShotTextClassifier
=============  ==============================================  ===========================
"""

from numbers import Integral, Real

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from .._extractor import PretrainedFeatureExtractor
from .._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._maps import cam_maps, check_cam, gradcam_maps
from ._occlusion import occlusion_maps
from ._words import occlude_words

__all__ = ["explain"]

METHODS = ("auto", "gradcam", "cam", "occlusion")


def _input_pipeline(model):
    """Return ``(kind, input pipeline)`` of a fitted model, or refuse it clearly."""
    if isinstance(model, (FineTunedClassifier, FineTunedRegressor)):
        check_is_fitted(model)
        return "fine-tuned", model.backbone_.preprocessing
    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], PretrainedFeatureExtractor):
        check_is_fitted(model.steps[0][1])
        check_is_fitted(model.steps[-1][1])
        return "pipeline", model.steps[0][1].backbone_.preprocessing
    embedder = getattr(model, "embedder_", None)  # FewShot- and ZeroShotTextClassifier
    if isinstance(embedder, PretrainedFeatureExtractor):  # (same floor: not imported)
        return "embedder", embedder.backbone_.preprocessing
    if isinstance(model, BaseEstimator) and get_tags(model).input_tags.string:
        check_is_fitted(model)  # a text classifier not fitted yet: say so
    raise TypeError(
        "explain takes a fitted FineTunedClassifier, FineTunedRegressor, "
        "FewShotTextClassifier, ZeroShotTextClassifier, or a Pipeline that starts with a "
        f"PretrainedFeatureExtractor; got {type(model).__name__}."
    )


def _choose(method, kind, modality, model):
    """Return the method that explains ``model``: ``method`` checked, or auto's pick."""
    if modality != "image":
        if method not in ("auto", "occlusion"):
            raise ValueError(
                f"method={method!r} maps images; this model takes {modality}s, which are "
                "explained by occlusion: use method='auto' or 'occlusion'."
            )
        return "occlusion"
    if method == "auto":
        if kind == "fine-tuned":
            return "gradcam"
        try:
            check_cam(model)
        except ValueError:
            return "occlusion"
        return "cam"
    if method == "gradcam" and kind != "fine-tuned":
        raise ValueError(
            "method='gradcam' needs a FineTunedClassifier or FineTunedRegressor; use "
            "method='cam' or 'occlusion' for a Pipeline."
        )
    if method == "cam":
        if kind != "pipeline":
            raise ValueError(
                "method='cam' needs a Pipeline(PretrainedFeatureExtractor, linear "
                "classifier); use method='gradcam' or 'occlusion'."
            )
        check_cam(model)
    return method


def _check_options(method, patch_size, batch_size):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    if not (isinstance(patch_size, Real) and 0 < patch_size <= 1):
        raise ValueError(
            "patch_size is the patch's side as a fraction of the network's input side, in "
            f"(0, 1]; got {patch_size!r}."
        )
    if isinstance(batch_size, bool) or not (isinstance(batch_size, Integral) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")


def explain(
    model, X, *, target=None, method="auto", layer=None, patch_size=0.25, batch_size=16,
    verbose=0,
):  # fmt: skip
    """Return why a fitted model predicts what it does: a map per image, words per text.

    Parameters
    ----------
    model : fitted estimator
        A :class:`~sktransfer.FineTunedClassifier` or
        :class:`~sktransfer.FineTunedRegressor`, a ``Pipeline`` that starts with a
        :class:`~sktransfer.PretrainedFeatureExtractor` (then any classifier or
        regressor), a :class:`~sktransfer.FewShotTextClassifier` or a
        :class:`~sktransfer.ZeroShotTextClassifier`.
    X : images or texts
        As the model takes them (paths, arrays, PIL images; a list of texts).
    target : class label, int or None, default=None
        What to explain: a class label (a multi-label model's or a regressor's output
        index), the same for every input; None explains each input's top class (its
        largest output).
    method : {"auto", "gradcam", "cam", "occlusion"}, default="auto"
        ``"gradcam"``: Grad-CAM, for fine-tuned image models. ``"cam"``: the class
        activation map, exact for ``Pipeline(PretrainedFeatureExtractor(), linear
        classifier)`` (final layer, average pooling). ``"occlusion"``: the fall of the
        target's score when a patch of the image (or a word of the text) is covered
        (removed), for any model. ``"auto"`` picks Grad-CAM for a fine-tuned image
        model, the class activation map where it is exact, and occlusion otherwise
        (always for texts).
    layer : str or None, default=None
        Grad-CAM's layer, a name of ``model.backbone_.layer_names``; None is the final
        feature map (the stage before the pooling).
    patch_size : float, default=0.25
        Occlusion's patch side, as a fraction of the side of the network's input (the
        centre crop); patches are half a patch apart, so 0.25 scores 49 variants of
        each image.
    batch_size : int, default=16
        Images per pass (images per call of the model, for occlusion).
    verbose : int, default=0
        1 shows a progress bar of the occlusion methods.

    Returns
    -------
    explanations : list, one per input
        For images, ndarrays of shape (height, width), float32: each the size of the
        original image (the resize and centre crop are undone; outside the crop the
        map is 0), scaled so that its maximum is 1 (an all-zero map where nothing
        raises the target). For texts, :class:`~sktransfer.inspection.TextExplanation`
        objects: the text's words and punctuation marks (``tokens``) and each one's
        attribution (``scores``: how much the target's score falls without it).

    See Also
    --------
    plot_explanation : Overlay an image's map.
    plot_text_explanation : Draw a text with its words coloured by attribution.

    Notes
    -----
    The model is left as it was: no weight, gradient buffer or mode is changed.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.inspection import explain
    >>> X = np.random.default_rng(0).integers(0, 255, (4, 120, 90, 3), dtype=np.uint8)
    >>> pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression())
    >>> pipe = pipe.fit(X, [0, 1, 0, 1])
    >>> [m.shape for m in explain(pipe, X[:2])]
    [(120, 90), (120, 90)]
    """
    _check_options(method, patch_size, batch_size)
    kind, pipeline = _input_pipeline(model)
    how = _choose(method, kind, pipeline.modality, model)
    inputs = pipeline.check(X)
    if pipeline.modality != "image":
        return occlude_words(model, inputs, target, verbose=verbose)
    if how == "gradcam":
        return gradcam_maps(model, inputs, target, layer=layer, batch_size=batch_size)
    if how == "cam":
        return cam_maps(model, inputs, target, batch_size=batch_size)
    return occlusion_maps(
        model, pipeline, inputs, target, patch_size=patch_size, batch_size=batch_size,
        verbose=verbose,
    )  # fmt: skip
