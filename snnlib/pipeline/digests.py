"""The digests of a run record's parts: a record is one thing, and says so.

``digests.json`` (in the run folder, written before ``DONE``) states the SHA-256 of each part,
computed from what the part holds rather than from bytes that vary between identical runs:

- ``config.json``, ``metrics.json``, ``per_timestep.csv``, ``cutoff.csv``: the file's bytes;
- ``history.csv``: its cells without the ``seconds`` column (timings differ run to run);
- ``outputs.npz``: each array's dtype, shape and bytes (the zip file holds its write time);
- ``model.pt``: the weights, i.e. the ``state_dict`` (names sorted; each tensor's dtype, shape
  and bytes, each extra state as JSON), not the file (``torch.save`` bytes vary).

``model.pt`` (ignored by git) states the digests of the parts it was written with too, so that
weights left beside another record (a rerun undone with ``git checkout results/``, a copied
file) are found even beside a record that states no digests (written before digests existed;
such a record, with weights that state nothing, stays as valid as it was).

``provenance.json`` and ``DONE`` are not parts: they say when, where and with what, facts that
differ between identical runs. Two records are :func:`identical` when their parts and the data
they were computed from agree (and their weights, where both state them).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from snnlib.tools.atomic import atomic_write

DIGESTS = "digests.json"
WEIGHTS = "model.pt"
OUTPUTS = "outputs.npz"
HISTORY = "history.csv"
FILES = ("config.json", "metrics.json", "per_timestep.csv", "cutoff.csv")  # digests of the bytes
TIMINGS = ("seconds",)  # the history's columns that differ between identical runs
HOW = (
    "sha256 of each part: config.json, metrics.json, per_timestep.csv, cutoff.csv byte for "
    "byte; history.csv without its seconds column; outputs.npz per array (dtype, shape, bytes); "
    "model.pt of its state_dict (names sorted; dtype, shape, bytes), not of the file"
)
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class RecordError(ValueError):
    """A run record that cannot be used as it is: a part that cannot be read, or parts that do
    not belong together (the message names the run and the part)."""


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    return _sha(a.dtype.str.encode(), repr(a.shape).encode(), a.tobytes())


def weights_digest(state: Mapping[str, Any]) -> str:
    """The digest of a ``state_dict``'s contents, wherever its tensors live."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if torch.is_tensor(value):
            flat = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
            h.update(flat.view(torch.uint8).numpy().tobytes())
        else:  # a layer's extra state (e.g. the LIF parameters)
            h.update(f"{name}|{json.dumps(value, sort_keys=True, default=repr)}\n".encode())
    return h.hexdigest()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; a damaged or missing file raises :class:`RecordError`
    naming it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except _READ_ERRORS as err:
        raise RecordError(
            f"{path} cannot be read ({type(err).__name__}: {err}); the run's record is damaged: "
            "rerun the run to recompute it"
        ) from err


@lru_cache(maxsize=256)
def _outputs(path: str, _stat: tuple) -> dict[str, str]:  # keyed on the file's stat too
    return {k: array_digest(v) for k, v in sorted(read_npz(Path(path)).items())}


def _history(path: Path) -> str:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [i for i, name in enumerate(rows[0] if rows else []) if name not in TIMINGS]
    return _sha("\n".join(",".join(row[i] for i in keep) for row in rows).encode())


def _stat(path: Path) -> tuple:
    s = path.stat()
    return (s.st_ino, s.st_size, s.st_mtime_ns)


def part_digests(folder: Path) -> dict[str, Any]:
    """The digests of the parts present in ``folder`` (the weights aside: :func:`seal`)."""
    folder = Path(folder)
    parts: dict[str, Any] = {
        n: _sha((folder / n).read_bytes()) for n in FILES if (folder / n).is_file()
    }
    if (folder / HISTORY).is_file():
        parts[HISTORY] = _history(folder / HISTORY)
    if (folder / OUTPUTS).is_file():
        parts[OUTPUTS] = _outputs(str(folder / OUTPUTS), _stat(folder / OUTPUTS))
    return parts


def seal(folder: Path, state: Mapping[str, Any], config_digest: str) -> None:
    """Write ``model.pt`` (the weights, stating the digests of the parts written so far) and
    ``digests.json`` (those digests and the weights'): the last step before ``DONE``."""
    from snnlib.pipeline.train import save_checkpoint

    folder = Path(folder)
    parts = part_digests(folder)
    save_checkpoint(
        folder / WEIGHTS, {"model": state, "config_digest": config_digest, "record": parts}
    )
    write_digests(folder, {**parts, WEIGHTS: weights_digest(state)})


def write_digests(folder: Path, parts: dict[str, Any]) -> None:
    text = json.dumps({"how": HOW, "parts": parts}, indent=2, sort_keys=True)
    atomic_write(Path(folder) / DIGESTS, (text + "\n").encode())


def stated(folder: Path) -> dict[str, Any] | None:
    """The parts' digests ``digests.json`` states (None where the record has none)."""
    path = Path(folder) / DIGESTS
    if not path.is_file():
        return None
    try:
        parts = json.loads(path.read_text())["parts"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RecordError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(parts, dict):
        raise RecordError(f"{path}: 'parts' is {type(parts).__name__}, not a mapping")
    return parts


@lru_cache(maxsize=256)
def _weights(path: str, _stat: tuple) -> tuple[str, dict | None]:
    """``(digest of the weights, the parts the file states or None)`` of a ``model.pt``."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return weights_digest(payload["model"]), payload.get("record")
    except Exception as err:  # any unpickling failure, or no weights in it
        why = f"{type(err).__name__}: {err}"
        raise RecordError(f"{path} cannot be read as weights ({why})") from err


def _differences(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The parts (``outputs.npz`` arrays by name) where ``actual`` differs from ``expected``."""
    out = []
    for part, digest in sorted(expected.items()):
        if part == WEIGHTS:
            continue
        if part not in actual:
            out.append(f"{part} (missing)")
        elif part == OUTPUTS and isinstance(digest, dict):
            names = sorted(set(digest) | set(actual[part]))
            out += [f"{part} array {n}" for n in names if digest.get(n) != actual[part].get(n)]
        elif digest != actual[part]:
            out.append(part)
    return out


def disagreements(run_dir: Path) -> list[str]:
    """What in the record at ``run_dir`` does not belong to it, one line a problem (an empty
    list when every part present agrees with what ``digests.json`` and ``model.pt`` state)."""
    run_dir = Path(run_dir)
    try:
        actual = part_digests(run_dir)
        claimed = stated(run_dir)
        weights = run_dir / WEIGHTS
        digest, written_with = (
            _weights(str(weights), _stat(weights)) if weights.is_file() else (None, None)
        )
    except (RecordError, OSError) as err:
        return [str(err)]
    problems = []
    if claimed is not None:
        diff = _differences(claimed, actual)
        problems += [f"{p} differs from what digests.json states" for p in diff]
        if digest is not None and claimed.get(WEIGHTS, digest) != digest:
            problems.append("model.pt holds other weights than digests.json states")
    if written_with is not None:
        diff = _differences(written_with, actual)
        if diff:
            shown = ", ".join(diff)
            problems.append(f"model.pt was written with another record (its {shown} differ)")
    return problems


def identical(new: Path, old: Path) -> list[str] | None:
    """The parts compared, where the record ``new`` has the deterministic content of ``old``:
    the same parts (:func:`part_digests`), ``old``'s own digests (if stated) agreeing, the
    same data fingerprint in ``provenance.json``, and the same weights where both state them.
    None where anything differs (or ``old`` is no finished record)."""
    new, old = Path(new), Path(old)
    if not (old / "DONE").is_file():
        return None
    try:
        parts, old_parts = part_digests(new), part_digests(old)
        claimed_new, claimed_old = stated(new) or {}, stated(old)
        data_new, data_old = (_data(p) for p in (new, old))
    except (RecordError, OSError, ValueError):  # a damaged old record is simply replaced
        return None
    if parts != old_parts or data_new != data_old:
        return None
    if claimed_old is not None and _differences(claimed_old, parts):
        return None
    compared = [f"{p} without its timings" if p == HISTORY else p for p in sorted(parts)]
    if WEIGHTS in claimed_new and claimed_old and WEIGHTS in claimed_old:
        if claimed_new[WEIGHTS] != claimed_old[WEIGHTS]:
            return None
        compared.append("weights")
    return compared


def _data(folder: Path) -> Any:
    return json.loads((folder / "provenance.json").read_text()).get("data")


def backfill(run_dir: Path) -> bool:
    """Write ``digests.json`` for a finished record that has none, from its parts as they are
    (with the weights' digest where a ``model.pt`` states these very parts); return whether it
    wrote one. For records written before digests existed: it trusts what is there."""
    run_dir = Path(run_dir)
    if (run_dir / DIGESTS).exists() or not (run_dir / "DONE").is_file():
        return False
    parts = part_digests(run_dir)
    weights = run_dir / WEIGHTS
    if weights.is_file():
        digest, written_with = _weights(str(weights), _stat(weights))
        if written_with is not None and not _differences(written_with, parts):
            parts[WEIGHTS] = digest
    write_digests(run_dir, parts)
    return True
