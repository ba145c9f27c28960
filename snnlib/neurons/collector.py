"""Auxiliary per-layer values (spikes, membranes, pre-activations) leave a network through an
explicit :class:`Collector` passed to ``forward``, never through hooks or globals."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn


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
