"""Does a converted SNN approach its ANN as T grows? (docs/method.md §1.3)

QCFS's defining property: the IF network's rate reproduces the QCFS ANN at ``T = L`` and
approaches it as ``T`` grows. For every finished run of a converting method this module reads
the test accuracy per timestep and the ANN's test accuracy from the record and checks two
criteria over ``t = L .. T_max``:

* **gap**: ``ANN accuracy − SNN accuracy at t = 4L`` (or at ``T_max`` when ``T_max < 4L``) is at
  most :data:`MAX_GAP`;
* **dip**: the SNN never falls more than :data:`MAX_DIP` below its running maximum
  (``max_{s <= t} acc(s) − acc(t)`` over ``t >= L``).

:func:`write_convergence` writes ``tables/convergence.{csv,md,tex}`` (one row per run) and one
figure per dataset: SNN accuracy against T (mean over seeds, ± 1 sd band) with the ANN's mean
accuracy as a dashed line of the same colour, one colour per RCS weight α.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from snnlib.catalog import dataset_info
from snnlib.methods import METHOD_TABLE
from snnlib.study.figures import (
    PERCENT,
    alpha_colours,
    dataset_name,
    mark_offscale,
    offscale_note,
    save_labelled,
    timestep_ticks,
)
from snnlib.study.tables import is_smoke, label_table, tidy, write_table

MAX_GAP = 0.005  # 0.5 point
MAX_DIP = 0.01  # 1 point


def check_run(run: dict) -> dict:
    """The convergence numbers of one run record (see the module docstring)."""
    config, acc = run["config"], run["per_timestep"]["accuracy"].to_numpy()
    L, t_max = config["L"], len(acc)
    t_gap = min(4 * L, t_max)
    ann = run["metrics"]["ann_accuracy"]
    after = np.arange(L - 1, t_max)  # 0-based indices of t = L .. T_max
    dip = float(np.max(np.maximum.accumulate(acc)[after] - acc[after])) if L <= t_max else 0.0
    gap = ann - float(acc[t_gap - 1])
    return {
        **{k: config[k] for k in ("dataset", "arch", "L", "alpha", "seed")},
        "T_max": t_max,
        "ann_accuracy": ann,
        "accuracy_L": float(acc[min(L, t_max) - 1]),
        "t_gap": t_gap,
        "accuracy_t_gap": float(acc[t_gap - 1]),
        "gap": gap,
        "dip": dip,
        "converges": bool(gap <= MAX_GAP + 1e-12 and dip <= MAX_DIP + 1e-12),
    }


def at_chance(run: dict) -> bool:
    """Whether a run's ANN is no better than twice chance (``2 / K``; e.g. a smoke run):
    there is nothing for its SNN to converge to, so it gets no verdict."""
    return run["metrics"]["ann_accuracy"] <= 2 / dataset_info(run["config"]["dataset"]).num_classes


def converting(runs: list[dict]) -> list[dict]:
    """The runs of a converting method."""
    return [r for r in runs if METHOD_TABLE[r["config"]["method"]].converts]


def converted(runs: list[dict]) -> list[dict]:
    """The runs this module judges: those of a converting method whose ANN learned
    (not :func:`at_chance`)."""
    return [r for r in converting(runs) if not at_chance(r)]


def ledger_rows(runs: list[dict], profile: str) -> list[dict]:
    """The ledger's convergence claim (QCFS: the converted SNN approaches its ANN as T grows),
    one row per converted dataset: how many runs meet both criteria, and the worst gap and dip."""
    runs = converted(runs)
    if not runs:
        return []
    table = pd.DataFrame([check_run(r) for r in runs])
    claim = (
        f"converted SNN within {100 * MAX_GAP:g} pt of its ANN at T = 4L, "
        f"no fall > {100 * MAX_DIP:g} pt after T = L (QCFS)"
    )
    rows = []
    for dataset, sel in table.groupby("dataset", sort=True):
        worst = (
            f"worst gap {100 * sel['gap'].max():+.1f} pt, worst dip {100 * sel['dip'].max():.1f} pt"
        )
        measured = f"{int(sel['converges'].sum())} of {len(sel)} runs ({worst})"
        rows.append(
            {
                "dataset": dataset,
                "claim": claim,
                "paper": "yes (QCFS, Bu et al. 2022)",
                "measured": measured,
                "scale": profile,
            }
        )
    return rows


def figure(runs: list[dict], dataset: str) -> plt.Figure:
    """SNN test accuracy (%) against T with each α's ANN accuracy as a dashed line.

    The y axis shows ``t >= L``, where the criteria apply; seed means of earlier steps below
    it are drawn on the bottom edge (:func:`snnlib.study.figures.mark_offscale`) and the note
    under the figure says which steps and how low."""
    sel = [r for r in runs if r["config"]["dataset"] == dataset]
    curves = tidy(sel, "per_timestep")
    curves["accuracy"] *= PERCENT
    colours = alpha_colours(curves["alpha"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(curves, x="timestep", y="accuracy", hue="alpha", errorbar="sd", ax=ax,
                 palette=colours, marker="o", markersize=3)  # fmt: skip
    ann = pd.DataFrame([{"alpha": r["config"]["alpha"], "ann": r["metrics"]["ann_accuracy"]}
                        for r in sel]).groupby("alpha")["ann"].mean() * PERCENT  # fmt: skip
    for alpha, value in ann.items():
        ax.axhline(value, ls="--", lw=1, color=colours[alpha])
    L = sel[0]["config"]["L"]
    ax.axvline(L, ls=":", lw=1, color="grey")
    bottom = max(0.0, float(curves.loc[curves["timestep"] >= L, "accuracy"].min()) - 2)
    ax.set_ylim(bottom, min(100.0, float(ann.max()) + 1))
    means = curves.groupby(["alpha", "timestep"], as_index=False)["accuracy"].mean()
    for alpha, line in means.groupby("alpha"):
        mark_offscale(ax, line["timestep"], line["accuracy"], bottom, colours[alpha])
    t_max = int(curves["timestep"].max())
    ax.set(title=f"{dataset_name(dataset)}: converted SNN against its ANN (L = {L}, "
           f"T_max = {t_max})", xlabel="timesteps T", ylabel="test accuracy (%)",
           xticks=timestep_ticks(t_max))  # fmt: skip
    ax.title.set_fontsize(10)
    ax.legend(title="RCS weight α (dashed: ANN)", fontsize=8, title_fontsize=8)
    n = pd.Series([r["config"]["alpha"] for r in sel]).value_counts().min()
    note = f"lines: mean over {n}+ seeds; bands: ± 1 sd; dotted: T = L"
    low = means[means["accuracy"] < bottom]
    if len(low):
        steps = f"t = {low['timestep'].min()}-{low['timestep'].max()}"
        note += "\n" + offscale_note(low, bottom, f"seed means at {steps}")
    ax.annotate(note, (0, -0.2), xycoords="axes fraction", fontsize=7, va="top")
    return fig


def write_convergence(runs: list[dict], out_dir: Path, log=print) -> list[Path]:
    """The convergence table and figures of the converted ``runs`` (loaded records) under
    ``out_dir``; no converted run: nothing."""
    chance = [r for r in converting(runs) if at_chance(r)]
    if chance:
        log(f"[convergence] {len(chance)} converted run(s) at chance level: no verdict")
    runs = converted(runs)
    if not runs:
        return []
    table = pd.DataFrame([check_run(r) for r in runs])
    stem = out_dir / "tables" / "convergence"
    write_table(label_table(table.round(4)) if is_smoke(runs) else table.round(4), stem)
    written = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    failing = table[~table["converges"]]
    log(f"[convergence] {len(table) - len(failing)} of {len(table)} converted runs converge")
    for _, row in failing.iterrows():
        log(f"[convergence] not converged: {row['dataset']} α={row['alpha']:g} seed "
            f"{row['seed']}: gap {row['gap']:.3f}, dip {row['dip']:.3f}")  # fmt: skip
    for dataset in sorted(table["dataset"].unique()):
        stem = out_dir / "figures" / f"convergence_{dataset}"
        written += save_labelled(figure(runs, dataset), stem, is_smoke(runs))
    return written
