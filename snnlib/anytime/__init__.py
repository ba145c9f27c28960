"""Anytime inference: run timestep by timestep and really stop the samples that exited.

:mod:`~snnlib.anytime.engine` is the engine (step, chunked and stream modes),
:mod:`~snnlib.anytime.inputs` what the live samples see at each step, and
:mod:`~snnlib.anytime.adapters` how any SNN (snnlib, SpikingJelly, a step function) is
stepped. ``from snnlib.anytime import run_anytime, stream_anytime``.
"""

from snnlib.anytime.adapters import as_steppable
from snnlib.anytime.engine import AnytimeResult, cumulative_outputs, run_anytime, stream_anytime

__all__ = ["AnytimeResult", "as_steppable", "cumulative_outputs", "run_anytime", "stream_anytime"]
