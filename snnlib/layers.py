"""Time folding for stateless layers, a state-threading ``Sequential``, and TEBN.

Stateless layers (Conv, Linear, pooling, BatchNorm) see time folded into the batch:
``[T, B, ...] -> [T*B, ...]``, so BatchNorm statistics are shared over T·B (method-spec 1.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnlib.neurons import Collector, RunState, SpikingModule


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


class Sequential(nn.Sequential):
    """``nn.Sequential`` that passes ``state`` and ``collector`` to spiking children."""

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        for module in self:
            if isinstance(module, (SpikingModule, Sequential)):
                x = module(x, state, collector)
            else:
                x = module(x)
        return x


class TEBN(SpikingModule):
    """Temporal effective batch normalisation (Duan et al. 2022; method-spec 1.4).

    BatchNorm with statistics shared over ``T·B`` (and space), followed by a learnable scale
    ``p_t`` per timestep (init 1)::

        y_t = p_t · BN(x)_t

    Unlike the official code, it also streams: with a :class:`RunState` the layer counts the
    steps it has seen and applies the matching ``p_t``, so single-step == multi-step.
    """

    def __init__(self, num_features: int, T: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if T < 1:
            raise ValueError(f"T={T!r} must be >= 1")
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)
        self.p = nn.Parameter(torch.ones(T))

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        t0 = 0 if state is None else state.get(self, 0)
        steps = x.shape[0]
        if t0 + steps > self.p.numel():
            raise ValueError(
                f"TEBN was built for T={self.p.numel()} steps; got steps {t0 + 1}..{t0 + steps}"
            )
        if state is not None:
            state.set(self, t0 + steps)
        # BN over channel dim 1 of the folded input; BatchNorm1d accepts [N, C, L] and [N, C].
        y = fold(x)  # [T*B, C, ...]
        y = self.bn(y.flatten(2) if y.dim() > 3 else y).view_as(y)
        scale = self.p[t0 : t0 + steps].view(steps, *([1] * (x.dim() - 1)))
        return unfold(y, steps) * scale
