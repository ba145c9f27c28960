"""Run records you can trust (issue 11): one writer per run, a rerun replaces the old record
only once the new one is finished, faults clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snnlib import records
from snnlib.records import RunLocked, mark_done, open_run, staging_dir


def _record(run_dir: Path, text: str) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(text)
    (run_dir / "model.pt").write_bytes(b"\x00weights")
    mark_done(run_dir)
    return run_dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _holder(run_dir: Path, seconds: float = 60) -> subprocess.Popen:
    """A child process that holds ``run_dir``'s lock for ``seconds`` (started when it says so)."""
    code = textwrap.dedent(f"""
        import sys, time
        from snnlib.records import open_run
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
