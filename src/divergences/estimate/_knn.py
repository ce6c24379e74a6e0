"""Nearest-neighbour estimators: every one is a mean of per-sample local terms.

All functions take prepared float64 arrays of shape ``(n, d)`` (validated, standardised and
tie-broken by the callers, see :mod:`._input`) and return the local terms; their mean is the
estimate. Neighbour searches use :class:`scipy.spatial.cKDTree`, on all cores for large
queries and one thread for small ones (:func:`_workers`), and never build an ``n x n``
matrix; one-column counts use binary search in a sorted copy (``O(n log n)``, no tree).

Counting conventions (``r_i`` the radius at point ``i``, the point itself never counted):
``strict`` counts ``#{j != i : |v_j - v_i| < r_i}`` and the non-strict version ``<= r_i``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.spatial import cKDTree

# Below this many query rows a search runs on one thread: starting the pool costs more than
# the query (the report's demo made 1,440 such calls on a few hundred rows, 1.7 s of its
# 6.5 s in thread starts; 400 rows: 0.25 ms on one thread, 2.9 ms with workers=-1). Measured
# on 2 cores: one thread is faster at 2,000 rows, all cores from about 5,000.
PARALLEL_QUERY_ROWS = 4096


def _workers(rows: int) -> int:
    return -1 if rows >= PARALLEL_QUERY_ROWS else 1


def _tree(data: np.ndarray) -> cKDTree:
    # Sliding-midpoint trees build several times faster than median-balanced ones and query
    # as fast on sample data.
    return cKDTree(data, balanced_tree=False)


def kth_distance(data: np.ndarray, k: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each row to its k-th nearest other row, and the k+1 nearest indices.

    Queries run in the tree's leaf order (neighbouring queries visit the same nodes, which
    is about 3x faster on a million points) and are put back in row order.
    """
    tree = _tree(data)
    order = tree.indices
    dist, idx = tree.query(data[order], k=k + 1, p=p, workers=_workers(len(data)))
    out_d = np.empty(data.shape[0])
    out_d[order] = dist[:, k]
    out_i = np.empty_like(idx)
    out_i[order] = idx
    return out_d, out_i


def kth_distance_to(ref: np.ndarray, query: np.ndarray, k: int, p: float) -> np.ndarray:
    """Distance from each ``query`` row to its k-th nearest row of ``ref``."""
    tree = _tree(ref)
    order = _tree(query).indices
    dist, _ = tree.query(query[order], k=[k], p=p, workers=_workers(len(query)))
    out = np.empty(query.shape[0])
    out[order] = dist[:, 0]
    return out


def count_within(data: np.ndarray, r: np.ndarray, *, strict: bool, p: float = math.inf
                 ) -> np.ndarray:
    """Neighbours of each row of ``data`` within ``r`` (the row itself excluded).

    One column: binary search of the sorted values, queried in sorted order. Several
    columns: ``cKDTree.query_ball_point(..., return_length=True)``, in leaf order.
    """
    # Distances recomputed as ``v_i + r`` differ from ``|v_j - v_i|`` by a few ulps, so a
    # neighbour lying exactly on the radius (the k-th one, in KSG) could fall on either side.
    # A margin of 16 ulps of the largest coordinate settles it: inside for ``<=``, outside
    # for ``<``. (Distinct distances closer than that are not resolved by float64 anyway.)
    margin = 16.0 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(data))))
    r = r - margin if strict else r + margin
    r = np.maximum(r, 0.0)
    if data.shape[1] == 1:
        order = np.argsort(data[:, 0], kind="stable")
        s = data[order, 0]
        ro = r[order]
        out = np.empty(data.shape[0], dtype=np.int64)
        out[order] = (np.searchsorted(s, s + ro, side="right")
                      - np.searchsorted(s, s - ro, side="left") - 1)
        return out
    tree = _tree(data)
    order = tree.indices
    counts = tree.query_ball_point(data[order], r[order], p=p, return_length=True,
                                    workers=_workers(len(data)))
    out = np.empty(data.shape[0], dtype=np.int64)
    out[order] = np.asarray(counts, dtype=np.int64) - 1
    return out


def _unit_ball_log_volume(d: int, p: float) -> float:
    if math.isinf(p):
        return d * math.log(2.0)
    return d / 2.0 * math.log(math.pi) - math.lgamma(d / 2.0 + 1.0)


def _check_positive(dist: np.ndarray, what: str) -> None:
    if not bool((dist > 0).all()):
        raise ValueError(
            f"{what}: some points have k or more exact duplicates, so their k-th neighbour "
            "distance is 0 and the estimate would be -inf; pass noise > 0 (the default "
            "breaks ties) or treat the data as discrete (integer dtype)"
        )


def kl_entropy_local(x: np.ndarray, k: int) -> np.ndarray:
    """Kozachenko-Leonenko: ``psi(n) - psi(k) + log V_d + d log eps_i`` (Euclidean)."""
    n, d = x.shape
    eps, _ = kth_distance(x, k, 2.0)
    _check_positive(eps, "knn entropy")
    return (special.digamma(n) - special.digamma(k) + _unit_ball_log_volume(d, 2.0)
            + d * np.log(eps))


def ksg1_local(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """KSG estimator 1: ``psi(k) + psi(n) - psi(n_x + 1) - psi(n_y + 1)`` (max-norm).

    ``eps_i`` is the max-norm distance to the k-th neighbour in the joint space; ``n_x``,
    ``n_y`` count marginal neighbours strictly within ``eps_i``.
    """
    n = x.shape[0]
    eps, _ = kth_distance(np.hstack([x, y]), k, math.inf)
    nx = count_within(x, eps, strict=True)
    ny = count_within(y, eps, strict=True)
    return (special.digamma(k) + special.digamma(n) - special.digamma(nx + 1)
            - special.digamma(ny + 1))


def ksg2_local(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """KSG estimator 2: ``psi(k) - 1/k + psi(n) - psi(n_x) - psi(n_y)``.

    ``eps_x(i)``, ``eps_y(i)`` are the largest marginal distances among the k joint neighbours
    of ``i``; ``n_x``, ``n_y`` count marginal neighbours within them (inclusive).
    """
    n = x.shape[0]
    _, idx = kth_distance(np.hstack([x, y]), k, math.inf)
    ex = np.abs(x[idx] - x[:, None, :]).max(axis=(1, 2))
    ey = np.abs(y[idx] - y[:, None, :]).max(axis=(1, 2))
    nx = np.maximum(count_within(x, ex, strict=False), 1)
    ny = np.maximum(count_within(y, ey, strict=False), 1)
    return (special.digamma(k) - 1.0 / k + special.digamma(n) - special.digamma(nx)
            - special.digamma(ny))


def mixed_local(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Gao, Kannan, Oh, Viswanath (2017), for mixtures of discrete and continuous parts.

    ``rho_i`` is the k-th neighbour max-norm distance in the joint space. Where it is 0 (a
    discrete atom), ``k_i``, ``n_x``, ``n_y`` count the points at distance 0 from point ``i``
    in the joint, ``x`` and ``y`` spaces; elsewhere ``k_i = k`` and ``n_x``, ``n_y`` count
    the points strictly within ``rho_i``; every count includes the point itself, as in the
    authors' code. Local term ``psi(k_i) + log n - psi(n_x) - psi(n_y)``: the KSG-1 term
    where the data are continuous, the plug-in log-ratio where they are discrete.
    """
    n = x.shape[0]
    xy = np.hstack([x, y])
    rho, _ = kth_distance(xy, k, math.inf)
    atoms = rho == 0
    kk = np.full(n, float(k))
    nx = count_within(x, rho, strict=True) + 1
    ny = count_within(y, rho, strict=True) + 1
    if atoms.any():
        zero = np.zeros(n)
        kk[atoms] = count_within(xy, zero, strict=False)[atoms] + 1.0
        nx[atoms] = count_within(x, zero, strict=False)[atoms] + 1
        ny[atoms] = count_within(y, zero, strict=False)[atoms] + 1
    return special.digamma(kk) + math.log(n) - special.digamma(nx) - special.digamma(ny)


def ross_local(labels: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ross (2014): MI between a discrete ``labels`` and a continuous ``y``.

    For a point of label ``c`` (``N_c`` points), ``k_c = min(k, N_c - 1)``, ``d_i`` its k_c-th
    neighbour distance among points of its label and ``m_i`` the number of all points within
    ``d_i`` (inclusive): local term ``psi(n) - psi(N_c) + psi(k_c) - psi(m_i)``. Labels seen
    once carry no information about the neighbourhood and are dropped (as in scikit-learn);
    returns the local terms and the mask of the rows kept.
    """
    counts = np.bincount(labels)
    keep = counts[labels] > 1
    labels, y = labels[keep], y[keep]
    n = labels.shape[0]
    if n == 0:
        raise ValueError("ross: every label occurs once, so no neighbourhood is informative; "
                         "need a label seen at least twice")
    radius = np.empty(n)
    kc = np.empty(n)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        kk = min(k, rows.size - 1)
        radius[rows], _ = kth_distance(y[rows], kk, math.inf)
        kc[rows] = kk
    m = np.maximum(count_within(y, radius, strict=False), 1)
    nc = np.bincount(labels)[labels]
    local = special.digamma(n) - special.digamma(nc) + special.digamma(kc) - special.digamma(m)
    return local, keep


def frenzel_pompe_local(x: np.ndarray, y: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """Frenzel & Pompe (2007): ``psi(k) - psi(n_xz + 1) - psi(n_yz + 1) + psi(n_z + 1)``.

    ``eps_i`` is the k-th neighbour max-norm distance in the joint ``(x, y, z)`` space; the
    ``n`` count neighbours strictly within ``eps_i`` in the subspaces.
    """
    eps, _ = kth_distance(np.hstack([x, y, z]), k, math.inf)
    nxz = count_within(np.hstack([x, z]), eps, strict=True)
    nyz = count_within(np.hstack([y, z]), eps, strict=True)
    nz = count_within(z, eps, strict=True)
    return (special.digamma(k) - special.digamma(nxz + 1) - special.digamma(nyz + 1)
            + special.digamma(nz + 1))


def wkv_local(x: np.ndarray, y: np.ndarray, k: int, k_x: int) -> np.ndarray:
    """Wang, Kulkarni, Verdu (2009) KL(P||Q) from ``x ~ P`` (n rows), ``y ~ Q`` (m rows).

    Local term ``d log(nu_k(i) / rho_l(i)) + psi(l) - psi(k) + log(m / (n - 1))`` with
    ``l = k_x``, ``rho_l(i)`` the distance from ``x_i`` to its l-th nearest other ``x`` and
    ``nu_k(i)`` to its k-th nearest ``y`` (Euclidean). The digamma difference is the paper's
    bias correction for ``l != k``; it vanishes when ``l == k``.
    """
    n, d = x.shape
    m = y.shape[0]
    rho, _ = kth_distance(x, k_x, 2.0)
    nu = kth_distance_to(y, x, k, 2.0)
    _check_positive(rho, "knn kl (x)")
    _check_positive(nu, "knn kl (x against y)")
    return (d * (np.log(nu) - np.log(rho)) + special.digamma(k_x) - special.digamma(k)
            + math.log(m / (n - 1)))
