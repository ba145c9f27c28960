"""QCFS: the quantisation-clip-floor-shift activation of the ANN side of conversion.

Bu et al., ICLR 2022, as used by the official code (docs/method.md §1.3)::

    φ(x) = λ · clip( floor( L · ReLU(x) / λ + 1/2 ) / L , 0 , 1 )

``λ`` is a learnable scalar per layer (init 8.0, trained with weight decay like every other
parameter); ``floor`` has a straight-through gradient. The official code applies the ReLU
first, unlike the original QCFS (which floors, then clips): the forward values are the same,
the gradient differs only for ``x`` in ``(−λ/(2L), 0)``. We follow the official code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnlib import checks
from snnlib.neurons import Collector, LayerRecord, RunState, SpikingModule


def floor_ste(x: Tensor) -> Tensor:
    """``floor`` in the forward pass, identity in the backward pass."""
    return x + (torch.floor(x) - x).detach()


def qcfs(x: Tensor, lam: Tensor, levels: int) -> Tensor:
    """The QCFS function (see the module docstring)."""
    return lam * torch.clamp(floor_ste(levels * torch.relu(x) / lam + 0.5) / levels, 0.0, 1.0)


class QCFS(SpikingModule):
    """QCFS activation with ``levels`` quantisation steps and a learnable clip ``lam``.

    Elementwise, so it runs on ``[T, B, ...]`` as on ``[B, ...]``; with a ``collector`` it
    reports its input (the pre-activation the ANN regulariser needs).
    """

    def __init__(self, levels: int = 4, lam: float = 8.0) -> None:
        super().__init__()
        checks.integer("levels (QCFS L)", levels, low=1)
        checks.number("lam", lam, low=0, low_open=True)
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        if collector is not None:
            collector.add(LayerRecord(self, preactivation=x))
        return qcfs(x, self.lam, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lam={self.lam.item():.4g}"
