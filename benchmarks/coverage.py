"""Interval coverage of the entropy, KL, JS and conditional-MI estimators, against closed forms.

``python -m benchmarks.coverage [--n 1000] [--seeds 40] [--quick] [--no-record]``
``python -m benchmarks.coverage --sparse-mi-only [--reps 200]`` (about 3 minutes)

Issue 4 asks that *every* estimate carry an interval whose coverage is measured (target 90-98%
at nominal 95%). ``benchmarks/mi.py`` does it for mutual information; this suite does it for
the others, each with its default interval (``ci="normal"`` unless stated), on tasks whose
value is known exactly:

Entropy, continuous (nats)
    ``normal_1d`` (``N(0, 1)``: ``1/2 log(2 pi e)``), ``normal_3d`` (correlations 0.5:
    ``1/2 log det(2 pi e S)``), ``exponential`` (rate 1: ``1``), ``uniform_2d``
    (``U[0, 1]^2``: ``0``), with ``knn``, ``kde``, ``gaussian`` (normal tasks only),
    ``vasicek`` and ``ebrahimi`` (1-D only).
Entropy, discrete
    ``uniform_10`` (``log 10``) and ``zipf_50`` (``p_i ~ 1/i`` on 50 symbols, exact sum), with
    ``plugin``, ``miller_madow``, ``grassberger``, ``chao_shen``, ``nsb``, ``jackknife``.
KL and JS (``x ~ P``, ``y ~ Q``, equal sizes)
    ``kl_shift_scale`` (``P = N(0, 1)``, ``Q = N(1, 2^2)``), ``kl_2d`` (``P = N(0, I)``,
    ``Q = N((1, 0), diag(1, 2))``), exact Gaussian KL; ``js_shift``
    (``N(0, 1)`` against ``N(1, 1)``; exact value by quadrature).
Conditional MI
    ``cmi_gauss`` (``Z ~ N(0, 1)``, ``X = Z + e1``, ``Y = Z + X/2 + e2``: ``I(X; Y | Z) =
    -1/2 log(1 - rho^2)`` with the partial correlation ``rho``), with ``ksg`` (Frenzel-Pompe,
    default interval: bias-aware) and ``gaussian``.

Discrete MI in sparse tables (``--sparse-mi-only``; also part of the full run)
    ``mutual_information`` of two integer samples (its ``"discrete"`` estimator) on joint
    tables with known MI (exact sums), ``reps`` draws each (default 200, seeds 0..):
    ``independent`` (uniform marginals), ``noisy_channel`` (``X`` uniform, ``Y = X`` with
    probability 1/2, else uniform), ``zipf_channel`` (the same with Zipf(1) marginals for
    ``X`` and the noise), ``independent_zipf``; at 30 x 30 symbols with n = 1,500 (1.7 draws
    per cell) and 20 x 20 with n = 2,000 (5 per cell). Raw values (``clip=False``) for the
    bias; the default interval; the bias of the former Miller-Madow value alongside
    (``details["miller_madow"]``).

Each estimator runs with its default interval (``ci="auto"``: bias-aware for the kNN entropy
and KL, normal for the others; the table names the interval that ran), and the kNN entropy
and KL also with ``ci="normal"`` for comparison. For each estimator and task: coverage of
the 95% interval, mean error (bias), spread over seeds and mean interval width. Coverage does
not depend on machine load.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import integrate, stats

from divergences.estimate import (
    conditional_mutual_information,
    entropy,
    js,
    kl,
    mutual_information,
)

try:
    from ._runner import machine_info, machine_line
except ImportError:  # pragma: no cover - run as a plain script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._runner import machine_info, machine_line

Draw = Callable[[np.random.Generator, int], tuple[Any, ...]]
Est = Callable[..., Any]


def _gauss_h(cov: np.ndarray) -> float:
    d = cov.shape[0]
    return 0.5 * float(np.linalg.slogdet(2 * math.pi * math.e * cov)[1]) if d else 0.0


def _gauss_kl(m0, s0, m1, s1) -> float:
    m0, m1 = np.atleast_1d(m0), np.atleast_1d(m1)
    s0, s1 = np.atleast_2d(s0), np.atleast_2d(s1)
    inv = np.linalg.inv(s1)
    d = m1 - m0
    return 0.5 * float(np.trace(inv @ s0) + d @ inv @ d - len(m0)
                       + np.linalg.slogdet(s1)[1] - np.linalg.slogdet(s0)[1])


def _js_normals(mu: float) -> float:
    p, q = stats.norm(0, 1), stats.norm(mu, 1)

    def f(t):
        a, b = p.pdf(t), q.pdf(t)
        m = 0.5 * (a + b)
        return 0.5 * (a * math.log(a / m) if a > 0 else 0) + 0.5 * (
            b * math.log(b / m) if b > 0 else 0)

    return float(integrate.quad(f, -12, 12 + mu, limit=200)[0])


S3 = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
ZIPF = (1.0 / np.arange(1, 51)) / np.sum(1.0 / np.arange(1, 51))


def _cmi_truth() -> float:
    # (X, Y, Z) normal: Z ~ N(0,1), X = Z + e1, Y = Z + X/2 + e2 (unit noises).
    a = np.array([[1, 0, 0], [1, 1, 0], [1.5, 0.5, 1.0]])  # rows: Z, X, Y in terms of (z,e1,e2)
    cov = a @ a.T  # order Z, X, Y
    s_xy_z = cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0]
    rho = s_xy_z[0, 1] / math.sqrt(s_xy_z[0, 0] * s_xy_z[1, 1])
    return -0.5 * math.log(1 - rho**2)


def tasks() -> list[tuple[str, str, float, Draw, dict[str, Est]]]:
    """``(group, name, truth, draw, estimators)``; each estimator returns an Estimate."""

    def ent(method: str, **kw: Any) -> Est:
        return lambda s, x: entropy(x, method, seed=s, **kw)

    knn = {"knn": ent("knn"), "knn ci=normal": ent("knn", ci="normal")}
    cont_1d = knn | {m: ent(m) for m in ("kde", "vasicek", "ebrahimi")}
    cont_nd = knn | {"kde": ent("kde")}
    def disc(k: int) -> dict[str, Est]:
        out = {m: ent(m) for m in ("plugin", "miller_madow", "grassberger", "chao_shen",
                                   "jackknife")}
        return out | {"nsb": ent("nsb", alphabet_size=k)}  # NSB's prior needs the alphabet

    def kl_est(s, x, y):
        return kl(x, y, seed=s)

    def kl_normal(s, x, y):
        return kl(x, y, seed=s, ci="normal")

    def js_est(s, x, y):
        return js(x, y, seed=s)

    chol3 = np.linalg.cholesky(S3)
    return [
        ("entropy", "normal_1d", 0.5 * math.log(2 * math.pi * math.e),
         lambda r, n: (r.standard_normal(n),), cont_1d | {"gaussian": ent("gaussian")}),
        ("entropy", "normal_3d", _gauss_h(S3),
         lambda r, n: (r.standard_normal((n, 3)) @ chol3.T,),
         cont_nd | {"gaussian": ent("gaussian")}),
        ("entropy", "exponential", 1.0, lambda r, n: (r.exponential(1.0, n),), cont_1d),
        ("entropy", "uniform_2d", 0.0, lambda r, n: (r.uniform(size=(n, 2)),), cont_nd),
        ("entropy", "uniform_10", math.log(10), lambda r, n: (r.integers(0, 10, n),), disc(10)),
        ("entropy", "zipf_50", float(-np.sum(ZIPF * np.log(ZIPF))),
         lambda r, n: (r.choice(50, size=n, p=ZIPF),), disc(50)),
        ("kl", "kl_shift_scale", _gauss_kl(0.0, 1.0, 1.0, 4.0),
         lambda r, n: (r.standard_normal(n), 1.0 + 2.0 * r.standard_normal(n)),
         {"knn": kl_est, "knn ci=normal": kl_normal}),
        ("kl", "kl_2d", _gauss_kl(np.zeros(2), np.eye(2), np.array([1.0, 0.0]),
                                  np.diag([1.0, 2.0])),
         lambda r, n: (r.standard_normal((n, 2)),
                       np.array([1.0, 0.0]) + r.standard_normal((n, 2)) * [1.0, math.sqrt(2)]),
         {"knn": kl_est, "knn ci=normal": kl_normal}),
        ("js", "js_shift", _js_normals(1.0),
         lambda r, n: (r.standard_normal(n), 1.0 + r.standard_normal(n)), {"knn": js_est}),
        ("cmi", "cmi_gauss", _cmi_truth(), _cmi_draw,
         {"ksg": lambda s, x, y, z: conditional_mutual_information(
             x, y, z, "ksg", ci="bias_aware", seed=s),
          "gaussian": lambda s, x, y, z: conditional_mutual_information(
             x, y, z, "gaussian", seed=s)}),
    ]


def _cmi_draw(r: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    z = r.standard_normal(n)
    x = z + r.standard_normal(n)
    y = z + 0.5 * x + r.standard_normal(n)
    return x, y, z


def sparse_tables(k: int) -> dict[str, np.ndarray]:
    """Joint tables ``P[x, y]`` for the sparse discrete MI tasks."""
    u = np.full(k, 1.0 / k)
    z = 1.0 / np.arange(1, k + 1)
    z /= z.sum()
    return {
        "independent": np.outer(u, u),
        "noisy_channel": u[:, None] * (0.5 * np.eye(k) + 0.5 * u[None, :]),
        "zipf_channel": z[:, None] * (0.5 * np.eye(k) + 0.5 * z[None, :]),
        "independent_zipf": np.outer(z, z),
    }


def table_mi(p: np.ndarray) -> float:
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / np.outer(p.sum(1), p.sum(0))[m])))


SPARSE_SIZES = ((30, 1500), (20, 2000))


def run_sparse_mi(reps: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for k, n in SPARSE_SIZES:
        for name, p in sparse_tables(k).items():
            truth = table_mi(p)
            err, hit, width, mm = [], [], [], []
            for s in range(reps):
                c = np.random.default_rng(s).choice(p.size, size=n, p=p.ravel())
                e = mutual_information(c // k, c % k, seed=s, clip=False)
                err.append(e.value - truth)
                hit.append(float(e.ci_low <= truth <= e.ci_high))
                width.append(e.ci_high - e.ci_low)
                mm.append(e.details["miller_madow"] - truth)
            row = dict(table=f"{k}x{k}", n=n, task=name, truth=truth,
                       coverage=float(np.mean(hit)), bias=float(np.mean(err)),
                       spread=float(np.std(err, ddof=1)), width=float(np.mean(width)),
                       mm_bias=float(np.mean(mm)))
            rows.append(row)
            log(f"{k}x{k} n={n} {name:17s} coverage {row['coverage']:.3f}  bias "
                f"{row['bias']:+.4f}  spread {row['spread']:.4f}  width {row['width']:.4f}  "
                f"(Miller-Madow bias {row['mm_bias']:+.4f})")
    return rows


def report_sparse(rows: list[dict[str, Any]], reps: int) -> str:
    lines = ["### Discrete MI in sparse tables (`mutual_information`, integer samples)", "",
             f"{reps} draws per table; raw values (`clip=False`); default 95% interval.", "",
             "| table | n | task | truth | coverage | bias | spread | mean width |"
             " Miller-Madow bias |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['table']} | {r['n']} | {r['task']} | {r['truth']:.4f} | "
                     f"{100 * r['coverage']:.1f}% | {r['bias']:+.4f} | {r['spread']:.4f} | "
                     f"{r['width']:.4f} | {r['mm_bias']:+.4f} |")
    return "\n".join([*lines, ""])


def run(n: int, seeds: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for group, name, truth, draw, ests in tasks():
        res: dict[str, dict[str, list[float]]] = {}
        for s in range(seeds):
            sample = draw(np.random.default_rng(9000 + s), n)
            for m, fn in ests.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e = fn(s, *sample)
                r = res.setdefault(m, {"err": [], "hit": [], "width": [], "time": [],
                                       "ci": e.ci_method})
                r["err"].append(e.value - truth)
                r["hit"].append(float(e.ci_low <= truth <= e.ci_high))
                r["width"].append(e.ci_high - e.ci_low)
                r["time"].append(time.perf_counter() - t0)
        for m, r in res.items():
            row = dict(group=group, task=name, truth=truth, estimator=m,
                       coverage=float(np.mean(r["hit"])), bias=float(np.mean(r["err"])),
                       spread=float(np.std(r["err"], ddof=1)),
                       width=float(np.mean(r["width"])), time=float(np.median(r["time"])),
                       ci=r["ci"])
            rows.append(row)
            log(f"{name:15s} {m:13s} coverage {row['coverage']:.2f}  bias {row['bias']:+.4f}"
                f"  spread {row['spread']:.4f}  width {row['width']:.4f}")
    return rows


def report(rows: list[dict[str, Any]], n: int, seeds: int, machine: str, wall: float,
           note: str | None) -> str:
    lines = [f"## {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} · benchmarks.coverage",
             ""]
    if note:
        lines += [f"*{note}*", ""]
    lines += [f"- Machine: {machine}",
              f"- n = {n} per sample, {seeds} seeds (seeds 9000+), each estimator's default "
              "interval unless the name says otherwise (the KSG CMI with "
              "`ci=\"bias_aware\"`); nominal 95%, target 90-98%", "",
              "| group | task | truth | estimator | interval | coverage | bias | spread |"
              " mean width | median s |", "|---|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['task']} | {r['truth']:.4f} | {r['estimator']} | "
                     f"{r['ci']} | "
                     f"{100 * r['coverage']:.0f}% | {r['bias']:+.4f} | {r['spread']:.4f} | "
                     f"{r['width']:.4f} | {r['time']:.3f} |")
    inside = [r for r in rows if 0.90 <= r["coverage"] <= 0.98]
    lines += ["", f"{len(inside)} of {len(rows)} (estimator, task) cells inside 90-98%; "
              f"wall time {wall:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coverage", description=__doc__)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--quick", action="store_true", help="n = 200, 3 seeds; not recorded")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--note", default=None)
    p.add_argument("--sparse-mi-only", action="store_true",
                   help="only the sparse discrete MI tables (printed, not recorded)")
    p.add_argument("--reps", type=int, default=200, help="draws per sparse MI table")
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "RESULTS.md")
    a = p.parse_args(argv)
    n, seeds = (200, 3) if a.quick else (a.n, a.seeds)
    t0 = time.perf_counter()
    sparse = report_sparse(run_sparse_mi(20 if a.quick else a.reps,
                                         lambda s: print(s, flush=True)),
                           20 if a.quick else a.reps)
    if a.sparse_mi_only:
        print(sparse)
        print(f"wall time {time.perf_counter() - t0:.0f} s")
        return 0
    rows = run(n, seeds, lambda s: print(s, flush=True))
    text = report(rows, n, seeds, machine_line(machine_info()), time.perf_counter() - t0,
                  a.note) + "\n" + sparse
    print(text)
    if not (a.no_record or a.quick):
        with open(a.out, "a") as fh:
            fh.write("\n" + text)
        print(f"appended to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
