"""Damaged copies of recordings, for the tests that check they are refused.

The datasets themselves (synthetic, in the real on-disk formats) come from
:mod:`snnlib.data.standins`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snnlib.data.standins import encode_atis_bin, random_events

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
