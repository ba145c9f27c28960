"""A record is one thing (issue 23): its parts state their digests, and a record whose parts
disagree is neither skipped as finished, nor loaded, nor drawn. A rerun that computes the same
content leaves the record's files untouched (issue 20). Links and swap debris, and the
messages that name what works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from record_fixtures import fabricate

from snnlib import experiment, grid
from snnlib.__main__ import main, parse
from snnlib.config import Config
from snnlib.data.fingerprint import data_fingerprint
from snnlib.pipeline import digests, records
from snnlib.pipeline.records import RecordError, RunLocked, mark_done, open_run, staging_dir
from snnlib.pipeline.train import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
PARTS = ("config.json", "cutoff.csv", "history.csv", "metrics.json", "outputs.npz")


def _config(tmp_path: Path, seed: int = 0) -> Config:
    return Config.from_dict({"T": 4, "seed": seed, "profile": "fab", "out_dir": str(tmp_path)})


def _made(tmp_path: Path, seed: int = 0, sealed: bool = True) -> Path:
    """A finished record computed from the embedded data (so a grid would skip it)."""
    config = _config(tmp_path, seed)
    run_dir = fabricate(config, np.random.default_rng(seed), sealed=sealed)
    records.write_json(run_dir / "provenance.json", {"data": data_fingerprint(config)})
    return run_dir


def _current(run_dir: Path) -> bool:
    config = Config.from_dict(records.load_run(run_dir)["config"])
    return records.is_current(run_dir, data_fingerprint(config))


def _why(run_dir: Path) -> str | None:
    config = Config.from_dict(records.load_run(run_dir)["config"])
    return records.why_rerun(run_dir, data_fingerprint(config))


def _tracked(folder: Path) -> dict[str, bytes]:
    """The files git would track (everything but the ignored weights)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix != ".pt"}


def _legacy_weights(run_dir: Path) -> None:
    """``model.pt`` as written before records stated digests: the weights, nothing else."""
    save_checkpoint(run_dir / "model.pt", {"model": {"w": torch.ones(4)}, "config_digest": "x"})


# ---- a record states the digests of its parts ---------------------------------------------------
def test_a_sealed_record_states_every_part_and_is_current(tmp_path):
    run_dir = _made(tmp_path)
    parts = digests.stated(run_dir)
    assert set(parts) == {*PARTS, "per_timestep.csv", "model.pt"}
    assert set(parts["outputs.npz"]) >= {"test_outputs", "test_labels", "calib_outputs"}
    weights = torch.load(run_dir / "model.pt", weights_only=True)
    assert parts["model.pt"] == digests.weights_digest(weights["model"])
    assert weights["record"] == {k: v for k, v in parts.items() if k != "model.pt"}
    assert _current(run_dir) and digests.disagreements(run_dir) == []


def test_the_weights_digest_is_of_the_contents_not_the_file():
    state = {"b": torch.arange(3.0), "a": torch.zeros(2, 2), "extra": {"decay": 0.5}}
    same = {"a": torch.zeros(2, 2), "extra": {"decay": 0.5}, "b": torch.arange(3.0)}
    assert digests.weights_digest(state) == digests.weights_digest(same)
    for changed in (
        {**state, "a": torch.zeros(4)},  # same bytes, another shape
        {**state, "a": torch.zeros(2, 2, dtype=torch.float64)},
        {**state, "extra": {"decay": 1.0}},
    ):
        assert digests.weights_digest(changed) != digests.weights_digest(state)


def test_outputs_copied_from_another_run_are_named_and_recomputed(tmp_path):
    a, b = _made(tmp_path, seed=0), _made(tmp_path, seed=1)
    shutil.copy(b / "outputs.npz", a / "outputs.npz")
    why = _why(a)
    assert "outputs.npz array test_outputs differs from what digests.json states" in why
    assert "model.pt was written with another record" in why
    # The figures leave it out and name it; the other run is drawn.
    runs, coverage = records.select_runs(a.parents[1])
    assert [r["run_dir"] for r in runs] == [b]
    assert coverage.refused == (f"{a.name}: {why}",)
    assert any(a.name in line and "parts disagree" in line for line in coverage.report())


def test_foreign_weights_are_not_current(tmp_path):
    a, b = _made(tmp_path, seed=0), _made(tmp_path, seed=1)
    shutil.copy(b / "model.pt", a / "model.pt")
    why = _why(a)
    assert "model.pt holds other weights than digests.json states" in why
    assert "model.pt was written with another record" in why


def test_weights_left_beside_a_restored_record_are_found(tmp_path):
    # A rerun (other numbers) is undone with `git checkout results/`: the committed record,
    # which states no digests, is back, with the rerun's ignored model.pt beside it.
    committed = _made(tmp_path / "committed", seed=0, sealed=False)
    rerun = shutil.copytree(committed, tmp_path / "rerun")
    records.write_json(rerun / "metrics.json", {"accuracy_tmax": 0.974})  # the rerun's numbers
    digests.seal(rerun, {"w": torch.ones(4)}, "x")
    shutil.copy(rerun / "model.pt", committed / "model.pt")
    assert "model.pt was written with another record (its metrics.json differ)" in _why(committed)
    # ... and with the rerun's untracked digests.json left too
    shutil.copy(rerun / "digests.json", committed / "digests.json")
    assert "metrics.json differs from what digests.json states" in _why(committed)


def test_a_record_without_digests_stays_valid_and_can_be_backfilled(tmp_path):
    run_dir = _made(tmp_path, sealed=False)
    _legacy_weights(run_dir)  # weights that state nothing: as valid as before
    assert _current(run_dir)
    assert digests.backfill(run_dir) and not digests.backfill(run_dir)  # once
    assert set(digests.stated(run_dir)) == {*PARTS, "per_timestep.csv"}  # unverified weights: no
    assert _current(run_dir)
    (run_dir / "cutoff.csv").write_text("policy\n")  # a part changed after the backfill
    assert "cutoff.csv differs" in _why(run_dir)


def test_damaged_outputs_are_named_and_the_other_figures_continue(tmp_path):
    a, b = _made(tmp_path, seed=0, sealed=False), _made(tmp_path, seed=1, sealed=False)
    (a / "outputs.npz").write_bytes((a / "outputs.npz").read_bytes()[:100])
    where = re.escape(str(a / "outputs.npz"))
    with pytest.raises(RecordError, match=rf"{where} cannot be read \(BadZipFile"):
        records.load_outputs(a)
    runs, coverage = records.select_runs(a.parents[1])
    assert [r["run_dir"] for r in runs] == [b]
    assert len(coverage.refused) == 1 and "outputs.npz cannot be read" in coverage.refused[0]


@pytest.mark.slow
def test_figures_command_draws_the_others_and_exits_non_zero(tmp_path, capsys):
    a, _ = _made(tmp_path, seed=0), _made(tmp_path, seed=1)
    (a / "outputs.npz").write_bytes(b"not a zip file")
    assert main(["figures", str(a.parents[1])]) == 1
    err = capsys.readouterr().err
    assert f"{a.name}: " in err and "outputs.npz cannot be read" in err
    assert (a.parents[1] / "tables" / "summary.csv").is_file()


# ---- a rerun identical to the record leaves it untouched ---------------------------------------
def _rerun_into_stage(run_dir: Path, seconds: str = "9.5") -> Path:
    """What a rerun of ``run_dir`` that computes the same content stages: the same parts, its
    own timings, provenance, weights file and DONE."""
    stage = staging_dir(run_dir)
    shutil.copytree(run_dir, stage, dirs_exist_ok=True)
    history = (stage / "history.csv").read_text().splitlines()
    history[1] = history[1].rsplit(",", 1)[0] + f",{seconds}"
    (stage / "history.csv").write_text("\n".join(history) + "\n")
    data = records.load_run(run_dir)["provenance"].get("data")
    records.write_json(stage / "provenance.json", {"data": data, "host": "elsewhere"})
    weights = torch.load(run_dir / "model.pt", weights_only=True)["model"]
    digests.seal(stage, weights, "x")
    mark_done(stage)
    return stage


@pytest.mark.parametrize("stated", [True, False], ids=["with digests", "without digests"])
def test_identical_rerun_leaves_every_tracked_file_untouched(tmp_path, stated):
    run_dir = _made(tmp_path, sealed=stated)
    if not stated:
        _legacy_weights(run_dir)
    before = _tracked(run_dir)
    messages = []
    with open_run(run_dir, log=messages.append):
        _rerun_into_stage(run_dir)
    assert _tracked(run_dir) == before  # no new DONE, provenance, history timings, digests.json
    assert not staging_dir(run_dir).exists()
    assert len(messages) == 1 and "identical to the committed record" in messages[0]
    assert ("weights equal" in messages[0]) is stated  # the weights compared where both state them
    # the new weights moved in, stating these very parts: the record is current
    assert "record" in torch.load(run_dir / "model.pt", weights_only=True)
    assert _current(run_dir)


@pytest.mark.parametrize("change", ["metrics", "data", "weights"])
def test_a_rerun_with_other_content_replaces_the_record(tmp_path, change):
    run_dir = _made(tmp_path)
    messages = []
    with open_run(run_dir, log=messages.append):
        stage = _rerun_into_stage(run_dir)
        if change == "metrics":
            records.write_json(stage / "metrics.json", {"accuracy_tmax": 0.5})
        elif change == "data":
            records.write_json(stage / "provenance.json", {"data": {"listing": "another"}})
        if change != "data":  # seal again: the stage itself is one consistent record
            digests.seal(stage, {"w": torch.full((4,), float(change == "weights"))}, "x")
        staged = _tracked(stage)
    assert messages == []
    assert _tracked(run_dir) == staged  # swapped in whole
    assert digests.disagreements(run_dir) == []


@pytest.mark.slow
def test_a_run_identical_to_the_committed_record_leaves_the_tree_clean(tmp_path):
    """End to end: a fresh clone's committed record (no weights) recomputed bit for bit."""
    config = Config.from_dict(
        {"epochs": 1, "T": 4, "train_limit": 128, "eval_limit": 100, "batch_size": 64}
        | {"progress": False, "bins": 20, "out_dir": str(tmp_path)}
    )
    run_dir = experiment.run(config, log=lambda *_: None)
    (run_dir / "model.pt").unlink()  # as committed: no weights
    before = _tracked(run_dir)
    messages = []
    experiment.run(config, log=messages.append)
    assert any("identical to the committed record" in m and "weights equal" in m for m in messages)
    assert _tracked(run_dir) == before
    assert records.is_current(run_dir, data_fingerprint(config))
    # load_snn refuses weights whose digest disagrees with the record's, naming run and part
    good = (run_dir / "model.pt").read_bytes()
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    name = next(k for k, v in payload["model"].items() if torch.is_tensor(v) and v.numel())
    payload["model"][name] = payload["model"][name] + 1
    save_checkpoint(run_dir / "model.pt", payload)
    with pytest.raises(RecordError, match=rf"run {run_dir.name}: model.pt holds other weights"):
        experiment.load_snn(run_dir)
    (run_dir / "model.pt").write_bytes(good)
    # A record from before digests existed: recomputed identical, it gains no new file.
    (run_dir / "digests.json").unlink()
    (run_dir / "model.pt").unlink()
    before = _tracked(run_dir)
    messages = []
    experiment.run(config, log=messages.append)
    assert any("identical to the committed record" in m for m in messages), messages
    assert _tracked(run_dir) == before
    assert records.is_current(run_dir, data_fingerprint(config))


# ---- links, debris, messages -------------------------------------------------------------------
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.parent.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (run_dir.parent / ".r1.lock").symlink_to(target)
    with pytest.raises(RecordError, match=r"\.r1\.lock, the run's lock file, is a symbolic link"):
        with open_run(run_dir):
            pass
    assert target.read_text() == "keep me"


def test_a_run_folder_that_is_a_link_is_refused_up_front(tmp_path):
    elsewhere = _made(tmp_path / "elsewhere")
    before = _tracked(elsewhere)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.parent.mkdir()
    run_dir.symlink_to(elsewhere)
    with pytest.raises(RecordError, match=r"r1 is a symbolic link .*remove the link"):
        with open_run(run_dir) as stage:
            mark_done(stage)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["r1"]  # no .old, no staging
    assert _tracked(elsewhere) == before


def test_an_old_link_left_by_an_earlier_swap_is_removed_not_followed(tmp_path):
    elsewhere = _made(tmp_path / "elsewhere")
    run_dir = _made(tmp_path / "here")
    aside = run_dir.with_name(f".{run_dir.name}.old")
    aside.symlink_to(elsewhere)
    with open_run(run_dir):
        pass
    assert not aside.is_symlink() and records.is_done(elsewhere)


@pytest.mark.parametrize("debris", ["old", "finished staging"])
def test_a_skipped_run_repairs_swap_debris(tmp_path, debris):
    run_dir = _made(tmp_path)
    config = _config(tmp_path)
    if debris == "old":  # a crash while deleting the replaced record
        shutil.copytree(run_dir, run_dir.with_name(f".{run_dir.name}.old"))
    else:  # a crash after the rerun finished, before the swap began
        _rerun_into_stage(run_dir)
    messages = []
    assert grid.run_grid([config], use_notebook=False, log=messages.append) == []
    assert any("[skip]" in m for m in messages)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [
        f".{run_dir.name}.lock",
        run_dir.name,
    ]
    assert _current(run_dir)


def test_repair_leaves_a_run_another_writer_holds(tmp_path):
    run_dir = _made(tmp_path)
    with open_run(run_dir):
        # the holder is between its two renames: the old record aside is not debris
        aside = shutil.copytree(run_dir, run_dir.with_name(f".{run_dir.name}.old"))
        records.repair(run_dir)
        assert aside.is_dir()


def test_wait_is_offered_where_the_lock_advises_it(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "r1"
    with open_run(run_dir):
        with pytest.raises(RunLocked, match=r"--wait \(python -m snnlib run or grid, \./run_all"):
            with open_run(run_dir):
                pass
    profile = str(REPO / "configs" / "quick.yaml")
    assert parse(["grid", profile, "--wait"]).wait
    assert main(["grid", profile, "--wait", "--print-commands"]) == 0
    assert all(line.endswith("--wait") for line in capsys.readouterr().out.splitlines())
    script = (REPO / "run_all.sh").read_text()
    assert "--wait) grid_args+=(--wait)" in script and "[--wait]" in script


def test_digests_command_checks_and_backfills(tmp_path, capsys):
    good, bad = _made(tmp_path, seed=0, sealed=False), _made(tmp_path, seed=1)
    (bad / "metrics.json").write_text("{}\n")
    assert main(["digests", str(good.parents[1])]) == 1
    out = capsys.readouterr().out
    assert f"[no digests] {good.name}" in out and f"[disagree] {bad.name}: metrics.json" in out
    assert main(["digests", str(good), "--backfill"]) == 0
    assert (good / "digests.json").is_file() and f"[wrote] {good.name}" in capsys.readouterr().out
