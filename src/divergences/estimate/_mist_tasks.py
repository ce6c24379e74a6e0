r"""The MIST meta-dataset: families of joint distributions whose mutual information is known.

Each family draws ``b`` independent sets of ``n`` rows, ``x`` of shape ``(b, n, d_x)`` and ``y``
of shape ``(b, n, d_y)``, each set from its own randomly drawn member of the family, and
returns the exact MI of each member in nats, ``(b,)``. Training (``scripts/train_mist.py``),
the held-out evaluation there, the tests and ``benchmarks/mi.py`` all draw from here, so a
family's formula lives in one place.

Every family is built on a *latent* pair ``(u, v)`` with ``u`` in ``R^{d_x}``, ``v`` in
``R^{d_y}``, followed by maps of each side on its own that are invertible, which leave the MI
unchanged: :math:`I(f(U); g(V)) = I(U; V)` for bijections ``f``, ``g``.

Latent Gaussian (``_latent_gauss``): ``k`` canonical pairs ``corr(u_i, v_i) = rho_i``, all other
coordinates independent standard normals, so
:math:`I = -\tfrac12 \sum_i \log(1 - \rho_i^2)`. The total ``T`` is drawn first, ``U(0, 4)``
nats (with probability 0.1 exactly 0), and split over the ``k = 1..min(d_x, d_y)`` pairs by a
flat Dirichlet; ``rho_i = sqrt(1 - exp(-2 I_i))``.

Side maps (``_mix``): ``dense``, a random invertible matrix ``Q_1 diag(e^{s}) Q_2`` with
``s ~ U(-1, 1)`` (every column of ``x`` depends on every latent one); ``sparse``, a random
permutation of the columns (the dependence sits in a few columns); ``block``, a random
rotation within each block of a random partition of the columns into blocks of 1-3.

Families (``FAMILIES``; ``held_out=True`` ones are never drawn in training):

``gauss``          the latent Gaussian with a ``dense``, ``sparse`` or ``block`` map per side
                   (one kind per set, drawn uniformly).
``student``        the latent Gaussian times ``sqrt(nu / chi2_nu)`` (one draw per row, shared by
                   both sides: a multivariate t with ``nu`` log-uniform in ``[1, 30]``), then
                   the side maps. With ``d = d_x + d_y`` and
                   ``f(m) = (nu+m)/2 psi((nu+m)/2) - log Gamma((nu+m)/2)``,
                   :math:`I = I_\mathrm{gauss} + f(d_x) + f(d_y) - f(d) - f(0)`
                   (the difference of multivariate-t entropies; the marginals of a t are t
                   with the same ``nu``). Heavy tails and tail dependence.
``class_mix``      discrete-continuous: ``K`` uniform on ``{0..m-1}``, ``m`` in 2..8; the first
                   latent ``x`` column is ``K + U(0, 1)`` or, for half of the sets, ``K``
                   itself (a float column with ties); the first latent ``y`` column is
                   ``s K + N(0, 1)`` with ``s`` log-uniform in ``[0.2, 3]``; other columns
                   independent normals; then the side maps (``sparse`` for a tied ``x``, to
                   keep its ties). ``x`` determines ``K`` and ``y`` depends on ``x`` only
                   through ``K``, so :math:`I = I(K; Y_1) = h(Y_1) - \tfrac12\log(2\pi e)`,
                   ``h(Y_1)`` (a Gaussian mixture) by 1-D quadrature. A mixture with
                   computable MI.
``gauss_noise``    additive noise: ``m`` pairs ``u_i ~ U(0, 1)``, ``v_i = u_i + sigma_i Z``,
                   ``sigma_i`` log-uniform in ``[0.03, 1]``, other columns independent
                   normals, then the side maps; :math:`I = \sum_i h(V_i) - \tfrac12
                   \log(2\pi e \sigma_i^2)` with ``h(V_i)`` (density
                   ``Phi(v/sigma) - Phi((v-1)/sigma)``) by quadrature.
``halfcube_rot``   ``gauss`` or ``student`` with each side sent through the coordinatewise
                   half-cube ``t -> sign(t)|t|^{3/2}`` and then a random rotation: invertible
                   and nonlinear, and (unlike a coordinatewise map alone) not removed by the
                   estimator's per-column ranks.
``flow``           ``gauss``, ``student``, ``gauss_noise`` or ``class_mix`` (one drawn per step)
                   with each side sent through 1-3 layers of a coordinatewise strictly
                   increasing map (half-cube, ``t + a sign(t)|t|^p`` with ``p`` in
                   ``[1.2, 2]``, ``asinh(a t)/a`` or ``t + a tanh(c t)``, one kind and
                   parameter per layer) followed by a random
                   rotation: a random invertible flow, so the MI is the base family's, and
                   a broad class of non-Gaussian copulas (the issue's "invertible nonlinear
                   maps of all of these"). Not the held-out maps: those rotate by a
                   norm-dependent angle or add a square of another column.
``uniform_noise``  (held out) additive uniform noise: ``m = 1..min(d_x, d_y, 2)`` pairs
                   ``u_i ~ U(0, 1)``, ``v_i = u_i + U(-e_i, e_i)``, ``e_i`` log-uniform in
                   ``[0.05, 0.5]``, other columns ``U(0, 1)``, then a random rotation of each
                   side; :math:`I = \sum_i e_i - \log(2 e_i)` (``2 e <= 1``).
``spiral``         (held out) ``gauss`` (dense map) then, on a side with at least two columns,
                   the first two rotated by the angle ``a |w|`` (``w`` that side's row,
                   ``a ~ U(0.5, 2)``): norm-preserving and invertible. Needs
                   ``max(d_x, d_y) >= 2``.
``shear``          (held out) ``student`` (``nu`` in ``[2, 30]``, block map) then, on a side with
                   at least two columns, ``w_2 -> w_2 + c w_1^2``, ``c ~ U(0.5, 1.5)``
                   (invertible, volume-preserving). Needs ``max(d_x, d_y) >= 2``.

``marginals`` (``draw(..., marginals=True)``): each column of the result then goes through a
random strictly increasing map of the standardised column (``exp(asinh(.))``, cube,
``Phi``, ``asinh`` or the identity). This is a
no-op for an estimator that reads ranks (MIST), and changes what KSG sees (for the worse,
usually); the held-out evaluation keeps the families' own marginals by default, the
comparison most favourable to KSG.

Seeded: every draw takes a ``numpy.random.Generator``; nothing else is random.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["FAMILIES", "HELD_OUT", "TRAIN", "Draw", "Family", "draw", "draw_dims",
           "held_out_suite", "student_t_offset"]

MAX_DIM = 5  # columns per side the meta-dataset covers
MAX_MI = 4.0  # total MI of the latent Gaussian, nats
LOG_2PI_E = math.log(2.0 * math.pi * math.e)

Draw = tuple[np.ndarray, np.ndarray, np.ndarray]  # x (b, n, dx), y (b, n, dy), MI (b,) nats


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _side_map(rng: np.random.Generator, d: int, kind: str) -> np.ndarray:
    """An invertible ``(d, d)`` matrix of the given kind (see the module notes)."""
    if kind == "dense":
        return _rotation(rng, d) @ np.diag(np.exp(rng.uniform(-1.0, 1.0, d))) @ _rotation(rng, d)
    if kind == "sparse":
        return np.eye(d)[rng.permutation(d)]
    if kind == "block":
        out = np.zeros((d, d))
        perm = rng.permutation(d)
        i = 0
        while i < d:
            size = int(rng.integers(1, 4))
            idx = perm[i:i + size]
            out[np.ix_(idx, idx)] = _rotation(rng, len(idx))
            i += size
        return out
    raise ValueError(f"unknown side map {kind!r}")


def _mix(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, kinds: tuple[str, ...]
         ) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random side map per set (kind drawn from ``kinds``) to ``u`` and ``v``."""
    x, y = np.empty_like(u), np.empty_like(v)
    for i in range(u.shape[0]):
        kind = kinds[int(rng.integers(len(kinds)))]
        x[i] = u[i] @ _side_map(rng, u.shape[-1], kind).T
        y[i] = v[i] @ _side_map(rng, v.shape[-1], kind).T
    return x, y


def _latent_gauss(rng: np.random.Generator, b: int, n: int, dx: int, dy: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical-form Gaussian pairs: ``u``, ``v`` and the exact MI of each set."""
    kmax = min(dx, dy)
    rho = np.zeros((b, kmax))
    truth = np.zeros(b)
    for i in range(b):
        if rng.random() < 0.1:
            continue  # independence, exactly
        k = int(rng.integers(1, kmax + 1))
        parts = rng.dirichlet(np.ones(k)) * rng.uniform(0.0, MAX_MI)
        rho[i, :k] = np.sqrt(-np.expm1(-2.0 * parts)) * rng.choice([-1.0, 1.0], k)
        truth[i] = -0.5 * np.sum(np.log1p(-rho[i, :k] ** 2))
    u = rng.standard_normal((b, n, dx))
    v = rng.standard_normal((b, n, dy))
    r = rho[:, None, :]
    v[..., :kmax] = r * u[..., :kmax] + np.sqrt(1.0 - r**2) * v[..., :kmax]
    return u, v, truth


def student_t_offset(nu: float | np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``I_t - I_gauss`` of a multivariate t with ``nu`` degrees of freedom (closed form)."""
    nu = np.asarray(nu, dtype=np.float64)

    def f(m: int) -> np.ndarray:
        a = (nu + m) / 2.0
        return a * special.digamma(a) - special.gammaln(a)

    return f(dx) + f(dy) - f(dx + dy) - f(0)


def _gauss_mixture_entropy(centres: np.ndarray, sigma: float = 1.0, grid: int = 2001) -> float:
    """``h`` of the equal-weight mixture of ``N(c, sigma^2)``, by the midpoint rule."""
    t = np.linspace(centres.min() - 9 * sigma, centres.max() + 9 * sigma, grid)
    z = (t[:, None] - centres[None, :]) / sigma
    logp = (special.logsumexp(-0.5 * z * z, axis=1) - math.log(len(centres))
            - 0.5 * math.log(2 * math.pi) - math.log(sigma))
    return float(-np.sum(np.exp(logp) * logp) * (t[1] - t[0]))


def _uniform_plus_normal_entropy(sigma: float, grid: int = 2001) -> float:
    """``h(U + sigma Z)``, ``U ~ U(0, 1)``: density ``Phi(t / sigma) - Phi((t - 1) / sigma)``."""
    t = np.linspace(-8 * sigma, 1 + 8 * sigma, grid)
    p = special.ndtr(t / sigma) - special.ndtr((t - 1.0) / sigma)
    return float(-np.sum(special.xlogy(p, p)) * (t[1] - t[0]))


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


def _gauss(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = _latent_gauss(rng, b, n, dx, dy)
    x, y = _mix(rng, u, v, ("dense", "sparse", "block"))
    return x, y, truth


def _student_latent(rng: np.random.Generator, b: int, n: int, dx: int, dy: int,
                    nu_low: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, v, truth = _latent_gauss(rng, b, n, dx, dy)
    nu = np.exp(rng.uniform(math.log(nu_low), math.log(30.0), b))
    w = np.sqrt(nu[:, None, None] / rng.chisquare(nu[:, None, None], size=(b, n, 1)))
    return u * w, v * w, truth + student_t_offset(nu, dx, dy)


def _student(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = _student_latent(rng, b, n, dx, dy)
    x, y = _mix(rng, u, v, ("dense", "sparse", "block"))
    return x, y, truth


def _class_mix(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    x, y, truth = np.empty((b, n, dx)), np.empty((b, n, dy)), np.empty(b)
    for i in range(b):
        m = int(rng.integers(2, 9))
        s = math.exp(rng.uniform(math.log(0.2), math.log(3.0)))
        tied = rng.random() < 0.5
        k = rng.integers(0, m, n).astype(np.float64)
        u = rng.standard_normal((n, dx))
        v = rng.standard_normal((n, dy))
        u[:, 0] = k if tied else k + rng.random(n)
        v[:, 0] = s * k + rng.standard_normal(n)
        kind = "sparse" if tied else ("dense", "sparse", "block")[int(rng.integers(3))]
        x[i] = u @ _side_map(rng, dx, kind).T
        y[i] = v @ _side_map(rng, dy, kind).T
        truth[i] = _gauss_mixture_entropy(s * np.arange(m)) - 0.5 * LOG_2PI_E
    return x, y, truth


def _gauss_noise(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = rng.standard_normal((b, n, dx)), rng.standard_normal((b, n, dy)), np.zeros(b)
    for i in range(b):
        m = int(rng.integers(1, min(dx, dy) + 1))
        sig = np.exp(rng.uniform(math.log(0.03), 0.0, m))
        u[i, :, :m] = rng.random((n, m))
        v[i, :, :m] = u[i, :, :m] + sig * rng.standard_normal((n, m))
        truth[i] = sum(_uniform_plus_normal_entropy(float(s)) - 0.5 * LOG_2PI_E
                       - math.log(float(s)) for s in sig)
    x, y = _mix(rng, u, v, ("dense", "sparse", "block"))
    return x, y, truth


def _halfcube(t: np.ndarray) -> np.ndarray:
    return np.sign(t) * np.abs(t) ** 1.5


def _halfcube_rot(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = (_gauss if rng.random() < 0.5 else _student)(rng, b, n, dx, dy)
    x, y = np.empty_like(u), np.empty_like(v)
    for i in range(b):
        x[i] = _halfcube(u[i]) @ _rotation(rng, dx).T
        y[i] = _halfcube(v[i]) @ _rotation(rng, dy).T
    return x, y, truth


# Strictly increasing bijections of R, drawn per layer with their parameter: expanding,
# compressing and locally bent shapes; growth at most |t|^2 a layer, so three layers on a
# Cauchy sample's largest values (1e12 at most in practice) stay finite in float64.
_MONO_KINDS = ("halfcube", "power", "asinh", "tanh_bump")


def _monotone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    kind = _MONO_KINDS[int(rng.integers(len(_MONO_KINDS)))]
    if kind == "halfcube":
        return _halfcube(t)
    if kind == "power":
        return t + rng.uniform(0.1, 1.0) * np.sign(t) * np.abs(t) ** rng.uniform(1.2, 2.0)
    if kind == "asinh":
        a = rng.uniform(0.5, 3.0)
        return np.arcsinh(a * t) / a
    a, c = rng.uniform(0.5, 2.0), rng.uniform(1.0, 4.0)
    return t + a * np.tanh(c * t)


def _flow(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    base = (_gauss, _student, _gauss_noise, _class_mix)[int(rng.integers(4))]
    u, v, truth = base(rng, b, n, dx, dy)
    x, y = np.empty_like(u), np.empty_like(v)
    for i in range(b):
        for src, dst, d in ((u, x, dx), (v, y, dy)):
            w = src[i]
            for _ in range(int(rng.integers(1, 4))):
                w = _monotone(rng, w) @ _rotation(rng, d).T
            dst[i] = w
    return x, y, truth


def _uniform_noise(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    x, y, truth = rng.random((b, n, dx)), rng.random((b, n, dy)), np.zeros(b)
    for i in range(b):
        m = int(rng.integers(1, min(dx, dy, 2) + 1))
        eps = np.exp(rng.uniform(math.log(0.05), math.log(0.5), m))
        y[i, :, :m] = x[i, :, :m] + rng.uniform(-eps, eps, (n, m))
        truth[i] = float(np.sum(eps - np.log(2.0 * eps)))
        x[i] = x[i] @ _rotation(rng, dx).T
        y[i] = y[i] @ _rotation(rng, dy).T
    return x, y, truth


def _on_wide_side(x: np.ndarray, y: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``fn`` (on ``(b, n, d >= 2)``) to ``x`` if it has two columns, else to ``y``."""
    if x.shape[-1] >= 2:
        return fn(x), y
    return x, fn(y)


def _spiral(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = _latent_gauss(rng, b, n, dx, dy)
    x, y = _mix(rng, u, v, ("dense",))
    speed = rng.uniform(0.5, 2.0, (b, 1))

    def spin(w: np.ndarray) -> np.ndarray:
        w = w.copy()
        a = speed * np.linalg.norm(w, axis=-1)
        c, s = np.cos(a), np.sin(a)
        w[..., 0], w[..., 1] = c * w[..., 0] - s * w[..., 1], s * w[..., 0] + c * w[..., 1]
        return w

    x, y = _on_wide_side(x, y, spin)
    return x, y, truth


def _shear(rng: np.random.Generator, b: int, n: int, dx: int, dy: int) -> Draw:
    u, v, truth = _student_latent(rng, b, n, dx, dy, nu_low=2.0)
    x, y = _mix(rng, u, v, ("block",))
    c = rng.uniform(0.5, 1.5, (b, 1))

    def shear(w: np.ndarray) -> np.ndarray:
        w = w.copy()
        w[..., 1] = w[..., 1] + c * w[..., 0] ** 2
        return w

    x, y = _on_wide_side(x, y, shear)
    return x, y, truth


@dataclass(frozen=True)
class Family:
    """A family of joint distributions with known MI (see the module notes)."""

    name: str
    sample: Callable[[np.random.Generator, int, int, int, int], Draw]
    held_out: bool = False
    min_wide: int = 1  # max(d_x, d_y) must be at least this


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gauss", _gauss),
    Family("student", _student),
    Family("class_mix", _class_mix),
    Family("gauss_noise", _gauss_noise),
    Family("halfcube_rot", _halfcube_rot),
    Family("flow", _flow),
    Family("uniform_noise", _uniform_noise, held_out=True),
    Family("spiral", _spiral, held_out=True, min_wide=2),
    Family("shear", _shear, held_out=True, min_wide=2),
)}
TRAIN = tuple(k for k, f in FAMILIES.items() if not f.held_out)
HELD_OUT = tuple(k for k, f in FAMILIES.items() if f.held_out)

_MONOTONE: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    lambda t: t, lambda t: np.exp(np.arcsinh(t)), lambda t: t**3, special.ndtr, np.arcsinh)


def draw_dims(rng: np.random.Generator, family: str, max_dim: int = MAX_DIM) -> tuple[int, int]:
    """``(d_x, d_y)`` uniform on ``1..max_dim`` each, redrawn until the family accepts it."""
    need = FAMILIES[family].min_wide
    while True:
        dx, dy = (int(v) for v in rng.integers(1, max_dim + 1, 2))
        if max(dx, dy) >= need:
            return dx, dy


def draw(rng: np.random.Generator, family: str, b: int, n: int, dx: int, dy: int, *,
         marginals: bool = False) -> Draw:
    """``b`` sets of ``n`` rows from ``family`` in ``d_x + d_y`` dimensions, with their MI."""
    fam = FAMILIES[family]
    if max(dx, dy) < fam.min_wide:
        raise ValueError(f"family {family!r} needs a side with at least {fam.min_wide} "
                         f"columns; got d_x={dx}, d_y={dy}")
    x, y, truth = fam.sample(rng, b, n, dx, dy)
    if marginals:
        x, y = x.copy(), y.copy()
        for a in (x, y):
            for i in range(b):
                for j in range(a.shape[-1]):
                    col = a[i, :, j]
                    a[i, :, j] = _MONOTONE[int(rng.integers(len(_MONOTONE)))](
                        (col - col.mean()) / (col.std() + 1e-12))
    return x, y, truth


def held_out_suite(n: int, sets: int, seed: int, *, marginals: bool = False
                   ) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``sets`` single samples per held-out family at size ``n``: ``(family, x, y, MI)``.

    Dimensions are drawn per set (1-5 per side, as :func:`draw_dims`). By default the
    families' own marginals are kept (the comparison most favourable to KSG, which is not
    invariant to them); ``marginals=True`` scrambles them. Deterministic in the arguments.
    """
    out = []
    for j, fam in enumerate(HELD_OUT):
        rng = np.random.default_rng([seed, n, j])
        for _ in range(sets):
            dx, dy = draw_dims(rng, fam)
            x, y, t = draw(rng, fam, 1, n, dx, dy, marginals=marginals)
            out.append((fam, x[0], y[0], float(t[0])))
    return out
