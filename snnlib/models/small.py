"""Small networks for the embedded data, sized to train in minutes on 2 CPU cores.

Not from the paper: they stand in for its networks in the demo and the tests (MNIST
1x28x28 images; N-MNIST / emulated-DVS 2x34x34 frames). They follow the paper networks'
pattern (Conv + BN + act units, AvgPool, a final Linear without a neuron), so that they
convert and stream like them.

- :class:`MnistCNN` (``mnist-cnn``): Conv3x3(C->16) + BN + act, AvgPool2,
  Conv3x3(16->32) + BN + act, AvgPool2, Flatten, Linear(32·H/4·W/4 -> 128) + BN1d + act,
  Linear(128 -> K).
- :class:`MLP` (``mnist-mlp``): Flatten, Linear(C·H·W -> 256) + BN1d + act,
  Linear(256 -> 128) + BN1d + act, Linear(128 -> K).
- :class:`DVSCNN` (``dvs-cnn``): Conv3x3(C->16) + BN + act, AvgPool2, Conv3x3(16->32) + BN +
  act, AvgPool2, Conv3x3(32->32) + BN + act, AvgPool2, Flatten, Linear(32·H/8·W/8 -> K).
  A third pooling keeps the 34x34 event frames as cheap as 28x28 images at T≈8.

Init: Kaiming-normal (fan_out) on the convs, as the paper networks.
"""

from __future__ import annotations

from torch import Tensor

from snnlib.catalog import ARCH_INFO
from snnlib.layers import Sequential
from snnlib.models.blocks import Layers, avgpool, conv, flatten, kaiming_init, linear
from snnlib.neurons import Collector, RunState, SpikingModule


def conv_unit(layers: Layers, cin: int, cout: int) -> Sequential:
    """Conv3x3 (padded) + BN + act."""
    return Sequential(conv(cin, cout, 3, padding=1), layers.norm2d(cout), layers.act())


def dense_unit(layers: Layers, fin: int, fout: int) -> Sequential:
    """Linear + BN1d + act."""
    return Sequential(linear(fin, fout), layers.norm1d(fout), layers.act())


class MnistCNN(SpikingModule):
    """Two conv units and a hidden dense unit: ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self, layers: Layers, in_channels: int, num_classes: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        h, w = ARCH_INFO["mnist-cnn"].feature_size(input_size)
        self.features = Sequential(
            conv_unit(layers, in_channels, 16),
            avgpool(2),
            conv_unit(layers, 16, 32),
            avgpool(2),
            flatten(),
            dense_unit(layers, 32 * h * w, 128),
        )
        self.classifier = linear(128, num_classes)
        kaiming_init(self)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        return self.classifier(self.features(x, state, collector))  # [T, B, K]


class MLP(SpikingModule):
    """Two hidden dense units on the flattened input: ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self, layers: Layers, in_channels: int, num_classes: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        h, w = ARCH_INFO["mnist-mlp"].feature_size(input_size)
        self.features = Sequential(
            flatten(), dense_unit(layers, in_channels * h * w, 256), dense_unit(layers, 256, 128)
        )
        self.classifier = linear(128, num_classes)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        return self.classifier(self.features(x, state, collector))  # [T, B, K]


class DVSCNN(SpikingModule):
    """Three conv units for event frames: ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(
        self, layers: Layers, in_channels: int, num_classes: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        h, w = ARCH_INFO["dvs-cnn"].feature_size(input_size)
        self.features = Sequential(
            conv_unit(layers, in_channels, 16),
            avgpool(2),
            conv_unit(layers, 16, 32),
            avgpool(2),
            conv_unit(layers, 32, 32),
            avgpool(2),
            flatten(),
        )
        self.classifier = linear(32 * h * w, num_classes)
        kaiming_init(self)

    def forward(
        self, x: Tensor, state: RunState | None = None, collector: Collector | None = None
    ) -> Tensor:
        return self.classifier(self.features(x, state, collector))  # [T, B, K]
