"""The paper's calibration of the Top-K cutoff against this suite's held-out one, on the same
trained networks (evaluation only; docs/method.md §1.7.1).

The paper calibrates the thresholds ``β`` on the training data passed through spike dropout
(``p = 0.3``); the suite's default calibrates on a held-out split. For each finished run with
its weights, :func:`compare` calibrates both ways at the run's ε rule (the largest ε whose
Top-K accuracy on the calibration outputs stays within ``max_acc_drop`` of their accuracy at
``T_max``) and applies each to the same test outputs. The dropout masks are drawn from a
generator seeded with the run's seed, so the comparison is reproducible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from snnlib import cutoff, metrics
from snnlib.config import CALIBRATION
from snnlib.experiment import load_snn, paper_calibration_data
from snnlib.pipeline import records
from snnlib.pipeline.evaluate import collect_outputs, operating_point
from snnlib.pipeline.network import forward_for
from snnlib.pipeline.records import select_runs
from snnlib.study.tables import GROUP, write_table


def _apply(config, calib_outputs, calib_labels, test, labels) -> dict:
    rules = cutoff.topk_rules(calib_outputs, calib_labels, config.epsilons, config.bins)
    eps, _, accuracy, avg = operating_point(
        rules, calib_outputs, calib_labels, test, labels, config.max_acc_drop
    )
    return {"epsilon": eps, "topk_accuracy": accuracy, "topk_avg_timestep": avg}


def compare(run_dir: Path | str, data_root: str | None = None) -> list[dict]:
    """One row per calibration of a finished run (with ``model.pt``): ε, Top-K test accuracy
    and average timestep, next to the accuracy at ``T_max``. ``data_root``: where the run's
    training data is (default: the record's, else the default data folder)."""
    config, snn = load_snn(run_dir)
    if data_root is not None:
        config = dataclasses.replace(config, data_root=data_root)
    arrays = records.load_outputs(run_dir)
    test, labels = arrays["test_outputs"], arrays["test_labels"]
    outputs = {"split": (arrays["calib_outputs"], arrays["calib_labels"])}
    net, batches = paper_calibration_data(config, snn)
    torch.manual_seed(config.seed)  # the dropout masks
    calib = collect_outputs(net, batches, forward_for(config, trained=False), torch.device("cpu"))
    outputs["train-dropout"] = (calib["outputs"], calib["labels"])
    keys = {k: config.to_dict()[k] for k in [*GROUP, "seed"]}
    acc_tmax = float(metrics.accuracy_per_timestep(test, labels)[-1])
    return [
        keys
        | {"calibration": name, "n_calib": len(outputs[name][1]), "accuracy_tmax": acc_tmax}
        | _apply(config, *outputs[name], test, labels)
        for name in CALIBRATION
    ]


def study_table(
    profile_dir: Path | str,
    declared: Sequence | None = None,
    log=print,
    progress: bool = False,
    data_root: str | None = None,
):
    """Mean and sd over seeds, per group and calibration, of every run with its weights among
    the runs ``declared`` (every finished run when ``None``;
    :func:`snnlib.pipeline.records.select_runs`)."""
    runs, coverage = select_runs(Path(profile_dir), declared)
    for line in coverage.report():
        log(f"[calibration] {line}")
    rows = []
    for run in tqdm(runs, desc="calibration", unit="run", disable=not progress):
        if not records.has_weights(run["run_dir"]):
            log(f"[calibration] {run['run_dir'].name}: no model.pt (rerun it to compare), skipped")
            continue
        rows += compare(run["run_dir"], data_root)
    if not rows:
        raise ValueError(f"no finished run with its weights under {Path(profile_dir) / 'runs'}")
    frame = pd.DataFrame(rows)
    values = ["n_calib", "epsilon", "accuracy_tmax", "topk_accuracy", "topk_avg_timestep"]
    agg = frame.groupby([*GROUP, "calibration"])[values].agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg["seeds"] = frame.groupby([*GROUP, "calibration"]).size()
    return agg.reset_index()


def write_study(
    profile_dir: Path | str,
    declared: Sequence | None = None,
    log=print,
    progress: bool = False,
    data_root: str | None = None,
):
    """``tables/calibration.{csv,md,tex}`` of a profile folder; returns the files written.
    ``data_root``: see :func:`compare`."""
    stem = Path(profile_dir) / "tables" / "calibration"
    write_table(study_table(profile_dir, declared, log, progress, data_root).round(4), stem)
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
