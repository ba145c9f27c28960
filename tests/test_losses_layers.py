"""Losses (mean CE, TET), time folding and TEBN."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from snnlib.layers import TEBN, Folded, fold, unfold
from snnlib.losses import mean_ce, tet_loss
from snnlib.neurons import RunState


def test_mean_ce_is_ce_of_time_average():
    torch.manual_seed(0)
    o, y = torch.randn(4, 3, 5), torch.tensor([0, 4, 2])
    assert mean_ce(o, y).item() == pytest.approx(F.cross_entropy(o.mean(0), y).item())


def test_tet_loss_by_formula():
    torch.manual_seed(1)
    o, y = torch.randn(3, 2, 4), torch.tensor([1, 3])
    ce = sum(F.cross_entropy(o[t], y) for t in range(3)) / 3
    mse = ((o - 1.0) ** 2).mean()
    assert tet_loss(o, y).item() == pytest.approx(((1 - 1e-3) * ce + 1e-3 * mse).item())
    assert tet_loss(o, y, lamb=0.0).item() == pytest.approx(ce.item())


@pytest.mark.parametrize("fn", [mean_ce, tet_loss])
def test_loss_shape_errors(fn):
    with pytest.raises(ValueError, match=r"outputs must be \[T, B, K\]"):
        fn(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must be"):
        fn(torch.randn(2, 3, 4), torch.tensor([0, 1]))


def test_fold_unfold_roundtrip():
    x = torch.randn(4, 3, 2, 5)
    assert fold(x).shape == (12, 2, 5)
    assert torch.equal(unfold(fold(x), 4), x)


def test_folded_batchnorm_shares_statistics_over_time():
    x = torch.randn(4, 8, 3, 5, 5)
    bn = Folded(nn.BatchNorm2d(3))
    bn(x)
    expected = x.movedim(2, 0).reshape(3, -1).mean(1)  # over T, B, H, W
    assert torch.allclose(bn.module.running_mean, 0.1 * expected, atol=1e-6)


def test_tebn_is_bn_times_per_step_scale():
    torch.manual_seed(2)
    x = torch.randn(3, 6, 4, 5, 5)
    tebn = TEBN(4, T=3)
    with torch.no_grad():
        tebn.p.copy_(torch.tensor([1.0, 2.0, 0.5]))
    ref = Folded(nn.BatchNorm2d(4))
    y = tebn(x)
    r = ref(x)
    for t, p in enumerate([1.0, 2.0, 0.5]):
        assert torch.allclose(y[t], p * r[t], atol=1e-5)


def test_tebn_linear_and_streaming_in_eval():
    torch.manual_seed(3)
    tebn = TEBN(7, T=4)
    tebn(torch.randn(4, 10, 7))  # one training step to move running stats
    tebn.eval()
    with torch.no_grad():
        tebn.p.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    x = torch.randn(4, 3, 7)
    state = RunState()
    steps = torch.cat([tebn(x[t : t + 1], state) for t in range(4)])
    assert torch.allclose(steps, tebn(x))
    with pytest.raises(ValueError, match="built for T=4"):
        tebn(x[:1], state)


def test_tebn_streams_samples_at_different_steps():
    # After sample 0 restarts, it is at step 1 while sample 1 is at step 3: each gets its p_t.
    torch.manual_seed(4)
    tebn = TEBN(5, T=4).eval()
    with torch.no_grad():
        tebn.p.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    x = torch.randn(4, 2, 5)
    state = RunState()
    tebn(x[:2], state)
    state.restart(torch.tensor([0]))
    out = tebn(x[2:], state)
    assert torch.equal(out[:, 1], tebn(x)[2:, 1])  # p_3, p_4
    assert torch.equal(out[:, 0], tebn(x[2:])[:, 0])  # restarted: p_1, p_2
    assert not torch.equal(out[:, 0], tebn(x)[2:, 0])
    with pytest.raises(ValueError, match=r"built for T=4 steps; got steps 3\.\.5"):
        tebn(x[:1], state)  # sample 1 would run a fifth step
