"""The LIF / IF layer: the thin module around the pure step functions, and its typed state.

The dynamics and their pure step functions live in :mod:`snnlib.neurons.dynamics` (docs/method.md
§1.2);
:class:`LIF` is the thin module around them. Time comes first: a multi-step call takes
``[T, B, ...]``. Every call without a state starts from ``v_init``; streaming one step at a
time goes through an explicit :class:`~snnlib.neurons.state.RunState`, in which the layer keeps a
:class:`LIFState`. Auxiliary values (spikes, membranes) leave the layer through an explicit
:class:`~snnlib.neurons.collector.Collector` passed to ``forward``, never through hooks or
globals."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor

from snnlib import checks
from snnlib.neurons.collector import Collector, LayerRecord
from snnlib.neurons.dynamics import LIFParams, StepOut, lif_multistep
from snnlib.neurons.fast_lif import lif_multistep_fast
from snnlib.neurons.state import RunState, SpikingModule

__all__ = ["LIF", "LIF_BACKENDS", "LIFState"]

LIF_BACKENDS = ("auto", "cpp", "torch", "triton", "reference")  # see snnlib.neurons.fast_lif


class LIFState(NamedTuple):
    """A LIF layer's state: the post-reset membrane ``v`` ``[B, ...]`` and its fresh value."""

    v: Tensor
    v_init: float

    def keep(self, index: Tensor) -> LIFState:
        return LIFState(self.v.index_select(0, index.to(self.v.device)), self.v_init)

    def restart(self, rows: Tensor) -> LIFState:
        self.v[rows.to(self.v.device)] = self.v_init
        return self


class LIF(SpikingModule):
    """Multi-step LIF/IF layer (see :mod:`snnlib.neurons.dynamics` for the dynamics).

    ``forward(x)`` with ``x`` ``[T, B, ...]`` returns spikes ``[T, B, ...]`` (times the threshold
    with ``weighted_output=True``). Without ``state`` every call starts from ``v_init``; with a
    :class:`~snnlib.neurons.state.RunState` it continues from, and stores, this layer's
    :class:`LIFState`, so calling it step by step on ``[1, B, ...]`` slices gives exactly the
    multi-step result. ``backend``: ``"reference"`` runs
    :func:`~snnlib.neurons.dynamics.lif_multistep`; ``"auto"``, ``"cpp"``, ``"torch"``,
    ``"triton"`` run
    :func:`snnlib.neurons.fast_lif.lif_multistep_fast`, bit-identical with a compact BPTT state.

    The parameters (:class:`~snnlib.neurons.dynamics.LIFParams`, e.g. the ``v_init = λ/2`` set at
    conversion) are saved in the state dict with the threshold, so a network rebuilt from its
    definition and loaded from a state dict computes what the saved one computed.

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
        self.backend = checks.one_of("backend", backend, LIF_BACKENDS)
        self.params = LIFParams(decay, reset, float(v_init), weighted_output, gamma)
        threshold = torch.as_tensor(threshold, dtype=torch.float32).detach().clone()
        if not bool((threshold > 0).all()):
            raise ValueError(f"threshold={threshold.tolist()!r} must be > 0")
        self.register_buffer("threshold", threshold)

    @property
    def kind(self) -> str:
        """``"IF"`` without leak (``decay = 1``, the neuron of conversion), else ``"LIF"``.

        >>> LIF(decay=1.0).kind, LIF(decay=0.5).kind
        ('IF', 'LIF')
        """
        return "IF" if self.params.decay == 1.0 else "LIF"

    def init_state(self, x: Tensor) -> LIFState:
        """The fresh state for an input ``x`` ``[T, B, ...]``: ``v = v_init`` ``[B, ...]``."""
        return LIFState(torch.full_like(x[0], self.params.v_init), self.params.v_init)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        prev = None if state is None else state.current(self, x)
        keep = collector is not None  # else only the final membrane, for the state
        spikes, membrane = self._run(x, None if prev is None else prev.v, keep, state is not None)
        if state is not None:  # a collector's record must not be updated in place later
            last = membrane[-1]
            last = last.clone() if keep and not last.requires_grad else last
            state.set(self, LIFState(last, self.params.v_init))
        if collector is not None:
            collector.add(LayerRecord(self, spikes, membrane, self.threshold))
        if not self.params.weighted_output:
            return spikes
        if collector is None and not spikes.requires_grad and spikes.dtype == self.threshold.dtype:
            return spikes.mul_(self.threshold)  # inference: the kernel's fresh tensor, no copy
        return spikes * self.threshold

    def _run(self, x: Tensor, v0: Tensor | None, keep_membrane: bool, inplace: bool) -> StepOut:
        """Spikes and membranes (all, or the final one) from ``v0``; ``inplace``: the state
        owns ``v0``, so the kernel may update it (inference only)."""
        if self.backend == "reference":
            return lif_multistep(x, self.threshold, self.params, v0)
        return lif_multistep_fast(
            x, self.threshold, self.params, v0, keep_membrane=keep_membrane,
            backend=self.backend, inplace=inplace,
        )  # fmt: skip

    def get_extra_state(self) -> dict:
        return dataclasses.asdict(self.params)

    def set_extra_state(self, state: dict) -> None:
        self.params = LIFParams(**state)

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"decay={p.decay}, threshold={self.threshold.tolist()}, reset={p.reset!r}, "
            f"v_init={p.v_init}, weighted_output={p.weighted_output}, gamma={p.gamma}, "
            f"backend={self.backend!r}"
        )
