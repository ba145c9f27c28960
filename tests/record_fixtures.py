"""Fabricated run records: random outputs that become more correct over time, summarised and
written with the real record writers, for figure, table and notebook tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from snnlib.config import Config
from snnlib.pipeline import digests
from snnlib.pipeline.evaluate import summarise
from snnlib.pipeline.records import HISTORY_COLUMNS, mark_done, write_csv, write_json, write_npz


def fabricate(
    config: Config,
    rng: np.random.Generator,
    n_test: int = 200,
    n_calib: int = 100,
    sealed: bool = False,
) -> Path:
    """A finished record under ``config.run_dir``; returns that folder. ``sealed``: with random
    weights in ``model.pt`` and the parts' digests, as a run writes them (else as records were
    written before digests existed)."""
    T, K = config.T, 10

    def cumulative(n):
        labels = rng.integers(0, K, n)
        o = rng.normal(size=(T, n, K)).astype(np.float32)
        o[:, np.arange(n), labels] += np.linspace(0.2, 2.0, T, dtype=np.float32)[:, None]
        return o.cumsum(0), labels.astype(np.int64)

    test, test_labels = cumulative(n_test)
    calib, calib_labels = cumulative(n_calib)
    arrays = {
        "test_outputs": test,
        "test_labels": test_labels,
        "calib_outputs": calib,
        "calib_labels": calib_labels,
        "test_spikes": rng.random(n_test),
        "test_synops": rng.random(n_test),
    }
    if config.method == "qcfs":  # a converted run also records its ANN's test outputs
        arrays["ann_outputs"] = test[-1:] / T
    run_dir = config.run_dir
    per_t, table, summary = summarise(arrays, config.epsilons, config.bins, config.max_acc_drop)
    history = pd.DataFrame([[1, 1.0, 2.0, 0.5, 0.5, 0.1, 1.0]], columns=list(HISTORY_COLUMNS))
    write_json(run_dir / "config.json", config.to_dict())
    write_json(run_dir / "provenance.json", {"fabricated": True})
    write_npz(run_dir / "outputs.npz", **arrays)
    write_csv(run_dir / "history.csv", history)
    write_csv(run_dir / "per_timestep.csv", per_t)
    write_csv(run_dir / "cutoff.csv", table)
    write_json(run_dir / "metrics.json", summary)
    if sealed:
        weights = {"w": torch.from_numpy(rng.normal(size=4).astype(np.float32))}
        digests.seal(run_dir, weights, config.digest())
    mark_done(run_dir)
    return run_dir
