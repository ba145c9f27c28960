"""LIF / IF dynamics: the physical parameters, the spike function and the pure step functions.

Dynamics (docs/method.md §1.2), for a layer with input current ``I_t`` and threshold ``θ``::

    u_t = decay · v_{t-1} + I_t          v_0 = v_init (absolute units)
    s_t = H(u_t − θ)                      H(x) = 1 if x > 0 else 0   (strict ">")
    v_t = u_t · (1 − s_t)                 hard reset
    v_t = u_t − θ · s_t                   soft reset (reset by subtraction)
    out = s_t   or   θ · s_t              (``weighted_output=True``, used after conversion)

``decay=0.5`` is the direct-training LIF; ``decay=1.0`` is the IF neuron of conversion.
``v_t`` is the *post-reset* membrane before the leak; the RCS regulariser needs it.
The backward pass of ``H`` is the ZIF triangle ``(1/γ²)·max(0, γ − |u − θ|)`` (TET), with no
detach anywhere, so BPTT flows through the reset and the recursion.

:func:`lif_multistep` is the readable reference loop; :mod:`snnlib.neurons.fast_lif` computes the
same
numbers fused, and :class:`snnlib.neurons.LIF` is the module around both. Both import this
module, which imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from snnlib import checks

RESET_MODES = ("hard", "soft")


class ZIF(torch.autograd.Function):
    """Heaviside forward, triangle surrogate backward: ``dH/dx = max(0, γ − |x|) / γ²``."""

    @staticmethod
    def forward(ctx, x: Tensor, gamma: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.gamma = gamma
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        gamma = ctx.gamma
        return grad * (gamma - x.abs()).clamp(min=0) / gamma**2, None


def spike_fn(x: Tensor, gamma: float = 1.0) -> Tensor:
    """Strict Heaviside of ``x = u − θ`` with the ZIF surrogate gradient of width ``gamma``."""
    return ZIF.apply(x, gamma)


@dataclass(frozen=True)
class LIFParams:
    """Physical parameters of a LIF layer (the threshold is on the module: maybe a tensor)."""

    decay: float = 0.5
    reset: str = "hard"
    v_init: float = 0.0
    weighted_output: bool = False
    gamma: float = 1.0

    def __post_init__(self) -> None:
        checks.one_of("reset", self.reset, RESET_MODES)
        checks.number("decay (1.0 is IF)", self.decay, low=0.0, high=1.0)
        checks.number("gamma (surrogate width)", self.gamma, low=0.0, low_open=True)


class StepOut(NamedTuple):
    """One step of a layer: spikes ``s_t`` (0/1), the post-reset membrane ``v_t``."""

    spikes: Tensor
    membrane: Tensor


def lif_step(x: Tensor, v: Tensor, threshold: Tensor | float, p: LIFParams) -> StepOut:
    """One timestep: ``x`` is the input current ``I_t``, ``v`` the previous post-reset membrane."""
    u = p.decay * v + x
    s = spike_fn(u - threshold, p.gamma)
    v_next = u * (1.0 - s) if p.reset == "hard" else u - threshold * s
    return StepOut(s, v_next)


def check_time_first(x: Tensor) -> None:
    """``ValueError`` unless ``x`` is ``[T, B, ...]`` (at least two dimensions)."""
    if x.dim() < 2:
        raise ValueError(f"x must be [T, B, ...]; got shape {tuple(x.shape)}")


def lif_multistep(
    x: Tensor, threshold: Tensor | float, p: LIFParams, v: Tensor | None = None
) -> StepOut:
    """Run ``x`` ``[T, B, ...]`` from membrane ``v`` (``None``: ``v_init``).

    Returns spikes and post-reset membranes, both ``[T, B, ...]``. This loop is the readable
    reference; :func:`snnlib.neurons.fast_lif.lif_multistep_fast` must match it bit for bit.
    """
    check_time_first(x)
    if v is None:
        v = torch.full_like(x[0], p.v_init)
    spikes, membranes = [], []
    for x_t in x:
        s, v = lif_step(x_t, v, threshold, p)
        spikes.append(s)
        membranes.append(v)
    return StepOut(torch.stack(spikes), torch.stack(membranes))
