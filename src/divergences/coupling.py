r"""Minimum-entropy couplings, the majorisation lower bound, EBIM and MEC-B.

A coupling of discrete marginals ``p_1, ..., p_k`` is a joint table with those marginals.
Minimising its entropy (equivalently, for two marginals, maximising the mutual information)
is NP-hard; the greedy algorithm of Kocaoglu et al. (2017) repeatedly puts the smallest of
the largest remaining masses on the cell of the largest masses. Its entropy is bounded below
by the entropy of the majorisation meet of the marginals (Cicalese, Gargano & Vaccaro 2019),
a bound every coupling obeys, and above by that bound plus 1 bit for two marginals (Rossi
2019) and ``log2(e)`` bits for any number (Compton 2022). Compton et al. (2023) show, with a
stronger lower bound than the meet, that greedy is within ``log2(e)/e ≈ 0.53`` bits of the
*optimum* for two marginals; against the meet alone that constant is not a theorem.

MEC-B (Ebrahimi, Chen & Khisti 2024) couples ``X ~ p_X`` and ``Y ~ p_Y`` through a bottleneck
``X -> T -> Y`` with ``H(T) <= R``. It splits into EBIM for the encoder (maximise
``I(X; T)`` subject to ``H(T) <= R``) and a minimum-entropy coupling of ``p_T`` and ``p_Y``
for the decoder; see :func:`ebim_encoder` and :func:`mec_b` for the choices made here.

Marginals are 1-D probability vectors (NumPy arrays, lists or torch tensors); they must be
non-negative and sum to 1 within ``1e-6`` (``normalize=True`` rescales them instead). Results
are float64 NumPy arrays (torch input gives a float64 CPU tensor; nothing here is
differentiable). Entropies are in bits unless ``base`` says otherwise.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import discrete
from ._arrays import ArrayLike, check_range

__all__ = [
    "MECBResult",
    "ebim_encoder",
    "majorization_meet",
    "mec_b",
    "min_entropy_coupling",
]

_TOL = 1e-6
_MAX_CELLS = 100_000_000


def _marginal(p: ArrayLike, name: str, normalize: bool) -> np.ndarray:
    if isinstance(p, torch.Tensor):
        p = p.detach().cpu().numpy()
    try:
        a = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D probability vector; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    if np.any(a < 0):
        raise ValueError(f"{name} contains negative probabilities")
    total = a.sum()
    if normalize:
        if total <= 0:
            raise ValueError(f"{name} has no mass")
        return a / total
    if abs(total - 1.0) > _TOL:
        raise ValueError(
            f"{name} does not sum to 1 (sum {total:.8g}, tolerance {_TOL:g}); "
            "pass normalize=True to renormalise"
        )
    return a / total


def _marginals(marginals: tuple, normalize: bool, minimum: int) -> list[np.ndarray]:
    if len(marginals) < minimum:
        raise ValueError(f"need at least {minimum} marginals; got {len(marginals)}")
    return [_marginal(p, f"marginals[{i}]", normalize) for i, p in enumerate(marginals)]


def _wrap_like(first: Any, out: np.ndarray) -> Any:
    return torch.from_numpy(out) if isinstance(first, torch.Tensor) else out


def _entropy(p: np.ndarray, base: float | None) -> float:
    """Shannon entropy via the core (``divergences.entropy``), zero cells ignored."""
    return float(discrete.entropy(np.ravel(p), base=base, normalize=True))


def _mutual_information(joint: np.ndarray, base: float | None) -> float:
    """``I = KL(P_AB || P_A P_B)`` of a 2-D table, via the core ``divergences.kl``."""
    pa, pb = joint.sum(1), joint.sum(0)
    outer = np.outer(pa, pb)
    return float(discrete.kl(joint.ravel(), outer.ravel(), base=base, normalize=True))


# --------------------------------------------------------------------------------------------
# Greedy coupling and the majorisation meet
# --------------------------------------------------------------------------------------------


def min_entropy_coupling(*marginals: ArrayLike, normalize: bool = False) -> Any:
    r"""Greedy minimum-entropy coupling of two or more marginals; returns the joint table.

    Kocaoglu et al. (2017): while mass remains, take the largest remaining mass of every
    marginal, put the smallest of them, ``m``, on the cell indexed by those argmaxes, and
    subtract ``m`` from each. Every step empties at least one entry, so the table has at most
    ``sum_i n_i - k + 1`` non-zero cells; with heaps it runs in ``O(sum_i n_i log n_i)`` time
    (plus the dense table). Ties go to the smallest index. The result has shape
    ``(n_1, ..., n_k)`` and marginals equal to the inputs up to rounding (the marginals are
    rescaled to sum to exactly 1 first). Its entropy lies between ``H(majorization_meet(...))``
    and that plus 1 bit (two marginals) or ``log2(e)`` bits (any number).

    >>> import numpy as np
    >>> j = min_entropy_coupling([0.5, 0.5], [0.25, 0.75])
    >>> j
    array([[0.  , 0.5 ],
           [0.25, 0.25]])
    >>> bool(np.allclose(j.sum(1), [0.5, 0.5]) and np.allclose(j.sum(0), [0.25, 0.75]))
    True
    """
    ps = _marginals(marginals, normalize, 2)
    shape = tuple(p.size for p in ps)
    if math.prod(shape) > _MAX_CELLS:
        raise ValueError(f"the joint table of shape {shape} would exceed {_MAX_CELLS} cells")
    joint = np.zeros(shape)
    heaps = [[(-v, i) for i, v in enumerate(p) if v > 0] for p in ps]
    for h in heaps:
        heapq.heapify(h)
    while all(heaps):
        tops = [heapq.heappop(h) for h in heaps]
        m = min(-t[0] for t in tops)
        joint[tuple(t[1] for t in tops)] += m
        for h, (neg, i) in zip(heaps, tops):
            rest = -neg - m
            if rest > 1e-15:
                heapq.heappush(h, (-rest, i))
    return _wrap_like(marginals[0], joint)


def majorization_meet(*marginals: ArrayLike, normalize: bool = False) -> Any:
    r"""Greatest lower bound of the marginals in the majorisation order, sorted decreasingly.

    With each marginal sorted decreasingly and padded with zeros to the longest length, the
    meet ``r`` has the partial sums ``R_k = min_i P_i(k)`` (a minimum of concave sequences is
    concave, so ``r`` is non-increasing and non-negative). Every coupling is majorised by
    each of its marginals, hence by ``r``, so ``H(coupling) >= H(r)`` by Schur concavity:
    the majorisation lower bound on the minimum coupling entropy (Cicalese et al. 2019).

    >>> majorization_meet([0.5, 0.5], [0.25, 0.75]).tolist()
    [0.5, 0.5]
    >>> majorization_meet([0.6, 0.2, 0.2], [0.5, 0.4, 0.1]).tolist()
    [0.5, 0.30000000000000004, 0.19999999999999996]
    """
    ps = _marginals(marginals, normalize, 1)
    length = max(p.size for p in ps)
    cums = []
    for p in ps:
        s = np.zeros(length)
        s[: p.size] = np.sort(p)[::-1]
        cums.append(np.cumsum(s))
    low = np.minimum.reduce(cums)
    r = np.diff(low, prepend=0.0)
    r = np.maximum(r, 0.0)
    return _wrap_like(marginals[0], r / r.sum())


# --------------------------------------------------------------------------------------------
# EBIM and MEC-B
# --------------------------------------------------------------------------------------------


def _merge_loss(a: float, b: float) -> float:
    """Entropy lost (nats) by merging masses ``a`` and ``b``: ``(a + b) h(a / (a + b))``."""
    s = a + b
    return -(a * math.log(a / s) if a > 0 else 0.0) - (b * math.log(b / s) if b > 0 else 0.0)


def _split_entropy(masses: np.ndarray, i: int, j: int, theta: float) -> float:
    """``H(T)`` (nats) after moving a fraction ``theta`` of class ``i`` into class ``j``."""
    m = masses.copy()
    m[j] += theta * m[i]
    m[i] *= 1.0 - theta
    m = m[m > 0]
    return float(-(m * np.log(m)).sum())


def ebim_encoder(
    p_x: ArrayLike, rate: float, /, *, base: float = 2.0, refine: bool = True,
    normalize: bool = False,
) -> Any:
    r"""Encoder ``p(t | x)`` for EBIM: maximise ``I(X; T)`` subject to ``H(T) <= rate``.

    Entropy-bounded information maximisation (Ebrahimi, Chen & Khisti 2024). For a
    deterministic encoder ``T = f(X)``, ``I(X; T) = H(T)``, so the greedy here starts from
    ``T = X`` and, while ``H(T) > rate``, merges the two classes whose merge loses the least
    entropy, ``(a + b) h(a / (a + b))``. If ``H(X) <= rate`` the result is the identity
    (one class per symbol of positive mass).
    With ``refine=True`` (default) the last merge is made fractional when that is better, in
    the spirit of the paper's analysis of optima near functional mappings: the smaller class
    (mass ``a``) sends a fraction ``theta`` of its mass to the other, ``theta`` chosen by
    bisection so that ``H(T) = rate`` exactly; this encoder has ``I(X;T) = rate - a h(theta)``
    and is kept only if that beats the deterministic merge's ``I = H(T)``. ``rate`` is in
    units of ``base`` (bits by default).

    Returns the ``(n_x, n_t)`` row-stochastic table ``p(t | x)``; ``H(T) <= rate`` up to
    ``1e-9``, and classes are ordered by decreasing mass.

    >>> import numpy as np
    >>> enc = ebim_encoder([0.25, 0.25, 0.25, 0.25], 1.0)
    >>> enc.shape, bool(np.allclose(enc.sum(1), 1.0))
    ((4, 2), True)
    >>> p_t = np.array([0.25] * 4) @ enc
    >>> bool(abs(float(-(p_t * np.log2(p_t)).sum()) - 1.0) < 1e-9)
    True
    """
    p = _marginal(p_x, "p_x", normalize)
    rate = check_range(rate, "rate", 0.0)
    scale = math.log(check_range(base, "base", 0.0, low_open=True))
    if scale == 0.0:
        raise ValueError("base must be positive and different from 1; got 1")
    limit = rate * scale  # nats
    n = p.size
    classes = [[i] for i in range(n) if p[i] > 0]
    masses = [float(p[i]) for i in range(n) if p[i] > 0]
    zero = [i for i in range(n) if p[i] == 0]

    def entropy_nats(ms: list[float]) -> float:
        return -sum(m * math.log(m) for m in ms if m > 0)

    prev = None
    while entropy_nats(masses) > limit + 1e-12 and len(masses) > 1:
        best, pair = math.inf, (0, 1)
        order = np.argsort(masses)
        # the cheapest merge pairs two of the smallest classes: search the 32 smallest
        cand = order[: min(32, len(order))]
        for ii, a in enumerate(cand):
            for b in cand[ii + 1:]:
                loss = _merge_loss(masses[a], masses[b])
                if loss < best:
                    best, pair = loss, (int(a), int(b))
        a, b = pair
        if masses[a] > masses[b]:
            a, b = b, a
        prev = ([list(c) for c in classes], list(masses), a, b)
        classes[b] = classes[b] + classes[a]
        masses[b] += masses[a]
        del classes[a], masses[a]

    enc_classes, enc_masses, fraction = classes, masses, None
    if refine and prev is not None:
        pcls, pm, a, b = prev
        arr = np.array(pm)
        lo, hi = 0.0, 1.0  # H decreases in theta because the moved class is the smaller one
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if _split_entropy(arr, a, b, mid) > limit:
                lo = mid
            else:
                hi = mid
        theta = hi
        h_theta = -(theta * math.log(theta) if 0 < theta else 0.0) - (
            (1 - theta) * math.log(1 - theta) if theta < 1 else 0.0)
        info_split = _split_entropy(arr, a, b, theta) - arr[a] * h_theta
        if theta < 1.0 and info_split > entropy_nats(masses):
            enc_classes, enc_masses, fraction = pcls, pm, (a, b, theta)

    order = np.argsort(enc_masses, kind="stable")[::-1]
    rank = {int(c): k for k, c in enumerate(order)}
    enc = np.zeros((n, len(enc_classes)))
    for c, members in enumerate(enc_classes):
        enc[members, rank[c]] = 1.0
    if fraction is not None:
        a, b, theta = fraction
        for x in enc_classes[a]:
            enc[x, rank[a]] = 1.0 - theta
            enc[x, rank[b]] = theta
    if zero:  # symbols of zero mass: send them to the largest class
        enc[zero, 0] = 1.0
    return _wrap_like(p_x, enc)


@dataclass(frozen=True)
class MECBResult:
    """Result of :func:`mec_b` (tables are float64 NumPy arrays; information in ``base``).

    ``encoder`` is ``p(t | x)`` (n_x, n_t), ``decoder`` is ``q(y | t)`` (n_t, n_y), ``joint``
    is ``p(x, y) = sum_t p(x) p(t|x) q(y|t)`` (its marginals are ``p_X`` and ``p_Y``),
    ``rate`` is ``H(T)``, ``info_xt`` is ``I(X; T)`` and ``info_xy`` is ``I(X; Y)``.
    """

    encoder: np.ndarray
    decoder: np.ndarray
    joint: np.ndarray
    rate: float
    info_xt: float
    info_xy: float


def mec_b(
    p_x: ArrayLike, p_y: ArrayLike, rate: float, /, *, base: float = 2.0,
    normalize: bool = False,
) -> MECBResult:
    r"""Minimum-entropy coupling with bottleneck ``X -> T -> Y``, ``H(T) <= rate``.

    Ebrahimi, Chen & Khisti (2024) decompose MEC-B into EBIM for the encoder and a
    minimum-entropy coupling for the decoder. Here the encoder is :func:`ebim_encoder`
    (greedy merges, refined last step), ``p_T = p_X p(t|x)``; the decoder couples ``p_T`` and
    ``p_Y`` with :func:`min_entropy_coupling` and conditions on ``T``:
    ``q(y|t) = M(t, y) / p_T(t)``. The resulting ``p(x, y)`` has marginals exactly ``p_X``
    and ``p_Y``; a larger rate makes ``Y`` more informative about ``X``.

    >>> import numpy as np
    >>> res = mec_b([0.5, 0.25, 0.25], [0.5, 0.5], 1.0)
    >>> bool(np.allclose(res.joint.sum(1), [0.5, 0.25, 0.25])), res.rate <= 1.0 + 1e-9
    (True, True)
    """
    px = _marginal(p_x, "p_x", normalize)
    py = _marginal(p_y, "p_y", normalize)
    enc = np.asarray(ebim_encoder(px, rate, base=base))
    p_t = px @ enc
    keep = p_t > 0
    enc, p_t = enc[:, keep], p_t[keep]
    coupling = np.asarray(min_entropy_coupling(p_t / p_t.sum(), py))
    decoder = coupling / p_t[:, None]
    decoder /= decoder.sum(1, keepdims=True)
    joint = (px[:, None] * enc) @ decoder
    info_xt = _mutual_information(px[:, None] * enc, base)
    return MECBResult(
        encoder=enc,
        decoder=decoder,
        joint=joint,
        rate=_entropy(p_t, base),
        info_xt=info_xt,
        info_xy=_mutual_information(joint, base),
    )
