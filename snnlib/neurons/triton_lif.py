"""The fused multi-step LIF/IF on GPUs: Triton kernels behind a ``torch.library`` custom op.

The GPU twin of the C++ kernel of :mod:`snnlib.neurons.fast_lif`: the same dynamics and the same
backward pass (derived in that module's docstring), the same compact BPTT state (only the
input ``I`` and ``v_0`` are saved; backward recomputes ``u_t`` into the buffer of the input
gradient it is about to write). One program owns ``BLOCK`` neurons for all ``T`` steps, so
the membrane stays in registers and each ``[T, N]`` array is read or written once per pass.

The op ``snnlib::lif_forward`` (with ``snnlib::lif_backward`` for its gradient) is registered
with :func:`torch.library.custom_op`, so autograd, ``torch.compile`` (an opaque node with a
fake implementation, no graph break) and autocast see one operator. :func:`snnlib.neurons.fast_lif.
lif_multistep_fast` calls it for CUDA tensors; CPU tensors run it only under Triton's
interpreter (``TRITON_INTERPRET=1`` set before the first launch), which is how the tests check
it on a machine without a GPU.

Precision: float32, float16 and bfloat16 inputs are loaded into float32 and every step is
computed in float32; spikes, membranes and gradients are rounded once to the input's dtype on
store. Under autocast (AMP) the layer below hands in float16, so a LIF layer computes exactly
what the float32 reference computes on those float16 values, rounded once on output (the
reference loop itself would round after every operation). The threshold is float32.

Bit-identity with the reference loop: each line is one reference operation in the same order;
fused multiply-adds are switched off (``enable_fp_fusion=False``) and the surrogate's division
by ``γ²`` is the reference's on that device: correctly rounded on CPU (``div_rn``), a multiply
by the float32 reciprocal on CUDA (what PyTorch's CUDA ``tensor / scalar`` computes).
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from snnlib.neurons.dynamics import LIFParams

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:  # e.g. macOS or a CPU-only install: usable() says so, nothing else runs
    triton = tl = InterpretedFunction = None

BLOCK = 1024  # neurons per program (4 warps): long enough rows to stream, enough programs
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def unavailable(x: Tensor) -> str:
    """Why the kernels cannot run ``x`` (``""`` when they can)."""
    if triton is None:
        return "Triton is not installed"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} is not one of {', '.join(map(str, DTYPES))}"
    if x.device.type == "cpu" and not isinstance(_forward_kernel, InterpretedFunction):
        return "CPU tensors need Triton's interpreter (TRITON_INTERPRET=1 before the import)"
    if x.device.type not in ("cpu", "cuda"):
        return f"device {x.device.type!r} is not CUDA"
    return ""


@functools.cache
def _warn(why: str) -> None:
    msg = f"{__name__}: Triton kernels unavailable ({why}); using the pure-PyTorch path"
    warnings.warn(msg, RuntimeWarning, stacklevel=5)


def usable(x: Tensor, required: bool) -> bool:
    """Whether the kernels run ``x``; ``required``: raise ``ValueError`` saying why not. A CUDA
    input without Triton installed warns once (the fallback is slower, not wrong)."""
    why = unavailable(x)
    if why and required:
        raise ValueError(f"backend='triton' cannot run this input: {why}")
    if why and triton is None and x.device.type == "cuda":
        _warn(why)
    return not why


def _jit(fn):
    return fn if triton is None else triton.jit(fn)


@_jit
def _start(v0_ptr, thr_ptr, offs, mask, v_init, thr_scalar, HAS_V0: tl.constexpr,
           THR_N: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """A program's initial membrane ``v_0`` (float32) and its threshold (``[BLOCK]`` or one)."""
    if HAS_V0:
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BLOCK], dtype=tl.float32) + v_init
    th = tl.load(thr_ptr + offs, mask=mask, other=1.0) if THR_N else thr_scalar
    return v, th


@_jit
def _step(x_ptr, row, mask, v, th, decay, HARD: tl.constexpr):
    """One step of :func:`snnlib.neurons.dynamics.lif_step` in float32: ``(u_t, s_t, v_t)``."""
    u = decay * v + tl.load(x_ptr + row, mask=mask, other=0.0).to(tl.float32)
    s = tl.where((u - th) > 0.0, 1.0, 0.0)  # strict ">"
    return u, s, u * (1.0 - s) if HARD else u - th * s


@_jit
def _forward_kernel(
    x_ptr, v0_ptr, thr_ptr, spikes_ptr, mem_ptr, T, N, decay, v_init, thr_scalar,
    HAS_V0: tl.constexpr, THR_N: tl.constexpr, HARD: tl.constexpr, KEEP: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v, th = _start(v0_ptr, thr_ptr, offs, mask, v_init, thr_scalar, HAS_V0, THR_N, BLOCK)
    for t in range(T):
        row = t * N + offs
        _, s, v = _step(x_ptr, row, mask, v, th, decay, HARD)
        tl.store(spikes_ptr + row, s.to(spikes_ptr.dtype.element_ty), mask=mask)
        if KEEP:
            tl.store(mem_ptr + row, v.to(mem_ptr.dtype.element_ty), mask=mask)
    if not KEEP:  # the final membrane only; mem_ptr may be v0_ptr (read above, per element)
        tl.store(mem_ptr + offs, v.to(mem_ptr.dtype.element_ty), mask=mask)


@_jit
def _backward_kernel(
    x_ptr, v0_ptr, thr_ptr, gs_ptr, gs_stride, gm_ptr, gm_stride, gm_first, ug_ptr, gv0_ptr,
    T, N, decay, v_init, thr_scalar, gamma, gamma2,
    HAS_V0: tl.constexpr, THR_N: tl.constexpr, HARD: tl.constexpr, HAS_GS: tl.constexpr,
    HAS_GM: tl.constexpr, RECIPROCAL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v, th = _start(v0_ptr, thr_ptr, offs, mask, v_init, thr_scalar, HAS_V0, THR_N, BLOCK)
    for t in range(T):  # recompute u_t, exactly as the forward, into the gradient's rows
        row = t * N + offs
        u, _, v = _step(x_ptr, row, mask, v, th, decay, HARD)
        tl.store(ug_ptr + row, u, mask=mask)
    g_next = tl.zeros([BLOCK], dtype=tl.float32)  # decay · g^u_{t+1}
    for i in range(T):  # reverse sweep: BPTT through the reset and the leak
        t = T - 1 - i
        row = t * N + offs
        u = tl.load(ug_ptr + row, mask=mask, other=0.0)
        z = u - th
        g_v = g_next  # g^v_t = g^m_t + a · g^u_{t+1}
        if HAS_GM:
            gm_mask = mask & (t >= gm_first)
            g_m = tl.load(gm_ptr + t * gm_stride + offs, mask=gm_mask, other=0.0)
            g_v = g_m.to(tl.float32) + g_v
        g_s = -(g_v * u) if HARD else (-g_v) * th  # through the reset
        if HAS_GS:
            g_out = tl.load(gs_ptr + t * gs_stride + offs, mask=mask, other=0.0)
            g_s = g_out.to(tl.float32) + g_s
        c = tl.maximum(gamma - tl.abs(z), 0.0)  # ZIF: (g · max(0, γ − |z|)) / γ²
        g_z = (g_s * c) * gamma2 if RECIPROCAL else tl.math.div_rn(g_s * c, gamma2)
        g_u = g_v * (1.0 - tl.where(z > 0.0, 1.0, 0.0)) + g_z if HARD else g_v + g_z
        tl.store(ug_ptr + row, g_u, mask=mask)
        g_next = g_u * decay
    tl.store(gv0_ptr + offs, g_next, mask=mask)  # ∂L/∂v_0 = a · g^u_0


def _launch(kernel, x: Tensor, *args, **constexprs) -> None:
    """One program per ``BLOCK`` neurons; on a GPU without fused multiply-adds (bit-identity)."""
    options = {} if x.device.type == "cpu" else {"enable_fp_fusion": False, "num_warps": 4}
    grid = (triton.cdiv(x[0].numel(), BLOCK),)
    kernel[grid](*args, BLOCK=BLOCK, **constexprs, **options)


def _threshold_args(thr: Tensor) -> tuple[Tensor, float]:
    """The kernels' threshold: the ``[N]`` float32 array (for a scalar, any tensor to point
    at, unused) and the scalar."""
    return (thr, 0.0) if thr.dim() else (thr, float(thr))


def _forward_into(
    x: Tensor, v0: Tensor | None, thr: Tensor, decay: float, v_init: float, hard: bool,
    membrane: Tensor,
) -> Tensor:  # fmt: skip
    """Run the forward kernel; returns the spikes and writes ``membrane``: ``[T, ...]`` (every
    step) or ``[1, ...]`` (the final one, which may share ``v0``'s storage: updated in place).

    ``x`` ``[T, ...]`` and ``v0`` ``x[0]``-shaped are contiguous, of one dtype of
    :data:`DTYPES`; ``thr`` is float32, 0-d or ``x[0]``-shaped and contiguous.
    """
    spikes = torch.empty_like(x)
    thr_n, thr_s = _threshold_args(thr)
    _launch(
        _forward_kernel, x, x, x if v0 is None else v0, thr_n, spikes, membrane, x.shape[0],
        x[0].numel(), decay, v_init, thr_s, HAS_V0=v0 is not None, THR_N=thr.dim() > 0,
        HARD=hard, KEEP=membrane.shape[0] == x.shape[0],
    )  # fmt: skip
    return spikes


@torch.library.custom_op("snnlib::lif_forward", mutates_args=())
def lif_forward(
    x: Tensor, v0: Tensor | None, thr: Tensor, decay: float, v_init: float, hard: bool,
    gamma: float, keep_membrane: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Spikes ``[T, ...]`` and membranes (``[T, ...]``, or ``[1, ...]``: the final one)."""
    membrane = x.new_empty((x.shape[0] if keep_membrane else 1, *x.shape[1:]))
    return _forward_into(x, v0, thr, decay, v_init, hard, membrane), membrane


@lif_forward.register_fake
def _(x, v0, thr, decay, v_init, hard, gamma, keep_membrane):
    return torch.empty_like(x), x.new_empty((x.shape[0] if keep_membrane else 1, *x.shape[1:]))


def _grad_rows(g: Tensor | None, T: int, n: int) -> tuple[Tensor | None, int]:
    """A ``[T, ...]`` (or ``[1, ...]``) gradient as (rows, elements between steps): one that
    is the same at every step (the gradient of ``.sum()``: stride 0) stays one row."""
    if g is None:
        return None, 0
    g = g.reshape(g.shape[0], n)
    if g.shape[0] != T or g.stride(0) == 0:
        return g[0].contiguous(), 0
    return g.contiguous(), n


@torch.library.custom_op("snnlib::lif_backward", mutates_args=())
def lif_backward(
    x: Tensor, v0: Tensor | None, thr: Tensor, g_spikes: Tensor | None,
    g_membrane: Tensor | None, decay: float, v_init: float, hard: bool, gamma: float,
    keep_membrane: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(∂L/∂x, ∂L/∂v_0)`` from the output gradients (``None``: that output is unused)."""
    T, n = x.shape[0], x[0].numel()
    gs, gs_stride = _grad_rows(g_spikes, T, n)
    gm, gm_stride = _grad_rows(g_membrane, T, n)
    gm_first = 0 if keep_membrane else T - 1  # the final membrane only: its gradient at T-1
    ug = torch.empty(x.shape, dtype=torch.float32, device=x.device)  # u_t, then ∂L/∂u_t
    gv0 = torch.empty(x.shape[1:], dtype=torch.float32, device=x.device)
    reciprocal = x.device.type == "cuda"  # see the module docstring
    thr_n, thr_s = _threshold_args(thr)
    _launch(
        _backward_kernel, x, x, x if v0 is None else v0, thr_n, x if gs is None else gs,
        gs_stride, x if gm is None else gm, gm_stride, gm_first, ug, gv0, T, n, decay, v_init,
        thr_s, gamma, 1.0 / gamma**2 if reciprocal else gamma**2, HAS_V0=v0 is not None,
        THR_N=thr.dim() > 0, HARD=hard, HAS_GS=gs is not None, HAS_GM=gm is not None,
        RECIPROCAL=reciprocal,
    )  # fmt: skip
    return ug.to(x.dtype), gv0.to(x.dtype)


@lif_backward.register_fake
def _(x, v0, thr, g_spikes, g_membrane, decay, v_init, hard, gamma, keep_membrane):
    return torch.empty_like(x), x.new_empty(x.shape[1:])


def _setup_context(ctx, inputs, output) -> None:
    x, v0, thr, *params = inputs
    ctx.save_for_backward(x, v0, thr)  # the compact BPTT state: nothing of size [T, N] but x
    ctx.params = params
    ctx.set_materialize_grads(False)  # a missing output gradient drops its term


def _backward(ctx, g_spikes: Tensor | None, g_membrane: Tensor | None):
    x, v0, thr = ctx.saved_tensors
    gx, gv0 = lif_backward(x, v0, thr, g_spikes, g_membrane, *ctx.params)
    gv0 = gv0 if v0 is not None and ctx.needs_input_grad[1] else None
    return (gx, gv0) + (None,) * (len(ctx.params) + 1)


lif_forward.register_autograd(_backward, setup_context=_setup_context)


class TritonLIF:
    """The interface :func:`snnlib.neurons.fast_lif.lif_multistep_fast` calls (as its
    ``_CppLIF``)."""

    @staticmethod
    def forward_into(x: Tensor, v0: Tensor | None, thr: Tensor, p: LIFParams, final: Tensor):
        """Inference only: the spikes, and the final membrane written into ``final``."""
        return _forward_into(x, v0, thr, p.decay, p.v_init, p.reset == "hard", final)

    @staticmethod
    def apply(x: Tensor, v0: Tensor | None, thr: Tensor, p: LIFParams, keep_membrane: bool):
        """Spikes and membranes through the custom op (autograd, torch.compile)."""
        hard = p.reset == "hard"
        return lif_forward(x, v0, thr, p.decay, p.v_init, hard, p.gamma, keep_membrane)
