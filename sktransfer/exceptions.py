"""Exceptions raised by sktransfer."""

__all__ = ["EngineWarning", "SourceNotAllowedError", "WeightsUnavailableError"]


class EngineWarning(UserWarning):
    """The inference engine could not run a network as configured and says why.

    With ``engine="auto"``, a network that OpenVINO cannot convert, or whose converted
    form disagrees with PyTorch on the probe batch, runs in PyTorch after this warning
    (once per network and process). Also raised when ``inference_precision="bf16"`` is
    asked for on a CPU without bfloat16 instructions.
    """


class SourceNotAllowedError(ValueError):
    """A model file names a backbone source that the caller of ``load`` did not allow.

    A model folder or a hub repository (``"hf:/models/encoder"``, ``"hf:org/model"``) is
    read only where :func:`sktransfer.load` is given it in ``allow_sources``. The message
    names the file, the source and how to allow it.

    Attributes
    ----------
    source : str
        The backbone spec the file names, as it names it.
    path : str
        The model file.
    """

    def __init__(self, message, *, source, path):
        super().__init__(message)
        self.source = source
        self.path = path

    def __reduce__(self):
        """Pickle with the attributes (the keyword-only arguments are not in ``args``)."""
        return _rebuild_source_error, (str(self), self.source, self.path)


def _rebuild_source_error(message, source, path):
    return SourceNotAllowedError(message, source=source, path=path)


class WeightsUnavailableError(OSError):
    """Pretrained weights are neither cached on this machine nor downloadable.

    The message names the file, where it is looked for, and where to put it so that the
    next run works offline.
    """
