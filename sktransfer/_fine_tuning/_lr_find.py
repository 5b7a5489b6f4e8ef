"""The learning-rate finder: a range test, as fastai's ``lr_find``.

From the start that ``fit`` would train from (the same network, frozen groups, head
start and data, from the frozen-prefix cache when there is one), the test takes one
optimiser step per batch while the head's rate grows exponentially from ``start_lr`` to
``end_lr`` over ``num_it`` steps (every group's rate in proportion: ``backbone_lr`` and
``lr_decay`` keep their ratios to ``lr``), and records each step's loss, smoothed by an
exponential moving average (debiased, :data:`LOSS_SMOOTHING`). It stops when the
smoothed loss passes :data:`DIVERGENCE` times its lowest (Smith, "Cyclical Learning
Rates for Training Neural Networks", 2017; fastai's ``LRFinder``).

The suggestion is fastai's default, the *valley* (:func:`valley`): the middle-to-low
part of the longest stretch over which the loss keeps falling, computed as fastai does
without the first tenth of the steps and the last five.
"""

import math

import numpy as np

__all__ = ["DIVERGENCE", "LOSS_SMOOTHING", "range_test", "valley"]

LOSS_SMOOTHING = 0.98
DIVERGENCE = 4.0


def range_test(net, dataset, start_lr, end_lr, num_it):
    """Train ``net`` (a built skorch net) at growing rates; return ``(rates, losses)``.

    Parameters
    ----------
    net : skorch.NeuralNet
        Built, not initialised: its optimizer's groups hold each group's rate for the
        head's rate ``net.lr``.
    dataset : torch.utils.data.Dataset
        The training data, batched as ``fit`` batches it.
    start_lr, end_lr : float
        The head's first and last rate.
    num_it : int
        Steps, unless the loss diverges first.

    Returns
    -------
    rates, losses : ndarrays of the same length
        The head's rate and the smoothed loss at each step taken.
    """
    net.initialize()
    groups = net.optimizer_.param_groups
    ratios = [group["lr"] / net.lr for group in groups]
    rates, losses = [], []
    average, best = 0.0, math.inf
    batches = _endless(net, dataset)
    for step in range(num_it):
        rate = start_lr * (end_lr / start_lr) ** (step / max(num_it - 1, 1))
        for group, ratio in zip(groups, ratios, strict=True):
            group["lr"] = rate * ratio
        loss = float(net.train_step(next(batches))["loss"].detach())
        average = LOSS_SMOOTHING * average + (1 - LOSS_SMOOTHING) * loss
        smoothed = average / (1 - LOSS_SMOOTHING ** (step + 1))
        rates.append(rate)
        losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > DIVERGENCE * best:
            break
        best = min(best, smoothed)
    net.optimizer_.state.clear()
    return np.array(rates), np.array(losses)


def _endless(net, dataset):
    """Yield training batches, epoch after epoch (shuffled as ``fit`` shuffles them)."""
    while True:
        yield from net.get_iterator(dataset, training=True)


def valley(rates, losses):
    """Return fastai's *valley* suggestion for a range test's ``rates`` and ``losses``.

    The longest run of steps over which the loss keeps decreasing (a longest decreasing
    subsequence), cut in thirds: the rate half way through its second third. As fastai,
    without the first tenth of the steps and the last five; on a curve too short for
    that, a tenth of the rate at the lowest loss.

    Examples
    --------
    >>> rates = np.logspace(-6, 0, 30)
    >>> losses = np.r_[np.full(6, 2.0), np.linspace(2.0, 0.5, 18), np.linspace(1, 9, 6)]
    >>> float(np.log10(valley(rates, losses))).__round__(2)
    -3.1
    """
    n = len(losses)
    if n - 5 - n // 10 < 3:
        return float(rates[int(np.argmin(losses))] / 10)
    rates, losses = rates[n // 10 : n - 5], losses[n // 10 : n - 5]
    n = len(losses)
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[end] < lengths[i]:
                end = i
                start = end - lengths[end]
    third = (end - start) / 3
    return float(rates[start + int(third) + int(third / 2)])
