"""f-DPO and f-DPG: the papers' claims, TRL's numbers, gradients and error paths."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import fdiv
from divergences.losses._preference import f_dpg_loss, f_dpo_loss

DIVS = ["reverse_kl", "forward_kl", "js", "alpha"]


def _pair(sw, sl, dtype=torch.float64):
    """Policy/reference log-probs with chosen log-ratio sw and rejected log-ratio sl."""
    sw = torch.as_tensor(sw, dtype=dtype).reshape(-1)
    sl = torch.as_tensor(sl, dtype=dtype).reshape(-1)
    ref_w = torch.full_like(sw, -12.0)
    ref_l = torch.full_like(sl, -9.0)
    return ref_w + sw, ref_l + sl, ref_w, ref_l


# --------------------------------------------------------------------------------------------
# f-DPO
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("divergence", "alpha", "expected"),
    [
        # TRL 1.16 DPOTrainer, loss_type="sigmoid", beta=0.1, chosen log-ratio 0.5, rejected
        # -0.3. Scores: reverse_kl s; forward_kl -exp(-s); js_divergence logsigmoid(s);
        # alpha_divergence exp((a-1) s)/(a-1). Loss softplus(-beta (score_w - score_l)),
        # values worked out by hand (math.log1p/exp), not by the code under test.
        ("reverse_kl", 0.5, 0.6539469673175899),
        ("forward_kl", 0.5, 0.656671285135809),
        ("js", 0.5, 0.6743140210987061),
        ("alpha", 0.5, 0.6555772284439638),
        ("alpha", 0.3, 0.6560758659205665),
    ],
)
def test_matches_trl_numbers(divergence, alpha, expected):
    loss = f_dpo_loss(*_pair(0.5, -0.3), divergence=divergence, beta=0.1, alpha=alpha)
    assert math.isclose(float(loss), expected, rel_tol=1e-12)


def test_label_smoothing_matches_trl():
    # (1 - eps) softplus(-z) + eps softplus(z), z = 0.1 * 0.8, eps = 0.1
    loss = f_dpo_loss(*_pair(0.5, -0.3), label_smoothing=0.1)
    assert math.isclose(float(loss), 0.66194696731759, rel_tol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-200, 0), min_size=1, max_size=5),
    st.sampled_from(DIVS),
    st.floats(-2.0, 3.0),
    st.floats(0.0, 0.5),
)
def test_log2_at_reference(logps, divergence, alpha, eps):
    w = torch.tensor(logps, dtype=torch.float64)
    rej = w - 3.0
    loss = f_dpo_loss(w, rej, w, rej, divergence=divergence, alpha=alpha, label_smoothing=eps,
                      reduction="none")
    assert torch.allclose(loss, torch.full_like(loss, math.log(2)), atol=1e-12)


def test_alpha_to_one_is_dpo():
    args = _pair(torch.tensor([1.3, -0.2]), torch.tensor([-0.7, 2.0]))
    dpo = f_dpo_loss(*args, divergence="reverse_kl", reduction="none")
    assert torch.equal(f_dpo_loss(*args, divergence="alpha", alpha=1.0, reduction="none"), dpo)
    near = f_dpo_loss(*args, divergence="alpha", alpha=1.0 - 1e-5, reduction="none")
    assert torch.allclose(near, dpo, atol=1e-5)
    # alpha = 0 is forward KL
    assert torch.allclose(
        f_dpo_loss(*args, divergence="alpha", alpha=0.0, reduction="none"),
        f_dpo_loss(*args, divergence="forward_kl", reduction="none"),
    )


def test_derivatives_come_from_registry():
    # z / beta = f'(u_w) - f'(u_l), with f' of D_f(pi || pi_ref) from the registry
    sw, sl = 0.9, -0.4
    loss = f_dpo_loss(*_pair(sw, sl), divergence="js", beta=1.0)
    fp = fdiv.get("js").f_prime
    z = 2 * (fp(torch.tensor(math.exp(sw), dtype=torch.float64))
             - fp(torch.tensor(math.exp(sl), dtype=torch.float64)))
    assert math.isclose(float(loss), float(-torch.nn.functional.logsigmoid(z)), rel_tol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("divergence", DIVS)
def test_large_log_ratios_stay_finite(dtype, divergence):
    w = torch.tensor([-3.0e4, -5.0, -6.0e4], dtype=dtype, requires_grad=True)
    rej = torch.tensor([-2.0, -4.0e4, -1.0], dtype=dtype, requires_grad=True)
    rw = torch.tensor([-1.0, -3.0e4, -2.0], dtype=dtype)
    rl = torch.tensor([-5.0e4, -1.0, -6.0e4], dtype=dtype)
    for alpha in (0.5, 0.0, 1.5):
        loss = f_dpo_loss(w, rej, rw, rl, divergence=divergence, alpha=alpha, reduction="none")
        assert loss.dtype == torch.float32
        assert torch.isfinite(loss).all()
        g = torch.autograd.grad(loss.sum(), (w, rej))
        assert all(torch.isfinite(x).all() for x in g)


@pytest.mark.parametrize("divergence", DIVS)
def test_gradcheck(divergence):
    gen = torch.Generator().manual_seed(0)
    ts = [torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
          for _ in range(4)]
    assert torch.autograd.gradcheck(
        lambda *a: f_dpo_loss(*a, divergence=divergence, beta=0.7, alpha=0.3,
                              label_smoothing=0.1), ts)


def test_reductions():
    args = _pair(torch.tensor([0.5, 1.0, -2.0]), torch.tensor([0.1, 0.0, 0.3]))
    none = f_dpo_loss(*args, reduction="none")
    assert none.shape == (3,)
    assert torch.allclose(f_dpo_loss(*args, reduction="sum"), none.sum())
    assert torch.allclose(f_dpo_loss(*args), none.mean())


def test_preferring_chosen_lowers_loss():
    for d in DIVS:
        good = f_dpo_loss(*_pair(1.0, -1.0), divergence=d)
        bad = f_dpo_loss(*_pair(-1.0, 1.0), divergence=d)
        assert good < math.log(2) < bad


def test_errors():
    w = torch.zeros(3)
    with pytest.raises(ValueError, match="divergence"):
        f_dpo_loss(w, w, w, w, divergence="kl")
    with pytest.raises(ValueError, match="beta"):
        f_dpo_loss(w, w, w, w, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        f_dpo_loss(w, w, w, w, label_smoothing=0.7)
    with pytest.raises(ValueError, match="reduction"):
        f_dpo_loss(w, w, w, w, reduction="batchmean")
    with pytest.raises(ValueError, match="shape"):
        f_dpo_loss(w, torch.zeros(2), w, w)
    with pytest.raises(TypeError, match="torch tensor"):
        f_dpo_loss([0.0], w, w, w)
    with pytest.raises(TypeError, match="floating"):
        f_dpo_loss(torch.zeros(3, dtype=torch.long), w, w, w)
    with pytest.raises(ValueError, match="NaN"):
        f_dpo_loss(torch.tensor([0.0, math.nan, 0.0]), w, w, w)
    with pytest.raises(TypeError, match="alpha"):
        f_dpo_loss(w, w, w, w, divergence="alpha", alpha="0.5")


# --------------------------------------------------------------------------------------------
# f-DPG
# --------------------------------------------------------------------------------------------

FDPG_DIVS = ["kl", "reverse_kl", "js", "squared_hellinger", "alpha", "jeffreys"]


def _problem(seed=0, k=6):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(k, generator=gen, dtype=torch.float64)
    log_P = torch.randn(k, generator=gen, dtype=torch.float64) + 1.5   # unnormalised
    log_q = torch.log_softmax(torch.randn(k, generator=gen, dtype=torch.float64), 0)
    return theta, log_P, log_q


@pytest.mark.parametrize("divergence", FDPG_DIVS)
@pytest.mark.parametrize("use_proposal", [False, True])
def test_expected_estimator_is_exact_gradient(divergence, use_proposal):
    theta0, log_P, log_q = _problem()
    log_Z = torch.logsumexp(log_P, 0)
    theta = theta0.clone().requires_grad_(True)
    logp = torch.log_softmax(theta, 0)
    sampler = log_q if use_proposal else logp.detach()
    out = f_dpg_loss(logp, log_P, log_q if use_proposal else None, divergence=divergence,
                     log_partition=log_Z, baseline=0.37, reduction="none")
    # E_{x ~ sampler}[loss(x)]: every support point weighted by its sampling probability.
    (sampler.exp() * out.loss).sum().backward()
    theta2 = theta0.clone().requires_grad_(True)
    exact = fdiv.evaluate(fdiv.get(divergence), torch.log_softmax(theta2, 0), log_P - log_Z)
    (g,) = torch.autograd.grad(exact, theta2)
    assert torch.allclose(theta.grad, g, atol=1e-10)


@pytest.mark.parametrize("divergence", FDPG_DIVS)
def test_zero_gradient_at_target(divergence):
    _, log_P, log_q = _problem(1)
    theta = (log_P - 0.3).clone().requires_grad_(True)   # softmax(theta) = P / Z
    logp = torch.log_softmax(theta, 0)
    out = f_dpg_loss(logp, log_P, log_q, divergence=divergence,
                     log_partition=torch.logsumexp(log_P, 0), reduction="none")
    (log_q.exp() * out.loss).sum().backward()
    assert torch.allclose(theta.grad, torch.zeros_like(theta), atol=1e-12)


def test_partition_estimate_and_rewards():
    _, log_P, _ = _problem(2)
    k = log_P.shape[0]
    uniform = torch.full((k,), -math.log(k), dtype=torch.float64)
    # one sample of each support point under the uniform proposal: mean(P / q) = Z exactly
    out = f_dpg_loss(uniform, log_P, uniform, divergence="kl")
    assert torch.allclose(out.log_partition, torch.logsumexp(log_P, 0))
    # pseudo-reward -f'(pi Z / P), f' of KL is log t + 1
    expected = -((uniform + out.log_partition - log_P) + 1.0)
    assert torch.allclose(out.pseudo_rewards, expected)
    assert not out.pseudo_rewards.requires_grad


def test_fdpg_surrogate_gradient():
    # The loss is a surrogate with stop-gradients (pi inside t and w is detached), so a
    # finite-difference gradcheck does not apply; its gradient in log pi is -w (R - b).
    _, log_P, log_q = _problem(3)
    logp = torch.log_softmax(torch.randn(6, dtype=torch.float64), 0).requires_grad_(True)
    out = f_dpg_loss(logp, log_P, log_q, divergence="js", baseline=0.1,
                     log_partition=0.4, reduction="sum")
    (g,) = torch.autograd.grad(out.loss, logp)
    w = (logp.detach() - log_q).exp()
    fp = fdiv.get("js").f_prime((logp.detach() + 0.4 - log_P).exp())
    assert torch.allclose(g, -w * (-fp - 0.1))


def test_fdpg_errors():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="unknown f-divergence"):
        f_dpg_loss(x, x, divergence="nope")
    with pytest.raises(TypeError, match="divergence"):
        f_dpg_loss(x, x, divergence=3)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        f_dpg_loss(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="target_log_scores"):
        f_dpg_loss(x, torch.zeros(2))
    with pytest.raises(ValueError, match="log_partition"):
        f_dpg_loss(x, x, log_partition=math.inf)
    with pytest.raises(ValueError, match="empty"):
        f_dpg_loss(torch.zeros(0), torch.zeros(0))


@pytest.mark.parametrize("divergence", FDPG_DIVS)
def test_fdpg_finite_for_extreme_inputs(divergence):
    logp = torch.tensor([-500.0, -1.0, -2000.0], requires_grad=True)
    log_P = torch.tensor([300.0, -900.0, 0.0])
    log_q = torch.tensor([-1.0, -300.0, -1.0])
    out = f_dpg_loss(logp, log_P, log_q, divergence=divergence, baseline=1.0)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(logp.grad).all()
    assert torch.isfinite(out.pseudo_rewards).all()
