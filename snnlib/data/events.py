"""Recorded event datasets read with tonic, turned into T count frames and cached on disk.

| name           | tonic class (folder under root) | frame (W, H) | window (from first event)  |
|----------------|---------------------------------|--------------|----------------------------|
| nmnist         | ``NMNIST``                      | 34 x 34      | whole recording (~300 ms)  |
| nmnist-subset  | ``NMNIST`` (listed files only)  | 34 x 34      | whole recording (~300 ms)  |
| cifar10-dvs    | ``CIFAR10DVS``                  | 128 x 128    | 0.1 s to 1.2 s             |
| ncaltech101    | ``NCALTECH101``                 | 240 x 180    | whole recording (~300 ms)  |
| dvs128-gesture | ``DVSGesture``                  | 128 x 128    | 0 to 1.3 s                 |

The windows of CIFAR10-DVS and DVS128 Gesture are the official code's (docs/method.md §2.4).

N-Caltech101 recordings (shifted by tonic to start at x = y = 0) are cropped to 240x180, the
frame implied by the paper's model; events beyond it are dropped.

tonic's own existence check wants the complete download (the archive file and e.g. 10,000
N-MNIST files). The subclasses here keep tonic's class names (tonic looks in
``<root>/<ClassName>/``) and skip that check once snnlib has found the expected layout, so
partial copies load; nothing in tonic is patched globally. Without the layout, ``download=True``
hands over to tonic's own download; ``download=False`` raises :class:`DatasetNotFoundError`.

Every recording is checked as it is read (``validate``: size, events in time order, inside the
sensor); a damaged one raises :class:`CorruptSampleError` naming the file. Frames are cached
per sample with tonic's ``DiskCachedDataset`` (HDF5) under
``<cache_dir>/<name>/<part>-T<T>-<fingerprint>/``, the fingerprint covering each file's path
and content identity (size, mtime, a hash of its content: :func:`content_identity`), so a
replaced file is read (and checked) again; an epoch reads events only once; the training
translation is applied after the cache. Nothing is written into the dataset folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tonic
import torch
from tonic.download_utils import extract_archive
from torch.utils.data import Dataset

from snnlib.catalog import dataset_info as info
from snnlib.data.errors import SPLITS, CorruptSampleError, not_found
from snnlib.data.framing import RandomTranslate, Window, to_frames
from snnlib.data.splits import (
    NCALTECH101_CLASSES,
    SPLIT_DIR,
    carve_calib,
    file_rule_split,
    load_split_file,
)
from snnlib.data.validate import RECORD_BYTES, check_events, check_file

CACHE_VERSION = 1  # bump when the framing changes, so old caches are not reused


class _LocalFiles:
    """Mixin for tonic datasets: trust a folder snnlib has checked; canonical sample order."""

    def __init__(self, save_to: str, *, local_only: bool, **kwargs):
        self._local_only = local_only
        super().__init__(save_to, **kwargs)
        # os.walk order is not defined (tonic sorts some folders only): sort by path
        order = sorted(range(len(self.data)), key=self.data.__getitem__)
        for attr in ("data", "targets", "users", "lighting"):
            if hasattr(self, attr):
                values = getattr(self, attr)
                setattr(self, attr, [values[i] for i in order])

    def _check_exists(self) -> bool:
        return self._local_only or super()._check_exists()


class NMNIST(_LocalFiles, tonic.datasets.NMNIST):
    """tonic's NMNIST (same class name, so same folder) that accepts a partial copy."""


class NMNISTSubset:
    """The N-MNIST subset: exactly the files ``splits/nmnist-subset.json`` lists, from tonic's
    NMNIST folder (the subset's own copy or a complete N-MNIST), ``Train`` and ``Test`` read
    as one dataset (paths sorted). A listed file that is missing is an error naming it; one
    whose content differs from the published recording (``splits/nmnist-subset-digests.json``;
    e.g. cut to a whole number of events, which no format check can see) is refused as
    damaged when it is read."""

    folder = "NMNIST"  # tonic's folder under root

    def __init__(self, save_to: str, *, local_only: bool):
        parts = [NMNIST(save_to, local_only=local_only, train=t) for t in (True, False)]
        self.location_on_system, self.folder_name = parts[0].location_on_system, ""
        listed = {p for s in SPLITS for p in load_split_file("nmnist-subset")[s]}
        found = {
            Path(path).relative_to(self.location_on_system).as_posix(): (part, i)
            for part in parts
            for i, path in enumerate(part.data)
        }
        missing = sorted(listed - set(found))
        if missing:
            base = Path(self.location_on_system)
            raise not_found(
                "nmnist-subset",
                base,
                [f"{base}/Train/<digit 0-9>/<id>.bin", f"{base}/Test/<digit 0-9>/<id>.bin"],
                "The subset's files are listed in snnlib/data/splits/nmnist-subset.json.",
                f"{len(missing)} of its {len(listed)} listed files missing, e.g. {missing[0]}",
            )
        self._items = [found[p] for p in sorted(listed)]
        self.data = [part.data[i] for part, i in self._items]
        self.targets = [part.targets[i] for part, i in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int):
        part, i = self._items[index]
        path = Path(part.data[i])
        relpath = path.relative_to(self.location_on_system).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if digest != published_digests()[relpath]:
            raise CorruptSampleError(
                f"its content differs from the published recording {relpath} (SHA-256 "
                f"{digest}..., published {published_digests()[relpath]}...)"
            )
        return part[i]


@functools.cache
def published_digests() -> dict[str, str]:
    """The first 16 hex digits of the SHA-256 of each N-MNIST subset recording, as published."""
    return json.loads((SPLIT_DIR / "nmnist-subset-digests.json").read_text())["sha256"]


class CIFAR10DVS(_LocalFiles, tonic.datasets.CIFAR10DVS):
    """tonic's CIFAR10DVS (AEDAT4, read with the ``aedat`` package) accepting a partial copy."""


class NCALTECH101(_LocalFiles, tonic.datasets.NCALTECH101):
    """tonic's NCALTECH101 accepting a partial copy, restricted to ``Caltech101/``."""

    def __init__(self, save_to: str, *, local_only: bool, **kwargs):
        super().__init__(save_to, local_only=local_only, **kwargs)
        # tonic's base class resets folder_name to "", so tonic walks all of NCALTECH101/ and
        # would take annotation files (Caltech101_annotations/<class>/*.bin) for recordings
        self.folder_name = "Caltech101"
        keep = [i for i, p in enumerate(self.data) if Path(p).parent.parent.name == "Caltech101"]
        self.data = [self.data[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]


class DVSGesture(_LocalFiles, tonic.datasets.DVSGesture):
    """tonic's DVSGesture (its preprocessed ``.npy`` release) accepting a partial copy."""


@dataclass(frozen=True)
class EventSource:
    """How one recorded event dataset is found, framed and split."""

    tonic_cls: type
    parts: dict  # split part -> (sub-folder of the tonic folder, tonic kwargs)
    pattern: str  # glob of sample files inside a part's folder
    window: Window
    max_shift: int  # training translation in px (docs/method.md §2.4)
    drop_outside: bool
    layout: tuple[str, ...]  # relative to root
    download: str


SOURCES = {
    "nmnist": EventSource(
        NMNIST,
        {"train": ("Train", {"train": True}), "test": ("Test", {"train": False})},
        "*/*.bin",
        Window(),
        max_shift=0,  # no augmentation for N-MNIST (not a paper dataset)
        drop_outside=False,
        layout=("NMNIST/Train/<digit 0-9>/<id>.bin", "NMNIST/Test/<digit 0-9>/<id>.bin"),
        download="Pass download=True to fetch train.zip / test.zip with tonic "
        f"(from {tonic.datasets.NMNIST.train_url} and {tonic.datasets.NMNIST.test_url}).",
    ),
    "nmnist-subset": EventSource(
        NMNISTSubset,
        {"all": ("", {})},
        "Train/*/*.bin",
        Window(),
        max_shift=0,
        drop_outside=False,
        layout=("NMNIST/Train/<digit 0-9>/<id>.bin", "NMNIST/Test/<digit 0-9>/<id>.bin"),
        download="The files are listed in snnlib/data/splits/nmnist-subset.json; a complete "
        "N-MNIST copy holds them (dataset nmnist with download=True fetches it with tonic).",
    ),
    "cifar10-dvs": EventSource(
        CIFAR10DVS,
        {"all": ("", {})},
        "*/*.aedat4",
        Window(start_us=100_000, duration_us=1_100_000),
        max_shift=25,
        drop_outside=False,
        layout=("CIFAR10DVS/<class: airplane ... truck>/cifar10_<class>_<n>.aedat4",),
        download="Pass download=True to fetch CIFAR10DVS.zip with tonic "
        f"(from {tonic.datasets.CIFAR10DVS.url}); reading needs `pip install aedat`.",
    ),
    "ncaltech101": EventSource(
        NCALTECH101,
        {"all": ("Caltech101", {})},
        "*/*.bin",
        Window(),
        max_shift=25,
        drop_outside=True,
        layout=("NCALTECH101/Caltech101/<class, e.g. airplanes>/image_<nnnn>.bin",),
        download="Pass download=True to fetch N-Caltech101-archive.zip with tonic "
        f"(from {tonic.datasets.NCALTECH101.url}; snnlib unpacks the inner Caltech101.zip).",
    ),
    "dvs128-gesture": EventSource(
        DVSGesture,
        {
            "train": ("ibmGestureTrain", {"train": True}),
            "test": ("ibmGestureTest", {"train": False}),
        },
        "*/*.npy",
        Window(start_us=0, duration_us=1_300_000),
        max_shift=25,
        drop_outside=False,
        layout=(
            "DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label 0-10>.npy",
            "DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label 0-10>.npy",
        ),
        download="Pass download=True to fetch tonic's preprocessed ibmGestureTrain.tar.gz / "
        f"ibmGestureTest.tar.gz (from {tonic.datasets.DVSGesture.train_url} and "
        f"{tonic.datasets.DVSGesture.test_url}).",
    ),
}


def _part_of(name: str, split: str) -> str:
    parts = SOURCES[name].parts
    return "all" if "all" in parts else ("test" if split == "test" else "train")


def open_source(name: str, part: str, root: Path, download: bool):
    """The tonic dataset of one part, after checking its folder (or downloading it)."""
    src = SOURCES[name]
    if name == "cifar10-dvs" and importlib.util.find_spec("aedat") is None:
        # tonic imports it only when the first sample is read; fail before training instead
        raise ModuleNotFoundError(
            "cifar10-dvs: tonic reads its AEDAT4 files with the `aedat` package, which is not "
            "installed: pip install aedat"
        )
    sub, kwargs = src.parts[part]
    base = root / getattr(src.tonic_cls, "folder", src.tonic_cls.__name__)
    folder = base / sub if sub else base
    present = folder.is_dir() and next(folder.glob(src.pattern), None) is not None
    if not present and not download:
        problem = "no sample files" if folder.is_dir() else "folder missing"
        if name == "ncaltech101" and (base / "Caltech101.zip").is_file():
            problem = f"Caltech101.zip in {base} is not unpacked; unpack it there"
        layout = [str(root / line) for line in src.layout]
        raise not_found(name, folder, layout, src.download, problem)
    if not present:
        src.tonic_cls(str(root), local_only=False, **kwargs)  # tonic downloads and extracts
        inner = base / "Caltech101.zip"
        if name == "ncaltech101" and inner.is_file() and not folder.is_dir():
            extract_archive(str(inner))  # tonic extracts only the outer archive
    return src.tonic_cls(str(root), local_only=True, **kwargs)


def source_labels(name: str, source) -> list[int]:
    """The class index of every file of a tonic dataset, in its (sorted) order."""
    if name != "ncaltech101":
        return [int(v) for v in source.targets]
    index = {c: i for i, c in enumerate(NCALTECH101_CLASSES)}
    unknown = sorted({t for t in source.targets if t not in index})
    if unknown:
        raise CorruptSampleError(
            f"ncaltech101: unexpected class folders {unknown} in "
            f"'{source.location_on_system}'; expected the 101 N-Caltech101 classes"
        )
    return [index[t] for t in source.targets]


def _relpaths(source) -> list[str]:
    base = Path(source.location_on_system, source.folder_name)
    return [Path(p).relative_to(base).as_posix() for p in source.data]


def part_positions(name: str, part: str, source) -> dict[str, list[int]]:
    """Positions (in the sorted tonic dataset of ``part``) of each split it holds."""
    keys = _relpaths(source)
    if part == "all":
        return file_rule_split(name, keys)
    if part == "test":
        return {"test": list(range(len(keys)))}
    return carve_calib(keys, source_labels(name, source), name)


class FramedSource:
    """Sample ``i`` of a tonic dataset as ``(int16 frames [T, 2, H, W], label)``.

    Any failure to read or frame a file is re-raised as :class:`CorruptSampleError` naming it.
    """

    def __init__(self, name: str, source, T: int):
        self.name, self.source, self.T = name, source, T
        self.labels = source_labels(name, source)
        self.sensor_size = info(name).sensor_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path = self.source.data[index]
        src = SOURCES[self.name]
        try:
            check_file(path, RECORD_BYTES.get(self.name))
            events, _ = self.source[index]
            check_events(events, self.sensor_size, inside=not src.drop_outside)
            frames = to_frames(events, self.sensor_size, self.T, src.window, src.drop_outside)
        except Exception as err:  # any decoder error: the user needs the file, not the stack
            checked = isinstance(err, CorruptSampleError)
            why = str(err) if checked else f"{type(err).__name__}: {err}"
            raise CorruptSampleError(
                f"{self.name}: cannot read sample {index} from '{path}': {why}; replace the "
                "file with a fresh copy of the dataset"
            ) from err
        return frames, self.labels[index]


WHOLE_FILE_BYTES = 1 << 20  # recordings up to this size are hashed whole


def content_identity(path: str | os.PathLike, block: int = 4096) -> str:
    """``size:mtime_ns:hash`` of a file: a file replaced or rewritten in place (even with the
    same size and its modification time put back) gets another identity. Files up to
    :data:`WHOLE_FILE_BYTES` (every N-MNIST and most N-Caltech101 recordings) are hashed whole;
    larger ones over their first and last ``block`` bytes, so a cache check does not read
    gigabytes (a change in their middle with the time put back goes unseen)."""
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        if stat.st_size <= WHOLE_FILE_BYTES:
            content = f.read()
        else:
            content = f.read(block)
            f.seek(stat.st_size - block)
            content += f.read(block)
    digest = hashlib.sha256(content).hexdigest()[:16]
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest}"


def _cache_path(name: str, part: str, T: int, source, cache_dir: Path) -> Path:
    listing = "\n".join(f"{p}:{content_identity(p)}" for p in source.data)
    src = SOURCES[name]
    tag = f"{CACHE_VERSION}|{src.window}|{info(name).sensor_size}|{listing}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return cache_dir / name / f"{part}-T{T}-{digest}"


class EventFrames(Dataset):
    """One split of a recorded event dataset: ``(frames float32 [T, 2, H, W], label int)``.

    ``paths[i]`` is the file of sample ``i``; ``targets[i]`` its label.
    """

    def __init__(self, framed, positions: list[int], augment: RandomTranslate | None):
        self.framed, self.positions, self.augment = framed, list(positions), augment
        base = framed.dataset if isinstance(framed, tonic.DiskCachedDataset) else framed
        self.paths = [base.source.data[i] for i in self.positions]
        self.targets = [base.labels[i] for i in self.positions]
        self.sensor_size = base.sensor_size

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames, label = self.framed[self.positions[index]]
        x = torch.from_numpy(np.asarray(frames)).float()
        if self.augment is not None:
            x = self.augment(x)
        return x, int(label)


def event_dataset(
    name: str,
    split: str,
    *,
    root: Path,
    T: int,
    download: bool,
    augment: bool,
    cache_dir: Path | None,
) -> EventFrames:
    """Split ``split`` of a recorded event dataset (see the module docstring)."""
    part = _part_of(name, split)
    source = open_source(name, part, root, download)
    framed = FramedSource(name, source, T)
    if cache_dir is not None:
        path = _cache_path(name, part, T, source, cache_dir)
        framed = tonic.DiskCachedDataset(framed, cache_path=str(path))
    max_shift = SOURCES[name].max_shift
    shift = RandomTranslate(max_shift) if augment and max_shift > 0 else None
    return EventFrames(framed, part_positions(name, part, source)[split], shift)
