r"""SinKD: batch-wise Sinkhorn distance between the student's and the teacher's predictions.

Cui et al. (2024), *Sinkhorn distance minimization for knowledge distillation*
(LREC-COLING 2024); official code ``2018cx/SinKD`` (``loss.py``, class ``saliency_mse``:
``sinkhorn_loss`` and ``sinkhorn_normalized``).

The cost here is the L1 distance between two probability vectors, given as a precomputed
``(N, N)`` matrix, and the plan is the official code's fixed number of row/column scalings
differentiated through (unrolled); :mod:`divergences.transport` solves a different problem
(points in R^d with the Euclidean ground cost, epsilon-scaling to convergence, envelope
gradients), so the log-domain loop lives here.
"""

from __future__ import annotations

import math

import torch

from .._arrays import REDUCTIONS, check_choice, check_range, compute_dtype

__all__ = ["sinkhorn_distillation_loss"]

SINKD_REDUCTIONS = REDUCTIONS


def _check_logits(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor; got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(f"{name} must have shape (..., N, C) with N, C >= 1; got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def check_sinkd_options(
    temperature: float, epsilon: float, n_iter: int, scale: float, stable: bool, reduction: str
) -> tuple[float, float, int, float]:
    """Validate SinKD's hyper-parameters; returns them as Python numbers."""
    t = check_range(temperature, "temperature", 0.0, low_open=True)
    e = check_range(epsilon, "epsilon", 0.0, low_open=True)
    if math.isinf(t) or math.isinf(e):
        raise ValueError("temperature and epsilon must be finite")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int):
        raise TypeError(f"n_iter must be an int; got {type(n_iter).__name__}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1; got {n_iter}")
    s = check_range(scale, "scale", 0.0)
    if math.isinf(s):
        raise ValueError("scale must be finite")
    if not isinstance(stable, bool):
        raise TypeError(f"stable must be a bool; got {type(stable).__name__}")
    check_choice(reduction, "reduction", SINKD_REDUCTIONS)
    return t, e, n_iter, s


def _plan_kernel(cost: torch.Tensor, epsilon: float, n_iter: int) -> torch.Tensor:
    """The official iterations on the kernel ``exp(-W/eps)``: rows, then columns, to sum 1."""
    p = torch.exp(-cost / epsilon)
    for _ in range(n_iter):
        p = p / p.sum(-1, keepdim=True)
        p = p / p.sum(-2, keepdim=True)
    return p


def _plan_log(cost: torch.Tensor, epsilon: float, n_iter: int) -> torch.Tensor:
    """The same iterations in log domain: ``P = exp(f_i + g_j - W_ij/eps)``.

    A row scaling is ``f_i = -logsumexp_j(g_j - W_ij/eps)``, a column scaling
    ``g_j = -logsumexp_i(f_i - W_ij/eps)``; starting from ``g = 0`` this reproduces
    :func:`_plan_kernel` exactly in exact arithmetic, without underflow for small ``eps``.
    """
    log_k = -cost / epsilon
    g = torch.zeros_like(log_k[..., 0, :])
    f = torch.zeros_like(log_k[..., :, 0])
    for _ in range(n_iter):
        f = -torch.logsumexp(log_k + g[..., None, :], dim=-1)
        g = -torch.logsumexp(log_k + f[..., :, None], dim=-2)
    return torch.exp(log_k + f[..., :, None] + g[..., None, :])


def sinkhorn_plan(cost: torch.Tensor, epsilon: float, n_iter: int, stable: bool) -> torch.Tensor:
    """SinKD's entropic plan for an ``(N, N)`` cost: columns sum to 1, total mass ``N``.

    ``stable=False`` runs the kernel iterations where :func:`kernel_is_safe`, the log domain
    otherwise; ``stable=True`` always runs in log domain.
    """
    if not stable and kernel_is_safe(cost, epsilon):
        return _plan_kernel(cost, epsilon, n_iter)
    return _plan_log(cost, epsilon, n_iter)


def kernel_is_safe(cost: torch.Tensor, epsilon: float) -> bool:
    """Whether the kernel iterations stay well inside the dtype's normal range.

    The kernel's smallest entry is ``exp(-max W / eps)``; the iterates and the gradients of
    the scalings (which divide by squared row and column sums) then stay finite when
    ``max W / eps`` is at most a quarter of ``-log(smallest normal)``: 21.8 in float32 (the
    default ``eps = 0.1`` with ``W <= 2`` qualifies), 177 in float64. Past it the kernel would
    hold zeros or subnormals and the plan or its gradient could be NaN.
    """
    limit = -math.log(torch.finfo(cost.dtype).tiny) / 4.0
    return float(cost.detach().max()) / epsilon <= limit


def sinkhorn_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    epsilon: float = 0.1,
    n_iter: int = 20,
    scale: float = 1e-3,
    *,
    stable: bool = False,
    reduction: str = "sum",
) -> torch.Tensor:
    r"""SinKD's batch-wise Sinkhorn distance between student and teacher predictions.

    The :math:`N` student distributions :math:`p_{s,i} = \mathrm{softmax}(s_i / T)` and the
    :math:`N` teacher distributions :math:`p_{t,j} = \mathrm{softmax}(t_j / T)` of a batch are
    two point sets with the L1 cost :math:`W_{ij} = \|p_{s,i} - p_{t,j}\|_1`. Starting from
    the kernel :math:`K = e^{-W/\varepsilon}`, ``n_iter`` Sinkhorn iterations (scale the rows
    to sum 1, then the columns to sum 1, as in the official code) give the plan :math:`P`:
    uniform marginals and total mass :math:`N` (the columns sum to 1 exactly, the rows up to
    the iterations' convergence). The loss is

    .. math:: L = c \sum_{i,j} P_{ij} W_{ij}

    with ``scale`` :math:`c` (``1e-3``; the official script multiplies by
    :math:`0.0008 \cdot 20 / 8 = 0.002`). Run to convergence (large ``n_iter``) :math:`P` is
    :math:`N` times the entropic optimal plan with marginals :math:`1/N`, so
    :math:`L = c\,N\,\langle \pi^\star_\varepsilon, W\rangle`, POT's
    ``ot.sinkhorn2(a, b, W, reg=eps)`` for uniform ``a``, ``b`` (its transport cost, without
    the entropy term). The value is unchanged by permuting the student rows and, separately,
    the teacher rows; for identical batches of distinct rows it tends to 0 as
    :math:`\varepsilon \to 0`. Paper defaults: :math:`T = 2`, :math:`\varepsilon = 0.1`, 20
    iterations; the full objective is :math:`a\,\mathrm{KD} + (1-a)\,\mathrm{CE} + b\,L`
    (:math:`a = 0.8`, :math:`b = 1`), whose other terms come from
    :func:`~divergences.losses.distillation_loss`.

    ``stable``: ``False`` evaluates the iterations on :math:`K` (the official code) while
    that is safe, :math:`\max W/\varepsilon \le 21.8` in float32 (so the default
    :math:`\varepsilon = 0.1` always is, as :math:`W \le 2`) or :math:`\le 177` in float64.
    Past that the kernel holds zeros or subnormals and the plan or its gradient can be NaN
    (e.g. :math:`\varepsilon = 0.01` in float32), so the same iterations run in log domain
    instead (:math:`P_{ij} = e^{f_i + g_j - W_{ij}/\varepsilon}`, each scaling a
    ``logsumexp``): finite logits always give a finite loss and gradient. ``True`` always
    uses the log domain. Both give the same value up to rounding.

    Gradients: through the ``n_iter`` unrolled iterations, as in the official code (not the
    envelope gradient of a converged plan), to both logits; detach the teacher's logits (or
    compute them under ``torch.no_grad()``) to train the student only.

    Shapes: logits ``(N, C)``; more leading axes are flattened into one batch of points.
    ``reduction``: ``"sum"`` (default) the loss above; ``"mean"`` divided by :math:`N`
    (:math:`c\,\langle \pi, W\rangle` for the plan :math:`\pi = P/N` of mass 1); ``"none"``
    the per-student terms :math:`c \sum_j P_{ij} W_{ij}`, shape ``(...)`` of the leading axes.
    Computed in float32 at least; cost :math:`O(N^2 C)` time and :math:`O(N^2)` memory per
    iteration.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    >>> loss = sinkhorn_distillation_loss(s, t)
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    >>> perm = torch.randperm(8, generator=g)
    >>> bool(torch.isclose(sinkhorn_distillation_loss(s[perm], t), loss))
    True
    >>> same = sinkhorn_distillation_loss(s, s, epsilon=1e-3, stable=True)
    >>> bool(same < 1e-6 * loss)
    True
    """
    s = _check_logits(student_logits, "student_logits")
    t = _check_logits(teacher_logits, "teacher_logits")
    if s.shape != t.shape:
        raise ValueError(
            f"teacher_logits must have the shape of student_logits {tuple(s.shape)}; "
            f"got {tuple(t.shape)}"
        )
    if s.device != t.device:
        raise TypeError(f"teacher_logits is on {t.device} but student_logits is on {s.device}")
    temp, eps, iters, c = check_sinkd_options(temperature, epsilon, n_iter, scale, stable,
                                              reduction)
    dtype = compute_dtype(torch.promote_types(s.dtype, t.dtype))
    batch = s.shape[:-1]
    n_classes = s.shape[-1]
    ps = torch.softmax(s.to(dtype).reshape(-1, n_classes) / temp, dim=-1)
    pt = torch.softmax(t.to(dtype).reshape(-1, n_classes) / temp, dim=-1)
    cost = torch.cdist(ps, pt, p=1.0)
    plan = sinkhorn_plan(cost, eps, iters, stable)
    rows = c * (plan * cost).sum(-1)
    if reduction == "none":
        return rows.reshape(batch)
    if reduction == "sum":
        return rows.sum()
    return rows.mean()
