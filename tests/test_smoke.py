"""Smoke mode, the synthetic stand-ins, and one command per run for job arrays.

The slow test runs the paper profile's whole smoke grid on stand-ins, end to end (every run,
its record, the figures and tables): what CI runs of the paper profile on a CPU.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from record_fixtures import fabricate

from snnlib import data, grid
from snnlib.__main__ import main
from snnlib.catalog import dataset_info
from snnlib.config import Config, ConfigError
from snnlib.data.fingerprint import data_fingerprint
from snnlib.data.standins import STANDINS, write_cifar, write_standins
from snnlib.pipeline import smoke
from snnlib.pipeline.records import finished_runs, load_run
from snnlib.study import report

REPO = Path(__file__).resolve().parents[1]
PAPER, QUICK = REPO / "configs" / "paper.yaml", REPO / "configs" / "quick.yaml"


# ---- the smoke config ---------------------------------------------------------------------------
def test_smoke_config_keeps_what_is_run_and_shortens_how_long():
    real = grid.expand(PAPER)
    runs = [smoke.smoke_config(c) for c in real]
    kept = ("dataset", "method", "arch", "T", "L", "alpha", "lr", "calibration", "seed")
    for config, run in zip(real, runs, strict=True):
        assert {k: getattr(run, k) for k in kept} == {k: getattr(config, k) for k in kept}
        assert (run.epochs, run.smoke, run.partial, run.profile) == (1, True, True, "paper-smoke")
        assert run.batch_size <= smoke.SMOKE_BATCH and run.eval_limit == run.eval_batch_size
        assert run.train_limit == smoke.TRAIN_BATCHES * run.batch_size
        assert run.to_dict()["smoke"] is True and "smoke" not in config.to_dict()
    assert len({r.run_id for r in runs}) == len(runs)
    assert not {r.run_id for r in runs} & {c.run_id for c in real}


def test_smoke_refuses_the_overrides_it_sets():
    with pytest.raises(ConfigError, match=r"--smoke sets epochs.*drop the override\(s\) epochs=5"):
        smoke.check_overrides({"epochs": 5, "lr": 0.01})
    smoke.check_overrides({"lr": 0.01, "batch_size": 2})


def test_grid_errors_are_named_before_any_work(capsys):
    assert main(["grid", str(PAPER), "--smoke", "epochs=3"]) == 2
    assert main(["grid", str(PAPER), "--only", "no-such-run"]) == 2
    assert main(["grid", str(PAPER), "--gpus-per-run", "2"]) == 2
    err = capsys.readouterr().err
    assert "drop the override(s) epochs=3" in err
    assert "--only 'no-such-run' matches none of the 41 run ids" in err
    assert "--gpus-per-run 2 is for --print-commands" in err
    with pytest.raises(SystemExit) as exit_:
        main(["grid", str(PAPER), "--print-commands", "--gpus-per-run", "0"])
    assert exit_.value.code == 2
    assert "--gpus-per-run: expected a whole number >= 1, got '0'" in capsys.readouterr().err


# ---- stand-ins ----------------------------------------------------------------------------------
def test_standins_load_through_the_real_loaders_with_every_class(tmp_path):
    root = write_standins(tmp_path / "p-smoke" / "standins", sorted(STANDINS))
    assert sorted(p.name for p in root.glob("*.manifest.json")) == sorted(
        f"{name}.manifest.json" for name in STANDINS
    )
    for name in STANDINS:
        info = dataset_info(name)
        where = {"data_root": str(root), "partial": True, "smoke": True}
        config = Config(dataset=name, arch="mnist-mlp", **where)
        fingerprint = data_fingerprint(config)
        assert fingerprint["standin"] is True
        if info.kind == "event":
            assert fingerprint["classes"] == info.num_classes
        sizes = {s: len(data.get_dataset(name, s, root=root, cache_dir=False)) for s in data.SPLITS}
        assert min(sizes.values()) >= smoke.SMOKE_BATCH, (name, sizes)
    listing = sorted(p.name for p in root.iterdir())
    write_standins(root, ["cifar10"])  # already there: kept as it was
    assert sorted(p.name for p in root.iterdir()) == listing


def test_cifar_md5_is_checked_against_the_suites_own_standins(tmp_path):
    write_cifar(tmp_path, "cifar10", n_per_batch=20)  # the stand-ins' bytes, in a data folder
    with pytest.raises(data.CorruptSampleError, match="MD5"):
        data.get_dataset("cifar10", "test", root=tmp_path)
    root = write_standins(tmp_path / "p-smoke" / "standins", ["cifar10"])
    assert len(data.get_dataset("cifar10", "test", root=root)) == 20


def test_standins_only_for_missing_datasets(tmp_path):
    where = {"out_dir": str(tmp_path), "data_root": str(tmp_path)}
    runs = [
        smoke.smoke_config(Config(dataset=d, arch=a, **where))
        for d, a in (("cifar10", "vgg16"), ("mnist5k", "mnist-cnn"))
    ]
    cifar, digits = smoke.with_data(runs, log=lambda _: None)
    assert cifar.data_root == str(tmp_path / "scratch-smoke" / "standins") and cifar.smoke
    assert digits == runs[1]  # embedded: nothing to stand in for
    assert cifar.run_id == runs[0].run_id  # the data root is not part of the identity
    present = smoke.with_data([cifar], log=lambda _: None)  # stand-ins count as present
    assert present == [cifar]


@pytest.mark.slow  # draws figures
def test_smoke_figures_and_tables_say_smoke(tmp_path):
    config = Config(out_dir=str(tmp_path), profile="p-smoke", smoke=True, bins=20)
    fabricate(config, np.random.default_rng(0))
    written, _ = report.write_all(tmp_path / "p-smoke")
    summary = (tmp_path / "p-smoke" / "tables" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("smoke,") and summary[1].startswith("True,")
    svg = next(p for p in written if p.suffix == ".svg").read_text()
    assert "SMOKE" in svg


# ---- one command per run ------------------------------------------------------------------------
def _commands(capsys, *args: str) -> list[str]:
    assert main(["grid", *args, "--print-commands"]) == 0
    return capsys.readouterr().out.splitlines()


def test_print_commands_one_parseable_line_per_run(capsys, tmp_path):
    real = grid.expand(PAPER)
    lines = _commands(capsys, str(PAPER))
    assert len(lines) == len(real) == 41
    for line, config in zip(lines, real, strict=True):
        words = shlex.split(line)
        assert words[:2] == ["cd", str(REPO)] and words[2] == "&&"
        assert words[3:7] == [sys.executable, "-m", "snnlib", "grid"]
        assert words[words.index("--only") + 1] == config.run_id
    smoked = _commands(capsys, str(PAPER), "--smoke", "--only", "cifar10-dvs", "--data-root",
                       str(tmp_path), "--gpus-per-run", "2", "lr=0.05")  # fmt: skip
    assert len(smoked) == 5  # the cifar10-dvs runs
    words = shlex.split(smoked[0])
    assert "torch.distributed.run" in words and "--nproc_per_node=2" in words
    assert {"--smoke", "--no-notebook", "lr=0.05"} <= set(words)
    assert words[words.index("--data-root") + 1] == str(tmp_path)
    first = next(c for c in grid.expand(PAPER, {"lr": 0.05}) if c.dataset == "cifar10-dvs")
    assert words[words.index("--only") + 1] == smoke.smoke_config(first).run_id


@pytest.mark.slow
def test_a_printed_command_runs_exactly_its_run(capsys, tmp_path):
    tiny = [f"out_dir={tmp_path}", "train_limit=64", "eval_limit=64", "T=2",
            "bins=10", "progress=false", "--no-notebook"]  # fmt: skip
    lines = _commands(capsys, str(QUICK), "--only", "mnist5k-qcfs-*-a0-s1-*", *tiny)
    assert len(lines) == 1
    done = subprocess.run(["bash", "-c", lines[0]], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = finished_runs(tmp_path / "quick")
    config = json.loads((run_dir / "config.json").read_text())
    assert run_dir.name in lines[0] and (config["seed"], config["alpha"]) == (1, 0.0)


@pytest.mark.slow
def test_paper_smoke_grid_end_to_end(tmp_path):
    """Every run of the paper profile on stand-ins, then its figures and tables (the pipeline
    of ``./run_all.sh --profile paper --smoke``, calling snnlib directly, not the notebook)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "SNNLIB_CACHE": str(tmp_path / "cache")}
    out, empty = tmp_path / "results", tmp_path / "no-data"
    empty.mkdir()
    cli = [sys.executable, "-m", "snnlib"]
    for args in (
        ["grid", str(PAPER), "--smoke", "--no-notebook", "--data-root", str(empty),
         f"out_dir={out}", "progress=false"],
        ["figures", str(PAPER), "--smoke", f"out_dir={out}"],
    ):  # fmt: skip
        done = subprocess.run([*cli, *args], check=False, capture_output=True, text=True, env=env)
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert not (out / "paper").exists()
    runs = [load_run(p) for p in finished_runs(out / "paper-smoke")]
    assert len(runs) == 41
    for run in runs:
        config, outputs = run["config"], np.load(run["run_dir"] / "outputs.npz")
        assert config["smoke"] is True and run["provenance"]["data"]["standin"] is True
        K = dataset_info(config["dataset"]).num_classes
        assert outputs["test_outputs"].shape == (config["T"], config["eval_limit"], K)
    tables = out / "paper-smoke" / "tables"
    assert (tables / "summary.csv").read_text().startswith("smoke,")
    pairs = {(r["config"]["dataset"], r["config"]["method"]) for r in runs}
    converted = {d for d, m in pairs if m == "qcfs"}
    figures = out / "paper-smoke" / "figures"
    assert len(pairs) == 12 and converted == {"cifar10", "cifar100", "tiny-imagenet"}
    assert len(list(figures.glob("*.png"))) == 3 * len(pairs)
    # two random batches leave every ANN at chance: no convergence verdict, table or figure
    assert not list(figures.glob("convergence_*.png"))
    assert not (tables / "convergence.csv").exists()
