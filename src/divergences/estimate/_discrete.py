"""Estimators for discrete data (symbols coded 0..K-1).

Entropy from counts ``c_1..c_K`` of ``n`` samples, ``p_i = c_i / n``:

``plugin``
    ``H = -sum p_i log p_i`` (computed by :func:`divergences.entropy`). Biased down by about
    ``(K - 1) / (2n)``.
``miller_madow``
    ``plugin + (K_obs - 1) / (2n)`` with ``K_obs`` the number of observed symbols.
``grassberger``
    Grassberger (2003), eq. 35: ``log n - (1/n) sum c_i G(c_i)`` with
    ``G(c) = psi(c) + (-1)^c (psi((c+1)/2) - psi(c/2)) / 2``.
``chao_shen``
    Chao & Shen (2003): coverage ``C = 1 - f_1/n`` (``f_1`` singletons, set to ``n - 1`` when
    every symbol is a singleton), ``q_i = C p_i``, ``H = -sum q_i log q_i / (1 - (1 - q_i)^n)``
    (Horvitz-Thompson weighting of unseen mass).
``jackknife``
    ``n H - (n - 1) mean_i H_{-i}`` with ``H_{-i}`` the plug-in entropy without sample ``i``
    (Zahl 1977); computed from the counts in ``O(K)``.
``nsb``
    Nemenman, Shafee & Bialek (2002): Bayesian, a mixture of Dirichlet priors that is flat in
    the prior expected entropy; needs the alphabet size ``K``. See :func:`nsb_entropy`.

Standard errors: the delta method for all but ``jackknife`` and ``nsb``,
``se^2 = (sum p_i log^2 p_i - H^2) / n`` (the variance of ``-log p(X)`` over ``n``; the same
first-order variance holds for every bias-corrected variant), plus for ``grassberger`` the
variance of its parity term, ``sum_i (c_i h_i / n)^2`` with
``h_i = (psi((c_i+1)/2) - psi(c_i/2)) / 2``; the jackknife variance
``(n-1)/n sum_i (H_{-i} - mean)^2`` for ``jackknife``; the posterior standard deviation for
``nsb``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ._result import Estimate, add_null_variance, from_local, make

ENTROPY_METHODS = ("plugin", "miller_madow", "grassberger", "chao_shen", "jackknife", "nsb")


def _plugin_entropy(counts: np.ndarray) -> float:
    """The exact entropy of the empirical distribution, ``-sum p log p`` with ``p = c / n``.

    Every term is non-negative (no cancellation); empty cells are dropped (``0 log 0 = 0``).
    Counts are finite, so the core's NaN and infinity handling has nothing to do here, and
    NumPy work stays torch-free (the core's NumPy path is issue 16's work).
    """
    c = counts[counts > 0].astype(np.float64)
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    return float(-np.sum(p * np.log(p)))


def _xlogx(c: np.ndarray) -> np.ndarray:
    return special.xlogy(c, c)


def entropy_from_codes(code: np.ndarray, k_sym: int, method: str, level: float,
                       alphabet: int | None = None) -> Estimate:
    n = code.shape[0]
    counts = np.bincount(code, minlength=k_sym).astype(np.float64)
    counts = counts[counts > 0]
    if method == "nsb":
        if alphabet is None:
            raise ValueError("method='nsb' needs alphabet_size (the number of possible symbols)")
        if alphabet < counts.size:
            raise ValueError(f"alphabet_size={alphabet} is smaller than the {counts.size} "
                             "distinct symbols observed")
        return nsb_entropy(counts, alphabet, level)
    p = counts / n
    h_plug = _plugin_entropy(counts)
    local = -np.log(p)
    var = float(np.sum(p * local**2) - h_plug**2)
    stderr = math.sqrt(max(var, 0.0) / n)
    details: dict = {"symbols": int(counts.size)}
    if method == "plugin":
        value = h_plug
    elif method == "miller_madow":
        value = h_plug + (counts.size - 1) / (2.0 * n)
    elif method == "grassberger":
        c = counts
        half = 0.5 * (special.digamma((c + 1) / 2.0) - special.digamma(c / 2.0))
        g = special.digamma(c) + (-1.0) ** c * half
        value = float(math.log(n) - np.sum(c * g) / n)
        # The parity term flips sign with each count: a variance of its own, about
        # sum (c_i / n * half_i)^2, that the delta method misses (uniform over 10 symbols,
        # n = 1000: spread 0.0032 against a delta-method stderr of 0.0028; 82% coverage).
        stderr = math.sqrt(stderr**2 + float(np.sum((c * half / n) ** 2)))
    elif method == "chao_shen":
        f1 = float(np.sum(counts == 1))
        if f1 == n:
            f1 = n - 1.0
        coverage = 1.0 - f1 / n
        q = coverage * p
        denom = -np.expm1(n * np.log1p(-q))  # 1 - (1 - q)^n, accurate for small q
        value = float(-np.sum(special.xlogy(q, q) / denom))
        details["coverage"] = coverage
    elif method == "jackknife":
        if n < 2:
            raise ValueError("jackknife entropy needs at least 2 samples; got n=1")
        s = float(np.sum(_xlogx(counts)))
        h_minus = math.log(n - 1) - (s - _xlogx(counts) + _xlogx(counts - 1)) / (n - 1)
        mean_minus = float(np.sum(counts * h_minus) / n)
        value = n * h_plug - (n - 1) * mean_minus
        var_j = (n - 1) / n * float(np.sum(counts * (h_minus - mean_minus) ** 2))
        stderr = math.sqrt(max(var_j, 0.0))
        return make(value, stderr, method, n, level=level, details=details)
    else:  # pragma: no cover - checked by the caller
        raise ValueError(method)
    return make(value, stderr, method, n, level=level, details=details)


def _bincount_logp(code: np.ndarray, k_sym: int) -> np.ndarray:
    counts = np.bincount(code, minlength=k_sym)
    return np.log(counts[code] / code.shape[0])


SHUFFLES = 20  # permutations behind the shuffle correction and the null variance


def _plugin_mi(cx: np.ndarray, cy: np.ndarray, ky: int) -> tuple[float, float]:
    """Plug-in MI of two code arrays and its delete-one jackknife variance.

    Deleting one draw from cell ``(i, j)`` changes ``n``, ``c_i``, ``c_j`` and ``c_ij`` by
    one; with ``S(c) = sum c log c`` each plug-in entropy of ``n - 1`` draws is
    ``log(n-1) - (S - c log c + (c-1) log(c-1)) / (n-1)``, so the ``n`` leave-one-out values
    take one value per occupied cell: ``O(cells)``.
    """
    n = cx.shape[0]
    cells, w = np.unique(cx * ky + cy, return_counts=True)
    nx, ny = np.bincount(cx), np.bincount(cy)
    ci, cj = nx[cells // ky].astype(np.float64), ny[cells % ky].astype(np.float64)
    w = w.astype(np.float64)
    sx, sy, sxy = (float(np.sum(_xlogx(c.astype(np.float64)))) for c in (nx, ny, w))
    plug = (sxy - sx - sy) / n + math.log(n)

    def drop(c: np.ndarray) -> np.ndarray:
        return _xlogx(c - 1.0) - _xlogx(c)

    m = n - 1
    if m == 0:
        return plug, math.inf
    loo = ((sxy + drop(w)) - (sx + drop(ci)) - (sy + drop(cj))) / m + math.log(m)
    mean = float(np.sum(w * loo) / n)
    return plug, (n - 1) / n * float(np.sum(w * (loo - mean) ** 2))


def mutual_information_codes(cx: np.ndarray, kx: int, cy: np.ndarray, ky: int,
                             level: float, seed: int | None = 0) -> Estimate:
    r"""Discrete MI built for sparse tables: three bias corrections, the outlier set aside.

    ``cx``, ``cy``: codes of the ``n`` paired symbols. With ``K_x``, ``K_y``, ``K_xy`` the
    observed symbol and cell counts:

    * ``I_NSB = H_NSB(X) + H_NSB(Y) - H_NSB(X, Y)``, each :func:`nsb_entropy` with the
      alphabets ``K_x``, ``K_y`` and ``K_x K_y`` (the NSB prior is flat in the entropy, so it
      does not force the joint entropy low in an undersampled table as the plug-in does);
    * ``I_shuffle = I_plugin - mean_b I_plugin(x, perm_b(y))`` over ``B = 20`` seeded
      permutations (Panzeri et al.'s shuffle correction: the permuted tables keep both
      marginals and have no dependence, so their mean is the plug-in's bias at
      independence, whatever the sparsity);
    * ``I_MM = I_plugin + (K_x + K_y - K_xy - 1) / (2n)`` (Miller-Madow).

    They fail in different directions: Miller-Madow reads high in a sparse table (+0.10 to
    +0.16 nats at 30 x 30 symbols and n = 1,500), the shuffle correction low under strong
    dependence (it subtracts the bias of a fully spread table: -0.45 nats for
    ``Y = X + U{0..3} mod 64`` at n = 5,000, where only 256 of 4,096 cells can be hit), NSB
    either way when the joint probabilities are far from exchangeable (-0.04 on a 20 x 20
    noisy diagonal). The value is the mean of the two that lie closest together, the third
    set aside as the outlier (``details["pair"]``). Where the occupied cells hold 10 draws
    each on average (``n >= 10 K_xy``) Miller-Madow is accurate and joins the interval's ends
    in any case: it is the one that is right for a deterministic relation (``I(X; X)``),
    where both others read a little low.

    Standard error: ``se^2 = max(J - J_0, 0) + s_v^2 + s_0^2 / B``, with ``J`` the delete-one
    jackknife variance of the plug-in MI (computed per cell, ``O(cells)``), ``J_0`` its mean
    over the permuted tables, ``s_v`` the standard deviation of the value itself on the
    permuted tables (the same rule applied to their three corrections; only the joint NSB
    entropy changes under a permutation) and ``s_0`` that of the permuted plug-in values
    (the shuffle mean's sampling error). The jackknife overstates a sparse table's variance
    near independence (1.3-1.9x), so only what dependence adds to it, ``J - J_0``, is
    taken from it; at independence the value varies about 0.7x as much as the plug-in
    (``s_v`` against ``s_0``). The interval (``ci_method="union"``) is centred between the
    ends (the pair, and Miller-Madow where it joins) and adds in quadrature ``z se``, half
    their gap, and the rule's bias on the permuted tables (``details["null_value_mean"]``,
    within 0.001-0.002 nats of the measured bias at independence): two biases of unknown
    sign, independent of the sampling error.

    Measured (``python -m benchmarks.coverage --sparse-mi-only``, 200 draws per table,
    default 95% interval; bias, coverage, mean width; Miller-Madow's bias after the slash):

    ==========  ================  ======  ========  ========  =====  ========
    table, n    task              I       bias      coverage  width  MM bias
    ==========  ================  ======  ========  ========  =====  ========
    30x30 1500  independent       0       +0.0036   97.0%     0.044  +0.102
    30x30 1500  noisy channel     1.081   -0.0039   93.5%     0.166  +0.163
    30x30 1500  Zipf channel      0.871   -0.0149   95.5%     0.172  +0.130
    30x30 1500  independent Zipf  0       +0.0098   90.5%     0.052  +0.137
    20x20 2000  independent       0       +0.0028   95.5%     0.023  +0.005
    20x20 2000  noisy channel     0.905   +0.0095   97.5%     0.137  +0.016
    20x20 2000  Zipf channel      0.746   -0.0131   93.5%     0.128  +0.035
    20x20 2000  independent Zipf  0       -0.0036   94.5%     0.031  +0.031
    ==========  ================  ======  ========  ========  =====  ========

    (noisy channel: ``Y = X`` with probability 1/2, else uniform; Zipf: the same with
    Zipf(1) marginals for ``X`` and the noise.) Before the value's own null spread and the
    quadrature, 30 x 30 independent covered 100% (an interval 1.7x too wide) and 20 x 20
    noisy channel 99%. Sparser still, at 8 x 8 and 10 x 10 symbols with 2 draws per cell
    (40 draws per table), the bias stayed within 0.025 nats; on ``Y = X + U{0..3} mod 64``
    the error was -0.002 at n = 5,000 and -0.068 at n = 600 (0.15 draws per cell, beyond
    what any of the three corrects). The former default, the Miller-Madow value
    (``details["miller_madow"]``), was +0.10 to +0.16 nats high at 30 x 30. Cost: 20
    permutations of the table, each with a mean-only joint NSB integral (400 grid points,
    0.4 ms), and three full NSB integrals: 32 ms at 30 x 30, n = 1,500 (28 ms before the
    permuted tables' NSB; a busy 2-core machine).
    """
    n = cx.shape[0]
    kx_obs, ky_obs = int(np.unique(cx).size), int(np.unique(cy).size)
    plug, jack = _plugin_mi(cx, cy, ky)
    cxy = np.unique(cx * ky + cy, return_inverse=True)[1].reshape(-1)
    kxy = int(cxy.max()) + 1
    mm = plug + (kx_obs + ky_obs - kxy - 1) / (2.0 * n)
    if kx_obs == 1 or ky_obs == 1:  # a constant side: I = 0 exactly
        return make(0.0, 0.0, "discrete", n, level=level, ci=(0.0, 0.0), ci_method="exact",
                    details={"plugin": 0.0, "symbols": (kx_obs, ky_obs, kxy)})
    rng = np.random.default_rng(None if seed is None else [seed, 7])
    kxy_all = kx_obs * ky_obs
    null, null_jack = np.empty(SHUFFLES), np.empty(SHUFFLES)
    null_hxy, null_cells = np.empty(SHUFFLES), np.empty(SHUFFLES)
    for b in range(SHUFFLES):
        perm = rng.permutation(cy)
        null[b], null_jack[b] = _plugin_mi(cx, perm, ky)
        counts = np.bincount(cx * ky + perm).astype(np.float64)
        counts = counts[counts > 0]
        # the permuted table's joint NSB entropy, mean only (400 grid points agree with
        # 2,000 to 1e-15): a permutation keeps both marginals, so only the joint changes
        null_hxy[b] = _nsb(counts, kxy_all, 400, False)[0]
        null_cells[b] = counts.size
    shuffle = plug - float(np.mean(null))

    def h(codes: np.ndarray, alphabet: int) -> float:
        counts = np.bincount(codes).astype(np.float64)
        return nsb_entropy(counts[counts > 0], alphabet, level).value

    hx_hy = h(cx, kx_obs) + h(cy, ky_obs)
    nsb = hx_hy - h(cxy, max(kxy_all, kxy))
    value, pair = _closest_pair_mean(nsb, shuffle, mm)
    # The value's own spread at independence: the same rule applied to the permuted tables'
    # three corrections. It is about 0.7x the plug-in's permutation spread s0 (NSB varies
    # less than the plug-in), which as the standard error gave 100% coverage at 30 x 30.
    null_values = np.array([
        _closest_pair_mean(hx_hy - null_hxy[b], null[b] - float(np.mean(null)),
                           null[b] + (kx_obs + ky_obs - null_cells[b] - 1) / (2.0 * n))[0]
        for b in range(SHUFFLES)])
    s0 = float(np.std(null, ddof=1))
    sv0 = float(np.std(null_values, ddof=1))
    # variance = what dependence adds to the plug-in's jackknife variance beyond its value at
    # independence (the jackknife overstates a sparse table's spread there: 1.3-1.9x), plus
    # the value's own spread at independence, plus the shuffle mean's sampling error
    dependence = max(jack - float(np.mean(null_jack)), 0.0)
    stderr = math.sqrt(dependence + sv0**2 + s0**2 / SHUFFLES)
    z = float(special.ndtri(0.5 + level / 2.0))
    # Where every occupied cell holds 10 draws on average, the Miller-Madow value is
    # accurate too (at 5 per cell it was still +0.016 to +0.035 nats high) and it is the one
    # that is right for a deterministic relation, where both others read low (they expect
    # spread mass): it joins the union there. In a sparse table it is far too high.
    ends = (*pair, mm) if n >= 10 * kxy else pair
    # Two biases of unknown sign, independent of the sampling error, add in quadrature around
    # the middle of the ends: the corrections' disagreement, and the rule's bias on the
    # permuted tables (the mean of their values: within 0.001 of the measured bias at
    # independence, e.g. +0.0093 against +0.0079 for 30 x 30 Zipf marginals). Added
    # linearly, the 20 x 20 noisy channel covered 99%; without the second, 30 x 30
    # independent Zipf covered 89.5%.
    null_bias = float(np.mean(null_values))
    mid, half_gap = 0.5 * (min(ends) + max(ends)), 0.5 * (max(ends) - min(ends))
    half = math.hypot(z * stderr, half_gap, null_bias)
    return make(value, stderr, "discrete", n, level=level, ci=(mid - half, mid + half),
                ci_method="union",
                details={"nsb": nsb, "shuffle": shuffle, "plugin": plug, "miller_madow": mm,
                         "pair": tuple(pair),
                         "null_mean": float(np.mean(null)), "null_sd": s0,
                         "null_value_sd": sv0, "null_value_mean": null_bias,
                         "symbols": (kx_obs, ky_obs, kxy), "shuffles": SHUFFLES})


def _closest_pair_mean(*values: float) -> tuple[float, tuple[float, float]]:
    """The mean of the two of three values that lie closest together, and that pair: three
    bias corrections that fail in different directions (Miller-Madow high in a sparse table,
    the shuffle correction low under strong dependence, NSB either way on a table far from
    exchangeable), the one farthest from the other two set aside."""
    trio = sorted(values)
    pair = trio[:2] if trio[1] - trio[0] <= trio[2] - trio[1] else trio[1:]
    return 0.5 * (pair[0] + pair[1]), (pair[0], pair[1])


def conditional_mi_codes(cx: np.ndarray, cy: np.ndarray, cz: np.ndarray,
                         level: float) -> Estimate:
    """``I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)``, plug-in, Miller-Madow corrected.

    Correction ``(K_xz + K_yz - K_xyz - K_z) / (2n)``; stderr from the local values
    ``log p(x,y,z) p(z) / (p(x,z) p(y,z))`` plus the chi-squared variance with
    ``df = sum_z (K_x|z - 1)(K_y|z - 1)``.
    """
    n = cx.shape[0]

    def code(*cs: np.ndarray) -> tuple[np.ndarray, int]:
        _, inv = np.unique(np.stack(cs, axis=1), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        return inv, int(inv.max()) + 1

    xz, kxz = code(cx, cz)
    yz, kyz = code(cy, cz)
    xyz, kxyz = code(cx, cy, cz)
    z, kz = code(cz)
    h = {name: _plugin_entropy(np.bincount(c, minlength=kk))
         for name, c, kk in (("xz", xz, kxz), ("yz", yz, kyz), ("xyz", xyz, kxyz), ("z", z, kz))}
    plug = h["xz"] + h["yz"] - h["xyz"] - h["z"]
    correction = (kxz + kyz - kxyz - kz) / (2.0 * n)
    local = (_bincount_logp(xyz, kxyz) + _bincount_logp(z, kz) - _bincount_logp(xz, kxz)
             - _bincount_logp(yz, kyz))
    est = from_local(local, "discrete", level=level)
    est = make(plug + correction, est.stderr, "discrete", n, level=level,
               details={"plugin": plug, "correction": correction})
    # distinct x (and y) values within each stratum of z
    zx = np.bincount(np.unique(np.stack([xz, z], 1), axis=0)[:, 1], minlength=kz)
    zy = np.bincount(np.unique(np.stack([yz, z], 1), axis=0)[:, 1], minlength=kz)
    return add_null_variance(est, float(np.sum((zx - 1) * (zy - 1))))


# --------------------------------------------------------------------------------------------
# NSB (Nemenman, Shafee, Bialek 2002)
# --------------------------------------------------------------------------------------------


def _grouped(counts: np.ndarray, alphabet: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct counts (0 for the unseen symbols) and their multiplicities."""
    values, mult = np.unique(counts, return_counts=True)
    unseen = alphabet - counts.size
    if unseen:
        values = np.concatenate([[0.0], values])
        mult = np.concatenate([[unseen], mult])
    return values.astype(np.float64), mult.astype(np.float64)


def dirichlet_entropy_moments(counts: np.ndarray, alphabet: int, beta: np.ndarray,
                              variance: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior mean and variance of ``H(p)`` for ``p ~ Dirichlet(counts + beta)``.

    Wolpert & Wolf (1995): with ``a_i = n_i + beta`` and ``A = sum_i a_i``,
    ``E[H] = psi(A + 1) - sum_i a_i/A psi(a_i + 1)`` and
    ``E[H^2] = sum_{i != j} a_i a_j / (A (A+1)) [(psi(a_i+1) - psi(A+2))(psi(a_j+1) - psi(A+2))
    - psi'(A+2)] + sum_i a_i (a_i+1) / (A (A+1)) [(psi(a_i+2) - psi(A+2))^2 + psi'(a_i+2)
    - psi'(A+2)]``. Vectorised over ``beta``; symbols with equal counts are grouped.
    ``variance=False``: the mean only (``None`` for the variance).
    """
    v, m = _grouped(counts, alphabet)
    a = v[None, :] + beta[:, None]  # (B, G)
    big_a = (m[None, :] * a).sum(axis=1)  # (B,)
    mean = special.digamma(big_a + 1) - (m * a * special.digamma(a + 1)).sum(axis=1) / big_a
    if not variance:
        return mean, None
    norm = big_a * (big_a + 1)
    d2 = special.digamma(big_a + 2)[:, None]
    t1 = special.polygamma(1, big_a + 2)[:, None]
    u = special.digamma(a + 1) - d2  # (B, G)
    s1 = (m * a * u).sum(axis=1)
    # sum over ordered pairs i != j = (sum_i a_i u_i)^2 - sum_i a_i^2 u_i^2; same for -psi'
    cross = s1**2 - (m * a**2 * u**2).sum(axis=1)
    cross_t = t1[:, 0] * (big_a**2 - (m * a**2).sum(axis=1))
    diag = (m * a * (a + 1) * ((special.digamma(a + 2) - d2) ** 2
                               + special.polygamma(1, a + 2) - t1)).sum(axis=1)
    second = (cross - cross_t + diag) / norm
    return mean, np.maximum(second - mean**2, 0.0)


def nsb_entropy(counts: np.ndarray, alphabet: int, level: float) -> Estimate:
    """NSB entropy: the Dirichlet posterior mean under a prior flat in the expected entropy.

    With ``K = alphabet`` and concentration ``beta``, the prior density of ``beta`` is
    ``d xi / d beta = K psi'(K beta + 1) - psi'(beta + 1)`` (``xi(beta) = psi(K beta + 1) -
    psi(beta + 1)`` the prior mean entropy), the evidence is the Dirichlet-multinomial
    likelihood ``Gamma(K beta) / Gamma(n + K beta) prod_i Gamma(n_i + beta) / Gamma(beta)``,
    and the estimate is the posterior mean of ``E[H | counts, beta]``
    (:func:`dirichlet_entropy_moments`), integrated numerically over ``log beta`` on a
    2,000-point grid from ``1e-7`` to ``1e5``. The standard error is the posterior standard
    deviation (law of total variance over ``beta``); the interval is the normal one.
    """
    value, var, beta_map = _nsb(counts, alphabet, 2000, True)
    return make(value, math.sqrt(max(var, 0.0)), "nsb", int(counts.sum()), level=level,
                details={"alphabet_size": alphabet, "beta_map": beta_map})


def _nsb(counts: np.ndarray, alphabet: int, points: int, variance: bool
         ) -> tuple[float, float, float]:
    """NSB posterior mean, variance (NaN unless ``variance``) and MAP ``beta`` on a grid of
    ``points`` values of ``log beta``."""
    n = float(counts.sum())
    log_beta = np.linspace(math.log(1e-7), math.log(1e5), points)
    beta = np.exp(log_beta)
    k = float(alphabet)
    prior = k * special.polygamma(1, k * beta + 1) - special.polygamma(1, beta + 1)
    v, m = _grouped(counts, alphabet)
    loglik = (special.gammaln(k * beta) - special.gammaln(n + k * beta)
              + (m[None, :] * (special.gammaln(v[None, :] + beta[:, None])
                               - special.gammaln(beta[:, None]))).sum(axis=1))
    logw = loglik + np.log(np.maximum(prior, 1e-300)) + log_beta  # d beta = beta d log beta
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean_b, var_b = dirichlet_entropy_moments(counts, alphabet, beta, variance)
    value = float(np.sum(w * mean_b))
    var = float(np.sum(w * (var_b + mean_b**2)) - value**2) if variance else math.nan
    return value, var, float(beta[np.argmax(w)])
