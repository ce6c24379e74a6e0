"""Neural MI lower bounds: sensible values, the InfoNCE ceiling, seeds, errors."""

import math

import numpy as np
import pytest
import torch

from divergences.estimate import (
    mutual_information,
    neural_mutual_information,
    wasserstein_dependency,
)
from divergences.estimate._neural import bound

FAST = dict(hidden=16, embed=8, steps=150, batch_size=32, eval_every=25)


def _corr(n, rho, seed=0, d=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(n, d))


@pytest.mark.parametrize("method", ["infonce", "nwj", "dv", "mine", "smile"])
def test_correlated_gaussian_in_band(method):
    x, y = _corr(800, 0.8)
    truth = -0.5 * math.log(1 - 0.64)  # 0.511
    e = neural_mutual_information(x, y, method, seed=1, **FAST)
    assert e.method == method
    # a lower bound: well above 0 after a short training, not far above the truth
    assert 0.15 < e.value < truth + 4 * e.stderr + 0.1
    assert e.stderr > 0 and e.ci_low < e.value < e.ci_high
    assert e.n == 240  # the held-out 30% of the rows


def test_infonce_never_exceeds_log_batch():
    x, y = _corr(800, 0.999)  # I = 3.1 nats > log 16 = 2.77
    e = neural_mutual_information(x, y, "infonce", seed=0, **FAST | {"batch_size": 16})
    assert e.value <= math.log(16) + 1e-6
    assert e.value > 0.5
    assert e.details["log_batch"] == pytest.approx(math.log(16))


def test_infonce_bound_formula_and_ceiling():
    f = torch.randn(8, 8, dtype=torch.float64)
    ref = np.mean([f[i, i].item() - math.log(torch.exp(f[i]).mean().item())
                   for i in range(8)])
    assert bound(f, "infonce", 5.0).item() == pytest.approx(ref, rel=1e-12)
    f = torch.diag(torch.full((8,), 50.0, dtype=torch.float64))
    assert bound(f, "infonce", 5.0).item() == pytest.approx(math.log(8), abs=1e-12)
    # DV with an off-diagonal log-mean-exp; SMILE clips inside it; NWJ below DV
    g = torch.randn(6, 6, dtype=torch.float64) * 3
    off = g[~torch.eye(6, dtype=torch.bool)]
    dv = torch.diagonal(g).mean() - torch.log(torch.exp(off).mean())
    assert bound(g, "dv", 5.0).item() == pytest.approx(dv.item(), rel=1e-12)
    sm = torch.diagonal(g).mean() - torch.log(torch.exp(off.clamp(-1, 1)).mean())
    assert bound(g, "smile", 1.0).item() == pytest.approx(sm.item(), rel=1e-12)
    assert bound(g, "nwj", 5.0).item() <= bound(g, "dv", 5.0).item() + 1e-12


def test_reproducible_with_seed_and_concat_critic():
    x, y = _corr(600, 0.7, seed=3)
    fast = FAST | {"steps": 50}
    a = neural_mutual_information(x, y, "smile", critic="concat", seed=5, **fast)
    b = neural_mutual_information(x, y, "smile", critic="concat", seed=5, **fast)
    assert a.value == b.value and a.stderr == b.stderr
    c = neural_mutual_information(x, y, "smile", critic="concat", seed=6, **fast)
    assert c.value != a.value


def test_progress_and_early_stopping():
    x, y = _corr(600, 0.7)
    seen = []
    e = neural_mutual_information(x, y, "nwj", seed=0, progress=lambda s, v: seen.append(s),
                                  patience=1, **FAST)
    assert seen == [s for s, _ in e.details["history"]]
    assert e.details["steps"] <= 150 and e.details["best_step"] in seen
    assert torch.get_num_threads() >= 1


def test_through_mutual_information_and_base():
    x, y = _corr(800, 0.8)
    e = mutual_information(x, y, method="infonce", base=2, neural_options=FAST)
    assert e.method == "infonce" and e.base == 2
    assert 0.3 < e.value < 0.511 / math.log(2) + 0.2
    with pytest.raises(ValueError, match="ci='normal' only"):
        mutual_information(x, y, method="mine", ci="bootstrap")
    with pytest.raises(TypeError, match="neural_options"):
        mutual_information(x, y, method="mine", neural_options=[1])


def test_errors():
    x, y = _corr(300, 0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        neural_mutual_information(x, y, "mi")
    with pytest.raises(ValueError, match="critic must be one of"):
        neural_mutual_information(x, y, critic="bilinear")
    with pytest.raises(ValueError, match="too few samples for batch_size"):
        neural_mutual_information(x, y, batch_size=128)
    with pytest.raises(ValueError, match="same number of rows"):
        neural_mutual_information(x, y[:-1])
    with pytest.raises(TypeError, match="steps must be an integer"):
        neural_mutual_information(x, y, steps=1.5)
    with pytest.raises(ValueError, match="lr"):
        neural_mutual_information(x, y, lr=0.0)
    with pytest.raises(TypeError, match="progress must be"):
        neural_mutual_information(x, y, progress="yes")
    with pytest.raises(ValueError, match="NaN"):
        neural_mutual_information(np.full((300, 1), np.nan), y)


# --------------------------------------------------------------------------------------------
# Wasserstein dependency measure
# --------------------------------------------------------------------------------------------

WFAST = dict(hidden=32, steps=300, batch_size=32, eval_every=25)


def _binary(n, a=1.0, seed=0):
    # X = +-a with probability 1/2, Y = X (+ tiny noise). The joint has mass 1/2 at (a, a) and
    # (-a, -a); the product 1/4 at each corner. Moving 1/4 from each diagonal corner by 2a to
    # an off-diagonal one costs W1 = 2 * 1/4 * 2a = a, and the 1-Lipschitz critic
    # T = a sign(x) sign(y) attains it (E_P T - E_Q T = a - 0): WDM = a exactly (noise 0).
    rng = np.random.default_rng(seed)
    x = a * rng.choice([-1.0, 1.0], size=(n, 1))
    return x, x + 0.02 * a * rng.normal(size=(n, 1))


def test_wdm_closed_form_binary():
    x, y = _binary(1000)
    e = wasserstein_dependency(x, y, seed=0, **WFAST)
    assert e.method == "wdm" and e.unit == "data units" and "data units" in repr(e)
    assert e.value == pytest.approx(1.0, abs=max(0.1, 3 * e.stderr))
    assert e.n == 300 and e.ci_low < e.value < e.ci_high


def test_wdm_about_zero_under_independence():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 1))
    e = wasserstein_dependency(x, y, seed=0, **WFAST)
    assert abs(e.value) < 0.05
    assert e.ci_low < 0.05 and e.ci_high > -0.05


def test_wdm_scales_linearly_unlike_mi():
    x, y = _corr(600, 0.8)
    short = WFAST | {"steps": 150}
    e1 = wasserstein_dependency(x, y, seed=2, **short)
    e5 = wasserstein_dependency(5.0 * x, 5.0 * y, seed=2, **short)
    # one common scale for all columns: the fitted critic is the same, the value scales by c
    assert e5.value == pytest.approx(5.0 * e1.value, rel=1e-5)
    assert e5.stderr == pytest.approx(5.0 * e1.stderr, rel=1e-5)
    # translations do not matter
    et = wasserstein_dependency(x + 3.0, y - 7.0, seed=2, **short)
    assert et.value == pytest.approx(e1.value, rel=1e-4, abs=1e-5)
    # the MI bound is invariant to the same rescaling
    m1 = neural_mutual_information(x, y, "infonce", seed=2, **FAST | {"steps": 50})
    m5 = neural_mutual_information(5.0 * x, 5.0 * y, "infonce", seed=2,
                                   **FAST | {"steps": 50})
    assert m5.value == pytest.approx(m1.value, rel=1e-4)
    # rescaling x alone: for the binary example with x -> c x the mass moves by
    # min(2, 2c), so WDM = min(1, c) (c = 0.5: 0.5), while I(X; Y) = log 2 is unchanged
    xb, yb = _binary(1000)
    half = wasserstein_dependency(0.5 * xb, yb, seed=0, **WFAST)
    assert half.value == pytest.approx(0.5, abs=max(0.06, 3 * half.stderr))


def test_wdm_against_exact_w1_of_joint_and_shuffled_sample():
    transport = pytest.importorskip("divergences.transport")
    x, y = _corr(1000, 0.8, seed=4)
    e = wasserstein_dependency(x, y, seed=0, **WFAST)
    # exact W1 between a joint sample and the same sample with y shuffled (product draws),
    # 300 points: an upward-biased estimate of the population WDM (finite-sample transport
    # cost of two empirical measures), so the neural value sits near or below it
    rng = np.random.default_rng(0)
    m = 300
    joint = np.hstack([x[:m], y[:m]])
    exact = np.mean([float(transport.wasserstein_exact(
        joint, np.hstack([x[:m], y[:m][rng.permutation(m)]]), p=1)) for _ in range(2)])
    assert 0.75 * exact < e.value < exact + 3 * e.stderr
    # independent control: the exact sample W1 is the finite-sample floor (well below)
    xi = rng.normal(size=(m, 1))
    yi = rng.normal(size=(m, 1))
    floor = float(transport.wasserstein_exact(np.hstack([xi, yi]),
                                              np.hstack([xi, yi[rng.permutation(m)]]), p=1))
    assert floor < 0.5 * exact


def test_wdm_reproducible_progress_and_errors():
    x, y = _binary(600)
    seen = []
    a = wasserstein_dependency(x, y, seed=3, progress=lambda s, v: seen.append((s, v)),
                               **WFAST | {"steps": 50})
    b = wasserstein_dependency(x, y, seed=3, **WFAST | {"steps": 50})
    assert a.value == b.value and a.stderr == b.stderr
    assert seen == a.details["history"] and a.details["penalty"] == 100.0
    with pytest.raises(ValueError, match="data units"):
        a.to_base(2)
    with pytest.raises(ValueError, match="penalty"):
        wasserstein_dependency(x, y, penalty=-1.0)
    with pytest.raises(ValueError, match="too few samples for batch_size"):
        wasserstein_dependency(x[:200], y[:200], batch_size=128)
    with pytest.raises(ValueError, match="same number of rows"):
        wasserstein_dependency(x, y[:-1])
    with pytest.raises(TypeError, match="progress must be"):
        wasserstein_dependency(x, y, progress=1)
    with pytest.raises(TypeError, match="threads"):
        wasserstein_dependency(x, y, threads=1.5, steps=1)
