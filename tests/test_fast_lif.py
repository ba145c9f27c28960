"""Fast LIF (snnlib.neurons.fast_lif) against the reference loop, bit for bit, forward and
backward."""

import os
import shutil
import subprocess

import pytest
import torch

import snnlib.neurons.fast_lif as fast_lif
from snnlib.neurons import LIF, Collector, LIFParams, RunState, lif_multistep
from snnlib.neurons.fast_lif import lif_multistep_fast

HAVE_CXX = bool(os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++"))
NAMES = ["cpp", "torch"] if HAVE_CXX else ["torch"]
BACKENDS = [
    pytest.param("cpp", marks=pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")),
    "torch",
]


@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler")
def test_kernel_builds():
    # With a compiler present the kernel must build (2-7 s, once); a failure shows why.
    assert fast_lif.cpp_available(), fast_lif._kernel()[1]


def inputs(seed: int, grid: bool, shape=(7, 3, 4, 5)) -> torch.Tensor:
    """``[T, B, C, F]`` input currents; ``grid`` puts many ``u`` exactly on the threshold."""
    g = torch.Generator().manual_seed(seed)
    if grid:  # multiples of 1/8: exact sums, so u == θ happens and tests the strict ">"
        return torch.randint(-4, 14, shape, generator=g).float() / 8
    return torch.randn(shape, generator=g) * 1.2 + 0.4


def threshold(kind: str, channels: int = 4):
    return {
        "tensor": torch.tensor(1.0),
        "float": 0.3,  # not a dyadic number: its float32 rounding must match too
        "channel": torch.linspace(0.5, 1.25, channels).view(channels, 1),  # broadcast [C, 1]
    }[kind]


def run(fn, x, thr, p, v0, **kw):
    """Forward + backward with dense spike and membrane gradients (the RCS regulariser's case)."""
    x = x.clone().requires_grad_(True)
    v = None if v0 is None else v0.clone().requires_grad_(True)
    spikes, membrane = fn(x, thr, p, v, **kw)
    g = torch.Generator().manual_seed(99)
    g_s = torch.randn(spikes.shape, generator=g).to(spikes.device)
    g_m = torch.randn(membrane.shape, generator=g).to(spikes.device)
    ((spikes * g_s).sum() + (membrane * g_m).sum()).backward()
    return spikes.detach(), membrane.detach(), x.grad, None if v is None else v.grad


def assert_identical(got, want):
    for a, b, name in zip(got, want, ("spikes", "membrane", "grad x", "grad v0"), strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert torch.equal(a, b), f"{name}: max |diff| {(a - b).abs().max().item():g}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("decay", [0.5, 1.0, 0.9])
@pytest.mark.parametrize("thr_kind", ["tensor", "float", "channel"])
@pytest.mark.parametrize("grid", [False, True])
def test_bit_identical_forward_and_gradients(backend, reset, decay, thr_kind, grid):
    x, thr = inputs(1, grid), threshold(thr_kind)
    v0 = inputs(2, grid)[0] * 0.5
    for v_init, v in ((0.0, None), (0.3, None), (0.0, v0)):
        p = LIFParams(decay=decay, reset=reset, v_init=v_init, gamma=0.7)
        want = run(lif_multistep, x, thr, p, v)
        # the inputs exercise spikes, silence and (on the grid) u exactly at threshold
        assert 0.1 < want[0].mean() < 0.9
        got = run(lif_multistep_fast, x, thr, p, v, backend=backend)
        assert_identical(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_inputs_hit_the_threshold_exactly(backend):
    # Guards the test above against passing vacuously: a non-strict threshold would differ.
    x, p = inputs(1, grid=True), LIFParams(decay=1.0, reset="soft")
    u = torch.cumsum(x, 0)  # IF, before the first reset: u_t = Σ x
    assert (u == 1.0).any()
    spikes = lif_multistep_fast(x, 1.0, p, backend=backend).spikes
    below = torch.tensor(1.0).nextafter(torch.tensor(0.0))  # one ulp below: u == 1 now spikes
    nonstrict = lif_multistep_fast(x, below, p, backend=backend).spikes
    assert not torch.equal(spikes, nonstrict)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", ["spike_sum", "membrane_only", "final_state"])
def test_partial_output_gradients(backend, loss):
    # Only some outputs reach the loss: the missing gradients must drop their terms exactly.
    x, p = inputs(3, grid=False), LIFParams(decay=0.5, reset="hard")
    grads = []
    fast_kw = {"backend": backend, "keep_membrane": loss != "final_state"}
    for fn, kw in ((lif_multistep, {}), (lif_multistep_fast, fast_kw)):
        xg = x.clone().requires_grad_(True)
        spikes, membrane = fn(xg, 1.0, p, **kw)
        if loss == "spike_sum":
            spikes.sum().backward()  # an expanded (stride 0) gradient
        elif loss == "membrane_only":
            (membrane**2).sum().backward()
        else:
            (membrane[-1] * torch.linspace(-1, 1, membrane.shape[-1])).sum().backward()
        grads.append(xg.grad)
    assert torch.equal(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_state_continuation_with_gradient(backend, reset):
    # Two chunks joined through the final membrane == one run, including BPTT across the join.
    x, p = inputs(4, grid=False), LIFParams(decay=0.5, reset=reset, v_init=0.2)
    g = inputs(5, grid=False)
    xa = x.clone().requires_grad_(True)
    whole = lif_multistep(xa, 1.0, p).spikes
    (whole * g).sum().backward()
    xb = x.clone().requires_grad_(True)
    first = lif_multistep_fast(xb[:3], 1.0, p, keep_membrane=False, backend=backend)
    assert first.membrane.shape == (1, *x.shape[1:])
    second = lif_multistep_fast(xb[3:], 1.0, p, first.membrane[-1], backend=backend).spikes
    joined = torch.cat([first.spikes, second])
    assert torch.equal(joined, whole)
    (joined * g).sum().backward()
    assert torch.equal(xb.grad, xa.grad)


def test_saved_state_is_compact():
    # BPTT keeps only the input (and v0): count the bytes autograd saves for backward.
    x = inputs(6, grid=False).requires_grad_(True)
    p = LIFParams(decay=0.5, reset="hard")

    def saved_bytes(fn, **kw):
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, 1.0, p, **kw)
        return sum(sizes)

    for backend in NAMES:
        assert saved_bytes(lif_multistep_fast, backend=backend) <= x.numel() * 4 + 4
    assert saved_bytes(lif_multistep) >= 3 * x.numel() * 4  # hard reset: z, u and 1 - s


def test_fallback_without_compiler(monkeypatch, tmp_path):
    # No compiler: one clear warning, then the pure-PyTorch path, still bit-identical.
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    monkeypatch.setenv("SNNLIB_CACHE", str(tmp_path))
    fast_lif._kernel.cache_clear()
    try:
        x, p = inputs(7, grid=False), LIFParams(decay=1.0, reset="soft")
        with pytest.warns(RuntimeWarning, match=r"C\+\+ kernel unavailable"):
            got = run(lif_multistep_fast, x, 1.0, p, None)
        assert not fast_lif.cpp_available()
        assert_identical(got, run(lif_multistep, x, 1.0, p, None))
        with pytest.raises(RuntimeError, match="unavailable"):
            lif_multistep_fast(x, 1.0, p, backend="cpp")
    finally:
        fast_lif._kernel.cache_clear()


def test_failed_build_is_retried_when_source_or_compiler_changes(monkeypatch, tmp_path):
    # A failing compiler (faked: no real build runs) is remembered for the same source and
    # compiler, retried when either changes, and on request; the message says how.
    compiler, source = tmp_path / "fake-c++", tmp_path / "lif_kernel.cpp"
    compiler.write_text("v1")
    source.write_text("// kernel v1")
    compiles = []

    def fake_run(cmd, **kwargs):
        if cmd[1:] == ["--version"]:
            return subprocess.CompletedProcess(cmd, 0, b"fake c++ 1.0", b"")
        compiles.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "error: no luck")

    monkeypatch.setattr(fast_lif.subprocess, "run", fake_run)
    monkeypatch.setattr(fast_lif, "SOURCE", source)
    monkeypatch.setenv("SNNLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(fast_lif.REBUILD_ENV, raising=False)

    def build() -> str:
        with pytest.raises(RuntimeError, match="error: no luck") as err:
            fast_lif._build(str(compiler), ["-O3"])
        assert "SNNLIB_REBUILD_KERNEL=1" in str(err.value)
        return str(err.value)

    build()
    assert len(compiles) == 1
    build()
    assert len(compiles) == 1  # remembered: the same source and compiler are not retried
    source.write_text("// kernel v2")
    build()
    assert len(compiles) == 2  # a changed source is built afresh
    compiler.write_text("v2, reinstalled")
    build()
    assert len(compiles) == 3  # so is a changed compiler
    monkeypatch.setenv(fast_lif.REBUILD_ENV, "1")
    message = build()
    assert len(compiles) == 4  # forced
    monkeypatch.delenv(fast_lif.REBUILD_ENV)
    build()
    assert len(compiles) == 4
    marker = next(w for w in message.split() if w.endswith(".failed"))
    os.unlink(marker)  # the file the message names
    build()
    assert len(compiles) == 5


def test_float64_noncontiguous_and_large_inputs():
    p = LIFParams(decay=0.5, reset="soft", v_init=0.1)
    x64 = inputs(8, grid=False).double()  # float64: the pure-PyTorch path
    assert_identical(
        run(lif_multistep_fast, x64, 1.0, p, None), run(lif_multistep, x64, 1.0, p, None)
    )
    xt = inputs(9, grid=False).transpose(1, 3)  # non-contiguous [T, F, C, B]
    assert_identical(
        run(lif_multistep_fast, xt, 1.0, p, None), run(lif_multistep, xt, 1.0, p, None)
    )
    # large enough for several threads and chunks, with a ragged tail
    xl = inputs(10, grid=False, shape=(5, 3, 70001))
    assert_identical(
        run(lif_multistep_fast, xl, 1.0, p, None), run(lif_multistep, xl, 1.0, p, None)
    )


def test_unsupported_cases_run_the_reference():
    x, p = inputs(11, grid=False), LIFParams()
    thr = torch.tensor(1.0, requires_grad=True)  # threshold gradients: the reference handles them
    fast_lif.lif_multistep_fast(x, thr, p).spikes.sum().backward()
    assert thr.grad is not None
    with pytest.raises(ValueError, match="backend"):
        lif_multistep_fast(x, 1.0, p, backend="cuda")
    with pytest.raises(ValueError, match=r"\[T, B, ...\]"):
        lif_multistep_fast(x[0, 0, 0], 1.0, p)


@pytest.mark.parametrize("backend", ["auto", *NAMES])
def test_lif_module_backends_agree_with_reference(backend):
    # The module path: weighted output, per-channel threshold, collector and streaming state.
    x = inputs(13, grid=False)
    kw = dict(decay=1.0, threshold=torch.tensor([0.8, 1.0, 1.2, 1.5]).view(4, 1), reset="soft")
    kw |= dict(v_init=0.4, weighted_output=True)
    ref, fast = LIF(**kw, backend="reference"), LIF(**kw, backend=backend)
    outs = []
    for lif in (ref, fast):
        xg = x.clone().requires_grad_(True)
        collector, state = Collector(), RunState()
        out = torch.cat([lif(xg[:2], state, collector), lif(xg[2:], state, collector)])
        membrane = torch.cat([r.membrane for r in collector.records])
        (out.sum() + (membrane**2).sum()).backward()
        outs.append((out.detach(), membrane.detach(), xg.grad, state.get(lif).v))
    assert_identical(outs[1], outs[0])
    assert "backend" in repr(fast)
    with pytest.raises(ValueError, match="backend"):
        LIF(backend="fast")


@pytest.mark.parametrize("backend", ["auto", *NAMES])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_streaming_inference_updates_the_state_in_place(backend, reset):
    # One step at a time under no_grad == the multi-step run; with the C++ kernel the state's
    # membrane is written in place (same storage every step) and a collector's record is not.
    x = inputs(14, grid=True)
    kw = dict(decay=0.5, threshold=torch.linspace(0.5, 1.25, 4).view(4, 1), reset=reset)
    lif = LIF(**kw, v_init=0.25, backend=backend)
    want = lif(x)
    state, collector = RunState(), Collector()
    with torch.no_grad():
        outs = [lif(x[:1], state, collector)]
        recorded = collector.records[0].membrane.clone()
        v = state.get(lif).v
        outs += [lif(x[t : t + 1], state) for t in range(1, x.shape[0])]
        state_b = RunState()  # the first step without a collector: v0 is v_init
        outs_b = [lif(x[t : t + 1], state_b) for t in range(x.shape[0])]
    assert torch.equal(torch.cat(outs), want) and torch.equal(torch.cat(outs_b), want)
    assert torch.equal(state.get(lif).v, state_b.get(lif).v)
    assert torch.equal(collector.records[0].membrane, recorded)
    in_place = backend != "torch" and fast_lif.cpp_available()
    assert (state.get(lif).v.data_ptr() == v.data_ptr()) == in_place
    with torch.enable_grad():  # training: never in place (v0 is saved for backward)
        xg = x.clone().requires_grad_(True)
        state = RunState()
        lif(xg[:1], state)
        v = state.get(lif).v
        lif(xg[1:2], state)
        assert state.get(lif).v.data_ptr() != v.data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_pure_pytorch_path():
    # the CUDA fallback where Triton is absent ("auto" runs Triton: tests/test_triton_lif.py)
    x, p = inputs(12, grid=False).to("cuda"), LIFParams(decay=0.5, reset="soft")
    got = run(lif_multistep_fast, x, 1.0, p, None, backend="torch")
    assert_identical(got, run(lif_multistep, x, 1.0, p, None))
