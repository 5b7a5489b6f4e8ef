"""Optimal-transport mapping: move the source rows onto the target distribution (with POT)."""

import warnings
from numbers import Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _DomainAdaptation
from ._docs import fill_doc
from ._memory import require_memory
from ._subspace import _FeatureAdaptation

INSTALL_HINT = (
    "OTMapping needs POT, the Python Optimal Transport library: "
    "pip install 'sktransfer[ot]' (or pip install POT)."
)


def _import_ot():
    """Import POT's domain-adaptation module, or raise an ImportError that says how."""
    try:
        import ot.da
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return ot.da


_CLASS_REGULARISED = ("lpl1", "l1l2")

MARGINAL_TOLERANCE = 0.01
"""Largest relative error of the plan's row or column sums that passes without a warning."""


def _check_marginals(coupling, method):
    """Warn when the plan's rows or columns do not sum to their rows' mass (1 / n)."""
    rows = np.abs(coupling.sum(axis=1) * coupling.shape[0] - 1).max()
    columns = np.abs(coupling.sum(axis=0) * coupling.shape[1] - 1).max()
    if max(rows, columns) > MARGINAL_TOLERANCE:
        warnings.warn(
            f"OTMapping(method={method!r}): the transport plan's marginals are off by up to "
            f"{max(rows, columns):.0%}; raise reg_e.",
            ConvergenceWarning,
            stacklevel=5,
        )


OT_MEMORY_FACTORS = {"emd": 6, "sinkhorn": 9, "lpl1": 12, "l1l2": 16}
"""Peak memory of each plan's fit, in plans of float64 (peaks measured by RSS: 5.2, 8.2, 11.1
and 15.1; POT holds the cost matrix, the kernel, the plan and the solver's scalings)."""


def ot_memory(method, n_source, n_target):
    """Bytes OTMapping's ``fit`` needs at its peak with ``method``, for so many rows."""
    return OT_MEMORY_FACTORS[method] * 8 * n_source * n_target


MIN_TARGET_ROWS = 2
"""Distinct target rows OTMapping needs: onto one, every source row lands in one place."""


def require_distinct_targets(Xt):
    """Refuse target rows that are all the same row (or one row)."""
    distinct = len(np.unique(Xt, axis=0))
    if distinct < MIN_TARGET_ROWS:
        raise ValueError(
            f"OTMapping needs at least {MIN_TARGET_ROWS} distinct target rows; got {distinct} "
            f"(in {len(Xt)} target rows). Every source row would be transported onto it, so "
            "that the rows of every class land in one place and the estimator could only "
            "predict one class. Give more target rows, or fit without adaptation (SourceOnly)."
        )


@fill_doc
class OTMapping(_FeatureAdaptation):
    """Optimal-transport mapping: transport the source rows onto the target rows.

    An optimal transport plan between the source and the target rows moves each source
    row to the barycentre of the target rows it sends its mass to; the wrapped estimator
    learns on the transported labelled source rows and predicts target rows as they are.
    The class-regularised plans (``"lpl1"``, ``"l1l2"``) keep the rows of one source
    class together, so that a target row receives mass from one class. Built for a
    non-linear shift of the input space that keeps the classes apart. Solved by POT
    (``pip install 'sktransfer[ot]'``).

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    method : {"lpl1", "l1l2", "sinkhorn", "emd"}, default="lpl1"
        The plan: entropic with a class-wise Lp-L1 (Courty et al. 2014) or group-lasso
        (``"l1l2"``, Courty et al. 2017) regulariser, entropic alone (``"sinkhorn"``), or
        exact (``"emd"``, no regulariser). The class-regularised plans use the labelled
        source rows only.
    reg_e : float, default=0.1
        Weight of the entropic regulariser, relative to the cost once ``norm`` has scaled
        it. Too small a value underflows and sends every row to the same place.
    reg_cl : float, default=0.1
        Weight of the class regulariser (``"lpl1"``, ``"l1l2"``).
    metric : str, default="sqeuclidean"
        Ground cost between rows, a metric of :func:`scipy.spatial.distance.cdist`.
    norm : {"median", "max", "log", "loglog"} or None, default="median"
        Scaling of the cost matrix, so that ``reg_e`` means the same for data of any scale.

    Attributes
    ----------
    transport_ : object or None
        The fitted POT transport (``ot.da.SinkhornLpl1Transport``, ...); its ``transform``
        maps source rows, new ones by their nearest fitted source row. None when there
        were no target rows (every row is then both, and stays where it is).
    {fitted_attributes}

    See Also
    --------
    CORAL : A linear map that matches the covariances, for far fewer operations.
    JointDistributionAdaptation : A shared space where the class means meet.

    Notes
    -----
    ``fit`` needs at least 2 distinct target rows: onto one, every source row would be
    transported to the same place, whatever its class.

    The plan has ``n_source x n_target`` entries, and the solvers hold several matrices of
    its size: the peak is about 5 (``"emd"``), 8 (``"sinkhorn"``), 11 (``"lpl1"``) or 15
    (``"l1l2"``) times the plan's ``8 * n_source * n_target`` bytes, so 10,000 rows in each
    domain need about 9 GB with ``"lpl1"``. ``fit`` checks this against the memory
    available before it solves, and raises a ``MemoryError`` that names the size when it
    does not fit. Time grows with the product too (``"emd"`` solves a network flow, roughly
    cubic).

    References
    ----------
    Courty, Flamary, Tuia and Rakotomamonjy, "Optimal transport for domain adaptation",
    IEEE TPAMI 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import OTMapping
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(60, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(60, 2)) * [2, 1] + 3
    >>> X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(60, dtype=int)]
    >>> model = OTMapping().fit(X, y)
    >>> bool(model.score(Xt, (Xt[:, 0] > 3).astype(int)) > 0.8)
    True
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "method": [StrOptions({"lpl1", "l1l2", "sinkhorn", "emd"})],
        "reg_e": [Interval(Real, 0, None, closed="neither")],
        "reg_cl": [Interval(Real, 0, None, closed="left")],
        "metric": [str],
        "norm": [StrOptions({"median", "max", "log", "loglog"}), None],
    }

    def __init__(
        self, estimator=None, *, method="lpl1", reg_e=0.1, reg_cl=0.1, metric="sqeuclidean",
        norm="median",
    ):  # fmt: skip
        self.estimator = estimator
        self.method = method
        self.reg_e = reg_e
        self.reg_cl = reg_cl
        self.metric = metric
        self.norm = norm

    def _transport(self, da):
        common = {"metric": self.metric, "norm": self.norm}
        if self.method == "emd":
            return da.EMDTransport(**common)
        if self.method == "sinkhorn":
            return da.SinkhornTransport(reg_e=self.reg_e, **common)
        solver = da.SinkhornLpl1Transport if self.method == "lpl1" else da.SinkhornL1l2Transport
        return solver(reg_e=self.reg_e, reg_cl=self.reg_cl, **common)

    def _adapt(self, X, y, domains):
        da = _import_ot()
        source, target = domains.source, domains.target
        self._n_out = X.shape[1]
        if (source & target).all():  # no target rows: nothing to move, every row stays
            self.transport_ = None
            return X, None
        require_distinct_targets(X[target])
        fitted = source & domains.labelled if self.method in _CLASS_REGULARISED else source
        n_fitted, n_target = int(fitted.sum()), int(target.sum())
        require_memory(
            ot_memory(self.method, n_fitted, n_target),
            f"OTMapping(method={self.method!r}) with {n_fitted} source rows and {n_target} "
            "target rows",
            "Fit on a random subsample of the source or the target rows (the memory grows "
            "with their product), or use CORAL, whose memory does not grow with the rows.",
        )
        classes = np.unique(y[domains.labelled])
        # POT wants integer classes; -1 marks an unlabelled target row
        codes = np.full(len(y), -1)
        codes[domains.labelled] = np.searchsorted(classes, y[domains.labelled])
        target_codes = codes[target] if (domains.labelled & target).any() else None
        # POT warns when Sinkhorn misses its 1e-9 threshold (the marginals are checked
        # below, at the precision that matters for the mapping); labelled target rows get
        # an infinite cost to the other classes, whose exp(-inf) = 0 numpy calls an overflow
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.filterwarnings("ignore", "Sinkhorn did not converge", UserWarning)
            self.transport_ = self._transport(da).fit(
                Xs=X[fitted], ys=codes[fitted], Xt=X[target], yt=target_codes
            )
        _check_marginals(self.transport_.coupling_, self.method)
        with np.errstate(invalid="ignore", divide="ignore"):
            adapted = self._adapt_rows(X, source)
        if not np.isfinite(adapted).all():
            regulariser = "" if self.method in ("sinkhorn", "emd") else " or lower reg_cl"
            raise ValueError(
                f"OTMapping(method={self.method!r}, reg_e={self.reg_e}, "
                f"reg_cl={self.reg_cl}): the transport plan underflowed (some source rows "
                f"send no mass anywhere), so they cannot be transported; raise "
                f"reg_e{regulariser}."
            )
        return adapted, None

    def _map_source(self, Xs):
        if self.transport_ is None:
            return Xs
        return self.transport_.transform(Xs=Xs)

    def _map_target(self, X):
        return X
