"""Docstring parts the fine-tuned estimators share, written once.

A class docstring names them on a line of their own, ``[parameters: a b c]``,
``[attributes]`` or ``[notes]``; :func:`fill` puts the text in.
"""

import re

__all__ = ["fill"]

PARAMETERS = {
    "backbone": """\
    backbone : str, torch.nn.Module, Backbone or fitted estimator, default="efficientnet_lite0"
        The pretrained network (see :func:`sktransfer.load_backbone`): an image network,
        or a text encoder (``"all-MiniLM-L6-v2"``, bundled, or ``"hf:<name>"``), whose
        layer groups are its embeddings and each encoder layer. Transformers want a small
        learning rate for their body: with ``n_frozen`` other than ``"all"`` on text, set
        ``backbone_lr`` between 1e-5 and 5e-5. A fitted
        FineTunedClassifier transfers its fine-tuned backbone to a new task; ``clone``
        (and so a grid search) keeps such a fitted source as it is.""",
    "weights": """\
    weights : str, path or None, default="DEFAULT"
        Pretrained weights; None trains the same architecture from scratch.""",
    "n_frozen": """\
    n_frozen : "auto", "all" or int, default="auto"
        Layer groups kept frozen, counted from the input. ``"all"`` trains the head only,
        ``0`` fine-tunes everything, ``-1`` all but the last group, and so on.
        ``"auto"`` chooses among ``"all"``, ``-1``, ``-2`` and ``-3`` (those the backbone
        has) on held-out rows (``validation_fraction`` of the data, at least 2 per class
        for one label per input and else 10, at most half): starting from the head
        alone, it
        unfreezes one more group while that raises the held-out score (minus the
        log-loss for a classifier, R² for a regressor), keeps the last candidate that
        did, and refits it on all the data. Each candidate tried trains what
        ``max_epochs`` gives the training part; ``recipe_results_`` has a row per
        candidate tried, with the seconds it took. The search costs a few fits (a
        median of 3.0 times one fit of its choice in ``benchmarks/RESULTS.md``); set
        ``n_frozen`` to fit one recipe (``best_recipe_`` is the choice's). With
        fewer than 10 inputs, or too few to hold out those rows, it trains the head
        alone (``"all"``) without a search, and ``recipe_results_`` says why.""",
    "head": """\
    head : None, int or callable, default=None
        None: one linear layer. An int: a hidden layer of that width. A callable:
        ``head(num_features, n_outputs)`` returning a module (``n_outputs``: the classes,
        the labels or the targets).""",
    "head_init": """\
    head_init : {"probe", "zeros"}, default="probe"
        How the head's last linear layer starts. ``"probe"``: fitted to convergence on
        what reaches it before training (the frozen network's features for
        ``head=None``), as scikit-learn's ``LogisticRegression()`` (one per label for a
        multi-label ``y``; ``C=1``, scikit-learn's default) or ``RidgeCV`` of the
        standardised targets (the penalty of least leave-one-out error, from 1e-3 to
        1e4) would fit it, with ``sample_weight`` and ``class_weight``; training
        continues from there and keeps that fit's L2 penalty on the layer, so that with
        ``n_frozen="all"`` the model stays the logistic or ridge regression's. This
        takes one forward pass over the training inputs, in eval mode and without
        augmentation (from the frozen-prefix cache when there is one).
        ``"zeros"``: at zero, and no penalty. A callable head is probed when it is a
        :class:`torch.nn.Sequential` that ends in a :class:`torch.nn.Linear`, and
        otherwise keeps the start it was built with.""",
    "dropout": """\
    dropout : float, default=0.0
        Dropout before the head's linear layers.""",
    "max_epochs": """\
    max_epochs : int or "auto", default="auto"
        Training epochs. ``"auto"``: 10, or more for small data, so that training takes
        at least 100 optimiser steps (``ceil(100 / batches per epoch)`` epochs: 100 for
        32 inputs in batches of 32). An integer is taken as given. With
        ``early_stopping``, the most epochs.""",
    "batch_size": """\
    batch_size : int, default=32
        Inputs per step.""",
    "lr": """\
    lr : float, default=1e-3
        Learning rate of the new head.""",
    "lr_schedule": """\
    lr_schedule : {"constant", "warmup_cosine", "one_cycle"}, default="constant"
        How every learning rate (``lr``, ``backbone_lr``) changes at each optimiser step:
        ``"constant"``; ``"warmup_cosine"``, a linear warm-up over the first 10 % of the
        steps, then a cosine decay towards 0 (as Hugging Face's
        ``get_cosine_schedule_with_warmup``); ``"one_cycle"``, PyTorch's
        :class:`~torch.optim.lr_scheduler.OneCycleLR` with its defaults (up from a 25th
        of each rate to it over 30 % of the steps, then down to near 0, as fastai's
        ``fit_one_cycle``). Early stopping cuts the schedule short.""",
    "backbone_lr": """\
    backbone_lr : float, default=None
        Learning rate of the unfrozen backbone groups; None means ``lr / 10``.""",
    "lr_decay": """\
    lr_decay : float in (0, 1], default=None
        Layer-wise learning-rate decay: the unfrozen layer group ``k`` places below the
        top one trains at ``backbone_lr * lr_decay ** k`` (ULMFiT's discriminative rates,
        BEiT's layer decay), so that lower, more generic layers move less. None (or 1)
        trains every unfrozen group at ``backbone_lr``; ``lr_schedule`` scales every
        group's rate alike.""",
    "unfreeze_after": """\
    unfreeze_after : int, default=0
        Gradual unfreezing: train the head alone for this many epochs, then the unfrozen
        layer groups too (from epoch ``unfreeze_after + 1``). Until then their weights
        and BatchNorm statistics do not change. The epochs count in ``max_epochs`` and
        the ``lr_schedule`` runs over all of them; the body never trains if
        ``unfreeze_after`` reaches ``max_epochs``. With ``head_init="probe"`` the head
        already starts fitted (a linear probe), so these epochs only continue its
        training; they are the classic recipe with ``head_init="zeros"``.""",
    "optimizer": """\
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        The optimizer (SGD with momentum 0.9).""",
    "weight_decay": """\
    weight_decay : float, default=1e-4
        Weight decay.""",
    "augment": """\
    augment : None, "default" or callable, default=None
        Training augmentation: None for none (the frozen prefix is then cached),
        ``"default"`` for random resized crops and horizontal flips, or a torchvision
        transform applied to each decoded image before resizing and normalisation. The
        image reaches it as a ``(3, H, W)`` tensor (uint8, or float32 in [0, 1] for
        high-bit-depth files), as torchvision's v2 transforms take it.""",
    "tta": """\
    tta : bool or int in [1, 6], default=False
        Test-time augmentation, images only: ``predict``, ``predict_proba`` and
        ``score`` average over views of each image: a classifier's probabilities (each
        label's for a multi-label ``y``; the predicted class is the most probable on
        average), a regressor's predictions. True takes the image and its mirror (the
        network's input flipped left to right); an int ``n`` the first ``n`` of the
        image, its mirror and its four corner crops of 7/8 of the side, resized back
        (1 is the image alone). Each view costs a pass of the network; training does not
        use it. A text backbone refuses it.""",
    "image_size": """\
    image_size : int, default=None
        Image backbones: side of the square crop the network sees; None uses the
        backbone's own.""",
    "max_length": """\
    max_length : int, default=None
        Text backbones: tokens per text (longer texts are truncated, with a warning that
        counts them); None uses the model's own (256 for all-MiniLM-L6-v2).""",
    "early_stopping": """\
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (drawn with ``random_state``,
        stratified by class for one label per input, not augmented) and stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs, keeping the best
        weights.""",
    "validation_fraction": """\
    validation_fraction : float, default=0.1
        Held-out share when ``early_stopping`` is on, and for ``n_frozen="auto"``'s
        choice.""",
    "n_iter_no_change": """\
    n_iter_no_change : int, default=3
        Patience of early stopping.""",
    "class_weight": """\
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss, multiplied by ``sample_weight``. With a
        multi-label ``y``, ``"balanced"`` weighs each label's positives by its negatives
        over its positives (a dict is refused).""",
    "device": """\
    device : str, default="auto"
        ``"auto"`` takes CUDA when present, else the CPU; or ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``. On GPUs that compute in bfloat16 (Ampere and later) training and
        prediction run in bfloat16 mixed precision.""",
    "random_state": """\
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling and augmentation: a CPU fit is reproducible.""",
    "verbose": """\
    verbose : int, default=0
        1 prints skorch's table of epochs and shows progress bars while caching and
        predicting.""",
    "callbacks": """\
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net, after the ones this estimator adds.""",
    "num_workers": """\
    num_workers : int, default=0
        Worker processes that decode images.""",
    "cache_size": """\
    cache_size : float, default=2048
        Megabytes the frozen-prefix cache may hold (the float32 output of the frozen
        stages for every training input). When the cache would be larger, or with
        ``cache_size=0``, every epoch runs the whole network instead (the same losses up
        to float rounding, and slower).""",
    "memory": """\
    memory : str, path-like, joblib.Memory or None, default=None
        A folder (or a :class:`joblib.Memory`) where frozen-stage outputs are also kept
        on disk, for other processes (a search with ``n_jobs``, a later session), as
        :class:`~sklearn.pipeline.Pipeline`'s ``memory`` keeps fitted transformers.
        None keeps nothing on disk. Delete the folder to free the space.""",
}

ATTRIBUTES = """\
    net_ : skorch.NeuralNet
        The skorch net; its module (``net_.module_``) is the backbone's trunk followed by
        the new head.
    n_layer_groups_ : int
        Number of layer groups of the backbone.
    n_frozen_ : int
        Number of frozen groups, ``n_frozen`` resolved (with ``"auto"``: chosen).
    best_recipe_ : dict
        ``{"n_frozen": value}``: the ``n_frozen`` fitted, as a parameter (with
        ``"auto"``, the one chosen; else the parameter as given).
    recipe_results_ : dict of lists
        How ``n_frozen`` was chosen, a row per candidate and rung, as ``cv_results_``
        (``pandas.DataFrame(recipe_results_)`` shows it): ``candidate``, ``rung``,
        ``epochs``, ``validation_score`` (minus the held-out log-loss, or R²),
        ``seconds`` (its fit and score) and ``note``.
        With an explicit ``n_frozen``, or when ``"auto"`` had too little data, one row
        whose ``note`` says so (and no score).
    n_cached_stages_ : int
        Leading backbone stages whose output was cached (0: none)."""

NOTES = """\
    Notes
    -----
    Frozen means frozen: frozen parameters get no gradient and the norm layers of frozen
    groups stay in eval mode, so their BatchNorm running statistics do not change either.

    The frozen-prefix cache holds the output of the leading, entirely frozen stages for
    every training image (float32); it is used when it fits in ``cache_size``, else every
    epoch runs the whole network. It gives the same losses as the uncached path up to
    float rounding. On a CPU, from 128 training images on, the cache pass runs a copy of
    the frozen stages with BatchNorm folded into the convolutions (checked to agree).

    The outputs are also shared between fits (``memory`` and the process's store, whose size is the
    ``shared_cache_size`` of :func:`sktransfer.set_config`), keyed
    by each input's content (a file's path, size and modification time; an array's or
    a text's bytes) and by the weights of the stages that computed them. A candidate of
    a search that freezes fewer groups continues from a shallower stage output stored by
    an earlier one: the deepest frozen output is stored and, within half of
    the store, the shallower outputs where a fit that freezes fewer groups
    would start (those no larger than an input image). Outputs that come in several
    parts (a text encoder's token states, whose length follows the batch) are not
    shared. A stored output is the one computed first, perhaps in another batch: it may
    differ from a fresh one in the last bits, as results on different hardware do.

    After ``fit`` the model keeps its weights only: the optimizer's moments and early
    stopping's copy of the best weights are released (``fit`` always starts afresh), so
    a :mod:`joblib` file holds the network once. A model fitted on a GPU unpickles on a
    CPU-only machine."""


def fill(doc):
    """Return ``doc`` with its ``[parameters: ...]``, ``[attributes]``, ``[notes]`` filled in."""

    def parameters(match):
        return "\n".join(PARAMETERS[name] for name in match.group(1).split())

    doc = re.sub(r"^    \[parameters: ([\w ]+)\]$", parameters, doc, flags=re.M)
    return doc.replace("    [attributes]", ATTRIBUTES).replace("    [notes]", NOTES)
