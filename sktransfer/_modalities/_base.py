"""The contract between the core and a modality: :class:`InputPipeline`.

A modality (images, texts, and whatever comes next) is one module that implements this
class. The estimators, the activation cache, fine-tuning and the safe format only call
these methods; none of them asks which modality it works on. A new modality is a new
module with a subclass, and a backbone source that builds networks with it (see
:func:`sktransfer.backbones.register_source`).

What the core needs from a modality:

* :meth:`InputPipeline.check` validates raw input ``X`` without decoding it and returns
  the checked inputs: a sized container with ``take(indices)`` (a subset, in that order)
  and ``content_keys()`` (one string per input that changes when the input's content
  does, for the activation cache);
* :meth:`~InputPipeline.batches` and :meth:`~InputPipeline.dataset` turn checked inputs
  into what the network takes (for inference, and for training);
* :meth:`~InputPipeline.example_input` gives a blank batch, to probe shapes;
* :meth:`~InputPipeline.pool` turns a layer's output into one vector per input;
* :meth:`~InputPipeline.with_options` takes the estimator parameters that configure it
  (its :attr:`~InputPipeline.options`) and refuses those of another modality;
* :meth:`~InputPipeline.describe` and :meth:`~InputPipeline.restore` write and read its
  settings as JSON, for the safe file format;
* its ``repr`` names everything that changes the network's input, for cache keys.
"""

from abc import ABC, abstractmethod
from typing import ClassVar

__all__ = ["InputPipeline", "is_set"]


def is_set(value):
    """Whether an estimator option was given: None, False and 0 are its unset defaults."""
    return not (value is None or value is False or (type(value) is int and value == 0))


class InputPipeline(ABC):
    """How a backbone's inputs are checked, batched, pooled and described (abstract).

    Subclasses are immutable values (dataclasses with ``frozen=True``): a changed setting
    is a new pipeline.
    """

    #: The modality's name, as messages and files give it ("image", "text").
    modality: ClassVar[str] = ""
    #: The estimator parameters this modality takes (others must be left unset).
    options: ClassVar[tuple] = ()

    @abstractmethod
    def check(self, X):
        """Validate raw input ``X`` (nothing is decoded) and return the checked inputs."""

    @abstractmethod
    def batches(
        self, inputs, batch_size, *, augment=None, num_workers=0, progress=False, desc=None,
        one_shape=False,
    ):  # fmt: skip
        """Yield the network's input batches for checked ``inputs``.

        In the inputs' order, or in the order given by the iterable's ``order``
        attribute (a permutation), which :func:`~sktransfer._core.inference.run_batches`
        undoes. ``one_shape=True`` asks for batches whose stage outputs stack (one shape).
        """

    @abstractmethod
    def dataset(self, inputs, targets=None, *, augment=None):
        """Return a :class:`torch.utils.data.Dataset` of ``(input, target)`` for training."""

    @abstractmethod
    def example_input(self, n=1, random=False):
        """Return a batch of ``n`` blank (or random) inputs as the network receives them."""

    @abstractmethod
    def pool(self, output, pooling):
        """Pool a layer's output to a ``(n_samples, n_features)`` tensor."""

    @abstractmethod
    def describe(self):
        """Return the settings as a JSON-serialisable dict (for the safe format)."""

    @abstractmethod
    def restore(self, description):
        """Return a copy of this pipeline with the settings of :meth:`describe`'s output.

        ``self`` is the pipeline of a freshly built backbone; the description is checked
        (it comes from a file) and refused with a ValueError when it does not fit.
        """

    def with_options(self, **options):
        """Return a copy configured by an estimator's parameters.

        Parameters of this modality (:attr:`options`) are applied by
        :meth:`_configure`; a parameter of another modality that is set (not None, False
        or 0) is a ValueError that names it, rather than silently ignored.
        """
        foreign = [name for name, value in options.items() if name not in self.options]
        foreign = [name for name in foreign if is_set(options[name])]
        if foreign:
            name = foreign[0]
            takes = ", ".join(self.options) if self.options else "none"
            raise ValueError(
                f"{name}={options[name]!r} does not apply to this backbone, which takes "
                f"{self.modality} inputs (its input options: {takes}); leave {name} unset."
            )
        return self._configure(**{name: options[name] for name in self.options if name in options})

    def _configure(self, **options):
        """Apply this modality's options (None: keep the pipeline's own)."""
        return self
