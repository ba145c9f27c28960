"""The RCS regulariser: make a layer's early responses look like its late ones.

**SNN version** (docs/method.md §1.5), for spiking layer ``l`` and sample ``n``, with spikes
``s_t`` and post-reset membrane ``v_t``::

    r_t     = s_t + ReLU(v_t / θ)
    k       = floor(ρ·T)   (all T steps if k == 0)
    r_d     = stopgrad( mean of r_t over the last k steps )
    c_t     = <r_t, r_d> / ( sqrt(||r_t||² + 1e-5) · sqrt(||r_d||² + 1e-5) )
    R^l(n)  = 1 / ( mean_t c_t + 1e-5 )

**ANN version** for QCFS training, on the pre-activation ``z`` of each QCFS layer::

    R^l(n)  = max_{batch}(ReLU(z)) / sqrt( mean(ReLU(z_n)²) + 1e-5 )

**Mask and worst-case aggregation**: only samples whose per-timestep output ``o_t`` (not
cumulative) is correct on each of the last ``k_m = floor(ρ_m·T)`` steps (all steps if 0)
count, and ``R = mean_l max_n ( m(n) · R^l(n) )``. The total objective is
``L_task + α·R``.

Deviation from the official code, on purpose: the official reference window is fixed at 0.3
and ignores its config key; here ``rho`` (reference window) and ``mask_rho`` (mask window)
are both parameters, with the official values as defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snnlib import checks
from snnlib.neurons import Collector, fast_lif

EPS = 1e-5


def window(T: int, rho: float) -> int:
    """``floor(ρ·T)``, or ``T`` when that is 0 (the official slicing ``x[-0:]`` keeps all)."""
    k = math.floor(rho * T)
    return k if k > 0 else T


def rcs_snn(spikes: Tensor, membrane: Tensor, threshold: Tensor | float, rho: float = 0.3):
    """Per-sample inverse mean cosine ``R^l(n)`` ``[B]`` of one spiking layer ``[T, B, ...]``.

    On a CPU with the C++ kernel (:func:`snnlib.neurons.fast_lif.cpp_kernel`), float32 inputs
    and one threshold value, the elementwise passes run fused (:class:`_FusedParts`), with the
    same bits forward and backward; elsewhere they are the PyTorch operations below.
    """
    if spikes.shape != membrane.shape or spikes.dim() < 2:
        raise ValueError(
            f"spikes and membrane must share shape [T, B, ...]; got {tuple(spikes.shape)} "
            f"and {tuple(membrane.shape)}"
        )
    k = window(spikes.shape[0], rho)
    thr = _fusable_threshold(spikes, membrane, threshold)
    if thr is not None:
        dot, sq, ref = _FusedParts.apply(spikes, membrane, thr, k)
    else:
        r = (spikes + torch.relu(membrane / threshold)).flatten(2)  # [T, B, F]
        ref = r[-k:].mean(0).detach()  # [B, F]
        dot, sq = (r * ref).sum(-1), (r * r).sum(-1)  # [T, B]
    norms = torch.sqrt(sq + EPS) * torch.sqrt((ref * ref).sum(-1) + EPS)
    return 1.0 / ((dot / norms).mean(0) + EPS)


def _fusable_threshold(spikes: Tensor, membrane: Tensor, threshold) -> float | None:
    """The threshold as one float where the fused passes apply, else ``None``."""
    cpu32 = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (spikes, membrane))
    if not cpu32 or fast_lif.cpp_kernel() is None:
        return None
    if isinstance(threshold, Tensor):
        if threshold.numel() != 1 or threshold.requires_grad or threshold.device.type != "cpu":
            return None
        threshold = threshold.item()
    return float(threshold)


class _FusedParts(torch.autograd.Function):
    """``(Σ_f r·ref, Σ_f r², ref)`` of ``r = s + ReLU(m / θ)`` ``[T, B, F]``, each elementwise
    pass fused in the C++ kernel in the PyTorch operations' order (the sums are
    ``torch.sum`` on the same products), so the values and the gradients of ``s`` and ``m``
    equal the unfused ones bit for bit (``tests/test_regularisers.py``); ``ref`` is detached.
    ``r`` is not stored: one pass forward (and one over the reference window) instead of five,
    one backward instead of about eight, each recomputing ``r`` from ``s`` and ``m``."""

    @staticmethod
    def forward(ctx, spikes: Tensor, membrane: Tensor, thr: float, k: int):
        lib, threads = fast_lif.cpp_kernel(), torch.get_num_threads()
        T, B = spikes.shape[:2]
        s = spikes.detach().reshape(T, B, -1).contiguous()
        m = membrane.detach().reshape(T, B, -1).contiguous()
        F = s.shape[2]
        last = torch.empty_like(s[-k:])  # r of the reference window only
        lib.snn_rcs_response(
            s[-k:].data_ptr(), m[-k:].data_ptr(), last.data_ptr(), last.numel(), thr, threads
        )
        ref = last.mean(0)  # [B, F]
        p, q = torch.empty_like(s), torch.empty_like(s)
        lib.snn_rcs_products(
            s.data_ptr(), m.data_ptr(), ref.data_ptr(), p.data_ptr(), q.data_ptr(), T, B, F, thr,
            threads,
        )  # fmt: skip
        ctx.save_for_backward(s, m, ref)
        ctx.thr, ctx.shapes = thr, (spikes.shape, membrane.shape)
        ctx.mark_non_differentiable(ref)
        return p.sum(-1), q.sum(-1), ref

    @staticmethod
    @once_differentiable
    def backward(ctx, g_dot: Tensor | None, g_sq: Tensor | None, _):
        s, m, ref = ctx.saved_tensors
        T, B, F = s.shape
        g_dot = s.new_zeros(T, B) if g_dot is None else g_dot.contiguous()
        g_sq = s.new_zeros(T, B) if g_sq is None else g_sq.contiguous()
        spikes_shape, membrane_shape = ctx.shapes
        # in the inputs' shapes, not views: autograd may then add the spikes' other gradient
        # (from the next layer) into g_r in place
        g_r, g_m = s.new_empty(spikes_shape), m.new_empty(membrane_shape)
        fast_lif.cpp_kernel().snn_rcs_backward(
            s.data_ptr(), m.data_ptr(), ref.data_ptr(), g_dot.data_ptr(), g_sq.data_ptr(),
            g_r.data_ptr(), g_m.data_ptr(), T, B, F, ctx.thr, torch.get_num_threads(),
        )  # fmt: skip
        return g_r, g_m, None, None


def rcs_ann(preactivation: Tensor) -> Tensor:
    """Per-sample max/RMS ratio ``R^l(n)`` ``[B]`` of one QCFS layer's input ``[T, B, ...]``.

    The ANN is trained with ``T = 1``, which is the spec's formula; for ``T > 1`` the RMS of a
    sample runs over its timesteps and features, and the max over the whole tensor.
    """
    if preactivation.dim() < 2:
        raise ValueError(f"preactivation must be [T, B, ...]; got {tuple(preactivation.shape)}")
    z = torch.relu(preactivation).transpose(0, 1).flatten(1)  # [B, T*F]
    return z.max() / torch.sqrt((z * z).mean(-1) + EPS)


def correct_mask(outputs: Tensor, labels: Tensor, mask_rho: float = 0.3) -> Tensor:
    """``m(n)``: 1 where ``argmax o_t = y`` on each of the last ``k_m`` steps (detached)."""
    k = window(outputs.shape[0], mask_rho)
    return (outputs[-k:].detach().argmax(-1) == labels).all(0).to(outputs.dtype)


def aggregate(per_layer: list[Tensor], mask: Tensor) -> Tensor:
    """``mean_l max_n ( m(n) · R^l(n) )``."""
    return torch.stack([(mask * r).max() for r in per_layer]).mean()


@dataclass(frozen=True)
class RCS:
    """The regulariser ``R`` of a forward call's collector; its weight α is applied where the
    training objective is built (:func:`snnlib.pipeline.network.make_objective`).

    ``rho``: reference window (fraction of T); ``mask_rho``: mask window (fraction of T).
    """

    rho: float = 0.3
    mask_rho: float = 0.3

    def __post_init__(self) -> None:
        for name in ("rho", "mask_rho"):
            checks.number(name, getattr(self, name), low=0, high=1, low_open=True)

    def value(self, collector: Collector, outputs: Tensor, labels: Tensor) -> Tensor:
        """``R`` for one batch: ``outputs`` ``[T, B, K]`` per-step, ``labels`` ``[B]``."""
        per_layer = []
        for rec in collector.records:
            if rec.spikes is not None:
                per_layer.append(rcs_snn(rec.spikes, rec.membrane, rec.threshold, self.rho))
            elif rec.preactivation is not None:
                per_layer.append(rcs_ann(rec.preactivation))
        if not per_layer:
            raise ValueError("the collector holds no spiking or QCFS layer records")
        return aggregate(per_layer, correct_mask(outputs, labels, self.mask_rho))
