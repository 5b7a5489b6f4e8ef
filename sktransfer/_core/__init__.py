"""The private core every estimator and every modality shares.

``device`` (device choice, seeding, mixed precision), ``inference`` (the one batched
forward loop), ``activations`` (the store of computed features and frozen-stage outputs
that fits, searches and processes share), ``files`` (atomic writes) and ``base`` (what the
transfer estimators have in common). Nothing here imports an estimator at module level.
"""
