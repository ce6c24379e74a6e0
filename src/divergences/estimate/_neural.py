"""Neural (variational) lower bounds on mutual information, trained with torch.

A critic ``T(x, y)`` scores pairs; on a batch of ``B`` joint draws the score matrix
``F[i, j] = T(x_i, y_j)`` has the joint pairs on its diagonal and draws from ``P_X P_Y`` off
it. The bounds (all lower bounds on ``I(X; Y)`` in nats for any critic):

``infonce`` (van den Oord et al. 2018)
    :math:`\\frac1B\\sum_i \\big(F_{ii} - \\log\\frac1B\\sum_j e^{F_{ij}}\\big)`; it can never
    exceed ``log B``.
``nwj`` (Nguyen, Wainwright, Jordan 2010; the f-GAN KL bound)
    :math:`\\mathbb E_P[T] - e^{-1}\\,\\mathbb E_{P_XP_Y}[e^{T}]`.
``dv`` (Donsker-Varadhan)
    :math:`\\mathbb E_P[T] - \\log \\mathbb E_{P_XP_Y}[e^{T}]`.
``mine`` (Belghazi et al. 2018)
    the DV bound, trained with the moving-average corrected gradient: the gradient of
    :math:`\\log\\mathbb E[e^T]` is :math:`\\nabla\\mathbb E[e^T] / \\mathbb E[e^T]`, whose
    denominator is replaced by an exponential moving average (rate ``ema``) of the batch
    values, which removes the bias of the mini-batch gradient.
``smile`` (Song and Ermon 2020)
    the DV bound with the critic clipped to ``[-tau, tau]`` inside the log-mean-exp, which
    bounds its variance; the critic is trained with the Jensen-Shannon (f-GAN) objective
    :math:`\\mathbb E_P[-\\mathrm{softplus}(-T)] - \\mathbb E_{P_XP_Y}[\\mathrm{softplus}(T)]`,
    whose optimum is the same density ratio.

Marginal expectations use all ``B(B-1)`` off-diagonal pairs of the batch.

``wdm`` (Ozair et al. 2019, the Wasserstein dependency measure)
    :math:`W_1(P_{XY}, P_XP_Y) = \\sup_{\\|T\\|_{\\mathrm{Lip}} \\le 1}
    \\mathbb E_P[T] - \\mathbb E_{P_XP_Y}[T]` (Kantorovich-Rubinstein), the Euclidean
    1-Wasserstein distance between the joint law and the product of the marginals, in the
    units of the data; the batch value is the diagonal mean minus the off-diagonal mean of
    ``F``. The critic is kept (softly) 1-Lipschitz by a gradient penalty, see
    :func:`wasserstein_dependency`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .._arrays import check_choice, check_range, log_base
from . import _input
from ._mi import NEURAL_METHODS  # one list, kept where listing methods needs no torch
from ._result import Estimate, check_level, finalize, make

CRITICS = ("separable", "concat")


class _MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int, layers: int, d_out: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = d_in
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        mods.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*mods)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)


class _Critic(nn.Module):
    """``separable``: ``g(x) . h(y)``; ``concat``: one MLP on ``[x, y]`` for every pair."""

    def __init__(self, dx: int, dy: int, kind: str, hidden: int, layers: int, embed: int
                 ) -> None:
        super().__init__()
        self.kind = kind
        if kind == "separable":
            self.g = _MLP(dx, hidden, layers, embed)
            self.h = _MLP(dy, hidden, layers, embed)
        else:
            self.f = _MLP(dx + dy, hidden, layers, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score matrix ``F[i, j] = T(x_i, y_j)``, shape ``(B, B)``."""
        if self.kind == "separable":
            return self.g(x) @ self.h(y).T
        b = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(b, b, -1), y[None, :, :].expand(b, b, -1)],
                          dim=-1)
        return self.f(pairs)[..., 0]


def _offdiag_logmeanexp(f: torch.Tensor) -> torch.Tensor:
    b = f.shape[0]
    mask = torch.eye(b, dtype=torch.bool, device=f.device)
    return torch.logsumexp(f.masked_fill(mask, -math.inf), dim=(0, 1)) - math.log(b * (b - 1))


def bound(f: torch.Tensor, method: str, tau: float) -> torch.Tensor:
    """The value of the lower bound ``method`` on one batch score matrix ``f``."""
    joint = torch.diagonal(f).mean()
    if method == "infonce":
        return (torch.diagonal(f) - torch.logsumexp(f, dim=1)).mean() + math.log(f.shape[0])
    if method == "nwj":
        return joint - torch.exp(_offdiag_logmeanexp(f) - 1.0)
    if method in ("dv", "mine"):
        return joint - _offdiag_logmeanexp(f)
    if method == "wdm":
        b = f.shape[0]
        return joint - (f.sum() - torch.diagonal(f).sum()) / (b * (b - 1))
    # smile
    return joint - _offdiag_logmeanexp(torch.clamp(f, -tau, tau))


def _gradient_penalty(model: _Critic, x: torch.Tensor, y: torch.Tensor,
                      gen: torch.Generator) -> torch.Tensor:
    """One-sided penalty ``E[max(0, |grad T(z)| - 1)^2]`` (Petzka et al. 2018).

    ``z`` are random points on the segments between each joint pair ``(x_i, y_i)`` and a
    product pair ``(x_i, y_{i+1})`` (the batch rolled by one), where the optimal critic's
    slope is 1. One-sided because the Kantorovich-Rubinstein supremum is over critics with
    slope at most 1, not exactly 1.
    """
    t = torch.rand(x.shape[0], 1, generator=gen, dtype=x.dtype)
    joint = torch.cat([x, y], dim=1)
    prod = torch.cat([x, torch.roll(y, 1, dims=0)], dim=1)
    z = (t * joint + (1.0 - t) * prod).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.f(z).sum(), z, create_graph=True)
    return torch.clamp(grad.norm(dim=1) - 1.0, min=0.0).pow(2).mean()


def _js_objective(f: torch.Tensor) -> torch.Tensor:
    b = f.shape[0]
    mask = torch.eye(b, dtype=torch.bool, device=f.device)
    pos = -nn.functional.softplus(-torch.diagonal(f)).mean()
    neg = nn.functional.softplus(f.masked_select(~mask)).mean()
    return pos - neg


class _Adam:
    """Adam (Kingma and Ba 2015) with the default betas, written out.

    ``torch.optim`` imports ``torch._dynamo`` on first use, which takes tens of seconds on a
    loaded machine; these few lines do the same update without it.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (
            0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _prepare(a: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) - mean) / scale


def neural_mutual_information(
    x: Any,
    y: Any,
    method: str = "infonce",
    *,
    critic: str = "separable",
    hidden: int = 64,
    layers: int = 2,
    embed: int = 32,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
    eval_every: int = 50,
    patience: int = 10,
    tau: float = 5.0,
    ema: float = 0.01,
    base: float | None = None,
    level: float = 0.95,
    seed: int | None = 0,
    progress: bool | Callable[[int, float], None] = False,
    threads: int | None = 1,
) -> Estimate:
    r"""Mutual information by a neural variational lower bound (torch, CPU or the input device).

    ``method`` is one of ``"infonce"``, ``"nwj"``, ``"dv"``, ``"mine"``, ``"smile"`` (formulas in
    :mod:`divergences.estimate._neural`). Units: nats, or ``base`` units.

    Protocol. The rows are shuffled (``seed``) and split: ``test_fraction`` held out for the
    reported value; of the rest, ``val_fraction`` for early stopping and the remainder for
    training. Columns are standardised with the training rows' mean and standard deviation.
    The critic (``critic="separable"``: :math:`T(x, y) = g(x)^\top h(y)` with two MLPs of
    ``layers`` hidden layers of width ``hidden`` and output ``embed``; ``"concat"``: one MLP
    on ``[x, y]``) is trained by Adam (``lr``) on mini-batches of ``batch_size`` rows for at
    most ``steps`` steps. Every ``eval_every`` steps the bound is evaluated on the validation
    rows; training stops after ``patience`` evaluations without improvement and the best
    critic is kept. ``progress=True`` prints ``step, validation bound`` to stderr at each
    evaluation; a callable receives them instead.

    Reported value: the bound evaluated with the kept critic on the held-out rows, in
    consecutive batches of ``batch_size`` (the InfoNCE value depends on it and is at most
    ``log(batch_size)``), averaged. ``stderr`` is the standard deviation of the per-batch
    values over the square root of their number: the held-out sampling error given the
    critic (training randomness is not included; rerun with other seeds to see it).
    ``details`` holds ``steps`` run, ``best_step``, ``history`` (step, validation value) and
    ``log_batch`` (``log(batch_size)``, the InfoNCE ceiling).

    Reproducible: the same ``seed`` gives the same number (CPU; torch's deterministic
    kernels). ``threads``: torch intra-op threads while training (restored afterwards;
    ``None`` leaves torch's setting). Small critics run fastest on one thread: on a loaded
    2-core machine two threads were 10x slower per step.

    >>> import numpy as np
    >>> from divergences.estimate import neural_mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 1))
    >>> y = 0.9 * x + np.sqrt(1 - 0.81) * rng.normal(size=(2000, 1))   # I = 0.830 nats
    >>> e = neural_mutual_information(x, y, "infonce", steps=300, hidden=32, seed=0)
    >>> bool(0.5 < e.value < 1.0), bool(e.value <= np.log(128))
    (True, True)
    """
    check_choice(method, "method", NEURAL_METHODS)
    check_choice(critic, "critic", CRITICS)
    log_base(base)
    level = check_level(level)
    seed = _input.check_seed(seed)
    hidden = _input.check_int(hidden, "hidden", 1)
    layers = _input.check_int(layers, "layers", 0)
    embed = _input.check_int(embed, "embed", 1)
    steps = _input.check_int(steps, "steps", 1)
    batch_size = _input.check_int(batch_size, "batch_size", 2)
    eval_every = _input.check_int(eval_every, "eval_every", 1)
    patience = _input.check_int(patience, "patience", 1)
    lr = check_range(lr, "lr", 0.0, low_open=True)
    test_fraction = check_range(test_fraction, "test_fraction", 0.0, 1.0, low_open=True,
                                high_open=True)
    val_fraction = check_range(val_fraction, "val_fraction", 0.0, 1.0, low_open=True,
                               high_open=True)
    tau = check_range(tau, "tau", 0.0, low_open=True)
    ema = check_range(ema, "ema", 0.0, 1.0, low_open=True)
    _check_progress(progress)
    threads = None if threads is None else _input.check_int(threads, "threads", 1)

    xa, _ = _input.as_sample(x, "x")
    ya, _ = _input.as_sample(y, "y")
    rng, tr, va, te = _split(xa, ya, seed, test_fraction, val_fraction, batch_size)
    mx, sx = xa[tr].mean(axis=0), xa[tr].std(axis=0)
    my, sy = ya[tr].mean(axis=0), ya[tr].std(axis=0)
    sx, sy = np.where(sx > 0, sx, 1.0), np.where(sy > 0, sy, 1.0)
    xt = torch.as_tensor(_prepare(xa, mx, sx), dtype=torch.float32)
    yt = torch.as_tensor(_prepare(ya, my, sy), dtype=torch.float32)
    return _with_threads(threads, lambda: _train_and_evaluate(
        xt, yt, tr, va, te, rng, method=method, critic=critic, hidden=hidden,
        layers=layers, embed=embed, steps=steps, batch_size=batch_size, lr=lr,
        eval_every=eval_every, patience=patience, tau=tau, ema=ema, base=base,
        level=level, seed=seed, report=_reporter(progress, method, "nats")))


def _check_progress(progress: Any) -> None:
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress must be a bool or a callable; got {type(progress).__name__}")


def _reporter(progress: bool | Callable[[int, float], None], method: str, units: str
              ) -> Callable[[int, float], None] | None:
    if progress is True:
        def report(step: int, value: float) -> None:
            print(f"[{method}] step {step}: validation value {value:.4f} {units}",
                  file=sys.stderr)
        return report
    if callable(progress):
        return progress
    return None


def _split(xa: np.ndarray, ya: np.ndarray, seed: int | None, test_fraction: float,
           val_fraction: float, batch_size: int
           ) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded shuffle into training, validation and test rows (each >= batch_size)."""
    n = _input.same_length(("x", xa), ("y", ya))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * (n - n_test))
    n_train = n - n_test - n_val
    if min(n_test, n_val, n_train) < batch_size:
        raise ValueError(
            f"too few samples for batch_size={batch_size}: the test ({n_test}), validation "
            f"({n_val}) and training ({n_train}) splits of n={n} rows each need at least "
            "batch_size rows"
        )
    return rng, perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def _with_threads(threads: int | None, fn: Callable[[], Estimate]) -> Estimate:
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return fn()
    finally:
        torch.set_num_threads(old_threads)


def wasserstein_dependency(
    x: Any,
    y: Any,
    *,
    hidden: int = 64,
    layers: int = 2,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    penalty: float = 100.0,
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
    eval_every: int = 50,
    patience: int = 10,
    level: float = 0.95,
    seed: int | None = 0,
    progress: bool | Callable[[int, float], None] = False,
    threads: int | None = 1,
) -> Estimate:
    r"""Wasserstein dependency measure :math:`W_1(P_{XY}, P_X P_Y)` (Ozair et al. 2019).

    .. math:: \mathrm{WDM}(X; Y) = W_1(P_{XY}, P_X P_Y)
              = \sup_{\|T\|_{\mathrm{Lip}} \le 1} \mathbb E_{P_{XY}}[T(x, y)]
                - \mathbb E_{P_X P_Y}[T(x, y)],

    the Euclidean 1-Wasserstein distance on the joint space of ``(x, y)`` (rows concatenated)
    between the joint law and the product of the marginals. Unlike mutual information it is
    in the units of the data, not nats: it is 0 exactly under independence, and scaling both
    samples by ``c`` scales it by ``c`` (MI is invariant). Translation invariant.

    Protocol (shared with :func:`neural_mutual_information`): the rows are shuffled (``seed``)
    and split into training, validation (``val_fraction``, for early stopping every
    ``eval_every`` steps with ``patience``) and held-out test rows (``test_fraction``). Each
    column is centred and all of them are divided by one common scale ``s`` (the root mean
    column variance of the training rows), which keeps the Euclidean geometry; the value is
    multiplied back by ``s``. The critic ``T`` is an MLP on ``[x, y]`` (``layers`` hidden
    layers of width ``hidden``) scored on every pair of a batch: the diagonal pairs are joint
    draws, the ``B(B-1)`` off-diagonal pairs product draws (the contrastive batch). Adam
    (``lr``) maximises the batch value minus ``penalty`` times the one-sided gradient penalty
    :math:`\mathbb E[\max(0, \|\nabla T(z)\| - 1)^2]` at random points
    between joint and product pairs (Petzka et al. 2018), which keeps ``T`` close to
    1-Lipschitz.

    Reported value: the Kantorovich-Rubinstein objective of the kept critic on the held-out
    rows, in consecutive batches of ``batch_size``, averaged; ``stderr`` is the standard
    deviation of the batch values over the square root of their number (held-out sampling
    error given the critic). For a critic that is exactly 1-Lipschitz the expectation of the
    reported value is a lower bound on the WDM; the penalty is soft, so a slight excess is
    possible. ``method="wdm"``; ``details`` holds ``scale``, ``penalty``, ``steps``,
    ``best_step`` and ``history`` (step, validation value in data units). ``progress``,
    ``threads`` and reproducibility as in :func:`neural_mutual_information`.

    >>> import numpy as np
    >>> from divergences.estimate import wasserstein_dependency
    >>> rng = np.random.default_rng(0)
    >>> x = rng.choice([-1.0, 1.0], size=(800, 1))
    >>> y = x + 0.02 * rng.normal(size=(800, 1))   # W1 = 1: move 1/4 mass 2 units, twice
    >>> e = wasserstein_dependency(x, y, steps=200, hidden=32, batch_size=32, seed=0)
    >>> e.method, bool(0.85 < e.value < 1.1)
    ('wdm', True)
    """
    level = check_level(level)
    seed = _input.check_seed(seed)
    hidden = _input.check_int(hidden, "hidden", 1)
    layers = _input.check_int(layers, "layers", 0)
    steps = _input.check_int(steps, "steps", 1)
    batch_size = _input.check_int(batch_size, "batch_size", 2)
    eval_every = _input.check_int(eval_every, "eval_every", 1)
    patience = _input.check_int(patience, "patience", 1)
    lr = check_range(lr, "lr", 0.0, low_open=True)
    penalty = check_range(penalty, "penalty", 0.0)
    test_fraction = check_range(test_fraction, "test_fraction", 0.0, 1.0, low_open=True,
                                high_open=True)
    val_fraction = check_range(val_fraction, "val_fraction", 0.0, 1.0, low_open=True,
                               high_open=True)
    _check_progress(progress)
    threads = None if threads is None else _input.check_int(threads, "threads", 1)
    xa, _ = _input.as_sample(x, "x")
    ya, _ = _input.as_sample(y, "y")
    rng, tr, va, te = _split(xa, ya, seed, test_fraction, val_fraction, batch_size)
    xa, ya = xa.astype(np.float64), ya.astype(np.float64)
    var = np.concatenate([xa[tr].var(axis=0), ya[tr].var(axis=0)])
    scale = float(np.sqrt(np.mean(var)))
    scale = scale if scale > 0 else 1.0
    xt = torch.as_tensor((xa - xa[tr].mean(axis=0)) / scale, dtype=torch.float32)
    yt = torch.as_tensor((ya - ya[tr].mean(axis=0)) / scale, dtype=torch.float32)
    return _with_threads(threads, lambda: _train_and_evaluate(
        xt, yt, tr, va, te, rng, method="wdm", critic="concat", hidden=hidden,
        layers=layers, embed=1, steps=steps, batch_size=batch_size, lr=lr,
        eval_every=eval_every, patience=patience, tau=1.0, ema=0.01, base=None,
        level=level, seed=seed, report=_reporter(progress, "wdm", "data units"),
        penalty=penalty, scale=scale))


def _train_and_evaluate(
    xt: torch.Tensor, yt: torch.Tensor, tr: np.ndarray, va: np.ndarray, te: np.ndarray,
    rng: np.random.Generator, *, method: str, critic: str, hidden: int, layers: int,
    embed: int, steps: int, batch_size: int, lr: float, eval_every: int, patience: int,
    tau: float, ema: float, base: float | None, level: float, seed: int | None,
    report: Callable[[int, float], None] | None, penalty: float = 0.0, scale: float = 1.0,
) -> Estimate:
    def evaluate(model: _Critic, rows: np.ndarray) -> np.ndarray:
        vals = []
        with torch.no_grad():
            for s in range(0, rows.shape[0] - batch_size + 1, batch_size):
                idx = torch.as_tensor(rows[s:s + batch_size])
                vals.append(float(bound(model(xt[idx], yt[idx]), method, tau)))
        return np.asarray(vals)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        model = _Critic(xt.shape[1], yt.shape[1], critic, hidden, layers, embed)
        opt = _Adam(list(model.parameters()), lr)
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        ma: float | None = None
        best, best_step, best_state = -math.inf, 0, None
        history: list[tuple[int, float]] = []
        bad = 0
        step = 0
        for step in range(1, steps + 1):
            idx = torch.as_tensor(rng.choice(tr, size=batch_size, replace=False))
            f = model(xt[idx], yt[idx])
            if method == "mine":
                joint = torch.diagonal(f).mean()
                mexp = torch.exp(_offdiag_logmeanexp(f))
                cur = float(mexp.detach())
                ma = cur if ma is None else (1.0 - ema) * ma + ema * cur
                objective = joint - mexp / ma
            elif method == "smile":
                objective = _js_objective(f)
            else:
                objective = bound(f, method, tau)
            if method == "wdm":
                objective = objective - penalty * _gradient_penalty(model, xt[idx], yt[idx], gen)
            opt.zero_grad()
            (-objective).backward()
            opt.step()
            if step % eval_every == 0 or step == steps:
                v = float(np.mean(evaluate(model, va))) * scale
                history.append((step, v))
                if report is not None:
                    report(step, v)
                if v > best:
                    best, best_step, bad = v, step, 0
                    best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                else:
                    bad += 1
                    if bad >= patience:
                        break
        if best_state is not None:
            model.load_state_dict(best_state)
        vals = evaluate(model, te)
    vals = vals * scale
    value = float(np.mean(vals))
    stderr = float(np.std(vals, ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else math.inf
    details = {"steps": step, "best_step": best_step, "history": history,
               "log_batch": math.log(batch_size), "critic": critic, "n_train": tr.shape[0],
               "n_validation": va.shape[0]}
    if method == "wdm":
        details.update(scale=scale, penalty=penalty)
        del details["log_batch"]
    est = make(value, stderr, method, te.shape[0], level=level, details=details)
    if method == "wdm":
        est = replace(est, unit="data units")
    # an MI bound below 0 is estimation error (MI is never negative): floored, raw kept
    return finalize(est, base=base, clip=method != "wdm")
