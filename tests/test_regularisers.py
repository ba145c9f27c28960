"""RCS regulariser: hand computations on tiny tensors (docs/method.md §1.5)."""

import math

import pytest
import torch

from snnlib.neurons import LIF, Collector, LIFParams, fast_lif, lif_multistep
from snnlib.qcfs import QCFS
from snnlib.regularisers import RCS, aggregate, correct_mask, rcs_ann, rcs_snn, window


def cos_eps(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a) + 1e-5)
    nb = math.sqrt(sum(x * x for x in b) + 1e-5)
    return dot / (na * nb)


def test_window_rule():
    assert [window(T, 0.3) for T in (1, 2, 4, 6, 10, 16)] == [1, 2, 1, 1, 3, 4]


def test_rcs_snn_by_hand():
    spikes = [[0, 0], [1, 0], [1, 0], [0, 1]]
    membrane = [[0.5, 0.2], [0.0, 0.4], [0.0, 1.6], [-0.3, 0.0]]
    theta = 2.0
    r = [
        [s + max(v / theta, 0.0) for s, v in zip(ss, vv, strict=True)]
        for ss, vv in zip(spikes, membrane, strict=True)
    ]
    ref = [(r[2][i] + r[3][i]) / 2 for i in range(2)]  # rho=0.5, T=4 -> last 2 steps
    expected = 1.0 / (sum(cos_eps(rt, ref) for rt in r) / 4 + 1e-5)
    s = torch.tensor(spikes, dtype=torch.float32).view(4, 1, 2)
    v = torch.tensor(membrane).view(4, 1, 2)
    assert rcs_snn(s, v, theta, rho=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_rcs_snn_reference_is_stop_grad():
    # With r_d a constant: dR/dr_t = -(R²/T)·(r_d/(n_t·n_d) − c_t·r_t/n_t²), n = sqrt(||·||² + ε),
    # and dr_t/dv_t = 1[v_t > 0]/θ. Letting the gradient through r_d adds terms at the last k steps.
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(4, 2, 3, generator=g, dtype=torch.float64) > 0.6).double()
    v = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    theta, eps = 1.5, 1e-5
    rcs_snn(s, v, theta, rho=0.5).sum().backward()  # T=4, rho=0.5 -> reference = last 2 steps
    with torch.no_grad():
        r = s + torch.relu(v / theta)  # [T, B, F]
        ref = r[-2:].mean(0)  # [B, F]
        n_t = torch.sqrt((r * r).sum(-1, keepdim=True) + eps)  # [T, B, 1]
        n_d = torch.sqrt((ref * ref).sum(-1, keepdim=True) + eps)  # [B, 1]
        c = (r * ref).sum(-1, keepdim=True) / (n_t * n_d)  # [T, B, 1]
        big_r = 1.0 / (c.mean(0) + eps)  # [B, 1]
        d_r = -(big_r**2) / 4 * (ref / (n_t * n_d) - c * r / n_t**2)
        expected = d_r * (v > 0) / theta
    torch.testing.assert_close(v.grad, expected, rtol=1e-10, atol=1e-12)


def test_rcs_snn_silent_layer():
    silent = rcs_snn(torch.zeros(3, 1, 4), torch.zeros(3, 1, 4), 1.0)
    assert silent.item() == pytest.approx(1e5)


def test_rcs_ann_by_hand():
    z = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
    m = 3.0
    sig0 = math.sqrt((1 + 9) / 3 + 1e-5)
    sig1 = math.sqrt((0.25 + 0.25) / 3 + 1e-5)
    assert rcs_ann(z.unsqueeze(0)).tolist() == pytest.approx([m / sig0, m / sig1])


def test_mask_uses_last_window_of_per_step_outputs():
    o = torch.tensor(
        [
            [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]],
            [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
            [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
        ]
    )  # [T=3, B=3, K=2]
    y = torch.tensor([0, 0, 0])
    assert correct_mask(o, y, mask_rho=0.67).tolist() == [1.0, 1.0, 0.0]  # last 2 steps
    assert correct_mask(o, y, mask_rho=0.1).tolist() == [0.0, 1.0, 0.0]  # k=0 -> all steps


def test_aggregate_mean_over_layers_of_masked_max():
    layers = [torch.tensor([1.0, 5.0, 2.0]), torch.tensor([4.0, 9.0, 3.0])]
    mask = torch.tensor([1.0, 0.0, 1.0])
    assert aggregate(layers, mask).item() == pytest.approx((2.0 + 4.0) / 2)


def test_rcs_from_collector_runs_and_backpropagates():
    # RCS.value must read both kinds of record, pass rho and mask_rho to the right places, and
    # keep the graph: its value and gradients equal those of the parts (checked by hand above).
    torch.manual_seed(0)
    w_lif = torch.randn(5, 6, requires_grad=True)
    w_qcfs = torch.randn(5, 6, requires_grad=True)
    x = torch.rand(4, 3, 5)
    col = Collector()
    h = LIF()(x @ w_lif, collector=col)
    q = QCFS()(x @ w_qcfs, collector=col)
    out = (h + q)[..., :2]  # [T=4, B=3, K=2]
    y = out[-1].argmax(-1)
    y[0] = 1 - y[0]  # sample 0 is wrong at the last step: masked out
    value = RCS(rho=0.5, mask_rho=0.25).value(col, out, y)
    spikes, membrane = lif_multistep(x @ w_lif, 1.0, LIFParams())
    parts = [rcs_snn(spikes, membrane, 1.0, rho=0.5), rcs_ann(x @ w_qcfs)]
    mask = correct_mask(out, y, mask_rho=0.25)  # last step only
    assert mask.tolist() == [0.0, 1.0, 1.0]
    expected = aggregate(parts, mask)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    grads = torch.autograd.grad(value, (w_lif, w_qcfs))
    for got, want in zip(grads, torch.autograd.grad(expected, (w_lif, w_qcfs)), strict=True):
        torch.testing.assert_close(got, want)
        assert got.abs().sum() > 0  # both layers' terms reach their weights


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [({"rho": 0.0}, "(0, 1]"), ({"mask_rho": 1.5}, "(0, 1]")],
)
def test_bad_parameters(kwargs, allowed):
    # The message names the argument, the value and what is allowed, whatever its wording.
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError) as err:
        RCS(**kwargs)
    assert name in str(err.value) and repr(value) in str(err.value) and allowed in str(err.value)


def test_empty_collector_is_an_error():
    with pytest.raises(ValueError, match="no spiking or QCFS"):
        RCS().value(Collector(), torch.zeros(2, 1, 2), torch.tensor([0]))


@pytest.mark.parametrize("threshold", [torch.tensor(0.7), 1.3, torch.tensor([[0.9]])])
@pytest.mark.parametrize("shape", [(8, 5, 3, 6, 6), (4, 3, 200), (1, 2, 7)])
def test_fused_rcs_passes_equal_the_pytorch_operations(monkeypatch, threshold, shape):
    """The C++ passes give R and the gradients of spikes and membrane bit for bit (also for a
    membrane with -0.0, NaN-free ties at zero and values that underflow when divided)."""
    if fast_lif.cpp_kernel() is None:
        pytest.skip("no C++ kernel on this machine")
    torch.manual_seed(0)
    spikes = (torch.rand(shape) < 0.3).float()
    membrane = torch.randn(shape) * 0.5
    membrane.view(-1)[:4] = torch.tensor([-0.0, 0.0, 1e-45, -1e-45])
    grad = torch.randn(shape[1])

    def run():
        s, m = spikes.clone().requires_grad_(), membrane.clone().requires_grad_()
        value = rcs_snn(s, m, threshold)
        value.backward(grad)
        return value.detach(), s.grad, m.grad

    fused = run()
    monkeypatch.setattr(fast_lif, "cpp_kernel", lambda: None)
    plain = run()
    for a, b in zip(fused, plain, strict=True):
        assert torch.equal(a, b) and torch.equal(torch.signbit(a), torch.signbit(b))
