"""Writers of tiny datasets in the real on-disk formats that torchvision and tonic read.

Used by ``test_data.py`` inside ``tmp_path``: the real loader classes then run on them. The
contents are synthetic (random pixels and events); the formats are the published ones.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")


def random_events(rng, n, width, height, duration_us):
    """n events with both polarities, sorted by time, as arrays x, y, t (µs), p."""
    t = np.sort(rng.integers(0, duration_us, n))
    x, y = rng.integers(0, width, n), rng.integers(0, height, n)
    p = np.arange(n) % 2
    return x, y, t, p


# --- torchvision CIFAR: python pickle batches -------------------------------------------------


def write_cifar(root: Path, name: str, n_per_batch: int, seed: int = 0) -> Path:
    """``cifar-10-batches-py`` (5 train batches, test_batch, batches.meta) or
    ``cifar-100-python`` (train, test, meta) with ``n_per_batch`` images per file."""
    rng = np.random.default_rng(seed)
    hundred = name == "cifar100"
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    n_classes = 100 if hundred else 10
    files = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    files += [] if hundred else ["test_batch"]
    for file in files:
        labels = [int(v) for v in np.arange(n_per_batch) % n_classes]
        entry = {
            "batch_label": file,
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            ("fine_labels" if hundred else "labels"): labels,
        }
        (folder / file).write_bytes(pickle.dumps(entry, protocol=2))
    meta = (
        {"fine_label_names": [f"c{i}" for i in range(100)]}
        if hundred
        else {"label_names": [f"c{i}" for i in range(10)]}
    )
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta))
    return folder


# --- Tiny-ImageNet-200 folder tree -------------------------------------------------------------


def write_tiny_imagenet(root: Path, wnids: list[str], n_train: int, n_val: int) -> Path:
    """``tiny-imagenet-200`` with train/<wnid>/images/*.JPEG, val/images + val_annotations.txt."""
    rng = np.random.default_rng(0)
    base = root / "tiny-imagenet-200"
    (base / "wnids.txt").parent.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")

    def jpeg(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, "JPEG")

    for wnid in wnids:
        boxes = []
        for i in range(n_train):
            jpeg(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t63\t63")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    lines = []
    for i in range(n_val):
        wnid = wnids[(i * 7) % len(wnids)]
        jpeg(base / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t1\t2\t50\t60")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


# --- tonic: N-MNIST / N-Caltech101 40-bit .bin files -------------------------------------------


def encode_atis_bin(x, y, t, p) -> bytes:
    """Events in the N-MNIST / N-Caltech101 format: 5 bytes each, x(8) y(8) p(1) t(23) in µs."""
    t = np.asarray(t, dtype=np.int64)
    raw = np.zeros((len(t), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (np.asarray(p, dtype=np.int64) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def write_nmnist(root: Path, per_digit: dict[str, int], seed: int = 0) -> Path:
    """``NMNIST/Train/<d>/<id>.bin`` and ``NMNIST/Test/<d>/<id>.bin``, ``per_digit[part]`` each."""
    rng = np.random.default_rng(seed)
    for part, n in per_digit.items():
        for digit in range(10):
            for i in range(n):
                path = root / "NMNIST" / part / str(digit) / f"{digit * 100 + i:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode_atis_bin(*random_events(rng, 300, 34, 34, 300_000)))
    return root / "NMNIST"


def write_ncaltech101(root: Path, classes: list[str], n: int, seed: int = 0) -> Path:
    """``NCALTECH101/Caltech101/<class>/image_<nnnn>.bin`` (numbered from 1), 250x190 px."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        for i in range(1, n + 1):
            path = root / "NCALTECH101" / "Caltech101" / cls / f"image_{i:04d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            # slightly larger than the 240x180 frame, as some real recordings are
            path.write_bytes(encode_atis_bin(*random_events(rng, 400, 250, 190, 300_000)))
    return root / "NCALTECH101"


# --- tonic: DVS128 Gesture, its preprocessed .npy release --------------------------------------


def write_dvs_gesture(root: Path, users: dict[str, list[int]], seed: int = 0) -> Path:
    """``DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy``: (N, 4) arrays of
    x, y, p, t in ms (tonic multiplies t by 1000)."""
    rng = np.random.default_rng(seed)
    for part, ids in users.items():
        for user in ids:
            for label in range(11):
                path = root / "DVSGesture" / part / f"user{user:02d}_fluorescent" / f"{label}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                x, y, t, p = random_events(rng, 500, 128, 128, 2_000_000)
                np.save(path, np.stack([x, y, p, t / 1000], axis=1).astype(np.float64))
    return root / "DVSGesture"


# --- tonic: CIFAR10-DVS as AEDAT4 (read by the `aedat` package) --------------------------------

AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
_EVENTS_XML = (
    '<dv version="2.0"><node name="outInfo"><node name="0">'
    '<attr key="typeIdentifier" type="string">EVTS</attr><node name="info">'
    '<attr key="sizeX" type="int">128</attr><attr key="sizeY" type="int">128</attr>'
    "</node></node></node></dv>"
)


def _size_prefixed(buffer: bytes) -> bytes:
    return struct.pack("<I", len(buffer)) + buffer


def _aedat4_ioheader(description: str) -> bytes:
    """Flatbuffer ``Ioheader`` (size-prefixed, id "IOHE") with only ``description`` set:
    compression None and file_data_position -1 (no data table) are the schema defaults."""
    text = description.encode()
    buf = struct.pack("<I4s", 20, b"IOHE")  # root table at 20, file identifier
    buf += struct.pack("<5H", 10, 8, 0, 0, 4) + b"\0\0"  # vtable: 3 fields, only #2 present
    buf += struct.pack("<iI", 20 - 8, 28 - 24)  # table: vtable back-offset, offset to string
    buf += struct.pack("<I", len(text)) + text + b"\0"
    return _size_prefixed(buf + b"\0" * (-len(buf) % 4))


def _aedat4_event_packet(x, y, t, p) -> bytes:
    """Flatbuffer ``EventPacket`` (size-prefixed, id "EVTS"): a vector of 16-byte
    ``Event {t: int64, x: int16, y: int16, on: bool}`` structs, 8-byte aligned."""
    events = np.zeros(
        len(t),
        dtype=np.dtype(
            {
                "names": ["t", "x", "y", "on"],
                "formats": ["<i8", "<i2", "<i2", "u1"],
                "offsets": [0, 8, 10, 12],
                "itemsize": 16,
            }
        ),
    )
    events["t"], events["x"], events["y"], events["on"] = t, x, y, p
    buf = struct.pack("<I4s", 16, b"EVTS")  # root table at 16, file identifier
    buf += struct.pack("<3H", 6, 8, 4) + b"\0\0"  # vtable: one field at offset 4
    buf += struct.pack("<iI", 16 - 8, 24 - 20)  # table: vtable back-offset, offset to vector
    buf += struct.pack("<I", len(t)) + events.tobytes()  # elements start at 32 with the prefix
    return _size_prefixed(buf)


def encode_aedat4(x, y, t, p, n_packets: int = 2) -> bytes:
    """An uncompressed AEDAT 4.0 file with one 128x128 event stream split into packets."""
    out = AEDAT4_MAGIC + _aedat4_ioheader(_EVENTS_XML)
    for part in np.array_split(np.arange(len(t)), n_packets):
        packet = _aedat4_event_packet(x[part], y[part], t[part], p[part])
        out += struct.pack("<II", 0, len(packet)) + packet  # stream id 0, packet length
    return out


def write_cifar10_dvs(root: Path, numbers: list[int], seed: int = 0) -> Path:
    """``CIFAR10DVS/<class>/cifar10_<class>_<n>.aedat4`` for a few classes and numbers n."""
    rng = np.random.default_rng(seed)
    for cls in CIFAR10_DVS_CLASSES:
        for n in numbers:
            path = root / "CIFAR10DVS" / cls / f"cifar10_{cls}_{n}.aedat4"
            path.parent.mkdir(parents=True, exist_ok=True)
            x, y, t, p = random_events(rng, 600, 128, 128, 1_400_000)
            path.write_bytes(encode_aedat4(x, y, t + 5_000_000, p))  # real files start late
    return root / "CIFAR10DVS"


# --- damaged recordings -------------------------------------------------------------------------
DAMAGE = ("empty", "truncated", "garbage", "backwards", "outside")


def damage(path: Path, how: str, seed: int = 0) -> None:
    """Rewrite the N-MNIST recording ``path`` as a damaged copy (``how`` in :data:`DAMAGE`).

    ``garbage`` keeps the size and the modification time (random bytes, as a bad copy would
    leave); ``backwards`` and ``outside`` are well-formed files whose events jump back in time
    or lie outside the 34x34 sensor.
    """
    rng = np.random.default_rng(seed)
    blob = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(blob[:-2])
    elif how == "garbage":
        stat = path.stat()
        path.write_bytes(rng.integers(0, 256, len(blob), dtype=np.uint8).tobytes())
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif how == "backwards":
        x, y, t, p = random_events(rng, 300, 34, 34, 300_000)
        path.write_bytes(encode_atis_bin(x, y, t[::-1], p))
    elif how == "outside":
        x, y, t, p = random_events(rng, 300, 34, 34, 300_000)
        x[5] = 40
        path.write_bytes(encode_atis_bin(x, y, t, p))
    else:
        raise ValueError(f"how={how!r} is not allowed; use one of {DAMAGE}")
