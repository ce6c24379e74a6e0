"""Suite ``exact``: ``divergences.kl`` and ``divergences.js`` on logits against scipy and torch.

Inputs: student logits ``s = 2 z1`` and teacher logits ``t = s + z2`` (``z1``, ``z2`` standard
normal, seeded), float32, shape ``(rows, vocab)`` (default ``(4096, 32000)``), filled in place
so that no temporary raises the memory baseline. Cases:

``kl/forward``
    ``KL(softmax t || softmax s)`` per row, no gradient.
    ours: ``divergences.kl(t, s, input="logits")``;
    torch: ``F.kl_div(log_softmax(s), log_softmax(t), log_target=True, reduction="none").sum(-1)``;
    scipy: ``rel_entr(softmax(t), softmax(s)).sum(-1)`` (``scipy.special``).
``js/forward``
    ``JS(softmax s, softmax t)`` with ``beta = 1/2`` (nats), no gradient.
    ours: ``divergences.js(s, t, input="logits")``;
    torch: ``(kl_div(lm, ls) + kl_div(lm, lt)).sum(-1) / 2`` with ``log_target=True`` and the
    log-mixture ``lm = logaddexp(ls, lt) - log 2``;
    scipy: ``jensenshannon(softmax(s), softmax(t), axis=-1) ** 2``.
``kl/forward+backward``, ``js/forward+backward``
    the same per-row values, then ``.sum().backward()`` into the student logits (the teacher
    takes no gradient, as in distillation). scipy has no gradient, so the peer is torch.

With ``--variants``, ``ours[validate=False]`` (our function with the input checks for NaN and
``+inf`` skipped) is timed as well.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import scipy.spatial.distance
import scipy.special
import torch
import torch.nn.functional as F

import divergences

from ._runner import Case, Impl

NAME = "exact"
DESCRIPTION = "kl and js on float32 logits: ours vs scipy.special and torch.nn.functional.kl_div"
QUICK = {"rows": 64, "vocab": 1000}

Inputs = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("exact suite")
    g.add_argument("--rows", type=int, default=4096, help="batch rows (default 4096)")
    g.add_argument("--vocab", type=int, default=32000, help="support size (default 32000)")
    g.add_argument("--seed", type=int, default=0, help="seed of the logits (default 0)")
    g.add_argument("--variants", action="store_true",
                   help="also time ours[validate=False] (input checks skipped)")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    for name in ("rows", "vocab"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1; got {getattr(args, name)}")
    return {"rows": args.rows, "vocab": args.vocab, "seed": args.seed,
            "variants": bool(args.variants)}


def describe(config: dict[str, Any]) -> str:
    return (f"float32 logits of shape ({config['rows']}, {config['vocab']}), student 2*N(0,1), "
            f"teacher student + N(0,1), seed {config['seed']}")


def make_inputs(rows: int, vocab: int, seed: int, *, grad: bool) -> Inputs:
    """Seeded logits, allocated once and filled in place (NumPy memory shared with torch)."""
    gen = torch.Generator().manual_seed(seed)
    s_np = np.empty((rows, vocab), dtype=np.float32)
    t_np = np.empty((rows, vocab), dtype=np.float32)
    s = torch.from_numpy(s_np)
    t = torch.from_numpy(t_np)
    s.normal_(generator=gen).mul_(2.0)
    t.normal_(generator=gen).add_(s)
    if grad:
        s.requires_grad_(True)
    return {"s": s, "t": t, "s_np": s_np, "t_np": t_np}


# --------------------------------------------------------------------------------------------
# The implementations: each returns {"value": per-row divergence[, "grad": d sum / d s]}
# --------------------------------------------------------------------------------------------


def _ours_kl(s: torch.Tensor, t: torch.Tensor, validate: bool = True) -> torch.Tensor:
    return divergences.kl(t, s, input="logits", validate=validate)


def _ours_js(s: torch.Tensor, t: torch.Tensor, validate: bool = True) -> torch.Tensor:
    return divergences.js(s, t, input="logits", validate=validate)


def _torch_kl(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    ls = F.log_softmax(s, dim=-1)
    lt = F.log_softmax(t, dim=-1)
    return F.kl_div(ls, lt, log_target=True, reduction="none").sum(-1)


def _torch_js(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    ls = F.log_softmax(s, dim=-1)
    lt = F.log_softmax(t, dim=-1)
    lm = torch.logaddexp(ls, lt) - math.log(2.0)
    left = F.kl_div(lm, ls, log_target=True, reduction="none").sum(-1)
    right = F.kl_div(lm, lt, log_target=True, reduction="none").sum(-1)
    return 0.5 * (left + right)


def _scipy_kl(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    return scipy.special.rel_entr(scipy.special.softmax(t, axis=-1),
                                  scipy.special.softmax(s, axis=-1)).sum(-1)


def _scipy_js(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    ps = scipy.special.softmax(s, axis=-1)
    pt = scipy.special.softmax(t, axis=-1)
    return scipy.spatial.distance.jensenshannon(ps, pt, axis=-1) ** 2


def _forward(fn) -> Any:
    def run(inp: Inputs) -> dict[str, Any]:
        with torch.no_grad():
            return {"value": fn(inp["s"], inp["t"])}

    return run


def _forward_backward(fn) -> Any:
    def run(inp: Inputs) -> dict[str, Any]:
        s = inp["s"]
        s.grad = None
        value = fn(s, inp["t"])
        value.sum().backward()
        grad, s.grad = s.grad, None
        return {"value": value.detach(), "grad": grad}

    return run


def _numpy(fn) -> Any:
    def run(inp: Inputs) -> dict[str, Any]:
        return {"value": fn(inp["s_np"], inp["t_np"])}

    return run


def make_cases(config: dict[str, Any]) -> list[Case]:
    rows, vocab, seed = int(config["rows"]), int(config["vocab"]), int(config["seed"])
    small_rows, small_vocab = min(rows, 8), min(vocab, 256)
    ours = {"kl": _ours_kl, "js": _ours_js}
    torch_ref = {"kl": _torch_kl, "js": _torch_js}
    scipy_ref = {"kl": _scipy_kl, "js": _scipy_js}
    cases = []
    for name in ("kl", "js"):
        for grad in (False, True):
            wrap = _forward_backward if grad else _forward
            fn = ours[name]
            impls = [Impl("ours", wrap(fn), ours=True)]
            if config.get("variants"):
                impls.append(Impl("ours[validate=False]",
                                  wrap(lambda s, t, fn=fn: fn(s, t, validate=False)),
                                  ours=True))
            impls.append(Impl("torch", wrap(torch_ref[name])))
            if not grad:
                impls.append(Impl("scipy", _numpy(scipy_ref[name])))
            cases.append(Case(
                name=f"{name}/{'forward+backward' if grad else 'forward'}",
                setup=lambda grad=grad: make_inputs(rows, vocab, seed, grad=grad),
                warmup_setup=lambda grad=grad: make_inputs(small_rows, small_vocab, seed + 1,
                                                           grad=grad),
                impls=tuple(impls),
                rtol=1e-4,
            ))
    return cases
