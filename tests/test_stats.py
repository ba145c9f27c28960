"""The paired bootstrap (snnlib.study.stats) against an exactly enumerable example, and its
properties."""

import itertools
from collections import Counter

import numpy as np
import pytest

from snnlib.study.stats import Difference, paired_difference


def test_interval_of_three_pairs_matches_the_enumerated_bootstrap():
    """Differences d = (4−4, 5−2, 9−3) = (0, 3, 6), mean 3. A resample draws 3 of them with
    replacement, so its mean is 3·(i+j+k)/3 = i+j+k for i, j, k ∈ {0, 1, 2}: the sum of three
    three-sided dice. Of the 3³ = 27 equally likely resamples, the sums 0..6 occur
    1, 3, 6, 7, 6, 3, 1 times, so P(mean ≤ m) = 1/27, 4/27, 10/27, 17/27, 23/27, 26/27, 1.

    95 %: q(0.025) = 0 (1/27 = 0.037 > 0.025), q(0.975) = 6 (26/27 = 0.963 < 0.975).
    80 %: q(0.10) = 1 (1/27 < 0.10 < 4/27), q(0.90) = 5 (23/27 = 0.852 < 0.90 < 26/27).
    20 %: q(0.40) = 3 (10/27 = 0.370 < 0.40), q(0.60) = 3 (0.60 < 17/27 = 0.630).
    The margins are several binomial standard deviations at 10 000 resamples
    (sqrt(0.37 · 0.63 / 10⁴) ≈ 0.005), so the sampled quantiles hit these values exactly.
    """
    sums = Counter(sum(p) for p in itertools.product(range(3), repeat=3))
    assert [sums[s] for s in range(7)] == [1, 3, 6, 7, 6, 3, 1]  # the hand count above

    treated, control = [4.0, 5.0, 9.0], [4.0, 2.0, 3.0]
    for level, low, high in ((0.95, 0.0, 6.0), (0.8, 1.0, 5.0), (0.2, 3.0, 3.0)):
        got = paired_difference(treated, control, level=level)
        assert got == Difference(mean=3.0, low=low, high=high, n=3), level


@pytest.mark.parametrize("seed", range(5))
def test_interval_contains_the_mean_and_swapping_the_arms_negates_it(seed):
    rng = np.random.default_rng(seed)
    treated, control = rng.normal(size=6), rng.normal(size=6)
    d = paired_difference(treated, control, n_boot=2000, seed=seed)
    assert d.low <= d.mean <= d.high and d.low < d.high
    assert d.mean == pytest.approx(np.mean(treated - control))
    swapped = paired_difference(control, treated, n_boot=2000, seed=seed)
    assert (swapped.mean, swapped.low, swapped.high) == pytest.approx((-d.mean, -d.high, -d.low))
    assert paired_difference(treated, control, n_boot=2000, seed=seed) == d  # seeded


def test_constant_differences_give_a_zero_width_interval():
    control = np.array([0.125, 0.5, 0.875, 0.25])  # exact in binary: d is exactly 0.25
    d = paired_difference(control + 0.25, control)
    assert d.mean == d.low == d.high == 0.25
    assert d.excludes_zero()
    assert not paired_difference(control, control).excludes_zero()


def test_pairs_are_resampled_together_not_the_arms_separately():
    """Large between-pair spread, constant within-pair shift: resampling the arms apart
    would give a wide interval; resampling pairs gives none."""
    control = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    d = paired_difference(control + 1.0, control)
    assert d.high - d.low == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("treated", "control", "kwargs", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], {}, "same length.*3 and 2"),
        ([1.0], [1.0], {}, "treated must be 1-D with at least 2 values"),
        ([1.0, 2.0], [1.0, np.nan], {}, r"control must be finite; got \[1.0, nan\]"),
        ([[1.0, 2.0]], [1.0, 2.0], {}, r"treated must be 1-D.*shape \(1, 2\)"),
        ([1.0, 2.0], [1.0, 2.0], {"level": 1.0}, "level must be a finite number in"),
        ([1.0, 2.0], [1.0, 2.0], {"n_boot": 0}, "n_boot must be an integer >= 1; got 0"),
        ([1.0, 2.0], [1.0, 2.0], {"seed": -1}, "seed must be an integer >= 0; got -1"),
    ],
)
def test_bad_arguments_are_named(treated, control, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(treated, control, **kwargs)
