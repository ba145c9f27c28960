"""Every figure and table of a profile, from its run records only.

:func:`snnlib.figures.make_all` (summary tables, the ledger, accuracy against timestep, the
trade-off and exit figures), :func:`snnlib.convergence.write_convergence` (converted runs
against their ANN) and :func:`snnlib.regulariser_study.write_study` (paired differences
across α, where runs pair up). ``python -m snnlib figures`` and ``90_figures`` call
:func:`write_all`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from snnlib import convergence, paths, regulariser_study
from snnlib.figures import make_all, select_runs
from snnlib.study import readme_numbers, reproduction


def ledger_claims(runs: list[dict], profile: str) -> list[dict]:
    """The ledger rows of the convergence claim and of the RCS claim (each α with paired
    runs) for ``runs`` (see :func:`snnlib.figures.ledger`)."""
    return convergence.ledger_rows(runs, profile) + regulariser_study.ledger_rows(runs, profile)


def write_all(
    profile_dir: Path, out_dir: Path | None = None, declared: Sequence | None = None, log=print
) -> list[Path]:
    """Write every figure and table of ``profile_dir`` under ``out_dir`` (default: the profile
    folder); return the files written. ``declared``: see :func:`snnlib.figures.select_runs`.

    The ledger carries, after the paper's speed-up claims, the convergence claim of the
    converted runs and the RCS claim of each α with paired runs (what was measured, failed
    claims included), and the claims a committed ``tables/fragility.csv`` marks fragile. For
    a profile of this checkout's ``results/`` it then rewrites the result blocks of the
    README and docs/ (:mod:`snnlib.study.readme_numbers`)."""
    profile_dir = Path(profile_dir)
    runs, _ = select_runs(profile_dir, declared)
    claims = ledger_claims(runs, profile_dir.name)
    claims += reproduction.ledger_rows(profile_dir, profile_dir.name)
    written = make_all(profile_dir, out_dir, declared, log, claims)
    written += convergence.write_convergence(profile_dir, out_dir, declared, log)
    written += regulariser_study.write_study(profile_dir, out_dir, declared, log)
    if out_dir is None and profile_dir.resolve().parent == paths.CHECKOUT / "results":
        written += readme_numbers.update(paths.CHECKOUT)
    return written
