"""What a codec is: how the format saves and rebuilds the instances of one class.

:mod:`._dispatch` holds the table that gives each class its codec. A codec turns a fitted
estimator into ``(params, state, tensors)``: the constructor's parameters, the fitted state
as JSON values, and its tensors by name (CPU, contiguous). Nested estimators (a pipeline's
steps) are stored as parts of their own through the ``child`` function it is given.
"""


class Codec:
    """How the format saves and rebuilds one class (subclasses override the two methods).

    Attributes
    ----------
    training_only : tuple of str
        Parameters used only by ``fit``: when they hold Python objects (``callbacks``, a
        callable ``augment``) they are stored as None and listed under ``dropped_params``
        instead of refusing the model.
    validate_before : bool
        Whether the loaded parameters can be checked on ``cls(**params)`` before
        :meth:`decode` builds anything (False for a ``Pipeline``, which needs its steps).
    """

    training_only = ()
    validate_before = True

    def encode(self, estimator, child):
        """Return ``(params, state, tensors)`` of a fitted ``estimator``.

        ``child(key, sub)`` stores the nested estimator ``sub`` as a part and returns the
        key to put in ``state``.
        """
        raise NotImplementedError

    def decode(self, cls, params, state, tensors, child, sources):
        """Rebuild a fitted ``cls`` from what :meth:`encode` returned (all checked).

        ``child(key)`` returns the nested estimator stored under ``key``.
        ``sources.check(spec)`` must pass before anything is read from a backbone ``spec``
        the file names (:class:`._sources.AllowedSources`).
        """
        raise NotImplementedError
