"""Every figure and table of a profile, from its run records, each record read once.

:func:`write_all` selects the profile's runs (:func:`snnlib.pipeline.records.select_runs`),
reports their coverage once, and hands the loaded records to every writer: the summary
tables and the ledger (:mod:`snnlib.study.tables`), accuracy against timestep, the trade-off
and exit figures (:mod:`snnlib.study.figures`), the converted runs against their ANN
(:mod:`snnlib.study.convergence`) and the paired differences across α
(:mod:`snnlib.study.regulariser`), whose bootstrap is computed once for its table and the
ledger. ``python -m snnlib figures`` and ``90_figures`` call :func:`write_all`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from snnlib.pipeline.records import Coverage, select_runs
from snnlib.study import (
    bench_tables,
    convergence,
    figures,
    readme_numbers,
    regulariser,
    reproduction,
    tables,
)
from snnlib.tools import paths


def ledger_claims(runs: list[dict], profile: str, paired: pd.DataFrame) -> list[dict]:
    """The ledger rows of the convergence claim of ``runs`` and of the RCS claim (each α of
    the paired study table ``paired``, :func:`snnlib.study.regulariser.paired_table`); see
    :func:`snnlib.study.tables.ledger`."""
    return convergence.ledger_rows(runs, profile) + regulariser.ledger_rows(paired, profile)


def write_all(
    profile_dir: Path, out_dir: Path | None = None, declared: Sequence | None = None, log=print
) -> tuple[list[Path], Coverage]:
    """Write every figure and table of ``profile_dir`` under ``out_dir`` (default: the profile
    folder); return the files written and the coverage of the runs (``declared``: see
    :func:`snnlib.pipeline.records.select_runs`). What is missing, not declared or left out
    because its parts disagree is logged, one line each.

    The ledger carries, after the paper's speed-up claims, the convergence claim of the
    converted runs and the RCS claim of each α with paired runs (what was measured, failed
    claims included), the claims a committed ``tables/fragility.csv`` marks fragile, and the
    measured wall time of the runs the anytime benchmark timed (``results/bench/anytime.json``,
    :func:`snnlib.study.bench_tables.ledger_rows`). For a profile of this checkout's
    ``results/`` it then rewrites the result blocks of the README and docs/
    (:mod:`snnlib.study.readme_numbers`)."""
    profile_dir = Path(profile_dir)
    out_dir = Path(out_dir) if out_dir is not None else profile_dir
    runs, coverage = select_runs(profile_dir, declared)
    for line in coverage.report():
        log(f"[figures] {line}")
    if not runs:
        raise ValueError(f"no finished runs under {profile_dir / 'runs'}")
    paired = regulariser.paired_table(runs, log=log)
    claims = ledger_claims(runs, profile_dir.name, paired)
    claims += reproduction.ledger_rows(profile_dir, profile_dir.name)
    claims += bench_tables.ledger_rows(profile_dir, profile_dir.name)
    written = tables.write_tables(runs, out_dir, profile_dir.name, claims)
    written += figures.write_figures(runs, out_dir)
    written += convergence.write_convergence(runs, out_dir, log)
    written += regulariser.write_study(paired, out_dir, smoke=tables.is_smoke(runs), log=log)
    if out_dir == profile_dir and profile_dir.resolve().parent == paths.CHECKOUT / "results":
        written += readme_numbers.update(paths.CHECKOUT)
    return written, coverage
