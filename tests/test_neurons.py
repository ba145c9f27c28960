"""LIF/IF dynamics: hand traces, streaming == multi-step, state independence, SpikingJelly."""

import pytest
import torch

from snnlib.neurons import LIF, Collector, RunState, lif_multistep, spike_fn


def trace(lif, values):
    x = torch.tensor(values, dtype=torch.float32).view(-1, 1)  # [T, B=1]
    return lif(x).flatten().tolist()


def test_if_soft_reset_hand_trace():
    # exact binary values; u: .625, 1.25 (spike, v=.25), .875, 1.5 (spike, .5), 1.125 (spike)
    assert trace(LIF(decay=1.0, reset="soft"), [0.625] * 6) == [0, 1, 0, 1, 1, 0]


def test_strict_threshold_no_spike_at_equality():
    assert trace(LIF(decay=1.0, reset="soft"), [0.5, 0.5, 1e-6]) == [0, 0, 1]


def test_lif_hard_reset_hand_trace():
    # decay 0.5: u1=0.8; u2=0.4+0.8=1.2 spike, v=0; u3=0.8; u4=1.2 spike
    assert trace(LIF(decay=0.5, reset="hard"), [0.8, 0.8, 0.8, 0.8]) == [0, 1, 0, 1]


def test_v_init_and_weighted_output():
    lif = LIF(decay=1.0, threshold=2.0, reset="soft", v_init=1.0, weighted_output=True)
    # v0 = 1 (= θ/2): u1 = 2.2 > 2 -> output θ = 2, v = 0.2
    assert trace(lif, [1.2, 0.5]) == [2.0, 0.0]


def test_membrane_is_post_reset():
    x = torch.tensor([[0.8], [0.8], [0.3]])
    out = lif_multistep(x, 1.0, LIF(decay=0.5).params)
    assert out.spikes.flatten().tolist() == [0, 1, 0]
    assert out.membrane.flatten().tolist() == pytest.approx([0.8, 0.0, 0.3])


def test_per_channel_threshold_tensor():
    thr = torch.tensor([1.0, 3.0])
    lif = LIF(decay=1.0, threshold=thr, reset="soft")
    out = lif(torch.full((2, 1, 2), 2.0))
    assert out[:, 0].tolist() == [[1.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("decay", [0.5, 1.0])
def test_streaming_equals_multistep(reset, decay):
    torch.manual_seed(0)
    x = torch.randn(12, 5, 7)
    lif = LIF(decay=decay, reset=reset, v_init=0.3)
    full = lif(x)
    state = RunState()
    steps = torch.cat([lif(x[t : t + 1], state) for t in range(x.shape[0])])
    assert torch.equal(full, steps)
    # uneven chunks give the same result too
    state = RunState()
    chunks = torch.cat([lif(x[:5], state), lif(x[5:], state)])
    assert torch.equal(full, chunks)


def test_no_state_leaks_between_calls():
    torch.manual_seed(1)
    lif = LIF()
    x = torch.randn(6, 4, 3) * 2
    first = lif(x)
    lif(torch.randn(6, 9, 3))  # another batch size in between
    assert torch.equal(first, lif(x))
    assert torch.equal(first[:, :2], lif(x[:, :2]))


def test_runstate_keep_drops_samples():
    torch.manual_seed(2)
    lif = LIF(decay=1.0, reset="soft")
    x = torch.rand(4, 6, 3) * 1.5
    state = RunState()
    lif(x[:2], state)
    keep = torch.tensor([True, False, True, True, False, True])
    state.keep(keep)
    tail = lif(x[2:, keep], state)
    assert torch.equal(tail, lif(x)[2:, keep])


def test_restart_gives_a_sample_a_fresh_state_in_place():
    # Sample 1 restarts after two steps: its next steps equal a fresh run, the others go on.
    torch.manual_seed(3)
    lif = LIF(decay=1.0, reset="soft", v_init=0.2)  # IF: the membrane remembers everything
    x = torch.rand(6, 3, 5) * 0.6
    state = RunState()
    lif(x[:2], state)
    state.restart(torch.tensor([1]))
    tail = lif(x[2:], state)
    assert torch.equal(tail[:, [0, 2]], lif(x)[2:, [0, 2]])
    assert torch.equal(tail[:, 1], lif(x[2:, 1:2])[:, 0])
    assert not torch.equal(tail[:, 1], lif(x)[2:, 1])  # the restart changed something


def test_parameters_travel_with_the_state_dict():
    # A layer rebuilt with other parameters and loaded computes what the saved one computed.
    saved = LIF(decay=1.0, threshold=2.0, reset="soft", v_init=1.0, weighted_output=True)
    rebuilt = LIF(decay=1.0, threshold=8.0, reset="soft", v_init=4.0, weighted_output=True)
    rebuilt.load_state_dict(saved.state_dict())
    assert rebuilt.params == saved.params
    x = torch.rand(5, 3, 4) * 3
    assert torch.equal(rebuilt(x), saved(x))


def test_surrogate_gradient_is_zif_triangle():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 0.9, 2.0], requires_grad=True)
    spike_fn(x, 1.0).sum().backward()
    assert x.grad.tolist() == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.1, 0.0])
    y = torch.tensor([0.5], requires_grad=True)
    spike_fn(y, 2.0).sum().backward()  # (γ − |x|)/γ² = 1.5 / 4
    assert y.grad.item() == pytest.approx(0.375)


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bptt_gradient_flows_through_time(backend):
    # theta=1, decay a=0.5, hard reset, x_t=0.7, L = s_0+s_1+s_2. Forward: u = .7, 1.05 (spike,
    # v=0), .7; ZIF sigma(u-1) = .7, .95, .7. Backward from t=2 (g_v: into v_t, g_s: into s_t):
    #   t=2: g_u2 = .7;  t=1: g_v1 = a*g_u2 = .35, g_s1 = 1 - g_v1*u_1 = .6325, g_u1 = .95*g_s1
    #   t=0: g_v0 = a*g_u1, g_s0 = 1 - g_v0*.7, g_u0 = g_v0 + .7*g_s0 = .853223125.
    # Without BPTT through the membrane it would be sigma = [.7, .95, .7]; without the
    # gradient of the reset (g_s = 1) it would be [1.175, .95, .7].
    x = torch.full((3, 1, 1), 0.7, requires_grad=True)
    LIF(decay=0.5, backend=backend)(x).sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx([0.853223125, 0.600875, 0.7], rel=1e-6)


def test_collector_receives_spikes_and_membrane():
    lif = LIF()
    col = Collector()
    x = torch.randn(4, 2, 3)
    out = lif(x, collector=col)
    (rec,) = col.records
    assert rec.layer is lif and torch.equal(rec.spikes, out)
    assert rec.membrane.shape == x.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reset": "zero"}, "reset must be one of.*hard.*soft.*got 'zero'"),
        ({"threshold": 0.0}, "threshold=.*> 0"),
        ({"decay": 1.5}, r"decay .*in \[0.0, 1.0\]; got 1.5"),
        ({"gamma": 0.0}, r"gamma .*> 0.0; got 0.0"),
        ({"backend": "fast"}, "backend must be one of.*got 'fast'"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\[T, B, ...\]"):
        LIF()(torch.ones(3))


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("decay", [0.5, 1.0])
def test_matches_spikingjelly(reset, decay):
    sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    v_reset = 0.0 if reset == "hard" else None
    if decay == 1.0:
        node = sj.IFNode(v_threshold=1.0, v_reset=v_reset, step_mode="m")
    else:
        node = sj.LIFNode(
            tau=1.0 / (1.0 - decay),
            decay_input=False,
            v_threshold=1.0,
            v_reset=v_reset,
            step_mode="m",
        )
    torch.manual_seed(3)
    x = torch.randn(16, 32, 64)
    theirs = node(x)
    ours = LIF(decay=decay, reset=reset)(x)
    # SpikingJelly fires at u >= θ, we at u > θ (the paper's code): equal off a null set.
    assert torch.equal(ours, theirs)
