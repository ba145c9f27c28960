"""Architectures: one definition per network builds the ANN (ReLU/QCFS) or the SNN (LIF).

Every model is time-first: ``[T, B, C, H, W] -> [T, B, K]`` per-timestep logits (the final
Linear has no neuron). Static images are repeated T times by the caller; an ANN is run with
``T=1``. Every model is a :class:`~snnlib.neurons.SpikingModule` with
``forward(x, state=None, collector=None)``; with a :class:`~snnlib.neurons.RunState`,
calling it on ``x[t:t+1]`` one step at a time gives the slices of the multi-step output.

    >>> import torch
    >>> from snnlib import models
    >>> net = models.build("mnist-cnn", num_classes=10, in_channels=1, input_size=(28, 28),
    ...                    neuron="lif")
    >>> tuple(net(torch.zeros(4, 2, 1, 28, 28)).shape)
    (4, 2, 10)
    >>> models.count_layers(net)
    {'lif': 3, 'qcfs': 0, 'relu': 0}

What each architecture accepts (its shape rule, reference input, whether it converts) is in
:mod:`snnlib.catalog`, which imports no torch; :data:`BUILDERS` says how each one is built.
Files: ``blocks`` (activation/norm factories), ``vgg`` (VGG-16), ``resnet`` (ResNet-18/34),
``dvs`` (VGGANN, VGG-Gesture), ``small`` (networks for the embedded data). Paper networks
follow docs/method.md §2.3.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from snnlib.catalog import ARCH_INFO, ARCHITECTURES, ArchInfo, arch_info, check_input
from snnlib.models import dvs, resnet, small, vgg
from snnlib.models.blocks import NEURONS, NORMS, Layers
from snnlib.neurons import LIF
from snnlib.qcfs import QCFS

__all__ = [
    "ARCHITECTURES",
    "ARCH_INFO",
    "BUILDERS",
    "NEURONS",
    "NORMS",
    "ArchInfo",
    "Layers",
    "build",
    "check_input",
    "count_layers",
]


# how each architecture of :data:`snnlib.catalog.ARCH_INFO` is built:
# make(layers, in_channels, num_classes, input_size)
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mnist-cnn": small.MnistCNN,
    "mnist-mlp": small.MLP,
    "dvs-cnn": small.DVSCNN,
    "vgg16": vgg.VGG16,
    "resnet18": partial(resnet.ResNet, depths=resnet.DEPTHS["resnet18"]),
    "resnet34": partial(resnet.ResNet, depths=resnet.DEPTHS["resnet34"]),
    # the same network as resnet18; only the reference input differs (see models.resnet)
    "resnet18-tiny": partial(resnet.ResNet, depths=resnet.DEPTHS["resnet18"]),
    "vggann": dvs.VGGANN,
    "vgg-gesture": dvs.VGGGesture,
    # the same network as vggann at the input its Linear(512·2·3 -> 101) implies
    "vggann-ncaltech101": dvs.VGGANN,
}


def build(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int] | None = None,
    neuron: str = "relu",
    levels: int = 4,
    T: int | None = None,
    norm: str = "bn",
    decay: float = 0.5,
    threshold: float = 1.0,
    reset: str = "hard",
) -> nn.Module:
    """Build ``arch`` with the given activation (``neuron``) and normalisation (``norm``).

    ``neuron``: ``"relu"`` or ``"qcfs"`` (``levels`` = QCFS L) for an ANN, ``"lif"`` (``decay``,
    ``threshold``, ``reset``) for a directly trained SNN. ``norm``: ``"bn"`` or ``"tebn"``
    (needs ``T``). ``input_size`` ``(H, W)`` defaults to the architecture's reference input.
    """
    if input_size is None:
        input_size = arch_info(arch).reference[1:]
    check_input(arch, in_channels, input_size, num_classes)
    layers = Layers(neuron, norm, levels, T, decay, threshold, reset)
    return BUILDERS[arch](layers, in_channels, num_classes, tuple(input_size))


def count_layers(model: nn.Module) -> dict[str, int]:
    """Number of activation layers by kind: ``{"lif": n, "qcfs": n, "relu": n}``."""
    kinds = {"lif": LIF, "qcfs": QCFS, "relu": nn.ReLU}
    return {k: sum(isinstance(m, t) for m in model.modules()) for k, t in kinds.items()}
