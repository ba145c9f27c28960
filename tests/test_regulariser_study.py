"""The regulariser study (snnlib.study.regulariser): pairing by seed, what is left out and
said, verdicts, and the files written from (fabricated) run records."""

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from record_fixtures import fabricate

from snnlib.config import Config
from snnlib.pipeline.records import HISTORY_COLUMNS, select_runs
from snnlib.study import regulariser as study

T = 4


def fake_run(alpha, seed, *, acc=0.9, oct_mean=2.0, history=None, **config) -> dict:
    """A run as :func:`snnlib.pipeline.records.load_run` returns it, with the numbers given."""
    c = Config.from_dict({"alpha": alpha, "seed": seed, "T": T, **config})
    if history is None:
        history = pd.DataFrame([[1, 1.0, 2.0, 0.5, 0.5, 0.1, 1.0]], columns=list(HISTORY_COLUMNS))
    return {
        "run_dir": Path(c.run_id),
        "config": c.to_dict(),
        "provenance": {},
        "metrics": {
            "accuracy_tmax": acc,
            "oct_mean": oct_mean,
            "topk_avg_timestep": oct_mean + 0.5,
            "topk_accuracy": acc - 0.01,
        },
        "per_timestep": pd.DataFrame(
            {"timestep": range(1, T + 1), "accuracy": np.linspace(acc / 2, acc, T)}
        ),
        "history": history,
    }


def rows(table: pd.DataFrame, metric: str, alpha: float = 0.01) -> pd.Series:
    sel = table[(table["metric"] == metric) & (table["alpha"] == alpha)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def quiet(*_):
    pass


def test_runs_are_paired_by_seed_not_by_their_order():
    """Seeds differ a lot (accuracy 0.5..0.9), α adds exactly 0.0625 to each: paired by seed
    every difference is 0.0625 and the interval has no width; paired by position after the
    shuffle, the differences would spread over ±0.4."""
    runs = [fake_run(0.0, s, acc=0.5 + 0.1 * s) for s in range(5)]
    runs += [fake_run(0.01, s, acc=0.5625 + 0.1 * s) for s in range(5)]
    random.Random(1).shuffle(runs)
    row = rows(study.paired_table(runs, log=quiet), "accuracy_tmax")
    assert row["n_pairs"] == 5 and row["unpaired_seeds"] == ""
    assert row["difference"] == pytest.approx(0.0625)
    assert row["ci_low"] == pytest.approx(0.0625) and row["ci_high"] == pytest.approx(0.0625)
    assert row["mean_alpha0"] == pytest.approx(0.7) and row["verdict"] == "better"


def test_a_missing_seed_is_reported_and_left_out():
    runs = [fake_run(0.0, s, acc=0.8 + 0.01 * s) for s in range(5)]  # seeds 0..4
    runs += [fake_run(0.01, s, acc=0.9) for s in (0, 1, 2, 3, 7)]  # no 4, an extra 7
    lines: list[str] = []
    row = rows(study.paired_table(runs, log=lines.append), "accuracy_tmax")
    assert row["n_pairs"] == 4
    assert row["unpaired_seeds"] == "4 (no run at this α); 7 (no run at α = 0)"
    assert row["mean_alpha0"] == pytest.approx(np.mean([0.8, 0.81, 0.82, 0.83]))  # not seed 4
    assert any("α=0.01" in line and "4 (no run at this α)" in line for line in lines)


def test_a_clear_effect_is_better_or_worse_by_the_metric_s_direction():
    """α lowers OCT by 0.3..0.5 steps (better: fewer steps) and accuracy by 0.02..0.04
    (worse: higher accuracy is better)."""
    shift = [0.3, 0.5, 0.4, 0.35, 0.45]
    runs = [fake_run(0.0, s, acc=0.9, oct_mean=3.0) for s in range(5)]
    runs += [fake_run(0.01, s, acc=0.9 - d / 10, oct_mean=3.0 - d) for s, d in enumerate(shift)]
    table = study.paired_table(runs, log=quiet)
    oct_row, acc_row = rows(table, "oct_mean"), rows(table, "accuracy_tmax")
    assert oct_row["verdict"] == "better" and oct_row["ci_high"] < 0
    assert oct_row["difference"] == pytest.approx(-np.mean(shift))
    assert acc_row["verdict"] == "worse" and acc_row["ci_high"] < 0
    assert rows(table, "topk_avg_timestep")["verdict"] == "better"


def test_no_effect_is_not_distinguishable():
    """Differences +2, −2, +1, −1, 0 (in 0.01): mean 0, the interval straddles 0."""
    noise = [0.02, -0.02, 0.01, -0.01, 0.0]
    runs = [fake_run(0.0, s, acc=0.8) for s in range(5)]
    runs += [fake_run(0.01, s, acc=0.8 + e) for s, e in enumerate(noise)]
    row = rows(study.paired_table(runs, log=quiet), "accuracy_tmax")
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"] == "not distinguishable"


def test_the_regulariser_share_is_read_from_the_last_epoch():
    """Last epoch: train_loss 1.0 = task + α·R with α = 0.05, R = 2.0, so α·R = 0.1 and
    task = 0.9: share 0.1 / 0.9; at α = 0 the share is 0 (R logged but not trained with)."""
    history = pd.DataFrame(
        [[1, 3.0, 9.0, 0.5, 0.5, 0.1, 1.0], [2, 1.0, 2.0, 0.6, 0.6, 0.05, 1.0]],
        columns=list(HISTORY_COLUMNS),
    )
    runs = [fake_run(a, s, history=history) for a in (0.0, 0.05) for s in (0, 1)]
    row = rows(study.paired_table(runs, log=quiet), "reg_to_task", alpha=0.05)
    assert row["mean"] == pytest.approx(0.1 / 0.9) and row["mean_alpha0"] == 0.0
    assert row["verdict"] == "higher"


def test_settings_are_compared_separately_and_need_alpha_zero():
    runs = [fake_run(a, s) for a in (0.0, 0.01) for s in (0, 1)]
    runs += [fake_run(0.01, s, method="tet", arch="dvs-cnn") for s in (0, 1)]  # no α = 0
    lines: list[str] = []
    table = study.paired_table(runs, log=lines.append)
    assert set(table["method"]) == {"qcfs"}
    assert len(table) == len(study.METRICS)
    assert any("tet" in line and "no runs at α = 0" in line for line in lines)


def test_runs_that_differ_in_more_than_alpha_and_seed_are_refused():
    runs = [fake_run(0.0, 0), fake_run(0.01, 0, lr=0.2)]
    with pytest.raises(ValueError, match=r"differ in \['lr'\]"):
        study.paired_table(runs, log=quiet)


@pytest.mark.slow  # draws the figure
def test_write_study_writes_the_table_and_the_figure(tmp_path):
    rng = np.random.default_rng(0)
    for alpha, seed in [(0.0, 0), (0.0, 1), (0.0, 2), (0.01, 0), (0.01, 1)]:
        config = {"alpha": alpha, "seed": seed, "T": T, "out_dir": str(tmp_path), "profile": "p"}
        fabricate(Config.from_dict(config), rng, n_test=40, n_calib=40)
    lines: list[str] = []
    runs, _ = select_runs(tmp_path / "p")
    written = study.write_study(study.paired_table(runs, log=lines.append), tmp_path / "p")
    names = {p.relative_to(tmp_path / "p").as_posix() for p in written}
    assert {"tables/regulariser.csv", "tables/regulariser.md"} <= names
    assert {"figures/regulariser.png", "figures/regulariser.svg"} <= names
    assert all(p.stat().st_size > 0 for p in written)
    table = pd.read_csv(tmp_path / "p" / "tables" / "regulariser.csv")
    assert list(table.columns) == list(study.COLUMNS)
    assert set(table["n_pairs"]) == {2}
    assert any("2 (no run at this α)" in line for line in lines)


def test_write_study_without_pairs_writes_nothing_and_says_so(tmp_path):
    lines = []
    empty = study.paired_table([], log=lines.append)
    assert study.write_study(empty, tmp_path, log=lines.append) == []
    assert any("no regulariser table" in line for line in lines)
    assert not (tmp_path / "tables").exists()


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ({"oct_mean": "better", "accuracy_tmax": "not distinguishable"}, "supported"),
        ({"topk_avg_timestep": "better"}, "supported"),
        ({"oct_mean": "worse"}, "contradicted"),
        ({"accuracy_tmax": "worse"}, "contradicted"),
        ({"topk_accuracy": "worse"}, "contradicted"),
        ({"topk_avg_timestep": "better", "topk_accuracy": "worse"}, "mixed"),
        ({"oct_mean": "better", "accuracy_tmax": "worse"}, "mixed"),
        ({"topk_avg_timestep": "better", "oct_mean": "worse"}, "mixed"),
        ({"accuracy_t1": "worse", "topk_accuracy": "better"}, "not distinguishable"),
        ({"oct_mean": "better", "topk_accuracy": "not distinguishable"}, "supported"),
        ({}, "not distinguishable"),
    ],
)
def test_the_claim_verdict_weighs_steps_against_accuracy(verdicts, expected):
    assert study.claim_verdict(verdicts) == expected


def test_ledger_rows_carry_the_verdict_and_the_differences_it_rests_on():
    """α lowers OCT (and so Top-K steps) by 0.3..0.5 and costs accuracy: a mixed result,
    shown with its paired differences in steps and points."""
    shift = [0.3, 0.5, 0.4, 0.35, 0.45]
    runs = [fake_run(0.0, s, acc=0.9, oct_mean=3.0) for s in range(5)]
    runs += [fake_run(0.01, s, acc=0.9 - d / 10, oct_mean=3.0 - d) for s, d in enumerate(shift)]
    (row,) = study.ledger_rows(study.paired_table(runs, log=quiet), "prof")
    assert row["dataset"] == "mnist5k" and row["scale"] == "prof" and row["paper"] == "yes"
    assert "alpha=0.01" in row["claim"] and "5 paired seeds" in row["claim"]
    assert row["measured"].startswith("mixed: Top-K steps -0.40 steps [")
    assert "mean OCT -0.40 steps [" in row["measured"]
    assert "acc at T_max -4.00 pt [" in row["measured"]
    assert "Top-K acc -4.00 pt [" in row["measured"]  # fake_run: Top-K acc = acc - 0.01
    unpaired = study.paired_table([fake_run(0.01, s) for s in range(3)], log=quiet)
    assert study.ledger_rows(unpaired, "prof") == []  # no α = 0
