"""Tables from run records only: the summary over seeds, the ledger of claims, tidy tables.

Every number comes from a finished run's ``config.json``, ``per_timestep.csv``, ``cutoff.csv``
and ``metrics.json`` (:func:`snnlib.pipeline.records.load_run`). Seeds are aggregated as mean
and standard deviation; the ``seeds`` column counts the runs aggregated. Runs on a partial
copy of their dataset (``partial: true``) appear as ``<dataset> (partial)``; the tables of
smoke runs carry a ``smoke`` column (:func:`label_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from snnlib.catalog import dataset_info
from snnlib.pipeline.records import write_csv
from snnlib.tools.atomic import atomic_write

GROUP = ["dataset", "method", "arch", "T", "alpha"]
PARTIAL = " (partial)"  # after the dataset's name in tables, for runs on a partial copy

# The paper's headline claims (docs/method.md §3: abstract, v4 and Frontiers).
CLAIMS = (
    ("cifar10", "fewer timesteps (T_max / avg) with Top-K", 1.76, 2.76),
    ("cifar10-dvs", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
    ("ncaltech101", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
    ("dvs128-gesture", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
)


def dataset_label(run: dict) -> str:
    """The dataset's name, with `` (partial)`` for a run on a partial copy of it."""
    c, data = run["config"], run["provenance"].get("data") or {}
    partial = c.get("partial") or data.get("partial")
    return c["dataset"] + PARTIAL if partial else c["dataset"]


def _keys(run: dict) -> dict:
    c = run["config"]
    return (
        {k: c[k] for k in GROUP}
        | {"dataset": dataset_label(run)}
        | {"seed": c["seed"], "run_id": run["run_dir"].name}
    )


def tidy(runs: list[dict], part: str) -> pd.DataFrame:
    """Long table of one record part (``per_timestep`` or ``cutoff``) with the run's keys."""
    frames = [run[part].assign(**_keys(run)) for run in runs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary_table(runs: list[dict]) -> pd.DataFrame:
    """Per dataset/method/arch/T/alpha: mean and std over seeds of the headline numbers."""
    rows = []
    for run in runs:
        m = run["metrics"]
        rows.append(
            _keys(run)
            | {
                "ann_accuracy": m["ann_accuracy"],
                "accuracy_tmax": m["accuracy_tmax"],
                "best_accuracy": m["best_accuracy"],
                "best_t": m["best_t"],
                "topk_epsilon": m["topk_epsilon"],
                "topk_accuracy": m["topk_accuracy"],
                "topk_avg_timestep": m["topk_avg_timestep"],
                "topk_speedup": m["topk_speedup"],
                "topk_speedup_matched": m["topk_speedup_matched"],
                "topk_acc_delta": m["topk_acc_delta"],
                "oct_mean": m["oct_mean"],
                "synops_per_sample": m["synops_per_sample"],
            }
        )
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).drop(columns=["run_id"])
    values = [c for c in frame.columns if c not in [*GROUP, "seed"]]
    frame[values] = frame[values].astype(float)
    agg = frame.groupby(GROUP, dropna=False)[values].agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg["seeds"] = frame.groupby(GROUP, dropna=False).size()  # the runs aggregated
    return agg.reset_index()


def pretty(table: pd.DataFrame) -> pd.DataFrame:
    """``mean ± std`` strings for Markdown/LaTeX (the CSV keeps the numbers)."""
    out = table[[*GROUP, "seeds"]].copy()
    for col in [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]:
        mean, std = table[f"{col}_mean"], table[f"{col}_std"].fillna(0.0)
        out[col] = [
            "–" if np.isnan(m) else f"{m:.4g} ± {s:.2g}" for m, s in zip(mean, std, strict=True)
        ]
    return out


def ledger(table: pd.DataFrame, profile: str, claims: Sequence[dict] = ()) -> pd.DataFrame:
    """Each paper claim beside what this profile measured (``not run`` where not run); the rows
    of ``claims`` (same columns; the convergence and RCS claims of
    :func:`snnlib.study.report.ledger_claims`) go last."""

    def row(dataset: str, claim: str, paper: str, measured: str) -> dict:
        return {"dataset": dataset, "claim": claim, "paper": paper, "measured": measured,
                "scale": profile}  # fmt: skip

    rows = []
    base = table["dataset"].str.removesuffix(PARTIAL) if len(table) else None
    for dataset, claim, low, high in CLAIMS:
        sel = table[base == dataset] if len(table) else table
        paper = f"{low}-{high}x"
        if len(sel) == 0:
            rows.append(row(dataset, claim, paper, "not run"))
        for _, r in sel.iterrows():
            measured = (
                f"{r['topk_speedup_mean']:.2f}x (acc delta {100 * r['topk_acc_delta_mean']:+.2f} "
                f"pt), {r['method']}/{r['arch']} alpha={r['alpha']:g}"
                + (" on a partial copy" if r["dataset"].endswith(PARTIAL) else "")
            )
            rows.append(row(dataset, claim, paper, measured))
    for _, r in table.iterrows() if len(table) else []:
        name = r["dataset"].removesuffix(PARTIAL)
        if name in {c[0] for c in CLAIMS}:
            continue
        kind = "embedded" if dataset_info(name).embedded else "recorded"
        measured = (
            f"{r['topk_speedup_mean']:.2f}x at {100 * r['topk_acc_delta_mean']:+.2f} pt, "
            f"{r['method']} alpha={r['alpha']:g}"
        )
        rows.append(row(r["dataset"], f"not a paper dataset ({kind} data)", "-", measured))
    return pd.DataFrame([*rows, *claims])


def write_table(frame: pd.DataFrame, path_stem: Path) -> None:
    """``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex``, each written atomically."""
    write_csv(path_stem.with_suffix(".csv"), frame)
    atomic_write(path_stem.with_suffix(".md"), (frame.to_markdown(index=False) + "\n").encode())
    atomic_write(path_stem.with_suffix(".tex"), frame.to_latex(index=False).encode())


def is_smoke(runs: list[dict]) -> bool:
    """Whether any of the loaded run records is a smoke run (:mod:`snnlib.pipeline.smoke`)."""
    return any(run["config"].get("smoke") for run in runs)


def label_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a first column ``smoke`` (True in every row)."""
    return frame.assign(smoke=True)[["smoke", *frame.columns]]


def write_tables(
    runs: list[dict], out_dir: Path, profile: str, claims: Sequence[dict] = ()
) -> list[Path]:
    """``tables/summary``, ``summary_pretty`` and ``ledger`` (``.csv``, ``.md``, ``.tex``) under
    ``out_dir``; ``claims``: more ledger rows (see :func:`ledger`). Returns the files written."""
    table = summary_table(runs)
    smoke = is_smoke(runs)  # then every table says so
    written: list[Path] = []
    for stem, frame in (
        ("summary", table),
        ("summary_pretty", pretty(table)),
        ("ledger", ledger(table, profile, claims)),
    ):
        write_table(label_table(frame) if smoke else frame, out_dir / "tables" / stem)
        written += [out_dir / "tables" / f"{stem}.{e}" for e in ("csv", "md", "tex")]
    return written
