"""Figures from run records only: accuracy against timestep, the trade-off of each stopping
rule, the exit distributions and the confidence map of the Top-K calibration.

Lines are means over seeds with ± 1 sd bands; one colour per RCS weight α
(:func:`alpha_colours`) is shared by every figure. Figures of smoke runs say so across the
figure (:func:`label_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from snnlib import cutoff, metrics
from snnlib.methods import METHOD_TABLE
from snnlib.pipeline.records import load_outputs
from snnlib.study.tables import PARTIAL, is_smoke, tidy

SMOKE_LABEL = "SMOKE RUN: a pipeline check, not a result"
PERCENT = 100  # accuracies are drawn in %, differences of accuracies in points (pt)
MAX_TICKS = 10  # timestep axes label at most this many steps (plus t = 1)
TICK_STEPS = (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500)
# What a reader of the paper calls each dataset, method and stopping rule (unknown: as named).
DATASET_NAMES = {
    "mnist5k": "MNIST-5k",
    "mnist5k-dvs": "MNIST-5k, emulated DVS",
    "nmnist": "N-MNIST",
    "nmnist-subset": "N-MNIST subset",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "tiny-imagenet": "Tiny-ImageNet",
    "cifar10-dvs": "CIFAR10-DVS",
    "ncaltech101": "N-Caltech101",
    "dvs128-gesture": "DVS128 Gesture",
}
METHOD_NAMES = {
    "qcfs": "QCFS conversion",
    "mean": "mean-CE direct training",
    "tet": "TET direct training",
    "tebn": "TEBN direct training",
}
POLICY_NAMES = {"topk": "Top-K", "confidence": "confidence", "entropy": "entropy",
                "fixed": "fixed T"}  # fmt: skip
ORACLE_LABEL = "oracle (exits at OCT; needs labels)"
OPERATING_LABEL = "Top-K operating point\n(ε chosen on calibration)"
# each seed picks its own ε, so the mean of their points can sit off the mean Top-K line
OPERATING_MEAN_LABEL = OPERATING_LABEL + "\nmean of each seed's own point"
ORACLE_Z = 10  # the oracle above every other mark of a trade-off panel
OFFSCALE = "▼"  # marks a point below the axis, drawn at its bottom edge


def dataset_name(dataset: str) -> str:
    """The display name of ``dataset`` (a table's `` (partial)`` suffix kept)."""
    base = dataset.removesuffix(PARTIAL)
    return DATASET_NAMES.get(base, base) + dataset[len(base) :]


def method_name(method: str) -> str:
    """The display name of ``method``."""
    return METHOD_NAMES.get(method, method)


def setting_title(runs: list[dict], what: str = "") -> str:
    """``"MNIST-5k, QCFS conversion (L = 8, T_max = 32)"`` for the runs of one dataset and
    method (``L`` for a converting method only), ``what`` after a colon."""
    c = runs[0]["config"]
    name = f"{dataset_name(c['dataset'])}, {method_name(c['method'])}"
    sizes = [("T_max", "T")]
    if METHOD_TABLE[c["method"]].converts:
        sizes.insert(0, ("L", "L"))
    shown = ", ".join(f"{label} = {_values(runs, key)}" for label, key in sizes)
    return f"{name}{': ' + what if what else ''} ({shown})"


def _values(runs: list[dict], key: str) -> str:
    return ", ".join(f"{v:g}" for v in sorted({r["config"][key] for r in runs}))


def timestep_ticks(t_max: int, most: int = MAX_TICKS) -> list[int]:
    """t = 1 and every ``step``-th timestep up to ``t_max``, ``step`` the smallest of
    :data:`TICK_STEPS` that keeps at most ``most`` of them (plus t = 1).

    >>> timestep_ticks(8), timestep_ticks(32)
    ([1, 2, 3, 4, 5, 6, 7, 8], [1, 4, 8, 12, 16, 20, 24, 28, 32])
    """
    need = math.ceil(t_max / most)
    step = next((s for s in TICK_STEPS if s >= need), need)
    return sorted({1, *range(step, t_max + 1, step)})


def _powers_of_two(t_max: int) -> list[int]:
    """1, 2, 4, ... up to ``t_max``, and ``t_max`` itself: the ticks of a log2 timestep axis."""
    return sorted({*(2**k for k in range(t_max.bit_length()) if 2**k <= t_max), t_max})


def mark_offscale(ax: plt.Axes, x, y, bottom: float, colour) -> None:
    """Draw the points of ``(x, y)`` below ``bottom`` as :data:`OFFSCALE` markers on the
    bottom edge in ``colour``."""
    low = np.asarray(y) < bottom
    if low.any():
        ax.scatter(np.asarray(x)[low], np.full(int(low.sum()), bottom), marker="v", s=28,
                   color=colour, edgecolors="black", linewidths=0.4, clip_on=False,
                   zorder=4)  # fmt: skip


def _percent(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    return frame.assign(**{c: PERCENT * frame[c] for c in columns})


def _select(runs: list[dict], dataset: str, method: str) -> list[dict]:
    return [r for r in runs if (r["config"]["dataset"], r["config"]["method"]) == (dataset, method)]


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


def operating_points(runs: list[dict]) -> pd.DataFrame:
    """Per α: the mean over seeds of each run's chosen Top-K operating point (``metrics.json``:
    ``topk_avg_timestep``, ``topk_accuracy`` in %)."""
    points = pd.DataFrame(
        [
            {
                "alpha": r["config"]["alpha"],
                "avg_timestep": r["metrics"]["topk_avg_timestep"],
                "accuracy": PERCENT * r["metrics"]["topk_accuracy"],
            }
            for r in runs
        ]
    )
    return points.groupby("alpha", as_index=False).mean()


def accuracy_vs_timestep(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Accuracy per timestep, one line per alpha (seeds as bands), Top-K points marked."""
    sel = _select(runs, dataset, method)
    curves = _percent(tidy(sel, "per_timestep"), "accuracy")
    colours = alpha_colours(curves["alpha"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(
        curves,
        x="timestep",
        y="accuracy",
        hue="alpha",
        errorbar="sd",
        ax=ax,
        palette=colours,
        marker="o",
        markersize=4,
    )
    mean = operating_points(sel)
    ax.scatter(
        mean["avg_timestep"],
        mean["accuracy"],
        marker="*",
        s=180,
        c=[colours[a] for a in mean["alpha"]],
        edgecolors="black",
        linewidths=0.6,
        zorder=5,
        label=OPERATING_LABEL + "\nx: average exit timestep",
        gid="operating-point",
    )
    ax.set(title=setting_title(sel), xlabel="timestep t", ylabel="test accuracy (%)",
           xticks=timestep_ticks(int(curves["timestep"].max())))  # fmt: skip
    ax.set_ylim(top=min(ax.get_ylim()[1], 101))  # a ± 1 sd band may pass 100 %; no accuracy can
    ax.title.set_fontsize(10)
    ax.legend(title="RCS weight α", fontsize=8, title_fontsize=8)
    ax.annotate(_seed_note(sel), (0, -0.2), xycoords="axes fraction", fontsize=7, va="top")
    return fig


def offscale_note(low: pd.DataFrame, bottom: float, which: str) -> str:
    """The note on the points ``low`` (column ``accuracy`` in %) below an axis that starts at
    ``bottom``, drawn on its edge by :func:`mark_offscale`: how many, ``which`` they are and
    the lowest ("" for none)."""
    if low.empty:
        return ""
    return (
        f"{OFFSCALE} on the bottom edge: {len(low)} point(s) below {bottom:.1f} % "
        f"({which}; lowest {low['accuracy'].min():.1f} %)"
    )


def _clipped_rules(low: pd.DataFrame) -> str:
    """``"fixed T at 1.0, Top-K at 1.1-1.3 average timesteps"`` for clipped trade-off points."""
    parts = []
    for policy, g in low.groupby("policy", sort=False):
        span = f"{g['avg_timestep'].min():.1f}"
        if g["avg_timestep"].max() - g["avg_timestep"].min() >= 0.05:
            span += f"-{g['avg_timestep'].max():.1f}"
        parts.append(f"{POLICY_NAMES.get(policy, policy)} at {span}")
    return ", ".join(parts) + " average timesteps"


def _accuracy_limits(part: pd.DataFrame, point: pd.DataFrame) -> tuple[float, float]:
    """The y range of one trade-off panel: from just below its lowest point after 1.5 average
    timesteps (all points where none is) to just above its highest point."""
    later = part.loc[part["avg_timestep"] > 1.5, "accuracy"]
    floor = later.min() if len(later) else part["accuracy"].min()
    top = max(part["accuracy"].max(), point["accuracy"].max())
    bottom = max(0.0, floor - 0.1 * (top - floor) - 0.5)
    return bottom, top + 0.06 * (top - bottom)


def tradeoff(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Accuracy vs average timestep (log2 axis: the early exits spread out beside a fixed T up
    to T_max) for every stopping rule (seed means), one panel per α, with the oracle on top
    and each α's Top-K operating point (:func:`operating_points`).

    Each panel's y axis starts just below its lowest point after 1.5 average timesteps: the
    points of the loosest thresholds and of a fixed T = 1 would otherwise squash every rule
    into one cluster (and one axis for every α would let a strong regulariser squash the
    others). Those points are drawn as :data:`OFFSCALE` on the bottom edge, and the note under
    the figure says, per α, which they are and how low they go.
    """
    sel = _select(runs, dataset, method)
    table = tidy(sel, "cutoff")
    mean = table.groupby(["alpha", "policy", "parameter"], as_index=False, dropna=False)[
        ["accuracy", "avg_timestep"]
    ].mean()
    mean = _percent(mean, "accuracy")
    order = [*POLICY_NAMES, *sorted(set(mean["policy"]) - set(POLICY_NAMES) - {"oracle"})]
    rules = [p for p in order if p in set(mean["policy"])]
    colours = dict(zip(rules, sns.color_palette("tab10", len(rules)), strict=True))
    points = operating_points(sel)
    alphas = sorted(mean["alpha"].unique())
    ticks = _powers_of_two(int(max(r["config"]["T"] for r in sel)))
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.8 * len(alphas), 3.4), squeeze=False)
    notes = [_seed_note(sel).split(";")[0]]
    for ax, alpha in zip(axes[0], alphas, strict=True):
        part, point = mean[mean["alpha"] == alpha], points[points["alpha"] == alpha]
        bottom, top = _accuracy_limits(part, point)
        for rule in rules:
            line = part[part["policy"] == rule].sort_values("avg_timestep")
            ax.plot(line["avg_timestep"], line["accuracy"], "o-", ms=3.5, lw=1.3, zorder=2,
                    color=colours[rule], label=POLICY_NAMES.get(rule, rule))  # fmt: skip
            mark_offscale(ax, line["avg_timestep"], line["accuracy"], bottom, colours[rule])
        ax.scatter(point["avg_timestep"], point["accuracy"], marker="D", s=110, facecolors="none",
                   edgecolors="black", linewidths=1.6, zorder=ORACLE_Z - 1,
                   label=OPERATING_MEAN_LABEL, gid="operating-point")  # fmt: skip
        oracle = part[part["policy"] == "oracle"]
        ax.scatter(oracle["avg_timestep"], oracle["accuracy"], marker="*", s=300, color="gold",
                   edgecolors="black", linewidths=0.8, zorder=ORACLE_Z, label=ORACLE_LABEL,
                   gid="oracle")  # fmt: skip
        ax.set(title=f"RCS weight α = {alpha:g}", xlabel="average exit timestep (log scale)",
               ylim=(bottom, top), xscale="log")  # fmt: skip
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.minorticks_off()
        low = part[part["accuracy"] < bottom]
        if len(low):
            notes.append(f"α = {alpha:g}: " + offscale_note(low, bottom, _clipped_rules(low)))
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), title="stopping rule", fontsize=8,
               title_fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))  # fmt: skip
    fig.suptitle(setting_title(sel, "accuracy against average exit timestep"), fontsize=11)
    fig.tight_layout()
    fig.text(0.01, -0.02, "\n".join(notes), fontsize=7, va="top")
    return fig


def exit_distributions(runs: list[dict], dataset: str, method: str) -> plt.Figure:
    """Histograms of Top-K exit timesteps and of OCT (all seeds pooled), per alpha."""
    sel = _select(runs, dataset, method)
    rows = []
    for r in sel:
        c = r["config"]
        arrays = load_outputs(r["run_dir"])
        test, labels = arrays["test_outputs"], arrays["test_labels"]
        steps = cutoff.topk_exit(test, np.asarray(r["metrics"]["topk_betas"]))
        octs = metrics.oct(test, labels)
        rows += [{"alpha": c["alpha"], "kind": "Top-K exit", "timestep": int(s)} for s in steps]
        rows += [{"alpha": c["alpha"], "kind": "OCT (correct from here on)", "timestep": int(s)}
                 for s in octs]  # fmt: skip
    frame = pd.DataFrame(rows)
    t_max = int(max(r["config"]["T"] for r in sel))
    grid = sns.displot(
        frame,
        x="timestep",
        hue="alpha",
        col="kind",
        discrete=True,
        multiple="dodge",
        stat="percent",
        common_norm=False,
        height=3,
        aspect=1.3,
        palette=alpha_colours(frame["alpha"]),
        shrink=0.8,
    )
    grid.set(xticks=timestep_ticks(t_max), xlim=(0.4, t_max + 0.6))
    grid.set_axis_labels("exit timestep t", "test samples (%)")
    grid.set_titles("{col_name}")
    grid.legend.set_title("RCS weight α")
    grid.figure.suptitle(setting_title(sel, "where samples exit"), y=1.03, fontsize=11)
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
