"""The VGG-like networks of the event datasets, as in the official code (docs/method.md §2.3).

Every "unit" is Conv (bias) + BN + Dropout(0) + activation. The first unit is a 4x4
convolution with stride 4 and no padding, which turns 128x128 frames into 32x32.

- :class:`VGGANN` (CIFAR10-DVS, 2x128x128): units 2->64 (4x4/4), 64->64, 64->128, AvgPool2,
  128->256, 256->256, AvgPool2, 256->512, 512->512, AvgPool2, 512->512, 512->512, AvgPool2,
  Flatten, Linear(512·h·w -> K). ``h, w = (H // 4) // 16, (W // 4) // 16``: 2x2 at 128x128
  and 2x3 at 180x240, the input that ``VGGANN_NCaltech101``'s Linear(512·2·3 -> 101)
  implies. The two paper networks are therefore one definition at two input sizes.
- :class:`VGGGesture` (DVS128 Gesture, 2x128x128): units 2->64 (4x4/4), 64->128, MaxPool2,
  then four times [128->128, MaxPool2] (1x1 at 128x128), Flatten, Linear(128·h·w -> 512) + BN1d
  + Dropout(0) + act, Linear(512 -> K).

VGG-Gesture keeps the official **MaxPool** whatever the neuron: the paper trains it directly
(TET/TEBN), and a max-pooled QCFS ANN cannot be converted, so :func:`snnlib.convert.convert`
raises on it by name rather than converting a different network silently.

Init: Kaiming-normal (fan_out) on the convs; Linear keeps the PyTorch default.
"""

from __future__ import annotations

from torch import Tensor

from snnlib.catalog import ARCH_INFO
from snnlib.layers import Sequential
from snnlib.models.blocks import (
    Layers,
    avgpool,
    conv,
    dropout,
    flatten,
    kaiming_init,
    linear,
    maxpool,
)
from snnlib.neurons import Collector, RunState, SpikingModule


def unit(layers: Layers, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> Sequential:
    """Conv (bias) + BN + Dropout(0) + act; 3x3 convs are padded to keep the size."""
    padding = 1 if kernel == 3 else 0  # the 4x4/4 input conv is 'valid'
    return Sequential(
        conv(cin, cout, kernel, stride, padding), layers.norm2d(cout), dropout(0.0), layers.act()
    )


class VGGANN(SpikingModule):
    """VGGANN (CIFAR10-DVS) / VGGANN_NCaltech101: ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self, layers: Layers, in_channels: int, num_classes: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.features = Sequential(
            unit(layers, in_channels, 64, kernel=4, stride=4),
            unit(layers, 64, 64),
            unit(layers, 64, 128),
            avgpool(2),
            unit(layers, 128, 256),
            unit(layers, 256, 256),
            avgpool(2),
            unit(layers, 256, 512),
            unit(layers, 512, 512),
            avgpool(2),
            unit(layers, 512, 512),
            unit(layers, 512, 512),
            avgpool(2),
            flatten(),
        )
        h, w = ARCH_INFO["vggann"].feature_size(input_size)
        self.classifier = linear(512 * h * w, num_classes)
        kaiming_init(self)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        x = self.features(x, state, collector)  # [T, B, 512*h*w]
        return self.classifier(x)  # [T, B, K]


class VGGGesture(SpikingModule):
    """VGG_Gesture (DVS128 Gesture, MaxPool): ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self, layers: Layers, in_channels: int, num_classes: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        trunk = [unit(layers, in_channels, 64, kernel=4, stride=4), unit(layers, 64, 128)]
        trunk.append(maxpool(2))
        for _ in range(4):
            trunk += [unit(layers, 128, 128), maxpool(2)]
        self.features = Sequential(*trunk, flatten())
        h, w = ARCH_INFO["vgg-gesture"].feature_size(input_size)
        self.fc = Sequential(
            linear(128 * h * w, 512), layers.norm1d(512), dropout(0.0), layers.act()
        )
        self.classifier = linear(512, num_classes)
        kaiming_init(self)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        x = self.features(x, state, collector)  # [T, B, 128*h*w]
        x = self.fc(x, state, collector)  # [T, B, 512]
        return self.classifier(x)  # [T, B, K]
