"""Every figure and table of a profile, from its run records only.

:func:`snnlib.study.figures.make_all` (summary tables, the ledger, accuracy against timestep, the
trade-off and exit figures), :func:`snnlib.study.convergence.write_convergence` (converted runs
against their ANN) and :func:`snnlib.study.regulariser.write_study` (paired differences
across α, where runs pair up). ``python -m snnlib figures`` and ``90_figures`` call
:func:`write_all`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from snnlib.study import convergence
from snnlib.study import regulariser as regulariser_study
from snnlib.study.figures import make_all, select_runs


def ledger_claims(runs: list[dict], profile: str) -> list[dict]:
    """The ledger rows of the convergence claim and of the RCS claim (each α with paired
    runs) for ``runs`` (see :func:`snnlib.study.figures.ledger`)."""
    return convergence.ledger_rows(runs, profile) + regulariser_study.ledger_rows(runs, profile)


def write_all(
    profile_dir: Path, out_dir: Path | None = None, declared: Sequence | None = None, log=print
) -> list[Path]:
    """Write every figure and table of ``profile_dir`` under ``out_dir`` (default: the profile
    folder); return the files written. ``declared``: see :func:`snnlib.study.figures.select_runs`.

    The ledger carries, after the paper's speed-up claims, the convergence claim of the
    converted runs and the RCS claim of each α with paired runs (what was measured, failed
    claims included)."""
    profile_dir = Path(profile_dir)
    runs, _ = select_runs(profile_dir, declared)
    written = make_all(profile_dir, out_dir, declared, log, ledger_claims(runs, profile_dir.name))
    written += convergence.write_convergence(profile_dir, out_dir, declared, log)
    return written + regulariser_study.write_study(profile_dir, out_dir, declared, log)
