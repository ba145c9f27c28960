"""Time folding for stateless layers, a state-threading ``Sequential``, and TEBN.

Stateless layers (Conv, Linear, pooling, BatchNorm) see time folded into the batch:
``[T, B, ...] -> [T*B, ...]``, so BatchNorm statistics are shared over T·B (docs/method.md §1.1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from snnlib import checks
from snnlib.neurons import Collector
from snnlib.neurons.state import RunState, SpikingModule, call


def fold(x: Tensor) -> Tensor:
    """``[T, B, ...] -> [T*B, ...]``."""
    return x.flatten(0, 1)


def unfold(x: Tensor, T: int) -> Tensor:
    """``[T*B, ...] -> [T, B, ...]``."""
    return x.unflatten(0, (T, x.shape[0] // T))


class Folded(nn.Module):
    """Apply a stateless module to ``[T, B, ...]`` by folding time into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return unfold(self.module(fold(x)), x.shape[0])  # [T*B, ...] inside


class Sequential(nn.Sequential, SpikingModule):
    """``nn.Sequential`` as a spiking module: passes ``state`` and ``collector`` to its
    spiking children (:func:`snnlib.neurons.state.call`)."""

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        for module in self:
            x = call(module, x, state, collector)
        return x


class TEBNState(NamedTuple):
    """A TEBN layer's state: the steps each sample has already run, ``int64 [B]``."""

    t: Tensor

    def keep(self, index: Tensor) -> TEBNState:
        return TEBNState(self.t.index_select(0, index.to(self.t.device)))

    def restart(self, rows: Tensor) -> TEBNState:
        self.t[rows.to(self.t.device)] = 0
        return self


class TEBN(SpikingModule):
    """Temporal effective batch normalisation (Duan et al. 2022; docs/method.md §1.4).

    BatchNorm with statistics shared over ``T·B`` (and space), followed by a learnable scale
    ``p_t`` per timestep (init 1)::

        y_t = p_t · BN(x)_t

    Unlike the official code, it also streams: with a :class:`~snnlib.neurons.state.RunState` the
    layer counts the steps each sample has seen (:class:`TEBNState`) and applies that
    sample's ``p_t``, so single-step == multi-step, also for samples at different steps.
    """

    def __init__(self, num_features: int, T: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        checks.integer("T", T, low=1)
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)
        self.p = nn.Parameter(torch.ones(T))

    def init_state(self, x: Tensor) -> TEBNState:
        """The fresh state for an input ``x`` ``[T, B, ...]``: no step run yet."""
        return TEBNState(torch.zeros(x.shape[1], dtype=torch.int64, device=x.device))

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        steps = x.shape[0]
        if state is None:
            self._check_steps(1, steps)
            scale = self.p[:steps].view(steps, *([1] * (x.dim() - 1)))
        else:
            t0 = state.current(self, x).t  # [B]
            lo, hi = torch.stack(torch.aminmax(t0)).tolist()  # one device sync
            self._check_steps(lo + 1, hi + steps)
            state.set(self, TEBNState(t0 + steps))
            t = t0 + torch.arange(steps, device=t0.device).unsqueeze(1)  # [steps, B]
            scale = self.p[t].view(*t.shape, *([1] * (x.dim() - 2)))  # each sample's p_t
        # BN over channel dim 1 of the folded input; BatchNorm1d accepts [N, C, L] and [N, C].
        y = fold(x)  # [T*B, C, ...]
        y = self.bn(y.flatten(2) if y.dim() > 3 else y).view_as(y)
        return unfold(y, steps) * scale

    def _check_steps(self, first: int, last: int) -> None:
        if last > self.p.numel():
            raise ValueError(
                f"TEBN was built for T={self.p.numel()} steps; got steps {first}..{last}"
            )
