"""What a model file may make ``load`` read: the bundled models and the catalogues, by itself.

A backbone spec in a file says where its network comes from. The bundled models
(``efficientnet_lite0`` ... ``2``, ``all-MiniLM-L6-v2``) are inside installed packages; a
torchvision name or a ``timm:`` catalogue name is a fixed network whose weights come from
where that library keeps them, and are checked against the digest the file recorded. A file
may name those by itself. ``"hf:<folder or repository>"`` names a location instead: any
folder of this machine (``../`` included) or any repository of the Hugging Face hub, read or
downloaded while loading. A file names one only where the caller of ``load`` allows that
source (``allow_sources``); otherwise a file from someone else could make loading read the
folder, or fetch the model, of their choosing.

A source registered with :func:`~sktransfer.backbones.register_source` is code of the
calling process, and decides itself what its specs may read.
"""

import os
import re

from ..exceptions import SourceNotAllowedError

ANY = "any"
_CATALOGUE_NAME = re.compile(r"[\w.\-]+")  # timm's model names and weight tags


def location_of(spec):
    """Return where ``spec`` is read from when it names a location (a folder, a repository).

    None for a bundled model, a catalogue name, or a spec this process resolves by itself.
    """
    if spec.startswith("hf:"):
        place = spec[len("hf:") :]
        if os.path.isdir(place):
            return f"the folder {os.path.realpath(place)} of this machine"
        return f"the Hugging Face hub repository {place!r} (downloaded unless cached)"
    if spec.startswith("timm:") and not _CATALOGUE_NAME.fullmatch(spec[len("timm:") :]):
        return f"{spec[len('timm:') :]!r}, a location outside timm's catalogue"
    return None


def _same_place(spec):
    """Return a spec as compared with the allowed ones: a folder by its real path."""
    if spec.startswith("hf:") and os.path.isdir(spec[len("hf:") :]):
        return "hf:" + os.path.realpath(spec[len("hf:") :])
    return spec


class AllowedSources:
    """The sources a caller of ``load`` allows a file to name, besides those it may anyway.

    Parameters
    ----------
    allow_sources : "any", str or iterable of str, or None
        Backbone specs as given to ``backbone=`` (``"hf:/models/encoder"``,
        ``"hf:org/model"``); a folder matches whatever path leads to it. ``"any"`` allows
        every source; None allows none beyond the bundled models and the catalogues.
    path : str
        The file, for messages.
    """

    def __init__(self, allow_sources, path):
        if allow_sources is None:
            allow_sources = ()
        elif isinstance(allow_sources, str):
            allow_sources = (allow_sources,)
        try:
            given = list(allow_sources)
        except TypeError:
            given = None
        if given is None or not all(isinstance(s, str) for s in given):
            raise TypeError(
                "allow_sources must be 'any', a backbone spec such as 'hf:/models/encoder', "
                f"or a list of them; got {allow_sources!r}."
            )
        self.any = ANY in given
        self.allowed = {_same_place(spec) for spec in given}
        self.path = path

    def check(self, spec):
        """Refuse a ``spec`` that names a location the caller did not allow.

        Raises :class:`~sktransfer.exceptions.SourceNotAllowedError`, with the spec and the
        file, so that a caller (the command line) can say how to allow it in its own words.
        """
        if not isinstance(spec, str) or self.any:
            return
        where = location_of(spec)
        if where is None or _same_place(spec) in self.allowed:
            return
        raise SourceNotAllowedError(
            f"{self.path} names the backbone {spec!r}, read from {where}. A model file may "
            "name by itself only the bundled models and torchvision's or timm's model names; "
            "a model folder or a hub repository is read only where the caller allows it. If "
            f"you trust this file and that source: sktransfer.load(path, "
            f"allow_sources=[{spec!r}]) (or allow_sources='any').",
            source=spec,
            path=self.path,
        ) from None
