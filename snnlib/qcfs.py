"""QCFS: the quantisation-clip-floor-shift activation of the ANN side of conversion.

Bu et al., ICLR 2022, as used by the official code (docs/method.md §1.3)::

    φ(x) = λ · clip( floor( L · ReLU(x) / λ + 1/2 ) / L , 0 , 1 )

``λ`` is a learnable scalar per layer; ``floor`` has a straight-through gradient. The
official code starts every ``λ`` at 8.0 and decays it like every weight
(``lam_rule="official"``, the default). With ``lam_rule="data"`` (docs/method.md §4.2, D13)
``λ`` starts at a high percentile of the layer's pre-activations on a few training batches
(:func:`clip_from_data`) and is kept out of weight decay (:func:`without_clip_decay`): with
``λ`` far above the pre-activations the quantisation is coarse, and the IF network then
matches its ANN only at ``T = L``, diverging beyond it (not a general cure: docs/method.md
§1.3).

The official code applies the ReLU first, unlike the original QCFS (which floors, then
clips): the forward values are the same, the gradient differs only for ``x`` in
``(−λ/(2L), 0)``. We follow the official code.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor, nn

from snnlib import checks
from snnlib.neurons import Collector, LayerRecord, RunState, SpikingModule

QUANTILE_MAX = 2**24  # torch.quantile's input limit; larger samples are thinned evenly


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


def clip_from_data(
    model: nn.Module, batches, forward, percentile: float = 99.0, n_batches: int = 4
) -> list[float]:
    """Set each QCFS layer's ``λ`` to the ``percentile`` of its positive pre-activations on the
    first ``n_batches`` of ``batches`` (epoch 0); return the new values in forward order.

    Layer by layer in forward order, so each layer sees the inputs that the already-set layers
    before it produce. The pre-activations come from a copy in train mode (batch statistics, as
    in training), so ``model``'s BatchNorm buffers stay as they were. A layer with no positive
    pre-activation keeps its ``λ``. ``forward(model, x, collector)`` is the training forward.
    """
    checks.number("percentile", percentile, low=0, high=100, low_open=True)
    checks.integer("n_batches", n_batches, low=1)
    probe = copy.deepcopy(model).train()
    originals = dict(zip(probe.modules(), model.modules(), strict=True))
    device = next(model.parameters()).device
    xs = [x.to(device) for x, _ in itertools.islice(batches.epoch(0), n_batches)]
    values = []
    with torch.no_grad():
        for layer in _forward_order(probe, forward, xs[0]):
            pre = torch.cat([_preactivations(probe, forward, x, layer) for x in xs])
            pre = pre[pre > 0]
            if pre.numel():
                pre = pre[:: -(-pre.numel() // QUANTILE_MAX)].float()  # [n] thinned evenly
                layer.lam.fill_(torch.quantile(pre, percentile / 100))
            originals[layer].lam.copy_(layer.lam)
            values.append(layer.lam.item())
    return values


def _forward_order(model: nn.Module, forward, x: Tensor) -> list[QCFS]:
    collector = Collector(detach=True)
    forward(model, x, collector)
    layers = [r.layer for r in collector.records if isinstance(r.layer, QCFS)]
    return list(dict.fromkeys(layers))


def _preactivations(model: nn.Module, forward, x: Tensor, layer: QCFS) -> Tensor:
    collector = Collector(detach=True)
    forward(model, x, collector)
    return torch.cat([r.preactivation.flatten() for r in collector.records if r.layer is layer])


def without_clip_decay(model: nn.Module) -> list[dict]:
    """Optimizer parameter groups of ``model``: every parameter, the QCFS clips ``λ`` in a
    group of their own with ``weight_decay=0`` (a clip is a range, not a weight to shrink)."""
    clips = [m.lam for m in model.modules() if isinstance(m, QCFS)]
    ids = {id(p) for p in clips}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest}, {"params": clips, "weight_decay": 0.0}]
