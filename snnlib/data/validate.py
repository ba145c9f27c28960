"""Damaged or incomplete recorded data is refused, saying what is wrong with it.

A recording is checked when it is read (before it is framed or cached):

* the file is not empty, and for the 40-bit ATIS format (N-MNIST, N-Caltech101) its size is
  a whole number of 5-byte records, so a truncated copy is caught;
* it decodes to at least one event;
* timestamps never step back by more than :data:`TIME_TOLERANCE_US` (real recordings are
  ordered; garbage decodes to timestamps that jump back and forth);
* coordinates lie inside the sensor (datasets that crop to a smaller frame are exempt).

A dataset is complete when every class is present and it holds at least
:data:`MIN_FRACTION` of the samples its published release has (``release_samples`` of
:mod:`snnlib.catalog`); otherwise :func:`check_complete` refuses it unless the run says
``partial: true``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from snnlib.catalog import dataset_info
from snnlib.data.errors import CorruptSampleError

# Bytes per event of the files that hold fixed-size records (x 8, y 8, p 1, t 23 bits).
RECORD_BYTES = {"nmnist": 5, "nmnist-subset": 5, "ncaltech101": 5}
TIME_TOLERANCE_US = 1_000
MIN_FRACTION = 0.9


class IncompleteDatasetError(ValueError):
    """A dataset copy lacks classes or most of its samples (``partial: true`` accepts it)."""


def check_file(path: str | os.PathLike, record_bytes: int | None) -> None:
    """Refuse an empty recording, or a truncated one of ``record_bytes`` per event.

    The caller names the sample (:class:`~snnlib.data.events.FramedSource` adds its dataset,
    index and path to the message).
    """
    size = os.path.getsize(path)
    if size == 0:
        raise CorruptSampleError("the file is empty (0 bytes)")
    if record_bytes is not None and size % record_bytes:
        raise CorruptSampleError(
            f"{size} bytes is not a whole number of {record_bytes}-byte events (truncated?)"
        )


def check_events(events: np.ndarray, sensor_size, inside: bool) -> None:
    """Refuse decoded events that are none, out of time order, or (``inside``) off-sensor."""
    if len(events) == 0:
        raise CorruptSampleError("the file decodes to no events")
    t = events["t"].astype(np.int64)
    step = np.diff(t)
    if len(step) and step.min() < -TIME_TOLERANCE_US:
        i = int(step.argmin())
        raise CorruptSampleError(
            f"time goes back at event {i + 1} ({t[i]} -> {t[i + 1]} us; "
            f"tolerance {TIME_TOLERANCE_US} us)"
        )
    if not inside:
        return
    width, height, _ = sensor_size
    for axis, limit in (("x", width), ("y", height)):
        v = events[axis]
        if v.min() < 0 or v.max() >= limit:
            raise CorruptSampleError(
                f"{axis} spans [{v.min()}, {v.max()}], outside the {width}x{height} sensor"
            )


def check_complete(
    name: str, labels: Sequence[int], num_classes: int, *, partial: bool
) -> dict[str, int]:
    """Refuse a copy with missing classes or far fewer samples than its release.

    Returns ``{"samples": n, "classes": k}`` of what is there. With ``partial=True`` nothing is
    refused (the run's record then says ``partial``).
    """
    found = {"samples": len(labels), "classes": len(set(labels))}
    expected = dataset_info(name).release_samples
    problems = []
    if found["classes"] < num_classes:
        missing = sorted(set(range(num_classes)) - set(labels))
        problems.append(f"classes {missing} have no samples")
    if expected is not None and found["samples"] < MIN_FRACTION * expected:
        problems.append(f"{found['samples']:,} samples where the release has {expected:,}")
    if problems and not partial:
        raise IncompleteDatasetError(
            f"{name}: the copy is incomplete: {'; '.join(problems)}. Complete the copy, or set "
            "partial: true (partial=true on the command line) to run on it anyway; the record "
            "and every table built from it then say 'partial'"
        )
    return found
