"""Figures from run records only: accuracy against timestep, the trade-off of each stopping
rule, the exit distributions and the confidence map of the Top-K calibration.

Lines are means over seeds with ± 1 sd bands; one colour per RCS weight α
(:func:`alpha_colours`) is shared by every figure. Figures of smoke runs say so across the
figure (:func:`label_figure`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from snnlib import cutoff, metrics
from snnlib.pipeline.records import load_outputs
from snnlib.study.tables import is_smoke, tidy

SMOKE_LABEL = "SMOKE RUN: a pipeline check, not a result"


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


def label_figure(fig: plt.Figure) -> plt.Figure:
    """``fig`` with :data:`SMOKE_LABEL` written across it."""
    fig.text(0.5, 0.5, SMOKE_LABEL, ha="center", va="center", rotation=20, fontsize=16,
             color="red", alpha=0.35, transform=fig.transFigure)  # fmt: skip
    return fig


def save_labelled(fig: plt.Figure, path_stem: Path, smoke: bool) -> list[Path]:
    """:func:`save`, with the smoke label on a figure of ``smoke`` runs; the files written."""
    save(label_figure(fig) if smoke else fig, path_stem)
    return [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]


def write_figures(runs: list[dict], out_dir: Path) -> list[Path]:
    """Accuracy against timestep, trade-off and exits of every (dataset, method) under
    ``out_dir / "figures"``; returns the files written."""
    written: list[Path] = []
    smoke = is_smoke(runs)
    for dataset, method in sorted({(r["config"]["dataset"], r["config"]["method"]) for r in runs}):
        for name, fn in (
            ("accuracy_vs_timestep", accuracy_vs_timestep),
            ("tradeoff", tradeoff),
            ("exits", exit_distributions),
        ):
            stem = out_dir / "figures" / f"{name}_{dataset}_{method}"
            written += save_labelled(fn(runs, dataset, method), stem, smoke)
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
