"""The network input: a batch of the data layer ``[B, ...]`` -> time first ``[T, B, ...]``.

Frame datasets give one image per sample, repeated at every timestep; event datasets give
``T`` frames per sample (``[B, T, C, H, W]``), moved time first. Where a method sees event
data as one accumulated frame (``qcfs``, see :mod:`snnlib.methods`), the frames are averaged
and that frame is repeated.
"""

from __future__ import annotations

from torch import Tensor

from snnlib.catalog import dataset_info
from snnlib.config import Config
from snnlib.methods import METHOD_TABLE


def to_time_first(x: Tensor, T: int, kind: str, accumulate: bool) -> Tensor:
    """A batch from the data layer -> the network input ``[T, B, ...]``."""
    if kind == "event":
        x = x.transpose(0, 1)  # [B, T, C, H, W] -> [T, B, C, H, W]
        if not accumulate:
            return x
        x = x.mean(0)  # the accumulated frame [B, C, H, W]
    return x.unsqueeze(0).expand(T, *x.shape)  # the same input at every step


def anytime_input(config: Config, x: Tensor) -> tuple[Tensor, bool]:
    """A data-layer batch -> ``(x, sequence)`` for :func:`snnlib.anytime.run_anytime`, as the
    run's SNN sees it: event frames ``[T, B, ...]`` (``sequence=True``), else the static input
    ``[B, ...]`` repeated at every step (images; the accumulated frame for ``qcfs`` on events).
    """
    kind = dataset_info(config.dataset).kind
    accumulate = METHOD_TABLE[config.method].accumulates(kind)
    x = to_time_first(x, config.T, kind, accumulate)
    if kind == "event" and not accumulate:
        return x, True
    return x[0].contiguous(), False
