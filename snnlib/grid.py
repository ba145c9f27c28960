"""Experiment grids (``configs/<profile>.yaml``) and running them through papermill.

A profile file::

    profile: quick
    defaults: {epochs: 4, T: 8}          # applied to every run
    seeds: [0, 1, 2]
    runs:                                # each entry: list values expand as a product
      - {dataset: mnist5k, method: qcfs, arch: mnist-cnn, alpha: [0.0, 0.003]}

Each run executes ``notebooks/10_train.ipynb`` with papermill (its executed copy is kept
under ``results/<profile>/notebooks/``, ignored by git). Finished runs are skipped,
interrupted ones resume, and a failing run does not stop the others: it is named in the
summary and makes the exit status non-zero. :func:`commands` gives one shell command per run
instead, for a cluster's job array or GNU parallel.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from snnlib.checks import shown
from snnlib.config import Config, ConfigError
from snnlib.data.fingerprint import data_fingerprint
from snnlib.pipeline.records import has_weights, is_current, is_done, repair
from snnlib.tools import paths
from snnlib.tools.yamlfile import load_yaml

TRAIN_NOTEBOOK = paths.CHECKOUT / "notebooks" / "10_train.ipynb"
PROFILE_KEYS = ("profile", "defaults", "seeds", "runs", "description")


def expand(path: Path, overrides: dict | None = None) -> list[Config]:
    """All configs of a profile file (validated; one error lists every problem).

    The profile file is read strictly (:func:`snnlib.tools.yamlfile.load_yaml`: a key given twice
    is an error); ``overrides`` apply to every run.
    """
    spec = load_yaml(path) or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {PROFILE_KEYS}")
    unknown = sorted(set(spec) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; allowed {PROFILE_KEYS}")
    _check_shape(path, spec)
    base = {"profile": spec.get("profile", Path(path).stem), **(spec.get("defaults") or {})}
    base.update(overrides or {})
    seeds = spec.get("seeds", [base.get("seed", 0)])
    configs, problems = [], []
    for i, entry in enumerate(spec.get("runs") or []):
        keys = list(entry)
        values = [v if isinstance(v, list) and k != "epsilons" else [v] for k, v in entry.items()]
        for combo in itertools.product(*values, seeds):
            values_ = {**base, **dict(zip(keys, combo[:-1], strict=True)), "seed": combo[-1]}
            try:
                configs.append(Config.from_dict(values_))
            except ConfigError as err:
                problems.append(f"runs[{i}] {dict(zip(keys, combo[:-1], strict=True))}: {err}")
    if problems:
        raise ConfigError("\n".join(problems))
    if not configs:
        raise ConfigError(f"{path}: no runs defined")
    return configs


def _kind(value) -> str:
    names = {dict: "a mapping", list: "a list"}
    return names.get(type(value)) or f"{type(value).__name__} {shown(value)}"


def _check_shape(path: Path, spec: dict) -> None:
    """Refuse a profile whose ``defaults``, ``seeds`` or ``runs`` have the wrong shape, with
    what each must be (the module docstring shows a profile)."""
    problems = []
    if not isinstance(spec.get("defaults") or {}, dict):
        defaults = _kind(spec["defaults"])
        problems.append(f"defaults: expected a mapping of config keys, got {defaults}")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not all(type(s) is int for s in seeds):
        problems.append(f"seeds: expected a list of integers (e.g. [0, 1, 2]), got {_kind(seeds)}")
    runs = spec.get("runs") or []
    if not isinstance(runs, list):
        problems.append(f"runs: expected a list of mappings ({{dataset: ...}}), got {_kind(runs)}")
    else:
        problems += [
            f"runs[{i}]: expected a mapping of config keys (e.g. {{dataset: mnist5k}}), "
            f"got {_kind(entry)}"
            for i, entry in enumerate(runs)
            if not isinstance(entry, dict)
        ]
    if problems:
        raise ConfigError(f"{path}: " + f"\n{path}: ".join(problems))


def notebook_parameters(notebook: Path = TRAIN_NOTEBOOK) -> set[str]:
    """The names declared in a notebook's ``parameters`` cell."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def check_parameters(params: dict, notebook: Path = TRAIN_NOTEBOOK) -> None:
    """Papermill only warns about unknown parameters; we refuse them."""
    declared = notebook_parameters(notebook)
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(
            f"{notebook.name} does not declare parameters {unknown}; declared: {sorted(declared)}"
        )


def _local_kernel_manager(folder: str) -> type:
    """A kernel manager that talks to its kernel over Unix sockets in ``folder`` (IPC) rather
    than over unencrypted TCP ports, which the kernel warns about at every start."""
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs) -> None:
            super().__init__(transport="ipc", ip=os.path.join(folder, "kernel"), **kwargs)

    return LocalKernelManager


class _Lines:
    """A write-only text file that hands each complete line to ``log`` (the notebook's
    printed output, e.g. its epoch lines, shown as the run goes)."""

    def __init__(self, log) -> None:
        self.log, self.pending = log, ""

    def write(self, text: str) -> None:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.log(line)

    def flush(self) -> None:
        pass


def execute(
    config: Config,
    force: bool = False,
    notebook: Path = TRAIN_NOTEBOOK,
    log=None,
    wait: bool = False,
) -> Path:
    """Run one config through the training notebook; return the executed copy's path.
    ``log``: called with each line the notebook prints, as it prints it; ``wait``: wait for
    another process that holds the run (see :func:`snnlib.experiment.run`)."""
    import papermill

    params = config.to_dict()
    params["force"] = force
    params["wait"] = wait
    # the notebook takes paths relative to the repository root, as the records keep them
    for key in ("out_dir", "data_root"):
        if params[key] is not None:
            params[key] = paths.from_root(params[key])
    check_parameters(params, notebook)
    out = Path(config.out_dir) / config.profile / "notebooks" / f"{config.run_id}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="snnlib-kernel-") as sockets:
        papermill.execute_notebook(
            str(notebook),
            str(out),
            parameters=params,
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
            stdout_file=None if log is None else _Lines(log),
            kernel_manager_class=_local_kernel_manager(sockets),
            # stop the kernel at once when its cells are done or Ctrl-C stopped them: a graceful
            # stop of a busy kernel races the removal of its sockets and prints a traceback
            shutdown_kernel="immediate",
        )
    return out


def describe(err: BaseException) -> str:
    """``Class: text`` of an exception; for a failed notebook, the error raised inside it
    (papermill's ``PapermillExecutionError`` carries it as ``ename`` and ``evalue``)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        return f"{ename}: {evalue} (in the notebook run by {type(err).__name__})"
    return f"{type(err).__name__}: {err}"


def select(configs: list[Config], only: str | None) -> list[Config]:
    """The configs whose run_id matches ``only`` (a glob or a substring; None: all). A pattern
    that matches none is an error naming it, before any work."""
    if only is None:
        return list(configs)
    chosen = [c for c in configs if fnmatch.fnmatch(c.run_id, only) or only in c.run_id]
    if not chosen:
        examples = ", ".join(c.run_id for c in configs[:2])
        raise ConfigError(
            f"--only {only!r} matches none of the {len(configs)} run ids of profile "
            f"{configs[0].profile if configs else '?'} (a glob or a substring of e.g. {examples})"
        )
    return chosen


def commands(
    profile: str | os.PathLike, configs: list[Config], options: list[str], gpus: int = 1
) -> list[str]:
    """One self-contained shell command per config: ``python -m snnlib grid PROFILE --only
    RUN_ID`` with ``options`` (e.g. ``--smoke``, ``--data-root DIR``, overrides), run from the
    checkout by this Python. ``gpus > 1``: under ``torchrun`` (``torch.distributed.run``) with
    that many processes, without the notebook (a notebook kernel cannot join a process group).
    """
    launch = [sys.executable, "-m"]
    if gpus > 1:
        launch += ["torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "-m"]
        options = [*options, "--no-notebook"] if "--no-notebook" not in options else options
    head = shlex.join([*launch, "snnlib", "grid", str(Path(profile).resolve())])
    cd = f"cd {shlex.quote(str(paths.CHECKOUT))} && "
    tail = shlex.join(options)
    return [f"{cd}{head} --only {shlex.quote(c.run_id)} {tail}".rstrip() for c in configs]


def thread_warning(configs: list[Config]) -> str | None:
    """A warning when this process's CPU thread count (which each run's notebook kernel
    inherits) differs from the ``threads`` in ``provenance.json`` of the finished CPU records
    of ``configs``; None when they agree, there are none, or the runs go to a GPU."""
    import torch

    from snnlib.pipeline.train import select_device

    try:
        if select_device(configs[0].device).type != "cpu":  # the count changes CPU sums only
            return None
    except ValueError:  # e.g. device=cuda without CUDA: each run reports it
        return None
    counts: dict[int, int] = {}
    for config in configs:
        provenance = config.run_dir / "provenance.json"
        if is_done(config.run_dir) and provenance.is_file():
            record = json.loads(provenance.read_text())
            threads = record.get("threads")
            if record.get("device", "cpu") == "cpu" and isinstance(threads, int):
                counts[threads] = counts.get(threads, 0) + 1
    used = torch.get_num_threads()
    other = {n: k for n, k in counts.items() if n != used}
    if not other:
        return None
    made = " and ".join(f"{n} ({k} run(s))" for n, k in sorted(other.items()))
    usual = max(other, key=other.get)
    return (
        f"[warning] this grid uses {used} CPU thread(s) per run; the finished records under "
        f"{configs[0].run_dir.parent} were made with {made}: reruns will not be bit-identical "
        "to them (a sum split over another number of threads rounds differently); to match "
        f"them, set OMP_NUM_THREADS={usual} (./run_all.sh --threads {usual})"
    )


def recorded_seconds(config: Config) -> float | None:
    """How long ``config``'s run took when its record was made (``provenance.json``'s
    ``wall_seconds``; the committed records carry it), None without a record."""
    try:
        prov = json.loads((Path(config.run_dir) / "provenance.json").read_text())
        return float(prov["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class Eta:
    """Time left in a grid, known before its first run ends: each run's recorded wall time
    (:func:`recorded_seconds`; 0 for a run that will be skipped), scaled by how much faster
    or slower this machine has run the recorded runs finished so far."""

    def __init__(self, configs: list[Config], force: bool) -> None:
        self.expected = [
            0.0 if not force and has_weights(c.run_dir) else recorded_seconds(c) for c in configs
        ]
        self.measured = self.recorded = 0.0

    def finished(self, index: int, seconds: float) -> None:
        """Run ``index`` (0-based) ran for ``seconds``."""
        if self.expected[index]:
            self.measured += seconds
            self.recorded += self.expected[index]

    def left(self, start: int) -> str:
        """The estimate for runs ``start`` (0-based) onwards, in words."""
        rest = self.expected[start:]
        known = [e for e in rest if e is not None]
        unknown = len(rest) - len(known)
        if not known:
            return "time left unknown (no recorded run times)"
        scale = self.measured / self.recorded if self.recorded else 1.0
        text = f"~{_minutes(scale * sum(known))} left (from recorded run times)"
        return text + (f" + {unknown} run(s) never recorded" if unknown else "")


def run_grid(
    configs: list[Config],
    only: str | None = None,
    force: bool = False,
    use_notebook: bool = True,
    log=None,
    wait: bool = False,
) -> list[tuple[str, str]]:
    """Run every config (those whose run_id matches ``only``); return failures. Each run is
    announced with its place in the grid, and its epoch lines are shown as they come
    (``log``: default, printed above the grid's progress bar). ``wait``: a run that another
    process holds is waited for rather than failed. A skipped run repairs the debris of a
    crashed swap (:func:`snnlib.pipeline.records.repair`)."""
    from tqdm.auto import tqdm

    log = tqdm.write if log is None else log
    from snnlib.pipeline.train import launch, silent  # torch: only when runs are executed

    lead = launch().rank == 0
    log = log if lead else silent  # under torchrun only rank 0 reports
    selected = select(configs, only)
    warning = thread_warning(selected) if selected else None
    if warning:
        log(warning)
    failures: list[tuple[str, str]] = []
    eta = Eta(selected, force)
    log(f"{len(selected)} run(s): {eta.left(0)}")
    bar = tqdm(
        selected,
        desc=f"grid {configs[0].profile if configs else ''}",
        disable=not lead,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",  # postfix: ", <eta>"
        postfix=eta.left(0),
    )
    for i, config in enumerate(bar, 1):
        bar.set_postfix_str(eta.left(i - 1))
        t0 = time.perf_counter()
        try:
            if not force and is_current(config.run_dir, data_fingerprint(config)):
                repair(config.run_dir)
                log(f"[skip] {config.run_id} (finished, same data)")
                continue
            log(f"[{i}/{len(selected)}] {config.run_id}")
            if use_notebook:
                execute(config, force, log=log, wait=wait)
            else:
                from snnlib.experiment import run

                run(config, force=force, log=log, wait=wait)
            eta.finished(i - 1, time.perf_counter() - t0)
            log(f"[ok] {config.run_id} in {time.perf_counter() - t0:.1f}s")
        except Exception as err:  # one failing run must not stop the others
            if getattr(err, "ename", None) == "KeyboardInterrupt":  # Ctrl-C reached the kernel
                raise KeyboardInterrupt from err
            failures.append((config.run_id, describe(err)))
            log(f"[failed] {config.run_id}: {describe(err)}")
            log(traceback.format_exc(limit=3))
    log(f"{len(selected)} run(s) selected, {len(failures)} failed")
    for run_id, why in failures:
        log(f"  FAILED {run_id}: {why.splitlines()[0]}")
    return failures
