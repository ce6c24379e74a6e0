"""Benchmark ``gpu_losses``: the distillation losses on an accelerator against Liger Kernel and TRL.

Run from the repository root on a CUDA machine::

    python -m benchmarks.gpu_losses                   # N=8192, V=128256, bfloat16, beta 0.5
    python -m benchmarks.gpu_losses --dry-run         # no GPU needed: the plan, our chunk
                                                      # counts and aten op counts (meta device)
    python -m benchmarks.gpu_losses --device cpu --n 64 --v 1000 --hidden 32   # the machinery

Without CUDA (and ``--device cuda``, the default) it prints one line saying so and exits 0.
Nothing is recorded: paste the printed table into ``benchmarks/RESULTS.md`` with the device.

Cases, forward + backward of the generalised JSD (``beta`` 0.5), mean over tokens, inputs
seeded (student ``N(0, 1)``-based, teacher correlated), in ``--dtype`` (bfloat16):

``logits`` (student logits ``(N, V)`` a leaf, teacher logits fixed)
    ``ours``: ``divergences.losses.distillation_loss(s, t, "js")``; ``liger_jsd``: Liger
    Kernel's Triton JSD (``liger_kernel.transformers.LigerJSD``) on ``log_softmax`` of both
    (what a user writes: the log-softmax's autograd included); ``trl_gkd``: TRL's
    ``GKDTrainer.generalized_jsd_loss``; ``torch``: the loss written by hand
    (``log_softmax`` twice, the mixture by ``logaddexp``, ``kl_div``).
``fused`` (student hidden ``(N, H)`` and head ``(V, H)`` leaves, teacher frozen)
    ``ours``: ``fused_linear_distillation_loss``; ``liger_fused_jsd``: Liger's Triton
    ``LigerFusedLinearJSD``; ``liger_chunked_jsd``: Liger's chunked
    ``liger_kernel.chunked_loss.LigerFusedLinearJSDLoss`` (soft loss only); ``torch``: the
    logits materialised and the ``torch`` loss above.

Reported per implementation: median time of ``--repeats`` calls after ``--warmup`` (Triton
compilation and autotuning excluded), peak memory above the inputs
(``torch.cuda.max_memory_allocated`` minus the memory allocated before the call, the
gradients included) in GiB and in units of ``N*V*4`` bytes, each as a ratio to ours, and the
loss's relative difference from ours. Our chunk counts (and vocabulary tiles for the fused
loss) under the device's default budget are printed above the table. A peer that is not
installed is skipped with a note; one that fails is reported with its error.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

GIB = 1 << 30

LOGITS_IMPLS = ("ours", "liger_jsd", "trl_gkd", "torch")
FUSED_IMPLS = ("ours", "liger_fused_jsd", "liger_chunked_jsd", "torch")
PEER_MODULE = {"liger_jsd": "liger_kernel", "liger_fused_jsd": "liger_kernel",
               "liger_chunked_jsd": "liger_kernel", "trl_gkd": "trl"}


def installed(impl: str) -> bool:
    mod = PEER_MODULE.get(impl)
    return mod is None or importlib.util.find_spec(mod) is not None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_losses",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (machinery check)")
    p.add_argument("--n", type=int, default=8192, help="tokens")
    p.add_argument("--v", type=int, default=128256, help="vocabulary size")
    p.add_argument("--hidden", type=int, default=4096, help="student hidden size (fused)")
    p.add_argument("--teacher-hidden", type=int, default=None,
                   help="teacher hidden size (fused; default: --hidden)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--sections", nargs="+", default=["logits", "fused"],
                   choices=["logits", "fused"])
    p.add_argument("--impls", nargs="+", default=None,
                   help="subset of implementations (default: all installed)")
    p.add_argument("--chunk-bytes", type=int, default=None,
                   help="our chunk budget in bytes (default: the device's)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (N=64, V=1000, H=32): checks the machinery, not the speed")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan, chunk counts and op counts (meta device); run nothing")
    return p


# --------------------------------------------------------------------------------------------
# Inputs and implementations
# --------------------------------------------------------------------------------------------


def make_inputs(section: str, cfg: argparse.Namespace, device: Any, dtype: Any) -> dict:
    import torch

    g = torch.Generator(device="cpu").manual_seed(0)
    n, v = cfg.n, cfg.v

    def randn(*shape, scale=1.0):
        # Generated on the CPU a block at a time so every device sees the same numbers.
        out = torch.empty(*shape, dtype=dtype, device=device)
        rows = max(1, (1 << 24) // max(1, math.prod(shape[1:])))
        for s in range(0, shape[0], rows):
            block = torch.randn(min(rows, shape[0] - s), *shape[1:], generator=g) * scale
            out[s:s + rows].copy_(block)
        return out

    if section == "logits":
        s = randn(n, v, scale=2.0)
        t = (0.7 * s.float() + randn(n, v).float()).to(dtype)
        return {"s": s.requires_grad_(), "t": t}
    h_s, h_t = cfg.hidden, cfg.teacher_hidden or cfg.hidden
    return {"hs": randn(n, h_s).requires_grad_(),
            "ws": randn(v, h_s, scale=h_s ** -0.5).requires_grad_(),
            "ht": randn(n, h_t), "wt": randn(v, h_t, scale=h_t ** -0.5),
            "labels": torch.zeros(n, dtype=torch.long, device=device)}


def _torch_js(s, t, beta: float):
    import torch
    import torch.nn.functional as F

    ls, lt = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
    lm = torch.logaddexp(ls + math.log1p(-beta), lt + math.log(beta))
    per_row = (beta * F.kl_div(lm, lt, reduction="none", log_target=True)
               + (1.0 - beta) * F.kl_div(lm, ls, reduction="none", log_target=True)).sum(-1)
    return per_row.sum() / s.shape[0]


def get_loss(section: str, impl: str, cfg: argparse.Namespace) -> Callable[[dict], Any]:
    """``loss(inputs) -> scalar tensor`` (forward only; the caller runs backward)."""
    beta = cfg.beta
    if section == "logits":
        if impl == "ours":
            from divergences.losses import distillation_loss

            return lambda i: distillation_loss(i["s"], i["t"], "js", beta=beta,
                                               chunk_bytes=cfg.chunk_bytes)
        if impl == "liger_jsd":
            import torch
            from liger_kernel.transformers import LigerJSD

            jsd = LigerJSD(beta=beta)
            return lambda i: jsd(torch.log_softmax(i["s"], -1), torch.log_softmax(i["t"], -1))
        if impl == "trl_gkd":
            try:
                from trl.experimental.gkd.gkd_trainer import GKDTrainer
            except ImportError:
                from trl import GKDTrainer
            return lambda i: GKDTrainer.generalized_jsd_loss(i["s"], i["t"], beta=beta)
        if impl == "torch":
            return lambda i: _torch_js(i["s"], i["t"], beta)
    else:
        if impl == "ours":
            from divergences.losses import fused_linear_distillation_loss

            return lambda i: fused_linear_distillation_loss(
                i["hs"], i["ws"], i["ht"], i["wt"], divergence="js", beta=beta,
                chunk_bytes=cfg.chunk_bytes)
        if impl == "liger_fused_jsd":
            from liger_kernel.transformers import LigerFusedLinearJSD

            crit = LigerFusedLinearJSD(jsd_beta=beta)
            return lambda i: crit(i["hs"], i["ws"], i["ht"], i["wt"])
        if impl == "liger_chunked_jsd":
            from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss

            crit = LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0,
                                           beta=beta)

            def chunked(i):
                out = crit(i["hs"], i["ws"], i["ht"], i["wt"], i["labels"])
                return out[0] if isinstance(out, tuple) else out
            return chunked
        if impl == "torch":
            return lambda i: _torch_js(i["hs"] @ i["ws"].T, i["ht"] @ i["wt"].T, beta)
    raise ValueError(f"unknown implementation {impl!r} for {section}")


LEAVES = {"logits": ("s",), "fused": ("hs", "ws")}


# --------------------------------------------------------------------------------------------
# Our chunking
# --------------------------------------------------------------------------------------------


def chunk_report(cfg: argparse.Namespace, budget: int | None) -> list[str]:
    """Our chunk counts at the configured shape under ``budget`` bytes (``None``: the CPU
    rule)."""
    from divergences.losses import _chunked_distill as cd
    from divergences.losses import _fused_linear as fl

    rows = cd.auto_chunk(cfg.n, cfg.v, budget)
    chunk, tile = fl.auto_sizes(cfg.n, cfg.v, budget)
    name = "CPU rule" if budget is None else f"{budget / 2**20:.0f} MiB"
    return [
        f"budget: {name}",
        f"logits: {math.ceil(cfg.n / rows)} chunks of {rows} tokens "
        f"(CPU rule: {math.ceil(cfg.n / cd.auto_chunk(cfg.n, cfg.v))})",
        f"fused: {math.ceil(cfg.n / chunk)} chunks of {chunk} tokens x "
        f"{math.ceil(cfg.v / tile)} vocabulary tiles of {tile}",
    ]


def count_ops(cfg: argparse.Namespace, dtype: Any) -> dict[str, int]:
    """aten operations of one forward + backward of ours at the full shape on the meta device
    (the accelerator path, no memory) under the configured budget (512 MiB by default)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from divergences.losses import distillation_loss, fused_linear_distillation_loss

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[str(func.overloadpacket)] += 1
            return func(*args, **(kwargs or {}))

    def meta(*shape, grad=False):
        return torch.empty(*shape, dtype=dtype, device="meta", requires_grad=grad)

    out = {}
    if "logits" in cfg.sections:
        s, t = meta(cfg.n, cfg.v, grad=True), meta(cfg.n, cfg.v)
        with Count() as c:
            distillation_loss(s, t, "js", beta=cfg.beta, chunk_bytes=cfg.chunk_bytes).backward()
        out["logits"] = sum(c.ops.values())
    if "fused" in cfg.sections:
        h_t = cfg.teacher_hidden or cfg.hidden
        hs, ws = meta(cfg.n, cfg.hidden, grad=True), meta(cfg.v, cfg.hidden, grad=True)
        with Count() as c:
            fused_linear_distillation_loss(hs, ws, meta(cfg.n, h_t), meta(cfg.v, h_t),
                                           divergence="js", beta=cfg.beta,
                                           chunk_bytes=cfg.chunk_bytes).backward()
        out["fused"] = sum(c.ops.values())
    return out


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def measure(section: str, impl: str, cfg: argparse.Namespace, device: Any, dtype: Any) -> dict:
    import torch

    cuda = torch.device(device).type == "cuda"
    inp = make_inputs(section, cfg, device, dtype)
    loss = get_loss(section, impl, cfg)

    def once() -> float:
        for k in LEAVES[section]:
            inp[k].grad = None
        out = loss(inp)
        out.backward()
        value = float(out.detach().float())  # one read back per call, after the work
        for k in LEAVES[section]:
            inp[k].grad = None
        return value

    for _ in range(cfg.warmup):
        once()
    peak = None
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        value = once()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        value = once()
    times = []
    for _ in range(cfg.repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        once()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    inp.clear()
    if cuda:
        torch.cuda.empty_cache()
    return {"impl": impl, "time": statistics.median(times), "peak": peak, "value": value}


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def to_markdown(section: str, rows: list[dict], cfg: argparse.Namespace) -> str:
    unit = cfg.n * cfg.v * 4
    ours = next((r for r in rows if r["impl"] == "ours" and "error" not in r), None)
    lines = [f"{section} (N={cfg.n}, V={cfg.v}, {cfg.dtype}, beta={cfg.beta}), fwd+bwd:", "",
             "| impl | time (ms) | time / ours | peak extra (GiB) | x N*V*4 | peak / ours "
             "| loss rel. diff |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['error']} | | | | | |")
            continue
        peak = r["peak"]
        rel = "-" if ours is None else (
            f"{abs(r['value'] - ours['value']) / max(abs(ours['value']), 1e-30):.1e}")
        lines.append(
            f"| {r['impl']} | {r['time'] * 1e3:.1f} | "
            f"{_ratio(r['time'], ours and ours['time'])} | "
            f"{'-' if peak is None else f'{peak / GIB:.2f}'} | "
            f"{'-' if peak is None else f'{peak / unit:.3f}'} | "
            f"{_ratio(peak, ours and ours['peak'])} | {rel} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(argv)
    if cfg.quick:
        cfg.n, cfg.v, cfg.hidden, cfg.teacher_hidden = 64, 1000, 32, 48
        cfg.warmup, cfg.repeats = 1, 2
    import torch

    dtype = getattr(torch, cfg.dtype)
    device = torch.device(cfg.device)
    wanted = {"logits": LOGITS_IMPLS, "fused": FUSED_IMPLS}
    plan = []
    for section in cfg.sections:
        for impl in wanted[section]:
            if cfg.impls is not None and impl not in cfg.impls:
                continue
            plan.append((section, impl))
    skipped = sorted({impl for _, impl in plan if not installed(impl)})
    plan = [(s, i) for s, i in plan if installed(i)]

    if cfg.dry_run:
        print(f"plan on {device}: " + ", ".join(f"{s}/{i}" for s, i in plan))
        if skipped:
            print("not installed, skipped: " + ", ".join(skipped))
        from divergences.losses import _chunked_distill as cd

        if cfg.chunk_bytes is not None:
            budgets = [cfg.chunk_bytes]
        elif device.type == "cuda" and torch.cuda.is_available():
            budgets = [cd.default_budget(device)]
        else:  # what a CUDA device with 8 GiB or more free would use, and the fixed default
            budgets = [cd.accelerator_budget(1 << 40), cd.FIXED_ACCEL_BUDGET]
        for budget in budgets:
            for line in chunk_report(cfg, budget):
                print(line)
        ops = count_ops(cfg, dtype)
        print("aten ops of ours, fwd+bwd at full size (meta device): "
              + ", ".join(f"{k} {v}" for k, v in ops.items()))
        return 0
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_losses: no CUDA device here; nothing run (use --dry-run for the plan, or "
              "--device cpu at a tiny size to check the machinery)")
        return 0

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}")
    if skipped:
        print("not installed, skipped: " + ", ".join(skipped))
    from divergences.losses import _chunked_distill as cd

    budget = cfg.chunk_bytes if cfg.chunk_bytes is not None else cd.default_budget(device)
    for line in chunk_report(cfg, budget):
        print(line)
    for section in cfg.sections:
        rows = []
        for sec, impl in plan:
            if sec != section:
                continue
            try:
                rows.append(measure(section, impl, cfg, device, dtype))
            except Exception as exc:  # a peer's failure is a result, not a crash
                msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
                rows.append({"impl": impl, "error": msg.replace("|", "/")})
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print()
        print(to_markdown(section, rows, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
