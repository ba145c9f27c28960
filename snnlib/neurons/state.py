"""Run state: each stateful layer's typed state, and a network's states across calls.

A multi-step call ``forward(x)`` on ``[T, B, ...]`` starts from a fresh state every time.
Streaming (one step, or a chunk of steps, per call) passes a :class:`RunState` explicitly:
every stateful layer looks up its own typed state there (:class:`~snnlib.neurons.LIFState`,
:class:`~snnlib.layers.TEBNState`), starting from its ``init_state(x)`` on the first call,
and stores the state after the call. Each layer state is a :class:`LayerState`: it selects
samples (``keep``) and restarts samples (``restart``) itself, so an engine that drops exited
samples or refills their places (:mod:`snnlib.anytime`) treats every layer the same way.

:class:`SpikingModule` marks a module whose ``forward`` takes ``(x, state, collector)``;
:func:`call` is the one place that decides how to call a child module.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from snnlib.neurons.collector import Collector


class LayerState(Protocol):
    """The state of one layer for a batch: every tensor has the batch in dim 0."""

    def keep(self, index: Tensor) -> LayerState:
        """The state of the samples at ``index`` (int64; in its order, may repeat)."""
        ...

    def restart(self, rows: Tensor) -> LayerState:
        """The samples at ``rows`` (int64) back at their fresh state, in place: new samples
        take those places."""
        ...


class RunState:
    """The states of a network's stateful layers across calls, each under its layer.

    ``keep`` and ``restart`` apply to every stored layer state; a layer that has not run yet
    has nothing to select or restart (it starts fresh on its first call). The layer states
    own their tensors: in inference a LIF layer updates its membrane in place, so clone a
    value from :meth:`get` to keep a snapshot.
    """

    def __init__(self) -> None:
        self._layers: dict[nn.Module, LayerState] = {}  # holds the layer: no id reuse

    def get(self, layer: nn.Module) -> LayerState | None:
        return self._layers.get(layer)

    def current(self, layer: nn.Module, x: Tensor) -> LayerState:
        """``layer``'s stored state, or on its first call its fresh ``layer.init_state(x)``."""
        value = self._layers.get(layer)
        return layer.init_state(x) if value is None else value

    def set(self, layer: nn.Module, value: LayerState) -> None:
        self._layers[layer] = value

    def keep(self, mask: Tensor) -> None:
        """Keep only the samples where ``mask`` (bool ``[B]``) is true, in every layer; or,
        with an int64 index, the samples it lists (in its order; an index may repeat)."""
        # index_select is several times faster than a mask
        index = mask.nonzero().squeeze(1) if mask.dtype == torch.bool else mask
        for layer, value in self._layers.items():
            self._layers[layer] = value.keep(index)

    def restart(self, rows: Tensor) -> None:
        """Restart the samples at batch positions ``rows`` (int64) in every layer."""
        for layer, value in self._layers.items():
            self._layers[layer] = value.restart(rows)


class SpikingModule(nn.Module):
    """Marker base: ``forward(x, state=None, collector=None)`` on time-first ``[T, B, ...]``.

    A stateful subclass also offers ``init_state(x) -> LayerState``, its fresh state for an
    input ``x`` ``[T, B, ...]``.
    """


def call(
    module: nn.Module, x: Tensor, state: RunState | None = None, collector: Collector | None = None
) -> Tensor:
    """Run ``module`` on ``[T, B, ...]``, passing ``state`` and ``collector`` if it takes them."""
    if isinstance(module, SpikingModule):
        return module(x, state, collector)
    return module(x)
