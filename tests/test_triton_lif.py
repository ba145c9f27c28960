"""The Triton LIF kernels (snnlib.neurons.triton_lif) against the reference loop.

With CUDA the cases run on the GPU. Without it they run on CPU tensors under Triton's
interpreter, which must be on before the kernels are defined (at the first import of
``snnlib.neurons.triton_lif``): :func:`test_cases_under_the_interpreter` reruns this file in a fresh
process with ``TRITON_INTERPRET=1``, and the cases skip in the process that started it. Under
the interpreter the kernels do IEEE float32 arithmetic on numpy, so every comparison there is
bit for bit; on a GPU forward values are compared bit for bit and gradients to a few ulps
(``torch.testing.assert_close``), since CUDA's ``tensor / scalar`` in the reference rounds
twice.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_fast_lif import inputs, threshold

from snnlib.neurons import LIF, LIFParams, RunState, lif_multistep
from snnlib.neurons.fast_lif import lif_multistep_fast

HAVE_TRITON = importlib.util.find_spec("triton") is not None
ON_GPU = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and not ON_GPU
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
pytestmark = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed")
kernel_case = pytest.mark.skipif(
    not (ON_GPU or INTERPRETED),
    reason="no GPU: runs under the interpreter in test_cases_under_the_interpreter",
)


@pytest.mark.slow
@pytest.mark.skipif(ON_GPU or INTERPRETED, reason="the cases run directly here")
def test_cases_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    cmd += ["-k", "not under_the_interpreter"]
    repo = Path(__file__).parents[1]
    done = subprocess.run(
        cmd, check=False, env=env, cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, done.stdout[-6000:]


def to_device(*tensors):
    return [t if t is None or not isinstance(t, torch.Tensor) else t.to(DEVICE) for t in tensors]


def run(fn, x, thr, p, v0, dtype=torch.float32, via=None, **kw):
    """Forward + backward with dense spike and membrane gradients, on ``DEVICE`` in ``dtype``;
    ``via``: the inputs and output gradients are rounded to that dtype first."""

    def cast(t: torch.Tensor) -> torch.Tensor:
        return (t if via is None else t.to(via)).to(DEVICE, dtype, copy=True)  # a fresh leaf

    x, v0 = (None if t is None else cast(t).requires_grad_(True) for t in (x, v0))
    (thr,) = to_device(thr)
    spikes, membrane = fn(x, thr, p, v0, **kw)
    g = torch.Generator().manual_seed(99)
    g_s, g_m = (cast(torch.randn(out.shape, generator=g)) for out in (spikes, membrane))
    ((spikes * g_s).sum() + (membrane * g_m).sum()).backward()
    return spikes.detach(), membrane.detach(), x.grad, None if v0 is None else v0.grad


GRADS = () if INTERPRETED else ("grad x", "grad v0")  # see the module docstring


def assert_matches(got, want, close=GRADS):
    """Bit for bit, except the outputs named in ``close``: to a few ulps of their dtype."""
    names = ("spikes", "membrane", "grad x", "grad v0")
    for a, b, name in zip(got, want, names, strict=True):
        assert (a is None) == (b is None), name
        if a is None:
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if name in close:
            torch.testing.assert_close(a, b, msg=name, **TOLERANCE.get(a.dtype, {}))
        else:
            assert torch.equal(a, b), f"{name}: max |diff| {(a - b).abs().max().item():g}"


TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-6)}  # others: assert_close's defaults


def reference(x, thr, p, v0=None, **kw):
    return lif_multistep(x, thr, p, v0)  # every membrane: the final one is membrane[-1]


def triton(x, thr, p, v0=None, **kw):
    return lif_multistep_fast(x, thr, p, v0, backend="triton", **kw)


@kernel_case
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("decay", [0.5, 1.0, 0.9])
@pytest.mark.parametrize("thr_kind", ["tensor", "float", "channel"])
def test_forward_and_gradients_match_the_reference(reset, decay, thr_kind):
    # [7, 3, 4, 5] on the 1/8 grid (u == θ happens: the strict ">"), then a ragged
    # non-power-of-two [5, 3, 4, 93] (N = 1116: two programs, the second one partly masked)
    thr = threshold(thr_kind)
    for x in (inputs(1, grid=True), inputs(2, grid=False, shape=(5, 3, 4, 93))):
        v0 = inputs(3, grid=False, shape=x.shape)[0] * 0.5
        for v_init, v in ((0.0, None), (0.3, None), (0.0, v0)):
            p = LIFParams(decay=decay, reset=reset, v_init=v_init, gamma=0.7)
            want = run(reference, x, thr, p, v)
            assert 0.1 < want[0].mean() < 0.9  # spikes, silence and resets all happen
            assert_matches(run(triton, x, thr, p, v), want)


@kernel_case
@pytest.mark.parametrize("T", [1, 2, 6, 16])
@pytest.mark.parametrize("neuron", ["lif-direct", "if-converted"])
def test_paper_neurons_over_T_and_odd_shapes(T, neuron):
    # The two neurons the paper's models use: the LIF of direct training (decay 0.5, hard
    # reset, θ = 1, γ = 1) and the IF of conversion (decay 1, soft reset, v_init = θ/2).
    if neuron == "lif-direct":
        p, thr = LIFParams(decay=0.5, reset="hard"), torch.tensor(1.0)
    else:
        p, thr = LIFParams(decay=1.0, reset="soft", v_init=0.75 / 2), torch.tensor(0.75)
    x = inputs(T, grid=False, shape=(T, 3, 5, 7, 11))  # N = 1155
    assert_matches(run(triton, x, thr, p, None), run(reference, x, thr, p, None))


@kernel_case
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32_rounded_once(dtype):
    # AMP hands a LIF layer float16/bfloat16: the kernel computes in float32 and rounds its
    # outputs and gradients once, i.e. the float32 reference on the same values, rounded.
    x, thr = inputs(4, grid=False, shape=(6, 3, 4, 33)), threshold("channel")
    p = LIFParams(decay=0.5, reset="hard", v_init=0.2)
    v0 = inputs(5, grid=False, shape=x.shape)[0]
    got = run(triton, x, thr, p, v0, dtype=dtype, via=dtype)
    assert all(t.dtype == dtype for t in got)
    want = run(reference, x, thr, p, v0, via=dtype)  # float32 on the rounded values
    # Triton's interpreter truncates float32 -> bfloat16 (the GPU rounds to nearest even, as
    # torch does): there the bfloat16 membrane may be one ulp off
    truncated = ("membrane",) if INTERPRETED and dtype == torch.bfloat16 else ()
    assert_matches(got, [t.to(dtype) for t in want], close=GRADS + truncated)


@kernel_case
@pytest.mark.parametrize("loss", ["spike_sum", "membrane_only", "final_state", "no_v0_grad"])
def test_partial_output_gradients(loss):
    # Only some outputs reach the loss: a missing gradient drops its term; .sum() gives a
    # stride-0 gradient; keep_membrane=False returns only the final state.
    x, p = inputs(6, grid=False), LIFParams(decay=0.5, reset="soft", v_init=0.1)
    v0 = to_device(inputs(7, grid=False)[0])[0].requires_grad_(loss != "no_v0_grad")
    grads = []
    for fn in (reference, triton):
        xg = x.to(DEVICE, copy=True).requires_grad_(True)
        spikes, membrane = fn(xg, 1.0, p, v0, keep_membrane=loss != "final_state")
        if loss in ("spike_sum", "no_v0_grad"):
            spikes.sum().backward()
        elif loss == "membrane_only":
            (membrane**2).sum().backward()
        else:
            weights = torch.linspace(-1, 1, membrane.shape[-1], device=DEVICE)
            (membrane[-1] * weights).sum().backward()
        grads.append((xg.grad, v0.grad))
        v0.grad = None
    assert_matches((None, None, *grads[1]), (None, None, *grads[0]))
    assert grads[0][0].abs().sum() > 0


@kernel_case
def test_saved_state_is_compact():
    # BPTT keeps only the input (and the threshold): count the bytes autograd saves.
    x = inputs(8, grid=False, shape=(8, 4, 50)).to(DEVICE).requires_grad_(True)
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        triton(x, 1.0, LIFParams(decay=0.5, reset="hard"))
    assert 0 < sum(sizes) <= x.numel() * 4 + 4


@kernel_case
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_streaming_state_in_place_and_through_the_module(reset):
    # One step at a time under no_grad == the multi-step run, the state's membrane updated in
    # place; a state carried across two training chunks == one run, BPTT included.
    x = inputs(9, grid=True).to(DEVICE)
    kw = dict(decay=0.5, threshold=torch.linspace(0.5, 1.25, 4).view(4, 1), reset=reset)
    lif, ref = LIF(**kw, v_init=0.25, backend="triton"), LIF(**kw, v_init=0.25, backend="reference")
    lif, ref = lif.to(DEVICE), ref.to(DEVICE)
    want = ref(x)
    state = RunState()
    with torch.no_grad():
        outs = [lif(x[:1], state)]
        v = state.get(lif).v
        outs += [lif(x[t : t + 1], state) for t in range(1, x.shape[0])]
    assert torch.equal(torch.cat(outs), want)
    assert state.get(lif).v.data_ptr() == v.data_ptr()
    grads = []
    for layer in (ref, lif):
        xg, state = x.clone().requires_grad_(True), RunState()
        out = torch.cat([layer(xg[:3], state), layer(xg[3:], state)])
        (out * torch.arange(out.numel(), device=DEVICE).view(out.shape).sin()).sum().backward()
        grads.append((out.detach(), xg.grad))
    assert_matches((*grads[1], None, None), (*grads[0], None, None))


@kernel_case
def test_custom_op_registration_and_torch_compile():
    # The op's schema, fake (meta) implementation and autograd formula, checked by PyTorch;
    # then a compiled graph with the op inside (no graph break) gives the eager result.
    x = inputs(10, grid=False, shape=(4, 2, 33)).to(DEVICE)
    thr = torch.tensor(1.0, device=DEVICE)
    lif_direct, if_converted = (0.5, 0.0, True, 1.0, True), (1.0, 0.5, False, 1.0, False)
    torch.library.opcheck(torch.ops.snnlib.lif_forward.default, (x, None, thr, *lif_direct))
    torch.library.opcheck(torch.ops.snnlib.lif_forward.default, (x, x[0], thr, *if_converted))
    p, weights = LIFParams(decay=0.5, reset="hard"), torch.randn(x.shape).to(DEVICE)

    def loss(x):
        return (triton(x, 1.0, p).spikes * weights).sum()

    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    compiled(xa).backward()
    loss(xb).backward()
    assert torch.equal(xa.grad, xb.grad)


@kernel_case
def test_threshold_gradients_run_the_reference():
    # A threshold that requires grad is not what the kernels cover: the reference runs it.
    x, p = inputs(11, grid=False).to(DEVICE), LIFParams()
    thr = torch.tensor(1.0, device=DEVICE, requires_grad=True)
    lif_multistep_fast(x, thr, p, backend="triton").spikes.sum().backward()
    assert thr.grad is not None and thr.grad != 0


def test_unsupported_inputs_and_a_missing_triton(monkeypatch):
    # float64 or (without the interpreter) a CPU tensor: 'triton' refuses and names why;
    # 'auto' never sends CPU tensors to Triton; without Triton 'triton' says so.
    from snnlib.neurons import triton_lif

    x, p = inputs(12, grid=False), LIFParams()
    with pytest.raises(ValueError, match="float64"):
        lif_multistep_fast(x.double(), 1.0, p, backend="triton")
    if not INTERPRETED:
        with pytest.raises(ValueError, match="TRITON_INTERPRET"):
            lif_multistep_fast(x, 1.0, p, backend="triton")

    def boom(*args):
        raise AssertionError("the Triton kernels ran a CPU tensor under 'auto'")

    monkeypatch.setattr(triton_lif.TritonLIF, "apply", boom)
    assert torch.equal(lif_multistep_fast(x, 1.0, p).spikes, lif_multistep(x, 1.0, p).spikes)
    monkeypatch.setattr(triton_lif, "triton", None)
    assert not triton_lif.usable(x, required=False)
    with pytest.raises(ValueError, match="not installed"):
        lif_multistep_fast(x, 1.0, p, backend="triton")
