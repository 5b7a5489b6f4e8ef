"""The bottom floor every estimator and every modality shares (no network, no modality).

``digests`` (content keys, weight and module digests), ``files`` (atomic writes),
``device`` (device choice, seeding, mixed precision), ``progress`` (progress bars),
``inference`` (the one batched forward loop, and what probing learnt) and ``activations``
(the store of computed features and frozen-stage outputs that fits, searches and
processes share). Nothing here imports another sktransfer module but ``_config``.
"""
