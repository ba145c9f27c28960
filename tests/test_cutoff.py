"""Tests for snnlib.cutoff: brute force from the formulas of docs/method.md §1.7, hand values,
properties of every stopping rule, and bad inputs."""

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hand_example import HAND, HAND_LABELS
from hypothesis import given, settings
from hypothesis import strategies as st

from snnlib import cutoff, metrics

SETTINGS = settings(max_examples=50, deadline=None)
# random small runs often have G = 0; that warning is tested once, on purpose, below
pytestmark = pytest.mark.filterwarnings("ignore:every calibration gap:RuntimeWarning")
EPSILONS = st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 0.999])

# Same hand example as tests/test_metrics.py (T=3, N=4, K=3). Gaps Top1 - Top2, by hand:
#   t=1: 1 1 4 1     t=2: 0 2 1 2     t=3: 2 3 1 1      -> G = 4; with M=4: grid 0, 1, 2, 3
# S(t, n) (correct from t to T): t=1: 1 0 0 0   t=2: 1 1 0 0   t=3: 1 1 1 0
HAND_C = np.array(  # C(t, β_m), unforced; nan = no sample above β_m
    [[1 / 4, 0, 0, 0], [1 / 3, 1 / 2, np.nan, np.nan], [3 / 4, 1, 1, np.nan]]
)


@st.composite
def runs(draw, max_t=5, max_n=9, max_k=4, floats=False):
    """Cumulative outputs (integer steps in -2..2: many ties; or float32 steps) and labels."""
    t, n, k = draw(st.integers(1, max_t)), draw(st.integers(1, max_n)), draw(st.integers(2, max_k))
    if floats:
        elements = st.floats(-3, 3, width=32)
        steps = draw(hnp.arrays(np.float32, (t, n, k), elements=elements))
    else:
        steps = draw(hnp.arrays(np.int8, (t, n, k), elements=st.integers(-2, 2)))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return np.cumsum(steps, axis=0, dtype=np.float32), labels


# ----------------------------------------------------------------------------- brute force
def ref_gap(row):
    top = sorted(row, reverse=True)  # numpy scalars: the subtraction stays in the row's dtype
    return float(top[0] - top[1])


def ref_calibrate(y_cum, labels, eps, bins):
    """Spec 1.7, loops over t, m, n. Returns betas [T] and the unforced C [T][M]."""
    t_max, n_samples, _ = y_cum.shape
    ok = [
        [int(np.argmax(y_cum[t, n])) == labels[n] for n in range(n_samples)] for t in range(t_max)
    ]
    s = [[all(ok[u][n] for u in range(t, t_max)) for n in range(n_samples)] for t in range(t_max)]
    gap = [[ref_gap(y_cum[t, n]) for n in range(n_samples)] for t in range(t_max)]
    g = max(max(row) for row in gap)
    grid = [m * g / bins for m in range(bins)]
    betas, c_map = [], []
    for t in range(t_max):
        row, chosen = [], None
        for m in range(bins):
            den = sum(1 for n in range(n_samples) if gap[t][n] > grid[m])
            num = sum(1 for n in range(n_samples) if gap[t][n] > grid[m] and s[t][n])
            row.append(num / den if den else math.nan)
            c = 1.0 if m == bins - 1 else row[-1]
            if chosen is None and c >= 1 - eps:
                chosen = m
        betas.append(grid[chosen])
        c_map.append(row)
    return betas, c_map


def ref_exit(y_cum, betas):
    t_max, n_samples, _ = y_cum.shape
    gaps = [[ref_gap(y_cum[t, n]) for t in range(t_max)] for n in range(n_samples)]
    return [next((t + 1 for t in range(t_max) if row[t] > betas[t]), t_max) for row in gaps]


def ref_softmax_exit(y_cum, metric, threshold):
    """Confidence / normalised entropy of softmax(Y(t)) in float64 Python math."""
    t_max, n_samples, k = y_cum.shape
    out = []
    for n in range(n_samples):
        tau = t_max
        for t in range(t_max):
            z = [float(v) for v in y_cum[t, n]]
            e = [math.exp(v - max(z)) for v in z]
            p = [v / sum(e) for v in e]
            if metric == "confidence":
                stop = max(p) > threshold
            else:
                stop = -sum(q * math.log(q) for q in p if q > 0) / math.log(k) < threshold
            if stop:
                tau = t + 1
                break
        out.append(tau)
    return out


@SETTINGS
@given(st.one_of(runs(), runs(floats=True)), EPSILONS, st.integers(2, 12))
def test_calibration_and_exits_match_brute_force(run, eps, bins):
    y_cum, labels = run
    ref_betas, ref_c = ref_calibrate(y_cum, labels, eps, bins)
    betas = cutoff.calibrate_topk(y_cum, labels, eps, bins=bins)
    assert betas.dtype == np.float64
    np.testing.assert_array_equal(betas, ref_betas)
    c_map, grid = cutoff.confidence_rate(y_cum, labels, bins=bins)
    np.testing.assert_array_equal(c_map, ref_c)  # nan == nan here
    assert grid.shape == (bins,) and grid[0] == 0
    exits = cutoff.topk_exit(y_cum, betas)
    assert exits.dtype == np.int64
    np.testing.assert_array_equal(exits, ref_exit(y_cum, ref_betas))


def test_hand_gap_confidence_rate_and_calibration():
    np.testing.assert_array_equal(cutoff.topk_gap(HAND), [[1, 1, 4, 1], [0, 2, 1, 2], [2, 3, 1, 1]])
    c_map, grid = cutoff.confidence_rate(HAND, HAND_LABELS, bins=4)
    np.testing.assert_array_equal(grid, [0, 1, 2, 3])
    np.testing.assert_array_equal(c_map, HAND_C)
    # ε=0: t=1 and t=2 reach 1 only through the forced last bin; t=3 first at β=1
    np.testing.assert_array_equal(cutoff.calibrate_topk(HAND, HAND_LABELS, 0.0, bins=4), [3, 3, 1])
    np.testing.assert_array_equal(cutoff.calibrate_topk(HAND, HAND_LABELS, 0.5, bins=4), [3, 1, 0])
    np.testing.assert_array_equal(cutoff.calibrate_topk(HAND, HAND_LABELS, 0.8, bins=4), [0, 0, 0])
    np.testing.assert_array_equal(cutoff.topk_exit(HAND, [3, 3, 1]), [3, 3, 1, 3])
    np.testing.assert_array_equal(cutoff.topk_exit(HAND, [3, 1, 0]), [3, 2, 1, 2])
    np.testing.assert_array_equal(cutoff.topk_exit(HAND, [0, 0, 0]), [1, 1, 1, 1])
    assert metrics.evaluate_exits(HAND, HAND_LABELS, [3, 2, 1, 2]) == (0.75, 2.0)


def test_flat_calibration_g_zero_gives_zero_betas_with_a_warning():
    flat = np.zeros((3, 5, 4), dtype=np.float32)  # every gap is 0: G = 0
    with pytest.warns(RuntimeWarning, match="G = 0"):
        betas = cutoff.calibrate_topk(flat, np.zeros(5, dtype=np.int64), 0.0, bins=10)
    np.testing.assert_array_equal(betas, np.zeros(3))
    c_map, grid = cutoff.confidence_rate(flat, np.zeros(5, dtype=np.int64), bins=10)
    assert np.isnan(c_map).all() and (grid == 0).all()
    np.testing.assert_array_equal(cutoff.topk_exit(HAND, betas), [1, 1, 1, 1])
    np.testing.assert_array_equal(cutoff.topk_exit(flat, betas), [3] * 5)  # ties never pass


# ----------------------------------------------------------------------------- properties
def all_rules(y_cum, labels, t_fixed):
    t_max = y_cum.shape[0]
    yield cutoff.TopK(cutoff.calibrate_topk(y_cum, labels, 0.1, bins=8))
    yield cutoff.FixedT(t_fixed)
    for logits in ("sum", "mean"):
        yield cutoff.Confidence(0.6, logits=logits)
        yield cutoff.Entropy(0.5, temperature=2.0, logits=logits)
    yield cutoff.TopK([math.inf] * t_max)


@SETTINGS
@given(runs(), st.data())
def test_every_rule_exits_within_1_to_t(run, data):
    y_cum, labels = run
    t_max = y_cum.shape[0]
    t_fixed = data.draw(st.integers(1, t_max))
    for rule in all_rules(y_cum, labels, t_fixed):
        steps = cutoff.exit_steps(rule, y_cum)
        assert steps.dtype == np.int64 and steps.shape == labels.shape
        assert steps.min() >= 1 and steps.max() <= t_max, rule
    assert (cutoff.exit_steps(cutoff.FixedT(t_fixed), y_cum) == t_fixed).all()
    oracle = cutoff.sweep("oracle", y_cum, labels)
    assert oracle["avg_timestep"].item() == float(metrics.oct(y_cum, labels).astype(float).mean())


@SETTINGS
@given(runs(), st.lists(EPSILONS, min_size=1, max_size=4), st.integers(2, 12))
def test_topk_rules_calibrate_each_epsilon_as_calibrate_topk_does(run, epsilons, bins):
    """``topk_rules`` computes C(t, β) once for every ε; each rule's β equals the one-ε path."""
    y_cum, labels = run
    for eps, rule in cutoff.topk_rules(y_cum, labels, epsilons, bins):
        np.testing.assert_array_equal(rule.betas, cutoff.calibrate_topk(y_cum, labels, eps, bins))


@SETTINGS
@given(runs(), runs(), EPSILONS, EPSILONS)
def test_larger_epsilon_never_exits_later(calib, test, eps_a, eps_b):
    lo, hi = sorted((eps_a, eps_b))
    y_cal, lab = calib
    if test[0].shape[0] != y_cal.shape[0] or test[0].shape[2] != y_cal.shape[2]:
        test = (y_cal, lab)
    betas_lo, betas_hi = (cutoff.calibrate_topk(y_cal, lab, e, bins=10) for e in (lo, hi))
    assert (betas_hi <= betas_lo).all()
    for y in (y_cal, test[0]):
        assert (cutoff.topk_exit(y, betas_hi) <= cutoff.topk_exit(y, betas_lo)).all()


@SETTINGS
@given(st.one_of(runs(), runs(floats=True)), st.integers(2, 12))
def test_epsilon_zero_loses_nothing_on_calibration_set_where_not_forced(run, bins):
    y_cum, labels = run
    c_map, _ = cutoff.confidence_rate(y_cum, labels, bins=bins)
    forced = ~np.any(c_map >= 1.0, axis=1)  # [T]: only the forced last bin met 1 − 0
    exits = cutoff.topk_exit(y_cum, cutoff.calibrate_topk(y_cum, labels, 0.0, bins=bins))
    n = np.arange(len(labels))
    preds = metrics.predictions(y_cum)
    right_at_exit, right_at_t = preds[exits - 1, n] == labels, preds[-1] == labels
    genuine = ~forced[exits - 1]
    np.testing.assert_array_equal(right_at_exit[genuine], right_at_t[genuine])
    if not forced[:-1].any():
        acc, _ = metrics.evaluate_exits(y_cum, labels, exits)
        assert acc == metrics.accuracy_per_timestep(y_cum, labels)[-1]


@SETTINGS
@given(runs(), st.sampled_from([0.3, 0.55, 0.77, 0.93]))
def test_softmax_rules_match_brute_force(run, threshold):
    y_cum, _ = run
    for metric, rule in (("confidence", cutoff.Confidence), ("entropy", cutoff.Entropy)):
        got = cutoff.exit_steps(rule(threshold), y_cum)
        np.testing.assert_array_equal(got, ref_softmax_exit(y_cum, metric, threshold))
    # "mean" is softmax(Y(t) / t) and temperature divides once more: same as pre-scaling
    t = np.arange(1, y_cum.shape[0] + 1, dtype=np.float32)[:, None, None]
    got = cutoff.exit_steps(cutoff.Confidence(threshold, temperature=2.0, logits="mean"), y_cum)
    np.testing.assert_array_equal(got, ref_softmax_exit(y_cum / t / 2, "confidence", threshold))


@SETTINGS
@given(runs())
def test_samples_that_never_pass_exit_at_t(run):
    y_cum, labels = run
    t_max, n = y_cum.shape[0], len(labels)
    never = [cutoff.TopK([math.inf] * t_max), cutoff.Confidence(1.0), cutoff.Entropy(0.0)]
    for rule in never:
        np.testing.assert_array_equal(cutoff.exit_steps(rule, y_cum), [t_max] * n)
    tied = np.zeros_like(y_cum)  # gap 0 everywhere never exceeds β >= 0
    np.testing.assert_array_equal(cutoff.topk_exit(tied, np.zeros(t_max)), [t_max] * n)


@SETTINGS
@given(runs(), EPSILONS)
def test_numpy_and_torch_give_identical_results(run, eps):
    y_cum, labels = run
    yt, lt = torch.from_numpy(y_cum), torch.from_numpy(labels)
    b_np, b_t = cutoff.calibrate_topk(y_cum, labels, eps), cutoff.calibrate_topk(yt, lt, eps)
    np.testing.assert_array_equal(b_np, b_t)
    np.testing.assert_array_equal(
        cutoff.topk_exit(y_cum, b_np), cutoff.topk_exit(yt, torch.from_numpy(b_t))
    )
    np.testing.assert_array_equal(
        cutoff.confidence_rate(y_cum, labels)[0], cutoff.confidence_rate(yt, lt)[0]
    )
    for rule in (cutoff.Confidence(0.7), cutoff.Entropy(0.4)):
        np.testing.assert_array_equal(cutoff.exit_steps(rule, y_cum), cutoff.exit_steps(rule, yt))
    np.testing.assert_array_equal(cutoff.topk_gap(y_cum), cutoff.topk_gap(yt))


def test_softmax_rules_by_hand_strictness_and_mean_logits():
    tie, sure = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, -200.0]])  # p = 0.5 ; p = 1, H = 0
    assert not cutoff.Confidence(0.5).stop(tie, 1) and cutoff.Confidence(0.49).stop(tie, 1)
    assert not cutoff.Entropy(0.0).stop(sure, 1) and cutoff.Entropy(1e-6).stop(sure, 1)
    # softmax(Y(2)) = softmax([2, 0]) -> 0.881 ; softmax(Y(2)/2) -> 0.731, softmax(Y(3)/3) -> 0.697
    y = np.array([[[0, 0]], [[2, 0]], [[2.5, 0]]], dtype=np.float32)
    assert cutoff.exit_steps(cutoff.Confidence(0.8), y).tolist() == [2]
    assert cutoff.exit_steps(cutoff.Confidence(0.8, logits="mean"), y).tolist() == [3]
    assert cutoff.exit_steps(cutoff.Confidence(0.7, logits="mean"), y).tolist() == [2]
    assert cutoff.exit_steps(cutoff.Confidence(0.8, temperature=2.0), y).tolist() == [3]


def test_live_stop_matches_offline_exits():
    rule = cutoff.TopK([3, 1, 0])
    live = [rule.stop(torch.from_numpy(HAND[t - 1]), t) for t in (1, 2, 3)]
    assert [s.tolist() for s in live] == [
        [False] * 2 + [True, False],
        [False, True] * 2,
        [True] * 4,
    ]


# ----------------------------------------------------------------------------- sweeps
def test_sweeps_share_the_cutoff_csv_columns():
    frames = [
        cutoff.epsilon_sweep(HAND, HAND_LABELS, HAND, HAND_LABELS, bins=4),
        cutoff.sweep("fixed", HAND, HAND_LABELS),
        cutoff.sweep("confidence", HAND, HAND_LABELS, [0.6, 0.9], temperature=2.0),
        cutoff.sweep("entropy", HAND, HAND_LABELS),
        cutoff.sweep("oracle", HAND, HAND_LABELS),
    ]
    for df in frames:
        assert tuple(df.columns[:6]) == cutoff.CUTOFF_COLUMNS
    eps = frames[0]
    assert len(eps) == 10 and eps.parameter.tolist() == [i / 100 for i in range(10)]
    row = eps.iloc[0]  # ε = 0: betas [3, 3, 1] -> exits [3, 3, 1, 3]
    assert row.betas == (3.0, 3.0, 1.0) and (row.accuracy, row.avg_timestep) == (0.75, 2.5)
    assert row.speedup == 3 / 2.5 and row.acc_delta == 0.0
    fixed = frames[1]
    assert fixed.parameter.tolist() == [1, 2, 3] and fixed.avg_timestep.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(fixed.accuracy, metrics.accuracy_per_timestep(HAND, HAND_LABELS))
    assert fixed.acc_delta.tolist() == [-0.25, -0.25, 0.0] and fixed.betas.isna().all()
    oracle = frames[4].iloc[0]
    assert math.isnan(oracle.parameter) and (oracle.accuracy, oracle.avg_timestep) == (0.75, 2.25)


# ----------------------------------------------------------------------------- bad inputs
L, Z, CAL = HAND_LABELS, torch.zeros(4, 3), cutoff.calibrate_topk
EPS, SHAPE_N, T_RANGE = (
    r"epsilon must be a finite number in \[0, 1\); got ",
    r"shape \[N\] = \(4,\)",
    r"\(a 1-based timestep\) must be an integer in \[1, 3\]",
)
BAD = [
    (lambda: CAL(HAND[0], L, 0.0), r"cum_outputs must be 3-D \[T, N, K\]"),
    (lambda: CAL(HAND[:0], L, 0.0), r"T \(timesteps\) >= 1"),
    (lambda: CAL(HAND, L[:2], 0.0), r"labels must have " + SHAPE_N + r"; got shape \(2,\)"),
    (lambda: CAL(HAND, L + 3, 0.0), r"labels must lie in \[0, 2\]; got values from 3 to 5"),
    (lambda: CAL(HAND, L, -0.1), EPS + "-0.1"),
    (lambda: CAL(HAND, L, 1.0), EPS + "1.0"),
    (lambda: CAL(HAND, L, math.nan), EPS + "nan"),
    (lambda: CAL(HAND, L, 0.0, bins=1), r"bins \(M, the β grid size\) must be .* >= 2; got 1"),
    (lambda: cutoff.confidence_rate(HAND, L, bins=2.5), r"bins .* integer >= 2; got 2.5"),
    (lambda: cutoff.topk_exit(HAND, [1, 2]), r"betas must have shape \[T\] = \(3,\).*\(2,\)"),
    (lambda: cutoff.topk_exit(HAND, [[1, 2, 3]]), r"betas must be 1-D \[T\] .*got shape \(1, 3\)"),
    (lambda: cutoff.topk_exit(HAND, [1, math.nan, 2]), r"betas must not contain NaN"),
    (lambda: cutoff.TopK([1, 2, 3]).stop(Z, 0), r"t " + T_RANGE + "; got 0"),
    (lambda: cutoff.TopK([1, 2, 3]).stop(Z, 4), r"t " + T_RANGE + "; got 4"),
    (lambda: cutoff.TopK([1, 2, 3]).stop(Z[0], 1), r"y_t must be 2-D \[N, K\] .*shape \(3,\)"),
    (lambda: cutoff.Confidence(0.5).stop(Z, 0), r"t \(.*\) must be an integer >= 1; got 0"),
    (lambda: cutoff.exit_steps(cutoff.FixedT(4), HAND), r"FixedT.t " + T_RANGE),
    (lambda: cutoff.FixedT(0), r"FixedT.t \(a 1-based timestep\) must be an integer >= 1; got 0"),
    (lambda: cutoff.Confidence(1.5), r"Confidence.threshold must be .* in \[0, 1\]; got 1.5"),
    (lambda: cutoff.Entropy(-0.1), r"Entropy.threshold must be .* in \[0, 1\]; got -0.1"),
    (lambda: cutoff.Entropy(0.5, temperature=0), r"temperature must be a finite number > 0; got 0"),
    (lambda: cutoff.Confidence(0.5, logits="avg"), r"logits must be one of \('sum', .*; got 'avg'"),
    (lambda: cutoff.sweep("topq", HAND, L), r"policy must be one of \('topk', .*; got 'topq'"),
    (lambda: cutoff.sweep("topk", HAND, L), r"policy 'topk' needs calib_outputs and calib_labels"),
    (lambda: cutoff.sweep("oracle", HAND, L, [1]), r"policy 'oracle' takes no params; got \[1\]"),
    (lambda: cutoff.sweep("fixed", HAND, L, temperature=2.0), r"options \['temperature'\] do not"),
    (lambda: cutoff.sweep("fixed", HAND, L, calib_outputs=HAND), r"calib_outputs/labels are only"),
    (lambda: cutoff.epsilon_sweep(HAND[:2], L, HAND, L), r"calib_outputs must have the test"),
    (lambda: cutoff.epsilon_sweep(HAND, L[:3], HAND, L), r"calib_labels must have " + SHAPE_N),
    (lambda: cutoff.epsilon_sweep(HAND, L, HAND, L, [0.0, 1.2]), EPS + "1.2"),
    (lambda: cutoff.sweep("fixed", HAND, L[:1]), r"test_labels must have " + SHAPE_N),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_inputs_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_nan_outputs_are_rejected_by_calibration_and_exits():
    y = HAND.copy()
    y[2, 3, 1] = np.nan
    msg = r"cum_outputs must be finite; found 1 NaN/inf values, the first at .* = \[2, 3, 1\]"
    with pytest.raises(ValueError, match=msg):
        cutoff.calibrate_topk(y, HAND_LABELS, 0.0)
    with pytest.raises(ValueError, match=msg):
        cutoff.topk_exit(torch.from_numpy(y), [0, 0, 0])
    with pytest.raises(ValueError, match="test_outputs must be finite"):
        cutoff.sweep("fixed", y, HAND_LABELS)


def test_a_rule_returning_the_wrong_shape_is_caught():
    class Broken:
        def check(self, t_max, k):
            pass

        def stop(self, y_t, t):
            return torch.ones(1, dtype=torch.bool)  # would broadcast silently

    with pytest.raises(
        ValueError, match=r"Broken.stop must return a bool tensor of shape \[N\] = \(4,\)"
    ):
        cutoff.exit_steps(Broken(), HAND)
