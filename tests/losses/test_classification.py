"""PLD, comp-sum, compositional NLL and NCE: the papers' claims, references, gradients."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences.losses._classification import (
    comp_sum_loss,
    compositional_nll,
    nce_loss,
    plackett_luce_distillation_loss,
    smooth_adversarial_comp_sum_loss,
)

F = torch.nn.functional


def _logits(seed, *shape, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# PLD
# --------------------------------------------------------------------------------------------


def test_pld_one_hot_weights_give_cross_entropy():
    s = _logits(0, 5, 7)
    y = torch.tensor([0, 3, 6, 2, 2])
    t = torch.zeros(5, 7, dtype=torch.float64)
    t[torch.arange(5), y] = 1e4    # softmax(t) = (1, 0, ...) on the label, exactly
    loss = plackett_luce_distillation_loss(s, t, y, teacher_temperature=1.0, reduction="none")
    assert torch.allclose(loss, F.cross_entropy(s, y, reduction="none"), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(-50, 50))
def test_pld_shift_invariance(seed, c):
    s, t = _logits(seed, 3, 6), _logits(seed + 1, 3, 6)
    y = torch.tensor([1, 0, 5])
    a = plackett_luce_distillation_loss(s, t, y, reduction="none")
    b = plackett_luce_distillation_loss(s + c, t, y, reduction="none")
    assert torch.allclose(a, b, atol=1e-9)


def _pl_perm_prob(s, perm):
    """Plackett-Luce probability of a full ordering, as a product of sequential choices."""
    p = 1.0
    rest = list(perm)
    for k in perm:
        w = [math.exp(s[j]) for j in rest]
        p *= math.exp(s[k]) / sum(w)
        rest.remove(k)
    return p


@pytest.mark.parametrize("c", [2, 3, 4, 5])
def test_pld_matches_brute_force_plackett_luce(c):
    s = _logits(c, c).tolist()
    t = _logits(c + 10, c).tolist()
    tau = 1.7
    for y in range(c):
        # target ranking: label first, then the rest by descending teacher logit
        ranking = [y, *sorted((j for j in range(c) if j != y), key=lambda j: -t[j])]
        q = torch.softmax(torch.tensor(t, dtype=torch.float64) / tau, 0).tolist()
        perms = list(itertools.permutations(range(c)))
        probs = {p: _pl_perm_prob(s, p) for p in perms}
        assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-12)
        expected = 0.0
        for k in range(c):
            # P(stage k picks ranking[k] | prefix) by summing whole orderings
            pre = tuple(ranking[:k])
            num = sum(v for p, v in probs.items() if p[: k + 1] == (*pre, ranking[k]))
            den = sum(v for p, v in probs.items() if p[:k] == pre)
            expected += q[ranking[k]] * -math.log(num / den)
        got = plackett_luce_distillation_loss(
            torch.tensor([s], dtype=torch.float64), torch.tensor([t], dtype=torch.float64),
            torch.tensor([y]), teacher_temperature=tau)
        assert math.isclose(float(got), expected, rel_tol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_pld_convex_in_student_logits(seed, lam):
    a, b, t = _logits(seed, 2, 5), _logits(seed + 1, 2, 5), _logits(seed + 2, 2, 5)
    y = torch.tensor([4, 0])

    def loss(s):
        return plackett_luce_distillation_loss(s, t, y)

    mid = loss((1 - lam) * a + lam * b)
    assert mid <= (1 - lam) * loss(a) + lam * loss(b) + 1e-10


def test_pld_ignore_index_reduction_and_dtype():
    s, t = _logits(1, 4, 5), _logits(2, 4, 5)
    y = torch.tensor([1, -100, 3, 0])
    none = plackett_luce_distillation_loss(s, t, y, reduction="none")
    assert none[1] == 0
    keep = y != -100
    full = plackett_luce_distillation_loss(s[keep], t[keep], y[keep], reduction="none")
    assert torch.allclose(none[keep], full)
    assert torch.isclose(plackett_luce_distillation_loss(s, t, y), full.mean())
    assert torch.isclose(plackett_luce_distillation_loss(s, t, y, reduction="sum"), full.sum())
    half = plackett_luce_distillation_loss(s.to(torch.bfloat16), t.to(torch.bfloat16), y)
    assert half.dtype == torch.float32
    assert torch.isfinite(plackett_luce_distillation_loss(s * 1e4, t * 1e4, y))


def test_pld_gradcheck():
    s = _logits(3, 3, 5).requires_grad_(True)
    t = _logits(4, 3, 5).requires_grad_(True)
    y = torch.tensor([2, 0, 4])
    assert torch.autograd.gradcheck(
        lambda a, b: plackett_luce_distillation_loss(a, b, y, 2.0), (s, t))


def test_pld_errors():
    s = torch.zeros(2, 3)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="teacher_logits"):
        plackett_luce_distillation_loss(s, torch.zeros(2, 4), y)
    with pytest.raises(ValueError, match="labels must lie"):
        plackett_luce_distillation_loss(s, s, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must have shape"):
        plackett_luce_distillation_loss(s, s, torch.tensor([0]))
    with pytest.raises(TypeError, match="integer"):
        plackett_luce_distillation_loss(s, s, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="teacher_temperature"):
        plackett_luce_distillation_loss(s, s, y, 0.0)
    with pytest.raises(ValueError, match="finite"):
        plackett_luce_distillation_loss(s, torch.full((2, 3), math.inf), y)
    with pytest.raises(TypeError, match="torch tensor"):
        plackett_luce_distillation_loss(s.numpy(), s, y)


# --------------------------------------------------------------------------------------------
# Comp-sum
# --------------------------------------------------------------------------------------------


def test_comp_sum_identities():
    h = _logits(5, 6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    p = torch.softmax(h, -1)[torch.arange(6), y]
    hy = h[torch.arange(6), y]
    sum_exp = (torch.exp(h - hy[:, None])).sum(-1) - 1.0     # sum_{y' != y} e^{h_y' - h_y}
    cases = {
        0.0: sum_exp,
        1.0: F.cross_entropy(h, y, reduction="none"),
        1.5: (1 - p**0.5) / 0.5,                               # GCE with q = 1/2
        2.0: 1 - p,                                            # MAE
    }
    for tau, ref in cases.items():
        assert torch.allclose(comp_sum_loss(h, y, tau, reduction="none"), ref, atol=1e-12)


def test_comp_sum_continuous_at_one():
    h = _logits(6, 5, 3)
    y = torch.tensor([0, 2, 1, 1, 0])
    ce = comp_sum_loss(h, y, 1.0, reduction="none")
    for eps in (1e-3, 1e-6, 1e-9):
        for tau in (1 - eps, 1 + eps):
            close = comp_sum_loss(h, y, tau, reduction="none")
            assert torch.allclose(close, ce, atol=20 * eps)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.01, 5.0))
def test_comp_sum_bounded_above_one(seed, tau):
    h = _logits(seed, 8, 5, scale=30.0)
    y = torch.arange(8) % 5
    loss = comp_sum_loss(h, y, tau, reduction="none")
    assert (loss >= 0).all()
    assert (loss <= 1 / (tau - 1) + 1e-12).all()


def test_comp_sum_finite_for_extreme_logits():
    h = torch.tensor([[1e4, -1e4, 0.0]])
    y = torch.tensor([1])
    for tau in (0.0, 0.5, 1.0, 2.0):
        h_ = h.clone().requires_grad_(True)
        loss = comp_sum_loss(h_, y, tau)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(h_.grad).all()


@pytest.mark.parametrize("tau", [0.0, 0.7, 1.0, 1.5, 2.0, 3.0])
def test_comp_sum_gradcheck(tau):
    h = _logits(7, 4, 5).requires_grad_(True)
    y = torch.tensor([0, 4, 2, 1])
    assert torch.autograd.gradcheck(lambda a: comp_sum_loss(a, y, tau), (h,))


def test_comp_sum_errors():
    h = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="tau"):
        comp_sum_loss(h, torch.tensor([0, 1]), tau=-1.0)
    with pytest.raises(ValueError, match="labels must lie"):
        comp_sum_loss(h, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="reduction"):
        comp_sum_loss(h, torch.tensor([0, 1]), reduction="batchmean")
    with pytest.raises(ValueError, match=r"\+inf"):
        comp_sum_loss(torch.tensor([[math.inf, 0.0]]), torch.tensor([0]))


def test_smooth_adversarial_comp_sum():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    x = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    plain = comp_sum_loss(net(x), y, 1.5, reduction="none")
    gen = torch.Generator().manual_seed(1)
    for norm in ("inf", "2"):
        rob = smooth_adversarial_comp_sum_loss(net, x, y, 1.5, nu=2.0, gamma=0.2, norm=norm,
                                               generator=gen, reduction="none")
        gap = (rob - plain) / 2.0
        assert (gap > 0).all()
        # the adversarial gap cannot exceed the Lipschitz bound of the net on the ball
        w1, w2 = net[0].weight, net[2].weight
        radius = 0.2 * (math.sqrt(3) if norm == "inf" else 1.0)
        lip = torch.linalg.matrix_norm(w2, 2) * torch.linalg.matrix_norm(w1, 2) * radius
        assert (gap <= lip + 1e-5).all()
        # more ascent steps find a gap at least as large as a single random point
        few = smooth_adversarial_comp_sum_loss(net, x, y, 1.5, nu=2.0, gamma=0.2, norm=norm,
                                               steps=0, generator=torch.Generator()
                                               .manual_seed(1), reduction="none")
        assert rob.sum() >= few.sum() - 1e-6
    rob.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ValueError, match="norm"):
        smooth_adversarial_comp_sum_loss(net, x, y, norm="1")
    with pytest.raises(TypeError, match="callable"):
        smooth_adversarial_comp_sum_loss(3, x, y)
    with pytest.raises(ValueError, match="steps"):
        smooth_adversarial_comp_sum_loss(net, x, y, steps=-1)


# --------------------------------------------------------------------------------------------
# Compositional NLL and NCE on 1-D Gaussian mean estimation
# --------------------------------------------------------------------------------------------


def _gaussian_fit(method, steps=120, lr=0.3, m=256):
    gen = torch.Generator().manual_seed(0)
    x = 1.3 + torch.randn(200, generator=gen, dtype=torch.float64)
    mu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)   # NCE's log-normaliser
    opt = torch.optim.SGD([mu, c], lr=lr)
    sd = 3.0

    def log_q(z):
        return -0.5 * (z / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))

    def f(z):
        return -0.5 * (z - mu) ** 2 + (c if method == "nce" else 0.0)

    log_u, tail = None, []
    for k in range(steps):
        y = sd * torch.randn(m, generator=gen, dtype=torch.float64)
        if method == "compositional":
            loss, log_u = compositional_nll(f(x), f(y), log_q(y), log_u, momentum=0.1)
        else:
            loss = nce_loss(f(x), f(y), log_q(x), log_q(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= steps - 30:
            tail.append(mu.item())
    return float(x.mean()), sum(tail) / len(tail), c.item()


@pytest.mark.parametrize("method", ["compositional", "nce"])
def test_gaussian_mean_reaches_sample_mean(method):
    xbar, mu, c = _gaussian_fit(method)
    assert abs(mu - xbar) < 0.03
    if method == "nce":
        # NCE also learns the normaliser: c -> -log sqrt(2 pi)
        assert abs(c + 0.5 * math.log(2 * math.pi)) < 0.1


def test_compositional_value_and_moving_average():
    fx = torch.tensor([0.2, -0.4], dtype=torch.float64)
    fy = torch.tensor([0.1, 0.3, -1.0], dtype=torch.float64)
    lq = torch.tensor([-1.0, -1.2, -0.9], dtype=torch.float64)
    log_m = torch.logsumexp(fy - lq, 0) - math.log(3)
    out = compositional_nll(fx, fy, lq)
    assert torch.isclose(out.loss, -fx.mean() + log_m)
    assert torch.isclose(out.log_inner, log_m)
    out2 = compositional_nll(fx, fy, lq, log_inner=0.5, momentum=0.25)
    assert torch.isclose(out2.log_inner, torch.log(0.75 * math.exp(0.5) + 0.25 * log_m.exp()))
    assert not out2.log_inner.requires_grad


def test_compositional_gradient_is_compositional():
    fy = torch.tensor([0.1, 0.3, -1.0], dtype=torch.float64, requires_grad=True)
    lq = torch.tensor([-1.0, -1.2, -0.9], dtype=torch.float64)
    fx = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    out = compositional_nll(fx, fy, lq, log_inner=0.7, momentum=0.1)
    out.loss.backward()
    u = out.log_inner.exp()
    # d/d f(y_j) of m / u = e^{f(y_j) - log q(y_j)} / (m_count * u)
    assert torch.allclose(fy.grad, (fy.detach() - lq).exp() / 3 / u)
    assert torch.allclose(fx.grad, torch.tensor([-1.0], dtype=torch.float64))


def test_nce_reductions_and_gradcheck():
    gen = torch.Generator().manual_seed(4)
    fx = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    fy = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    lqx = torch.randn(3, generator=gen, dtype=torch.float64)
    lqy = torch.randn(5, generator=gen, dtype=torch.float64)
    none = nce_loss(fx, fy, lqx, lqy, reduction="none")
    assert none.shape == (8,)
    assert torch.isclose(nce_loss(fx, fy, lqx, lqy, reduction="sum"), none.sum())
    assert torch.isclose(nce_loss(fx, fy, lqx, lqy), none.sum() / 3)
    assert torch.autograd.gradcheck(lambda a, b: nce_loss(a, b, lqx, lqy), (fx, fy))


def test_unnormalised_errors():
    a = torch.zeros(3)
    with pytest.raises(ValueError, match="noise_log_probs"):
        compositional_nll(a, a, torch.zeros(2))
    with pytest.raises(ValueError, match="momentum"):
        compositional_nll(a, a, a, momentum=0.0)
    with pytest.raises(ValueError, match="log_inner"):
        compositional_nll(a, a, a, log_inner=math.inf)
    with pytest.raises(ValueError, match="data_log_scores"):
        compositional_nll(torch.zeros(0), a, a)
    with pytest.raises(ValueError, match="data_noise_log_probs"):
        nce_loss(a, a, torch.zeros(2), a)
    with pytest.raises(ValueError, match="noise_log_scores"):
        nce_loss(a, torch.zeros(2, 2), a, a)
    with pytest.raises(TypeError, match="floating"):
        nce_loss(a.long(), a, a, a)
