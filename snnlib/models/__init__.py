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

Files: ``blocks`` (activation/norm factories), ``vgg`` (VGG-16), ``resnet`` (ResNet-18/34),
``dvs`` (VGGANN, VGG-Gesture), ``small`` (networks for the embedded data). Paper networks
follow method-spec 2.3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from snnlib.models import dvs, resnet, small, vgg
from snnlib.models.blocks import NEURONS, NORMS, Layers
from snnlib.neurons import LIF
from snnlib.qcfs import QCFS

__all__ = [
    "ARCHITECTURES",
    "ARCH_INFO",
    "NEURONS",
    "NORMS",
    "ArchInfo",
    "Layers",
    "build",
    "check_input",
    "count_layers",
]


@dataclass(frozen=True)
class ArchInfo:
    """What :func:`build` needs to know about an architecture, without building it.

    ``make(layers, in_channels, num_classes, input_size)`` builds it; ``feature_size`` maps
    ``(H, W)`` to the spatial size entering the classifier (the shape rule: both >= 1);
    ``accepts`` says the rule in words; ``reference`` is the dataset and input it was built for
    (``(C, H, W)``, the default ``input_size``); ``convertible`` is False where the network
    keeps a layer that ANN->SNN conversion cannot handle (MaxPool).
    """

    make: Callable[..., nn.Module]
    feature_size: Callable[[tuple[int, int]], tuple[int, int]]
    accepts: str
    dataset: str
    reference: tuple[int, int, int]
    convertible: bool = True


_RESNET = {"feature_size": resnet.feature_size, "accepts": resnet.ACCEPTS}
_VGGANN = {"make": dvs.VGGANN, "feature_size": dvs.vggann_feature_size}

ARCH_INFO: dict[str, ArchInfo] = {
    "mnist-cnn": ArchInfo(
        make=small.MnistCNN,
        feature_size=small.mnist_cnn_feature_size,
        accepts=small.MNIST_CNN_ACCEPTS,
        dataset="MNIST (embedded)",
        reference=(1, 28, 28),
    ),
    "mnist-mlp": ArchInfo(
        make=small.MLP,
        feature_size=small.mlp_feature_size,
        accepts=small.MLP_ACCEPTS,
        dataset="MNIST (embedded)",
        reference=(1, 28, 28),
    ),
    "dvs-cnn": ArchInfo(
        make=small.DVSCNN,
        feature_size=small.dvs_cnn_feature_size,
        accepts=small.DVS_CNN_ACCEPTS,
        dataset="N-MNIST / emulated DVS frames (embedded)",
        reference=(2, 34, 34),
    ),
    "vgg16": ArchInfo(
        make=vgg.VGG16,
        feature_size=vgg.feature_size,
        accepts=vgg.ACCEPTS,
        dataset="CIFAR-10/100",
        reference=(3, 32, 32),
    ),
    "resnet18": ArchInfo(
        make=partial(resnet.ResNet, depths=resnet.DEPTHS["resnet18"]),
        dataset="CIFAR-10/100",
        reference=(3, 32, 32),
        **_RESNET,
    ),
    "resnet34": ArchInfo(
        make=partial(resnet.ResNet, depths=resnet.DEPTHS["resnet34"]),
        dataset="CIFAR-10/100",
        reference=(3, 32, 32),
        **_RESNET,
    ),
    # the same network as resnet18; only the reference input differs (see models.resnet)
    "resnet18-tiny": ArchInfo(
        make=partial(resnet.ResNet, depths=resnet.DEPTHS["resnet18"]),
        dataset="Tiny-ImageNet",
        reference=(3, 64, 64),
        **_RESNET,
    ),
    "vggann": ArchInfo(
        accepts=dvs.VGGANN_ACCEPTS, dataset="CIFAR10-DVS", reference=(2, 128, 128), **_VGGANN
    ),
    "vgg-gesture": ArchInfo(
        make=dvs.VGGGesture,
        feature_size=dvs.gesture_feature_size,
        accepts=dvs.GESTURE_ACCEPTS,
        dataset="DVS128 Gesture",
        reference=(2, 128, 128),
        convertible=False,  # it keeps the official MaxPool
    ),
    # the same network as vggann at the input its Linear(512·2·3 -> 101) implies
    "vggann-ncaltech101": ArchInfo(
        accepts=dvs.VGGANN_ACCEPTS, dataset="N-Caltech101", reference=(2, 180, 240), **_VGGANN
    ),
}
ARCHITECTURES: tuple[str, ...] = tuple(ARCH_INFO)


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an int >= 1")


def check_input(arch: str, in_channels: int, input_size: tuple[int, int], num_classes: int) -> None:
    """Raise ``ValueError`` unless ``arch`` accepts ``in_channels x H x W`` and ``num_classes``.

    Uses the architecture's shape rule only, so it is cheap enough to validate a config
    before any data is loaded or any weight is allocated.
    """
    if arch not in ARCH_INFO:
        raise ValueError(f"arch={arch!r} is not known; use one of {ARCHITECTURES}")
    _positive_int("num_classes", num_classes)
    _positive_int("in_channels", in_channels)
    size = tuple(input_size) if isinstance(input_size, (tuple, list)) else (input_size,)
    if len(size) != 2:
        raise ValueError(f"input_size={input_size!r} must be (H, W)")
    for value in size:
        _positive_int("input_size", value)
    info = ARCH_INFO[arch]
    h, w = info.feature_size(size)
    if h < 1 or w < 1:
        c, H, W = info.reference
        raise ValueError(
            f"{arch} cannot take input {in_channels}x{size[0]}x{size[1]} (C x H x W): "
            f"it accepts {info.accepts}; it was built for {info.dataset}, {c}x{H}x{W}"
        )


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
    if arch not in ARCH_INFO:
        raise ValueError(f"arch={arch!r} is not known; use one of {ARCHITECTURES}")
    info = ARCH_INFO[arch]
    if input_size is None:
        input_size = info.reference[1:]
    check_input(arch, in_channels, input_size, num_classes)
    layers = Layers(neuron, norm, levels, T, decay, threshold, reset)
    return info.make(layers, in_channels, num_classes, tuple(input_size))


def count_layers(model: nn.Module) -> dict[str, int]:
    """Number of activation layers by kind: ``{"lif": n, "qcfs": n, "relu": n}``."""
    kinds = {"lif": LIF, "qcfs": QCFS, "relu": nn.ReLU}
    return {k: sum(isinstance(m, t) for m in model.modules()) for k, t in kinds.items()}
