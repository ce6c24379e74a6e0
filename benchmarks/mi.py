"""Mutual-information accuracy suite: estimators against ground truth, after Beyond Normal.

``python -m benchmarks.mi [--quick] [--n 5000] [--seeds 3] [--out benchmarks/RESULTS.md]``

Every task draws paired samples ``(x, y)`` whose mutual information is known exactly (closed
forms below; the mixed and discrete tasks by exact sums over their finitely many pieces). On
the *same* samples it runs each of our estimators (``divergences.estimate.mutual_information``
with every ``method``, ``"auto"`` included) and the peers that apply: a plain KSG (``k = 3``,
ours with ``method="ksg"``), scikit-learn ``mutual_info_regression`` / ``mutual_info_classif``
(1-D only), ``ennemi`` (1-D only) and ``infomeasure`` (KSG), each when installed. It prints,
per task and estimator, the bias (mean error over seeds), the spread (standard deviation over
seeds), the coverage of the 95% interval (ours only: peers give no interval) and the median
time, then checks the issue's targets:

1. ``auto`` mean absolute error over the suite at most half that of plain KSG, and no task
   with ``auto``'s mean absolute error above 0.2 nats;
2. 1-D KSG at ``n = 100,000`` at least 2x faster than scikit-learn, with the same value;
3. interval coverage of the nominal 95% interval in 90-98% (reported; the intervals of
   ``ksg`` and ``auto`` -- ``ci="normal"``, the default bias-aware one and ``ci="bootstrap"``
   -- are measured side by side on a coverage sub-suite with more seeds and ``n = 1000``;
   ``--coverage-only`` runs just that, ``--n-boot 0`` skips the bootstrap columns).

Tasks (``rho`` a correlation; ``I = -1/2 log(1 - rho^2)`` per correlated pair for normals):

``binormal``           ``(X, Y)`` standard bivariate normal, ``rho = 0.75``.
``halfcube``/``asinh``/``normal_cdf``
                       the same with ``t -> sign(t)|t|^{3/2}``, ``asinh`` or ``Phi`` applied to
                       both coordinates: invertible, so the MI is unchanged.
``uniform_noise``      ``X ~ U(0, 1)``, ``Y = X + U(-e, e)``, ``e = 0.1``:
                       ``I = h(Y) - log(2e) = e - log(2e)`` (``2e <= 1``; the density of ``Y``
                       is a trapezoid whose two ramps each contribute ``e/2`` to ``h(Y)``).
``dense_3x3``          6-D normal, all correlations 0.5, ``X`` the first three coordinates.
``sparse_5x5``         ``X, Y`` in 5-D, pairs ``(X_i, Y_i)`` correlated ``0.8`` for ``i < 2``.
``sparse_25x25``       ``X, Y`` in 25-D, three pairs correlated ``0.6``.
``student_t``          bivariate Student-t, ``nu = 3``, scale correlation 0.5:
                       ``I = I_gauss + f(1) + f(1) - f(2) - f(0)`` with
                       ``f(d) = (nu+d)/2 psi((nu+d)/2) - log Gamma((nu+d)/2)`` (difference of the
                       multivariate-t entropies; marginals of a t are t with the same ``nu``).
``spiral``             ``sparse`` 2x2 normal (two pairs, ``rho = 0.8``) with ``x`` rotated by the
                       angle ``1.5 |x|`` (norm-preserving, invertible): MI unchanged.
``mixed``              ``X`` uniform on ``{0..3}`` (integers), ``Y = X + U(0, 2)``:
                       ``I = h(Y) - log 2 = (log 8)/4 + (3/4) log 4 - log 2``.
``discrete_many``      ``X`` uniform on 64 symbols, ``Y = (X + E) mod 64``, ``E`` uniform on
                       ``{0..3}``: ``I = log 64 - log 4``.

Held-out families (``held_out_tasks``; never used to tune ``auto``, whose rule was set on the
tasks above, the *tuning* families). ``--generalisation`` runs ``auto`` and plain KSG on both
sets and reports the MAE of each set; the target is a held-out MAE of ``auto`` at most 0.5x
plain KSG's:

``student_t2_3x3``     Student-t with 2 degrees of freedom in 3+3 dimensions, three pairs
                       with scale correlation 0.6 (exact, as ``student_t``): heavy tails in
                       several dimensions.
``exp_cube``           binormal ``rho = 0.6`` with ``x -> exp(x)``, ``y -> y^3``
                       (invertible: the MI is the binormal's).
``shear_2x2``          2+2 normal (two pairs, 0.7) with ``x -> (x_1, x_2 + x_1^2)``
                       (invertible, volume-preserving): MI unchanged.
``sign_mixture``       ``(X, Y)`` an equal mixture of binormals with correlations +0.8 and
                       -0.8: zero correlation, standard normal marginals, so
                       ``I = 2 h(N(0,1)) - h(X, Y)`` with ``h(X, Y)`` by quadrature on a grid.
``class_gauss``        ``X`` uniform on ``{0..7}`` (integers), ``Y = X / 2 + N(0, 1)``:
                       ``I = h(Y) - 1/2 log(2 pi e)``, ``h(Y)`` by quadrature.
``zero_inflated``      binormal ``rho = 0.8`` with ``Y`` replaced by an exact 0 with
                       probability 0.3 (independently): the atom is recognisable, so
                       ``I = 0.7 I_binormal``; a float column with ties.

Measured (``--generalisation --n 5000 --seeds 3``, 78 s): tuning families, ``auto`` MAE
0.014 against 0.088 for plain KSG (ratio 0.15); held-out families 0.036 against 0.037
(ratio 0.98): **the 0.5x target is not met on the held-out set**. Per task (auto / KSG):
``student_t2_3x3`` 0.128 / 0.128, ``exp_cube`` 0.009 / 0.008, ``shear_2x2`` 0.023 / 0.023,
``sign_mixture`` 0.027 / 0.027, ``class_gauss`` 0.018 / 0.023, ``zero_inflated`` 0.013 /
0.013. On five of the six plain KSG is already within 0.03 nats and ``auto`` runs KSG there
(non-Gaussian copulas, or one discrete side), so the ratio is set by the heavy-tailed 3+3
task, where both read 0.13 low: that is the case a better rule has to fix.

``--mist`` runs the learned estimator (``method="mist"``) beside plain KSG and ``auto`` on
the held-out families of its meta-dataset (:func:`run_mist`: ``uniform_noise``, ``spiral``,
``shear`` of ``divergences.estimate._mist_tasks``, 1-5 columns a side, ``n = 100, 300,
1000``, ``--seeds`` sets per family and ``n``) and checks the issue's goals: MAE at most 0.8x
plain KSG's at each ``n``, 95% coverage in 90-98% with mean width at most 1.5x KSG's bootstrap
interval, one estimate at ``n = 1000``, 2+2 dimensions, in at most 50 ms. The numbers of the
shipped weights are in ``src/divergences/estimate/data/mist_training.json``.

The neural bounds (``infonce``, ``nwj``, ``dv``, ``mine``, ``smile``) are not in the default
method list (minutes per task on CPU); add them with ``--methods``. They run with
``NEURAL_OPTIONS`` and only on tasks with ``d_x + d_y <= 4``.

The machine is shared: the timings are wall-clock on whatever load there was (stated in the
results file with the load average); accuracy numbers do not depend on it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from divergences import gaussian as _gaussian
from divergences.estimate import mutual_information

try:  # the runner's machine description (owned by the runner's maintainer)
    from ._runner import machine_info, machine_line
except ImportError:  # pragma: no cover - run as a plain script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._runner import machine_info, machine_line

Sample = tuple[np.ndarray, np.ndarray]

# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    truth: float
    draw: Callable[[np.random.Generator, int], Sample]
    one_d: bool = False  # both sides 1-D: the 1-D peers apply
    kind: str = "continuous"  # "continuous", "mixed" (x discrete), "discrete"
    dim: int = 2  # d_x + d_y


def _gauss_mi(cov: np.ndarray, dx: int) -> float:
    return float(_gaussian.mutual_information(cov, dx))


def _normal(cov: np.ndarray, dx: int) -> Callable[[np.random.Generator, int], Sample]:
    chol = np.linalg.cholesky(cov)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        z = rng.standard_normal((n, cov.shape[0])) @ chol.T
        return z[:, :dx], z[:, dx:]

    return draw


def _pairs_cov(d: int, rhos: list[float]) -> np.ndarray:
    cov = np.eye(2 * d)
    for i, r in enumerate(rhos):
        cov[i, d + i] = cov[d + i, i] = r
    return cov


def _binormal(rho: float) -> np.ndarray:
    return np.array([[1.0, rho], [rho, 1.0]])


def _transformed(fn: Callable[[np.ndarray], np.ndarray], rho: float
                 ) -> Callable[[np.random.Generator, int], Sample]:
    base = _normal(_binormal(rho), 1)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        x, y = base(rng, n)
        return fn(x), fn(y)

    return draw


def _halfcube(t: np.ndarray) -> np.ndarray:
    return np.sign(t) * np.abs(t) ** 1.5


def _uniform_noise(eps: float) -> Callable[[np.random.Generator, int], Sample]:
    def draw(rng: np.random.Generator, n: int) -> Sample:
        x = rng.uniform(0.0, 1.0, n)
        return x, x + rng.uniform(-eps, eps, n)

    return draw


def student_t_mi(cov: np.ndarray, dx: int, nu: float) -> float:
    """Exact MI of a multivariate t with scale ``cov`` and ``nu`` degrees of freedom."""
    d = cov.shape[0]

    def f(k: int) -> float:
        a = (nu + k) / 2.0
        return a * float(special.digamma(a)) - math.lgamma(a)

    return _gauss_mi(cov, dx) + f(dx) + f(d - dx) - f(d) - f(0)


def _student(cov: np.ndarray, dx: int, nu: float) -> Callable[[np.random.Generator, int], Sample]:
    chol = np.linalg.cholesky(cov)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        z = rng.standard_normal((n, cov.shape[0])) @ chol.T
        w = np.sqrt(nu / rng.chisquare(nu, size=(n, 1)))
        t = z * w
        return t[:, :dx], t[:, dx:]

    return draw


def _spiral(speed: float) -> Callable[[np.random.Generator, int], Sample]:
    base = _normal(_pairs_cov(2, [0.8, 0.8]), 2)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        x, y = base(rng, n)
        a = speed * np.linalg.norm(x, axis=1)
        c, s = np.cos(a), np.sin(a)
        return np.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], axis=1), y

    return draw


def _mixed(m: int) -> Callable[[np.random.Generator, int], Sample]:
    def draw(rng: np.random.Generator, n: int) -> Sample:
        x = rng.integers(0, m, n)
        return x, x + rng.uniform(0.0, 2.0, n)

    return draw


def mixed_mi(m: int) -> float:
    # Y has density 1/(2m) on [0,1] and [m, m+1], 1/m on [1, m]; h(Y | X) = log 2.
    hy = (1.0 / m) * math.log(2 * m) + (m - 1) / m * math.log(m)
    return hy - math.log(2.0)


def _discrete_many(k: int, m: int) -> Callable[[np.random.Generator, int], Sample]:
    def draw(rng: np.random.Generator, n: int) -> Sample:
        x = rng.integers(0, k, n)
        return x, (x + rng.integers(0, m, n)) % k

    return draw


def tasks() -> list[Task]:
    rho = 0.75
    ib = -0.5 * math.log(1 - rho**2)
    dense = np.full((6, 6), 0.5) + 0.5 * np.eye(6)
    t_cov = _binormal(0.5)
    out = [
        Task("binormal", ib, _normal(_binormal(rho), 1), one_d=True),
        Task("halfcube", ib, _transformed(_halfcube, rho), one_d=True),
        Task("asinh", ib, _transformed(np.arcsinh, rho), one_d=True),
        Task("normal_cdf", ib, _transformed(special.ndtr, rho), one_d=True),
        Task("uniform_noise", 0.1 - math.log(0.2), _uniform_noise(0.1), one_d=True),
        Task("dense_3x3", _gauss_mi(dense, 3), _normal(dense, 3), dim=6),
        Task("sparse_5x5", _gauss_mi(_pairs_cov(5, [0.8, 0.8]), 5),
             _normal(_pairs_cov(5, [0.8, 0.8]), 5), dim=10),
        Task("sparse_25x25", _gauss_mi(_pairs_cov(25, [0.6] * 3), 25),
             _normal(_pairs_cov(25, [0.6] * 3), 25), dim=50),
        Task("student_t", student_t_mi(t_cov, 1, 3.0), _student(t_cov, 1, 3.0), one_d=True),
        Task("spiral", _gauss_mi(_pairs_cov(2, [0.8, 0.8]), 2), _spiral(1.5), dim=4),
        Task("mixed", mixed_mi(4), _mixed(4), one_d=True, kind="mixed"),
        Task("discrete_many", math.log(64) - math.log(4), _discrete_many(64, 4), one_d=True,
             kind="discrete"),
    ]
    return out


def _grid_entropy(logpdf: Callable[[np.ndarray], np.ndarray], lim: float, m: int,
                  dim: int) -> float:
    """``-int f log f`` by the midpoint rule on ``[-lim, lim]^dim`` (``dim`` 1 or 2)."""
    t = np.linspace(-lim, lim, m)
    h = t[1] - t[0]
    pts = t[:, None] if dim == 1 else np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(
        -1, 2)
    lp = logpdf(pts)
    return float(-np.sum(np.exp(lp) * lp) * h**dim)


def _sign_mixture(rho: float) -> tuple[float, Callable[[np.random.Generator, int], Sample]]:
    def logpdf(p: np.ndarray) -> np.ndarray:
        x, y = p[:, 0], p[:, 1]
        c = -math.log(2 * math.pi) - 0.5 * math.log(1 - rho**2)
        q1 = (x * x - 2 * rho * x * y + y * y) / (1 - rho**2)
        q2 = (x * x + 2 * rho * x * y + y * y) / (1 - rho**2)
        return c + np.logaddexp(-0.5 * q1, -0.5 * q2) + math.log(0.5)

    truth = math.log(2 * math.pi * math.e) - _grid_entropy(logpdf, 9.0, 1201, 2)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        x = rng.standard_normal(n)
        sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        return x, sign * rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(n)

    return truth, draw


def _class_gauss(m: int, scale: float) -> tuple[float, Callable[[np.random.Generator, int], Sample]]:
    centres = scale * np.arange(m)

    def logpdf(p: np.ndarray) -> np.ndarray:
        d = p[:, :1] - centres[None, :]
        return special.logsumexp(-0.5 * d * d, axis=1) - math.log(m) - 0.5 * math.log(
            2 * math.pi)

    shift = centres.mean()
    hy = _grid_entropy(lambda p: logpdf(p + shift), 12.0 + scale * m, 20001, 1)
    truth = hy - 0.5 * math.log(2 * math.pi * math.e)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        x = rng.integers(0, m, n)
        return x, scale * x + rng.standard_normal(n)

    return truth, draw


def _zero_inflated(rho: float, p0: float) -> Callable[[np.random.Generator, int], Sample]:
    base = _normal(_binormal(rho), 1)

    def draw(rng: np.random.Generator, n: int) -> Sample:
        x, y = base(rng, n)
        return x, np.where(rng.random((n, 1)) < p0, 0.0, y)

    return draw


def _shear(rng: np.random.Generator, n: int) -> Sample:
    x, y = _normal(_pairs_cov(2, [0.7, 0.7]), 2)(rng, n)
    return np.stack([x[:, 0], x[:, 1] + x[:, 0] ** 2], axis=1), y


def held_out_tasks() -> list[Task]:
    """Families not used to tune ``auto`` (the docstring describes each)."""
    t_cov = _pairs_cov(3, [0.6, 0.6, 0.6])
    sm_truth, sm_draw = _sign_mixture(0.8)
    cg_truth, cg_draw = _class_gauss(8, 0.5)
    exp_cube = _transformed(np.exp, 0.6)

    def exp_cube_draw(rng: np.random.Generator, n: int) -> Sample:
        x, y = exp_cube(rng, n)
        return x, np.log(y) ** 3  # exp then log: y -> y^3 on the normal coordinate

    return [
        Task("student_t2_3x3", student_t_mi(t_cov, 3, 2.0), _student(t_cov, 3, 2.0), dim=6),
        Task("exp_cube", -0.5 * math.log(1 - 0.36), exp_cube_draw, one_d=True),
        Task("shear_2x2", _gauss_mi(_pairs_cov(2, [0.7, 0.7]), 2), _shear, dim=4),
        Task("sign_mixture", sm_truth, sm_draw, one_d=True),
        Task("class_gauss", cg_truth, cg_draw, one_d=True, kind="mixed"),
        Task("zero_inflated", 0.7 * -0.5 * math.log(1 - 0.64), _zero_inflated(0.8, 0.3),
             one_d=True),
    ]


def run_generalisation(n: int, seeds: int, log: Callable[[str], None]) -> str:
    """``auto`` and plain KSG on the tuning and the held-out families: MAE of each set."""
    ests = {"auto": _ours("auto", ci="normal"), "plain KSG (k=3)": _plain_ksg}
    lines = [f"### Generalisation of `auto` (n = {n}, {seeds} seeds, MAE in nats)", "",
             "| set | task | true MI | auto MAE | plain KSG MAE |", "|---|---|---:|---:|---:|"]
    totals: dict[str, dict[str, list[float]]] = {}
    for label, task_list in (("tuning", tasks()), ("held-out", held_out_tasks())):
        for task in task_list:
            err: dict[str, list[float]] = {k: [] for k in ests}
            for s in range(seeds):
                x, y = task.draw(np.random.default_rng(3000 + s), n)
                for k, fn in ests.items():
                    err[k].append(abs(fn(x, y, s)[0] - task.truth))
            maes = {k: float(np.mean(v)) for k, v in err.items()}
            for k, v in maes.items():
                totals.setdefault(label, {}).setdefault(k, []).append(v)
            log(f"{label:8s} {task.name:15s} I={task.truth:.3f} " + "  ".join(
                f"{k}={v:.3f}" for k, v in maes.items()))
            lines.append(f"| {label} | {task.name} | {task.truth:.3f} | {maes['auto']:.3f} | "
                         f"{maes['plain KSG (k=3)']:.3f} |")
    lines += ["", "| set | auto MAE | plain KSG MAE | ratio (target <= 0.5) |",
              "|---|---:|---:|---:|"]
    for label, t in totals.items():
        a, k = float(np.mean(t["auto"])), float(np.mean(t["plain KSG (k=3)"]))
        lines.append(f"| {label} | {a:.3f} | {k:.3f} | {a / k:.2f} |")
    return "\n".join([*lines, ""])


# --------------------------------------------------------------------------------------------
# MIST: the learned estimator on the held-out families of its meta-dataset
# --------------------------------------------------------------------------------------------

MIST_GOALS = {"mae_ratio": 0.8, "coverage": (0.90, 0.98), "width_ratio": 1.5, "ms": 50.0}


def run_mist(ns: tuple[int, ...] = (100, 300, 1000), sets: int = 30, *,
             weights: str | None = None, n_boot: int = 30, marginals: bool = False,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """MIST beside plain KSG and ``auto`` on the held-out families of its meta-dataset.

    For each ``n``, ``sets`` samples per held-out family of
    :mod:`divergences.estimate._mist_tasks` (``uniform_noise``, ``spiral``, ``shear``;
    ``d_x, d_y`` drawn in 1-5; the families' own marginals unless ``marginals``): the mean
    absolute error of MIST's median, of plain KSG (``k = 3``) and of ``auto``; the coverage
    and mean width of MIST's 95% interval; the mean width (and coverage) of KSG's bootstrap
    interval (``n_boot`` resamples; 0 skips it). Then the median time of one MIST estimate at
    ``n = 1000``, 2+2 dimensions. Returns a dict (the training record stores it) with a
    ``goals`` entry checked against ``MIST_GOALS`` (the issue's targets).
    """
    from divergences.estimate import _mist_tasks
    from divergences.estimate._mist import load_model, mist_mutual_information

    load_model.cache_clear()  # a rewritten weights file at the same path

    def quiet(**kw: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
        def run(x: np.ndarray, y: np.ndarray) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return mutual_information(x, y, **kw)
        return run

    ksg, auto = quiet(method="ksg", k=3, ci="normal"), quiet(method="auto")
    boot = quiet(method="ksg", k=3, ci="bootstrap", n_boot=n_boot)
    out: dict[str, Any] = {"sets_per_family": sets, "families": list(_mist_tasks.HELD_OUT),
                           "marginals_scrambled": marginals, "n_boot": n_boot}
    for n in ns:
        rows: dict[str, list[float]] = {k: [] for k in (
            "mist", "ksg", "auto", "cover", "width", "boot_width", "boot_cover")}
        fam_err: dict[str, list[tuple[float, float]]] = {}
        low: list[tuple[float, float]] = []
        for fam, x, y, t in _mist_tasks.held_out_suite(n, sets, seed=2024, marginals=marginals):
            e = mist_mutual_information(x, y, weights=weights, clip=False)
            k = ksg(x, y).value
            rows["mist"].append(abs(e.value - t))
            rows["ksg"].append(abs(k - t))
            rows["auto"].append(abs(auto(x, y).value - t))
            rows["cover"].append(float(e.ci_low <= t <= e.ci_high))
            rows["width"].append(e.ci_high - e.ci_low)
            fam_err.setdefault(fam, []).append((abs(e.value - t), abs(k - t)))
            if x.shape[1] + y.shape[1] <= 4:  # the low-dimensional half of the suite
                low.append((abs(e.value - t), abs(k - t)))
            if n_boot:
                b = boot(x, y)
                rows["boot_width"].append(b.ci_high - b.ci_low)
                rows["boot_cover"].append(float(b.ci_low <= t <= b.ci_high))
        m = {k: float(np.mean(v)) if v else math.nan for k, v in rows.items()}
        cell = {"mist_mae": m["mist"], "ksg_mae": m["ksg"], "auto_mae": m["auto"],
                "mae_ratio": m["mist"] / m["ksg"], "coverage": m["cover"],
                "mean_width": m["width"], "ksg_boot_width": m["boot_width"],
                "ksg_boot_coverage": m["boot_cover"],
                "width_ratio": m["width"] / m["boot_width"] if n_boot else math.nan,
                "low_dim": {"sets": len(low), "mist_mae": float(np.mean([a for a, _ in low])),
                            "ksg_mae": float(np.mean([b for _, b in low]))} if low else {},
                "per_family": {f: {"mist_mae": float(np.mean([a for a, _ in v])),
                                   "ksg_mae": float(np.mean([b for _, b in v]))}
                               for f, v in fam_err.items()}}
        out[f"n={n}"] = cell
        log(f"mist n={n:5d}  MAE mist {cell['mist_mae']:.3f}  ksg {cell['ksg_mae']:.3f}  "
            f"auto {cell['auto_mae']:.3f}  (ratio {cell['mae_ratio']:.2f})  coverage "
            f"{cell['coverage']:.2f}  width {cell['mean_width']:.2f} vs KSG bootstrap "
            f"{cell['ksg_boot_width']:.2f}  d_x+d_y<=4: {cell['low_dim'].get('mist_mae', 0):.3f}"
            f"/{cell['low_dim'].get('ksg_mae', 0):.3f}  " + "  ".join(
                f"{f} {v['mist_mae']:.2f}/{v['ksg_mae']:.2f}"
                for f, v in cell["per_family"].items()))
    rng = np.random.default_rng(5)
    x, y, _ = _mist_tasks.draw(rng, "gauss", 1, 1000, 2, 2)
    mist_mutual_information(x[0], y[0], weights=weights)  # load and warm up
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        mist_mutual_information(x[0], y[0], weights=weights)
        times.append(1e3 * (time.perf_counter() - t0))
    out["ms_n1000_2x2"] = float(np.median(times))
    g = MIST_GOALS
    cells = [out[f"n={n}"] for n in ns]
    out["goals"] = {
        "mae_ratio": all(c["mae_ratio"] <= g["mae_ratio"] for c in cells),
        "coverage": all(g["coverage"][0] <= c["coverage"] <= g["coverage"][1] for c in cells),
        "width_ratio": bool(n_boot) and all(c["width_ratio"] <= g["width_ratio"]
                                             for c in cells),
        "ms": out["ms_n1000_2x2"] <= g["ms"]}
    log(f"mist time n=1000 2+2: {out['ms_n1000_2x2']:.1f} ms; goals {out['goals']}")
    return out


# --------------------------------------------------------------------------------------------
# Estimators: (value, ci_low, ci_high) or (value, nan, nan) for peers without an interval
# --------------------------------------------------------------------------------------------

Result = tuple[float, float, float]
Estimator = Callable[[np.ndarray, np.ndarray, int], Result]

OUR_METHODS = ("auto", "ksg", "ksg2", "mixed", "gaussian", "gaussian_copula", "binned", "kde")
NEURAL = ("infonce", "nwj", "dv", "mine", "smile")
HIGH_DIM = 20
# small critics and budgets (CPU): the neural bounds are opt-in, ``--methods infonce smile``
NEURAL_OPTIONS = {"batch_size": 64, "steps": 600, "hidden": 32, "embed": 16}


def _ours(method: str, **kw: Any) -> Estimator:
    def run(x: np.ndarray, y: np.ndarray, seed: int) -> Result:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = mutual_information(x, y, method=method, seed=seed, **kw)
        return e.value, e.ci_low, e.ci_high

    return run


def _plain_ksg(x: np.ndarray, y: np.ndarray, seed: int) -> Result:
    # "plain KSG": estimator 1, k = 3, every column treated as continuous (as the peers do).
    # the local-term interval: the plain baseline, and 3x cheaper than the default bias-aware one
    return _ours("ksg", k=3, ci="normal")(x.astype(np.float64), y.astype(np.float64), seed)


def _sklearn(task: Task) -> Estimator | None:
    try:
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
    except ImportError:
        return None
    if not task.one_d:
        return None

    def run(x: np.ndarray, y: np.ndarray, seed: int) -> Result:
        if task.kind == "discrete":
            v = mutual_info_classif(x.reshape(-1, 1), y, discrete_features=True,
                                    n_neighbors=3, random_state=seed)[0]
        elif task.kind == "mixed":  # discrete feature, continuous target
            v = mutual_info_regression(x.reshape(-1, 1), y, discrete_features=True,
                                       n_neighbors=3, random_state=seed)[0]
        else:
            v = mutual_info_regression(x.reshape(-1, 1), y, n_neighbors=3,
                                       random_state=seed)[0]
        return float(v), math.nan, math.nan

    return run


def _ennemi(task: Task) -> Estimator | None:
    try:
        import ennemi
    except ImportError:
        return None
    if not task.one_d:
        return None

    def run(x: np.ndarray, y: np.ndarray, seed: int) -> Result:
        v = ennemi.estimate_mi(y.reshape(-1), x.reshape(-1), k=3, discrete_x=task.kind != "continuous",
                               discrete_y=task.kind == "discrete", max_threads=2)
        return float(np.asarray(v).reshape(-1)[0]), math.nan, math.nan

    return run


def _infomeasure(task: Task) -> Estimator | None:
    try:
        import infomeasure as im
    except ImportError:
        return None

    def run(x: np.ndarray, y: np.ndarray, seed: int) -> Result:
        if task.kind == "discrete":
            v = im.mutual_information(x, y, approach="miller_madow", base="e")
        else:
            v = im.mutual_information(x.astype(np.float64), y.astype(np.float64),
                                      approach="ksg", k=3, base="e")
        return float(v), math.nan, math.nan

    return run


def estimators(task: Task, methods: tuple[str, ...], peers: bool) -> dict[str, Estimator]:
    out: dict[str, Estimator] = {}
    for m in methods:
        if task.kind == "discrete" and m in ("ksg", "ksg2", "gaussian", "gaussian_copula",
                                            "kde"):
            continue  # continuous-only methods: integer input is a TypeError by design
        if task.kind == "mixed" and m in ("ksg", "ksg2", "kde"):
            continue
        if task.dim > HIGH_DIM and m in ("ksg", "ksg2", "mixed", "kde"):
            continue  # 50-D neighbour searches: only the plain KSG peer runs (time budget)
        if m in NEURAL and task.dim > 4:
            continue
        out[m] = _ours(m, neural_options=NEURAL_OPTIONS) if m in NEURAL else _ours(m)
    if peers:
        out["plain KSG (k=3)"] = _plain_ksg
        for name, fac in (("scikit-learn", _sklearn), ("ennemi", _ennemi),
                          ("infomeasure", _infomeasure)):
            if name == "infomeasure" and task.dim > HIGH_DIM:
                continue  # its 50-D KSG takes minutes per call
            fn = fac(task)
            if fn is not None:
                out[name] = fn
    return out


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    errors: list[float]
    covered: list[bool]
    times: list[float]

    @property
    def bias(self) -> float:
        return float(np.mean(self.errors))

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(self.errors)))

    @property
    def spread(self) -> float:
        return float(np.std(self.errors, ddof=1)) if len(self.errors) > 1 else math.nan

    @property
    def coverage(self) -> float:
        return float(np.mean(self.covered)) if self.covered else math.nan


def run_accuracy(task_list: list[Task], n: int, seeds: int, methods: tuple[str, ...],
                 peers: bool, log: Callable[[str], None]) -> dict[str, dict[str, Cell]]:
    table: dict[str, dict[str, Cell]] = {}
    for task in task_list:
        row: dict[str, Cell] = {}
        ests = estimators(task, methods, peers)
        for s in range(seeds):
            x, y = task.draw(np.random.default_rng(1000 + s), n)
            for name, fn in ests.items():
                t0 = time.perf_counter()
                try:
                    v, lo, hi = fn(x, y, s)
                except (ValueError, TypeError) as exc:  # recorded, not fatal
                    log(f"  {task.name}/{name}: {type(exc).__name__}: {exc}")
                    continue
                dt = time.perf_counter() - t0
                cell = row.setdefault(name, Cell([], [], []))
                cell.errors.append(v - task.truth)
                cell.times.append(dt)
                if not math.isnan(lo):
                    cell.covered.append(lo <= task.truth <= hi)
        table[task.name] = row
        log(f"{task.name:14s} I={task.truth:.3f}  " + "  ".join(
            f"{k}={c.bias:+.3f}" for k, c in row.items()))
    return table


def run_coverage(task_list: list[Task], n: int, seeds: int, n_boot: int,
                 log: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Coverage of the 95% interval of ``ksg`` and ``auto`` for each ``ci``.

    ``ci="auto"`` (the default) is ``"bias_aware"`` for these two (and ``"normal"`` for the
    methods without a neighbour bias); ``"normal"`` was the default before.
    """
    variants = {
        "ksg normal": dict(method="ksg", ci="normal"),
        "ksg bias_aware (default)": dict(method="ksg", ci="bias_aware"),
        "ksg bootstrap": dict(method="ksg", ci="bootstrap", n_boot=n_boot),
        "auto normal": dict(method="auto", ci="normal"),
        "auto bias_aware (default)": dict(method="auto", ci="bias_aware"),
        "auto bootstrap": dict(method="auto", ci="bootstrap", n_boot=n_boot),
    }
    if n_boot == 0:  # --n-boot 0: skip the (n_boot times costlier) bootstrap variants
        variants = {k: v for k, v in variants.items() if v["ci"] != "bootstrap"}
    out: dict[str, dict[str, float]] = {}
    for task in task_list:
        hits: dict[str, list[bool]] = {k: [] for k in variants}
        for s in range(seeds):
            x, y = task.draw(np.random.default_rng(5000 + s), n)
            for name, kw in variants.items():
                if task.kind != "continuous" and kw["method"] == "ksg":
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e = mutual_information(x, y, seed=s, **kw)
                hits[name].append(e.ci_low <= task.truth <= e.ci_high)
        out[task.name] = {k: float(np.mean(v)) for k, v in hits.items() if v}
        log(f"coverage {task.name:14s} " + "  ".join(
            f"{k}={v:.2f}" for k, v in out[task.name].items()))
    return out


def run_speed(n: int, repeats: int) -> dict[str, float]:
    """1-D KSG against scikit-learn on the same ``n`` pairs: best-of-``repeats`` seconds."""
    from sklearn.feature_selection import mutual_info_regression

    rng = np.random.default_rng(7)
    x = rng.standard_normal(n)
    y = 0.6 * x + 0.8 * rng.standard_normal(n)
    t_ours, t_sk = [], []
    v_ours = v_sk = math.nan
    for _ in range(repeats):
        t0 = time.perf_counter()
        # ci="normal": scikit-learn computes no interval (the default bias-aware one is ~3x)
        v_ours = mutual_information(x, y, method="ksg", k=3, ci="normal").value
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        v_sk = float(mutual_info_regression(x.reshape(-1, 1), y, n_neighbors=3,
                                            random_state=0)[0])
        t_sk.append(time.perf_counter() - t0)
    return {"n": n, "ours_s": min(t_ours), "sklearn_s": min(t_sk), "ours": v_ours,
            "sklearn": v_sk, "truth": -0.5 * math.log(1 - 0.36)}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _f(x: float, fmt: str = "+.3f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def report(cfg: dict[str, Any], task_list: list[Task], acc: dict[str, dict[str, Cell]],
           cov: dict[str, dict[str, float]], speed: dict[str, float] | None,
           machine: str, wall: float) -> tuple[str, bool]:
    run = (f"coverage only): n={cfg['cov_n']}, {cfg['cov_seeds']} seeds" if not acc else
           f"{'quick' if cfg['quick'] else 'full'}): n={cfg['n']}, {cfg['seeds']} seeds")
    lines = [f"## `benchmarks/mi.py` ({run}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", f"Machine: {machine}.", "",
             "The machine was shared and loaded while this ran (see the load average): times "
             "are indicative only; accuracy and coverage do not depend on load.", "",
             f"Total wall time {wall:.0f} s.", ""]
    if not acc:  # --coverage-only
        lines.append("Coverage sub-suite only (`--coverage-only`); accuracy and speed not run.")
    names: list[str] = []
    for row in acc.values():
        for k in row:
            if k not in names:
                names.append(k)
    lines += [] if not acc else ["### Bias / spread over seeds / 95% coverage / median time", "",
              "Each cell: mean error (estimate - truth) ± standard deviation over seeds; "
              "coverage of the 95% interval (ours); median seconds.", "",
              "| task | true MI | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    truths = {t.name: t.truth for t in task_list}
    for tname, row in acc.items():
        cells = []
        for k in names:
            c = row.get(k)
            if c is None:
                cells.append("n/a")
                continue
            cov_s = "" if not c.covered else f", cov {c.coverage:.0%}"
            cells.append(f"{c.bias:+.3f} ± {_f(c.spread, '.3f')}{cov_s}, "
                         f"{np.median(c.times):.2g} s")
        lines.append(f"| {tname} | {truths[tname]:.3f} | " + " | ".join(cells) + " |")

    # Summary: MAE over the suite (tasks where the estimator ran)
    lines += [] if not acc else [
        "", "### Summary over the suite", "",
        "| estimator | tasks | MAE (nats) | worst task MAE | coverage (all CIs) |",
        "|---|---|---|---|---|"]
    summary: dict[str, tuple[float, float, str, int]] = {}
    for k in names:
        cells = [(t, row[k]) for t, row in acc.items() if k in row]
        maes = [c.mae for _, c in cells]
        worst_t, worst = max(((t, c.mae) for t, c in cells), key=lambda p: p[1])
        hits = [h for _, c in cells for h in c.covered]
        summary[k] = (float(np.mean(maes)), worst, worst_t, len(cells))
        lines.append(f"| {k} | {len(cells)} | {np.mean(maes):.3f} | {worst:.3f} ({worst_t}) | "
                     f"{(f'{np.mean(hits):.0%} of {len(hits)}' if hits else '—')} |")

    ok = True
    lines += ["", "### Targets", ""] if acc or speed is not None else []
    if "auto" in summary and "plain KSG (k=3)" in summary:
        a_mae, a_worst, a_wt, _ = summary["auto"]
        k_mae = summary["plain KSG (k=3)"][0]
        t1 = a_mae <= 0.5 * k_mae
        t2 = a_worst <= 0.2
        ok &= t1 and t2
        lines.append(f"- `auto` MAE {a_mae:.3f} vs plain KSG {k_mae:.3f} (ratio "
                     f"{a_mae / k_mae:.2f}, target <= 0.5): {'PASS' if t1 else 'FAIL'}")
        lines.append(f"- `auto` worst task MAE {a_worst:.3f} ({a_wt}), target <= 0.2 nats: "
                     f"{'PASS' if t2 else 'FAIL'}")
    if speed is not None:
        ratio = speed["sklearn_s"] / speed["ours_s"]
        same = abs(speed["ours"] - speed["sklearn"]) < 5e-3
        t3 = ratio >= 2 and same
        ok &= t3
        lines.append(
            f"- 1-D KSG, n={speed['n']:,}: ours {speed['ours_s']:.3f} s, scikit-learn "
            f"{speed['sklearn_s']:.3f} s: {ratio:.1f}x (target >= 2x); values "
            f"{speed['ours']:.4f} vs {speed['sklearn']:.4f} (truth {speed['truth']:.4f}, "
            f"agreement < 0.005 nats: {same}): {'PASS' if t3 else 'FAIL'}")
    if cov:
        lines += ["", f"### Interval coverage sub-suite (n={cfg['cov_n']}, {cfg['cov_seeds']} "
                  f"seeds, bootstrap n_boot={cfg['n_boot']}; target 90-98%)", "",
                  "| task | " + " | ".join(next(iter(cov.values())).keys()) + " |",
                  "|---|" + "---|" * len(next(iter(cov.values())))]
        keys = list(next(iter(cov.values())).keys())
        for tname, row in cov.items():
            lines.append(f"| {tname} | " + " | ".join(
                f"{row[k]:.0%}" if k in row else "n/a" for k in keys) + " |")
        means = {k: np.mean([r[k] for r in cov.values() if k in r]) for k in keys}
        lines.append("| **mean** | " + " | ".join(f"**{means[k]:.0%}**" for k in keys) + " |")
    lines.append("")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mi", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="*", default=list(OUR_METHODS))
    p.add_argument("--tasks", nargs="*", default=None)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--cov-n", type=int, default=1000)
    p.add_argument("--cov-seeds", type=int, default=20)
    p.add_argument("--n-boot", type=int, default=30)
    p.add_argument("--speed-n", type=int, default=100_000)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--coverage-only", action="store_true",
                   help="run only the interval-coverage sub-suite")
    p.add_argument("--mist", action="store_true",
                   help="only MIST, plain KSG and auto on MIST's held-out families at "
                        "n = 100, 300, 1000 (printed, not recorded; --seeds sets per family)")
    p.add_argument("--mist-weights", default=None, help="a MIST .npz other than the shipped")
    p.add_argument("--generalisation", action="store_true",
                   help="only auto and plain KSG on the tuning and held-out families "
                        "(printed, not recorded)")
    a = p.parse_args(argv)
    if a.mist:
        t0 = time.perf_counter()
        res = run_mist((100, 300) if a.quick else (100, 300, 1000), 3 if a.quick else a.seeds,
                       weights=a.mist_weights, n_boot=5 if a.quick else a.n_boot)
        print(f"wall time {time.perf_counter() - t0:.0f} s")
        return 0 if all(res["goals"].values()) else 1
    if a.generalisation:
        n, seeds = (600, 2) if a.quick else (a.n, a.seeds)
        t0 = time.perf_counter()
        print(run_generalisation(n, seeds, print))
        print(f"wall time {time.perf_counter() - t0:.0f} s")
        return 0
    if a.quick:
        a.n, a.seeds, a.cov_n, a.cov_seeds, a.n_boot, a.speed_n = 600, 2, 300, 3, 5, 20_000
    cfg = dict(quick=a.quick, n=a.n, seeds=a.seeds, cov_n=a.cov_n, cov_seeds=a.cov_seeds,
               n_boot=a.n_boot)
    task_list = [t for t in tasks() if a.tasks is None or t.name in a.tasks]
    machine = machine_line(machine_info())
    t0 = time.perf_counter()
    cov_tasks = [t for t in task_list if t.name in (
        "binormal", "halfcube", "uniform_noise", "student_t", "spiral", "mixed", "dense_3x3")]
    if a.coverage_only:
        acc: dict[str, dict[str, Cell]] = {}
        cov = run_coverage(cov_tasks, a.cov_n, a.cov_seeds, a.n_boot, print)
        speed = None
    else:
        acc = run_accuracy(task_list, a.n, a.seeds, tuple(a.methods), not a.no_peers, print)
        cov = run_coverage(cov_tasks, a.cov_n, a.cov_seeds, a.n_boot, print)
        try:
            speed = run_speed(a.speed_n, 1 if a.quick else 3)
        except ImportError:
            speed = None
    md, ok = report(cfg, task_list, acc, cov, speed, machine, time.perf_counter() - t0)
    print(md)
    if not a.no_record:
        out = Path(a.out)
        prev = out.read_text() if out.exists() else "# Mutual-information benchmark results\n\n"
        out.write_text(prev.rstrip("\n") + "\n\n" + md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
