"""Fast multi-step LIF/IF: a fused C++ kernel on CPU, a compact pure-PyTorch path elsewhere.

:func:`lif_multistep_fast` computes exactly what :func:`snnlib.neurons.dynamics.lif_multistep` (the
readable spec) computes, bit for bit, forward and backward, without a Python loop over ``T``
on CPU and without keeping every intermediate for BPTT. Dynamics (docs/method.md §1.2)::

    u_t = a · v_{t-1} + I_t        z_t = u_t − θ        s_t = H(z_t)
    v_t = u_t · (1 − s_t)  (hard)   or   v_t = u_t − θ · s_t  (soft)

Backward (BPTT through the reset and the leak, no detach). With ``σ(z) = max(0, γ − |z|)``
the ZIF surrogate ``dH/dz ≈ σ(z)/γ²``, incoming gradients ``g^s_t = ∂L/∂s_t`` (spike output)
and ``g^m_t = ∂L/∂v_t`` (membrane output, used by the RCS regulariser), going from
``t = T−1`` down to ``0`` with ``g^u_T = 0``::

    g^v_t = g^m_t + a · g^u_{t+1}                          total gradient of v_t
    g^ŝ_t = g^s_t − g^v_t · u_t     (hard: ∂v_t/∂s_t = −u_t)
    g^ŝ_t = g^s_t + (−g^v_t) · θ    (soft: ∂v_t/∂s_t = −θ)
    g^z_t = (g^ŝ_t · σ(z_t)) / γ²                          ZIF backward
    g^u_t = g^v_t · (1 − s_t) + g^z_t   (hard)     g^v_t + g^z_t   (soft)
    ∂L/∂I_t = g^u_t,   ∂L/∂v_0 = a · g^u_0

Each line is the autograd formula of one reference operation, evaluated in the same order, so
the gradients are bit-identical too (only the sign of a zero may differ where a gradient is
absent in the reference and zero here). A missing output gradient drops its term.

BPTT memory: the only state saved for backward is the input ``I`` (which the caller often
holds anyway) and ``v_0``; backward recomputes ``u_t`` chunk by chunk into the rows of the
input gradient it is about to write, so it needs no buffer of its own. The reference saves
``z_t``, ``u_t`` and ``1 − s_t`` per step for a hard reset (``z_t`` for a soft one).

Backends: ``"cpp"`` (float32, CPU: ``csrc/lif_kernel.cpp``, compiled on first use with the
system C++ compiler into the cache folder (:func:`snnlib.tools.paths.cache_dir`) (seconds), no torch
headers, no ninja, OpenMP through torch's own libgomp); ``"triton"`` (CUDA, float32/16/bf16:
:mod:`snnlib.neurons.triton_lif`, the same kernels in Triton as a ``torch.library`` custom op; CPU
tensors only under ``TRITON_INTERPRET=1``); ``"torch"`` (any device and float dtype: a
custom autograd function that still loops over ``T`` but saves the same compact state);
``"auto"`` picks ``"cpp"`` on CPU and ``"triton"`` on CUDA where they apply (and have built,
or Triton is installed), else ``"torch"``, warning once when the compiler or Triton is
missing. ``SNNLIB_FAST_LIF=torch`` forces the pure-PyTorch path.
A failed build is remembered in a marker file beside the kernel, keyed like the kernel by the
source, the compiler (its path, binary and version), the flags and the CPU, so a changed
source or compiler is built afresh; ``SNNLIB_REBUILD_KERNEL=1`` (or deleting the marker that
the warning names) retries with everything unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snnlib import checks
from snnlib.neurons.dynamics import LIFParams, StepOut, check_time_first, lif_multistep
from snnlib.tools import paths

BACKENDS = ("auto", "cpp", "torch", "triton")
SOURCE = Path(__file__).resolve().parent / "csrc" / "lif_kernel.cpp"
# -march=native: AVX2/AVX-512 where present (faster than SSE2; the kernel is compiled on the
# machine that runs it, and the CPU is part of the cache key). -ffp-contract=off: no fused
# multiply-add, so every rounding matches the PyTorch ops. -fno-trapping-math only lets the
# compiler vectorise the selects; no value changes.
CXXFLAGS = ["-O3", "-std=c++17", "-fPIC", "-shared", "-ffp-contract=off", "-fno-trapping-math"]
# Tried in order: a compiler without OpenMP (Apple clang) or -march=native still gets a kernel.
EXTRA_FLAGS = (["-march=native", "-fopenmp"], ["-fopenmp"], [])


def _cpu_tag() -> bytes:
    """What ``-march=native`` depends on, so a cache shared between machines stays correct."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        return next((ln for ln in info.splitlines() if ln.startswith("flags")), info).encode()
    except OSError:
        return f"{platform.machine()} {platform.processor()}".encode()


REBUILD_ENV = "SNNLIB_REBUILD_KERNEL"
FORCE_TORCH = os.environ.get("SNNLIB_FAST_LIF", "auto") == "torch"  # read once, at import


def _compiler_tag(cxx: str) -> bytes:
    """The compiler's identity: its resolved path, its binary's size and mtime, ``--version``."""
    path = Path(shutil.which(cxx) or cxx).resolve()
    try:
        st = path.stat()
        binary = f"{path} {st.st_size} {st.st_mtime_ns}"
    except OSError:
        binary = str(path)
    version = subprocess.run([cxx, "--version"], check=True, capture_output=True, timeout=30).stdout
    return binary.encode() + b"\0" + version


def _build_key(cxx: str, flags: list[str]) -> str:
    """What a kernel binary (and a failed build's marker) depends on."""
    parts = [SOURCE.read_bytes(), " ".join([cxx, *flags]).encode(), _compiler_tag(cxx), _cpu_tag()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _compile(cxx: str, flags: list[str], target: Path, failed: Path) -> None:
    """Compile into ``target`` (an atomic rename publishes it) or write ``failed`` and raise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [cxx, *flags, str(SOURCE), "-o", tmp]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            failed.write_text(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
            raise RuntimeError(_failure(failed))
        os.replace(tmp, target)  # other processes building at once: the last rename wins
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _failure(failed: Path) -> str:
    return (
        f"build failed, remembered in {failed} (a changed source or compiler is retried; to "
        f"retry now set {REBUILD_ENV}=1 or delete that file): {failed.read_text()}"
    )


def _build(cxx: str, flags: list[str]) -> Path:
    """Compile once per (source, compiler, flags, CPU); a failure is not retried for the same
    key unless ``SNNLIB_REBUILD_KERNEL=1``."""
    target = paths.cache_dir() / f"lif_kernel_{_build_key(cxx, flags)}.so"
    failed = target.with_suffix(".failed")
    if target.exists():
        return target
    if failed.exists() and os.environ.get(REBUILD_ENV, "") not in ("", "0"):
        failed.unlink()
    if failed.exists():
        raise RuntimeError(_failure(failed))
    _compile(cxx, flags, target, failed)
    return target


@functools.cache
def _kernel() -> tuple[ctypes.CDLL | None, str]:
    """(the compiled kernel or ``None``, why not), built on first call; warns once if absent."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    try:
        if not cxx:
            raise RuntimeError("no C++ compiler found (set CXX)")
        if not SOURCE.exists():
            raise RuntimeError(f"kernel source {SOURCE} is missing from this install")
        for i, extra in enumerate(EXTRA_FLAGS):
            try:
                path = _build(cxx, CXXFLAGS + extra)
                break
            except RuntimeError:
                if i == len(EXTRA_FLAGS) - 1:
                    raise
        lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        why = (str(err).splitlines() or [type(err).__name__])[0]
        msg = f"{__name__}: C++ kernel unavailable ({why}); using the pure-PyTorch path"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return None, why
    p, i64, f32, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
    lib.snn_lif_forward.argtypes = [p] * 6 + [i64, i64, f32, f32, f32, i32, i32]
    lib.snn_lif_backward.argtypes = [p, p, p, p, i64, p, i64, i64, p, p, i64, i64]
    lib.snn_lif_backward.argtypes += [f32] * 5 + [i32, i32]
    lib.snn_lif_forward.restype = lib.snn_lif_backward.restype = i32
    lib.snn_rcs_response.argtypes = [p, p, p, i64, f32, i32]
    lib.snn_rcs_products.argtypes = [p] * 5 + [i64] * 3 + [f32, i32]
    lib.snn_rcs_backward.argtypes = [p] * 7 + [i64] * 3 + [f32, i32]
    for name in ("snn_rcs_response", "snn_rcs_products", "snn_rcs_backward"):
        getattr(lib, name).restype = None
    return lib, ""


def cpp_available() -> bool:
    """Whether the C++ kernel is built and loaded (builds it on first call)."""
    return _kernel()[0] is not None


def cpp_kernel() -> ctypes.CDLL | None:
    """The loaded C++ kernel library (built on first call), or ``None`` where it is unavailable
    or ``SNNLIB_FAST_LIF=torch`` asks for the pure-PyTorch paths; its RCS passes are used by
    :func:`snnlib.regularisers.rcs_snn`."""
    return None if FORCE_TORCH else _kernel()[0]


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _grad_rows(g: Tensor | None, n: int) -> tuple[Tensor | None, int]:
    """A ``[T, N]`` gradient as (rows, stride between steps): an expanded one stays one row."""
    if g is None:
        return None, 0
    g = g.reshape(g.shape[0], n)
    if g.stride(0) == 0:  # e.g. the gradient of .sum(): no need to materialise T copies
        return g[0].contiguous(), 0
    return g.contiguous(), n


def _split_threshold(thr: Tensor) -> tuple[Tensor | None, float]:
    """The kernel's threshold arguments: an ``[N]`` array, or none and a scalar."""
    return (thr, 0.0) if thr.dim() else (None, float(thr))


def _cpp_forward(x, v0, thr, p: LIFParams, membrane, final) -> Tensor:
    """Run the forward kernel into ``membrane`` ``[T, ...]`` or ``final`` ``[1, ...]`` (one is
    given; ``final`` may share ``v0``'s storage); returns the spikes."""
    thr_n, thr_s = _split_threshold(thr)
    spikes = torch.empty_like(x)
    status = _kernel()[0].snn_lif_forward(
        x.data_ptr(), _ptr(v0), _ptr(thr_n), spikes.data_ptr(), _ptr(membrane), _ptr(final),
        x.shape[0], x[0].numel(), p.decay, p.v_init, thr_s, p.reset == "hard",
        torch.get_num_threads(),
    )  # fmt: skip
    if status != 0:
        raise MemoryError(f"{__name__}: the kernel could not allocate its work buffer")
    return spikes


class _CppLIF(torch.autograd.Function):
    """Fused kernel; saves only ``x`` and ``v0`` (see the module docstring)."""

    @staticmethod
    def forward_into(x, v0, thr, p: LIFParams, final: Tensor) -> Tensor:
        """Inference only: the spikes, and the final membrane written into ``final``."""
        return _cpp_forward(x, v0, thr, p, None, final)

    @staticmethod
    def forward(ctx, x, v0, thr, p: LIFParams, keep_membrane: bool):
        membrane = torch.empty_like(x) if keep_membrane else None
        final = None if keep_membrane else x.new_empty((1, *x.shape[1:]))
        spikes = _cpp_forward(x, v0, thr, p, membrane, final)
        ctx.set_materialize_grads(False)
        thr_n, thr_s = _split_threshold(thr)
        ctx.save_for_backward(x, v0, thr_n)
        ctx.p, ctx.thr_s, ctx.keep_membrane = p, thr_s, keep_membrane
        return spikes, membrane if keep_membrane else final

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_membrane):
        x, v0, thr_n = ctx.saved_tensors
        p, T, n = ctx.p, x.shape[0], x[0].numel()
        gs, gs_stride = _grad_rows(g_spikes, n)
        gm, gm_stride = _grad_rows(g_membrane, n)
        gm_first = 0 if ctx.keep_membrane else T - 1  # final state only: gradient at T-1
        if not ctx.keep_membrane and gm is not None:
            gm = gm.reshape(-1)
            gm_stride = 0
        gx = torch.empty_like(x)
        gv0 = torch.empty_like(v0) if v0 is not None and ctx.needs_input_grad[1] else None
        status = _kernel()[0].snn_lif_backward(
            x.data_ptr(), _ptr(v0), _ptr(thr_n), _ptr(gs), gs_stride, _ptr(gm), gm_stride,
            gm_first, gx.data_ptr(), _ptr(gv0), T, n, p.decay, p.v_init, ctx.thr_s, p.gamma,
            p.gamma**2, p.reset == "hard", torch.get_num_threads(),
        )  # fmt: skip
        if status != 0:
            raise MemoryError(f"{__name__}: the kernel could not allocate its work buffer")
        return gx, gv0, None, None, None


def _torch_step(x_t: Tensor, v: Tensor, thr: Tensor | float, p: LIFParams) -> tuple:
    """:func:`snnlib.neurons.dynamics.lif_step` without autograd: the same operations in the same
    order."""
    u = p.decay * v + x_t
    s = ((u - thr) > 0).to(u.dtype)
    v_next = u * (1.0 - s) if p.reset == "hard" else u - thr * s
    return u, s, v_next


class _TorchLIF(torch.autograd.Function):
    """Any device and dtype: loops over ``T`` in Python but saves only ``x`` and ``v0``."""

    @staticmethod
    def forward(ctx, x, v0, thr, p: LIFParams, keep_membrane: bool):
        v = torch.full_like(x[0], p.v_init) if v0 is None else v0
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if keep_membrane else None
        for t in range(x.shape[0]):
            _, spikes[t], v = _torch_step(x[t], v, thr, p)
            if keep_membrane:
                membrane[t] = v
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, v0, thr)
        ctx.p, ctx.keep_membrane = p, keep_membrane
        return spikes, membrane if keep_membrane else v.unsqueeze(0)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_membrane):
        x, v0, thr = ctx.saved_tensors
        p, T = ctx.p, x.shape[0]
        gx = torch.empty_like(x)  # holds the recomputed u_t until step t's gradient replaces it
        v = torch.full_like(x[0], p.v_init) if v0 is None else v0
        for t in range(T):
            gx[t], _, v = _torch_step(x[t], v, thr, p)
        g_next = None  # a · g^u_{t+1}
        for t in range(T - 1, -1, -1):
            u = gx[t]
            z = u - thr
            g_m = None
            if g_membrane is not None and (ctx.keep_membrane or t == T - 1):
                g_m = g_membrane[t if ctx.keep_membrane else 0]
            g_v = g_m if g_next is None else (g_next if g_m is None else g_m + g_next)
            g_s = None if g_spikes is None else g_spikes[t]
            if g_v is not None:
                reset = -(g_v * u) if p.reset == "hard" else (-g_v) * thr
                g_s = reset if g_s is None else g_s + reset
            if g_s is None:  # nothing reaches step t
                gx[t].zero_()
                continue
            g_z = g_s * (p.gamma - z.abs()).clamp(min=0) / p.gamma**2
            if g_v is None:
                g_u = g_z
            elif p.reset == "hard":
                g_u = g_v * (1.0 - (z > 0).to(u.dtype)) + g_z
            else:
                g_u = g_v + g_z
            gx[t] = g_u
            g_next = g_u * p.decay
        g_v0 = None
        if v0 is not None and ctx.needs_input_grad[1]:
            g_v0 = torch.zeros_like(v0) if g_next is None else g_next
        return gx, g_v0, None, None, None


def _reference(x, threshold, p, v, keep_membrane) -> StepOut:
    out = lif_multistep(x, threshold, p, v)
    return out if keep_membrane else StepOut(out.spikes, out.membrane[-1:])


def _fast_threshold(threshold: Tensor | float, x: Tensor, dtype: torch.dtype) -> Tensor | None:
    """The threshold as the fast paths take it (a 0-d tensor of ``dtype`` for one value), or
    ``None`` for what they do not cover: one that requires grad, or has another dtype or
    shape."""
    if not isinstance(threshold, Tensor):
        return torch.tensor(float(threshold), dtype=dtype, device=x.device)
    if threshold.requires_grad or (threshold.dim() and threshold.dtype != dtype):
        return None
    # (a 0-d threshold always fits; the check costs tens of microseconds per call)
    if threshold.dim() and torch.broadcast_shapes(threshold.shape, x.shape[1:]) != x.shape[1:]:
        return None
    thr = threshold.to(device=x.device, dtype=dtype)
    return thr.reshape(()) if thr.numel() == 1 else thr  # one value: the scalar path


def _use_cpp(backend: str, x: Tensor) -> bool:
    """Whether the C++ kernel runs ``x`` (``backend='cpp'`` raises where it cannot)."""
    use_cpp = backend in ("auto", "cpp") and not FORCE_TORCH
    use_cpp = use_cpp and x.device.type == "cpu" and x.dtype == torch.float32
    if backend == "cpp" and not use_cpp:
        raise ValueError("backend='cpp' needs float32 CPU tensors (and no SNNLIB_FAST_LIF=torch)")
    if use_cpp and _kernel()[0] is None:
        if backend == "cpp":
            raise RuntimeError(f"snnlib.neurons.fast_lif: C++ kernel unavailable ({_kernel()[1]})")
        return False
    return use_cpp


def _triton_kernel(backend: str, x: Tensor):
    """:class:`snnlib.neurons.triton_lif.TritonLIF` where it runs ``x`` (CUDA tensors under
    ``"auto"``;
    ``"triton"`` raises where it cannot), else ``None``."""
    auto = backend == "auto" and x.device.type == "cuda"
    if backend == "triton" or (auto and not FORCE_TORCH):
        from snnlib.neurons import triton_lif  # imports Triton: only for CUDA tensors or on request

        return triton_lif.TritonLIF if triton_lif.usable(x, backend == "triton") else None
    return None


def _run_fused(x, thr, p: LIFParams, v, keep_membrane: bool, inplace: bool, kernel) -> StepOut:
    """A fused ``kernel`` (:class:`_CppLIF` or :class:`snnlib.neurons.triton_lif.TritonLIF`); in
    inference with ``inplace``, the final membrane is written into ``v``."""
    step_shape = x.shape[1:]
    thr = thr.expand(step_shape).contiguous() if thr.dim() else thr
    grad = torch.is_grad_enabled() or (v is not None and v.requires_grad)
    if inplace and v is not None and not (keep_membrane or grad):
        final = v.view(1, *step_shape)
        return StepOut(kernel.forward_into(x.contiguous(), v, thr, p, final), final)
    return StepOut(*kernel.apply(x.contiguous(), v, thr, p, keep_membrane))


def lif_multistep_fast(
    x: Tensor,
    threshold: Tensor | float,
    p: LIFParams,
    v: Tensor | None = None,
    *,
    keep_membrane: bool = True,
    backend: str = "auto",
    inplace: bool = False,
) -> StepOut:
    """:func:`snnlib.neurons.dynamics.lif_multistep`, bit for bit, fused (see the module docstring).

    ``x`` is ``[T, B, ...]``; ``threshold`` a number or a tensor broadcastable to ``x[0]``;
    ``v`` the initial membrane (``None``: ``v_init``). Returns spikes ``[T, B, ...]`` and the
    post-reset membranes ``[T, B, ...]``, or with ``keep_membrane=False`` only the final one,
    ``[1, B, ...]`` (all a streaming state needs; saves a ``[T, N]`` write).
    ``inplace=True`` lets a fused kernel write that final membrane into ``v`` itself in
    inference (autograd off, ``v`` not requiring grad, ``v`` contiguous and ``x[0]``-shaped):
    streaming then moves less memory per step than with a fresh buffer. ``v`` must not be
    needed afterwards; where the conditions do not hold, a new tensor is returned as usual.
    The Triton path (CUDA) also takes float16/bfloat16 ``x`` and computes it in float32.
    Cases the fast paths do not cover (a threshold that requires grad or has another dtype or
    shape, a ``v`` on another device or of another dtype, ``T = 0``) run the reference.
    """
    checks.one_of("backend", backend, BACKENDS)
    check_time_first(x)
    triton = _triton_kernel(backend, x)  # computes in float32 whatever the input's dtype
    fast = x.shape[0] and x.is_floating_point()
    thr = _fast_threshold(threshold, x, torch.float32 if triton else x.dtype) if fast else None
    if thr is None or (v is not None and (v.dtype != x.dtype or v.device != x.device)):
        return _reference(x, threshold, p, v, keep_membrane)
    if v is not None:
        v = v.expand(x.shape[1:]).contiguous()  # autograd sums a broadcast v0's gradient
    kernel = triton or (_CppLIF if _use_cpp(backend, x) else None)
    if kernel is not None:
        return _run_fused(x, thr, p, v, keep_membrane, inplace, kernel)
    return StepOut(*_TorchLIF.apply(x, v, thr, p, keep_membrane))
