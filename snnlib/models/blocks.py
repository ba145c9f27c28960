"""Building blocks shared by every architecture: the activation and norm factories.

One model definition builds the ANN or the SNN: every place where the network needs an
activation asks :meth:`Layers.act`, every norm asks :meth:`Layers.norm2d` /
:meth:`Layers.norm1d`. Because the factories put their modules at the same positions, the
ReLU, QCFS and LIF variants of an architecture have the same parameter names and shapes
(apart from QCFS ``lam`` and the LIF ``threshold`` buffer), so an ANN checkpoint loads into
the SNN, and conversion (:mod:`snnlib.convert`) replaces QCFS by type, never by name.

Time comes first: stateless layers (Conv, Linear, pooling, BatchNorm, Flatten, Dropout) are
wrapped in :class:`~snnlib.layers.Folded`, so ``[T, B, ...]`` is folded into ``[T*B, ...]``
around them (docs/method.md §1.1); activations are elementwise or run over time themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from snnlib import checks
from snnlib.layers import TEBN, Folded
from snnlib.neurons import LIF, LIFParams
from snnlib.pooling import AvgPool2d
from snnlib.qcfs import QCFS

NEURONS = ("relu", "qcfs", "lif")
NORMS = ("bn", "tebn")


@dataclass(frozen=True)
class Layers:
    """The activation and normalisation that one model is built with.

    - ``neuron``: ``"relu"`` -> ``nn.ReLU`` (plain ANN), ``"qcfs"`` -> ``QCFS(levels)`` (ANN for
      conversion, docs/method.md §1.3), ``"lif"`` -> ``LIF(decay, threshold, reset)`` (direct
      training, docs/method.md §1.2).
    - ``norm``: ``"bn"`` -> BatchNorm over the folded ``T·B`` batch (tdBN-like,
      docs/method.md §1.1),
      ``"tebn"`` -> :class:`~snnlib.layers.TEBN` with ``T`` per-timestep scales
      (docs/method.md §1.4).
    """

    neuron: str = "relu"
    norm: str = "bn"
    levels: int = 4
    T: int | None = None
    decay: float = 0.5
    threshold: float = 1.0
    reset: str = "hard"

    def __post_init__(self) -> None:
        checks.one_of("neuron", self.neuron, NEURONS)
        checks.one_of("norm", self.norm, NORMS)
        checks.integer("levels (QCFS L)", self.levels, low=1)
        if self.T is not None:
            checks.integer("T", self.T, low=1)
        if self.norm == "tebn" and self.T is None:
            raise ValueError("norm='tebn' needs T (the number of per-timestep scales p_t)")
        checks.number("threshold", self.threshold, low=0, low_open=True)
        LIFParams(decay=self.decay, reset=self.reset)  # raises on a bad decay or reset

    def act(self) -> nn.Module:
        """A fresh activation: ReLU, QCFS or LIF."""
        if self.neuron == "relu":
            return nn.ReLU()  # not in place: a residual sum may still need its input
        if self.neuron == "qcfs":
            return QCFS(self.levels)
        return LIF(decay=self.decay, threshold=self.threshold, reset=self.reset)

    def norm2d(self, channels: int) -> nn.Module:
        """Norm after a Conv2d (``[T, B, C, H, W]``)."""
        if self.norm == "tebn":
            return TEBN(channels, self.T)
        return Folded(nn.BatchNorm2d(channels))

    def norm1d(self, features: int) -> nn.Module:
        """Norm after a Linear (``[T, B, F]``)."""
        if self.norm == "tebn":
            return TEBN(features, self.T)
        return Folded(nn.BatchNorm1d(features))


def conv(
    cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True
) -> Folded:
    """A time-folded ``nn.Conv2d``."""
    return Folded(nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias))


def linear(fin: int, fout: int) -> Folded:
    """A time-folded ``nn.Linear``."""
    return Folded(nn.Linear(fin, fout))


def avgpool(kernel: int = 2) -> Folded:
    """A time-folded average pool (stride = kernel): :class:`snnlib.pooling.AvgPool2d`, which is
    ``nn.AvgPool2d`` bit for bit, faster on a CPU."""
    return Folded(AvgPool2d(kernel))


def maxpool(kernel: int = 2) -> Folded:
    """A time-folded ``nn.MaxPool2d``: fine for direct training, but it cannot be converted."""
    return Folded(nn.MaxPool2d(kernel))


def flatten() -> Folded:
    """``[T, B, C, H, W] -> [T, B, C*H*W]``."""
    return Folded(nn.Flatten())


def dropout(p: float = 0.0) -> Folded:
    """A time-folded ``nn.Dropout``; the official models keep ``p=0`` placeholders."""
    return Folded(nn.Dropout(p))


def kaiming_init(model: nn.Module, zero_linear_bias: bool = False) -> None:
    """The official init: Kaiming-normal (fan_out, ReLU gain) on every Conv2d weight.

    BatchNorm already starts at weight 1 / bias 0 in PyTorch; ``zero_linear_bias`` zeroes the
    Linear biases as the official VGG-16 does (docs/method.md §2.3). Other weights keep the
    PyTorch defaults, as in the official code.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif zero_linear_bias and isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
