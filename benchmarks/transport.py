"""Benchmark ``transport``: Sinkhorn divergence against POT and geomloss, side by side.

Run from the repository root::

    python -m benchmarks.transport            # full sizes, appends to benchmarks/RESULTS.md
    python -m benchmarks.transport --quick    # tiny sizes: checks the machinery; not recorded

Data: ``x`` uniform on the unit square, ``y`` Gaussian with mean ``(0.6, 0.4)`` and standard
deviation ``0.2`` per axis, ``n`` points each (seeded), float32. Cost ``|x - y|^2``,
``epsilon = 0.01``, torch CPU with ``--threads`` (default 2) intra-op threads.

Sections (one table each):

``divergence``
    ``S_eps = OT_eps(x, y) - OT_eps(x, x)/2 - OT_eps(y, y)/2`` at ``n = 5,000``:

    - ours: ``divergences.transport.sinkhorn_divergence(x, y, epsilon=eps)`` (``backend="auto"``,
      i.e. the dense cost matrix at this size) and with ``backend="online"``;
    - POT ``ot.sinkhorn2(a, b, ot.dist(x, y), eps, method=...)`` for the three terms, with
      ``method="sinkhorn"`` (float64: in float32 its kernel ``exp(-C/eps)`` underflows) and
      ``method="sinkhorn_log"`` (float32). ``sinkhorn2`` returns ``<P, C>`` without the entropy,
      so ``OT_eps`` is formed from its scalings as ``eps (<a, log u/a> + <b, log v/b>)`` (the
      dual value, the same quantity as ours). Its stopping threshold is an L2 norm of the
      marginal error; ``stopThr = tol / sqrt(n)`` makes it at least as strict as our L1
      ``tol = 1e-3``;
    - geomloss ``2 * SamplesLoss("sinkhorn", p=2, blur=sqrt(eps / 2), scaling=s,
      backend="tensorized")(x, y)`` (its cost is ``|x - y|^2 / 2``), with its default
      ``scaling=0.5`` and with ``scaling=0.9``. The reference value is geomloss with
      ``scaling=0.95`` (``--ref-scaling``), run once.

    Implementations run interleaved, ``--rounds`` rounds (the order rotates each round; the
    slow ones, :data:`ONCE`, only in the first); the table gives the median and minimum time,
    the number of timed calls and each value's relative error against the reference.
``online``
    ours with ``backend="online"`` at ``n = 20,000`` per side (``--n-online``), run once in a
    fresh subprocess that reports its wall time and its peak resident memory above the inputs
    (``benchmarks._runner.measure_peak``); target below 2 GiB.
``overrelaxation``
    Soft-min evaluations (half-iterations, annealing included) that
    ``divergences._sinkhorn.solve`` needs to reach ``tol = 1e-3`` on the cross term at
    ``n = 1,500``, float64, for several over-relaxation factors ``omega``, and the relative
    error of the value against a solve to ``tol = 1e-9``. Deterministic (no timing): it sets
    ``divergences._sinkhorn.OVERRELAXATION``.
``convergence``
    POT's test problem (``arange(10)`` on the line, epsilon 0.1, tol 1e-9) and 200 x 150
    Gaussian points in 3-D at epsilon 1, 0.1, 1e-2, 1e-3 (our default tol): ours with its
    defaults, POT ``sinkhorn_log`` and ``sinkhorn_epsilon_scaling``: soft-mins or
    iterations, time (fastest of :data:`REPEATS`), the plan's L1 marginal error, whether the
    solver warned. Float64, small: it runs in seconds.
``backends``
    One soft-min (``Cost.softmin``) on the dense and the online backend at several sizes and
    dimensions ``d`` (the online backend recomputes each cost entry, ``O(d)`` work, where the
    dense one reads it) and, for the online backend at ``n = 5,000``, several block sizes
    (median of 7 interleaved calls). It sets ``AUTO_MAX_ENTRIES`` and ``BLOCK_ELEMENTS``. Run
    it with ``--threads 1`` on a loaded machine: two OpenMP threads on oversubscribed cores
    spend most of a short call waiting at barriers.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from divergences import _sinkhorn
from divergences.transport import sinkhorn_divergence

from ._runner import ROOT, Case, Impl, machine_info, machine_line, measure_peak, set_threads

NAME = "transport"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
EPS = 0.01
TOL = 1e-3
FULL = {"n": 5000, "n_online": 20000, "rounds": 3, "n_iter": 1500,
        "softmin_dims": [(2, [300, 1000, 2500, 5000, 10000]), (16, [2500, 5000, 10000]),
                         (64, [2500, 5000, 10000])],
        "block_n": 5000, "blocks": [1 << 16, 1 << 18, 1 << 20, 1 << 22],
        "softmin_repeats": 7, "ref_scaling": 0.95, "unbalanced_n": [200, 500]}
QUICK = {"n": 400, "n_online": 1000, "rounds": 1, "n_iter": 300,
         "softmin_dims": [(2, [200, 400]), (16, [300])], "block_n": 400,
         "blocks": [1 << 14, 1 << 16], "softmin_repeats": 2,
         "ref_scaling": 0.9, "unbalanced_n": [50]}


def clouds(n: int, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The benchmark clouds: ``x`` uniform on the unit square, ``y ~ N((0.6, 0.4), 0.2^2 I)``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=gen, dtype=dtype)
    y = 0.2 * torch.randn(n, 2, generator=gen, dtype=dtype) + torch.tensor([0.6, 0.4],
                                                                            dtype=dtype)
    return x, y


# --------------------------------------------------------------------------------------------
# Implementations of S_eps(x, y)
# --------------------------------------------------------------------------------------------


def ours(backend: str):
    def run(inp):
        return float(sinkhorn_divergence(inp["x"], inp["y"], epsilon=EPS, tol=TOL,
                                         backend=backend))
    return run


def pot(method: str):
    import ot

    dtype = torch.float64 if method == "sinkhorn" else torch.float32

    def ot_eps(u, v):
        n, m = u.shape[0], v.shape[0]
        a = torch.full((n,), 1.0 / n, dtype=dtype)
        b = torch.full((m,), 1.0 / m, dtype=dtype)
        cost = ot.dist(u, v)  # squared Euclidean
        _, log = ot.sinkhorn2(a, b, cost, EPS, method=method, numItermax=100000,
                              stopThr=TOL / math.sqrt(m), log=True, warn=False)
        if method == "sinkhorn":
            lu, lv = torch.log(log["u"]), torch.log(log["v"])
        else:
            lu, lv = log["log_u"], log["log_v"]
        return EPS * float((a * (lu - a.log())).sum() + (b * (lv - b.log())).sum())

    def run(inp):
        x, y = inp["x"].to(dtype), inp["y"].to(dtype)
        return ot_eps(x, y) - 0.5 * ot_eps(x, x) - 0.5 * ot_eps(y, y)
    return run


def geomloss(scaling: float):
    import geomloss as gl

    loss = gl.SamplesLoss("sinkhorn", p=2, blur=math.sqrt(EPS / 2), scaling=scaling,
                          backend="tensorized")

    def run(inp):
        return 2.0 * float(loss(inp["x"], inp["y"]))
    return run


def make_cases(config: dict[str, Any]) -> list[Case]:
    """The ``online`` case in the runner's protocol (its memory child imports this module)."""
    n = config["n_online"]

    def setup():
        x, y = clouds(n)
        return {"x": x, "y": y}

    def small():
        x, y = clouds(64)
        return {"x": x, "y": y}

    return [Case("online", setup, (Impl("ours[online]", _timed(ours("online")), ours=True),),
                 warmup_setup=small)]


_LAST: dict[str, float] = {}


def _timed(fn):
    def run(inp):
        t0 = time.perf_counter()
        value = fn(inp)
        _LAST["seconds"], _LAST["value"] = time.perf_counter() - t0, value
        return {"value": np.array([value])}
    return run


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


# The slow implementations (minutes each at n = 5,000) run in the first round only, so that the
# whole script stays under 10 minutes on a quiet machine; their min equals their median.
ONCE = ("ours[online]", "POT sinkhorn2[sinkhorn_log]", "geomloss[scaling=0.9]")


def divergence_section(cfg: dict[str, Any]) -> list[str]:
    x, y = clouds(cfg["n"])
    inp = {"x": x, "y": y}
    impls = [("ours", ours("auto")), ("ours[online]", ours("online")),
             ("POT sinkhorn2[sinkhorn] (float64)", pot("sinkhorn")),
             ("POT sinkhorn2[sinkhorn_log]", pot("sinkhorn_log")),
             ("geomloss[scaling=0.5]", geomloss(0.5)), ("geomloss[scaling=0.9]", geomloss(0.9))]
    print(f"reference: geomloss scaling={cfg['ref_scaling']} ...", flush=True)
    t0 = time.perf_counter()
    ref = geomloss(cfg["ref_scaling"])(inp)
    ref_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name, _ in impls}
    values: dict[str, float] = {}
    gc.collect()
    for r in range(cfg["rounds"]):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for name, fn in order:
            if r > 0 and name in ONCE:
                continue
            t0 = time.perf_counter()
            values[name] = fn(inp)
            times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1} {name}: {times[name][-1]:.2f} s, value {values[name]:.7g}",
                  flush=True)
    best_peer = min((n for n, _ in impls if not n.startswith("ours")),
                    key=lambda n: statistics.median(times[n]))
    lines = [
        f"### divergence: n = {cfg['n']:,} per side, 2-D, epsilon = {EPS}, cost |x-y|^2",
        "",
        f"Reference value: geomloss scaling={cfg['ref_scaling']}: {ref:.8g} "
        f"({ref_s:.1f} s, one call). {cfg['rounds']} interleaved round(s).",
        "",
        "| implementation | median s | min s | calls | value | rel. error vs reference "
        "| ours/this time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ours_t = statistics.median(times["ours"])
    for name, _ in impls:
        med = statistics.median(times[name])
        ratio = "-" if name == "ours" else f"{ours_t / med:.2f}x"
        rel = (values[name] - ref) / ref
        label = f"**{name}**" if name.startswith("ours") else name
        lines.append(f"| {label} | {med:.2f} | {min(times[name]):.2f} | {len(times[name])} | {values[name]:.7g} | "
                     f"{rel:+.2e} | {ratio} |")
    rel_ours = abs(values["ours"] - ref) / abs(ref)
    faster = ours_t < statistics.median(times[best_peer])
    lines += ["", f"Target (faster than every peer, value within 0.5% of the reference): "
              f"ours {ours_t:.2f} s vs fastest peer {best_peer} "
              f"{statistics.median(times[best_peer]):.2f} s, error {rel_ours:.2e}: "
              + ("met" if faster and rel_ours <= 5e-3 else "**missed**"), ""]
    return lines


def online_child(n: int) -> dict[str, Any]:
    """In a fresh process: time and peak memory of one online solve at ``n`` per side."""
    case = make_cases({"n_online": n})[0]
    mem = measure_peak(case, case.impls[0])
    return {**mem, "seconds": _LAST["seconds"], "value": _LAST["value"]}


def online_section(cfg: dict[str, Any], threads: int) -> list[str]:
    n = cfg["n_online"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(ROOT)] + [p for p in sys.path if p]))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transport", "--child-online",
                           str(n), "--threads", str(threads)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    out = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"online child failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(out[-1])
    gib = res["peak_bytes"] / 2**30
    bound = "<= " if res["lower_bound"] else ""
    return [
        f"### online: n = {n:,} per side, backend=\"online\", epsilon = {EPS}", "",
        "One call in a fresh subprocess; peak = VmHWM - VmRSS before the call "
        "(benchmarks._runner.measure_peak).", "",
        "| implementation | s | peak MiB above inputs | value |", "|---|---:|---:|---:|",
        f"| **ours[online]** | {res['seconds']:.1f} | {bound}{res['peak_bytes'] / 2**20:.1f} | "
        f"{res['value']:.7g} |", "",
        f"Target (under 2 GiB): {gib:.3f} GiB: " + ("met" if gib < 2 else "**missed**"), "",
    ]


def overrelaxation_section(cfg: dict[str, Any]) -> list[str]:
    n = cfg["n_iter"]
    x, y = clouds(n, dtype=torch.float64)
    x, y = x[None], y[None]
    shift = torch.cat([x, y], 1).mean(1, keepdim=True)
    cost = _sinkhorn.Cost(x - shift, y - shift, 2, False)
    la = torch.full((1, n), -math.log(n), dtype=torch.float64)
    sched = _sinkhorn.epsilon_schedule(_sinkhorn.diameter(x, y), 2, EPS, 0.5)
    calls = [0]
    plain = cost.softmin

    def counted(*args):
        calls[0] += 1
        return plain(*args)

    cost.softmin = counted

    def value(res):
        return float((la.exp() * res.f).sum() + (la.exp() * res.g).sum())

    ref = value(_sinkhorn.solve(cost, la, la, EPS, sched, 1e-9, 100000))
    lines = [f"### overrelaxation: soft-min evaluations to tol = {TOL:g}, cross term, "
             f"n = {n:,}, float64, epsilon = {EPS}", "",
             f"{len(sched) - 1} annealing stages (2 soft-mins each) are included.", "",
             "| omega | soft-min evaluations | rel. error of OT_eps vs tol=1e-9 |",
             "|---:|---:|---:|"]
    for omega in (1.0, 1.3, 1.5, 1.7, 1.9):
        calls[0] = 0
        res = _sinkhorn.solve(cost, la, la, EPS, sched, TOL, 100000, omega=omega)
        lines.append(f"| {omega:g} | {calls[0]} | {(value(res) - ref) / ref:+.1e} |")
    return [*lines, "", f"Default: omega = {_sinkhorn.OVERRELAXATION:g}.", ""]


def _softmin_ms(cost, h, logw, repeats: int) -> float:
    cost.softmin(EPS, h, logw, "x")
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        cost.softmin(EPS, h, logw, "x")
        out.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(out)


def _dim_clouds(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred clouds in ``d`` dimensions: the 2-D benchmark clouds for ``d = 2``, else uniform
    against a shifted Gaussian on the unit cube (the same design, more axes)."""
    if d == 2:
        x, y = clouds(n, seed)
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(n, d, generator=gen)
        y = 0.2 * torch.randn(n, d, generator=gen) + 0.5
    return x[None] - 0.5, y[None] - 0.5


def backends_section(cfg: dict[str, Any]) -> list[str]:
    reps = cfg["softmin_repeats"]
    lines = ["### backends: one soft-min, float32, p = 2 (median ms)", "",
             "| d | n = m | dense | online (BLOCK_ELEMENTS) | online/dense |",
             "|---:|---:|---:|---:|---:|"]
    for d, sizes in cfg["softmin_dims"]:
        for n in sizes:
            x, y = _dim_clouds(n, d)
            h = torch.zeros(1, n)
            lw = torch.full((1, n), -math.log(n))
            dense = _sinkhorn.Cost(x, y, 2, False)
            online = _sinkhorn.Cost(x, y, 2, True)
            t_d, t_o = [], []
            for _ in range(reps):  # interleaved
                t_d.append(_softmin_ms(dense, h, lw, 1))
                t_o.append(_softmin_ms(online, h, lw, 1))
            del dense
            md, mo = statistics.median(t_d), statistics.median(t_o)
            lines.append(f"| {d} | {n:,} | {md:.1f} | {mo:.1f} | {mo / md:.2f} |")
    n = cfg["block_n"]
    x, y = clouds(n)
    x, y = x[None] - 0.5, y[None] - 0.5
    h = torch.zeros(1, n)
    lw = torch.full((1, n), -math.log(n))
    lines += ["", f"Online backend at n = {n:,}, by block size (entries per block):", "",
              "| block entries | median ms |", "|---:|---:|"]
    costs = {b: _sinkhorn.Cost(x, y, 2, True, block_elements=b) for b in cfg["blocks"]}
    ms: dict[int, list[float]] = {b: [] for b in costs}
    for _ in range(reps):
        for b, c in costs.items():
            ms[b].append(_softmin_ms(c, h, lw, 1))
    for b in costs:
        lines.append(f"| 2^{int(math.log2(b))} | {statistics.median(ms[b]):.1f} |")
    return [*lines, "", f"Current defaults: AUTO_MAX_ENTRIES = {_sinkhorn.AUTO_MAX_ENTRIES:,}, "
                    f"BLOCK_ELEMENTS = 2^{int(math.log2(_sinkhorn.BLOCK_ELEMENTS))}.", ""]


# Calls per implementation and case in the convergence section; the table gives the fastest.
REPEATS = 3


def _line_and_3d_cases() -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """POT's test problem and the 200 x 150 3-D clouds of issue 15, (name, x, y, eps, tol)."""
    line = np.arange(10.0)[:, None]
    rng = np.random.default_rng(0)
    x3, y3 = rng.normal(size=(200, 3)), rng.normal(size=(150, 3))
    return ([("line, arange(10)", line, line, 0.1, 1e-9)]
            + [("3-D, 200 x 150", x3, y3, eps, TOL) for eps in (1.0, 0.1, 1e-2, 1e-3)])


def convergence_section(cfg: dict[str, Any]) -> list[str]:
    """Iterations, time and final L1 marginal error of ours (defaults) against POT."""
    import ot

    from divergences.transport import sinkhorn

    lines = ["### convergence: ours with its defaults against POT, float64", "",
             "Soft-mins: our half-iterations (probe, annealing and target, Newton steps not "
             "counted); POT: its iteration count (each two half-iterations; "
             "sinkhorn_epsilon_scaling: outer stages of up to 100 inner iterations). Error: "
             "L1 distance of the plan's column sums to b plus that of its row sums to a.", "",
             "| problem | epsilon | tol | implementation | soft-mins / iterations | s "
             "| ms per soft-min | L1 marginal error | warned |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    calls = [0]
    plain = _sinkhorn.Cost.softmin

    def counted(self, *args):
        calls[0] += 1
        return plain(self, *args)

    def l1(plan, a, b):
        return float(np.abs(plan.sum(0) - b).sum() + np.abs(plan.sum(1) - a).sum())

    for name, x, y, eps, tol in _line_and_3d_cases():
        a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
        m = ot.dist(x, y)
        rows = []
        _sinkhorn.Cost.softmin = counted
        try:
            times = []
            for _ in range(REPEATS):  # the first call also pays torch's lazy initialisation
                calls[0] = 0
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter("always")
                    t0 = time.perf_counter()
                    _, plan = sinkhorn(x, y, epsilon=eps, tol=tol, max_iter=1000,
                                       return_plan=True)
                    times.append(time.perf_counter() - t0)
            rows.append(("ours", calls[0], min(times), l1(plan, a, b), bool(w)))
        finally:
            _sinkhorn.Cost.softmin = plain
        for method, kw in (("POT sinkhorn_log", {"method": "sinkhorn_log", "numItermax": 1000,
                                                 "stopThr": tol / math.sqrt(len(y))}),
                           ("POT sinkhorn_epsilon_scaling", {"method": "sinkhorn_epsilon_scaling",
                                                             "stopThr": tol})):
            times = []
            for _ in range(REPEATS):
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter("always")
                    t0 = time.perf_counter()
                    plan, log = ot.sinkhorn(a, b, m, eps, log=True, **kw)
                    times.append(time.perf_counter() - t0)
            rows.append((method, int(log["niter"]), min(times), l1(plan, a, b), bool(w)))
        for impl, count, sec, err, warned in rows:
            lines.append(f"| {name} | {eps:g} | {tol:g} | {impl} | {count} | {sec:.3f} | "
                         f"{1e3 * sec / max(count, 1):.2f} | {err:.1e} | "
                         f"{'yes' if warned else 'no'} |")
        print(lines[-3:], flush=True)
    return [*lines, "", f"Fastest of {REPEATS} calls each. POT's sinkhorn_log stops at 1,000 "
            "iterations (its own test's numItermax); sinkhorn_epsilon_scaling stops when the "
            "squared L2 norms of both marginal errors sum to stopThr = tol, looser than our L1 "
            "tol. POT's ms per iteration covers two half-iterations.", ""]


def _gkl(p: np.ndarray, q: np.ndarray) -> float:
    pos = p > 0
    return float(np.sum(np.where(pos, p * np.log(np.where(pos, p, 1.0) / q), 0.0)) - p.sum()
                 + q.sum())


def unbalanced_section(cfg: dict[str, Any]) -> list[str]:
    """Unbalanced transport: ours (sinkhorn_cost with rho) against POT's sinkhorn_unbalanced."""
    import ot

    from divergences.transport import sinkhorn_cost

    lines = ["### unbalanced: ours against POT's sinkhorn_unbalanced, float64", "",
             "Measures of mass 1 and 1.5 on 2-D Gaussian clouds (the second shifted by 1), "
             "squared Euclidean cost, reg = epsilon, reg_m = rho. Every plan is feasible, so "
             "its primal objective <P, C> + eps KL(P || a b^T) + rho KL(P 1 || a) + "
             "rho KL(P^T 1 || b) (generalised KLs) is at least the optimum: the gap to the "
             "smallest objective found measures how far each solver stopped from it. Ours with "
             "its defaults except tol; POT with its defaults except numItermax = 20,000 and "
             "stopThr = 1e-9.", "",
             "| n x m | epsilon | rho | implementation | s | objective gap | "
             "max abs plan difference to ours | warned |",
             "|---|---:|---:|---|---:|---:|---:|---|"]
    rng = np.random.default_rng(0)
    for n in cfg["unbalanced_n"]:
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 1.0
        a, b = np.full(n, 1.0 / n), np.full(n, 1.5 / n)
        m = ot.dist(x, y)
        for eps, rho in ((0.1, 1.0), (0.01, 1.0), (0.01, 100.0), (1e-3, 1.0)):
            rows = []
            problem = (a, b, m, eps, rho)

            def ours(a=a, b=b, m=m, eps=eps, rho=rho):
                return sinkhorn_cost(m, a, b, epsilon=eps, rho=rho, tol=1e-9, max_iter=100000,
                                     return_plan=True)[1]

            def pot(method, problem=problem):
                return ot.unbalanced.sinkhorn_unbalanced(*problem, method=method,
                                                         numItermax=20000, stopThr=1e-9)

            runs = [("ours", ours)]
            for method in ("sinkhorn", "sinkhorn_stabilized", "sinkhorn_translation_invariant"):
                runs.append((f"POT {method}", lambda method=method: pot(method)))
            for name, run in runs:
                times = []
                for _ in range(REPEATS):
                    with warnings.catch_warnings(record=True) as w:
                        warnings.simplefilter("always")
                        with np.errstate(all="ignore"):
                            t0 = time.perf_counter()
                            plan = np.asarray(run())
                            times.append(time.perf_counter() - t0)
                with np.errstate(all="ignore"):
                    obj = (float(np.sum(plan * m)) + eps * _gkl(plan, np.outer(a, b))
                           + rho * _gkl(plan.sum(1), a) + rho * _gkl(plan.sum(0), b))
                rows.append((name, min(times), obj, plan, bool(w)))
            finite = [r[2] for r in rows if math.isfinite(r[2])]
            best = min(finite) if finite else math.nan
            ref = rows[0][3]
            for name, sec, obj, plan, warned in rows:
                diff = float(np.abs(plan - ref).max()) if np.all(np.isfinite(plan)) else math.nan
                lines.append(f"| {n} x {n} | {eps:g} | {rho:g} | {name} | {sec:.3f} | "
                             f"{obj - best:.1e} | {diff:.1e} | {'yes' if warned else 'no'} |")
            print(lines[-len(rows):], flush=True)
    return [*lines, "", f"Fastest of {REPEATS} calls each; nan: the solver returned NaN.", ""]


SECTIONS = ("divergence", "online", "overrelaxation", "backends", "convergence", "unbalanced")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; not recorded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the divergence case")
    parser.add_argument("--n", type=int, help="points per side of the divergence case")
    parser.add_argument("--n-online", type=int, help="points per side of the online case")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--results", type=Path, help=f"results file (default {RESULTS.name})")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", help="a line written under the heading")
    parser.add_argument("--child-online", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.child_online:
        print(json.dumps(online_child(args.child_online)), flush=True)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("rounds", "n", "n_online"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [f"## {started} · benchmarks.transport" + (" · quick" if args.quick else ""), ""]
    if args.note:
        lines += [f"*{args.note}*", ""]
    lines += [f"- Machine: {machine_line(machine)}", ""]
    t_start = time.perf_counter()
    sections = {"divergence": lambda: divergence_section(cfg),
                "online": lambda: online_section(cfg, args.threads),
                "overrelaxation": lambda: overrelaxation_section(cfg),
                "backends": lambda: backends_section(cfg),
                "convergence": lambda: convergence_section(cfg),
                "unbalanced": lambda: unbalanced_section(cfg)}
    for name in SECTIONS:
        if name in args.sections:
            print(f"[{name}]", flush=True)
            lines += sections[name]()
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    lines += [f"Total {time.perf_counter() - t_start:.0f} s; load average at the end {load}.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    path = args.results or (None if args.quick or args.no_record else RESULTS)
    if path is not None and not args.no_record:
        old = path.read_text() if path.exists() else "# Transport and dependence benchmarks\n\n"
        path.write_text(old.rstrip("\n") + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
