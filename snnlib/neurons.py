"""LIF / IF spiking neurons: pure step functions, a thin module, and explicit run state.

Dynamics (method-spec 1.2), for a layer with input current ``I_t`` and threshold ``θ``::

    u_t = decay · v_{t-1} + I_t          v_0 = v_init (absolute units)
    s_t = H(u_t − θ)                      H(x) = 1 if x > 0 else 0   (strict ">")
    v_t = u_t · (1 − s_t)                 hard reset
    v_t = u_t − θ · s_t                   soft reset (reset by subtraction)
    out = s_t   or   θ · s_t              (``weighted_output=True``, used after conversion)

``decay=0.5`` is the direct-training LIF; ``decay=1.0`` is the IF neuron of conversion.
``v_t`` is the *post-reset* membrane before the leak; the RCS regulariser needs it.
The backward pass of ``H`` is the ZIF triangle ``(1/γ²)·max(0, γ − |u − θ|)`` (TET), with no
detach anywhere, so BPTT flows through the reset and the recursion.

Time comes first: a multi-step call takes ``[T, B, ...]``. Every call without a state starts
from ``v_init``; streaming one step at a time goes through an explicit :class:`RunState`.
Auxiliary values (spikes, membranes) leave the layer through an explicit :class:`Collector`
passed to ``forward``, never through hooks or globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

RESET_MODES = ("hard", "soft")
LIF_BACKENDS = ("auto", "cpp", "torch", "reference")  # see snnlib.fast_lif


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
        if self.reset not in RESET_MODES:
            raise ValueError(f"reset={self.reset!r} is not allowed; use one of {RESET_MODES}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay={self.decay!r} must lie in [0, 1] (1.0 is IF)")
        if not self.gamma > 0:
            raise ValueError(f"gamma={self.gamma!r} must be > 0 (surrogate width)")


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


def lif_multistep(
    x: Tensor, threshold: Tensor | float, p: LIFParams, v: Tensor | None = None
) -> StepOut:
    """Run ``x`` ``[T, B, ...]`` from membrane ``v`` (``None``: ``v_init``).

    Returns spikes and post-reset membranes, both ``[T, B, ...]``. This loop is the readable
    reference; :mod:`snnlib` may provide faster kernels that must match it bit for bit.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be [T, B, ...]; got shape {tuple(x.shape)}")
    if v is None:
        v = torch.full_like(x[0], p.v_init)
    spikes, membranes = [], []
    for x_t in x:
        s, v = lif_step(x_t, v, threshold, p)
        spikes.append(s)
        membranes.append(v)
    return StepOut(torch.stack(spikes), torch.stack(membranes))


@dataclass
class LayerRecord:
    """What one layer reported during a forward call (``[T, B, ...]`` tensors)."""

    layer: nn.Module
    spikes: Tensor | None = None  # 0/1 spikes of a spiking layer
    membrane: Tensor | None = None  # post-reset membrane of a spiking layer
    threshold: Tensor | None = None
    preactivation: Tensor | None = None  # input of a QCFS activation (ANN regulariser)


@dataclass
class Collector:
    """An explicit sink for auxiliary per-layer values, passed into ``forward``.

    ``detach=True`` keeps only values (evaluation: spike counts); the default keeps the
    autograd graph so a regulariser can backpropagate through them.
    """

    detach: bool = False
    records: list[LayerRecord] = field(default_factory=list)

    def add(self, record: LayerRecord) -> None:
        if self.detach:
            for name in ("spikes", "membrane", "threshold", "preactivation"):
                value = getattr(record, name)
                if value is not None:
                    setattr(record, name, value.detach())
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()


class RunState:
    """Explicit state of every stateful layer of a network across calls (streaming).

    A layer stores its membrane (or a step counter) under its own identity. ``keep(mask)``
    drops samples from every stored batch, so an anytime engine can remove exited samples.
    The state owns its tensors: during inference (no autograd) :class:`LIF` updates its
    membrane in place, so clone a value from :meth:`get` to keep a snapshot.
    """

    def __init__(self) -> None:
        self._values: dict[int, Tensor | int] = {}

    def get(self, layer: nn.Module, default=None):
        return self._values.get(id(layer), default)

    def set(self, layer: nn.Module, value: Tensor | int) -> None:
        self._values[id(layer)] = value

    def keep(self, mask: Tensor) -> None:
        """Keep only the samples where ``mask`` (bool ``[B]``) is true, in every layer; or,
        with an int64 index, the samples it lists (in its order; an index may repeat)."""
        # index_select is several times faster than a mask
        idx = mask.nonzero().squeeze(1) if mask.dtype == torch.bool else mask
        for key, value in self._values.items():
            if isinstance(value, Tensor):
                self._values[key] = value.index_select(0, idx.to(value.device))

    def fill_rows(self, layer: nn.Module, rows: Tensor, value: float) -> None:
        """Set ``layer``'s stored state to ``value`` at batch positions ``rows`` (int64), in
        place: those samples restart (nothing happens before the layer's first step)."""
        state = self._values.get(id(layer))
        if isinstance(state, Tensor):
            state[rows.to(state.device)] = value

    def reset(self) -> None:
        self._values.clear()


class SpikingModule(nn.Module):
    """Marker base: ``forward(x, state=None, collector=None)`` on time-first ``[T, B, ...]``."""


class LIF(SpikingModule):
    """Multi-step LIF/IF layer (see the module docstring for the dynamics).

    ``forward(x)`` with ``x`` ``[T, B, ...]`` returns spikes ``[T, B, ...]`` (times the threshold
    with ``weighted_output=True``). Without ``state`` every call starts from ``v_init``; with a
    :class:`RunState` it continues from, and stores, this layer's membrane, so calling it step
    by step on ``[1, B, ...]`` slices gives exactly the multi-step result. ``backend``:
    ``"reference"`` runs :func:`lif_multistep`; ``"auto"``, ``"cpp"``, ``"torch"`` run
    :func:`snnlib.fast_lif.lif_multistep_fast`, bit-identical with a compact BPTT state.

    Example:
        >>> lif = LIF(decay=1.0, threshold=1.0, reset="soft")
        >>> lif(torch.tensor([[0.6], [0.6], [0.6]])).flatten().tolist()
        [0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        decay: float = 0.5,
        threshold: float | Tensor = 1.0,
        reset: str = "hard",
        v_init: float = 0.0,
        weighted_output: bool = False,
        gamma: float = 1.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in LIF_BACKENDS:
            raise ValueError(f"backend={backend!r} is not allowed; use one of {LIF_BACKENDS}")
        self.backend = backend
        self.params = LIFParams(decay, reset, float(v_init), weighted_output, gamma)
        threshold = torch.as_tensor(threshold, dtype=torch.float32).detach().clone()
        if not bool((threshold > 0).all()):
            raise ValueError(f"threshold={threshold.tolist()!r} must be > 0")
        self.register_buffer("threshold", threshold)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        v0 = None if state is None else state.get(self)
        keep = collector is not None  # else only the final membrane, for the state
        if self.backend == "reference":
            spikes, membrane = lif_multistep(x, self.threshold, self.params, v0)
        else:  # the same numbers, fused; imported here because fast_lif imports this module
            from snnlib.fast_lif import lif_multistep_fast

            spikes, membrane = lif_multistep_fast(
                x, self.threshold, self.params, v0, keep_membrane=keep, backend=self.backend,
                inplace=state is not None,  # the state owns v0: update it (inference only)
            )  # fmt: skip
        if state is not None:  # a collector's record must not be updated in place later
            last = membrane[-1]
            state.set(self, last.clone() if keep and not last.requires_grad else last)
        if collector is not None:
            collector.add(LayerRecord(self, spikes, membrane, self.threshold))
        return spikes * self.threshold if self.params.weighted_output else spikes

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"decay={p.decay}, threshold={self.threshold.tolist()}, reset={p.reset!r}, "
            f"v_init={p.v_init}, weighted_output={p.weighted_output}, gamma={p.gamma}, "
            f"backend={self.backend!r}"
        )
