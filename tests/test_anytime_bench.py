"""The anytime benchmark's fair comparison: the matched fixed T and the ratios against it."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import anytime_bench


def test_matched_t_is_the_first_window_with_as_many_right_answers():
    labels = torch.tensor([0, 1, 1, 0])
    # correct answers after 1, 2, 3 steps: 2, 3, 4 (class 0 / 1 logits per sample)
    right = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    cum = torch.stack([(right == (labels == 0)).float(), (right == (labels == 1)).float()], -1)
    assert [anytime_bench.matched_t(cum, labels, c) for c in (0, 2, 3, 4)] == [1, 1, 2, 3]
    assert anytime_bench.matched_t(cum, labels, 5) is None  # no fixed window is as accurate


def test_ratio_against_the_matched_window():
    wall = {"fixed-T2": [10.0, 12.0, 30.0], "engine": [5.0, 6.0, 10.0]}  # per-round 2, 2, 3
    row = {"matched_T": 2, "avg_exit_step": 1.6}
    anytime_bench.vs_matched(row, wall, "engine")
    assert row["ideal_speedup_vs_matched"] == 2 / 1.6
    assert row["measured_speedup_vs_matched"] == 2.0  # the median of the per-round ratios
    assert row["ratio_to_ideal_vs_matched"] == 2.0 / (2 / 1.6)
    row = {"matched_T": None, "avg_exit_step": 1.6}
    anytime_bench.vs_matched(row, wall, "engine")
    assert row["ratio_to_ideal_vs_matched"] is None
