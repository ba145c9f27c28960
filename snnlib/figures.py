"""Figures and tables from run records only (``results/<profile>/runs/*``).

Nothing here trains or evaluates a network: every number comes from a finished run's
``config.json``, ``per_timestep.csv``, ``cutoff.csv``, ``metrics.json`` and ``outputs.npz``.
Seeds are aggregated as mean and standard deviation (bands in the figures); the ``seeds``
column counts the runs aggregated.

A named profile is a closed set: given the configs its YAML declares
(:func:`snnlib.grid.expand`), only those runs are aggregated, and declared runs that are not
finished and finished runs that are not declared are reported (:func:`select_runs`). Runs on a
partial copy of their dataset (``partial: true``) appear as ``<dataset> (partial)``; the tables
and figures of smoke runs are marked SMOKE (:mod:`snnlib.smoke`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from snnlib import cutoff, metrics
from snnlib.atomic import atomic_write
from snnlib.catalog import dataset_info
from snnlib.records import finished_runs, load_outputs, load_run, refused, write_csv
from snnlib.smoke import is_smoke, label_figure, label_table

GROUP = ["dataset", "method", "arch", "T", "alpha"]
PARTIAL = " (partial)"  # after the dataset's name in tables, for runs on a partial copy

# The paper's headline claims (docs/method.md §3: abstract, v4 and Frontiers).
CLAIMS = (
    ("cifar10", "fewer timesteps (T_max / avg) with Top-K", 1.76, 2.76),
    ("cifar10-dvs", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
    ("ncaltech101", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
    ("dvs128-gesture", "fewer timesteps (T_max / avg) with Top-K", 1.64, 1.95),
)


def load_runs(profile_dir: Path) -> list[dict]:
    """Every finished run of a profile, as returned by :func:`snnlib.records.load_run`."""
    return [load_run(p) for p in finished_runs(profile_dir)]


@dataclass(frozen=True)
class Coverage:
    """Which runs a profile declares, which of them are missing, which others are present,
    and which finished records are left out because their parts disagree or cannot be read."""

    declared: tuple[str, ...]
    missing: tuple[str, ...]  # declared, not finished
    undeclared: tuple[str, ...]  # finished, not declared: left out of every table and figure
    refused: tuple[str, ...] = ()  # "run_id: why", never drawn (snnlib.records.refused)

    def report(self) -> list[str]:
        """One line per problem (none when the records match the declaration)."""
        lines = [f"declared but not finished: {r}" for r in self.missing]
        lines += [f"finished but not declared (left out): {r}" for r in self.undeclared]
        return lines + [f"record left out, its parts disagree: {r}" for r in self.refused]


def select_runs(profile_dir: Path, declared: Sequence | None = None) -> tuple[list[dict], Coverage]:
    """The finished runs of a profile to aggregate, and how they cover ``declared``.

    ``declared``: the configs the profile's YAML declares (:func:`snnlib.grid.expand`); only
    their runs are returned. ``None`` (a scratch profile, no YAML) takes every finished run.
    A record whose parts disagree is left out and named (``Coverage.refused``).
    """
    present = {p.name: p for p in finished_runs(profile_dir)}
    names = tuple(present) if declared is None else tuple(dict.fromkeys(c.run_id for c in declared))
    wanted = set(names)
    bad = refused(p for n, p in present.items() if n in wanted)
    coverage = Coverage(
        names,
        tuple(n for n in names if n not in present),
        tuple(n for n in present if n not in wanted),
        tuple(f"{n}: {why}" for n, why in bad.items()),
    )
    present = {n: p for n, p in present.items() if n not in bad}
    # in folder order, as without a declaration: the float sums of the tables keep their order
    return [load_run(present[n]) for n in present if n in wanted], coverage


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
    :func:`snnlib.report.ledger_claims`) go last."""
    rows = []
    base = table["dataset"].str.removesuffix(PARTIAL) if len(table) else None
    for dataset, claim, low, high in CLAIMS:
        sel = table[base == dataset] if len(table) else table
        if len(sel) == 0:
            rows.append(
                {
                    "dataset": dataset,
                    "claim": claim,
                    "paper": f"{low}-{high}x",
                    "measured": "not run",
                    "scale": profile,
                }
            )
            continue
        for _, r in sel.iterrows():
            rows.append(
                {
                    "dataset": dataset,
                    "claim": claim,
                    "paper": f"{low}-{high}x",
                    "measured": f"{r['topk_speedup_mean']:.2f}x (acc delta "
                    f"{100 * r['topk_acc_delta_mean']:+.2f} pt), "
                    f"{r['method']}/{r['arch']} alpha={r['alpha']:g}"
                    + (" on a partial copy" if r["dataset"].endswith(PARTIAL) else ""),
                    "scale": profile,
                }
            )
    for _, r in table.iterrows() if len(table) else []:
        name = r["dataset"].removesuffix(PARTIAL)
        if name in {c[0] for c in CLAIMS}:
            continue
        kind = "embedded" if dataset_info(name).embedded else "recorded"
        rows.append(
            {
                "dataset": r["dataset"],
                "claim": f"not a paper dataset ({kind} data)",
                "paper": "-",
                "measured": f"{r['topk_speedup_mean']:.2f}x at "
                f"{100 * r['topk_acc_delta_mean']:+.2f} pt, {r['method']} "
                f"alpha={r['alpha']:g}",
                "scale": profile,
            }
        )
    return pd.DataFrame([*rows, *claims])


def write_table(frame: pd.DataFrame, path_stem: Path) -> None:
    """``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex``, each written atomically."""
    write_csv(path_stem.with_suffix(".csv"), frame)
    atomic_write(path_stem.with_suffix(".md"), (frame.to_markdown(index=False) + "\n").encode())
    atomic_write(path_stem.with_suffix(".tex"), frame.to_latex(index=False).encode())


def save(fig: plt.Figure, path_stem: Path) -> None:
    """``<stem>.png`` and ``<stem>.svg``; the SVG without a date and with fixed element ids, so
    a figure redrawn from unchanged records is an unchanged file."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_stem.with_suffix(".png"), dpi=150, bbox_inches="tight")
    with plt.rc_context({"svg.hashsalt": "snnlib"}):
        fig.savefig(path_stem.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def alpha_colours(alphas) -> dict[float, tuple]:
    """One colour per RCS weight α, shared by every figure's lines, bands and markers."""
    levels = sorted(set(alphas))
    return dict(zip(levels, sns.color_palette("viridis", len(levels)), strict=True))


def _seed_note(runs: list[dict]) -> str:
    """What a band is: the seeds behind each line (their number may differ between lines)."""
    counts = pd.Series([r["config"]["alpha"] for r in runs]).value_counts()
    n = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return f"lines: mean over {n} seeds; bands: ± 1 sd"


def accuracy_vs_timestep(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Accuracy per timestep, one line per alpha (seeds as bands), Top-K points marked."""
    sel = [r for r in runs if r["config"]["dataset"] == dataset and r["config"]["method"] == method]
    curves = tidy(sel, "per_timestep")
    colours = alpha_colours(curves["alpha"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sns.lineplot(
        curves,
        x="timestep",
        y="accuracy",
        hue="alpha",
        errorbar="sd",
        ax=ax,
        palette=colours,
        marker="o",
    )
    points = pd.DataFrame(
        [
            {
                "alpha": r["config"]["alpha"],
                "avg_timestep": r["metrics"]["topk_avg_timestep"],
                "accuracy": r["metrics"]["topk_accuracy"],
            }
            for r in sel
        ]
    )
    mean = points.groupby("alpha", as_index=False).mean()
    ax.scatter(
        mean["avg_timestep"],
        mean["accuracy"],
        marker="*",
        s=180,
        c=[colours[a] for a in mean["alpha"]],
        edgecolors="black",
        linewidths=0.6,
        zorder=5,
        label="Top-K at the chosen ε\n(x: average exit timestep)",
    )
    ax.set(title=f"{dataset} / {method}", xlabel="timestep t", ylabel="test accuracy")
    ax.legend(title="RCS weight α", fontsize=8, title_fontsize=8)
    ax.annotate(_seed_note(sel), (0, -0.2), xycoords="axes fraction", fontsize=7, va="top")
    return fig


def tradeoff(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Accuracy vs average timestep for every stopping rule (seed means), one panel per α.

    The y axis starts below the lowest point after the first step: a point at t = 1 (near
    chance for a converted network) would otherwise squash every rule into one cluster; it is
    drawn at the bottom edge, clipped, and the note under the figure says so.
    """
    sel = [r for r in runs if r["config"]["dataset"] == dataset and r["config"]["method"] == method]
    table = tidy(sel, "cutoff")
    mean = table.groupby(["alpha", "policy", "parameter"], as_index=False, dropna=False)[
        ["accuracy", "avg_timestep"]
    ].mean()
    grid = sns.relplot(
        mean,
        x="avg_timestep",
        y="accuracy",
        hue="policy",
        col="alpha",
        kind="line",
        marker="o",
        height=3.2,
        aspect=1.2,
        sort=True,
    )
    later = mean.loc[mean["avg_timestep"] > 1.5, "accuracy"]
    low = later.min() if len(later) else mean["accuracy"].min()
    bottom = max(0.0, low - 0.1 * (mean["accuracy"].max() - low) - 0.005)
    grid.set(ylim=(bottom, None))
    grid.set_axis_labels("average exit timestep", "test accuracy")
    grid.set_titles("α = {col_name}")
    grid.legend.set_title("stopping rule")
    note = _seed_note(sel).split(";")[0]
    if (mean["accuracy"] < bottom).any():
        note += f"; points below {bottom:.3f} (first steps, near chance) are clipped"
    grid.figure.suptitle(f"{dataset} / {method}: accuracy vs average timestep", y=1.03)
    grid.figure.text(0.01, -0.04, note, fontsize=7)
    return grid.figure


def exit_distributions(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Histograms of Top-K exit timesteps and of OCT (all seeds pooled), per alpha."""
    rows = []
    for r in runs:
        c = r["config"]
        if c["dataset"] != dataset or c["method"] != method:
            continue
        arrays = load_outputs(r["run_dir"])
        test, labels = arrays["test_outputs"], arrays["test_labels"]
        steps = cutoff.topk_exit(test, np.asarray(r["metrics"]["topk_betas"]))
        octs = metrics.oct(test, labels)
        rows += [{"alpha": c["alpha"], "kind": "Top-K exit", "timestep": int(s)} for s in steps]
        rows += [{"alpha": c["alpha"], "kind": "OCT", "timestep": int(s)} for s in octs]
    frame = pd.DataFrame(rows)
    t_max = int(frame["timestep"].max())
    grid = sns.displot(
        frame,
        x="timestep",
        hue="alpha",
        col="kind",
        discrete=True,
        multiple="dodge",
        stat="probability",
        common_norm=False,
        height=3,
        aspect=1.3,
        palette=alpha_colours(frame["alpha"]),
        shrink=0.8,
    )
    grid.set(xticks=range(1, t_max + 1))
    grid.set_axis_labels("timestep", "fraction of test samples")
    grid.set_titles("{col_name}")
    grid.legend.set_title("RCS weight α")
    grid.figure.suptitle(f"{dataset} / {method}", y=1.03)
    return grid.figure


def make_all(
    profile_dir: Path,
    out_dir: Path | None = None,
    declared: Sequence | None = None,
    log=print,
    claims: Sequence[dict] = (),
) -> list[Path]:
    """Write every figure and table of a profile; return the files written.

    ``declared``: the profile's configs (see :func:`select_runs`); what is missing or not
    declared is logged, one line each. ``claims``: more ledger rows (see :func:`ledger`).
    """
    profile_dir = Path(profile_dir)
    out_dir = Path(out_dir) if out_dir is not None else profile_dir
    runs, coverage = select_runs(profile_dir, declared)
    for line in coverage.report():
        log(f"[figures] {line}")
    if not runs:
        raise ValueError(f"no finished runs under {profile_dir / 'runs'}")
    written: list[Path] = []
    table = summary_table(runs)
    smoke = is_smoke(runs)  # then every table and figure says so
    for stem, frame in (
        ("summary", table),
        ("summary_pretty", pretty(table)),
        ("ledger", ledger(table, profile_dir.name, claims)),
    ):
        write_table(label_table(frame) if smoke else frame, out_dir / "tables" / stem)
        written += [out_dir / "tables" / f"{stem}.{e}" for e in ("csv", "md", "tex")]
    pairs = sorted({(r["config"]["dataset"], r["config"]["method"]) for r in runs})
    for dataset, method in pairs:
        for name, fn in (
            ("accuracy_vs_timestep", accuracy_vs_timestep),
            ("tradeoff", tradeoff),
            ("exits", exit_distributions),
        ):
            stem = out_dir / "figures" / f"{name}_{dataset}_{method}"
            fig = fn(runs, dataset, method)
            save(label_figure(fig) if smoke else fig, stem)
            written += [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    return written


def confidence_map(splits: dict[str, tuple], betas, epsilon: float, bins: int = 100) -> plt.Figure:
    """The confidence rate C(t, β) (docs/method.md §1.7.1, step 5) of each split, one shared
    colour scale, with the chosen per-timestep thresholds β_t drawn on top.

    ``splits`` maps a title to ``(cum_outputs [T, N, K], labels [N])``.
    """
    maps = {name: cutoff.confidence_rate(x, y, bins) for name, (x, y) in splits.items()}
    low = min(float(np.nanmin(c)) for c, _ in maps.values())
    betas = np.asarray(betas)
    steps = np.arange(1, len(betas) + 1)
    fig, axes = plt.subplots(1, len(maps), figsize=(6 * len(maps), 3.8), sharey=True, squeeze=False)
    for ax, (name, (c, grid)) in zip(axes[0], maps.items(), strict=True):
        mesh = ax.pcolormesh(grid, steps, c, shading="nearest", vmin=low, vmax=1)
        ax.plot(betas, steps, "o-", c="crimson", label=f"β_t (ε = {epsilon:g})")
        ax.set(title=name, xlabel="β (gap threshold)", yticks=steps)
    axes[0][0].set(ylabel="timestep t")
    axes[0][0].legend()
    fig.colorbar(mesh, ax=axes[0].tolist(), label="C(t, β)")
    return fig
