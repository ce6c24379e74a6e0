"""Mutual information between each feature and a target, the scikit-learn way.

:func:`mutual_info_scores` is a drop-in ``score_func`` for scikit-learn's ``SelectKBest`` and
``SelectPercentile``, with the arguments of ``mutual_info_classif`` /
``mutual_info_regression`` (``discrete_features`` as ``"auto"``, a bool, a mask or indices;
``n_neighbors`` as ``k``), one call for both (``target=``), and this package's estimators
behind it: each score is a :func:`~divergences.estimate.mutual_information` estimate, with
its interval on request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._mi import mutual_information
from ._result import Estimate

TARGETS = ("auto", "discrete", "continuous")


def _columns(x: Any) -> tuple[list[np.ndarray], list[bool]]:
    """The columns of ``x`` (an array or a pandas DataFrame) and whether each holds labels
    (object, string, categorical or boolean dtype: coded, always discrete)."""
    if hasattr(x, "columns") and hasattr(x, "dtypes"):  # a pandas DataFrame
        cols, labels = [], []
        for name in x.columns:
            col = x[name]
            kind = getattr(col.dtype, "kind", "O")
            if str(col.dtype) == "category" or kind in "OSUb":
                codes = np.unique(col.astype(str).to_numpy(), return_inverse=True)[1]
                cols.append(codes.reshape(-1).astype(np.int64))
                labels.append(True)
            else:
                cols.append(col.to_numpy())
                labels.append(False)
        return cols, labels
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}")
    return [arr[:, j] for j in range(arr.shape[1])], [arr.dtype.kind in "OSUb"] * arr.shape[1]


def _discrete_mask(discrete_features: Any, d: int, columns: list[np.ndarray],
                   labels: list[bool]) -> np.ndarray:
    if isinstance(discrete_features, str):
        if discrete_features != "auto":
            raise ValueError(
                "discrete_features must be 'auto', a bool, a boolean mask or feature indices; "
                f"got {discrete_features!r}")
        # integer columns (as mutual_information reads them), and label columns
        return np.array([lab or c.dtype.kind in "iub" for c, lab in zip(columns, labels)])
    if isinstance(discrete_features, (bool, np.bool_)):
        return np.full(d, bool(discrete_features))
    spec = np.asarray(discrete_features)
    if spec.dtype == bool:
        if spec.shape != (d,):
            raise ValueError(f"discrete_features as a mask must have shape ({d},); "
                             f"got {spec.shape}")
        return spec.copy()
    if spec.dtype.kind not in "iu" or spec.ndim != 1:
        raise ValueError("discrete_features must be 'auto', a bool, a boolean mask or an "
                         f"array of feature indices; got {discrete_features!r}")
    if spec.size and (spec.min() < -d or spec.max() >= d):
        raise ValueError(f"discrete_features has an index out of range for {d} features")
    mask = np.zeros(d, dtype=bool)
    mask[spec] = True
    return mask


def _as_discrete(c: np.ndarray) -> np.ndarray:
    if c.dtype.kind in "iu":
        return c.astype(np.int64)
    return np.unique(c, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _as_continuous(c: np.ndarray, name: str) -> np.ndarray:
    try:
        out = c.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} holds values that are not numbers; mark it discrete") from None
    if np.isnan(out).any():
        raise ValueError(f"{name} contains NaN")
    return out


def mutual_info_scores(
    X: Any,
    y: Any,
    *,
    discrete_features: Any = "auto",
    target: str = "auto",
    k: int = 3,
    ci: str = "normal",
    seed: int | None = 0,
    return_estimates: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[Estimate]]:
    r"""Estimated mutual information :math:`I(X_j; Y)` between each feature and the target.

    Returns one score per column of ``X`` (nats, at least 0), in the order of the columns:
    the scikit-learn ``score_func`` contract, so
    ``SelectKBest(score_func=mutual_info_scores, k=10)`` works as it does with
    ``mutual_info_classif`` and ``mutual_info_regression``. ``X`` is ``(n, d)``: an array or a
    pandas DataFrame (object, string, boolean and categorical columns are labels, coded and
    always discrete). ``y`` has ``n`` entries.

    ``discrete_features``: which columns are discrete, as in scikit-learn: a bool (all or
    none), a boolean mask of length ``d``, or an array of column indices. ``"auto"`` differs
    from scikit-learn's (which means "discrete iff ``X`` is sparse"): integer and label
    columns are discrete, float columns continuous. ``target``: ``"discrete"``
    (classification), ``"continuous"`` (regression), or ``"auto"``: discrete for integer,
    boolean and label targets. Each pair is estimated by
    :func:`~divergences.estimate.mutual_information`:

    ==========  ==========  ==============================================================
    feature     target      method
    ==========  ==========  ==============================================================
    continuous  continuous  ``"ksg"`` with ``k`` neighbours (KSG, as scikit-learn)
    continuous  discrete    ``"ross"`` (Ross 2014, as ``mutual_info_classif``)
    discrete    continuous  ``"ross"``
    discrete    discrete    ``"discrete"`` (NSB / shuffle / Miller-Madow; scikit-learn
                            uses the plug-in, biased high in sparse tables)
    ==========  ==========  ==============================================================

    Ties in continuous columns are broken by seeded noise at the data's resolution
    (``noise="auto"`` of :func:`~divergences.estimate.mutual_information`); scikit-learn
    adds ``1e-10``-scale noise instead, which leaves rounded columns' estimates wrong. Scores
    are clipped at 0 (scikit-learn clips too). ``return_estimates=True`` also returns the
    :class:`~divergences.estimate.Estimate` of each column (standard error, interval by
    ``ci``).

    >>> import numpy as np
    >>> from divergences.estimate import mutual_info_scores
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3))
    >>> y = (X[:, 0] + 0.1 * rng.normal(size=2000) > 0).astype(int)   # only column 0 matters
    >>> s = mutual_info_scores(X, y)
    >>> int(np.argmax(s)), bool(s[0] > 0.5), bool(s[1] < 0.02 and s[2] < 0.02)
    (0, True, True)
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    columns, labels = _columns(X)
    d = len(columns)
    if d == 0:
        raise ValueError("X has no columns")
    n = columns[0].shape[0]
    ty = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if ty.ndim != 1 or ty.shape[0] != n:
        raise ValueError(f"y must have one entry per row of X ({n}); got shape {ty.shape}")
    y_labels = ty.dtype.kind in "OSUb" or str(getattr(y, "dtype", "")) == "category"
    y_discrete = (target == "discrete"
                  or (target == "auto" and (y_labels or ty.dtype.kind in "iu")))
    yv = _as_discrete(ty.astype(str) if y_labels else ty) if y_discrete \
        else _as_continuous(ty, "y")
    mask = _discrete_mask(discrete_features, d, columns, labels)
    scores, estimates = np.empty(d), []
    for j, (col, lab) in enumerate(zip(columns, labels)):
        if mask[j] or lab:
            xv = _as_discrete(col.astype(str) if col.dtype.kind in "OSU" else col)
            method = "discrete" if y_discrete else "ross"
        else:
            xv = _as_continuous(col, f"X column {j}")
            method = "ross" if y_discrete else "ksg"
        e = mutual_information(xv, yv, method, k, ci=ci, seed=seed)
        scores[j] = e.value
        estimates.append(e)
    return (scores, estimates) if return_estimates else scores
