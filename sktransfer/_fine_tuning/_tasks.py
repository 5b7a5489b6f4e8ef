"""Kinds of target: what differs between classifying, multi-label and regression.

A fine-tuned estimator holds one task object. The task reads ``y`` (checking it and
learning what it needs: the classes, the targets' scale), says how many outputs the head
has, fits the linear model that starts the head (:meth:`SingleLabel.probe`: scikit-learn's
own, with its default regularisation), computes each row's loss, and turns the network's
outputs into predictions. The
estimator, its network, the frozen-prefix cache and the training loop are the same for
every kind of target.

Targets travel to the loss as one float32 matrix per batch: the encoded targets, then
each row's weight (``sample_weight`` times the class weight) in the last column, so that
datasets, the frozen-prefix cache and skorch handle them as any target.
"""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, column_or_1d
from torch import nn
from torch.nn import functional as F

__all__ = [
    "MultiLabel",
    "Regression",
    "SingleLabel",
    "WeightedLoss",
    "check_sample_weight",
    "pack",
]


def pack(targets, weights):
    """One float32 matrix: the encoded targets, then each row's weight."""
    targets = np.asarray(targets, dtype=np.float32).reshape(len(targets), -1)
    return torch.from_numpy(np.column_stack([targets, weights]).astype(np.float32))


def check_sample_weight(sample_weight, n_samples):
    """Return ``sample_weight`` checked (finite, non-negative, one per row; None: ones)."""
    rows = np.empty((n_samples, 0))
    weights = _check_sample_weight(sample_weight, rows, ensure_non_negative=True)
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to 0: at least one row needs a positive weight.")
    return weights


# The classifier's probe: scikit-learn's default C=1, so that the head starts as the
# feature-transfer pipeline's LogisticRegression() does; and L-BFGS to convergence (the
# iterations a 1280-feature fit may need).
PROBE_C = 1.0
# The regressor's: the ridge penalty among these of least leave-one-out error (see
# _loo_alpha), as wide as the features' scales go (EfficientNet-Lite0's pooled features
# have norms of 10 to 70, a sentence embedding 1); a fixed alpha=1 left 9 points of R² to
# RidgeCV on photo features (benchmarks/RESULTS.md, "The regressor's candidates").
PROBE_ALPHAS = np.logspace(-3, 4, 15)
PROBE_MAX_ITER = 1000


def _logistic(features, targets, weights):
    """Fit scikit-learn's ``LogisticRegression(C=PROBE_C)`` to convergence; return it."""
    model = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings():
        # the fit is a starting point that training continues from: not having
        # converged to the last digit is no reason to warn
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, targets, sample_weight=weights)


def _check_length(y, n_samples):
    if len(y) != n_samples:
        raise ValueError(f"X and y have different lengths: {n_samples} inputs, {len(y)} labels.")


class WeightedLoss(nn.Module):
    """The loss of a batch: each row's loss (the task's), weighted by its last column.

    The weighted mean ``sum(w * loss) / sum(w)``: with class weights alone it is what
    :class:`torch.nn.CrossEntropyLoss` computes with ``weight=``, and with integer sample
    weights it is the loss of the data with each row repeated that many times.
    """

    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, outputs, packed):
        """Return the weighted mean of the rows' losses."""
        targets, weights = packed[:, :-1], packed[:, -1]
        losses = self.task.row_loss(outputs.float(), targets)
        return (weights * losses).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)


class SingleLabel:
    """One class per row (binary or multiclass): softmax and cross-entropy.

    ``label_smoothing`` moves that share of each row's target from its class to all the
    classes evenly (as :func:`torch.nn.functional.cross_entropy` does).
    """

    stratified = True
    label_smoothing = 0.0

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def fit(self, y, n_samples, class_weight=None, sample_weight=None):
        """Check the labels and learn the classes; return ``(targets, row weights)``.

        The row weights are ``sample_weight`` times each row's class weight.
        """
        y = column_or_1d(y, warn=True)
        _check_length(y, n_samples)
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError("y contains NaN: every input needs a class label.")
        if y.dtype == object and any(v is None or v != v for v in y):
            raise ValueError("y contains missing labels (None or NaN).")
        check_classification_targets(y)
        self.encoder_ = LabelEncoder().fit(y)
        if len(self.classes_) < 2:
            raise ValueError(
                "FineTunedClassifier needs at least 2 classes; y has one: "
                f"{self.classes_.tolist()[0]!r}."
            )
        encoded = self.encoder_.transform(y)
        weights = np.ones(n_samples) if sample_weight is None else sample_weight
        if class_weight is not None:
            weights = (
                weights * compute_class_weight(class_weight, classes=self.classes_, y=y)[encoded]
            )
        return encoded, weights

    @classmethod
    def fitted(cls, classes):
        """Return the task as ``fit`` leaves it for ``classes`` (when a model is loaded)."""
        task = cls()
        task.encoder_ = LabelEncoder()
        task.encoder_.classes_ = np.asarray(classes)
        return task

    @property
    def classes_(self):
        """The sorted labels."""
        return self.encoder_.classes_

    @property
    def n_outputs(self):
        """Logits: one per class."""
        return len(self.classes_)

    def row_loss(self, outputs, targets):
        """Cross-entropy of each row.

        ``targets`` are the encoded labels (one column) or, mixed by mixup or cutmix,
        each class's probability (one column per class).
        """
        labels = targets if targets.shape[1] > 1 else targets[:, 0].long()
        return F.cross_entropy(
            outputs, labels, reduction="none", label_smoothing=self.label_smoothing
        )

    def soft_targets(self, targets):
        """Return the encoded labels ``(n, 1)`` as one-hot probabilities (for mixing)."""
        return F.one_hot(targets[:, 0].long(), self.n_outputs).to(targets.dtype)

    def probe(self, features, targets, weights):
        """Fit the head's last layer as a (multinomial) logistic regression.

        Parameters
        ----------
        features : ndarray of shape (n_rows, n_features)
            What reaches the layer.
        targets, weights : ndarray of shape (n_rows,)
            The encoded labels and the row weights ``fit`` returned.

        Returns
        -------
        (weight, bias, penalty) : tuple, or None
            The start (arrays of shape ``(n_outputs, n_features)`` and
            ``(n_outputs,)``) and the fit's L2 penalty, for training to keep (see
            :meth:`probe_penalty`). None when some class has no row to learn it from.
        """
        if len(np.unique(targets)) < self.n_outputs:
            return None
        model = _logistic(features, targets, weights)
        penalty = self.probe_penalty(weights.sum())
        if model.coef_.shape[0] == 1:  # binary: one logit, that of class 1 over class 0
            weight = np.vstack([-model.coef_, model.coef_]) / 2
            return weight, np.r_[-1, 1] * model.intercept_ / 2, penalty
        return model.coef_, model.intercept_, penalty

    def probe_penalty(self, total_weight):
        """Return the probe's L2 penalty on the head's weights, relative to the mean loss.

        ``LogisticRegression`` minimises ``mean loss + |coef|^2 / (2 C total_weight)``;
        for two classes the head's two rows are ``-coef / 2`` and ``coef / 2``, whose
        squared norm is half that of ``coef``.
        """
        factor = 1.0 if self.n_outputs == 2 else 0.5
        return factor / (PROBE_C * total_weight)

    def proba(self, outputs):
        """Class probabilities (softmax), rows summing to 1."""
        proba = outputs.softmax(dim=1).numpy().astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def average_views(self, outputs):
        """Return outputs whose softmax is the mean of views ``(n, n_views, n_classes)``.

        The log of the mean probabilities (float64): :meth:`proba` of it is the views'
        mean probabilities and :meth:`predict` their most probable class.
        """
        log_proba = outputs.double().log_softmax(dim=2)
        return torch.logsumexp(log_proba, dim=1) - np.log(outputs.shape[1])

    def predict(self, outputs, threshold=None):
        """Return the most probable class of each row."""
        return self.classes_[outputs.argmax(dim=1).numpy()]


class MultiLabel:
    """Any number of labels per row (a 0/1 indicator matrix): sigmoids and binary cross-entropy.

    ``class_weight="balanced"`` weighs each label's positives by its negatives over its
    positives (``pos_weight``), so that rare labels count as much as common ones.
    ``label_smoothing`` pulls each 0/1 target towards 1/2 by that share.
    """

    stratified = False
    label_smoothing = 0.0

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def fit(self, y, n_samples, class_weight=None, sample_weight=None):
        """Check the indicator matrix; return ``(targets, row weights)``."""
        y = np.asarray(y)
        _check_length(y, n_samples)
        if not np.isin(y, (0, 1)).all():
            raise ValueError("A multi-label y is a 0/1 indicator matrix (n_samples, n_labels).")
        self.n_labels_ = y.shape[1]
        self.pos_weight_ = None
        if isinstance(class_weight, dict):
            raise ValueError(
                "class_weight as a dict is for one label per row; with a multi-label y use "
                "class_weight='balanced' (a positive weight per label) or None."
            )
        if class_weight == "balanced":
            positives = y.sum(axis=0).clip(min=1)
            self.pos_weight_ = ((len(y) - positives) / positives).astype(np.float32)
        return y.astype(np.float32), np.ones(n_samples) if sample_weight is None else sample_weight

    @classmethod
    def fitted(cls, n_labels):
        """Return the task as ``fit`` leaves it for ``n_labels`` labels (a loaded model)."""
        task = cls()
        task.n_labels_, task.pos_weight_ = n_labels, None
        return task

    @property
    def classes_(self):
        """The labels are the columns of ``y``: ``0 .. n_labels - 1``."""
        return np.arange(self.n_labels_)

    @property
    def n_outputs(self):
        """One logit per label."""
        return self.n_labels_

    def soft_targets(self, targets):
        """Return the 0/1 targets: each label's probability already (for mixing)."""
        return targets

    def row_loss(self, outputs, targets):
        """Binary cross-entropy of each row, averaged over its labels."""
        pos_weight = None
        if self.pos_weight_ is not None:
            pos_weight = torch.as_tensor(self.pos_weight_, device=outputs.device)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        losses = F.binary_cross_entropy_with_logits(
            outputs, targets, pos_weight=pos_weight, reduction="none"
        )
        return losses.mean(dim=1)

    def probe(self, features, targets, weights):
        """Fit the head's last layer as one logistic regression per label.

        Each label's positives weigh ``pos_weight_`` more, as in the loss; a label with
        one value among the rows keeps a zero start. Returns ``(weight, bias, penalty)``
        (see :meth:`SingleLabel.probe`).
        """
        weight = np.zeros((self.n_labels_, features.shape[1]))
        bias = np.zeros(self.n_labels_)
        for label in range(self.n_labels_):
            column = targets[:, label]
            if len(np.unique(column)) < 2:
                continue
            rows = weights
            if self.pos_weight_ is not None:
                rows = weights * np.where(column == 1, self.pos_weight_[label], 1.0)
            model = _logistic(features, column, rows)
            weight[label], bias[label] = model.coef_[0], model.intercept_[0]
        return weight, bias, self.probe_penalty(weights.sum())

    def probe_penalty(self, total_weight):
        """Return the probe's L2 penalty on the head's weights, relative to the mean loss.

        The loss averages the labels' losses: each label's logistic regression,
        divided by ``n_labels``.
        """
        return 0.5 / (PROBE_C * total_weight * self.n_labels_)

    def proba(self, outputs):
        """Each label's probability (sigmoid), independently."""
        return outputs.sigmoid().numpy().astype(np.float64)

    def average_views(self, outputs):
        """Return outputs whose sigmoid is the mean of views ``(n, n_views, n_labels)``.

        Each label's log-odds of its mean probability over the views (float64).
        """
        proba = outputs.double().sigmoid().mean(dim=1)
        return proba.log() - (-proba).log1p()

    def predict(self, outputs, threshold=0.5):
        """Return the 0/1 matrix of the labels whose probability reaches ``threshold``."""
        return (self.proba(outputs) >= threshold).astype(np.int64)


_REGRESSION_LOSSES = {
    "squared_error": lambda o, t: (o - t).square(),
    "absolute_error": lambda o, t: (o - t).abs(),
    "huber": lambda o, t: F.huber_loss(o, t, reduction="none", delta=1.0),
}


def _loo_alpha(features, targets, weights):
    """Return the ridge penalty of :data:`PROBE_ALPHAS` of least leave-one-out error.

    The error of each row is the closed form of leaving it out (the residual divided by
    one minus its leverage, as scikit-learn's ``RidgeCV`` computes it, with an
    unpenalised intercept), averaged with the row weights. A row of integer weight
    ``w`` is ``w`` copies, and one copy is left out (``RidgeCV`` leaves out all of
    them), so integer ``sample_weight`` chooses as repeated rows would; a row of weight
    below 1 is left out whole. One SVD of the weighted, centred features scores every
    penalty. A penalty whose fit interpolates a row (leverage 1) scores infinity; if all
    do, the largest is returned.
    """
    weights = np.asarray(weights, dtype=np.float64)
    kept = weights > 0  # a row of weight 0 is not in the fit, nor in its error
    features, weights = features[kept], weights[kept]
    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)[kept]
    total = weights.sum()
    root = np.sqrt(weights)[:, None]
    xs = (features - np.average(features, axis=0, weights=weights)) * root
    ys = (targets - np.average(targets, axis=0, weights=weights)) * root
    u, s, _ = np.linalg.svd(xs, full_matrices=False)
    along, u2, s2 = u.T @ ys, np.square(u), np.square(s)
    left_out = np.minimum(weights, 1.0)  # the weight one leave-out removes
    errors = []
    for alpha in PROBE_ALPHAS:
        fitted = s2 / (s2 + alpha)  # the share of each direction the ridge keeps
        residual = (ys - u @ (fitted[:, None] * along)) / root
        leverage = 1.0 / total + (u2 @ fitted) / weights  # of one unit of weight
        keep = 1.0 - left_out * leverage
        if (keep <= 1e-12).any():
            errors.append(np.inf)
            continue
        loo = np.square(residual / keep[:, None]).sum(axis=1)
        errors.append(np.average(loo, weights=weights))
    errors = np.asarray(errors)
    if not np.isfinite(errors).any():
        return float(PROBE_ALPHAS[-1])
    return float(PROBE_ALPHAS[np.argmin(errors)])


class Regression:
    """Real-valued targets, one or several per row.

    The targets are standardised for training (each output to mean 0 and standard
    deviation 1, as learnt in ``fit``) and predictions mapped back, so that the learning
    rate and the Huber loss's threshold (1 standard deviation) mean the same whatever the
    targets' unit.
    """

    stratified = False

    def __init__(self, loss="squared_error"):
        self.loss = loss

    def fit(self, y, n_samples, class_weight=None, sample_weight=None):
        """Check ``y`` and learn its scale; return ``(standardised targets, row weights)``.

        The mean and standard deviation are weighted by ``sample_weight``, so that a row
        of weight 2 scales the targets as two copies of it would.
        """
        y = np.asarray(y, dtype=np.float64) if not hasattr(y, "iloc") else y.to_numpy(float)
        self.one_d_ = y.ndim == 1
        y = y.reshape(len(y), -1)
        _check_length(y, n_samples)
        if not np.isfinite(y).all():
            row = int(np.flatnonzero(~np.isfinite(y).all(axis=1))[0])
            raise ValueError(f"y holds NaN or infinity (row {row}): every input needs a target.")
        weights = np.ones(n_samples) if sample_weight is None else sample_weight
        self.mean_ = np.average(y, axis=0, weights=weights)
        scale = np.sqrt(np.average((y - self.mean_) ** 2, axis=0, weights=weights))
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return (y - self.mean_) / self.scale_, weights

    def fitted(self, mean, scale, one_d):
        """Set what ``fit`` learns (when a model is loaded); return the task."""
        self.mean_, self.scale_, self.one_d_ = mean, scale, one_d
        return self

    @property
    def n_outputs(self):
        """One output per target column."""
        return len(self.mean_)

    def row_loss(self, outputs, targets):
        """Return the loss of each row, averaged over its outputs."""
        return _REGRESSION_LOSSES[self.loss](outputs, targets).mean(dim=1)

    def probe(self, features, targets, weights):
        """Fit the head's last layer as a ridge regression of the standardised targets.

        The penalty is the one of :data:`PROBE_ALPHAS` of least leave-one-out error
        (:func:`_loo_alpha`, one for all outputs). Returns ``(weight, bias, penalty)``
        (see :meth:`SingleLabel.probe`); whatever the ``loss``, the start is the
        least-squares one. Ridge minimises each output's ``sum of w (y - y_hat)^2 +
        alpha |coef|^2``, and the loss averages the outputs: relative to the mean loss,
        the penalty is ``alpha / (total weight * n_outputs)`` (the same for every
        ``loss``).
        """
        alpha = _loo_alpha(features, targets, weights)
        model = Ridge(alpha=alpha).fit(features, targets, sample_weight=weights)
        penalty = alpha / (weights.sum() * self.n_outputs)
        return model.coef_.reshape(self.n_outputs, -1), np.ravel(model.intercept_), penalty

    def average_views(self, outputs):
        """Return the mean of the views' outputs ``(n, n_views, n_outputs)``.

        Predictions are affine in the outputs: the mean output's prediction is the
        views' mean prediction.
        """
        return outputs.double().mean(dim=1)

    def predict(self, outputs, threshold=None):
        """Return the outputs in the targets' unit, 1-D when ``y`` was."""
        y = outputs.numpy().astype(np.float64) * self.scale_ + self.mean_
        return y[:, 0] if self.one_d_ else y


def classification_task(y, label_smoothing=0.0):
    """Return the task of a classifier's ``y``: multi-label for a 0/1 indicator matrix."""
    if getattr(y, "ndim", 1) == 2 and np.shape(y)[1] > 1:
        if type_of_target(y) == "multilabel-indicator":
            return MultiLabel(label_smoothing)
    return SingleLabel(label_smoothing)
