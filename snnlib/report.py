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

from snnlib.convergence import write_convergence
from snnlib.figures import make_all
from snnlib.regulariser_study import write_study


def write_all(
    profile_dir: Path, out_dir: Path | None = None, declared: Sequence | None = None, log=print
) -> list[Path]:
    """Write every figure and table of ``profile_dir`` under ``out_dir`` (default: the profile
    folder); return the files written. ``declared``: see :func:`snnlib.figures.select_runs`."""
    written = make_all(profile_dir, out_dir, declared, log)
    written += write_convergence(profile_dir, out_dir, declared, log)
    return written + write_study(profile_dir, out_dir, declared, log)
