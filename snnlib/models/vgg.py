"""VGG-16 with average pooling, as in the official CIFAR/ImageNet code (docs/method.md §2.3).

Five blocks of 3x3 convolutions ``[64, 64], [128, 128], [256]*3, [512]*3, [512]*3``; each
layer is Conv3x3 (bias) + BN + activation + Dropout(0), and each block ends with
AvgPool2d(2). The classifier is Flatten, Linear(512·h·w -> 4096), act, Dropout,
Linear(4096 -> 4096), act, Dropout, Linear(4096 -> K), where ``h, w = H // 32, W // 32``:
512 for 32x32 CIFAR, 512·7·7 for 224x224 ImageNet. Init: Kaiming-normal (fan_out) convs,
BN 1/0, Linear bias 0.
"""

from __future__ import annotations

from torch import Tensor

from snnlib.catalog import ARCH_INFO
from snnlib.layers import Sequential
from snnlib.models.blocks import Layers, avgpool, conv, dropout, flatten, kaiming_init, linear
from snnlib.neurons import Collector, RunState, SpikingModule

WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16(SpikingModule):
    """VGG-16 (AvgPool): ``[T, B, C, H, W] -> [T, B, K]`` per-timestep logits."""

    def __init__(
        self,
        layers: Layers,
        in_channels: int,
        num_classes: int,
        input_size: tuple[int, int],
        p_dropout: float = 0.0,  # the official scripts keep dropout=0
    ) -> None:
        super().__init__()
        blocks, c = [], in_channels
        for widths in WIDTHS:
            units = []
            for w in widths:
                units += [conv(c, w, 3, padding=1), layers.norm2d(w), layers.act()]
                units.append(dropout(p_dropout))
                c = w
            blocks.append(Sequential(*units, avgpool(2)))
        self.features = Sequential(*blocks)
        h, w = ARCH_INFO["vgg16"].feature_size(input_size)  # five 2x2 poolings
        self.classifier = Sequential(
            flatten(),
            linear(512 * h * w, 4096),
            layers.act(),
            dropout(p_dropout),
            linear(4096, 4096),
            layers.act(),
            dropout(p_dropout),
            linear(4096, num_classes),
        )
        kaiming_init(self, zero_linear_bias=True)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        x = self.features(x, state, collector)  # [T, B, 512, H/32, W/32]
        return self.classifier(x, state, collector)  # [T, B, K]
