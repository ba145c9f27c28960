"""Anytime engine: online exits == offline exits on stored outputs, for every rule and adapter."""

import numpy as np
import pytest
import torch
from torch import nn

from snnlib import cutoff, metrics
from snnlib.anytime import cumulative_outputs, run_anytime, stream_anytime
from snnlib.anytime.adapters import (
    FunctionalAdapter,
    SnnlibAdapter,
    SnnTorchAdapter,
    SpikingJellyAdapter,
)
from snnlib.convert import convert
from snnlib.layers import TEBN, Folded, Sequential
from snnlib.neurons import LIF, RunState
from snnlib.qcfs import QCFS

T, K, N = 8, 5, 64
RULES = ("topk", "fixed", "confidence", "entropy")


# ----------------------------------------------------------------------------- models
def _randomise(net: nn.Module, seed: int) -> None:
    """Non-trivial BN running statistics and a centred classifier, so that neurons spike at
    medium rates and the classes compete (a random net otherwise predicts one class)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.05 + 0.02)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.3 + 0.3)
        if isinstance(m, TEBN):
            m.p.data.copy_(torch.rand(T, generator=g) * 0.4 + 0.8)
    lin = net[-1].module
    with torch.no_grad():
        lin.weight -= lin.weight.mean(1, keepdim=True)
        lin.weight *= 3
        lin.bias.zero_()


def _balance(net: nn.Module, x_seq: torch.Tensor) -> None:
    with torch.no_grad():
        net[-1].module.bias -= net(x_seq).mean((0, 1))  # equal mean logit per class


def lif_net(norm: str = "tebn") -> Sequential:
    """Direct-training style: Conv + TEBN (or BN) + LIF, Linear + BN + LIF, Linear."""
    torch.manual_seed(0)
    net = Sequential(
        Folded(nn.Conv2d(2, 8, 3, padding=1)),
        TEBN(8, T) if norm == "tebn" else Folded(nn.BatchNorm2d(8)), LIF(decay=0.5),
        Folded(nn.AvgPool2d(2)), Folded(nn.Flatten()),
        Folded(nn.Linear(128, 32)), Folded(nn.BatchNorm1d(32)), LIF(decay=0.5),
        Folded(nn.Linear(32, K)),
    )  # fmt: skip
    _randomise(net, 1)
    return net.eval()


def qcfs_snn() -> nn.Module:
    """A QCFS ANN converted to an IF SNN by snnlib.convert."""
    torch.manual_seed(0)
    ann = Sequential(
        Folded(nn.Conv2d(2, 8, 3, padding=1)), Folded(nn.BatchNorm2d(8)), QCFS(4, lam=1.0),
        Folded(nn.AvgPool2d(2)), Folded(nn.Flatten()),
        Folded(nn.Linear(128, 32)), Folded(nn.BatchNorm1d(32)), QCFS(4, lam=1.0),
        Folded(nn.Linear(32, K)),
    )  # fmt: skip
    _randomise(ann, 1)
    return convert(ann.eval())[0]


def inputs(kind: str, seed: int, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, x_seq)``: what the engine gets and the ``[T, N, ...]`` offline input."""
    g = torch.Generator().manual_seed(seed)
    if kind == "sequence":  # event frames
        x = (torch.rand(T, n, 2, 8, 8, generator=g) < 0.3).float()
        return x, x
    x = torch.randn(n, 2, 8, 8, generator=g)
    return x, x.expand(T, *x.shape)


def lif_bn_net() -> Sequential:
    return lif_net("bn")


CASES = {"lif-static": (lif_net, "static"), "lif-sequence": (lif_net, "sequence"),
         "qcfs-static": (qcfs_snn, "static")}  # fmt: skip
# Stream mode mixes samples at different steps: TEBN applies each sample's own p_t.
STREAM_CASES = {"lif-tebn-static": (lif_net, "static"),
                "lif-tebn-sequence": (lif_net, "sequence"),
                "lif-bn-static": (lif_bn_net, "static"),
                "qcfs-static": (qcfs_snn, "static")}  # fmt: skip


def make_case(make, kind):
    net = make()
    x, x_seq = inputs(kind, seed=2)
    _balance(net, x_seq)
    with torch.no_grad():
        cum = net(x_seq).float().cumsum(0)  # the offline evaluation (snnlib.pipeline.evaluate)
        calib = net(inputs(kind, seed=3)[1]).float().cumsum(0)
    return net, x, kind == "sequence", cum, make_rules(cum, calib)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return make_case(*CASES[request.param])


@pytest.fixture(scope="module", params=list(STREAM_CASES))
def stream_case(request):
    return make_case(*STREAM_CASES[request.param])


def make_rules(cum: torch.Tensor, calib: torch.Tensor) -> dict:
    """Every rule, with parameters from the data so that exits spread over 1..T."""
    betas = cutoff.calibrate_topk(calib, calib[-1].argmax(-1), epsilon=0.1)
    logp = torch.log_softmax(cum[T // 2 - 1], -1)
    conf = float(logp.exp().amax(-1).median())
    ent = float((-(logp.exp() * logp).sum(-1) / np.log(K)).median())
    return {"topk": cutoff.TopK(betas), "fixed": cutoff.FixedT(3),
            "confidence": cutoff.Confidence(conf), "entropy": cutoff.Entropy(ent)}  # fmt: skip


def offline(rule, cum) -> tuple[np.ndarray, np.ndarray]:
    steps = cutoff.exit_steps(rule, cum)
    return steps, metrics.predict_at_exit(cum, steps)


# ----------------------------------------------------------------------------- snnlib models
# one sample at a time is the slowest case (9 s here): the full suite only
@pytest.mark.parametrize("batch", [pytest.param(1, marks=pytest.mark.slow), 7, 40, N + 3])
@pytest.mark.parametrize("rule_name", RULES)
def test_stream_mode_equals_offline(stream_case, rule_name, batch):
    # Continuous batching: each sample runs exactly its own steps, whoever shares its calls.
    net, x, sequence, cum, rules = stream_case
    steps, preds = offline(rules[rule_name], cum)
    res = stream_anytime(net, x, rules[rule_name], T, batch=batch, sequence=sequence)
    np.testing.assert_array_equal(res.exit_steps, steps)
    np.testing.assert_array_equal(res.predictions, preds)
    assert res.sample_steps == int(steps.sum()) and max(res.batch_sizes) <= batch
    if batch < N:  # slots are refilled: every call but the last few T runs a full batch
        assert res.batch_sizes[0] == batch and res.steps_run <= -(-steps.sum() // batch) + T


@pytest.mark.parametrize("tail", [3, N])
@pytest.mark.parametrize("rule_name", RULES)
def test_stream_mode_tail_equals_offline(stream_case, rule_name, tail):
    # Stragglers run in multi-step calls of about tail sample-steps: the same exits, fewer calls.
    net, x, sequence, cum, rules = stream_case
    steps, preds = offline(rules[rule_name], cum)
    res = stream_anytime(net, x, rules[rule_name], T, batch=16, sequence=sequence, tail=tail)
    np.testing.assert_array_equal(res.exit_steps, steps)
    np.testing.assert_array_equal(res.predictions, preds)
    plain = stream_anytime(net, x, rules[rule_name], T, batch=16, sequence=sequence)
    assert res.sample_steps >= plain.sample_steps == int(steps.sum())
    if steps.max() > 2 and tail == N:  # the drain ran in multi-step calls
        assert max(res.call_steps) > 1 and len(res.call_steps) < len(plain.call_steps)


def test_stream_mode_refuses_what_it_cannot_restart():
    x = inputs("static", seed=2)[0]
    net = FunctionalAdapter(lambda x_t, s: (x_t.flatten(1)[:, :K], s), torch.zeros)
    with pytest.raises(ValueError, match=r"restart\(rows\)"):
        stream_anytime(net, x, cutoff.FixedT(T), T, batch=16)
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        stream_anytime(qcfs_snn(), x, cutoff.FixedT(T), T, batch=0)
    with pytest.raises(ValueError, match="x must be a tensor"):
        stream_anytime(qcfs_snn(), lambda t, live: x[live], cutoff.FixedT(T), T, batch=4)


@pytest.mark.parametrize("rule_name", RULES)
def test_step_mode_equals_offline(case, rule_name):
    net, x, sequence, cum, rules = case
    rule = rules[rule_name]
    steps, preds = offline(rule, cum)
    if rule_name != "fixed":
        assert len(np.unique(steps)) >= 3, "exits must spread for the test to mean something"
    res = run_anytime(net, x, rule, T, sequence=sequence)
    np.testing.assert_array_equal(res.exit_steps, steps)
    np.testing.assert_array_equal(res.predictions, preds)
    assert res.exit_steps.dtype == res.predictions.dtype == np.int64
    assert res.sample_steps == int(steps.sum())  # the work done: live batch summed over steps
    assert res.steps_run == int(steps.max()) and res.avg_exit_step == pytest.approx(steps.mean())
    live = [int((steps >= t).sum()) for t in range(1, res.steps_run + 1)]
    assert list(res.batch_sizes) == live and set(res.call_steps) == {1}


OPTIONS = [dict(chunk=3), dict(chunk=T + 5), dict(tail=20)]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items())
)
@pytest.mark.parametrize("rule_name", RULES)
def test_chunked_equals_step_mode(case, rule_name, options):
    net, x, sequence, _, rules = case
    step = run_anytime(net, x, rules[rule_name], T, sequence=sequence)
    res = run_anytime(net, x, rules[rule_name], T, sequence=sequence, **options)
    np.testing.assert_array_equal(res.exit_steps, step.exit_steps)
    np.testing.assert_array_equal(res.predictions, step.predictions)
    assert res.sample_steps >= step.sample_steps  # exits only at the ends of calls
    sizes, ks = res.batch_sizes, res.call_steps
    assert res.sample_steps == sum(k * n for k, n in zip(ks, sizes, strict=True))
    assert sum(ks) == res.steps_run >= int(step.exit_steps.max())  # rounded up to a call end
    chunk, tail = options.get("chunk", 1), options.get("tail", 0)
    for k, n, t0 in zip(ks, sizes, np.cumsum([0, *ks[:-1]]), strict=True):
        # fewer than tail live: calls of about tail sample-steps, ceil(tail / n) steps each
        assert k == min(max(chunk, -(-tail // n)) if n < tail else chunk, T - t0)
    if any(n < tail for n in step.batch_sizes[:-1]):
        assert len(sizes) < len(step.batch_sizes)  # the stragglers ran in fewer calls


def test_predictions_come_from_the_exit_step(case):
    """Some sample predicts at its exit what it does not predict at T (so the check bites)."""
    net, x, sequence, cum, rules = case
    res = run_anytime(net, x, rules["confidence"], T, sequence=sequence)
    assert (res.predictions != cum[-1].argmax(-1).numpy()).any()


def test_removing_samples_does_not_change_the_others():
    """The engine's premise, bit for bit: streaming with random removals == multi-step."""
    for make in (lif_net, qcfs_snn):
        net = make()
        x, x_seq = inputs("static", seed=4)
        with torch.no_grad():
            full = net(x_seq)
            state, live = RunState(), torch.arange(N)
            g = torch.Generator().manual_seed(5)
            for t in range(T):
                out = net(x[live].unsqueeze(0), state)[0]
                assert torch.equal(out, full[t, live])
                mask = torch.rand(len(live), generator=g) > 0.3
                state.keep(mask)
                live = live[mask]


def test_cumulative_outputs_and_input_function(case):
    net, x, sequence, cum, rules = case
    for chunk in (None, 1, 3):
        got = cumulative_outputs(net, x, T, sequence=sequence, chunk=chunk)
        assert torch.equal(got, cum)
    frames = x if sequence else x.expand(T, *x.shape)
    res = run_anytime(net, lambda t, live: frames[t - 1][live], rules["topk"], T, num_samples=N)
    steps, preds = offline(rules["topk"], cum)
    np.testing.assert_array_equal(res.exit_steps, steps)
    np.testing.assert_array_equal(res.predictions, preds)


def test_subset_batch_gives_the_same_exits(case):
    net, x, sequence, _, rules = case
    sub = slice(5, 25)
    full = run_anytime(net, x, rules["entropy"], T, sequence=sequence)
    part = run_anytime(net, x[:, sub] if sequence else x[sub], rules["entropy"], T,
                       sequence=sequence)  # fmt: skip
    np.testing.assert_array_equal(part.exit_steps, full.exit_steps[sub])
    np.testing.assert_array_equal(part.predictions, full.predictions[sub])


# ----------------------------------------------------------------------------- other libraries
def _check_against(adapter, x_steps, rules_from, chunk=1):
    cum = rules_from
    for name, rule in make_rules(cum, cum).items():
        steps, preds = offline(rule, cum)
        res = run_anytime(adapter, x_steps, rule, T, sequence=True, chunk=chunk)
        np.testing.assert_array_equal(res.exit_steps, steps, err_msg=name)
        np.testing.assert_array_equal(res.predictions, preds, err_msg=name)


def _seq_input(seed: int = 6) -> torch.Tensor:
    return torch.randn(T, N, 20, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunk", [1, 3])
def test_spikingjelly_single_step_net(chunk):
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(20, 32), neuron.LIFNode(tau=2.0), layer.Linear(32, K))
    functional.set_step_mode(net, "s")
    net.eval()
    x = _seq_input()
    with torch.no_grad():  # SpikingJelly's own full-T loop
        functional.reset_net(net)
        cum = torch.stack([net(x_t) for x_t in x]).cumsum(0)
        functional.reset_net(net)
    _check_against(SpikingJellyAdapter(net), x, cum, chunk)


def snntorch_net(beta=0.8):
    import snntorch as snn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 32), snn.Leaky(beta=beta, init_hidden=True), nn.Linear(32, K)
    ).eval()


def _snntorch_offline(net, x):
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "reset_mem"):
                m.reset_mem()
        return torch.stack([net(x_t) for x_t in x]).cumsum(0)


@pytest.mark.parametrize("chunk", [1, 3])
def test_snntorch_hidden_state_net(chunk):
    net, x = snntorch_net(), _seq_input()
    _check_against(SnnTorchAdapter(net), x, _snntorch_offline(net, x), chunk)


def test_snntorch_explicit_state_net():
    import snntorch as snn

    torch.manual_seed(0)
    fc1, lif, fc2 = nn.Linear(20, 32), snn.Leaky(beta=0.8), nn.Linear(32, K)
    x = _seq_input()
    with torch.no_grad():  # the snnTorch tutorial loop
        mem, outs = lif.init_leaky(), []
        for x_t in x:
            spk, mem = lif(fc1(x_t), mem)
            outs.append(fc2(spk))
        cum = torch.stack(outs).cumsum(0)

    def step_fn(x_t, mem):
        spk, mem = lif(fc1(x_t), mem)
        return fc2(spk), mem

    _check_against(FunctionalAdapter(step_fn, lambda n: torch.zeros(n, 32)), x, cum)


def test_state_removal_is_what_keeps_results_exact():
    """Control: an adapter that forgets to slice the state gets different results, so the
    equality checks above can fail (snnTorch silently restarts a mismatched state at 0)."""

    class Forgetful(SnnTorchAdapter):
        def keep(self, mask):
            pass

    net, x = snntorch_net(beta=0.95), _seq_input()
    cum = _snntorch_offline(net, x)
    rule = make_rules(cum, cum)["confidence"]
    steps, preds = offline(rule, cum)
    res = run_anytime(Forgetful(net), x, rule, T, sequence=True)
    assert not (np.array_equal(res.exit_steps, steps) and np.array_equal(res.predictions, preds))


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments_raise_value_errors():
    net = lif_net()
    x = torch.randn(4, 2, 8, 8)
    rule = cutoff.FixedT(2)
    for kwargs, match in [
        (dict(chunk=0), "chunk must be an integer >= 1; got 0"),
        (dict(chunk=1.5), "chunk must be an integer >= 1; got 1.5"),
        (dict(t_max=0), "t_max must be an integer >= 1; got 0"),
        (dict(t_max=None), "t_max is needed"),
        (dict(tail=-1), r"tail must be an integer >= 0; got -1"),
    ]:
        with pytest.raises(ValueError, match=match):
            run_anytime(net, x, rule, **{"t_max": T, **kwargs})
    with pytest.raises(ValueError, match=r"t_max=9 must be <= the sequence length T=8"):
        run_anytime(net, torch.zeros(T, 4, 2, 8, 8), rule, 9, sequence=True)
    with pytest.raises(ValueError, match=r"betas must have shape \[T\] = \(8,\).*got shape \(5,\)"):
        run_anytime(net, x, cutoff.TopK([0.1] * 5), T)
    with pytest.raises(ValueError, match=r"rule=FixedT\(t=9\) cannot run for t_max=8"):
        run_anytime(net, x, cutoff.FixedT(9), T)
    with pytest.raises(ValueError, match="rule must be a stopping rule"):
        run_anytime(net, x, "topk", T)
    with pytest.raises(ValueError, match="num_samples"):
        run_anytime(net, lambda t, live: x[live], rule, T)
    with pytest.raises(ValueError, match="must be in eval mode"):
        run_anytime(lif_net().train(), x, rule, T)
    with pytest.raises(ValueError, match="must be Steppable"):
        run_anytime(nn.Linear(3, 2), x, rule, T)


def test_adapters_refuse_what_they_cannot_handle():
    from spikingjelly.activation_based import functional, layer, neuron

    sj = nn.Sequential(layer.Linear(20, 8), neuron.LIFNode(), layer.Linear(8, K))
    functional.set_step_mode(sj, "m")
    with pytest.raises(ValueError, match="single-step mode"):
        SpikingJellyAdapter(sj.eval())
    with pytest.raises(ValueError, match=r"no snntorch\.SpikingNeuron"):
        SnnTorchAdapter(nn.Linear(2, 2).eval())
    adapter = FunctionalAdapter(lambda x_t, s: (x_t, s), lambda n: torch.zeros(3, 1))
    adapter.reset(5)
    with pytest.raises(ValueError, match="dim 0 is not the live batch size 5"):
        adapter.keep(torch.ones(5, dtype=torch.bool))
    bad = FunctionalAdapter(lambda x_t, s: (x_t[:, :1], s), lambda n: None)
    with pytest.raises(ValueError, match=r"per-step logits \[n, K\]"):
        run_anytime(bad, torch.zeros(4, 3), cutoff.FixedT(1), 2)
    half = lif_net()
    half[1].train()  # one TEBN left in train mode (batch statistics) under an eval-mode root
    with pytest.raises(ValueError, match=r"modules in train mode: \['1', '1\.bn'\]"):
        SnnlibAdapter(half)
    net, x_seq = lif_net(), inputs("sequence", seed=2)[1][:, :4]
    with torch.no_grad():  # the eval-mode model is accepted and streams its own outputs
        assert torch.equal(SnnlibAdapter(net).steps(x_seq), net(x_seq))
