"""A converted SNN against its ANN as T grows: the criteria, the table and figure, a real run."""

import numpy as np
import pandas as pd
import pytest
from record_fixtures import fabricate

from snnlib import experiment
from snnlib.config import Config
from snnlib.pipeline.records import load_outputs
from snnlib.study import convergence
from snnlib.study.report import write_all


def _run(acc, ann, L):
    return {
        "config": {"dataset": "mnist5k", "arch": "a", "L": L, "alpha": 0.0, "seed": 0},
        "metrics": {"ann_accuracy": ann},
        "per_timestep": pd.DataFrame({"timestep": range(1, len(acc) + 1), "accuracy": acc}),
    }


def test_gap_and_dip_by_hand():
    acc = [0.1, 0.90, 0.95, 0.93, 0.96, 0.955, 0.958, 0.96]
    row = convergence.check_run(_run(acc, ann=0.962, L=2))
    # t_gap = 4L = 8: 0.962 - 0.96; running max from t = 2: 0.95 at t = 3, then 0.93 at t = 4
    assert row["t_gap"] == 8 and row["gap"] == pytest.approx(0.002)
    assert row["dip"] == pytest.approx(0.02) and row["converges"] is False
    smooth = convergence.check_run(_run([0.1, 0.9, 0.95, 0.945, 0.958, 0.96], ann=0.964, L=2))
    # T_max = 6 < 4L: the gap is read at T_max; the dip of 0.005 is inside 1 point
    assert smooth["t_gap"] == 6 and smooth["dip"] == pytest.approx(0.005)
    assert smooth["converges"] is True
    # a dip before t = L does not count; a peak before it does
    assert convergence.check_run(_run([0.9, 0.5, 0.96, 0.96], ann=0.96, L=3))["dip"] == 0.0
    peak = convergence.check_run(_run([0.98, 0.5, 0.96, 0.96], ann=0.96, L=3))
    assert peak["dip"] == pytest.approx(0.02)


def test_ledger_row_counts_converging_runs_and_shows_the_worst_gap_and_dip():
    good = _run([0.9, 0.96, 0.96, 0.962, 0.96, 0.961, 0.962, 0.962], ann=0.963, L=2)
    dips = _run([0.9, 0.96, 0.93, 0.95, 0.96, 0.961, 0.962, 0.962], ann=0.962, L=2)
    runs = [{**r, "config": {**r["config"], "method": "qcfs"}} for r in (good, dips)]
    direct = {**good, "config": {**good["config"], "method": "tet", "dataset": "mnist5k-dvs"}}
    (row,) = convergence.ledger_rows([*runs, direct], "prof")
    assert row["dataset"] == "mnist5k" and row["scale"] == "prof"
    assert row["measured"] == "1 of 2 runs (worst gap +0.1 pt, worst dip 3.0 pt)"
    assert "0.5 pt" in row["claim"] and "1 pt" in row["claim"]
    assert convergence.ledger_rows([direct], "prof") == []


def test_runs_at_chance_get_no_convergence_verdict():
    """A smoke run's ANN at 0 % 'converges' trivially (gap 0, no dip): no verdict for it."""
    flat = {
        **_run([0.0] * 8, ann=0.0, L=2),
        "config": {**_run([0.0], 0.0, 2)["config"], "method": "qcfs"},
    }
    learned = {**_run([0.96] * 8, ann=0.96, L=2), "config": flat["config"]}
    assert convergence.at_chance(flat) and not convergence.at_chance(learned)
    assert convergence.converted([flat, learned]) == [learned]
    assert convergence.ledger_rows([flat], "prof") == []


@pytest.mark.slow  # draws figures
def test_table_and_figures_only_for_converted_runs(tmp_path):
    rng = np.random.default_rng(0)
    base = {"out_dir": str(tmp_path), "profile": "p", "T": 16, "L": 4}
    for seed in (0, 1):
        fabricate(Config(**base, method="qcfs", seed=seed), rng)
        direct = Config(**base, method="tet", arch="dvs-cnn", dataset="mnist5k-dvs", seed=seed)
        fabricate(direct, rng)
    lines = []
    written, _ = write_all(tmp_path / "p", log=lines.append)
    names = {p.relative_to(tmp_path / "p").as_posix() for p in written}
    assert {"tables/convergence.csv", "figures/convergence_mnist5k.png"} <= names
    assert not any("convergence_mnist5k-dvs" in n for n in names)
    table = pd.read_csv(tmp_path / "p" / "tables" / "convergence.csv")
    assert len(table) == 2 and set(table["dataset"]) == {"mnist5k"}
    assert any(line.startswith("[convergence]") for line in lines)
    ledger = pd.read_csv(tmp_path / "p" / "tables" / "ledger.csv")
    assert ledger["claim"].str.contains("of its ANN at T = 4L").sum() == 1  # the claim rows


@pytest.mark.slow
def test_short_qcfs_run_converges_with_data_initialised_lambda(tmp_path):
    """The property on a short real run (mnist5k, the quick profile's L = 8 to T = 4L, half its
    epochs), and its failure with the official λ (8.0, decayed), which this budget cannot train
    down. Not a general guarantee: at L = 4 the data-initialised λ diverges too (docs/method.md
    §1.3)."""
    base = {"dataset": "mnist5k", "method": "qcfs", "L": 8, "T": 32, "epochs": 4, "lr": 0.05,
            "progress": False, "out_dir": str(tmp_path)}  # fmt: skip
    rows = {}
    for rule in ("data", "official"):
        run_dir = experiment.run(Config(**base, lam_rule=rule), log=lambda *_: None)
        arrays = load_outputs(run_dir)
        acc = (arrays["test_outputs"].argmax(-1) == arrays["test_labels"]).mean(1)
        ann = float((arrays["ann_outputs"][-1].argmax(-1) == arrays["test_labels"]).mean())
        rows[rule] = convergence.check_run(_run(acc, ann, L=8))
    assert rows["data"]["converges"], rows["data"]
    assert not rows["official"]["converges"], rows["official"]
