"""Paired comparisons across seeds: the mean paired difference and its bootstrap interval.

Two arms (e.g. a network trained with the RCS weight ``α > 0`` and with ``α = 0``) are run on
the same seeds, so run ``i`` of each arm shares its initialisation and data order. The
comparison is made on the paired differences ``d_i = treated_i − control_i``, ``i = 1..n``::

    d̄        = (1/n) Σ_i d_i
    d̄*_b     = (1/n) Σ_j d_{I_bj},   I_bj ~ Uniform{1..n} i.i.d.,   b = 1..B
    interval = [ q_{(1−level)/2}(d̄*), q_{(1+level)/2}(d̄*) ]

the percentile bootstrap: pairs are resampled with replacement (a pair is never split), and
the interval is read off the quantiles of the ``B`` resampled means (numpy's default linear
interpolation). The resampling uses a ``numpy.random.Generator`` seeded by ``seed``, so the
same inputs give the same interval.

With few pairs the percentile interval is too narrow: the resampled means have variance
``(n−1)/n · s²/n`` (``s²`` the sample variance of ``d``), and the distribution of ``d̄*`` is
discrete. Read an interval from 5 seeds as a screen, not as an exact 95 % guarantee.

>>> paired_difference([3.0, 5.0], [1.0, 1.0], n_boot=1000)
Difference(mean=3.0, low=2.0, high=4.0, n=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from snnlib import checks

__all__ = ["Difference", "paired_difference"]


@dataclass(frozen=True)
class Difference:
    """A mean paired difference ``treated − control`` and its bootstrap interval.

    ``mean``: ``d̄``; ``low``/``high``: the percentile interval; ``n``: the number of pairs.
    """

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        """The interval lies strictly on one side of 0."""
        return self.low > 0 or self.high < 0


def _as_values(name: str, values: Sequence[float]) -> np.ndarray:
    """``values`` as a 1-D float64 array of at least two finite numbers."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(
            f"{name} must be 1-D with at least 2 values (one per pair); got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    return arr


def paired_difference(
    treated: Sequence[float],
    control: Sequence[float],
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Difference:
    """The mean of ``treated[i] − control[i]`` with its percentile-bootstrap interval.

    ``treated`` and ``control`` hold one value per pair, in the same pair order (at least 2
    pairs, finite values); ``n_boot`` resamples of the pairs are drawn; ``level`` is the
    interval's nominal coverage in ``(0, 1)``. Swapping the arms negates mean and interval.
    """
    t, c = _as_values("treated", treated), _as_values("control", control)
    if t.shape != c.shape:
        raise ValueError(
            f"treated and control must hold one value per pair (same length); got "
            f"{t.size} and {c.size} values"
        )
    n_boot = checks.integer("n_boot", n_boot, low=1)
    level = checks.number("level", level, low=0, high=1, low_open=True, high_open=True)
    seed = checks.integer("seed", seed, low=0)
    d = t - c
    picks = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    means = d[picks].mean(axis=1)  # [n_boot] resampled means
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Difference(float(d.mean()), float(low), float(high), int(d.size))
