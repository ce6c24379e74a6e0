"""Test-time merging with Jensen-Shannon-based coefficients (T3; Imam et al., 2025)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .. import discrete
from .._arrays import INPUTS, ArrayLike, as_tensors, check_choice, check_range

__all__ = ["merge_parameters", "merge_predictions", "t3_coefficients"]


def t3_coefficients(
    p_pretrained: ArrayLike,
    p_finetuned: ArrayLike,
    lambda_min: float,
    lambda_max: float,
    gamma: float = 0.5,
    batchwise: bool = False,
    *,
    input: str = "probs",
) -> Any:
    r"""T3 merging coefficients from the disagreement of a pretrained and a fine-tuned model.

    .. math:: \lambda(x) = \lambda_{\min} + (\lambda_{\max} - \lambda_{\min})\,
       \sigma\big(\gamma\,\mathrm{JS}(p_{pt}(\cdot|x) \,\|\, p_{ft}(\cdot|x))\big)

    with :math:`\mathrm{JS}` the Jensen-Shannon divergence in nats
    (:func:`divergences.js`, ``beta=0.5``) over the last axis and :math:`\sigma` the logistic
    function. :math:`\lambda` is the weight of the *fine-tuned* model in
    :func:`merge_predictions` / :func:`merge_parameters`. Since :math:`0 \le \mathrm{JS} \le
    \log 2` (and :math:`\gamma \ge 0`), :math:`\lambda` lies in
    :math:`[\lambda_{\min} + \tfrac12\Delta,\ \lambda_{\min} + \sigma(\gamma\log 2)\Delta]`,
    :math:`\Delta = \lambda_{\max} - \lambda_{\min}`; identical predictions give the midpoint.

    One coefficient per sample (``[..., V] -> [...]``); ``batchwise=True`` gives one for the
    whole batch, from the mean JS over all samples (a 0-d result). ``input`` says what the
    arrays hold (``"probs"``, ``"logits"`` or ``"log_probs"``). NumPy in gives NumPy out.

    >>> import numpy as np
    >>> p = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    >>> q = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])
    >>> t3_coefficients(p, q, 0.0, 1.0).round(4).tolist()      # midpoint; sigmoid(0.5 ln 2)
    [0.5, 0.5858]
    """
    lo = check_range(lambda_min, "lambda_min")
    hi = check_range(lambda_max, "lambda_max")
    if hi < lo:
        raise ValueError(f"lambda_max must be >= lambda_min; got {hi} < {lo}")
    g = check_range(gamma, "gamma", 0.0)
    if not isinstance(batchwise, bool):
        raise TypeError(f"batchwise must be a bool; got {type(batchwise).__name__}")
    check_choice(input, "input", INPUTS)
    js = discrete.js(p_pretrained, p_finetuned, input=input,
                     reduction="mean" if batchwise else "none")
    if isinstance(js, torch.Tensor):
        return lo + (hi - lo) * torch.sigmoid(g * js)
    (t,), wrap = as_tensors(js, names=("js",))
    return wrap(lo + (hi - lo) * torch.sigmoid(g * t))


def merge_predictions(
    p_pretrained: ArrayLike,
    p_finetuned: ArrayLike,
    lambda_: ArrayLike,
    *,
    input: str = "probs",
) -> Any:
    r"""Mix two models' predictive distributions: :math:`(1-\lambda)\,p_{pt} + \lambda\,p_{ft}`.

    ``lambda_`` is a scalar or one value per sample (the batch shape, e.g. from
    :func:`t3_coefficients`), broadcast over the last (class) axis. Inputs are probabilities,
    logits or log-probabilities (``input``); the result is probabilities. NumPy in gives
    NumPy out; torch in gives torch out (differentiable).

    >>> import numpy as np
    >>> merge_predictions(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25).tolist()
    [0.75, 0.25]
    """
    check_choice(input, "input", INPUTS)
    (a, b, lam), wrap = as_tensors(p_pretrained, p_finetuned, lambda_,
                                   names=("p_pretrained", "p_finetuned", "lambda_"))
    if a.shape != b.shape:
        raise ValueError("p_pretrained and p_finetuned must have the same shape; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 0:
        raise ValueError("p_pretrained must have a class axis")
    if lam.ndim > 0 and tuple(lam.shape) != tuple(a.shape[:-1]):
        raise ValueError(f"lambda_ must be a scalar or have the batch shape {tuple(a.shape[:-1])}"
                         f"; got {tuple(lam.shape)}")
    lpa = discrete.to_log_probs(a, input, "p_pretrained")
    lpb = discrete.to_log_probs(b, input, "p_finetuned")
    w = lam[..., None] if lam.ndim > 0 else lam
    return wrap((1 - w) * lpa.exp() + w * lpb.exp())


def merge_parameters(
    pretrained: Mapping[str, torch.Tensor],
    finetuned: Mapping[str, torch.Tensor],
    lambda_: float,
) -> dict[str, torch.Tensor]:
    r"""Interpolate two state dicts: :math:`\theta = \theta_{pt} + \lambda(\theta_{ft} - \theta_{pt})`.

    The weight-space merge T3 applies with its per-batch coefficient. Keys must match;
    floating tensors are interpolated (in their dtype), other entries (integer buffers) are
    taken from ``finetuned``.

    >>> import torch
    >>> merge_parameters({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.3)["w"]
    tensor([0.3000, 0.3000])
    """
    lam = check_range(lambda_, "lambda_")
    if set(pretrained) != set(finetuned):
        missing = sorted(set(pretrained) ^ set(finetuned))
        raise ValueError(f"pretrained and finetuned must have the same keys; differ at {missing}")
    out: dict[str, torch.Tensor] = {}
    for k, ft in finetuned.items():
        pt = pretrained[k]
        if pt.shape != ft.shape:
            raise ValueError(f"shapes differ at {k!r}: {tuple(pt.shape)} and {tuple(ft.shape)}")
        out[k] = torch.lerp(pt, ft.to(pt.dtype), lam) if pt.is_floating_point() else ft
    return out
