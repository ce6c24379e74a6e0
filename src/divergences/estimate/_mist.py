r"""MIST: a learned mutual-information estimator (after Gritsai et al., code ``grgera/mist``).

A small set transformer reads a whole sample ``{(x_i, y_i)}`` and predicts quantiles of the
mutual information that produced it. It was trained (``scripts/train_mist.py``) by regression
on synthetic samples whose MI is known in closed form, with the pinball (quantile) loss at a
random level ``tau``; its weights ship with the package (``estimate/data/mist_weights.npz``).

Pipeline (one place, used by training and inference alike):

1. **Copula normalisation.** Each column of ``x`` and ``y`` is replaced by its normal scores
   :math:`\Phi^{-1}(r_i / (n + 1))`, ``r_i`` the rank of row ``i`` in that column (ties get
   their average rank). MI is invariant under strictly monotone maps of each coordinate, and
   after this step so is the input of the network: it sees only the empirical copula, which
   is all MI depends on, and heavy tails or odd units cannot push it off its training range.
   Standardising instead would leave the marginal shapes in the input, which would have to be
   learnt away from training data. Within-side order of columns is kept.
2. **Padding and products.** ``x`` and ``y`` are padded with zero columns to ``max_dim``
   columns each (``max_dim = 2`` for the shipped weights; a normal-score column is never
   constant, so a zero column is recognisably padding). Each row also carries the pairwise
   products of its scores, whose row means are the normal-scores correlations (the
   sufficient statistics of a Gaussian copula); the row embedding also receives ``d_x``,
   ``d_y`` and ``log n``.
3. **Network.** A row-wise MLP embeds each row; two induced set-attention blocks (ISAB: the
   rows attend to ``m`` learnt inducing points and back, cost linear in ``n``) mix the rows;
   pooling by multihead attention (PMA, one learnt seed) concatenated with the masked mean
   gives a fixed-size summary. Padding rows are masked out of every attention and mean. No
   position information enters, so the output is invariant to the order of the rows by
   construction (up to floating-point summation order).
4. **Quantile head.** From the summary an MLP gives a median :math:`\mu` and four raw
   coefficients :math:`c_k`; the quantile at level ``tau`` is

   .. math:: q(\tau) = \mu + \sum_k \mathrm{softplus}(c_k)\, g_k(\tau), \qquad
             g = \big(z^+,\ -z^-,\ (z^3)^+,\ -(z^3)^-\big),\ z = \Phi^{-1}(\tau),

   with :math:`z^\pm` the positive and negative parts. Each :math:`g_k` is non-decreasing and
   0 at ``tau = 1/2``, and the weights are positive, so quantiles never cross (monotone in
   ``tau`` by construction) and ``q(1/2) = mu``. The cubic terms let the tails be heavier and
   the two sides differ (skewed intervals near 0).

Sample size: a sample of ``n_min <= n <= n_max`` rows (64 and 256 for the shipped weights) is
read whole (the network was trained on sizes drawn from that range). A larger sample is put in
a canonical order (rows sorted lexicographically, so the result does not depend on the input
order), shuffled with ``seed``, and cut into ``min(ceil(n / n_max), max_chunks)`` equal chunks
of at most ``n_max`` rows (left-over rows are dropped; ``details["rows_used"]`` says how many
were used). Each chunk is copula-normalised and read separately; the reported quantiles are the
averages of the chunk quantiles. The averaged median has less variance than one chunk's, but
the learnt estimator's small-sample bias (towards the middle of its training range) does not
average out, and the interval stays that of one ``n_max``-row sample: conservative for large
``n``. Fewer than ``n_min`` rows, or more than ``max_dim`` columns on either side, are an
error: the network has never seen such inputs.

Accuracy (shipped weights: 3000 steps of 48 sets, about 32k parameters, 8 minutes on one CPU
core; measured numbers in ``estimate/data/mist_training.json``): on its own training families
it is more accurate than KSG at ``n = 64`` and somewhat less at ``n = 256``; on held-out
families it is comparable to KSG at ``n = 64`` and worse at ``n = 256``; its 95% intervals
cover the truth in 85-100% of held-out sets. It does not improve with ``n`` the way a
consistent estimator does (for ``n > 256`` it averages 256-row predictions, whose bias stays:
about -0.17 nats on the benchmark's binormal task), and it can fail on copulas unlike its
training data (the benchmark's ``spiral`` task is overestimated by 1.3 nats, inside a wide
interval). Prefer KSG or the Gaussian copula for large samples; MIST is a fast small-sample
estimate with a learnt interval.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import special, stats
from torch import nn

from .._arrays import log_base
from . import _input
from ._result import Estimate, finalize, make

__all__ = ["MISTNet", "mist_mutual_information"]

WEIGHTS = "mist_weights.npz"
N_BASIS = 4


# --------------------------------------------------------------------------------------------
# Preprocessing (shared with scripts/train_mist.py)
# --------------------------------------------------------------------------------------------


def copula_scores(a: np.ndarray) -> np.ndarray:
    """Normal scores ``ndtri(rank / (n + 1))`` of each column of ``a`` (..., n, d); ties averaged."""
    n = a.shape[-2]
    order = np.argsort(a, axis=-2, kind="stable")
    if bool((np.diff(np.take_along_axis(a, order, axis=-2), axis=-2) == 0).any()):
        r = stats.rankdata(a, axis=-2, method="average")  # ties: average ranks
    else:  # no ties (the usual case for float data): ranks from one sort
        r = np.empty(a.shape)
        np.put_along_axis(r, order, np.broadcast_to(np.arange(1.0, n + 1.0)[:, None], a.shape),
                          axis=-2)
    return special.ndtri(r / (n + 1.0))


def n_features(max_dim: int) -> int:
    """Row width: ``2 max_dim`` scores and their ``max_dim (2 max_dim - 1)`` pairwise products."""
    w = 2 * max_dim
    return w + w * (w - 1) // 2


def features(x: np.ndarray, y: np.ndarray, max_dim: int) -> np.ndarray:
    """``(..., n, n_features)`` float32: scores of ``x``, of ``y`` (zero-padded), products.

    The products ``s_i s_j`` (``i < j``) of the padded score vector are the summands of the
    normal-scores rank correlations: their mean over the rows (which the pooling computes) is
    the sufficient statistic of a Gaussian copula, so the network does not have to learn to
    multiply. Padded columns give zero products.
    """
    w = 2 * max_dim
    s = np.zeros((*x.shape[:-1], w))
    s[..., : x.shape[-1]] = copula_scores(x)
    s[..., max_dim : max_dim + y.shape[-1]] = copula_scores(y)
    i, j = np.triu_indices(w, k=1)
    return np.concatenate([s, s[..., i] * s[..., j]], axis=-1).astype(np.float32)


def context(n: int, dx: int, dy: int, config: dict[str, Any]) -> np.ndarray:
    """The per-sample inputs besides the rows: ``log n`` and the two dimensions, scaled."""
    return np.array([math.log(n) / math.log(config["n_max"]), dx / config["max_dim"],
                     dy / config["max_dim"]], dtype=np.float32)


def tau_basis(tau: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` non-decreasing functions of ``tau`` that vanish at ``tau = 1/2``."""
    z = torch.special.ndtri(tau)
    z3 = z**3
    return torch.stack([z.clamp(min=0), z.clamp(max=0), z3.clamp(min=0), z3.clamp(max=0)],
                       dim=-1)


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class _MAB(nn.Module):
    """Multihead attention block: ``h = ln(q + attn(q, k)); out = ln(h + ffn(h))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, q: torch.Tensor, k: torch.Tensor,
                pad: torch.Tensor | None = None) -> torch.Tensor:
        a, _ = self.attn(q, k, k, key_padding_mask=pad, need_weights=False)
        h = self.ln1(q + a)
        return self.ln2(h + self.ffn(h))


class _ISAB(nn.Module):
    """Induced set attention: ``m`` inducing points read the rows, the rows read them back."""

    def __init__(self, dim: int, heads: int, inducing: int) -> None:
        super().__init__()
        self.points = nn.Parameter(torch.randn(1, inducing, dim) / math.sqrt(dim))
        self.read = _MAB(dim, heads)
        self.back = _MAB(dim, heads)

    def forward(self, rows: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.read(self.points.expand(rows.shape[0], -1, -1), rows, pad)
        return self.back(rows, h)


class MISTNet(nn.Module):
    """Set transformer mapping padded, masked samples to MI quantiles.

    ``forward(rows, mask, ctx, tau)``: ``rows`` (B, N, n_features) from :func:`features`, ``mask``
    (B, N) true for real rows, ``ctx`` (B, 3) from :func:`context`, ``tau`` (B, T) levels in
    (0, 1); returns (B, T) quantiles in nats.
    """

    def __init__(self, max_dim: int = 4, hidden: int = 64, heads: int = 4, inducing: int = 16,
                 blocks: int = 2) -> None:
        super().__init__()
        width = n_features(max_dim) + 3
        self.embed = nn.Sequential(nn.Linear(width, hidden), nn.GELU(),
                                   nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(_ISAB(hidden, heads, inducing) for _ in range(blocks))
        self.seed = nn.Parameter(torch.randn(1, 1, hidden) / math.sqrt(hidden))
        self.pool = _MAB(hidden, heads)
        self.head = nn.Sequential(nn.Linear(2 * hidden + 3, hidden), nn.GELU(),
                                  nn.Linear(hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, 1 + N_BASIS))

    def summary(self, rows: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, n, _ = rows.shape
        pad = ~mask
        h = self.embed(torch.cat([rows, ctx[:, None, :].expand(b, n, -1)], dim=-1))
        for blk in self.blocks:
            h = blk(h, pad)
        pooled = self.pool(self.seed.expand(b, -1, -1), h, pad)[:, 0]
        w = mask.to(h.dtype)[..., None]
        mean = (h * w).sum(1) / w.sum(1)
        return torch.cat([pooled, mean, ctx], dim=-1)

    def forward(self, rows: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor,
                tau: torch.Tensor) -> torch.Tensor:
        out = self.head(self.summary(rows, mask, ctx))
        mu, coef = out[:, :1], nn.functional.softplus(out[:, 1:])
        return mu + (tau_basis(tau) * coef[:, None, :]).sum(-1)


def pinball(pred: torch.Tensor, target: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss ``max(tau (t - q), (tau - 1)(t - q))`` of quantiles ``pred`` (B, T)."""
    err = target[:, None] - pred
    return torch.maximum(tau * err, (tau - 1.0) * err).mean()


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def save_weights(path: str | Path, model: MISTNet, config: dict[str, Any]) -> None:
    """Write ``model``'s state dict (float32) and ``config`` (JSON) to an ``.npz`` file."""
    arrays = {k: v.detach().cpu().numpy().astype(np.float32)
              for k, v in model.state_dict().items()}
    np.savez_compressed(path, __config__=np.array(json.dumps(config)), **arrays)


def _load(source: Any) -> tuple[MISTNet, dict[str, Any]]:
    with np.load(source, allow_pickle=False) as f:
        config = json.loads(str(f["__config__"]))
        state = {k: torch.from_numpy(f[k].copy()) for k in f.files if k != "__config__"}
    model = MISTNet(**config["arch"])
    model.load_state_dict(state)
    model.eval()
    return model, config


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> tuple[MISTNet, dict[str, Any]]:
    """The shipped network (``path=None``, read with :mod:`importlib.resources`) or a file."""
    if path is not None:
        return _load(path)
    ref = resources.files("divergences.estimate").joinpath("data").joinpath(WEIGHTS)
    with ref.open("rb") as fh:
        return _load(fh)


# --------------------------------------------------------------------------------------------
# Public estimator
# --------------------------------------------------------------------------------------------


def _check_quantiles(quantiles: Any) -> tuple[float, float, float]:
    try:
        qs = tuple(float(q) for q in quantiles)
    except TypeError as exc:
        raise TypeError("quantiles must be a sequence of three levels (low, mid, high)") from exc
    if len(qs) != 3:
        raise ValueError(f"quantiles must hold three levels (low, mid, high); got {len(qs)}")
    if not all(0.0 < q < 1.0 for q in qs):
        raise ValueError(f"quantiles must lie strictly between 0 and 1; got {qs}")
    if not qs[0] < qs[1] < qs[2]:
        raise ValueError(f"quantiles must be strictly increasing; got {qs}")
    return qs  # type: ignore[return-value]


def _chunks(xa: np.ndarray, ya: np.ndarray, n_max: int, max_chunks: int,
            seed: int | None) -> list[np.ndarray]:
    """Row-index sets: all rows if ``n <= n_max``, else equal chunks of a canonical shuffle."""
    n = xa.shape[0]
    if n <= n_max:
        return [np.arange(n)]
    joint = np.concatenate([xa, ya], axis=1)
    order = np.lexsort(joint.T[::-1])  # canonical: independent of the input row order
    order = order[np.random.default_rng(seed).permutation(n)]
    k = min(math.ceil(n / n_max), max_chunks)
    size = min(n // k, n_max)
    return [order[i * size:(i + 1) * size] for i in range(k)]


def predict_quantiles(xa: np.ndarray, ya: np.ndarray, taus: Sequence[float], *,
                      seed: int | None = 0, max_chunks: int = 32,
                      weights: str | None = None) -> tuple[np.ndarray, int, int]:
    """Chunk-averaged quantiles ``(len(taus),)`` for validated float arrays; rows used, chunks."""
    model, config = load_model(weights)
    md, n_max = config["max_dim"], config["n_max"]
    parts = _chunks(xa, ya, n_max, max_chunks, seed)
    size = parts[0].shape[0]
    rows = np.stack([features(xa[p], ya[p], md) for p in parts])
    ctx = np.tile(context(size, xa.shape[1], ya.shape[1], config), (len(parts), 1))
    tau = torch.tensor(np.asarray(taus, dtype=np.float32)).expand(len(parts), -1)
    with torch.no_grad():
        q = model(torch.from_numpy(rows), torch.ones(rows.shape[:2], dtype=torch.bool),
                  torch.from_numpy(ctx), tau)
    return q.double().mean(0).numpy(), size * len(parts), len(parts)


def mist_mutual_information(
    x: Any,
    y: Any,
    quantiles: Sequence[float] = (0.025, 0.5, 0.975),
    *,
    base: float | None = None,
    seed: int | None = 0,
    max_chunks: int = 32,
    clip: bool = True,
    weights: str | Path | None = None,
) -> Estimate:
    r"""Mutual information :math:`I(X;Y)` predicted by the learned MIST estimator.

    ``x`` (n,) or (n, d_x), ``y`` (n,) or (n, d_y), float (continuous) rows paired by index.
    Limits of the shipped weights: ``d_x, d_y <= 2`` and ``n >= 64``; ``n > 256`` is read in
    chunks of at most 256 rows (see the module notes). The network predicts the quantile
    function :math:`\tau \mapsto q(\tau)` of the MI given the sample's empirical copula; with
    ``quantiles = (lo, mid, hi)`` the estimate's ``value`` is :math:`q(\mathrm{mid})` (the
    median by default), its interval is :math:`[q(\mathrm{lo}), q(\mathrm{hi})]` (a level
    ``hi - lo`` interval, 95% by default; ``ci_method="quantile"``), and its ``stderr`` is the
    interval's half-width divided by the normal quantile :math:`z_{(1+\mathrm{level})/2}`.
    Units: nats, or ``base`` units. Value and interval are floored at 0 (MI is never
    negative; ``Estimate.raw_value`` keeps the prediction) unless ``clip=False``.

    It is invariant to the order of the rows and to strictly increasing maps of each column
    (it sees only ranks). It is a learnt regression: it is accurate for distributions like
    those it was trained on (Gaussian and Student-t copulas, MI up to about 3 nats) and
    degrades outside them (held-out accuracy and interval coverage, with KSG on the same
    samples for comparison, are recorded in ``estimate/data/mist_training.json``); ``details`` holds ``quantiles`` (level -> value), ``rows_used``
    and ``chunks``. ``weights`` loads another ``.npz`` written by ``scripts/train_mist.py``.

    >>> import numpy as np
    >>> from divergences.estimate._mist import mist_mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(256)
    >>> y = 0.8 * x + 0.6 * rng.standard_normal(256)      # I = -1/2 log(1 - 0.64) = 0.51
    >>> e = mist_mutual_information(x, y)
    >>> e.method, e.n, e.ci_low < e.value < e.ci_high
    ('mist', 256, True)
    >>> abs(e.value - 0.51) < 0.2
    True
    """
    qs = _check_quantiles(quantiles)
    log_base(base)
    seed = _input.check_seed(seed)
    max_chunks = _input.check_int(max_chunks, "max_chunks", 1)
    if weights is not None and not isinstance(weights, (str, Path)):
        raise TypeError(f"weights must be a path or None; got {type(weights).__name__}")
    xa, xd = _input.as_sample(x, "x")
    ya, yd = _input.as_sample(y, "y")
    if xd or yd:
        bad = " and ".join(nm for nm, d in (("x", xd), ("y", yd)) if d)
        raise TypeError(f"method='mist' needs float (continuous) x and y; {bad} is integer")
    n = _input.same_length(("x", xa), ("y", ya))
    _, config = load_model(None if weights is None else str(weights))
    md, n_min = config["max_dim"], config["n_min"]
    for nm, a in (("x", xa), ("y", ya)):
        if a.shape[1] > md:
            raise ValueError(f"{nm} has {a.shape[1]} columns; method='mist' was trained for at "
                             f"most {md} per side")
    if n < n_min:
        raise ValueError(f"method='mist' needs at least {n_min} rows; got n={n}")
    q, used, chunks = predict_quantiles(xa, ya, qs, seed=seed, max_chunks=max_chunks,
                                        weights=None if weights is None else str(weights))
    level = qs[2] - qs[0]
    stderr = (q[2] - q[0]) / (2.0 * float(special.ndtri(0.5 + level / 2.0)))
    est = make(float(q[1]), float(stderr), "mist", n, level=level, ci_method="quantile",
               ci=(float(q[0]), float(q[2])),
               details={"quantiles": dict(zip(qs, (float(v) for v in q))),
                        "rows_used": used, "chunks": chunks})
    return finalize(est, base=base, clip=clip)
