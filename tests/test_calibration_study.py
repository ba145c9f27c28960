"""The paper's calibration (training data through spike dropout) against the held-out split."""

import json
import shutil

import pandas as pd
import pytest

from snnlib import experiment
from snnlib.config import Config
from snnlib.study import calibration as calibration_study

pytestmark = pytest.mark.slow  # the module's fixture trains a run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    config = Config(
        epochs=1, T=4, train_limit=192, eval_limit=300, batch_size=64, progress=False, lr=0.05,
        bins=20, out_dir=str(root), profile="p",
    )  # fmt: skip
    return experiment.run(config, log=lambda *_: None)


def test_held_out_row_is_the_records_own_operating_point(finished):
    rows = calibration_study.compare(finished)
    assert [r["calibration"] for r in rows] == ["split", "train-dropout"]
    metrics = json.loads((finished / "metrics.json").read_text())
    split, paper = rows
    assert split["epsilon"] == metrics["topk_epsilon"]
    assert split["topk_accuracy"] == metrics["topk_accuracy"]
    assert split["topk_avg_timestep"] == metrics["topk_avg_timestep"]
    assert (split["n_calib"], paper["n_calib"]) == (metrics["n_calib"], 192)  # train_limit
    assert paper["accuracy_tmax"] == split["accuracy_tmax"] == metrics["accuracy_tmax"]
    assert calibration_study.compare(finished) == rows  # seeded dropout: reproducible


def test_table_skips_runs_without_weights_and_writes_files(finished, tmp_path):
    profile = tmp_path / "p"
    shutil.copytree(finished.parent.parent, profile)
    bare = profile / "runs" / "bare"
    shutil.copytree(finished, bare)
    (bare / "model.pt").unlink()
    lines = []
    written = calibration_study.write_study(profile, log=lines.append)
    assert [p.name for p in written] == ["calibration.csv", "calibration.md", "calibration.tex"]
    table = pd.read_csv(written[0])
    assert list(table["calibration"]) == ["split", "train-dropout"]
    assert set(table["seeds"]) == {1}
    assert lines == ["[calibration] bare: no model.pt (rerun it to compare), skipped"]


def test_table_takes_only_the_declared_runs(finished, tmp_path):
    profile = tmp_path / "p"
    shutil.copytree(finished.parent.parent, profile)
    shutil.copytree(finished, profile / "runs" / "stray")
    declared = [Config.from_dict(json.loads((finished / "config.json").read_text()))]
    lines = []
    table = calibration_study.study_table(profile, declared, log=lines.append)
    assert set(table["seeds"]) == {1}
    assert lines == ["[calibration] finished but not declared (left out): stray"]


def test_no_run_with_weights_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished run with its weights"):
        calibration_study.study_table(tmp_path)


def test_a_run_whose_weights_belong_to_another_record_is_named_and_left_out(finished, tmp_path):
    # A record restored from git (no digests.json, other numbers) with a rerun's model.pt
    # beside it: the comparison names it and goes on with the other runs.
    profile = tmp_path / "p"
    shutil.copytree(finished.parent.parent, profile)
    restored = shutil.copytree(finished, profile / "runs" / "restored")
    (restored / "digests.json").unlink()
    metrics = json.loads((restored / "metrics.json").read_text())
    (restored / "metrics.json").write_text(json.dumps({**metrics, "accuracy_tmax": 0.5}))
    lines = []
    table = calibration_study.study_table(profile, log=lines.append)
    assert set(table["seeds"]) == {1}
    assert lines == [
        "[calibration] record left out, its parts disagree: restored: model.pt was written "
        "with another record (its metrics.json differ)"
    ]
