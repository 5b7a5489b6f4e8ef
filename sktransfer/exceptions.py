"""Exceptions raised by sktransfer."""

__all__ = ["WeightsUnavailableError"]


class WeightsUnavailableError(OSError):
    """Pretrained weights are neither cached on this machine nor downloadable.

    The message names the file, where it is looked for, and where to put it so that the
    next run works offline.
    """
