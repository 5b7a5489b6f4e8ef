"""Layer taps: the outputs of named layers of a network, from one forward pass.

The one home for reading a layer's output: the extractor's ``layer=``, ``layer="auto"``
and the transferability scores all tap a network through :class:`LayerTaps`, which hooks
the layers, stops the forward pass once every wanted layer has run (unless the final
output is wanted too), and removes its hooks whatever happens.
"""

__all__ = ["FINAL_INPUT", "LayerTaps"]

#: The key of the last stage's input (the final feature map, before pooling).
FINAL_INPUT = None


class _Stop(Exception):
    """Raised by a hook once every wanted layer has run: the rest of the network is skipped."""


class LayerTaps:
    """Capture the outputs of named layers of ``net`` in one forward pass.

    Parameters
    ----------
    net : torch.nn.Module
        The network (its module names, as ``net.named_modules()`` gives them).
    layers : iterable of str or None
        The layers to tap. ``None`` (:data:`FINAL_INPUT`) taps the input of the last
        stage of a staged network: the final feature map, before its pooling.
    run_to_end : bool, default=False
        Run the whole network (its final output is returned); otherwise the pass stops
        as soon as every tapped layer has run.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> final, outputs = LayerTaps(net, ["0"])(torch.zeros(5, 4))
    >>> final is None, tuple(outputs["0"].shape)
    (True, (5, 3))
    """

    def __init__(self, net, layers, *, run_to_end=False):
        self.net = net
        self.layers = list(dict.fromkeys(layers))
        self.run_to_end = run_to_end

    def _hooks(self, captured):
        named = [layer for layer in self.layers if layer is not FINAL_INPUT]

        def done():
            return not self.run_to_end and all(layer in captured for layer in self.layers)

        def keep(name):
            def hook(module, args, output):
                captured.setdefault(name, output)  # a module called twice: its first call
                if done():
                    raise _Stop

            return hook

        def keep_input(module, args):
            captured.setdefault(FINAL_INPUT, args[0])
            if done():
                raise _Stop

        handles = [
            self.net.get_submodule(name).register_forward_hook(keep(name)) for name in named
        ]
        if FINAL_INPUT in self.layers:
            last = list(self.net.children())[-1]
            handles.append(last.register_forward_pre_hook(keep_input))
        return handles

    def __call__(self, x):
        """Run the network on ``x``: return ``(final, {layer: output})``.

        ``final`` is the network's output, or None when the pass stopped early.
        """
        captured = {}
        handles = self._hooks(captured)
        final = None
        try:
            final = self.net(x)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return final, captured
