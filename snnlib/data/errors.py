"""The data layer's errors and the checks of user options that raise them.

Every error says what went wrong, where, and how to fix it: a missing dataset names the folder
that was looked in, the exact layout expected there and how to download it; a corrupt sample
names its file; a bad option names the argument, its value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from snnlib import checks

SPLITS = ("train", "calib", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for (raised when it is constructed)."""


class CorruptSampleError(ValueError):
    """A sample (or a dataset's files) could not be decoded; the message names the file."""


class StandInError(ValueError):
    """Synthetic stand-ins where only real data is allowed (a run that is not a smoke run)."""


def not_found(
    name: str, folder: Path, layout: Iterable[str], download: str, problem: str = ""
) -> DatasetNotFoundError:
    """Build the error for a missing or wrong ``root``: dataset, folder, layout, download hint.

    ``layout`` holds the expected file paths (absolute, with ``<placeholders>``); ``download``
    says how to get the data (the option and the URL). The message ends by naming ``root=``.
    """
    lines = [f"{name}: dataset not found in '{folder}'" + (f" ({problem})" if problem else "")]
    lines.append("Expected layout:")
    lines.extend(f"  {line}" for line in layout)
    lines.append(download)
    lines.append("Set root= (or $SNNLIB_DATA) to the folder that holds it.")
    return DatasetNotFoundError("\n".join(lines))


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ValueError."""
    return checks.one_of("split", split, SPLITS)


def check_T(T: int | None, default: int | None) -> int | None:
    """Return ``T`` (or ``default`` when None) after checking it is an integer >= 1."""
    if T is None:
        return default
    return checks.integer("T (number of frames)", T, low=1)


def check_augment(augment: bool | None, split: str) -> bool:
    """Resolve ``augment``: None means training augmentation on split 'train' only."""
    if checks.boolean("augment", augment, none=True) is None:
        return split == "train"
    return augment
