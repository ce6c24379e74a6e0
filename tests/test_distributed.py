"""Vocab-parallel distillation losses against the single-process losses on the full vocabulary.

All two-rank cases run in ONE gloo job (world_size=2, CPU, ``file://`` rendezvous in a
temporary directory; rank 0 is the test process, rank 1 a spawned process); each rank returns
its values and gradients and the tests compare them with :func:`distillation_loss` /
:func:`fused_linear_distillation_loss` on the concatenated logits / heads. Error paths and a float64 gradcheck run in-process on a world of one rank.
"""

from __future__ import annotations

import datetime
import math
import multiprocessing as mp
import os
import tempfile

import pytest
import torch
import torch.distributed as dist

from divergences import fdiv
from divergences.distributed import (
    vocab_parallel_distillation_loss,
    vocab_parallel_fused_linear_distillation_loss,
)
from divergences.losses import distillation_loss, fused_linear_distillation_loss

WORLD = 2
BATCH = (3, 5)
V = 22

# name -> (loss kwargs, data spec)
LOGIT_CASES: dict[str, tuple[dict, dict]] = {
    "forward_kl": ({"divergence": "forward_kl"}, {}),
    "reverse_kl_T2_mask_sum": (
        {"divergence": "reverse_kl", "temperature": 2.0, "reduction": "sum"}, {"mask": True}),
    "js_labels_scaled": (
        {"divergence": "js", "beta": 0.5, "temperature": 1.5, "temperature_scaling": True},
        {"labels": True}),
    "js_beta0": ({"divergence": "js", "beta": 0.0}, {}),
    "js_beta1": ({"divergence": "js", "beta": 1.0}, {}),
    "tv_none": ({"divergence": "tv", "reduction": "none"}, {}),
    "skew_forward_kl_batchmean": (
        {"divergence": "skew_forward_kl", "skew": 0.1, "reduction": "batchmean"}, {}),
    "skew_reverse_kl": ({"divergence": "skew_reverse_kl", "skew": 0.3}, {}),
    "registry_hellinger": ({"divergence": fdiv.get("squared_hellinger")}, {}),
    "neginf_forward_kl": ({"divergence": "forward_kl"}, {"neginf": True}),
    "neginf_js": ({"divergence": "js", "beta": 0.5, "temperature": 2.0}, {"neginf": True}),
    "neginf_tv_none": ({"divergence": "tv", "reduction": "none"}, {"neginf": True}),
    "neginf_reverse_kl_inf": ({"divergence": "reverse_kl", "reduction": "none"},
                              {"neginf": True}),
    "bf16_js": ({"divergence": "js", "beta": 0.5}, {"dtype": torch.bfloat16}),
    "bf16_forward_kl_neginf": ({"divergence": "forward_kl"},
                               {"dtype": torch.bfloat16, "neginf": True}),
    "f64_reverse_kl": ({"divergence": "reverse_kl", "temperature": 0.7},
                       {"dtype": torch.float64}),
    "hard_weight_T2": (
        {"divergence": "js", "beta": 0.3, "temperature": 2.0, "hard_weight": 0.3,
         "return_components": True}, {"labels": True}),
    "hard_weight_T1_uneven": (
        {"divergence": "forward_kl", "hard_weight": 0.5, "return_components": True},
        {"labels": True, "split": 13}),
    "teacher_grad": ({"divergence": "js", "beta": 0.7}, {"teacher_grad": True, "mask": True}),
    "num_items": ({"divergence": "forward_kl", "num_items_in_batch": 7}, {"labels": True}),
    "chunked": ({"divergence": "js", "beta": 0.5, "chunk_size": 4}, {"mask": True}),
    "all_ignored": ({"divergence": "forward_kl"}, {"all_ignored": True}),
    "odd_shape_3x47x123": (
        {"divergence": "js", "beta": 0.4, "temperature": 2.0, "hard_weight": 0.1},
        {"labels": True, "batch": (3, 47), "v": 123, "split": 61}),
}

def _random_cases(count: int) -> dict[str, tuple[dict, dict]]:
    """Seeded random configurations: divergence, temperature, reduction, vocabulary size and
    an uneven split point (rank 0 may hold a single entry)."""
    g = torch.Generator().manual_seed(2026)
    names = ["forward_kl", "reverse_kl", "js", "skew_forward_kl", "skew_reverse_kl", "tv",
             "jeffreys", "triangular"]
    out = {}
    for k in range(count):
        v = int(torch.randint(2, 40, (), generator=g))
        kw = {
            "divergence": names[int(torch.randint(len(names), (), generator=g))],
            "beta": float(torch.rand((), generator=g)),
            "skew": 0.05 + 0.9 * float(torch.rand((), generator=g)),
            "temperature": 0.5 + 2.0 * float(torch.rand((), generator=g)),
            "reduction": ["none", "sum", "mean", "batchmean"][k % 4],
        }
        if not kw["divergence"].startswith("skew"):
            del kw["skew"]  # an argument that cannot apply is an error
        spec = {"batch": (2, 1 + k), "v": v, "split": int(torch.randint(1, v, (), generator=g)),
                "mask": k % 2 == 0, "labels": k % 3 == 0}
        if spec["labels"]:
            kw["hard_weight"] = 0.2
        out[f"random_{k}"] = (kw, spec)
    return out


LOGIT_CASES.update(_random_cases(8))


FUSED_CASES: dict[str, tuple[dict, dict]] = {
    "fused_forward_kl": ({"divergence": "forward_kl"}, {}),
    "fused_js_bias_labels": (
        {"divergence": "js", "beta": 0.5, "temperature": 2.0, "hard_weight": 0.2,
         "chunk_size": 4}, {"bias": True, "labels": True}),
    "fused_softcap_scale": (
        {"divergence": "reverse_kl", "student_logit_scale": 0.5,
         "student_final_logit_softcapping": 3.0, "teacher_final_logit_softcapping": 2.0},
        {"bias": True}),
    "fused_local_hidden_grad": ({"divergence": "tv", "all_reduce_hidden_grad": False}, {}),
}


def _split(spec: dict) -> list[tuple[int, int]]:
    v = spec.get("v", V)
    cut = spec.get("split", v // 2)
    return [(0, cut), (cut, v)]


def _logit_inputs(name: str) -> dict:
    _, spec = LOGIT_CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    dtype = spec.get("dtype", torch.float32)
    batch, v = spec.get("batch", BATCH), spec.get("v", V)
    s = 2.0 * torch.randn(*batch, v, generator=g, dtype=torch.float64)
    t = 2.0 * torch.randn(*batch, v, generator=g, dtype=torch.float64)
    if spec.get("neginf"):
        lo, hi = _split(spec)[1]
        s[0, 0, lo:hi] = -math.inf  # rank 1 holds only -inf for this token (both models)
        t[0, 0, lo:hi] = -math.inf
        t[0, 1, lo:hi] = -math.inf  # teacher only: rank 1's shard carries no teacher mass
        drop = torch.rand(*batch, v, generator=g) < 0.3
        t[1:] = torch.where(drop[1:], -math.inf, t[1:])
        both = torch.rand(*batch, v, generator=g) < 0.2
        s[2] = torch.where(both[2], -math.inf, s[2])
        t[2] = torch.where(both[2], -math.inf, t[2])
        t[..., 0] = t[..., 0].clamp_min(0.0)  # every teacher row keeps some mass
        s[..., 0] = s[..., 0].clamp_min(0.0)
    out = {"s": s.to(dtype), "t": t.to(dtype)}
    if spec.get("labels"):
        lab = torch.randint(0, v, batch, generator=g)
        lab.view(-1)[:2] = -100
        lab.view(-1)[-1] = -100
        out["labels"] = lab
    if spec.get("mask"):
        m = (torch.rand(*batch, generator=g) > 0.3).to(torch.int64)
        m.view(-1)[0] = 0
        out["mask"] = m
    if spec.get("all_ignored"):
        out["mask"] = torch.zeros(batch, dtype=torch.int64)
    out["upstream"] = torch.rand(*batch, generator=g, dtype=torch.float64)
    return out


def _fused_inputs(name: str) -> dict:
    _, spec = FUSED_CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    n, h_s, h_t = 9, 6, 8
    out = {
        "hs": torch.randn(n, h_s, generator=g), "ws": torch.randn(V, h_s, generator=g),
        "ht": torch.randn(n, h_t, generator=g), "wt": torch.randn(V, h_t, generator=g),
    }
    if spec.get("bias"):
        out["bs"] = torch.randn(V, generator=g)
        out["bt"] = torch.randn(V, generator=g)
    if spec.get("labels"):
        lab = torch.randint(0, V, (n,), generator=g)
        lab[3] = -100
        out["labels"] = lab
    return out


def _extra(inp: dict) -> dict:
    return {k: inp[k] for k in ("labels", "mask") if k in inp}


def _scalar_for_backward(loss: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    if loss.ndim == 0:
        return loss
    # per-token values: a weighted sum checks the per-token backward; inf tokens are skipped
    return torch.where(torch.isfinite(loss), loss * upstream.to(loss.dtype), 0.0).sum()


def _run_logit_case(name: str, lo: int, hi: int, rank: int) -> dict:
    kw, spec = LOGIT_CASES[name]
    inp = _logit_inputs(name)
    s = inp["s"][..., lo:hi].clone().requires_grad_()
    t = inp["t"][..., lo:hi].clone().requires_grad_(bool(spec.get("teacher_grad")))
    extra = {"vocab_start_index": lo} if "split" in spec else {}
    out = vocab_parallel_distillation_loss(s, t, **kw, **_extra(inp), **extra)
    loss = out.loss if kw.get("return_components") else out
    _scalar_for_backward(loss, inp["upstream"]).backward()
    res = {"value": loss.detach(), "gs": s.grad, "gt": t.grad}
    if kw.get("return_components"):
        res["soft"], res["hard"] = out.distillation, out.cross_entropy
    return res


def _run_fused_case(name: str, lo: int, hi: int) -> dict:
    kw, _ = FUSED_CASES[name]
    inp = _fused_inputs(name)
    hs = inp["hs"].clone().requires_grad_()
    ws = inp["ws"][lo:hi].clone().requires_grad_()
    bs = inp["bs"][lo:hi].clone().requires_grad_() if "bs" in inp else None
    bt = inp["bt"][lo:hi] if "bt" in inp else None
    loss = vocab_parallel_fused_linear_distillation_loss(
        hs, ws, inp["ht"], inp["wt"][lo:hi], bs, bt, **kw, **_extra(inp))
    loss.backward()
    return {"value": loss.detach(), "g_hs": hs.grad, "g_ws": ws.grad,
            "g_bs": None if bs is None else bs.grad}


def _all_cases(rank: int, init: str) -> dict:
    """Every two-rank case as ``rank``; the process group lives only inside this call."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    try:
        results = {}
        for name, (_, spec) in LOGIT_CASES.items():
            lo, hi = _split(spec)[rank]
            results[name] = _run_logit_case(name, lo, hi, rank)
        for name in FUSED_CASES:
            lo, hi = _split({})[rank]
            results[name] = _run_fused_case(name, lo, hi)
        # no grad: values only, no stored gradient
        with torch.no_grad():
            inp = _logit_inputs("forward_kl")
            lo, hi = _split({})[rank]
            results["no_grad"] = {"value": vocab_parallel_distillation_loss(
                inp["s"][..., lo:hi], inp["t"][..., lo:hi], "js")}
        return results
    finally:
        dist.destroy_process_group()


def _child(rank: int, init: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.save(_all_cases(rank, init), os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def ranks():
    """Results of every two-rank case: ``[rank0_results, rank1_results]``.

    Rank 1 is one spawned process; rank 0 is this process (one interpreter start, not two:
    importing the package dominates the cost).
    """
    with tempfile.TemporaryDirectory() as d:
        init = f"file://{os.path.join(d, 'rendezvous')}"
        child = mp.get_context("spawn").Process(target=_child, args=(1, init, d))
        child.start()
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            rank0 = _all_cases(0, init)
        finally:
            torch.set_num_threads(threads)
            child.join(timeout=120)
            if child.is_alive():
                child.kill()
                child.join()
        assert child.exitcode == 0, f"rank 1 exited with {child.exitcode}"
        return [rank0, torch.load(os.path.join(d, "rank1.pt"))]


def _tol(dtype: torch.dtype) -> dict:
    if dtype == torch.bfloat16:
        return {"rtol": 2e-2, "atol": 2e-3}
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-12}
    return {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("name", list(LOGIT_CASES))
def test_logits_match_single_process(ranks, name):
    kw, spec = LOGIT_CASES[name]
    inp = _logit_inputs(name)
    dtype = spec.get("dtype", torch.float32)
    s = inp["s"].clone().requires_grad_()
    t = inp["t"].clone().requires_grad_(bool(spec.get("teacher_grad")))
    ref = distillation_loss(s, t, **kw, **_extra(inp))
    loss = ref.loss if kw.get("return_components") else ref
    _scalar_for_backward(loss, inp["upstream"]).backward()
    tol = _tol(dtype)
    for r in range(WORLD):
        got = ranks[r][name]
        assert got["value"].dtype == loss.dtype
        torch.testing.assert_close(got["value"], loss.detach(), **tol)  # replicated value
        if kw.get("return_components"):
            torch.testing.assert_close(got["soft"], ref.distillation, **tol)
            torch.testing.assert_close(got["hard"], ref.cross_entropy, **tol)
    gs = torch.cat([ranks[r][name]["gs"] for r in range(WORLD)], dim=-1)
    assert gs.dtype == dtype and torch.isfinite(gs).all()
    torch.testing.assert_close(gs, s.grad, **tol)
    if spec.get("teacher_grad"):
        gt = torch.cat([ranks[r][name]["gt"] for r in range(WORLD)], dim=-1)
        torch.testing.assert_close(gt, t.grad, **tol)
    else:
        assert ranks[0][name]["gt"] is None


def test_neginf_cases_are_exact(ranks):
    # the token whose rank-1 shard is all -inf, and an infinite reverse KL, are reproduced
    v = ranks[0]["neginf_reverse_kl_inf"]["value"]
    assert torch.isinf(v).any() and torch.isfinite(v).any()
    assert torch.isfinite(ranks[0]["neginf_forward_kl"]["value"])
    g1 = ranks[1]["neginf_forward_kl"]["gs"]
    assert torch.equal(g1[0, 0], torch.zeros_like(g1[0, 0]))  # no mass there: zero gradient


def test_all_ignored_gives_zero(ranks):
    for r in range(WORLD):
        assert ranks[r]["all_ignored"]["value"].item() == 0.0
        assert torch.count_nonzero(ranks[r]["all_ignored"]["gs"]) == 0


def test_no_grad_values(ranks):
    inp = _logit_inputs("forward_kl")
    ref = distillation_loss(inp["s"], inp["t"], "js")
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r]["no_grad"]["value"], ref)


@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_fused_linear_matches_single_process(ranks, name):
    kw = dict(FUSED_CASES[name][0])
    local = not kw.pop("all_reduce_hidden_grad", True)
    inp = _fused_inputs(name)
    hs = inp["hs"].clone().requires_grad_()
    ws = inp["ws"].clone().requires_grad_()
    bs = inp["bs"].clone().requires_grad_() if "bs" in inp else None
    ref = fused_linear_distillation_loss(hs, ws, inp["ht"], inp["wt"], bs, inp.get("bt"),
                                         **kw, **_extra(inp))
    ref.backward()
    tol = {"rtol": 1e-5, "atol": 1e-6}
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r][name]["value"], ref.detach(), **tol)
    g_ws = torch.cat([ranks[r][name]["g_ws"] for r in range(WORLD)])
    torch.testing.assert_close(g_ws, ws.grad, **tol)
    if bs is not None:
        torch.testing.assert_close(torch.cat([ranks[r][name]["g_bs"] for r in range(WORLD)]),
                                   bs.grad, **tol)
    if local:  # each rank has its own shard's part; their sum is the full gradient
        g_hs = ranks[0][name]["g_hs"] + ranks[1][name]["g_hs"]
        assert not torch.allclose(ranks[0][name]["g_hs"], hs.grad)
    else:
        g_hs = ranks[0][name]["g_hs"]
        torch.testing.assert_close(ranks[1][name]["g_hs"], g_hs)
    torch.testing.assert_close(g_hs, hs.grad, **tol)


def test_errors_without_group():
    if dist.is_initialized():
        pytest.skip("a process group is initialised")
    s = torch.randn(2, 4)
    with pytest.raises(RuntimeError, match="process group"):
        vocab_parallel_distillation_loss(s, s)
    with pytest.raises(RuntimeError, match="process group"):
        vocab_parallel_fused_linear_distillation_loss(s, torch.randn(3, 4), s, torch.randn(3, 4))


# --------------------------------------------------------------------------------------------
# In-process: a world of one rank (gradcheck, error paths)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", ["js", "skew_reverse_kl"])
def test_gradcheck_float64(world1, divergence):
    # gradcheck reuses the graph: later backward passes form the gradient again
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, -100, 5, 0])

    def f(a, b):
        return vocab_parallel_distillation_loss(a, b, divergence, temperature=1.3,
                                                labels=labels, hard_weight=0.25,
                                                chunk_size=3)

    assert torch.autograd.gradcheck(f, (s, t))
    hs = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bs = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    ht = torch.randn(4, 2, generator=g, dtype=torch.float64)
    wt = torch.randn(6, 2, generator=g, dtype=torch.float64)

    def fl(a, w, b):
        return vocab_parallel_fused_linear_distillation_loss(
            a, w, ht, wt, b, divergence=divergence, student_final_logit_softcapping=2.0,
            reduction="sum")

    assert torch.autograd.gradcheck(fl, (hs, ws, bs))


def test_world1_per_token_upstream(world1):
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 3, 7, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 7, generator=g)
    w = torch.rand(2, 3, generator=g)
    (vocab_parallel_distillation_loss(s, t, "tv", reduction="none") * w).sum().backward()
    s2 = s.detach().clone().requires_grad_()
    (distillation_loss(s2, t, "tv", reduction="none") * w).sum().backward()
    torch.testing.assert_close(s.grad, s2.grad)


def test_second_backward_forms_the_gradient_again(world1):
    s, t = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5)
    loss = vocab_parallel_distillation_loss(s, t)
    loss.backward(retain_graph=True)
    first = s.grad.clone()
    s.grad = None
    loss.backward()
    assert torch.equal(s.grad, first)
    dead = vocab_parallel_distillation_loss(s * 1.0, t)
    dead.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="freed"):
        dead.backward()


def test_errors(world1):
    s = torch.randn(2, 4)
    with pytest.raises(ValueError, match="same shape"):
        vocab_parallel_distillation_loss(s, torch.randn(2, 5))
    with pytest.raises(TypeError, match="student_logits_shard"):
        vocab_parallel_distillation_loss(s.numpy(), s)
    with pytest.raises(TypeError, match="floating"):
        vocab_parallel_distillation_loss(s, torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_start_index"):
        vocab_parallel_distillation_loss(s, s, vocab_start_index=-1)
    with pytest.raises(ValueError, match="hard_weight"):
        vocab_parallel_distillation_loss(s, s, hard_weight=0.5)
    with pytest.raises(ValueError, match="divergence"):
        vocab_parallel_distillation_loss(s, s, "nope")
    with pytest.raises(ValueError, match="reduction"):
        vocab_parallel_distillation_loss(s, s, reduction="avg")
    with pytest.raises(ValueError, match="temperature"):
        vocab_parallel_distillation_loss(s, s, temperature=0.0)
    with pytest.raises(ValueError, match="labels"):
        vocab_parallel_distillation_loss(s, s, labels=torch.zeros(3, dtype=torch.long))
    w = torch.randn(3, 4)
    with pytest.raises(ValueError, match="share H"):
        vocab_parallel_fused_linear_distillation_loss(s, torch.randn(3, 5), s, w)
    with pytest.raises(ValueError, match="same batch shape"):
        vocab_parallel_fused_linear_distillation_loss(s, w, torch.randn(3, 4), w)
    with pytest.raises(ValueError, match="same vocabulary"):
        vocab_parallel_fused_linear_distillation_loss(s, w, s, torch.randn(2, 4))
    with pytest.raises(ValueError, match="bias"):
        vocab_parallel_fused_linear_distillation_loss(s, w, s, w, torch.randn(2))
    with pytest.raises(TypeError, match="teacher_hidden"):
        vocab_parallel_fused_linear_distillation_loss(s, w, None, w)
    with pytest.raises(ValueError, match="student_logit_scale"):
        vocab_parallel_fused_linear_distillation_loss(s, w, s, w, student_logit_scale=0.0)
    with pytest.raises(ValueError, match="softcapping"):
        vocab_parallel_fused_linear_distillation_loss(
            s, w, s, w, teacher_final_logit_softcapping=-1.0)
    with pytest.raises(ValueError, match="reduction='none'"):
        vocab_parallel_fused_linear_distillation_loss(
            s, w.requires_grad_(), s, w.detach(), reduction="none")
    # values only with reduction="none"
    v = vocab_parallel_fused_linear_distillation_loss(s, w.detach(), s, w.detach(),
                                                      reduction="none")
    torch.testing.assert_close(v, distillation_loss(s @ w.detach().T, s @ w.detach().T,
                                                    reduction="none"))
