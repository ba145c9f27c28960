"""The neuron stack: LIF / IF neurons, from the pure step functions to the layer.

Read in this order: :mod:`~snnlib.neurons.dynamics` (the physical parameters, the spike
function and the pure step functions, docs/method.md §1.2), :mod:`~snnlib.neurons.lif` (the
thin layer around them and its typed state), :mod:`~snnlib.neurons.state` (a network's
states across calls), :mod:`~snnlib.neurons.collector` (auxiliary values out of a forward
pass), and the fused kernels behind the same numbers: :mod:`~snnlib.neurons.fast_lif` (C++
on CPU) and :mod:`~snnlib.neurons.triton_lif` (GPU).

The names a network definition needs can be imported from here:
``from snnlib.neurons import LIF, Collector, RunState``.
"""

from snnlib.neurons.collector import Collector, LayerRecord
from snnlib.neurons.dynamics import (
    RESET_MODES,
    ZIF,
    LIFParams,
    StepOut,
    lif_multistep,
    lif_step,
    spike_fn,
)
from snnlib.neurons.lif import LIF, LIF_BACKENDS, LIFState
from snnlib.neurons.state import RunState, SpikingModule

__all__ = [
    "LIF",
    "LIF_BACKENDS",
    "RESET_MODES",
    "ZIF",
    "Collector",
    "LIFParams",
    "LIFState",
    "LayerRecord",
    "RunState",
    "SpikingModule",
    "StepOut",
    "lif_multistep",
    "lif_step",
    "spike_fn",
]
