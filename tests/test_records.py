"""Run records you can trust (issue 11): one writer per run; a rerun replaces the old record
only once the new one is finished; published profiles are closed sets; the data a run read is
part of its identity; bad values and damaged data are refused before work; faults clean up."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_fixtures import DAMAGE, damage
from record_fixtures import fabricate

from snnlib import grid
from snnlib.__main__ import load_config, main
from snnlib.config import Config
from snnlib.data import get_dataset
from snnlib.data.errors import CorruptSampleError
from snnlib.data.events import content_identity
from snnlib.data.fingerprint import data_fingerprint
from snnlib.data.standins import write_nmnist
from snnlib.data.validate import IncompleteDatasetError, check_complete
from snnlib.pipeline import records
from snnlib.pipeline.records import RunLocked, mark_done, open_run, staging_dir
from snnlib.pipeline.train import save_checkpoint
from snnlib.study import tables
from snnlib.tools.atomic import atomic_write
from snnlib.tools.yamlfile import YAMLFileError

REPO = Path(__file__).resolve().parents[1]


def _record(run_dir: Path, text: str) -> Path:
    """A finished record as written before records stated digests (weights that state none)."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(text)
    save_checkpoint(run_dir / "model.pt", {"model": {"w": torch.zeros(2)}, "config_digest": "x"})
    mark_done(run_dir)
    return run_dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _holder(run_dir: Path, seconds: float = 60) -> subprocess.Popen:
    """A child process that holds ``run_dir``'s lock for ``seconds`` (started when it says so)."""
    code = textwrap.dedent(f"""
        import sys, time
        from snnlib.pipeline.records import open_run
        with open_run({str(run_dir)!r}):
            print("held", flush=True)
            time.sleep({seconds})
            open({str(run_dir)!r} + ".released", "w").close()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


# ---- one writer per run -------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    child = _holder(run_dir)
    try:
        with pytest.raises(RunLocked, match=f"PID {child.pid} on host .* since .*--wait"):
            with open_run(run_dir):
                pass
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_killed_process_is_free_at_once(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    child = _holder(run_dir)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with open_run(run_dir) as stage:  # no wait: the lock must be free already
        assert stage == staging_dir(run_dir)


@pytest.mark.slow
def test_wait_blocks_until_the_holder_finishes(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    child = _holder(run_dir, seconds=0.5)
    with open_run(run_dir, wait=True):
        assert Path(f"{run_dir}.released").is_file()  # the holder had finished its block
    child.wait()


def test_lock_is_per_run_and_reentrant_after_release(tmp_path):
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    with open_run(a), open_run(b):  # two runs of one profile at the same time
        with pytest.raises(RunLocked, match=f"PID {os.getpid()} "):
            with open_run(a):
                pass
    with open_run(a):
        pass


# ---- replace, never delete first ----------------------------------------------------------------
def test_failing_rerun_leaves_the_old_record_byte_for_byte(tmp_path):
    run_dir = _record(tmp_path / "runs" / "r1", '{"accuracy": 0.9}')
    before = _snapshot(run_dir)
    with pytest.raises(RuntimeError, match="device"):
        with open_run(run_dir) as stage:
            (stage / "checkpoint.pt").write_bytes(b"epoch 3")
            (stage / "metrics.json").write_text("{}")
            raise RuntimeError("no such device")
    assert _snapshot(run_dir) == before
    # The staging folder stays for a resume, and a finished one is swapped in next time.
    assert (staging_dir(run_dir) / "checkpoint.pt").read_bytes() == b"epoch 3"
    with open_run(run_dir) as stage:
        assert (stage / "checkpoint.pt").is_file()


def test_finished_staging_replaces_the_record_leaving_no_stray_folders(tmp_path):
    runs = tmp_path / "runs"
    run_dir = _record(runs / "r1", "old")
    with open_run(run_dir) as stage:
        (stage / "metrics.json").write_text("new")
        mark_done(stage)
        assert (run_dir / "metrics.json").read_text() == "old"  # swapped only at the end
    assert (run_dir / "metrics.json").read_text() == "new"
    assert not (run_dir / "model.pt").exists()  # the old folder is gone, not merged
    assert sorted(p.name for p in runs.iterdir()) == [".r1.lock", "r1"]
    assert records.finished_runs(tmp_path) == [run_dir]


def test_first_run_is_renamed_in(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    with open_run(run_dir) as stage:
        mark_done(stage)
    assert records.is_done(run_dir) and not staging_dir(run_dir).exists()


def test_block_that_writes_nothing_leaves_nothing(tmp_path):
    run_dir = _record(tmp_path / "runs" / "r1", "old")
    before = _snapshot(run_dir)
    with open_run(run_dir):
        pass  # e.g. a finished run that is skipped
    assert _snapshot(run_dir) == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [".r1.lock", "r1"]


def test_crash_between_the_renames_is_finished_by_the_next_open(tmp_path):
    run_dir = _record(tmp_path / "runs" / "r1", "old")
    stage = staging_dir(run_dir)
    stage.mkdir()
    (stage / "metrics.json").write_text("new")
    mark_done(stage)
    os.rename(run_dir, run_dir.with_name(".r1.old"))  # the first rename, then the crash
    with open_run(run_dir):
        assert (run_dir / "metrics.json").read_text() == "new"
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [".r1.lock", "r1"]


def test_crash_before_deleting_the_old_record_is_cleaned_up(tmp_path):
    aside = _record(tmp_path / "runs" / ".r1.old", "old")
    run_dir = _record(tmp_path / "runs" / "r1", "new")
    with open_run(run_dir):
        assert not aside.exists()
    assert (run_dir / "metrics.json").read_text() == "new"


def test_old_record_put_back_when_the_staging_folder_is_unfinished(tmp_path):
    _record(tmp_path / "runs" / ".r1.old", "old")
    run_dir = tmp_path / "runs" / "r1"
    with open_run(run_dir):
        assert (run_dir / "metrics.json").read_text() == "old"


# ---- published profiles are closed sets -------------------------------------------------------
def test_a_run_without_a_profile_goes_to_scratch(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("T: 4\n")
    assert load_config(str(path), []).profile == "scratch"
    assert load_config(str(path), ["profile=quick"]).profile == "quick"  # named: honoured
    path.write_text("T: 4\nprofile: mine\n")
    assert load_config(str(path), []).run_dir.parts[-3] == "mine"


def _profile(tmp_path: Path, seeds=(0, 1)) -> Path:
    """A profile YAML of one mnist5k/qcfs group whose records live under its own out_dir."""
    path = tmp_path / "configs" / "fab.yaml"
    path.parent.mkdir()
    path.write_text(
        f"profile: fab\ndefaults: {{T: 4, out_dir: {tmp_path / 'elsewhere'}}}\n"
        f"seeds: {list(seeds)}\nruns:\n  - {{dataset: mnist5k, method: qcfs, arch: mnist-cnn}}\n"
    )
    return path


def test_figures_aggregate_exactly_the_declared_runs(tmp_path):
    declared = grid.expand(_profile(tmp_path, seeds=(0, 1, 2)))
    rng = np.random.default_rng(0)
    for config in declared[:2]:  # seed 2 is declared but not run
        fabricate(config, rng)
    smoke = Config.from_dict({**declared[0].to_dict(), "epochs": 1})  # same group, not declared
    fabricate(smoke, rng)
    profile_dir = declared[0].run_dir.parents[1]
    runs, coverage = records.select_runs(profile_dir, declared)
    assert [r["run_dir"].name for r in runs] == [c.run_id for c in declared[:2]]
    reordered, _ = records.select_runs(profile_dir, declared[::-1])
    assert [r["run_dir"] for r in reordered] == [r["run_dir"] for r in runs]  # folder order
    assert coverage.missing == (declared[2].run_id,)
    assert coverage.undeclared == (smoke.run_id,)
    assert len(coverage.report()) == 2
    table = tables.summary_table(runs)
    assert table["seeds"].tolist() == [2]  # the runs aggregated, not the seeds declared
    # Open set (no declaration): every finished run, and `seeds` counts all three.
    everything, _ = records.select_runs(profile_dir)
    assert tables.summary_table(everything)["seeds"].tolist() == [3]


def test_coverage_sums_up_long_lists_in_one_line():
    """``--only`` with a profile leaves most declared runs unfinished: one line, not 80."""
    names = tuple(f"run{i}" for i in range(80))
    lines = records.Coverage(names, names[2:], ()).report()
    assert lines == ["declared but not finished: 78 of 80 declared (e.g. run2, run3, run4)"]
    few = records.Coverage(names[:3], names[1:3], ("stray",)).report()
    assert few == [
        "declared but not finished: run1",
        "declared but not finished: run2",
        "finished but not declared (left out): stray",
    ]


@pytest.mark.slow
def test_figures_command_honours_the_profile_out_dir(tmp_path, capsys):
    declared = grid.expand(_profile(tmp_path))
    fabricate(declared[0], np.random.default_rng(0))
    assert main(["figures", str(tmp_path / "configs" / "fab.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"declared but not finished: {declared[1].run_id}" in out
    tables = tmp_path / "elsewhere" / "fab" / "tables"
    assert (tables / "summary.csv").is_file()
    assert main(["figures", str(tmp_path / "configs" / "nope.yaml")]) == 2


def test_partial_runs_are_marked_in_every_table(tmp_path):
    config = grid.expand(_profile(tmp_path))[0]
    run_dir = fabricate(config, np.random.default_rng(0))
    records.write_json(run_dir / "provenance.json", {"data": {"partial": True}})
    runs, _ = records.select_runs(run_dir.parents[1])
    table = tables.summary_table(runs)
    assert table["dataset"].tolist() == ["mnist5k (partial)"]
    assert tables.pretty(table)["dataset"].tolist() == ["mnist5k (partial)"]
    assert tables.ledger(table, "fab")["dataset"].iloc[-1] == "mnist5k (partial)"


# ---- the layout in records' docstring is what records hold -------------------------------------
def _in_layout_doc(name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", records.__doc__) is not None


def _held(run_dir: Path) -> tuple[list[str], list[str]]:
    """``(files, arrays of outputs.npz)`` that a record folder holds."""
    files = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    with np.load(run_dir / "outputs.npz") as npz:
        return files, sorted(npz.files)


def test_every_file_and_array_a_record_holds_is_in_the_layout(tmp_path):
    files = set(records.RECORD_FILES + records.WEIGHT_FILES)
    arrays = set(records.OUTPUT_ARRAYS)
    undocumented = sorted(n for n in files | arrays if not _in_layout_doc(n))
    assert not undocumented, f"listed but not in the records docstring: {undocumented}"
    config = Config.from_dict({"out_dir": str(tmp_path), "method": "qcfs", "T": 4})
    fabricated = fabricate(config, np.random.default_rng(0), 40, 20)  # with the ANN's outputs
    committed = sorted(p.parent for p in REPO.glob("results/*/runs/*/DONE"))
    unlisted = set()
    for run_dir in [fabricated, *committed]:
        held_files, held_arrays = _held(run_dir)
        unlisted |= {f"{run_dir.name}/{f}" for f in held_files if f not in files}
        unlisted |= {f"{run_dir.name}/outputs.npz:{a}" for a in held_arrays if a not in arrays}
    assert not unlisted, "held by records but not in the layout:\n" + "\n".join(sorted(unlisted))


# ---- identity covers what changes results -----------------------------------------------------
def test_embedded_data_fingerprint_is_the_shipped_file_and_split():
    from snnlib.data.embedded import mnist5k_path
    from snnlib.data.splits import SPLIT_DIR

    fp = data_fingerprint(SimpleNamespace(dataset="mnist5k", data_root=None))
    digest = hashlib.sha256(mnist5k_path().read_bytes()).hexdigest()[:16]
    split = hashlib.sha256((SPLIT_DIR / "mnist5k.json").read_bytes()).hexdigest()[:16]
    assert fp == {
        "dataset": "mnist5k",
        "split_file": split,
        "files": 1,
        "listing": digest,
        "partial": False,
    }
    dvs = data_fingerprint(SimpleNamespace(dataset="mnist5k-dvs", data_root=None))
    assert dvs["listing"] == digest and dvs["dataset"] == "mnist5k-dvs"


def test_event_data_fingerprint_follows_names_and_sizes(tmp_path):
    write_nmnist(tmp_path, {"Train": 2, "Test": 1})
    config = SimpleNamespace(dataset="nmnist", data_root=str(tmp_path), partial=True)
    fp = data_fingerprint(config)
    assert fp["files"] == 30 and fp["partial"] is True and fp["classes"] == 10
    assert data_fingerprint(config) == fp  # stable
    first = next((tmp_path / "NMNIST" / "Test").rglob("*.bin"))
    first.write_bytes(first.read_bytes()[:-5])  # one event fewer: another size
    assert data_fingerprint(config)["listing"] != fp["listing"]
    first.rename(first.with_name("renamed.bin"))
    assert data_fingerprint(config)["files"] == 30


def test_incomplete_event_data_is_refused_unless_partial(tmp_path):
    write_nmnist(tmp_path, {"Train": 2, "Test": 1})
    config = SimpleNamespace(dataset="nmnist", data_root=str(tmp_path))
    with pytest.raises(IncompleteDatasetError, match=r"30 samples where .* 70,000.*partial"):
        data_fingerprint(config)
    with pytest.raises(IncompleteDatasetError, match=r"classes \[3, 7\] have no samples"):
        check_complete(
            "nmnist", [c for c in range(10) if c not in (3, 7)] * 7000, 10, partial=False
        )
    assert check_complete("nmnist", list(range(10)) * 7000, 10, partial=False)["classes"] == 10


def test_is_current_needs_weights_and_the_same_data(tmp_path):
    run_dir = _record(tmp_path / "runs" / "r1", "{}")
    fp = {"dataset": "mnist5k", "listing": "abc", "files": 1, "partial": False}
    assert not records.is_current(run_dir, fp)  # no provenance: computed on unknown data
    records.write_json(run_dir / "provenance.json", {"data": fp})
    assert records.is_current(run_dir, fp)
    assert not records.is_current(run_dir, {**fp, "listing": "another copy"})
    (run_dir / "model.pt").write_bytes(b"\x00weights")
    assert not records.is_current(run_dir, fp)  # weights that cannot be read
    (run_dir / "model.pt").unlink()
    assert not records.is_current(run_dir, fp)  # a committed record without weights


def test_provenance_records_the_thread_count_and_the_cpu(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    block = records.provenance("cpu", 0, 0.0, 1.0, data={"files": 1})
    assert block["threads"] == torch.get_num_threads()
    assert block["omp_num_threads"] == "2" and block["data"] == {"files": 1}
    assert block["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()


def test_run_all_pins_the_thread_count():
    script = (REPO / "run_all.sh").read_text()
    assert "export OMP_NUM_THREADS=$threads" in script
    assert 'figures "configs/$profile.yaml"' in script  # honours the profile's out_dir


# ---- bad values refused before work ---------------------------------------------------------
def test_duplicate_yaml_keys_are_refused_everywhere(tmp_path, capsys):
    run_cfg = tmp_path / "cfg.yaml"
    run_cfg.write_text("T: 8\nalpha: 0.0\nalpha: 0.003\n")
    assert main(["run", str(run_cfg)]) == 2
    err = capsys.readouterr().err
    assert "key 'alpha' is given twice" in err and "Traceback" not in err
    profile = tmp_path / "p.yaml"
    profile.write_text("runs:\n  - {dataset: mnist5k, T: 4, T: 8}\n")
    with pytest.raises(YAMLFileError, match=r"p.yaml: key 'T' is given twice"):
        grid.expand(profile)
    profile.write_text("seeds: [0]\nseeds: [1]\nruns: []\n")
    assert main(["grid", str(profile)]) == 2


def test_cli_errors_are_short_with_the_traceback_only_on_debug(tmp_path, capsys, monkeypatch):
    from snnlib import experiment

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"out_dir: {tmp_path}\n")
    assert main(["run", str(cfg), "T=0"]) == 2  # a config error: usage
    assert main(["run", str(cfg), "alhpa=1"]) == 2
    assert "did you mean 'alpha'" in capsys.readouterr().err

    def broken(config, force=False, log=print, *, wait=False):
        raise RuntimeError("the device fell over")

    monkeypatch.setattr(experiment, "run", broken)
    assert main(["run", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: the device fell over" in err and "--debug" in err
    assert "Traceback" not in err
    with pytest.raises(RuntimeError, match="fell over"):
        main(["--debug", "run", str(cfg)])
    with pytest.raises(SystemExit) as usage:
        main(["run", str(cfg), "--frobnicate"])
    assert usage.value.code == 2


def test_cli_run_names_the_holder_and_passes_wait(tmp_path, capsys, monkeypatch):
    from snnlib import experiment

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"out_dir: {tmp_path}\n")
    seen = []

    def locked_run(config, force=False, log=print, *, wait=False):
        seen.append(wait)
        with open_run(config.run_dir, wait=wait):
            return config.run_dir

    monkeypatch.setattr(experiment, "run", locked_run)
    monkeypatch.setattr("snnlib.__main__.show", lambda run_dir: None)
    config = load_config(str(cfg), [])
    with open_run(config.run_dir):
        assert main(["run", str(cfg)]) == 1
    assert f"PID {os.getpid()} on host" in capsys.readouterr().err
    assert main(["run", str(cfg), "--wait"]) == 0
    assert seen == [False, True]


# ---- damaged data refused -----------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_recording_is_refused_naming_it(tmp_path, how):
    write_nmnist(tmp_path, {"Test": 1})
    ds = get_dataset("nmnist", "test", root=tmp_path, T=4, cache_dir=False)
    damage(Path(ds.paths[3]), how)
    with pytest.raises(CorruptSampleError, match=re.escape(ds.paths[3])):
        ds[3]
    ds[2]  # the others still load


def test_damaged_recording_is_refused_after_caching(tmp_path):
    write_nmnist(tmp_path / "data", {"Test": 1})
    kwargs = {"root": tmp_path / "data", "T": 4, "cache_dir": tmp_path / "cache"}
    ds = get_dataset("nmnist", "test", **kwargs)
    ds[3]  # cached
    damage(Path(ds.paths[3]), "garbage")  # same size, same modification time
    again = get_dataset("nmnist", "test", **kwargs)
    with pytest.raises(CorruptSampleError, match=re.escape(again.paths[3])):
        again[3]


def test_content_identity_sees_same_size_rewrites(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(10_000))
    before = content_identity(path)
    damage(path, "garbage")
    assert content_identity(path) != before
    assert content_identity(path).startswith("10000:")


def test_content_identity_sees_a_change_in_the_middle_with_the_time_put_back(tmp_path):
    """A recording corrupted in place between its first and last 4 KB, its modification time
    restored, must not be served from the frame cache."""
    path = tmp_path / "r.bin"
    path.write_bytes(bytes(20_000))
    stat = path.stat()
    before = content_identity(path)
    with open(path, "r+b") as f:
        f.seek(10_000)
        f.write(b"\xff" * 5)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert content_identity(path) != before


def test_real_nmnist_recordings_pass_and_the_copy_is_partial(nmnist_root):
    test = get_dataset("nmnist", "test", root=nmnist_root, T=4, cache_dir=False)
    for i in range(len(test)):
        test[i]  # every real recording passes the checks
    config = SimpleNamespace(dataset="nmnist", data_root=str(nmnist_root))
    with pytest.raises(IncompleteDatasetError, match="1,100 samples"):
        data_fingerprint(config)
    config.partial = True
    assert data_fingerprint(config)["samples"] == 1100


# ---- faults clean up ------------------------------------------------------------------------
def test_failed_atomic_write_leaves_the_target_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match=f"no space left on the device holding {tmp_path}"):
        atomic_write(target, b"new")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.slow
def test_grid_failure_summary_carries_the_notebook_error(tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    def failing(config, force=False, notebook=None, log=None, wait=False):
        raise PapermillExecutionError(
            1, 1, "run(config)", "DatasetNotFoundError", "nmnist: dataset not found in '/x'", []
        )

    monkeypatch.setattr(grid, "execute", failing)
    monkeypatch.setattr(grid, "data_fingerprint", lambda config: {})
    lines = []
    config = Config.from_dict({"out_dir": str(tmp_path)})
    failures = grid.run_grid([config], log=lines.append)
    assert failures[0][1].startswith("DatasetNotFoundError: nmnist: dataset not found in '/x'")
    assert any("FAILED" in line and "dataset not found" in line for line in lines)


def test_record_config_names_no_machine_folder():
    """An absolute data_root (this machine's folder) is kept as None; a root-relative one and
    every other value stay as they are."""
    config = Config(data_root="/somewhere/on/this/machine").to_dict()
    kept = records.record_config(config)
    assert kept["data_root"] is None and config["data_root"] == "/somewhere/on/this/machine"
    assert {k: v for k, v in kept.items() if k != "data_root"} == {
        k: v for k, v in config.items() if k != "data_root"
    }
    assert records.record_config(Config(data_root="data").to_dict())["data_root"] == "data"
    assert records.record_config(Config().to_dict())["data_root"] is None
