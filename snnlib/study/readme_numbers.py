"""The result blocks of the README and docs/, generated from ``results/``.

A block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (the markers of the
badges and of the cost table) in README.md or any docs/*.md; this module owns the names of
:func:`blocks`, one set per profile folder with tables:

* ``results-<profile>``: the seed means ± sd of every group (``tables/summary.csv``), in %
  for accuracies;
* ``headline-<profile>``: the ranges the prose quotes (Top-K steps, both "x fewer", the
  accuracy change), the convergence count and the RCS verdicts of the ledger (a verdict that
  another floating-point path flips is "not established", with both answers);
* ``regulariser-<profile>``: the paired differences from α = 0 with their simultaneous 95 %
  intervals (profiles with a regulariser study);
* ``fragility-<profile>``: the claims that moved beyond the seeds' spread on another
  floating-point path (profiles with a committed ``tables/fragility.csv``);
* ``bench-*``: the benchmark tables, from ``results/bench/*.json``
  (:mod:`snnlib.study.bench_tables`).

The figures step rewrites every block it finds (:func:`update`, called by
:func:`snnlib.study.report.write_all` for a profile of the checkout); :func:`problems` names each
block that differs from what ``results/`` gives (``tests/test_readme_numbers.py``)::

    python -m snnlib.study.readme_numbers           # rewrite the blocks
    python -m snnlib.study.readme_numbers --check   # exit 1 and name what is out of date
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import pandas as pd

from snnlib.study import bench_tables
from snnlib.study.reproduction import claim_value
from snnlib.tools import paths
from snnlib.tools.atomic import atomic_write

BLOCK = re.compile(r"<!-- (?P<name>[a-z0-9-]+):start -->\n.*?<!-- (?P=name):end -->", re.S)
# README table columns: (header, summary.csv column, scale, decimals)
SUMMARY_COLUMNS = (
    ("ANN acc %", "ann_accuracy", 100, 1),
    ("SNN acc at T_max %", "accuracy_tmax", 100, 1),
    ("Top-K acc %", "topk_accuracy", 100, 1),
    ("Top-K avg steps", "topk_avg_timestep", 1, 2),
    ("x fewer (T_max/avg)", "topk_speedup", 1, 2),
    ("x fewer (matched fixed T/avg)", "topk_speedup_matched", 1, 2),
    ("mean OCT", "oct_mean", 1, 2),
)
# regulariser-table columns: (header, metric, scale)
REGULARISER_COLUMNS = (
    ("acc at T_max (pt)", "accuracy_tmax", 100),
    ("acc at t=1 (pt)", "accuracy_t1", 100),
    ("mean OCT (steps)", "oct_mean", 1),
    ("Top-K avg steps", "topk_avg_timestep", 1),
    ("Top-K acc (pt)", "topk_accuracy", 100),
    ("α·R / task loss", "reg_to_task", 1),
)


def _mean_sd(mean: float, sd: float, scale: float, decimals: int) -> str:
    if math.isnan(mean):
        return "–"
    sd = 0.0 if math.isnan(sd) else sd
    return f"{scale * mean:.{decimals}f} ± {scale * sd:.{decimals}f}"


def results_table(summary: pd.DataFrame) -> str:
    """The README's results table of a profile: one row per group, mean ± sd over seeds."""
    table = summary[["dataset", "method", "alpha", "seeds"]].copy()
    for header, column, scale, decimals in SUMMARY_COLUMNS:
        table[header] = [
            _mean_sd(m, s, scale, decimals)
            for m, s in zip(summary[f"{column}_mean"], summary[f"{column}_std"], strict=True)
        ]
    table.insert(6, "T_max", summary["T"].astype(int))
    return table.to_markdown(index=False)


def _span(values: pd.Series, scale: float, decimals: int, unit: str = "") -> str:
    low, high = scale * values.min(), scale * values.max()
    if f"{low:.{decimals}f}" == f"{high:.{decimals}f}":
        return f"{low:.{decimals}f}{unit}"
    return f"{low:.{decimals}f} to {high:.{decimals}f}{unit}"


def headline(tables: Path) -> str:
    """The ranges over a profile's groups that the prose quotes, and its verdicts."""
    summary = pd.read_csv(tables / "summary.csv")
    lines = [
        f"- {dataset} {method}: Top-K stops after {_span(sel['topk_avg_timestep_mean'], 1, 1)} "
        f"steps on average ({_span(sel['topk_speedup_mean'], 1, 1, 'x')} fewer than "
        f"T_max = {_span(sel['T'], 1, 0)}, {_span(sel['topk_speedup_matched_mean'], 1, 1, 'x')} "
        "fewer than the smallest fixed T of the same accuracy), at an accuracy change of "
        f"{_span(sel['topk_acc_delta_mean'], 100, 1, ' point')} (seed means over alpha)."
        for (dataset, method), sel in summary.groupby(["dataset", "method"], sort=True)
    ]
    moved = _fragile(tables)
    if (tables / "convergence.csv").is_file():
        runs = pd.read_csv(tables / "convergence.csv")
        met = int(runs["converges"].astype(bool).sum())
        counts = moved[moved["claim"].str.endswith(": converging runs")]
        note = ""
        if len(counts):
            other = int(counts["other"].astype(float).sum())
            note = f" (fragile: {other} of {len(runs)} on the {counts['path'].iloc[0]} fp path)"
        lines.append(f"- Converted runs that converge: {met} of {len(runs)}{note}.")
    ledger = pd.read_csv(tables / "ledger.csv")
    for _, row in ledger[ledger["claim"].str.startswith("RCS")].iterrows():
        verdict = row["measured"].partition(":")[0]
        flip = moved[moved["claim"] == f"{row['dataset']}: {row['claim']}"]
        if len(flip):  # the verdict depends on the fp path: stated with both answers
            others = "".join(f", {r['other']} on the {r['path']} path" for _, r in flip.iterrows())
            verdict = f"not established ({verdict} on the default fp path{others})"
        lines.append(f"- {row['dataset']}, {row['claim']}: {verdict}.")
    return "\n".join(lines)


def _fragile(tables: Path) -> pd.DataFrame:
    """The fragile claims of a profile's committed ``fragility.csv`` (none without one); a
    count claim's rows all come along when any of them moved, so they can be summed."""
    if not (tables / "fragility.csv").is_file():
        return pd.DataFrame(columns=["claim", "path", "other"])
    frame = pd.read_csv(tables / "fragility.csv", dtype=str)
    counts = frame["claim"].str.endswith(": converging runs")
    fragile = frame["fragile"] == "yes"
    return frame[fragile | (counts & (fragile & counts).any())]


def regulariser_table(frame: pd.DataFrame) -> str:
    """Paired differences from α = 0 with their simultaneous 95 % intervals, one row per
    setting and α."""
    rows = []
    for (dataset, method, alpha), sel in frame.groupby(["dataset", "method", "alpha"], sort=True):
        by = sel.set_index("metric")
        row = {"setting": f"{dataset} {method}", "alpha": alpha}
        for header, metric, scale in REGULARISER_COLUMNS:
            if metric not in by.index:
                row[header] = "–"
                continue
            d, low, high = (scale * by.loc[metric, c] for c in ("difference", "ci_low", "ci_high"))
            row[header] = f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


def fragility_table(frame: pd.DataFrame) -> str:
    """The claims that moved beyond their seed-only tolerance on another path."""
    fragile = frame[frame["fragile"] == "yes"]
    if not len(fragile):
        return f"No claim moved beyond the seeds' spread on fp path {frame['path'].iloc[0]}."
    columns = ["default", "other", "movement", "seed_tolerance"]
    table = fragile[["claim", *columns]].assign(
        **{c: fragile[c].map(claim_value) for c in columns}
    )
    other = f"fp path {frame['path'].iloc[0]}"
    return table.rename(columns={"default": "default path", "other": other}).to_markdown(
        index=False
    )


def blocks(results: Path) -> dict[str, str]:
    """Every block's text (without markers): from each profile folder under ``results`` and
    the benchmarks' JSON under ``results/bench`` (:mod:`snnlib.study.bench_tables`)."""
    out = bench_tables.blocks(Path(results) / "bench")
    for profile in sorted(
        p for p in Path(results).iterdir() if (p / "tables/summary.csv").is_file()
    ):
        tables = profile / "tables"
        out[f"results-{profile.name}"] = results_table(pd.read_csv(tables / "summary.csv"))
        out[f"headline-{profile.name}"] = headline(tables)
        if (tables / "regulariser.csv").is_file():
            frame = pd.read_csv(tables / "regulariser.csv")
            out[f"regulariser-{profile.name}"] = regulariser_table(frame)
        if (tables / "fragility.csv").is_file():
            out[f"fragility-{profile.name}"] = fragility_table(
                pd.read_csv(tables / "fragility.csv")
            )
    return out


def documents(root: Path) -> list[Path]:
    """The files whose blocks are generated: README.md and docs/*.md."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def render(text: str, generated: dict[str, str]) -> str:
    """``text`` with every block that :func:`blocks` names regenerated (others untouched)."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in generated:
            return match[0]
        return f"<!-- {name}:start -->\n{generated[name]}\n<!-- {name}:end -->"

    return BLOCK.sub(fill, text)


def update(root: Path | None = None) -> list[Path]:
    """Rewrite the blocks of ``root``'s README and docs from its ``results/``; return the
    files that changed."""
    root = paths.repo_root() if root is None else Path(root)
    generated, changed = blocks(root / "results"), []
    for path in documents(root):
        text = path.read_text()
        new = render(text, generated)
        if new != text:
            atomic_write(path, new.encode())
            changed.append(path)
    return changed


def problems(root: Path | None = None) -> list[str]:
    """One line per block of the README or docs that differs from ``results/``; a block
    whose name looks generated but names no profile with tables is a problem too."""
    root = paths.repo_root() if root is None else Path(root)
    generated, lines = blocks(root / "results"), []
    prefixes = ("results-", "headline-", "regulariser-", "fragility-", "bench-")
    for path in documents(root):
        text = path.read_text()
        for match in BLOCK.finditer(text):
            name = match["name"]
            if name in generated and render(match[0], generated) != match[0]:
                lines.append(f"{path.relative_to(root)}: block {name} differs from results/")
            elif name not in generated and name.startswith(prefixes):
                lines.append(f"{path.relative_to(root)}: block {name} has no table under results/")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib.study.readme_numbers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="name the blocks out of date")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) or "every generated block matches results/")
        return 1 if found else 0
    for path in update():
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
