r"""Information-theoretic bounds: total variation from KL, mixture regret, MLE risk, generalisation.

Every function is vectorised over its array arguments (they broadcast), takes NumPy arrays,
lists or Python numbers (NumPy out) or torch tensors (torch out, differentiable, same device),
and computes in at least float32.

Units. A KL divergence or mutual information handed *in* is in nats by default; ``base=2``
says it is in bits (``base=b``: logarithms to base ``b``). A KL handed *out* (the inverses, the
regret and risk functions) is in nats unless ``base`` is given. Total variation and the
generalisation gap of :func:`xu_raginsky_bound` have no logarithm and no units.

:func:`representation_shift` measures, layer by layer, how far a network's test
representations drift from its training ones (kNN KL and sliced W1), the quantities that
representation-based generalisation bounds for deep networks are stated in.

References
----------
1. Pinsker; Tsybakov, *Introduction to Nonparametric Estimation* (2009), Lemma 2.5.
2. Bretagnolle and Huber (1979); Canonne, *A short note on an inequality between KL and TV*
   (2022).
3. Feder, Urbanke and Fogel, *The Universality Lens: why even highly over-parametrized models
   learn well* (2025); Barron's index of resolvability (1985, 1998).
4. The p-n criterion: the leading term ``tr(I J^-1) / (2n)`` of the MLE risk (Takeuchi 1976;
   White 1982).
5. Xu and Raginsky, *Information-theoretic analysis of generalization capability of learning
   algorithms* (NeurIPS 2017), Theorem 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import discrete
from ._arrays import ArrayLike, Wrapper, as_tensors, log_base

__all__ = [
    "bernoulli_mixture_regret",
    "bretagnolle_huber",
    "bretagnolle_huber_inverse",
    "mixture_regret_bound",
    "mle_risk",
    "pinsker",
    "pinsker_inverse",
    "representation_shift",
    "xu_raginsky_bound",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _to_nats(t: torch.Tensor, base: float | None) -> torch.Tensor:
    lb = log_base(base)
    return t if lb is None else t * lb


def _from_nats(t: torch.Tensor, base: float | None) -> torch.Tensor:
    lb = log_base(base)
    return t if lb is None else t / lb


def _check_values(t: torch.Tensor, name: str, low: float, high: float = math.inf,
                  *, allow_inf: bool = True, low_open: bool = False) -> None:
    """Every entry of ``t`` in ``[low, high]`` (``(low, high]`` with ``low_open``), no NaN."""
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    if not allow_inf and bool(torch.isinf(t).any()):
        raise ValueError(f"{name} must be finite")
    below = (t <= low) if low_open else (t < low)
    if bool(below.any()) or bool((t > high).any()):
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {lo}{low:g}, {high:g}]; got a value outside")


def _elementwise(*arrays: ArrayLike, names: tuple[str, ...]) -> tuple[list[torch.Tensor], Wrapper]:
    tensors, wrap = as_tensors(*arrays, names=names)
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors))
        raise ValueError(f"arguments do not broadcast: {shapes}") from None
    return [t.expand(shape) for t in tensors], wrap


# --------------------------------------------------------------------------------------------
# Total variation and KL
# --------------------------------------------------------------------------------------------


def pinsker(kl: ArrayLike, /, *, base: float | None = None) -> Any:
    r"""Pinsker's upper bound on total variation: :math:`\mathrm{TV}(P, Q) \le \sqrt{\mathrm{KL}(P\|Q)/2}`.

    ``kl`` is in nats (``base`` says otherwise) and must be ``>= 0``; ``inf`` gives ``inf``.
    Since TV never exceeds 1, values above 1 are vacuous; they are returned unclipped.
    Tighter than :func:`bretagnolle_huber` for small KL, looser for large KL.

    >>> from divergences.bounds import pinsker
    >>> float(pinsker(0.02))
    0.1
    >>> float(pinsker(1.0, base=2))   # 1 bit = ln 2 nats
    0.5887050112577373
    """
    (t,), wrap = _elementwise(kl, names=("kl",))
    _check_values(t, "kl", 0.0)
    return wrap(torch.sqrt(_to_nats(t, base) / 2.0))


def bretagnolle_huber(kl: ArrayLike, /, *, base: float | None = None) -> Any:
    r"""Bretagnolle-Huber upper bound on total variation: :math:`\mathrm{TV} \le \sqrt{1 - e^{-\mathrm{KL}}}`.

    ``kl`` is in nats (``base`` says otherwise) and must be ``>= 0``; ``inf`` gives 1. Always in
    [0, 1], so never vacuous, unlike :func:`pinsker`. Computed as ``sqrt(-expm1(-kl))``.

    >>> import numpy as np
    >>> from divergences.bounds import bretagnolle_huber
    >>> bretagnolle_huber(np.array([0.0, np.log(2.0), np.inf]))
    array([0.        , 0.70710678, 1.        ])
    """
    (t,), wrap = _elementwise(kl, names=("kl",))
    _check_values(t, "kl", 0.0)
    return wrap(torch.sqrt(-torch.expm1(-_to_nats(t, base))))


def pinsker_inverse(tv: ArrayLike, /, *, base: float | None = None) -> Any:
    r"""The smallest KL that Pinsker's inequality allows for a total variation: :math:`2\,\mathrm{TV}^2`.

    Any pair with ``TV(P, Q) = tv`` has ``KL(P||Q) >= 2 tv^2`` (nats; ``base`` converts the
    result). ``tv`` must lie in [0, 1]. ``pinsker(pinsker_inverse(tv)) == tv``.

    >>> from divergences.bounds import pinsker_inverse
    >>> float(pinsker_inverse(0.1))
    0.020000000000000004
    """
    (t,), wrap = _elementwise(tv, names=("tv",))
    _check_values(t, "tv", 0.0, 1.0)
    return wrap(_from_nats(2.0 * t * t, base))


def bretagnolle_huber_inverse(tv: ArrayLike, /, *, base: float | None = None) -> Any:
    r"""The smallest KL that the Bretagnolle-Huber inequality allows: :math:`-\log(1 - \mathrm{TV}^2)`.

    Any pair with ``TV(P, Q) = tv`` has ``KL(P||Q) >= -log(1 - tv^2)`` (nats; ``base`` converts
    the result); ``tv = 1`` gives ``inf``. Together with :func:`pinsker_inverse`:
    ``KL >= max(2 tv^2, -log(1 - tv^2))``, the second larger for ``tv`` above about 0.7.
    Computed as ``-log1p(-tv^2)``.

    >>> import numpy as np
    >>> from divergences.bounds import bretagnolle_huber_inverse
    >>> bool(np.isclose(bretagnolle_huber_inverse(np.sqrt(0.5)), np.log(2.0)))
    True
    """
    (t,), wrap = _elementwise(tv, names=("tv",))
    _check_values(t, "tv", 0.0, 1.0)
    return wrap(_from_nats(-torch.log1p(-t * t), base))


# --------------------------------------------------------------------------------------------
# Mixture regret (the Universality Lens)
# --------------------------------------------------------------------------------------------


def mixture_regret_bound(
    n: ArrayLike,
    prior_mass: Callable[[float], float] | ArrayLike,
    eps_grid: ArrayLike,
    *,
    base: float | None = None,
) -> Any:
    r"""The regret bound of the Bayes mixture learner: :math:`\min_\varepsilon [\varepsilon - \tfrac1n \log w(A_\varepsilon)]`.

    Setting (Feder, Urbanke and Fogel's *Universality Lens*, after Barron's index of
    resolvability): data :math:`x^n` i.i.d. from :math:`p_{\theta^*}`; the learner is the
    mixture :math:`q(x^n) = \int w(d\theta)\, p_\theta(x^n)` under a prior :math:`w`;
    :math:`A_\varepsilon = \{\theta : \mathrm{KL}(p_{\theta^*} \| p_\theta) \le \varepsilon\}`
    is the set of hypotheses within per-sample KL :math:`\varepsilon` of the truth and
    :math:`w(A_\varepsilon)` its prior mass (the *weight* of the hypothesis). Then the
    per-sample expected log-loss regret against the truth obeys

    .. math:: \frac1n \mathrm{KL}(P_{\theta^*}^n \| Q^n)
              = \frac1n E\Big[\log \frac{p_{\theta^*}(x^n)}{q(x^n)}\Big]
              \le \min_{\varepsilon} \Big[\varepsilon - \frac1n \log w(A_\varepsilon)\Big],

    because :math:`q \ge \sum_{A_\varepsilon} w\, p_\theta` and, by Jensen, restricting the
    mixture to :math:`A_\varepsilon` costs at most :math:`-\log w(A_\varepsilon)` on top of the
    average KL :math:`n\varepsilon` (the paper states it this way; we read it in its abstract and
    in ``docs/papers.md``, and this proof is the standard one). :func:`bernoulli_mixture_regret`
    computes the left-hand side exactly for a finite Bernoulli grid.

    Parameters
    ----------
    n:
        Sample size(s), positive; an array gives one bound per entry.
    prior_mass:
        Either a callable ``eps -> w(A_eps)`` (called once per grid value with a Python float)
        or an array of masses aligned with ``eps_grid``. Masses lie in [0, 1]; a zero mass
        contributes ``+inf`` and is never the minimiser.
    eps_grid:
        The values of :math:`\varepsilon \ge 0` to minimise over (1-D). For a finite hypothesis
        class the minimum is attained at one of the KL values from the truth to the grid.
    base:
        Units of ``eps_grid`` and of the result: nats (``None``), bits (``2``)...

    Returns the bound with the shape of ``n`` (NumPy or torch as the inputs).

    >>> import numpy as np
    >>> from divergences.bounds import mixture_regret_bound
    >>> # a point mass of prior weight 1/16 on the truth: log(16) / n at eps = 0
    >>> bool(np.isclose(mixture_regret_bound(100, [1 / 16], [0.0]), np.log(16) / 100))
    True
    >>> eps = np.array([0.0, 0.01, 0.1])
    >>> # eps = 0.01 wins: 0.01 - log(0.06) / 100
    >>> round(float(mixture_regret_bound(100, lambda e: min(1.0, 0.01 + 5 * e), eps)), 6)
    0.038134
    """
    eps_np = eps_grid
    if callable(prior_mass):
        grid_vals = (eps_grid.detach().cpu().numpy() if isinstance(eps_grid, torch.Tensor)
                     else np.asarray(eps_grid, dtype=float))
        if grid_vals.ndim != 1:
            raise ValueError(f"eps_grid must be 1-D; got shape {grid_vals.shape}")
        masses: Any = [float(prior_mass(float(e))) for e in grid_vals]
        if isinstance(eps_grid, torch.Tensor):
            masses = torch.tensor(masses, dtype=eps_grid.dtype, device=eps_grid.device)
    else:
        masses = prior_mass
    (tn, te, tw), wrap = as_tensors(n, eps_np, masses, names=("n", "eps_grid", "prior_mass"))
    if te.ndim != 1 or te.shape[0] == 0:
        raise ValueError(f"eps_grid must be a non-empty 1-D array; got shape {tuple(te.shape)}")
    if tw.shape != te.shape:
        raise ValueError(f"prior_mass must have one mass per eps_grid value; got shapes "
                         f"{tuple(tw.shape)} and {tuple(te.shape)}")
    _check_values(tn, "n", 0.0, low_open=True, allow_inf=False)
    _check_values(te, "eps_grid", 0.0, allow_inf=False)
    _check_values(tw, "prior_mass", 0.0, 1.0)
    lb = log_base(base)
    pos = tw > 0
    log_w = torch.log(torch.where(pos, tw, torch.ones_like(tw)))
    if lb is not None:
        log_w = log_w / lb
    penalty = torch.where(pos, -log_w, torch.full_like(tw, math.inf))
    values = te + penalty / tn.unsqueeze(-1)
    return wrap(values.amin(-1))


def bernoulli_mixture_regret(
    theta: float,
    grid: ArrayLike,
    n: int,
    *,
    weights: ArrayLike | None = None,
    base: float | None = None,
) -> Any:
    r"""Exact per-sample regret of the Bayes mixture over a finite Bernoulli grid.

    .. math:: R_n = \frac1n \mathrm{KL}(P_{\theta}^n \,\|\, Q^n), \qquad
              q(x^n) = \sum_j w_j\, \theta_j^{k} (1-\theta_j)^{n-k},\ k = \textstyle\sum_i x_i,

    the expected log-loss regret (per sample) of the mixture learner against the true
    Bernoulli(``theta``) source, the left-hand side of :func:`mixture_regret_bound`. Both
    distributions depend on :math:`x^n` only through the count :math:`k`, so the KL between
    the sequence laws equals the KL between Binomial(``n``, ``theta``) and the mixture of
    Binomial(``n``, ``theta_j``), evaluated with :func:`divergences.kl` on log-probabilities
    (exact, no sampling).

    Parameters
    ----------
    theta:
        The true success probability, in [0, 1].
    grid:
        The hypotheses :math:`\theta_j` in [0, 1] (1-D).
    n:
        Sample size, a positive integer.
    weights:
        Prior weights :math:`w_j` (non-negative, summing to 1); uniform by default.
    base:
        Units of the result (nats by default).

    >>> import numpy as np
    >>> from divergences.bounds import bernoulli_mixture_regret
    >>> grid = np.linspace(0.05, 0.95, 19)
    >>> r = bernoulli_mixture_regret(0.3, grid, 50)
    >>> bool(0 < r < np.log(19) / 50)   # the truth is on the grid: at most log(1/w)/n
    True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer; got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    if isinstance(theta, torch.Tensor) or isinstance(theta, bool) or not isinstance(
            theta, (int, float, np.integer, np.floating)):
        raise TypeError(f"theta must be a real number; got {type(theta).__name__}")
    th = float(theta)
    if not 0.0 <= th <= 1.0:
        raise ValueError(f"theta must lie in [0, 1]; got {th!r}")
    if weights is None:
        (tg,), wrap = as_tensors(grid, names=("grid",))
        size = max(1, tg.shape[0]) if tg.ndim == 1 else 1
        tw = torch.full(tg.shape if tg.ndim == 1 else (1,), 1.0 / size, dtype=tg.dtype,
                        device=tg.device)
    else:
        (tg, tw), wrap = as_tensors(grid, weights, names=("grid", "weights"))
    if tg.ndim != 1 or tg.shape[0] == 0:
        raise ValueError(f"grid must be a non-empty 1-D array; got shape {tuple(tg.shape)}")
    if tw.shape != tg.shape:
        raise ValueError(f"weights must have one entry per grid point; got shapes "
                         f"{tuple(tw.shape)} and {tuple(tg.shape)}")
    _check_values(tg, "grid", 0.0, 1.0)
    _check_values(tw, "weights", 0.0, allow_inf=False)
    if abs(float(tw.sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1; got {float(tw.sum())!r}")
    dtype, device = tg.dtype, tg.device
    k = torch.arange(n + 1, dtype=dtype, device=device)
    log_binom = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1))
    th_t = torch.tensor(th, dtype=dtype, device=device)
    log_p = log_binom + torch.xlogy(k, th_t) + torch.xlogy(n - k, 1 - th_t)
    pos = tw > 0
    log_w = torch.where(pos, torch.log(torch.where(pos, tw, torch.ones_like(tw))),
                        torch.full_like(tw, -math.inf))
    # (n+1, J): log w_j + log Binomial(k; n, theta_j); xlogy gives 0 log 0 = 0 at the ends.
    comp = (log_w + torch.xlogy(k[:, None], tg) + torch.xlogy(n - k[:, None], 1 - tg))
    log_q = log_binom + torch.logsumexp(comp, dim=-1)
    regret = discrete.kl(log_p, log_q, input="log_probs", base=base) / n
    return wrap(regret)


# --------------------------------------------------------------------------------------------
# MLE risk and generalisation
# --------------------------------------------------------------------------------------------


def mle_risk(
    fisher_information: ArrayLike,
    hessian: ArrayLike,
    n: ArrayLike,
    /,
    *,
    base: float | None = None,
) -> Any:
    r"""Leading term of the MLE's expected excess KL risk: :math:`\operatorname{tr}(I J^{-1}) / (2n)`.

    For the maximum-likelihood fit :math:`\hat\theta_n` of a smooth model from ``n`` i.i.d.
    samples of a source :math:`p`,

    .. math:: E\big[\mathrm{KL}(p \| p_{\hat\theta_n})\big] - \mathrm{KL}(p \| p_{\theta_0})
              = \frac{\operatorname{tr}(I J^{-1})}{2n} + o(1/n),

    with :math:`\theta_0` the KL projection of :math:`p` on the model,
    :math:`I = E[\nabla \log p_{\theta_0}(X) \nabla \log p_{\theta_0}(X)^\top]` (``fisher_information``,
    the outer-product form) and :math:`J = -E[\nabla^2 \log p_{\theta_0}(X)]` (``hessian``, the
    Hessian of the expected negative log-likelihood, positive definite). A well-specified
    model has :math:`I = J` and the risk is :math:`p/(2n)` for ``p`` parameters (the p-n
    criterion: the risk is small once ``n`` is large against ``p``).

    ``fisher_information`` and ``hessian`` are ``(..., p, p)`` (batched, broadcasting); ``n``
    broadcasts against the batch. The result is in nats (``base`` converts). Torch inputs give
    a differentiable torch result. A ``hessian`` that is not symmetric positive definite is a
    ``ValueError``.

    >>> import numpy as np
    >>> from divergences.bounds import mle_risk
    >>> info = np.diag([1.0, 0.5])          # N(mu, v) at v = 1: I = J = diag(1/v, 1/(2 v^2))
    >>> float(mle_risk(info, info, 100))    # p / (2n)
    0.01
    """
    (ti, tj, tn), wrap = as_tensors(fisher_information, hessian, n,
                                    names=("fisher_information", "hessian", "n"))
    for t, name in ((ti, "fisher_information"), (tj, "hessian")):
        if t.ndim < 2 or t.shape[-1] != t.shape[-2] or t.shape[-1] == 0:
            raise ValueError(f"{name} must have shape (..., p, p) with p >= 1; "
                             f"got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite")
    if ti.shape[-1] != tj.shape[-1]:
        raise ValueError(f"fisher_information and hessian must have the same p; got shapes "
                         f"{tuple(ti.shape)} and {tuple(tj.shape)}")
    _check_values(tn, "n", 0.0, low_open=True, allow_inf=False)
    scale = max(1.0, float(tj.detach().abs().max()))
    if bool(((tj - tj.mT).abs() > 1e-6 * scale).any()):
        raise ValueError("hessian must be symmetric")
    chol, info = torch.linalg.cholesky_ex(tj)
    if bool((info != 0).any()):
        raise ValueError("hessian must be positive definite")
    try:
        batch = torch.broadcast_shapes(ti.shape[:-2], chol.shape[:-2])
        torch.broadcast_shapes(batch, tn.shape)
    except RuntimeError:
        raise ValueError(
            f"batch shapes do not broadcast: fisher_information {tuple(ti.shape)}, hessian "
            f"{tuple(tj.shape)}, n {tuple(tn.shape)}") from None
    p = ti.shape[-1]
    # tr(I J^-1) = tr(J^-1 I), solved through the Cholesky factor of J.
    x = torch.cholesky_solve(ti.expand(*batch, p, p), chol.expand(*batch, p, p))
    trace = torch.diagonal(x, dim1=-2, dim2=-1).sum(-1)
    return wrap(_from_nats(trace / (2.0 * tn), base))


def xu_raginsky_bound(
    mutual_information: ArrayLike,
    n: ArrayLike,
    sigma: ArrayLike,
    /,
    *,
    base: float | None = None,
) -> Any:
    r"""Xu-Raginsky bound on the expected generalisation gap: :math:`\sqrt{2\sigma^2 I(S; W) / n}`.

    If the loss :math:`\ell(w, Z)` is :math:`\sigma`-sub-Gaussian under the data distribution
    for every hypothesis :math:`w`, an algorithm that maps ``n`` i.i.d. samples :math:`S` to
    :math:`W` satisfies :math:`|E[L_\mu(W) - L_S(W)]| \le \sqrt{2\sigma^2 I(S; W)/n}`.

    ``mutual_information`` is :math:`I(S; W)` in nats (``base`` says otherwise), ``>= 0``;
    ``n > 0``; ``sigma >= 0`` (a loss in [a, b] is ``(b - a)/2``-sub-Gaussian). The result is in
    the loss's units. All three broadcast.

    >>> from divergences.bounds import xu_raginsky_bound
    >>> float(xu_raginsky_bound(2.0, 100, 0.5))   # sqrt(2 * 0.25 * 2 / 100)
    0.1
    """
    (ti, tn, ts), wrap = _elementwise(mutual_information, n, sigma,
                                      names=("mutual_information", "n", "sigma"))
    _check_values(ti, "mutual_information", 0.0)
    _check_values(tn, "n", 0.0, low_open=True, allow_inf=False)
    _check_values(ts, "sigma", 0.0, allow_inf=False)
    return wrap(torch.sqrt(2.0 * ts * ts * _to_nats(ti, base) / tn))


# --------------------------------------------------------------------------------------------
# Representation shift
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShift:
    """Train/test shift of one layer's representations.

    ``kl`` is the kNN estimate of ``KL(test || train)`` (an :class:`~divergences.estimate.Estimate`
    with its interval, nats unless ``base`` was given); ``w1`` is the sliced 1-Wasserstein
    distance between the two clouds (in the representation's units).
    """

    layer: str
    kl: Any
    w1: float
    n_train: int
    n_test: int


def representation_shift(
    train_reps: Sequence[ArrayLike] | Mapping[str, ArrayLike],
    test_reps: Sequence[ArrayLike] | Mapping[str, ArrayLike],
    /,
    *,
    k: int = 1,
    n_projections: int = 128,
    base: float | None = None,
    seed: int = 0,
) -> list[LayerShift]:
    r"""Per-layer shift between train and test representations: kNN KL and sliced W1.

    For each layer :math:`\ell` with train representations :math:`Z^{tr}_\ell` (``(n, d)``) and
    test representations :math:`Z^{te}_\ell` (``(m, d)``):

    * ``kl``: :math:`\mathrm{KL}(P^{te}_\ell \| P^{tr}_\ell)` by the Wang-Kulkarni-Verdu kNN
      estimator (:func:`divergences.estimate.kl`, ``k`` neighbours), the expectation under the
      test distribution (how surprising test representations are to the training ones);
    * ``w1``: the sliced 1-Wasserstein distance (:func:`divergences.transport.sliced_wasserstein`,
      ``n_projections`` random directions, ``seed``), a metric in the representation's units.

    Layers are given as a sequence (named ``"0"``, ``"1"``, ...) or a mapping name -> array;
    train and test must list the same layers with the same widths. Returns one
    :class:`LayerShift` per layer, in order.

    >>> import numpy as np
    >>> from divergences.bounds import representation_shift
    >>> rng = np.random.default_rng(0)
    >>> train = [rng.normal(size=(400, 2)), rng.normal(size=(400, 3))]
    >>> test = [rng.normal(size=(300, 2)), rng.normal(size=(300, 3)) + 1.0]
    >>> shifts = representation_shift(train, test)
    >>> [s.layer for s in shifts], shifts[0].w1 < shifts[1].w1
    (['0', '1'], True)
    """
    from . import estimate, transport  # estimators and transport sit above this module

    names_tr, arrays_tr = _layers(train_reps, "train_reps")
    names_te, arrays_te = _layers(test_reps, "test_reps")
    if names_tr != names_te:
        raise ValueError(
            f"train_reps and test_reps must list the same layers; got {names_tr} and {names_te}"
        )
    out = []
    for name, tr, te in zip(names_tr, arrays_tr, arrays_te):
        tr2 = tr.reshape(len(tr), -1) if tr.ndim > 2 else tr
        te2 = te.reshape(len(te), -1) if te.ndim > 2 else te
        if tr2.ndim == 2 and te2.ndim == 2 and tr2.shape[1] != te2.shape[1]:
            raise ValueError(
                f"layer {name!r}: train and test widths differ ({tr2.shape[1]} and "
                f"{te2.shape[1]})"
            )
        kl = estimate.kl(te2, tr2, k=k, base=base, seed=seed)
        w1 = float(transport.sliced_wasserstein(te2, tr2, n_projections=n_projections, p=1,
                                                seed=seed))
        out.append(LayerShift(layer=name, kl=kl, w1=w1, n_train=len(tr2), n_test=len(te2)))
    return out


def _layers(reps: Any, name: str) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(reps, Mapping):
        names = [str(key) for key in reps]
        arrays = list(reps.values())
    elif isinstance(reps, (list, tuple)):
        names = [str(i) for i in range(len(reps))]
        arrays = list(reps)
    else:
        raise TypeError(f"{name} must be a list of per-layer arrays or a dict of them; got "
                        f"{type(reps).__name__}")
    if not arrays:
        raise ValueError(f"{name} has no layers")
    out = []
    for key, a in zip(names, arrays):
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name}[{key!r}] must be a numeric array of shape (n, d)")
        out.append(arr.astype(np.float64, copy=False))
    return names, out
