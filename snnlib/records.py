"""The run record: one self-describing folder per run, written atomically, ``DONE`` last.

Layout (a contract relied on by checks outside the repository)::

    results/<profile>/runs/<run_id>/
        config.json       the full resolved config
        provenance.json   git commit + dirty flag, versions, device, threads, seeds, times,
                          data (the fingerprint of the data read, see is_current)
        history.csv       epoch, train_loss, reg_loss, train_acc, val_acc, lr, seconds
        outputs.npz       test_outputs [T, N, K] cumulative float32, test_labels [N] int64,
                          calib_outputs, calib_labels likewise
        per_timestep.csv  timestep (1-based), accuracy
        cutoff.csv        policy, parameter, accuracy, avg_timestep, speedup, acc_delta
        metrics.json      summary numbers
        DONE              written last; a folder without it is unfinished

Beside the run folder, hidden: ``.<run_id>.lock`` (the one-writer lock), and while a run is
written, ``.<run_id>.staging/`` (the new record, swapped in once ``DONE``; see
:func:`open_run`). Readers skip names starting with a dot.

Everything in ``per_timestep.csv``, ``cutoff.csv`` and ``metrics.json`` is recomputed from
``outputs.npz`` by :func:`snnlib.evaluate.summarise`.
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from snnlib import paths
from snnlib.atomic import atomic_write
from snnlib.tools import fp_path

RECORD_FILES = (
    "config.json",
    "provenance.json",
    "history.csv",
    "outputs.npz",
    "per_timestep.csv",
    "cutoff.csv",
    "metrics.json",
    "DONE",
)
HISTORY_COLUMNS = ("epoch", "train_loss", "reg_loss", "train_acc", "val_acc", "lr", "seconds")


def write_json(path: Path, obj: Any) -> None:
    """Standard JSON: NaN and infinities become ``null``."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=_jsonable, allow_nan=False)
    atomic_write(path, (text + "\n").encode())


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, frame.to_csv(index=False).encode())


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def is_done(run_dir: Path) -> bool:
    """The record is complete (``DONE``): enough for tables, figures and notebooks."""
    return (Path(run_dir) / "DONE").is_file()


def has_weights(run_dir: Path) -> bool:
    """Complete with its weights (``DONE`` and ``model.pt``); :func:`is_current` adds the
    check that it was computed from the same data.

    Records committed to ``results/`` carry no weights, so a fresh clone's ``run_all.sh``
    recomputes them (and ``git diff results/`` shows whether they reproduce).
    """
    return is_done(run_dir) and (Path(run_dir) / "model.pt").is_file()


def is_current(run_dir: Path, fingerprint: dict[str, Any]) -> bool:
    """A finished run that needs no rerun: complete with its weights (:func:`has_weights`) and
    computed from the same data, its ``provenance.json`` ``data`` entry equal to
    ``fingerprint`` (:func:`snnlib.data.fingerprint.data_fingerprint`)."""
    if not has_weights(run_dir):
        return False
    try:
        recorded = json.loads((Path(run_dir) / "provenance.json").read_text()).get("data")
    except (OSError, ValueError, AttributeError):  # missing or damaged: not current
        return False
    return recorded == json.loads(json.dumps(fingerprint))  # as it reads back from JSON


def mark_done(run_dir: Path) -> None:
    atomic_write(Path(run_dir) / "DONE", time.strftime("%Y-%m-%dT%H:%M:%S%z\n").encode())


# ---- one writer per run; a rerun replaces, never deletes first ------------------------------
class RunLocked(RuntimeError):
    """Another process holds the run's lock (the message names its PID, host and start)."""


def staging_dir(run_dir: Path) -> Path:
    """Where a run's new record is written before it replaces ``run_dir``: a hidden sibling
    (``runs/.<run_id>.staging``), kept across crashes so that a rerun resumes from it."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.staging")


def _aside_dir(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.old")


def _lock_file(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.lock")


@contextmanager
def open_run(run_dir: Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold the run's lock for the block and yield its staging folder (see :func:`staging_dir`).

    The lock is an ``fcntl.flock`` on ``runs/.<run_id>.lock`` beside the run folder: a second
    process on the same run gets :class:`RunLocked` naming the holder, or with ``wait=True``
    blocks until it is free. The OS releases the lock when its holder dies, even by ``kill -9``.

    When the block ends normally and the staging folder holds ``DONE``, it replaces
    ``run_dir``: the old record is renamed to ``runs/.<run_id>.old``, the staging folder is
    renamed to ``run_dir``, then the old record is deleted. When the block raises, ``run_dir``
    is left exactly as it was and the staging folder is kept for a resume.

    A crash between the two renames leaves no ``run_dir``, the old record aside and the
    finished staging folder; a crash during the deletion leaves the new ``run_dir`` and the
    old one aside. The next ``open_run`` on the run repairs both before yielding: it finishes
    the swap (or, if the staging folder is not finished, puts the old record back) and
    deletes the old record.
    """
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_file(run_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, run_dir, wait)
        _repair(run_dir)
        stage = staging_dir(run_dir)
        stage.mkdir(exist_ok=True)
        yield stage
        if is_done(stage):
            _swap(stage, run_dir)
        elif not any(stage.iterdir()):  # nothing was written (e.g. a skipped run)
            stage.rmdir()
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(fd: int, run_dir: Path, wait: bool) -> None:
    """Take the flock on ``fd`` and write who holds it into the lock file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        raise RunLocked(
            f"run {run_dir} is being written by {holder}; wait for it to finish, or rerun "
            "with --wait (wait=True) to start when it is free"
        ) from None
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} on host {platform.node()} since {since}\n".encode(), 0)


def _swap(stage: Path, run_dir: Path) -> None:
    aside = _aside_dir(run_dir)
    if run_dir.exists():
        os.rename(run_dir, aside)
    os.rename(stage, run_dir)
    if aside.exists():
        shutil.rmtree(aside)


def _repair(run_dir: Path) -> None:
    """Finish or undo a swap that a crash interrupted (see :func:`open_run`)."""
    aside = _aside_dir(run_dir)
    if not aside.exists():
        return
    if not run_dir.exists():
        stage = staging_dir(run_dir)
        os.rename(stage if is_done(stage) else aside, run_dir)
    if aside.exists():
        shutil.rmtree(aside)


# ---- provenance -------------------------------------------------------------------------------
def git_state(repo: Path | None = None) -> dict[str, Any]:
    """The commit and dirty flag of the checkout that holds ``snnlib`` (None outside git).

    ``dirty``: a tracked file differs from the commit outside ``results/`` (the code, configs
    or notebooks), so that a rerun which rewrites committed records still counts as clean.
    """
    repo = repo or paths.CHECKOUT

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "tonic", "numpy", "snnlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu() -> dict[str, str | None]:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one) and the vector
    instruction set PyTorch's CPU kernels dispatch to (e.g. ``AVX2``, ``AVX512``)."""
    import torch

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        model = platform.processor() or None
    return {"model": model, "capability": torch.backends.cpu.get_cpu_capability()}


def record_config(config: dict) -> dict:
    """``config.json``'s contents for a resolved config (``Config.to_dict()``): as given, except
    an absolute ``data_root``, a folder of this machine, which is kept as ``None`` so that
    records name no machine's folders (``data_root`` is not part of the run's identity, and
    ``provenance.json``'s data fingerprint says what was read). A root-relative one stays."""
    root = config.get("data_root")
    return {**config, "data_root": None} if root and Path(root).is_absolute() else dict(config)


def provenance(device: str, seed: int, started: float, finished: float, **extra) -> dict:
    """The provenance block of a run (``started``/``finished`` are ``time.time()`` values).

    ``extra`` adds entries, e.g. ``data=data_fingerprint(config)`` (read by :func:`is_current`).
    """
    import torch

    return {
        "git": git_state(),
        "versions": versions(),
        "device": device,
        "threads": torch.get_num_threads(),  # results depend on it (summation order)
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu(),  # float results also depend on the vector instructions the kernels use
        "seeds": {"seed": seed},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
        "wall_seconds": round(finished - started, 3),
        **({"fp_path": fp_path.current()} if fp_path.current() else {}),  # only off the default
        **extra,
    }


# ---- reading --------------------------------------------------------------------------------
def load_outputs(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / "outputs.npz") as f:
        return {k: f[k] for k in f.files}


def load_run(run_dir: Path) -> dict[str, Any]:
    """A finished run's record as Python objects (config values come from ``config.json``)."""
    run_dir = Path(run_dir)
    if not is_done(run_dir):
        raise ValueError(f"run_dir={str(run_dir)!r} holds no finished run (no DONE file)")
    return {
        "run_dir": run_dir,
        "config": json.loads((run_dir / "config.json").read_text()),
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "provenance": json.loads((run_dir / "provenance.json").read_text()),
        "history": pd.read_csv(run_dir / "history.csv"),
        "per_timestep": pd.read_csv(run_dir / "per_timestep.csv"),
        "cutoff": pd.read_csv(run_dir / "cutoff.csv"),
    }


def finished_runs(profile_dir: Path) -> list[Path]:
    """Every finished run folder under ``<profile_dir>/runs``, sorted."""
    runs = Path(profile_dir) / "runs"
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if not p.name.startswith(".") and is_done(p))
