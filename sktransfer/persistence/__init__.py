"""A safe file format for fitted models: weights as safetensors, the rest as JSON.

``save(estimator, path)`` writes one zip file holding ``sktransfer.json`` (format version,
then for the model and each of its parts: the class, parameters and fitted state) and
``weights.safetensors``. ``load(path)`` rebuilds the model from these.

What can be saved: a fitted :class:`~sktransfer.FineTunedClassifier`, a
:class:`~sktransfer.PretrainedFeatureExtractor`, or a :class:`~sklearn.pipeline.Pipeline`
of these and of scikit-learn's ``StandardScaler``, ``Normalizer``, ``PCA``,
``LogisticRegression`` and ``LinearSVC``. Models whose backbone is an arbitrary Python
module, or that use a callable head, cannot be described without pickle: use
:mod:`joblib` for those.

**What keeps a file from running code.** Loading runs no pickle and imports no class
named in the file: the class names are looked up in the fixed list above, and anything
else is refused. This, not the checksums, is what makes a model file from someone else
safe to load. By contrast, a :mod:`joblib` or :mod:`pickle` file runs code while it
loads: load those only from sources you trust.

**What a file may make load read.** A file names its backbone, and loading builds it
from that name. By itself a file may name only the bundled models (``efficientnet_lite0``
... ``2``, ``all-MiniLM-L6-v2``) and torchvision's or timm's model names, whose weights
come from where those libraries keep them and are checked against the digest the file
recorded. A model folder or a Hugging Face hub repository (``"hf:/path/to/folder"``,
``"hf:org/model"``) is read only where the caller of ``load`` allows that source
(``allow_sources``), since a file from someone else could otherwise make loading read a
folder of this machine, or download a model, of their choosing. Saving such a model needs
no permission. A source registered with :func:`~sktransfer.backbones.register_source` is
the calling process's own code, and is allowed.

**What the checksums protect against.** The description records the SHA-256 of the
weights and of itself. They detect accidental damage (a truncated download, a flipped
bit, a file cut short by a full disk) and the file is refused. They are not a signature:
anyone who edits a file can recompute them, so they say nothing about who wrote it.

**What a file cannot make load do.** Every member must be stored uncompressed (as
``save`` writes it) and no larger than the file itself, so a crafted file cannot expand
into more memory than its own size; the checksums are computed while reading. The loaded
parameters are checked with each estimator's own constraints: an invalid value (such as
``batch_size=0``) or an ``image_size`` above the backbones' limit is refused; a
``num_workers`` above the CPUs this process may use, or a ``batch_size`` above 1024, is
lowered to that limit with a warning (they change neither the weights nor the
predictions). A file written by another version of the format is refused with a message
that says what to do.
"""

from ._dispatch import load_model, save_model

__all__ = ["load", "save"]


def save(estimator, path):
    """Save a fitted model in sktransfer's safe format (no pickle on load).

    Parameters
    ----------
    estimator : FineTunedClassifier, PretrainedFeatureExtractor or Pipeline
        A fitted estimator, or a fitted pipeline of these and of scikit-learn's
        ``StandardScaler``, ``Normalizer``, ``PCA``, ``LogisticRegression`` and
        ``LinearSVC``.
    path : str or path-like
        The file to write (conventionally ``*.skt``). It is written to a hidden temporary
        name in the same folder and renamed, so a failure (or Ctrl-C) leaves any existing
        file as it was and no partial file. A symbolic link is written through; the file's
        permissions follow the umask.

    Raises
    ------
    TypeError
        The estimator, or one of its parameters (a callable head, a backbone given as a
        Python module), cannot be described without pickle: the message says to use
        :mod:`joblib`.
    OSError
        ``path`` cannot be written: its folder is missing (:class:`FileNotFoundError`)
        or ``path`` is a folder (:class:`IsADirectoryError`).

    See Also
    --------
    load : Read the file back.

    Notes
    -----
    Training-only parameters that hold Python objects (``callbacks``, a callable
    ``augment``) are stored as None and listed under ``dropped_params``: the loaded model
    predicts the same, but refitting it would train without them. The ``memory`` folder of
    a pipeline, an extractor or a classifier is not stored: the loaded model has
    ``memory=None``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import sktransfer
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> clf = sktransfer.FineTunedClassifier(image_size=32, max_epochs=1).fit(X, [0, 1] * 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skt")
    >>> sktransfer.save(clf, path)
    >>> np.allclose(sktransfer.load(path).predict_proba(X), clf.predict_proba(X))
    True
    """
    save_model(estimator, path)


def load(path, *, allow_sources=None):
    """Load a model written by :func:`save`; no pickle runs.

    Parameters
    ----------
    path : str or path-like
        The file.
    allow_sources : "any", str or list of str, default=None
        The model folders and hub repositories the file may name as its backbone, as
        backbone specs: ``["hf:/models/my-encoder", "hf:org/model"]`` (a folder matches
        whatever path the file gives to it). None allows only what any file may name: the
        bundled models and torchvision's or timm's model names. ``"any"`` allows every
        source: use it only for files you trust.

    Returns
    -------
    estimator : FineTunedClassifier, PretrainedFeatureExtractor or Pipeline
        Fitted, on ``device="auto"`` of this machine (the CPU when the saved device is
        not available here).

    Raises
    ------
    ValueError
        The file is not in the format, is damaged or was modified, was written by another
        version of the format, or holds invalid parameters. The message names the file and
        the reason.
    SourceNotAllowedError
        A :class:`ValueError`: the file names a model folder or hub repository that
        ``allow_sources`` does not allow (``.source`` and ``.path`` say which; the message
        says how to allow it).
    TypeError
        ``allow_sources`` is neither ``"any"`` nor specs.
    FileNotFoundError
        There is no such file.

    Warns
    -----
    UserWarning
        A saved ``num_workers`` or ``batch_size`` was above this machine's limit and was
        lowered.

    See Also
    --------
    save : Write the file.

    Examples
    --------
    A model whose backbone is a model folder of your own loads once you allow that folder:

    >>> import sktransfer
    >>> model = sktransfer.load(  # doctest: +SKIP
    ...     "reviews.skt", allow_sources=["hf:/models/my-encoder"]
    ... )
    """
    return load_model(path, allow_sources)
