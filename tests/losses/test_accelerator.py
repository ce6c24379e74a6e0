"""The losses on an accelerator: chunks sized from a memory budget, no host synchronisation in
the hot loop, ``torch.compile``.

No GPU is needed: the ``meta`` device runs the accelerator path at full size without
allocating (shapes only; a host read there raises), and :func:`host_reads_free` patched to
``False`` runs it on the CPU with real values. The CUDA test runs only where CUDA is present.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from divergences import _stored_grad
from divergences.losses import (
    DistillationLoss,
    FusedLinearDistillationLoss,
    distillation_loss,
    fused_linear_distillation_loss,
    sparse_distillation_loss,
)
from divergences.losses import _chunked_distill as cd
from divergences.losses import _fused_linear as fl

N, V, H = 2048, 128256, 4096  # the issue's shape: Llama 3's vocabulary
GIB = 1 << 30
SYNC_OPS = ("aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.is_nonzero")


class CountOps(TorchDispatchMode):
    """Counts every aten operation dispatched inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def syncs(self) -> dict[str, int]:
        return {k: self.ops[k] for k in SYNC_OPS if self.ops[k]}


@pytest.fixture
def count_chunks(monkeypatch):
    """Counts calls of the dense chunk kernel (one per chunk)."""
    calls = []
    inner = cd.chunk_values_and_grads

    def wrapped(*args, **kwargs):
        calls.append(args[1].shape[0])
        return inner(*args, **kwargs)

    monkeypatch.setattr(cd, "chunk_values_and_grads", wrapped)
    return calls


def _meta_logits(n=N, v=V, dtype=torch.bfloat16):
    s = torch.empty(n, v, dtype=dtype, device="meta", requires_grad=True)
    t = torch.empty(n, v, dtype=dtype, device="meta")
    return s, t


# --------------------------------------------------------------------------------------------
# 1. chunk sizes from a memory budget
# --------------------------------------------------------------------------------------------


def test_budget_rules_at_llama_vocabulary():
    # CPU rule (unchanged): 8 rows, 256 chunks, as the issue measured.
    assert cd.auto_chunk(N, V) == 8
    assert cd.default_budget("cpu") is None
    # A GPU-sized budget: a few dozen chunks at most.
    for budget in (256 << 20, 512 << 20, GIB):
        rows = cd.auto_chunk(N, V, budget)
        assert rows == budget // (cd.CLOSED_FORM_TEMPS * 4 * V)
        assert -(-N // rows) <= 32
    assert -(-N // cd.auto_chunk(N, V, GIB)) == 8
    # The autograd members (26 temporaries) and float64 get fewer rows for the same bytes.
    assert cd.auto_chunk(N, V, GIB, temps=cd.AUTOGRAD_TEMPS) == GIB // (26 * 4 * V)
    assert cd.auto_chunk(N, V, GIB, itemsize=8) == GIB // (8 * 8 * V)
    # Clamped to [1, n].
    assert cd.auto_chunk(10, V, 1) == 1
    assert cd.auto_chunk(10, V, GIB) == 10


def test_accelerator_budget_follows_free_memory(monkeypatch):
    assert cd.accelerator_budget(139 * GIB) == GIB  # capped
    assert cd.accelerator_budget(2 * GIB) == 256 << 20  # an eighth
    assert cd.accelerator_budget(100 << 20) == 64 << 20  # floor
    # Simulated CUDA device: free memory plus the caching allocator's idle blocks.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev=None: (3 * GIB, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev=None: 2 * GIB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev=None: GIB)
    assert cd.default_budget(torch.device("cuda", 0)) == (4 * GIB) // 8
    # Other accelerators: a fixed budget.
    assert cd.default_budget("meta") == cd.FIXED_ACCEL_BUDGET


def test_fused_sizes_from_budget():
    # CPU rule (unchanged).
    assert fl.auto_sizes(4096, 32000) == (128, 682)
    chunk, tile = fl.auto_sizes(N, V)
    assert (-(-N // chunk), -(-V // tile)) == (32, 47)
    chunk, tile = fl.auto_sizes(N, V, GIB)
    assert -(-N // chunk) <= 8 and -(-V // tile) <= 8
    assert 2 * chunk * V * 4 <= GIB // 2 and 10 * chunk * tile * 4 <= GIB // 2
    # Half-precision heads convert a quarter of the budget of weight at a time.
    assert fl.half_tile_elements(None) == fl.HALF_TILE_ELEMENTS
    assert -(-(V * H) // fl.half_tile_elements(GIB)) <= 8


def test_forward_op_count_at_llama_vocabulary(count_chunks):
    """The accelerator path at the issue's full shape on the meta device (no memory): a
    bfloat16 JS forward runs a few dozen chunks and under 2,000 aten operations (the CPU rule:
    256 chunks, 24,592 operations here; 35,616 on the CPU with its host reads)."""
    s, t = _meta_logits()
    with CountOps() as m:
        distillation_loss(s, t, "js", chunk_bytes=GIB)
    assert len(count_chunks) == 8
    assert m.total < 1200
    count_chunks.clear()
    with CountOps() as m:
        distillation_loss(s, t, "js")  # the meta device's default: 512 MiB
    assert len(count_chunks) == 16
    assert m.total < 2000
    # The CPU rule, 8 rows a chunk: two of its 256 chunks (16 rows) are already a third of
    # the budgeted forward.
    count_chunks.clear()
    s16, t16 = _meta_logits(16)
    with CountOps() as m_old:
        distillation_loss(s16, t16, "js", chunk_size=cd.auto_chunk(N, V))
    assert len(count_chunks) == 2
    assert 128 * m_old.total > 10 * m.total


def test_fused_op_count_at_llama_vocabulary():
    """The fused-linear loss at the full shape with a 4096-wide bfloat16 head on the meta
    device: 1 GiB runs 4 chunks of 5 tiles, about 1,760 operations (the CPU rule: 78,740)."""
    hs = torch.empty(N, H, dtype=torch.bfloat16, device="meta", requires_grad=True)
    ws = torch.empty(V, H, dtype=torch.bfloat16, device="meta", requires_grad=True)
    ht = torch.empty(N, H, dtype=torch.bfloat16, device="meta")
    wt = torch.empty(V, H, dtype=torch.bfloat16, device="meta")
    with CountOps() as m:
        fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js", chunk_bytes=GIB)
    # The CPU rule: 32 chunks of 64 tokens; one of them costs more than the whole.
    chunk, tile = fl.auto_sizes(N, V)
    with CountOps() as m_old:
        fused_linear_distillation_loss(hs[:chunk], ws, ht[:chunk], wt, divergence="js",
                                       chunk_size=chunk, vocab_tile=tile)
    assert m.total < 2000
    assert 32 * m_old.total > 20 * m.total


def test_chunk_bytes_runs_and_matches(count_chunks):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(64, 1000, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(64, 1000, generator=g, dtype=torch.float64)
    ref = distillation_loss(s, t, "js", chunk_size=64)
    (gref,) = torch.autograd.grad(ref, s)
    count_chunks.clear()
    budget = 16 * cd.CLOSED_FORM_TEMPS * 8 * 1000  # 16 float64 rows
    got = distillation_loss(s, t, "js", chunk_bytes=budget)
    assert count_chunks == [16] * 4
    (gg,) = torch.autograd.grad(got, s)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(gg, gref)
    crit = DistillationLoss("js", chunk_bytes=budget)
    torch.testing.assert_close(crit(s, t), ref)
    idx = torch.log_softmax(t, -1).topk(8)
    a = sparse_distillation_loss(s, idx.indices, idx.values, chunk_bytes=1)
    b = sparse_distillation_loss(s, idx.indices, idx.values, chunk_size=64)
    torch.testing.assert_close(a, b)


def test_fused_chunk_bytes_matches():
    g = torch.Generator().manual_seed(1)
    hs = torch.randn(40, 16, generator=g, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(300, 16, generator=g, dtype=torch.float64, requires_grad=True)
    ht, wt = torch.randn(40, 8, generator=g, dtype=torch.float64), torch.randn(
        300, 8, generator=g, dtype=torch.float64)
    ref = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js", chunk_size=40)
    gref = torch.autograd.grad(ref, (hs, ws))
    for budget in (1, 2 * 8 * 300 * 7, 1 << 30):
        got = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js",
                                             chunk_bytes=budget)
        torch.testing.assert_close(got, ref)
        for a, b in zip(torch.autograd.grad(got, (hs, ws)), gref):
            torch.testing.assert_close(a, b)
    crit = FusedLinearDistillationLoss("js", chunk_bytes=1 << 20)
    torch.testing.assert_close(crit(hs, ws, ht, wt), ref)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1GiB"])
def test_chunk_bytes_checked(bad):
    s = torch.randn(4, 6)
    with pytest.raises(ValueError, match="chunk_bytes"):
        distillation_loss(s, s, chunk_bytes=bad)


def test_chunk_size_and_bytes_exclusive():
    s = torch.randn(4, 6)
    with pytest.raises(ValueError, match="not both"):
        distillation_loss(s, s, chunk_size=2, chunk_bytes=1 << 20)
    with pytest.raises(ValueError, match="not both"):
        DistillationLoss(chunk_size=2, chunk_bytes=1 << 20)


# --------------------------------------------------------------------------------------------
# 2. no host synchronisation off the CPU
# --------------------------------------------------------------------------------------------

LOGITS_CASES = [
    ("forward_kl", {}),
    ("reverse_kl", {}),
    ("js", {"temperature": 2.0}),
    ("js", {"hard_weight": 0.3, "labels": True, "mask": True}),
    ("alpha", {}),  # autograd per chunk
    ("forward_kl", {"vocab": "pad", "wider_teacher": True}),
]


def _logits_case(device, dtype, div, opts, n=24, v=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    vt = v + 3 if opts.get("wider_teacher") else v
    s = torch.randn(n, v, generator=g, dtype=dtype).to(device).requires_grad_()
    t = torch.randn(n, vt, generator=g, dtype=dtype)
    t[:, v:] = -torch.inf  # the wider teacher's extra entries: no mass (finite forward KL)
    t = t.to(device)
    kw = {k: val for k, val in opts.items() if k not in ("labels", "mask", "wider_teacher")}
    if opts.get("labels"):
        lab = torch.randint(0, v, (n,), generator=g)
        lab[::5] = -100
        kw["labels"] = lab.to(device)
    if opts.get("mask"):
        kw["mask"] = (torch.arange(n) % 7 != 3).to(device)
    return s, t, dict(divergence=div, chunk_size=5, validate=False, **kw)


def _fused_case(device, dtype, n=24, v=50, seed=0, sizes=True):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).to(device)

    hs, ws, bs = r(n, 8).requires_grad_(), r(v, 8).requires_grad_(), r(v).requires_grad_()
    ht, wt = r(n, 6), r(v, 6)
    lab = torch.randint(0, v, (n,), generator=g)
    lab[::4] = -100
    kw = dict(student_bias=bs, divergence="js", labels=lab.to(device), hard_weight=0.2,
              validate=False)
    if sizes:
        kw.update(chunk_size=5, vocab_tile=16)
    return (hs, ws, bs), (hs, ws, ht, wt), kw


def _sparse_case(device, dtype, n=24, v=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, v, generator=g, dtype=dtype).to(device).requires_grad_()
    top = torch.log_softmax(torch.randn(n, v, generator=g, dtype=dtype), -1).topk(6)
    return s, top.indices.to(device), top.values.to(device)


@pytest.mark.parametrize(("div", "opts"), LOGITS_CASES)
def test_no_sync_accelerator_path_meta(div, opts):
    """The accelerator path at full width on the meta device: forward and backward dispatch
    no operation that reads a value back (one would also fail there: meta has no values)."""
    s, t, kw = _logits_case("meta", torch.bfloat16, div, opts, n=64, v=V)
    with CountOps() as m:
        distillation_loss(s, t, **kw).backward()
    assert m.syncs == {}


def test_no_sync_fused_and_sparse_meta():
    _, args, kw = _fused_case("meta", torch.bfloat16, n=64, v=V, sizes=False)
    with CountOps() as m:
        fused_linear_distillation_loss(*args, **kw).backward()
    assert m.syncs == {}
    s, idx, lpk = _sparse_case("meta", torch.float32, n=64, v=1000)
    with CountOps() as m:
        sparse_distillation_loss(s, idx, lpk, divergence="js", validate=False).backward()
    assert m.syncs == {}


@pytest.fixture
def accelerator_path(monkeypatch):
    """The CPU running the accelerator path: no shortcut that reads values back."""
    monkeypatch.setattr(_stored_grad, "host_reads_free", lambda x: False)


@pytest.mark.parametrize(("div", "opts"), LOGITS_CASES)
def test_no_sync_on_cpu_proxy(div, opts, monkeypatch):
    """Real values on the CPU: the default path reads back at most two values per chunk
    (its free shortcuts); the accelerator path none, with the same loss and gradient."""
    s, t, kw = _logits_case("cpu", torch.float64, div, opts)
    with CountOps() as m_cpu:
        ref = distillation_loss(s, t, **kw)
        (gref,) = torch.autograd.grad(ref, s)
    assert sum(m_cpu.syncs.values()) <= 2 * 5  # 5 chunks
    monkeypatch.setattr(_stored_grad, "host_reads_free", lambda x: False)
    with CountOps() as m:
        got = distillation_loss(s, t, **kw)
        (gg,) = torch.autograd.grad(got, s)
    assert m.syncs == {}
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(gg, gref)


def test_no_sync_fused_and_sparse_cpu_proxy(accelerator_path):
    (hs, ws, bs), args, kw = _fused_case("cpu", torch.float64)
    with CountOps() as m:
        loss = fused_linear_distillation_loss(*args, **kw)
        grads = torch.autograd.grad(loss, (hs, ws, bs))
    assert m.syncs == {}
    assert all(torch.isfinite(g).all() for g in grads)
    s, idx, lpk = _sparse_case("cpu", torch.float64)
    with CountOps() as m:
        loss = sparse_distillation_loss(s, idx, lpk, divergence="js", chunk_size=5,
                                        validate=False)
        loss.backward()
    assert m.syncs == {}
    assert torch.isfinite(s.grad).all()


def test_sync_count_independent_of_chunks(accelerator_path):
    """Even the checks kept on by default (validate=True) read back a fixed number of values
    per call, never per chunk."""
    s, t, kw = _logits_case("cpu", torch.float64, "forward_kl", {"vocab": "pad",
                                                                 "wider_teacher": True})
    counts = []
    for chunk in (1, 4, 24):
        with CountOps() as m:
            distillation_loss(s, t, **{**kw, "chunk_size": chunk, "validate": True}).backward()
        counts.append(sum(m.syncs.values()))
    assert counts[0] == counts[1] == counts[2] <= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_no_sync_cuda(dtype):
    """On CUDA, forward and backward under ``set_sync_debug_mode("error")``: any
    synchronising operation raises."""
    cases = []
    for div, opts in LOGITS_CASES:
        s, t, kw = _logits_case("cuda", dtype, div, opts, n=256, v=4096)
        cases.append(lambda s=s, t=t, kw=kw: distillation_loss(s, t, **kw).backward())
    (_, _, _), args, kw = _fused_case("cuda", dtype, n=256, v=4096)
    cases.append(lambda: fused_linear_distillation_loss(*args, **kw).backward())
    s, idx, lpk = _sparse_case("cuda", dtype, n=256, v=4096)
    cases.append(lambda: sparse_distillation_loss(s, idx, lpk, chunk_size=16,
                                                  validate=False).backward())
    for run in cases:
        run()  # warm-up: one-off initialisation may synchronise
    torch.cuda.synchronize()
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for run in cases:
            run()
    finally:
        torch.cuda.set_sync_debug_mode(old)
    torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------
# 3. torch.compile
# --------------------------------------------------------------------------------------------

# aot_eager traces exactly what inductor compiles (dynamo, then AOTAutograd) in about a
# second; inductor's C++ code generation takes about 30 s here, so it is opt-in.
INDUCTOR = os.environ.get("DIVERGENCES_TEST_INDUCTOR") == "1" and shutil.which("cc") is not None
BACKENDS = ["aot_eager"] + (["inductor"] if INDUCTOR else [])


def _compare_compiled(f, inputs, backend, fullgraph=True):
    torch._dynamo.reset()
    eager_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    comp_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    want = f(*eager_in)
    want.backward()
    got = torch.compile(f, backend=backend, fullgraph=fullgraph)(*comp_in)
    got.backward()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    for a, b in zip(comp_in, eager_in):
        if b.requires_grad:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("div", ["forward_kl", "reverse_kl", "js"])
def test_logits_loss_compiles(div, backend):
    g = torch.Generator().manual_seed(31)
    s, t = torch.randn(12, 37, generator=g), torch.randn(12, 37, generator=g)
    lab = torch.randint(0, 37, (12,), generator=g)
    lab[::5] = -100

    def f(a, b):
        return distillation_loss(a, b, div, labels=lab, hard_weight=0.2, chunk_size=5)

    _compare_compiled(f, [s.requires_grad_(), t.requires_grad_()], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizing", [{}, {"chunk_bytes": 4 * 8 * 4 * 29}])
def test_logits_loss_compiles_with_budget(sizing, backend):
    """Chunks from the device's default or a given budget, under torch.compile."""
    g = torch.Generator().manual_seed(32)
    s, t = torch.randn(3, 4, 29, generator=g), torch.randn(3, 4, 29, generator=g)

    def f(a):
        return distillation_loss(a, t, "js", temperature=2.0, **sizing)

    _compare_compiled(f, [s.requires_grad_()], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_linear_loss_compiles(backend):
    (hs, ws, bs), args, kw = _fused_case("cpu", torch.float32, n=20, v=45, seed=33)

    def f(h, w, b):
        return fused_linear_distillation_loss(h, w, *args[2:], **{**kw, "student_bias": b})

    _compare_compiled(f, [hs, ws, bs], backend)


# --------------------------------------------------------------------------------------------
# Half-precision heads off the CPU: products in their own dtype
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_fused_native_half_heads(monkeypatch, bias):
    """The accelerator's half-precision products (patched on here) give the loss of the
    logits ``h @ W.T (+ b)`` formed in bfloat16, and gradients close to the CPU path's."""
    g = torch.Generator().manual_seed(41)
    n, h, v = 24, 16, 300

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(torch.bfloat16)

    hs, ws, ht, wt = r(n, h), r(v, h, scale=0.3), r(n, 12), r(v, 12, scale=0.3)
    bs = r(v) if bias else None
    kw = dict(divergence="js", chunk_size=7, vocab_tile=64)

    def run():
        a, w = hs.clone().requires_grad_(), ws.clone().requires_grad_()
        loss = fused_linear_distillation_loss(a, w, ht, wt, student_bias=bs, **kw)
        loss.backward()
        return loss, a.grad, w.grad

    cpu = run()
    monkeypatch.setattr(fl, "native_half", lambda x: True)
    monkeypatch.setattr(fl, "half_tile_elements", lambda budget: 3 * h)  # several tiles
    nat = run()
    zs = hs @ ws.T if bs is None else hs @ ws.T + bs
    want = distillation_loss(zs, ht @ wt.T, "js")
    torch.testing.assert_close(nat[0], want, rtol=1e-5, atol=1e-6)
    for a, b in zip(nat, cpu):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-4)
