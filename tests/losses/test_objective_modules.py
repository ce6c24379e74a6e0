"""nn.Module faces of the papers' objectives: same values as the functions, no parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from divergences.losses import (
    attention_entropy_penalty,
    comp_sum_loss,
    cs_information_bottleneck_loss,
    dph_penalty,
    f_dpo_loss,
    fairness_penalty,
    plackett_luce_distillation_loss,
    selective_entropy_regularizer,
)
from divergences.losses._bdkd import balanced_distillation_loss
from divergences.losses._sinkd import sinkhorn_distillation_loss
from divergences.losses.objective_modules import (
    AttentionEntropyPenalty,
    BalancedDistillationLoss,
    CompSumLoss,
    CSInformationBottleneckLoss,
    DPHPenalty,
    FairnessPenalty,
    FDPOLoss,
    PlackettLuceDistillationLoss,
    SelectiveEntropyRegularizer,
    SinkhornDistillationLoss,
)

G = torch.Generator().manual_seed(0)


def _randn(*shape, requires_grad=False):
    return torch.randn(*shape, generator=G).requires_grad_(requires_grad)


def _same(a, b):
    """Equal results: tensors, or NamedTuples of tensors."""
    if isinstance(a, tuple):
        assert type(a) is type(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert torch.equal(a, b)


def _fdpo():
    args = (_randn(6), _randn(6), _randn(6), _randn(6))
    opts = {"divergence": "alpha", "beta": 0.3, "alpha": 0.7, "label_smoothing": 0.1,
            "reduction": "sum"}
    return FDPOLoss(**opts), args, lambda *a: f_dpo_loss(*a, **opts)


def _sinkd():
    args = (_randn(8, 5), _randn(8, 5))
    opts = {"temperature": 1.5, "epsilon": 0.05, "n_iter": 12, "scale": 2e-3, "stable": True,
            "reduction": "none"}
    return (SinkhornDistillationLoss(**opts), args,
            lambda *a: sinkhorn_distillation_loss(*a, **opts))


def _bdkd():
    args = (_randn(4, 6), _randn(4, 6))
    opts = {"temperature": 2.0, "balance": "soft", "gap_scale": 0.3, "teacher_weight": 0.5,
            "reduction": "sum"}
    return (BalancedDistillationLoss(**opts), args,
            lambda *a: balanced_distillation_loss(*a, **opts))


def _pld():
    args = (_randn(5, 4), _randn(5, 4), torch.tensor([0, 3, -100, 1, 2]))
    opts = {"teacher_temperature": 2.5, "ignore_index": -100, "reduction": "none"}
    return (PlackettLuceDistillationLoss(**opts), args,
            lambda *a: plackett_luce_distillation_loss(*a, **opts))


def _comp_sum():
    args = (_randn(5, 4), torch.tensor([0, 3, 2, 1, 2]))
    opts = {"tau": 1.5, "reduction": "sum"}
    return CompSumLoss(**opts), args, lambda *a: comp_sum_loss(*a, **opts)


def _dph():
    args = (-_randn(3, 5).abs(), -_randn(3, 5).abs())
    opts = {"divergence": "alpha", "alpha": 0.3, "reduction": "sum"}
    return DPHPenalty(**opts), args, lambda *a: dph_penalty(*a, **opts)


def _attention():
    args = (torch.softmax(_randn(2, 3, 4, 4), -1),)
    theta = torch.tensor([0.3, 0.6, 0.9])
    opts = {"gamma": 0.1, "causal": False, "coef": 1.0, "reduction": "mean"}
    return (AttentionEntropyPenalty(theta, **opts), args,
            lambda *a: attention_entropy_penalty(*a, theta, **opts))


def _fairness():
    args = (_randn(24), [_randn(24), _randn(24)])
    opts = {"lam": 3.0}
    return (FairnessPenalty("jdcov", **opts), args,
            lambda *a: fairness_penalty(*a, "jdcov", **opts))


def _csib():
    x = _randn(20, 3)
    args = (x, torch.tanh(x[:, :2]), x[:, 0], x[:, 0] + 0.2 * _randn(20))
    opts = {"prediction": "conditional", "bandwidth": 1.0, "bandwidth_t": 2.0}
    return (CSInformationBottleneckLoss(0.05, **opts), args,
            lambda *a: cs_information_bottleneck_loss(*a, 0.05, **opts))


CASES = {
    "FDPOLoss": _fdpo,
    "SinkhornDistillationLoss": _sinkd,
    "BalancedDistillationLoss": _bdkd,
    "PlackettLuceDistillationLoss": _pld,
    "CompSumLoss": _comp_sum,
    "DPHPenalty": _dph,
    "AttentionEntropyPenalty": _attention,
    "FairnessPenalty": _fairness,
    "CSInformationBottleneckLoss": _csib,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_function(name):
    module, args, fn = CASES[name]()
    _same(module(*args), fn(*args))


@pytest.mark.parametrize("name", [*sorted(CASES), "SelectiveEntropyRegularizer"])
def test_is_module_without_parameters(name):
    module = SelectiveEntropyRegularizer() if name == "SelectiveEntropyRegularizer" \
        else CASES[name]()[0]
    assert isinstance(module, nn.Module)
    assert list(module.parameters()) == []
    assert type(module).__name__ == name
    assert repr(module).startswith(name + "(")


def test_gradients_flow_through_modules():
    s = _randn(6, 4, requires_grad=True)
    t = _randn(6, 4)
    loss = SinkhornDistillationLoss()(s, t) + BalancedDistillationLoss()(s, t).loss
    loss.backward()
    assert s.grad is not None and bool(torch.isfinite(s.grad).all())


def test_state_dict_holds_no_hyper_parameters():
    m = SinkhornDistillationLoss(epsilon=0.05)
    assert m.state_dict() == {}
    a = AttentionEntropyPenalty([0.2, 0.4])
    assert "theta" not in a.state_dict()          # a hyper-parameter, not a weight
    assert torch.equal(a.theta, torch.tensor([0.2, 0.4]))


# ------------------------------------------------------------------ SIREN's anchor


def test_selective_entropy_regularizer_keeps_its_anchor():
    logits = _randn(2, 11, 20)
    mask = torch.ones(2, 11, dtype=torch.bool)
    reg = SelectiveEntropyRegularizer(top_p=0.9, quantile=0.7, coef=0.01)
    assert reg.anchor is None
    first = reg(logits, mask)
    ref = selective_entropy_regularizer(logits, mask, 0.9, 0.7, coef=0.01)
    _same(first, ref)
    assert float(first.loss) == 0.0
    torch.testing.assert_close(reg.anchor, ref.anchor)
    later_logits = 2 * logits
    _same(reg(later_logits, mask),
          selective_entropy_regularizer(later_logits, mask, 0.9, 0.7, anchor=ref.anchor,
                                        coef=0.01))
    # the anchor is saved with the module and restored into a fresh one
    fresh = SelectiveEntropyRegularizer(top_p=0.9, quantile=0.7, coef=0.01)
    fresh.load_state_dict(reg.state_dict())
    torch.testing.assert_close(fresh.anchor, reg.anchor)
    reg.reset_anchor()
    assert reg.anchor is None


# ------------------------------------------------------------------ attention theta options


def test_attention_learnable_theta():
    pen = AttentionEntropyPenalty(0.5, learnable_theta=True, num_heads=3, coef=1.0)
    params = list(pen.parameters())
    assert len(params) == 1 and params[0].shape == (3,)
    a = torch.softmax(_randn(2, 3, 5, 5), -1)
    pen(a).backward()
    assert pen.theta.grad is not None and pen.theta.grad.shape == (3,)
    torch.testing.assert_close(
        pen(a), attention_entropy_penalty(a, torch.full((3,), 0.5), coef=1.0))


# ------------------------------------------------------------------ construction errors


@pytest.mark.parametrize("build, match", [
    (lambda: FDPOLoss("hellinger"), "divergence"),
    (lambda: FDPOLoss(beta=0.0), "beta"),
    (lambda: FDPOLoss(label_smoothing=0.7), "label_smoothing"),
    (lambda: FDPOLoss(reduction="avg"), "reduction"),
    (lambda: SinkhornDistillationLoss(epsilon=0.0), "epsilon"),
    (lambda: SinkhornDistillationLoss(n_iter=0), "n_iter"),
    (lambda: BalancedDistillationLoss(balance="both"), "balance"),
    (lambda: BalancedDistillationLoss(teacher_weight=-1.0), "teacher_weight"),
    (lambda: PlackettLuceDistillationLoss(teacher_temperature=0.0), "teacher_temperature"),
    (lambda: CompSumLoss(tau=-1.0), "tau"),
    (lambda: DPHPenalty("tv"), "divergence"),
    (lambda: DPHPenalty(alpha=2.0), "alpha"),
    (lambda: SelectiveEntropyRegularizer(top_p=0.0), "top_p"),
    (lambda: SelectiveEntropyRegularizer(quantile=1.5), "quantile"),
    (lambda: AttentionEntropyPenalty(gamma=-0.1), "gamma"),
    (lambda: AttentionEntropyPenalty([[0.1, 0.2]]), "theta"),
    (lambda: AttentionEntropyPenalty(float("nan")), "theta"),
    (lambda: AttentionEntropyPenalty([0.1, 0.2], num_heads=3), "num_heads"),
    (lambda: AttentionEntropyPenalty(0.5, num_heads=0), "num_heads"),
    (lambda: FairnessPenalty("hsic"), "kind"),
    (lambda: FairnessPenalty(lam=-1.0), "lam"),
    (lambda: CSInformationBottleneckLoss(beta=-1.0), "beta"),
    (lambda: CSInformationBottleneckLoss(prediction="marginal"), "prediction"),
    (lambda: CSInformationBottleneckLoss(bandwidth="scott"), "bandwidth"),
    (lambda: CSInformationBottleneckLoss(bandwidth_t=0.0), "bandwidth_t"),
])
def test_construction_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("build, match", [
    (lambda: SinkhornDistillationLoss(stable="yes"), "stable"),
    (lambda: AttentionEntropyPenalty(causal=1), "causal"),
    (lambda: AttentionEntropyPenalty("high"), "theta"),
    (lambda: BalancedDistillationLoss(balance=None), "balance"),
])
def test_construction_type_errors(build, match):
    with pytest.raises(TypeError, match=match):
        build()
