"""Frame (image) datasets of the paper: CIFAR-10, CIFAR-100 (torchvision) and Tiny-ImageNet.

Transforms (docs/method.md §2.4):

* CIFAR train: RandomCrop(32, padding 4), RandomHorizontalFlip, AutoAugment (torchvision's
  CIFAR10 policy, also for CIFAR-100 as the original), ToTensor, Normalize, Cutout(1 hole,
  16 px). Test: ToTensor, Normalize. CIFAR-10 mean/std (0.4914, 0.4822, 0.4465) /
  (0.2023, 0.1994, 0.2010); CIFAR-100 (129.3, 124.1, 112.4) / (68.2, 65.4, 70.4), divided by 255.
* Tiny-ImageNet: ToTensor only, as the official loader (no normalisation). The paper has no
  Tiny-ImageNet script, so its training augmentation is our choice: RandomCrop(64, padding 4)
  and RandomHorizontalFlip (``augment=False`` gives the official loader exactly).

Tiny-ImageNet's ``val/images`` is labelled through ``val/val_annotations.txt`` in memory
(:class:`TinyImageNetVal`); nothing is moved or written in the dataset folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision import transforms as T
from torchvision.datasets.utils import download_and_extract_archive

from snnlib.data.errors import CorruptSampleError, not_found
from snnlib.data.splits import carve_calib
from snnlib.data.standins import cifar_md5, is_standin_root

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": (
        (129.3 / 255, 124.1 / 255, 112.4 / 255),
        (68.2 / 255, 65.4 / 255, 70.4 / 255),
    ),
}
CIFAR_CLASSES = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


class Cutout:
    """Zero one ``length`` x ``length`` square (clipped at the border) centred on a uniformly
    random pixel of a ``[C, H, W]`` tensor (DeVries & Taylor 2017). Uses torch's global RNG.
    """

    def __init__(self, n_holes: int = 1, length: int = 16):
        self.n_holes, self.length = n_holes, length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        image = image.clone()
        for _ in range(self.n_holes):
            cy = int(torch.randint(height, ()))
            cx = int(torch.randint(width, ()))
            half = self.length // 2
            image[..., max(0, cy - half) : cy + half, max(0, cx - half) : cx + half] = 0
        return image


def cifar_transform(name: str, augment: bool) -> Callable:
    """The paper's CIFAR train (``augment``) or test transform."""
    mean, std = CIFAR_STATS[name]
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if not augment:
        return T.Compose(tail)
    return T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
            *tail,
            Cutout(1, 16),
        ]
    )


def _with_md5(cls: type, md5: dict[str, str]) -> type:
    """``cls`` checking the files against ``md5`` (by file name) instead of the release's:
    torchvision still checks every file before it unpickles any."""
    return type(
        f"StandIn{cls.__name__}",
        (cls,),
        {
            "train_list": [[f, md5[f]] for f, _ in cls.train_list],
            "test_list": [[f, md5[f]] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": md5[cls.meta["filename"]]},
        },
    )


def cifar_dataset(name: str, split: str, *, root: Path, download: bool, augment: bool) -> Dataset:
    """Split ``split`` of CIFAR-10/100 read by torchvision from ``root``. Its pickled files are
    unpickled only once their MD5s match: the release's, or under a smoke folder's stand-ins
    (:func:`snnlib.data.standins.is_standin_root`) those of the suite's own stand-ins."""
    cls = CIFAR_CLASSES[name]
    fix = f"delete the folder and pass download=True, or re-download {cls.url}"
    if is_standin_root(root):
        cls = _with_md5(cls, cifar_md5(name))
        fix = f"delete {root} and rerun with --smoke to write the stand-ins again"
    folder = root / cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and not download:
        raise not_found(
            name,
            folder,
            [f"{folder}/{{{', '.join(files)}}}  (python pickle release, unpacked)"],
            f"Pass download=True to fetch it with torchvision (from {cls.url}).",
            f"missing {', '.join(missing)}",
        )
    try:
        data = cls(
            str(root),
            train=split != "test",
            transform=cifar_transform(name, augment),
            download=download,
        )
    except RuntimeError as err:  # torchvision's MD5 check failed
        raise CorruptSampleError(
            f"{name}: the files in '{folder}' failed torchvision's integrity (MD5) check "
            f"({err}), so none was unpickled; {fix}"
        ) from err
    if split == "test":
        return data
    keys = [str(i) for i in range(len(data.targets))]
    return Subset(data, carve_calib(keys, data.targets, name)[split])


class TinyImageNetVal(datasets.ImageFolder):
    """Tiny-ImageNet's ``val`` folder labelled from ``val_annotations.txt`` (nothing written).

    Labels use the training set's ``class_to_idx`` (sorted wnids), as ImageFolder on ``train``.
    """

    def __init__(self, val_dir: str, class_to_idx: dict[str, int], transform=None):
        self._train_classes = dict(class_to_idx)
        super().__init__(val_dir, transform=transform)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return sorted(self._train_classes, key=self._train_classes.get), self._train_classes

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, **_):
        """Samples ``(val/images/<file>, class index)`` in file-name order."""
        annotations = Path(directory, "val_annotations.txt")
        samples = []
        for line_no, line in enumerate(annotations.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in class_to_idx:
                raise CorruptSampleError(
                    f"tiny-imagenet: line {line_no} of '{annotations}' is not "
                    f"'<file>\\t<wnid of a training class>\\t...': {line!r}"
                )
            path = Path(directory, "images", fields[0])
            if not path.is_file():
                raise CorruptSampleError(
                    f"tiny-imagenet: '{path}' is listed in '{annotations}' but missing"
                )
            samples.append((str(path), class_to_idx[fields[1]]))
        return sorted(samples)


def tiny_imagenet_transform(augment: bool) -> Callable:
    """ToTensor (the official loader), after RandomCrop(64, 4) and a flip when ``augment``."""
    if not augment:
        return T.ToTensor()
    return T.Compose([T.RandomCrop(64, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])


def tiny_imagenet_dataset(split: str, *, root: Path, download: bool, augment: bool) -> Dataset:
    """Split ``split`` of Tiny-ImageNet-200 from ``<root>/tiny-imagenet-200``."""
    base = root / "tiny-imagenet-200"
    train_dir, val_dir = base / "train", base / "val"
    needed = [train_dir, val_dir / "images", val_dir / "val_annotations.txt"]
    if not all(p.exists() for p in needed) and download:
        download_and_extract_archive(TINY_IMAGENET_URL, download_root=str(root))
    layout = [
        f"{train_dir}/<wnid>/images/<wnid>_<n>.JPEG",
        f"{val_dir}/images/val_<n>.JPEG",
        f"{val_dir}/val_annotations.txt  (<file>\\t<wnid>\\t<box>)",
    ]
    download_hint = f"Pass download=True to fetch {TINY_IMAGENET_URL} (via torchvision)."
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise not_found(
            "tiny-imagenet", base, layout, download_hint, f"missing {', '.join(missing)}"
        )
    transform = tiny_imagenet_transform(augment)
    try:
        train = datasets.ImageFolder(str(train_dir), transform=transform)
    except FileNotFoundError as err:  # no class folder, or a class folder without images
        raise not_found("tiny-imagenet", train_dir, layout, download_hint, str(err)) from err
    if split == "test":
        return TinyImageNetVal(str(val_dir), train.class_to_idx, transform=transform)
    keys = [Path(p).relative_to(train_dir).as_posix() for p, _ in train.samples]
    return Subset(train, carve_calib(keys, train.targets, "tiny-imagenet")[split])
