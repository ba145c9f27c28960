"""QCFS activation and ANN -> SNN conversion."""

import copy

import pytest
import torch
from torch import nn

from snnlib.convert import convert
from snnlib.layers import Folded, Sequential
from snnlib.neurons import LIF, RunState
from snnlib.neurons.collector import Collector
from snnlib.qcfs import QCFS, clip_from_data, qcfs, without_clip_decay


def test_qcfs_values_by_hand():
    act = QCFS(levels=4, lam=2.0)
    x = torch.tensor([-1.0, 0.2, 0.3, 0.8, 1.9, 5.0])
    # L·x/λ + 1/2 = 2x + .5 -> floor: 0, 0 (0.9), 1 (1.1), 2 (2.1), 4 (4.3) -> clip at 4
    assert act(x).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 2.0, 2.0])


def test_qcfs_straight_through_gradient():
    lam = torch.tensor(2.0)
    x = torch.tensor([-1.0, 0.3, 0.8, 5.0], requires_grad=True)
    qcfs(x, lam, 4).sum().backward()
    # ReLU kills x<0; floor passes 1 through; the clip stops x above λ
    assert x.grad.tolist() == pytest.approx([0.0, 1.0, 1.0, 0.0])


def test_qcfs_bad_levels():
    with pytest.raises(ValueError, match=r"levels .*>= 1; got 0"):
        QCFS(levels=0)


@pytest.mark.parametrize("levels", [1, 2, 4, 8, 16])
def test_if_neuron_reproduces_qcfs_after_L_steps(levels):
    """The QCFS shift result: v0 = θ/2, T = L steps, constant input -> rate == QCFS output."""
    torch.manual_seed(levels)
    act = QCFS(levels=levels, lam=1.7)
    x = torch.rand(4096) * 2.6 - 0.4  # below 0, inside [0, λ] and above λ
    snn, _ = convert(Sequential(act))
    out = snn(x.expand(levels, -1)).sum(0) / levels
    assert torch.allclose(out, act(x), atol=1e-5)


def small_qcfs_net(levels=4):
    return Sequential(
        Folded(nn.Linear(10, 32)),
        Folded(nn.BatchNorm1d(32)),
        QCFS(levels),
        Sequential(Folded(nn.Linear(32, 32)), QCFS(levels)),
        Folded(nn.Linear(32, 3)),
    )


def test_conversion_replaces_every_qcfs_by_type():
    ann = small_qcfs_net()
    snn, report = convert(ann)
    lifs = [m for m in snn.modules() if isinstance(m, LIF)]
    assert len(lifs) == len(report) == 2
    assert [(r.path, r.old, r.new) for r in report] == [("2", "QCFS", "IF"), ("3.1", "QCFS", "IF")]
    assert not any(isinstance(m, QCFS) for m in snn.modules())
    assert sum(isinstance(m, QCFS) for m in ann.modules()) == 2  # the ANN is untouched
    for lif, q in zip(lifs, [m for m in ann.modules() if isinstance(m, QCFS)], strict=True):
        assert lif.threshold.item() == q.lam.item()
        assert lif.params.v_init == pytest.approx(q.lam.item() / 2)
        assert lif.params.decay == 1.0 and lif.params.reset == "soft"
        assert lif.params.weighted_output
    assert not snn.training


def test_conversion_names_unconvertible_modules():
    net = Sequential(Folded(nn.Linear(3, 3)), QCFS(), nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match=r"2\.0 \(ReLU\)"):
        convert(net)


def test_conversion_without_qcfs_is_an_error():
    with pytest.raises(ValueError, match="nothing to convert"):
        convert(nn.Sequential(nn.Linear(2, 2)))


def test_converted_snn_agrees_more_with_ann_as_T_grows():
    torch.manual_seed(0)
    centers = torch.randn(3, 10) * 2
    y = torch.randint(0, 3, (1200,))
    x = centers[y] + torch.randn(1200, 10)
    ann = small_qcfs_net(levels=4)
    opt = torch.optim.SGD(ann.parameters(), lr=0.05, momentum=0.9)
    for _ in range(150):
        idx = torch.randint(0, 1000, (100,))
        loss = nn.functional.cross_entropy(ann(x[idx].unsqueeze(0))[0], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    ann.eval()
    xt, yt = x[1000:], y[1000:]
    ann_pred = ann(xt.unsqueeze(0))[0].argmax(-1)
    assert (ann_pred == yt).float().mean() > 0.8
    snn, _ = convert(ann)
    with torch.no_grad():
        cum = snn(xt.expand(32, -1, -1)).cumsum(0)  # [T, N, K]
    agreement = (cum.argmax(-1) == ann_pred).float().mean(-1)
    assert agreement[-1] > agreement[0]
    assert agreement[-1] >= 0.97
    assert agreement[[3, 7, 15, 31]].diff().min() >= -0.01  # rises, up to noise
    # streaming the same SNN step by step gives the same cumulative outputs
    state = RunState()
    with torch.no_grad():
        steps = torch.cat([snn(xt.unsqueeze(0), state) for _ in range(32)]).cumsum(0)
    assert torch.equal(steps, cum)


def test_converted_network_reloads_exactly_after_lambda_moved():
    # load_snn's path: convert the untrained definition, then load the trained SNN's state
    # dict. The IF neurons' v_init = λ/2 must follow the trained λ, not the initial one.
    torch.manual_seed(2)
    ann = small_qcfs_net(levels=4).eval()
    trained = copy.deepcopy(ann)
    with torch.no_grad():
        for m in trained.modules():
            if isinstance(m, QCFS):
                m.lam.mul_(0.7)
    snn, _ = convert(trained)
    rebuilt, _ = convert(ann)
    rebuilt.load_state_dict(snn.state_dict())
    assert [m.params for m in rebuilt.modules() if isinstance(m, LIF)] == [
        m.params for m in snn.modules() if isinstance(m, LIF)
    ]
    x = torch.randn(8, 16, 10).mul(3)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), snn(x))


class _Batches:
    """The ``epoch(e)`` protocol of snnlib's batches, over fixed tensors."""

    def __init__(self, xs):
        self.xs = xs

    def epoch(self, epoch=0):
        return ((x, torch.zeros(len(x), dtype=torch.long)) for x in self.xs)


def _train_forward(model, x, collector=None):
    return model(x.unsqueeze(0), collector=collector)  # [1, B, ...]: the ANN at T = 1


def test_clip_from_data_is_each_layers_percentile_in_forward_order():
    torch.manual_seed(0)
    net = small_qcfs_net(levels=4)
    bn = net[1].module
    buffers = copy.deepcopy(bn.state_dict())
    xs = [torch.randn(64, 10) * 3 for _ in range(5)]
    lams = clip_from_data(net, _Batches(xs), _train_forward, percentile=90.0, n_batches=4)
    acts = [m for m in net.modules() if isinstance(m, QCFS)]
    assert lams == [m.lam.item() for m in acts] and 8.0 not in lams
    # independently: in the finished network (train mode), layer k's input does not depend on
    # its own λ or on later ones, so each λ is the percentile of what that layer sees now
    # (a one-pass version, reading layer 2's input while layer 1 still had λ = 8, fails here)
    probe = copy.deepcopy(net).train()
    probe_acts = [m for m in probe.modules() if isinstance(m, QCFS)]
    seen = [[] for _ in probe_acts]
    with torch.no_grad():
        for x in xs[:4]:
            col = Collector(detach=True)
            _train_forward(probe, x, col)
            for r in col.records:
                seen[probe_acts.index(r.layer)].append(r.preactivation.flatten())
    for lam, parts in zip(lams, seen, strict=True):
        pre = torch.cat(parts)
        assert lam == pytest.approx(torch.quantile(pre[pre > 0], 0.9).item(), rel=1e-6)
    assert all(torch.equal(bn.state_dict()[k], v) for k, v in buffers.items())  # untouched


def test_clip_from_data_keeps_lambda_of_a_layer_that_never_fires():
    net = small_qcfs_net(levels=4)
    with torch.no_grad():
        net[3][0].module.weight.zero_()
        net[3][0].module.bias.fill_(-1.0)  # the second QCFS layer sees only negative inputs
    lams = clip_from_data(net, _Batches([torch.randn(32, 10)]), _train_forward, n_batches=1)
    assert lams[1] == 8.0 and lams[0] != 8.0


@pytest.mark.parametrize("percentile, n_batches", [(0, 4), (101, 4), (99, 0)])
def test_clip_from_data_bad_arguments(percentile, n_batches):
    with pytest.raises(ValueError, match=r"percentile|n_batches"):
        clip_from_data(small_qcfs_net(), _Batches([]), _train_forward, percentile, n_batches)


def test_without_clip_decay_keeps_every_parameter_once():
    net = small_qcfs_net()
    groups = without_clip_decay(net)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    clips = {id(m.lam) for m in net.modules() if isinstance(m, QCFS)}
    assert {id(p) for p in groups[1]["params"]} == clips and groups[1]["weight_decay"] == 0.0
    opt = torch.optim.SGD(groups, lr=0.1, weight_decay=0.5)
    before = [m.lam.item() for m in net.modules() if isinstance(m, QCFS)]
    weight = net[0].module.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only weight decay moves a parameter
    assert [m.lam.item() for m in net.modules() if isinstance(m, QCFS)] == before
    assert torch.allclose(net[0].module.weight, weight * (1 - 0.1 * 0.5))
