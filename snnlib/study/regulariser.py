"""The regulariser study: does the RCS weight α make answers settle earlier, seed by seed?

Runs of one *setting* (dataset, method, arch, T) that differ only in ``α`` and ``seed`` are
compared with the ``α = 0`` runs of the same seeds: a seed fixes the initialisation and the
data order, so run ``s`` at ``α`` and run ``s`` at ``α = 0`` form a pair, and for every metric
``m`` of :data:`METRICS` (one number per run, from its record)::

    d_s        = m(run at α, seed s) − m(run at α = 0, seed s),   s ∈ S_α
    S_α        = seeds with a finished run at α and at α = 0 (others are reported, not used)
    difference = (1/|S_α|) Σ_s d_s,  with a percentile-bootstrap interval (snnlib.study.stats)

The verdict says whether the interval excludes 0, and in which direction that is better:
higher accuracy is better, fewer timesteps (OCT, Top-K exits) are better. The size of the
regulariser against the task loss, ``α·R / L_task`` of the last training epoch (with
``L_task = train_loss − α·reg_loss``, :mod:`snnlib.pipeline.train`'s history), shows whether α
bites at
all; it has no better direction (``higher``/``lower``).

The intervals of one α of one setting form a family: they hold simultaneously with the
coverage ``level`` (95 %), each interval at ``1 − (1 − level) / 8`` for the 8 metrics
(Bonferroni), so that a verdict, and the claim's verdict that combines four of them, is not
one of the exclusions of 0 that 8 marginal intervals make by chance (docs/reproducing.md says
what marginal intervals did on another floating-point path). Across several α and settings a
few exclusions by chance remain possible. Top-K numbers are at each run's own operating point
(``metrics.json``: the ε chosen on its calibration split), so a pair may compare two
different ε. Everything is read from run records; nothing is trained or evaluated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from snnlib.config import NON_IDENTITY
from snnlib.study.figures import dataset_name, method_name, save_labelled
from snnlib.study.stats import paired_difference
from snnlib.study.tables import dataset_label, label_table, write_table

CONTROL = 0.0  # the α every other α is compared with
SETTING = ("dataset", "method", "arch", "T")
FREE = frozenset({"alpha", "seed", "partial", *NON_IDENTITY})  # may differ within a setting
COLUMNS = (
    *SETTING,
    "alpha",
    "metric",
    "mean",
    "mean_alpha0",
    "difference",
    "ci_low",
    "ci_high",
    "ci_level",
    "n_pairs",
    "verdict",
    "unpaired_seeds",
)
# (direction > 0, direction < 0) of a difference whose interval excludes 0, by Metric.better
VERDICTS = {1: ("better", "worse"), -1: ("worse", "better"), 0: ("higher", "lower")}
UNCLEAR = "not distinguishable"
# what the ledger shows of a claim row: (metric, label), in the metric's unit
LEDGER_METRICS = (
    ("topk_avg_timestep", "Top-K steps"),
    ("oct_mean", "mean OCT"),
    ("accuracy_tmax", "acc at T_max"),
    ("topk_accuracy", "Top-K acc"),
)


@dataclass(frozen=True)
class Metric:
    """One number per run record; ``better``: +1 higher is better, −1 lower, 0 neither;
    ``unit``: how its differences are shown (``"pt"``: an accuracy, shown in percentage points,
    :attr:`scale` 100; ``""``: a ratio)."""

    name: str
    label: str
    better: int
    value: Callable[[dict], float]
    unit: str

    @property
    def scale(self) -> int:
        """The factor from the recorded value to its :attr:`unit`."""
        return 100 if self.unit == "pt" else 1


def _summary(key: str) -> Callable[[dict], float]:
    return lambda run: float(run["metrics"][key])


def _accuracy_at(t: int) -> Callable[[dict], float]:
    """Accuracy at the 1-based timestep ``t`` (NaN for a run shorter than ``t``)."""

    def value(run: dict) -> float:
        curve = run["per_timestep"].set_index("timestep")["accuracy"]
        return float(curve.get(t, math.nan))

    return value


def reg_to_task(run: dict) -> float:
    """``α·R / L_task`` of the last epoch, ``L_task = train_loss − α·reg_loss`` (NaN if
    ``L_task <= 0``): the regulariser's share of the objective it was trained with."""
    last = run["history"].iloc[-1]
    penalty = run["config"]["alpha"] * float(last["reg_loss"])
    task = float(last["train_loss"]) - penalty
    return penalty / task if task > 0 else math.nan


METRICS = (
    Metric("accuracy_tmax", "accuracy at T_max", 1, _summary("accuracy_tmax"), "pt"),
    *(
        Metric(f"accuracy_t{t}", f"accuracy at t = {t}", 1, _accuracy_at(t), "pt")
        for t in (1, 2, 3)
    ),
    Metric("oct_mean", "mean OCT", -1, _summary("oct_mean"), "steps"),
    Metric(
        "topk_avg_timestep",
        "Top-K average exit timestep",
        -1,
        _summary("topk_avg_timestep"),
        "steps",
    ),
    Metric("topk_accuracy", "Top-K accuracy", 1, _summary("topk_accuracy"), "pt"),
    Metric("reg_to_task", "α·R / task loss (last epoch)", 0, reg_to_task, ""),
)
BY_NAME = {m.name: m for m in METRICS}


@dataclass(frozen=True)
class Pairing:
    """The seeds of one α paired with ``α = 0``, and the seeds left without a partner."""

    seeds: tuple[int, ...]  # a run at α and at α = 0
    no_treated: tuple[int, ...]  # a run at α = 0 only
    no_control: tuple[int, ...]  # a run at α only

    @classmethod
    def of(cls, control: Sequence[int], treated: Sequence[int]) -> Pairing:
        c, t = set(control), set(treated)
        return cls(tuple(sorted(c & t)), tuple(sorted(c - t)), tuple(sorted(t - c)))

    def unpaired(self) -> str:
        """The seeds left out, e.g. ``"4 (no run at this α); 7 (no run at α = 0)"``."""
        parts = [f"{s} (no run at this α)" for s in self.no_treated]
        return "; ".join(parts + [f"{s} (no run at α = 0)" for s in self.no_control])


def setting_label(row) -> str:
    """``dataset / method / arch / T=..`` of a table row or a run's config."""
    return f"{row['dataset']} / {row['method']} / {row['arch']} / T={row['T']}"


def group_settings(runs: list[dict]) -> dict[tuple, dict[float, dict[int, dict]]]:
    """Runs as ``{setting: {α: {seed: run}}}``, the setting keyed as :data:`SETTING`.

    Raises ``ValueError`` when two runs of a setting differ in anything but α, the seed and
    bookkeeping (:data:`FREE`), or when a setting holds two runs of the same α and seed: such
    runs are not pairs.
    """
    groups: dict[tuple, dict[float, dict[int, dict]]] = {}
    recipes: dict[tuple, tuple[str, dict]] = {}
    for run in runs:
        c = run["config"]
        key = (dataset_label(run), c["method"], c["arch"], c["T"])
        recipe = {k: v for k, v in c.items() if k not in FREE}
        first, known = recipes.setdefault(key, (run["run_dir"].name, recipe))
        differ = sorted(k for k in known.keys() | recipe.keys() if known.get(k) != recipe.get(k))
        if differ:
            raise ValueError(
                f"runs {first} and {run['run_dir'].name} differ in {differ}, not only in alpha "
                "and seed: they cannot be paired"
            )
        arm = groups.setdefault(key, {}).setdefault(float(c["alpha"]), {})
        if c["seed"] in arm:
            raise ValueError(
                f"runs {arm[c['seed']]['run_dir'].name} and {run['run_dir'].name} share "
                f"alpha={c['alpha']:g} and seed={c['seed']}: they cannot both be paired"
            )
        arm[c["seed"]] = run
    return groups


def _rows(key, alpha, control, treated, pairing, boot, log) -> list[dict]:
    """One row per metric of :data:`METRICS` for one α of one setting."""
    where = f"[regulariser] {setting_label(dict(zip(SETTING, key, strict=True)))} α={alpha:g}"
    rows = []
    for m in METRICS:
        values = {s: (m.value(treated[s]), m.value(control[s])) for s in pairing.seeds}
        bad = [s for s, v in values.items() if not np.all(np.isfinite(v))]
        if bad:
            log(f"{where} {m.name}: seeds {bad} have no finite value; left out of this metric")
        kept = np.array([v for s, v in values.items() if s not in bad]).reshape(-1, 2)
        if len(kept) < 2:
            log(f"{where} {m.name}: {len(kept)} pair(s), 2 needed; no row")
            continue
        diff = paired_difference(kept[:, 0], kept[:, 1], **boot)
        sign = 0 if not diff.excludes_zero() else (1 if diff.low > 0 else -1)
        rows.append(
            dict(zip(SETTING, key, strict=True))
            | {
                "alpha": alpha,
                "metric": m.name,
                "mean": float(kept[:, 0].mean()),
                "mean_alpha0": float(kept[:, 1].mean()),
                "difference": diff.mean,
                "ci_low": diff.low,
                "ci_high": diff.high,
                "ci_level": boot["level"],
                "n_pairs": diff.n,
                "verdict": UNCLEAR if sign == 0 else VERDICTS[m.better][0 if sign > 0 else 1],
                "unpaired_seeds": pairing.unpaired(),
            }
        )
    return rows


def interval_level(level: float) -> float:
    """The level of each interval for a simultaneous ``level`` over :data:`METRICS`."""
    return 1 - (1 - level) / len(METRICS)


def family_level(ci_level: float) -> float:
    """The simultaneous level of :data:`METRICS`' intervals, each at ``ci_level``."""
    return round(1 - (1 - ci_level) * len(METRICS), 6)


def paired_table(
    runs: list[dict], *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0, log=print
) -> pd.DataFrame:
    """The tidy study table: one row per (setting, α > 0, metric), columns :data:`COLUMNS`.

    Seeds without a partner, settings without ``α = 0`` runs and metrics with fewer than two
    finite pairs are logged (one line each) and left out; ``level`` is the simultaneous
    coverage of the intervals of one α (each at :func:`interval_level`, the ``ci_level``
    column); ``n_boot`` and ``seed`` go to :func:`snnlib.study.stats.paired_difference`.
    """
    boot = {"n_boot": n_boot, "level": interval_level(level), "seed": seed}
    rows: list[dict] = []
    for key, arms in sorted(group_settings(runs).items()):
        label = setting_label(dict(zip(SETTING, key, strict=True)))
        control = arms.pop(CONTROL, None)
        if control is None:
            log(f"[regulariser] {label}: no runs at α = 0, nothing to pair with; left out")
            continue
        for alpha, treated in sorted(arms.items()):
            pairing = Pairing.of(list(control), list(treated))
            if pairing.unpaired():
                log(f"[regulariser] {label} α={alpha:g}: seeds left out: {pairing.unpaired()}")
            rows += _rows(key, alpha, control, treated, pairing, boot, log)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def claim_verdict(verdicts: dict[str, str]) -> str:
    """The paper's RCS claim (answers settle earlier at no cost in accuracy) against one α's
    verdicts (metric name -> verdict): ``supported`` when fewer steps (OCT or Top-K) and no
    loss of accuracy (at T_max or with Top-K), ``contradicted`` when more steps or less
    accuracy and no gain, ``mixed`` when both, else ``not distinguishable``."""
    steps = [verdicts.get(m, UNCLEAR) for m in ("oct_mean", "topk_avg_timestep")]
    accuracy = [verdicts.get(m, UNCLEAR) for m in ("accuracy_tmax", "topk_accuracy")]
    gain = "better" in steps
    cost = "worse" in steps or "worse" in accuracy
    return {(True, False): "supported", (False, True): "contradicted", (True, True): "mixed"}.get(
        (gain, cost), UNCLEAR
    )


def ledger_rows(table: pd.DataFrame, profile: str) -> list[dict]:
    """The ledger's RCS claim, one row per (setting, α > 0) of the study ``table``
    (:func:`paired_table`): the verdict of :func:`claim_verdict` and the paired differences it
    rests on (simultaneous 95 % intervals)."""
    rows = []
    for (*key, alpha), sel in table.groupby([*SETTING, "alpha"], sort=True):
        by = sel.set_index("metric")
        shown = []
        for metric, label in LEDGER_METRICS:
            if metric in by.index:
                m = BY_NAME[metric]
                d, low, high = (
                    m.scale * by.loc[metric, c] for c in ("difference", "ci_low", "ci_high")
                )
                shown.append(f"{label} {d:+.2f} {m.unit} [{low:+.2f}, {high:+.2f}]")
        verdict = claim_verdict(dict(zip(sel["metric"], sel["verdict"], strict=True)))
        n_pairs = int(sel["n_pairs"].max())
        rows.append(
            {
                "dataset": key[0],
                "claim": f"RCS alpha={alpha:g} settles answers earlier at no accuracy cost "
                f"({key[1]}, {n_pairs} paired seeds)",
                "paper": "yes",
                "measured": f"{verdict}: " + "; ".join(shown),
                "scale": profile,
            }
        )
    return rows


def _setting_words(row) -> str:
    """``MNIST-5k, QCFS conversion, mnist-cnn, T_max = 32`` of a table row."""
    return f"{dataset_name(row['dataset'])}, {method_name(row['method'])}, {row['arch']}, " \
        f"T_max = {row['T']}"  # fmt: skip


def _direction(metric: Metric) -> str:
    return {1: "higher is better", -1: "lower is better", 0: "no better direction"}[metric.better]


def figure(table: pd.DataFrame) -> plt.Figure:
    """Paired differences from ``α = 0`` with their intervals, one panel per metric, one
    colour and marker per setting, α on a categorical x axis, a line at 0."""
    shown = [m for m in METRICS if m.name in set(table["metric"])]
    labels = table.apply(_setting_words, axis=1)
    settings = sorted(set(labels))
    alphas = sorted(set(table["alpha"]))
    colours = sns.color_palette("colorblind", len(settings))
    offsets = np.linspace(-0.2, 0.2, len(settings)) if len(settings) > 1 else [0.0]
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, m in zip(axes.flat, shown, strict=False):
        for i, name in enumerate(settings):
            part = table[(table["metric"] == m.name) & (labels == name)]
            x = [alphas.index(a) + offsets[i] for a in part["alpha"]]
            d, low, high = (m.scale * part[c] for c in ("difference", "ci_low", "ci_high"))
            ax.errorbar(
                x,
                d,
                yerr=[d - low, high - d],
                fmt="osD^v<>p"[i % 8],
                color=colours[i],
                capsize=3,
                label=name,
            )
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_title(m.label, fontsize=9)
        ax.set(xticks=range(len(alphas)), xticklabels=[f"{a:g}" for a in alphas])
        ax.set_xlim(-0.5, len(alphas) - 0.5)
        unit = f" ({m.unit})" if m.unit else ""
        ax.set(xlabel="RCS weight α", ylabel=f"difference from α = 0{unit}\n({_direction(m)})")
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, title="setting", loc="upper center", bbox_to_anchor=(0.5, -0.03))
    each = table["ci_level"].iloc[0]
    level = f"{100 * family_level(each):g} %"
    n = table["n_pairs"]
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    fig.suptitle(
        f"RCS regulariser: paired difference from α = 0 ({level} simultaneous bootstrap "
        "intervals)"
    )
    fig.text(
        0.01,
        -0.01,
        f"points: mean over {seeds} seeds paired with α = 0 (same initialisation and data "
        f"order); bars: percentile-bootstrap interval of the mean, {100 * each:.4g} % each, "
        f"{level} together over the {len(METRICS)} metrics of one α; accuracy differences in "
        "percentage points (pt)",
        fontsize=7,
        va="top",
    )
    fig.tight_layout()
    return fig


def write_study(
    table: pd.DataFrame, out_dir: Path, *, smoke: bool = False, log=print
) -> list[Path]:
    """Write the study ``table`` (:func:`paired_table`) as ``tables/regulariser.{csv,md,tex}``
    and ``figures/regulariser.{png,svg}`` under ``out_dir``, marked when the runs are ``smoke``
    runs; return the files written. Writes nothing (and says so) when the table is empty: no
    setting has paired runs at α = 0 and another α."""
    if table.empty:
        log(
            "[regulariser] no setting has runs at α = 0 and at another α on at least 2 common "
            "seeds: no regulariser table"
        )
        return []
    stem = out_dir / "tables" / "regulariser"
    write_table(label_table(table) if smoke else table, stem)
    written = [stem.with_suffix(f".{e}") for e in ("csv", "md", "tex")]
    return written + save_labelled(figure(table), out_dir / "figures" / "regulariser", smoke)
