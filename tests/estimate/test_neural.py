"""Neural MI lower bounds: sensible values, the InfoNCE ceiling, seeds, errors."""

import math

import numpy as np
import pytest
import torch

from divergences.estimate import mutual_information, neural_mutual_information
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
