"""ResNet-18/34 with the CIFAR stem, as in the official code (docs/method.md §2.3).

Stem: Conv3x3(C -> 64, stride 1, no bias) + BN + act, with no max-pool. Four stages of
:class:`BasicBlock` with 64/128/256/512 channels and strides 1/2/2/2 (``[2, 2, 2, 2]`` for
ResNet-18, ``[3, 4, 6, 3]`` for ResNet-34). Head: AdaptiveAvgPool(1), Flatten,
Linear(512 -> K). This is a standard spiking ResNet, not SEW: the shortcut is added *before*
the block's last activation, which in the SNN is a spiking neuron.

The same network serves Tiny-ImageNet (``resnet18-tiny``): the official code runs its
CIFAR-stem ResNet on 64x64 input, so the 3x3 stem keeps full resolution and stage 4 ends at
8x8 before the adaptive pooling. The 224x224 ImageNet stem (7x7/2 + MaxPool) is not built:
no dataset of the paper uses it and MaxPool cannot be converted.

Init: PyTorch defaults, as in the official ResNet (which, unlike its VGGs, sets none).
"""

from __future__ import annotations

from torch import Tensor, nn

from snnlib.layers import Folded, Sequential
from snnlib.models.blocks import Layers, conv, flatten, linear
from snnlib.neurons import Collector, RunState, SpikingModule
from snnlib.neurons.state import call

DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)


class BasicBlock(SpikingModule):
    """``act( BN(conv3x3(act(BN(conv3x3(x))))) + shortcut(x) )``.

    The shortcut is the identity, or Conv1x1(stride) + BN where the shape changes.
    """

    def __init__(self, layers: Layers, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.residual = Sequential(
            conv(cin, cout, 3, stride, 1, bias=False),
            layers.norm2d(cout),
            layers.act(),
            conv(cout, cout, 3, 1, 1, bias=False),
            layers.norm2d(cout),
        )
        if stride != 1 or cin != cout:
            self.shortcut = Sequential(conv(cin, cout, 1, stride, bias=False), layers.norm2d(cout))
        else:
            self.shortcut = Sequential()  # identity
        self.act = layers.act()

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        out = self.residual(x, state, collector) + self.shortcut(x, state, collector)
        return call(self.act, out, state, collector)  # [T, B, C', H', W']


class ResNet(SpikingModule):
    """CIFAR-stem ResNet of BasicBlocks (``depths`` per stage): ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self,
        layers: Layers,
        in_channels: int,
        num_classes: int,
        input_size: tuple[int, int],  # unused (adaptive pooling); the builders' signature
        depths: tuple[int, ...] = DEPTHS["resnet18"],
    ) -> None:
        super().__init__()
        self.stem = Sequential(
            conv(in_channels, 64, 3, 1, 1, bias=False), layers.norm2d(64), layers.act()
        )
        stages, c = [], 64
        for depth, width, stride in zip(depths, WIDTHS, STRIDES, strict=True):
            blocks = []
            for i in range(depth):
                blocks.append(BasicBlock(layers, c, width, stride if i == 0 else 1))
                c = width
            stages.append(Sequential(*blocks))
        self.stages = Sequential(*stages)
        self.head = Sequential(
            Folded(nn.AdaptiveAvgPool2d(1)), flatten(), linear(WIDTHS[-1], num_classes)
        )

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        x = self.stem(x, state, collector)  # [T, B, 64, H, W]
        x = self.stages(x, state, collector)  # [T, B, 512, H/8, W/8]
        return self.head(x, state, collector)  # [T, B, K]
