"""Figures and tables from (fabricated) run records; profile grids and the grid runner."""

from collections import Counter

import numpy as np
import pytest
import torch
from record_fixtures import fabricate

from snnlib import grid
from snnlib.config import Config, ConfigError
from snnlib.data.fingerprint import data_fingerprint
from snnlib.pipeline import records
from snnlib.pipeline.records import mark_done, select_runs, write_json
from snnlib.pipeline.train import save_checkpoint
from snnlib.study import figures, report, tables
from snnlib.tools import paths


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    for method, alpha, seed in [
        (m, a, s) for m in ("qcfs", "tet") for a in (0.0, 0.003) for s in (0, 1)
    ]:
        arch = "dvs-cnn" if method == "tet" else "mnist-cnn"
        dataset = "mnist5k-dvs" if method == "tet" else "mnist5k"
        fabricate(
            Config.from_dict(
                {
                    "dataset": dataset,
                    "method": method,
                    "arch": arch,
                    "alpha": alpha,
                    "seed": seed,
                    "T": 6,
                    "out_dir": str(out),
                    "profile": "fab",
                }
            ),
            rng,
        )
    (out / "fab" / "runs" / "unfinished-run").mkdir()  # no DONE: must be ignored
    return out / "fab"


@pytest.mark.slow
def test_write_all_writes_every_figure_and_table(profile_dir):
    written, _ = report.write_all(profile_dir)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    names = {p.name for p in written}
    for stem in ("accuracy_vs_timestep", "tradeoff", "exits"):
        for pair in ("mnist5k_qcfs", "mnist5k-dvs_tet"):
            assert f"{stem}_{pair}.png" in names and f"{stem}_{pair}.svg" in names
    for table in ("summary", "summary_pretty", "ledger"):
        assert {f"{table}.csv", f"{table}.md", f"{table}.tex"} <= names
    # Redrawn from the same records, every file is byte-identical (no dates, fixed SVG ids).
    before = {p: p.read_bytes() for p in written}
    assert report.write_all(profile_dir)[0] == written
    assert all(p.read_bytes() == before[p] for p in written)


@pytest.mark.slow
def test_write_all_reads_each_record_once(profile_dir, monkeypatch):
    """One report loads each run record once and its outputs at most once: selection and
    coverage happen once, and every writer gets the loaded records."""
    runs, outputs = Counter(), Counter()
    load_run, load_outputs = records.load_run, figures.load_outputs

    def counting_load_run(run_dir):
        runs[run_dir.name] += 1
        return load_run(run_dir)

    def counting_load_outputs(run_dir):
        outputs[run_dir.name] += 1
        return load_outputs(run_dir)

    monkeypatch.setattr(records, "load_run", counting_load_run)
    monkeypatch.setattr(figures, "load_outputs", counting_load_outputs)
    lines: list[str] = []
    report.write_all(profile_dir, log=lines.append)
    assert len(runs) == 8 and set(runs.values()) == {1}
    assert set(outputs.values()) == {1}


def test_summary_is_mean_and_std_over_seeds(profile_dir):
    runs = select_runs(profile_dir)[0]
    assert len(runs) == 8
    table = tables.summary_table(runs)
    assert len(table) == 4 and set(table["seeds"]) == {2}
    row = table[(table["method"] == "qcfs") & (table["alpha"] == 0.003)].iloc[0]
    values = [
        r["metrics"]["topk_speedup"]
        for r in runs
        if r["config"]["method"] == "qcfs" and r["config"]["alpha"] == 0.003
    ]
    assert row["topk_speedup_mean"] == pytest.approx(np.mean(values))
    assert row["topk_speedup_std"] == pytest.approx(np.std(values, ddof=1))


def test_ledger_says_not_run_for_paper_datasets(profile_dir):
    table = tables.summary_table(select_runs(profile_dir)[0])
    led = tables.ledger(table, "fab")
    paper = led[led["dataset"] == "cifar10"]
    assert paper["measured"].tolist() == ["not run"]
    assert "1.76-2.76x" in paper["paper"].iloc[0]
    assert (led["dataset"] == "mnist5k").sum() == 2


def test_write_all_without_runs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished runs"):
        report.write_all(tmp_path)


def test_profiles_expand_to_valid_configs():
    quick = grid.expand(paths.CHECKOUT / "configs" / "quick.yaml")
    assert len(quick) == 12 and {c.profile for c in quick} == {"quick"}
    assert len({c.run_id for c in quick}) == 12
    assert {c.dataset for c in quick} == {"mnist5k", "mnist5k-dvs"}
    paper = grid.expand(paths.CHECKOUT / "configs" / "paper.yaml")
    assert {
        "cifar10",
        "cifar100",
        "tiny-imagenet",
        "cifar10-dvs",
        "dvs128-gesture",
        "ncaltech101",
    } <= {c.dataset for c in paper}


def test_bad_profile_lists_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("runs:\n  - {method: tett}\n  - {T: 0}\n")
    with pytest.raises(ConfigError, match=r"(?s)runs\[0\].*tett.*runs\[1\].*T\b.*\b0\b"):
        grid.expand(path)
    path.write_text("runz: []\n")
    with pytest.raises(ConfigError, match="unknown top-level keys \\['runz'\\]"):
        grid.expand(path)


def test_a_failing_run_does_not_stop_the_others(tmp_path, monkeypatch):
    from snnlib import experiment

    configs = [Config.from_dict({"seed": s, "out_dir": str(tmp_path)}) for s in (0, 1, 2)]
    ran = []

    def fake_run(config, force=False, log=print, wait=False):
        ran.append(config.seed)
        if config.seed == 1:
            raise RuntimeError("boom")
        write_json(config.run_dir / "provenance.json", {"data": data_fingerprint(config)})
        mark_done(config.run_dir)
        weights = {"model": {"w": torch.zeros(1)}, "config_digest": config.digest()}
        save_checkpoint(config.run_dir / "model.pt", weights)  # finished: record and weights
        return config.run_dir

    monkeypatch.setattr(experiment, "run", fake_run)
    failures = grid.run_grid(configs, use_notebook=False, log=lambda *_: None)
    assert ran == [0, 1, 2]
    assert [f[0] for f in failures] == [configs[1].run_id]
    ran.clear()
    grid.run_grid(configs, use_notebook=False, log=lambda *_: None)
    assert ran == [1]  # finished runs are skipped
    grid.run_grid(configs, only="*-s2-*", force=True, use_notebook=False, log=lambda *_: None)
    assert ran == [1, 2]
    ran.clear()
    (configs[0].run_dir / "model.pt").unlink()  # a record without weights, as committed
    grid.run_grid(configs, use_notebook=False, log=lambda *_: None)
    assert ran == [0, 1]
    ran.clear()
    other = {**data_fingerprint(configs[2]), "listing": "another copy"}
    monkeypatch.setattr(grid, "data_fingerprint", lambda config: other)
    grid.run_grid(configs, use_notebook=False, log=lambda *_: None)
    assert ran == [0, 1, 2]  # finished on other data: not current


def test_undeclared_papermill_parameters_are_refused(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["kernelspec"]["language"] = "python"
    cell = nbformat.v4.new_code_cell("alpha = 0.0\nT = 4\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    grid.check_parameters({"alpha": 1.0}, path)
    with pytest.raises(ConfigError, match="does not declare parameters \\['alhpa'\\]"):
        grid.check_parameters({"alhpa": 1.0}, path)


def test_confidence_map_draws_each_split_with_the_thresholds(profile_dir):
    from snnlib.pipeline.records import finished_runs, load_outputs, load_run

    run_dir = finished_runs(profile_dir)[0]
    arrays = load_outputs(run_dir)
    betas = load_run(run_dir)["metrics"]["topk_betas"]
    splits = {
        "calib": (arrays["calib_outputs"], arrays["calib_labels"]),
        "test": (arrays["test_outputs"], arrays["test_labels"]),
    }
    fig = figures.confidence_map(splits, betas, 0.02, bins=20)
    panels = [ax for ax in fig.axes if ax.get_title() in splits]
    assert [ax.get_title() for ax in panels] == ["calib", "test"]
    for ax in panels:
        assert list(ax.lines[0].get_xdata()) == pytest.approx(betas)


@pytest.mark.slow
def test_grid_shows_each_run_and_its_epochs_without_transport_warnings(tmp_path, capfd):
    """Through the notebook: the run's place in the grid and its epoch lines reach the log as
    they come, and the kernel talks over local sockets (no unencrypted-TCP warning)."""
    config = Config.from_dict(
        {"epochs": 1, "T": 4, "train_limit": 128, "eval_limit": 100, "batch_size": 64,
         "bins": 20, "progress": False, "out_dir": str(tmp_path), "profile": "g"}
    )  # fmt: skip
    lines: list[str] = []
    assert grid.run_grid([config], log=lines.append) == []
    assert lines[:2] == [
        "1 run(s): time left unknown (no recorded run times)",
        f"[1/1] {config.run_id}",
    ]
    assert any(line.startswith("epoch=1 train_loss=") for line in lines)
    assert "without encryption" not in capfd.readouterr().err


def test_eta_is_known_before_the_first_run_ends(tmp_path):
    """From the records' wall times; a run to be skipped costs nothing, one never recorded is
    named, and the runs measured here rescale the rest."""
    configs = [Config.from_dict({"seed": s, "out_dir": str(tmp_path)}) for s in range(4)]
    for config, seconds in zip(configs[:3], (120.0, 60.0, 240.0), strict=True):
        write_json(config.run_dir / "provenance.json", {"wall_seconds": seconds})
    (configs[2].run_dir / "model.pt").write_bytes(b"weights")
    mark_done(configs[2].run_dir)  # finished with weights: skipped
    eta = grid.Eta(configs, force=False)
    assert eta.expected == [120.0, 60.0, 0.0, None]
    assert eta.left(0) == "~3 min left (from recorded run times) + 1 run(s) never recorded"
    eta.finished(0, 240.0)  # this machine takes twice as long as the record
    assert eta.left(1) == "~2 min left (from recorded run times) + 1 run(s) never recorded"
    assert grid.Eta(configs, force=True).expected[2] == 240.0  # --force: it runs again
    assert grid.Eta(configs[3:], force=False).left(0).startswith("time left unknown")


def test_grid_announces_the_expected_time_before_running(tmp_path, monkeypatch):
    from snnlib import experiment

    configs = [Config.from_dict({"seed": s, "out_dir": str(tmp_path)}) for s in (0, 1)]
    for config in configs:
        write_json(config.run_dir / "provenance.json", {"wall_seconds": 30.0})
    lines = []
    monkeypatch.setattr(experiment, "run", lambda config, **_: lines.append("ran"))
    grid.run_grid(configs, use_notebook=False, log=lines.append)
    assert lines[0] == "2 run(s): ~60 s left (from recorded run times)"
