"""The run record: one self-describing folder per run, written atomically, ``DONE`` last.

Layout (a contract relied on by checks outside the repository)::

    results/<profile>/runs/<run_id>/
        config.json       the full resolved config
        provenance.json   git commit + dirty flag, versions, device, threads, seeds, times,
                          data (the fingerprint of the data read, see is_current)
        history.csv       epoch, train_loss, reg_loss, train_acc, val_acc, lr, seconds
        outputs.npz       test_outputs [T, N, K] cumulative float32, test_labels [N] int64,
                          calib_outputs, calib_labels likewise (the calibration data),
                          test_spikes, test_synops [N] float64 (spikes and synaptic
                          operations per test sample over all T steps), and where the
                          method converts, ann_outputs [1, N, K] float32 (the ANN's)
        per_timestep.csv  timestep (1-based), accuracy
        cutoff.csv        policy, parameter, accuracy, avg_timestep, speedup, acc_delta
        metrics.json      summary numbers
        digests.json      the digests of the parts above and of the weights (see
                          snnlib.pipeline.digests); a record whose parts disagree with it
                          is not current and is not drawn
        DONE              written last; a folder without it is unfinished
        model.pt          the evaluated SNN's weights and the config digest (written just
                          before DONE; see has_weights)
        checkpoint.pt     the training state after the last epoch, from which an
                          interrupted run resumes

The two ``.pt`` files are ignored by git: records committed to ``results/`` hold the other
files only. :data:`RECORD_FILES`, :data:`WEIGHT_FILES` and :data:`OUTPUT_ARRAYS` list the
names above.

``model.pt`` (the weights, ignored by git) sits beside them where the run was computed here.

Beside the run folder, hidden: ``.<run_id>.lock`` (the one-writer lock), and while a run is
written, ``.<run_id>.staging/`` (the new record, swapped in once ``DONE``; see
:func:`open_run`). Readers skip names starting with a dot.

A rerun whose content is :func:`~snnlib.pipeline.digests.identical` to the record leaves
its files as they were (:func:`open_run`). Everything in ``per_timestep.csv``, ``cutoff.csv``
and ``metrics.json`` is recomputed from ``outputs.npz`` by
:func:`snnlib.pipeline.evaluate.summarise`.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from snnlib.pipeline import digests
from snnlib.pipeline.digests import RecordError
from snnlib.tools import fp_path, paths
from snnlib.tools.atomic import atomic_write

RECORD_FILES = (
    "config.json",
    "provenance.json",
    "history.csv",
    "outputs.npz",
    "per_timestep.csv",
    "cutoff.csv",
    "metrics.json",
    "digests.json",
    "DONE",
)
WEIGHT_FILES = ("model.pt", "checkpoint.pt")  # beside RECORD_FILES, ignored by git
OUTPUT_ARRAYS = (  # the arrays of outputs.npz; ann_outputs only where the method converts
    "test_outputs",
    "test_labels",
    "calib_outputs",
    "calib_labels",
    "test_spikes",
    "test_synops",
    "ann_outputs",
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
    checks that it was computed from the same data and that its parts agree.

    Records committed to ``results/`` carry no weights, so a fresh clone's ``run_all.sh``
    recomputes them: one that reproduces leaves its files untouched (:func:`open_run`), so
    ``git status`` shows what did not.
    """
    return is_done(run_dir) and (Path(run_dir) / "model.pt").is_file()


def is_current(run_dir: Path, fingerprint: dict[str, Any]) -> bool:
    """A finished run that needs no rerun (:func:`why_rerun` has no reason)."""
    return why_rerun(run_dir, fingerprint) is None


def why_rerun(run_dir: Path, fingerprint: dict[str, Any]) -> str | None:
    """Why the run at ``run_dir`` must be (re)computed, or None where it is current: complete
    with its weights (:func:`has_weights`), computed from the same data (its
    ``provenance.json`` ``data`` entry equal to ``fingerprint``,
    :func:`snnlib.data.fingerprint.data_fingerprint`), and its parts agreeing with the digests
    that ``digests.json`` and ``model.pt`` state (:func:`snnlib.pipeline.digests.disagreements`).
    """
    if not is_done(run_dir):
        return "no finished record"
    if not has_weights(run_dir):
        return "the record has no model.pt (records committed under results/ carry no weights)"
    try:
        recorded = json.loads((Path(run_dir) / "provenance.json").read_text()).get("data")
    except (OSError, ValueError, AttributeError):  # missing or damaged: not current
        return "provenance.json is missing or damaged"
    if recorded != json.loads(json.dumps(fingerprint)):  # as it reads back from JSON
        return "the record was computed from other data (provenance.json's data fingerprint)"
    problems = digests.disagreements(run_dir)
    return "; ".join(problems) if problems else None


def check_parts(run_dir: Path) -> None:
    """Raise :class:`RecordError` naming the run and each part of its record that disagrees
    with the digests stated (:func:`snnlib.pipeline.digests.disagreements`)."""
    problems = digests.disagreements(run_dir)
    if problems:
        raise RecordError(
            f"run {Path(run_dir).name}: {'; '.join(problems)}; its parts do not belong "
            f"together: rerun the run to recompute it (record {run_dir})"
        )


def mark_done(run_dir: Path) -> None:
    atomic_write(Path(run_dir) / "DONE", time.strftime("%Y-%m-%dT%H:%M:%S%z\n").encode())


# ---- one writer per run; a rerun replaces, never deletes first, and leaves its equal alone ------
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


def _quiet(*_) -> None:
    pass


@contextmanager
def open_run(run_dir: Path, *, wait: bool = False, log=_quiet) -> Iterator[Path]:
    """Hold the run's lock for the block and yield its staging folder (see :func:`staging_dir`).

    The lock is an ``fcntl.flock`` on ``runs/.<run_id>.lock`` beside the run folder: a second
    process on the same run gets :class:`RunLocked` naming the holder, or with ``wait=True``
    blocks until it is free. The OS releases the lock when its holder dies, even by ``kill -9``.

    When the block ends normally and the staging folder holds ``DONE``, it replaces
    ``run_dir``: the old record is renamed to ``runs/.<run_id>.old``, the staging folder is
    renamed to ``run_dir``, then the old record is deleted. Unless the new record is
    :func:`~snnlib.pipeline.digests.identical` to the old one: then the old record's files stay
    byte for byte as they were (no new ``DONE``, ``provenance.json`` or ``digests.json``), the
    new weights (``model.pt``, ignored by git, stating the digests of these very parts) move in,
    the staging folder is deleted, and ``log`` is told. When the block raises, ``run_dir`` is
    left exactly as it was and the staging folder is kept for a resume.

    A run folder, staging folder or lock file that is a symbolic link is refused
    (:class:`RecordError`) before anything is written.

    A crash between the two renames leaves no ``run_dir``, the old record aside and the
    finished staging folder; a crash during the deletion leaves the new ``run_dir`` and the
    old one aside. The next ``open_run`` on the run repairs both before yielding: it finishes
    the swap (or, if the staging folder is not finished, puts the old record back) and
    deletes the old record; a finished staging folder left by a crash before the swap began
    is swapped in (or, identical, its weights moved in). :func:`repair` does the same for a run
    that is skipped.
    """
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_dir(run_dir)
    for path in (run_dir, stage):
        if path.is_symlink():
            raise RecordError(
                f"{path} is a symbolic link (to {os.readlink(path)}); a run's folders must be "
                "real folders, so that replacing the record cannot leave a dangling link: "
                "remove the link (or move the folder it points to in its place) and rerun"
            )
    fd = _open_lock(run_dir)
    try:
        _acquire(fd, run_dir, wait)
        _repair(run_dir, log)
        stage.mkdir(exist_ok=True)
        yield stage
        if is_done(stage):
            _finish(stage, run_dir, log)
        elif not any(stage.iterdir()):  # nothing was written (e.g. a skipped run)
            stage.rmdir()
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def repair(run_dir: Path) -> None:
    """Finish or undo a swap that a crash interrupted (as :func:`open_run` does first), unless
    another process holds the run; for a run that is skipped, so that no debris (``.old``, a
    finished staging folder) outlives the next run."""
    run_dir = Path(run_dir)
    aside = _aside_dir(run_dir)
    if not (aside.exists() or aside.is_symlink() or is_done(staging_dir(run_dir))):
        return  # nothing to repair: no lock file is created
    try:
        with open_run(run_dir):
            pass
    except RunLocked:  # the holder repairs it
        pass


def _open_lock(run_dir: Path) -> int:
    """The lock file's descriptor, opened without following a symbolic link: a link there
    would make the holder's line overwrite the file it points to."""
    path = _lock_file(run_dir)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise RecordError(
            f"{path}, the run's lock file, is a symbolic link (to {os.readlink(path)}); it is "
            "not followed: remove the link and rerun"
        ) from None


def _acquire(fd: int, run_dir: Path, wait: bool) -> None:
    """Take the flock on ``fd`` and write who holds it into the lock file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        raise RunLocked(
            f"run {run_dir} is being written by {holder}; wait for it to finish, or rerun "
            "with --wait (python -m snnlib run or grid, ./run_all.sh; wait=True in Python) "
            "to start when it is free"
        ) from None
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} on host {platform.node()} since {since}\n".encode(), 0)


def _finish(stage: Path, run_dir: Path, log) -> None:
    """Put the finished record in ``stage`` in place of ``run_dir`` (see :func:`open_run`)."""
    same = digests.identical(stage, run_dir)
    if same is None:
        _swap(stage, run_dir)
        return
    _adopt(stage, run_dir)
    log(
        f"[identical] {run_dir.name}: identical to the committed record ({', '.join(same)} "
        "equal); its files are left as they were, only the weights (model.pt) are new"
    )


def _adopt(stage: Path, run_dir: Path) -> None:
    """Keep ``run_dir``'s files; move in the weights (and training checkpoint) of ``stage``."""
    (stage / "DONE").unlink()  # from here on a crash leaves no finished staging folder
    for name in ("checkpoint.pt", "model.pt"):  # the files git ignores, the weights last
        if (stage / name).is_file():
            os.replace(stage / name, run_dir / name)
    shutil.rmtree(stage)


def _swap(stage: Path, run_dir: Path) -> None:
    aside = _aside_dir(run_dir)
    if run_dir.exists():
        os.rename(run_dir, aside)
    os.rename(stage, run_dir)
    _remove(aside)


def _remove(path: Path) -> None:
    """Delete a folder, or the link that stands in its place (never what the link points to)."""
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _repair(run_dir: Path, log=_quiet) -> None:
    """Finish or undo a swap that a crash interrupted (see :func:`open_run`)."""
    aside, stage = _aside_dir(run_dir), staging_dir(run_dir)
    if not (aside.exists() or aside.is_symlink()):
        if is_done(stage):  # finished, but the crash came before the swap began
            _finish(stage, run_dir, log)
        return
    if not run_dir.exists():
        os.rename(stage if is_done(stage) else aside, run_dir)
    _remove(aside)


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
    """The arrays of ``outputs.npz``; a damaged file raises :class:`RecordError` naming it."""
    return digests.read_npz(Path(run_dir) / "outputs.npz")


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


def refused(run_dirs: Iterable[Path]) -> dict[str, str]:
    """``{run folder name: why}`` for each of ``run_dirs`` whose parts disagree or cannot be
    read (:func:`snnlib.pipeline.digests.disagreements`): figures name them, never draw them."""
    out = {}
    for run_dir in run_dirs:
        problems = digests.disagreements(run_dir)
        if problems:
            out[Path(run_dir).name] = "; ".join(problems)
    return out


def finished_runs(profile_dir: Path) -> list[Path]:
    """Every finished run folder under ``<profile_dir>/runs``, sorted."""
    runs = Path(profile_dir) / "runs"
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if not p.name.startswith(".") and is_done(p))


@dataclass(frozen=True)
class Coverage:
    """Which runs a profile declares, which of them are missing, which others are present,
    and which finished records are left out because their parts disagree or cannot be read."""

    declared: tuple[str, ...]
    missing: tuple[str, ...]  # declared, not finished
    undeclared: tuple[str, ...]  # finished, not declared: left out of every table and figure
    refused: tuple[str, ...] = ()  # "run_id: why", never drawn (refused)

    def report(self, listed: int = 5) -> list[str]:
        """One line per problem (none when the records match the declaration); more than
        ``listed`` missing or undeclared runs are summed up in one line each."""

        def lines(what: str, names: tuple[str, ...], of: str) -> list[str]:
            if len(names) <= listed:
                return [f"{what}: {r}" for r in names]
            return [f"{what}: {len(names)} of {of} (e.g. {', '.join(names[:3])})"]

        out = lines("declared but not finished", self.missing, f"{len(self.declared)} declared")
        out += lines("finished but not declared (left out)", self.undeclared, "the finished runs")
        return out + [f"record left out, its parts disagree: {r}" for r in self.refused]


def select_runs(profile_dir: Path, declared: Sequence | None = None) -> tuple[list[dict], Coverage]:
    """The finished runs of a profile to aggregate, and how they cover ``declared``.

    ``declared``: the configs the profile's YAML declares (:func:`snnlib.grid.expand`);
    only their runs are returned. ``None`` (a scratch profile, no YAML) takes every finished run.
    A record whose parts disagree is left out and named (``Coverage.refused``).
    """
    present = {p.name: p for p in finished_runs(profile_dir)}
    names = tuple(present) if declared is None else tuple(dict.fromkeys(c.run_id for c in declared))
    wanted = set(names)
    bad = refused(p for n, p in present.items() if n in wanted)
    coverage = Coverage(
        names,
        tuple(n for n in names if n not in present),
        tuple(n for n in present if n not in wanted),
        tuple(f"{n}: {why}" for n, why in bad.items()),
    )
    present = {n: p for n, p in present.items() if n not in bad}
    # in folder order, as without a declaration: the float sums of the tables keep their order
    return [load_run(present[n]) for n in present if n in wanted], coverage
