"""Tests for snnlib.metrics: hand-computed values, brute-force OCT, properties, bad inputs."""

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hand_example import HAND, HAND_LABELS
from hypothesis import given, settings
from hypothesis import strategies as st

from snnlib import metrics

SETTINGS = settings(max_examples=60, deadline=None)

# Cumulative outputs Y(t) for T=3, N=4, K=3, computed by hand (docs/method.md §1.6, §1.8):
#   sample 0 (y=0): preds 0, 0 (tie 3=3 -> lowest index), 0  -> correct 1,1,1 -> OCT 1
#   sample 1 (y=1): preds 0, 1, 1                            -> correct 0,1,1 -> OCT 2
#   sample 2 (y=2): preds 2, 1, 2                            -> correct 1,0,1 -> OCT 3
#   sample 3 (y=0): preds 1, 1, 1                            -> wrong at T    -> OCT 3 (= T)


@st.composite
def runs(draw, max_t=6, max_n=10, max_k=4):
    """Small cumulative outputs with many ties (integer steps in -2..2), and labels."""
    t, n, k = draw(st.integers(1, max_t)), draw(st.integers(1, max_n)), draw(st.integers(2, max_k))
    steps = draw(hnp.arrays(np.int8, (t, n, k), elements=st.integers(-2, 2)))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return np.cumsum(steps, axis=0).astype(np.float32), labels


def ref_oct(y_cum, labels):
    t_max, n_samples, _ = y_cum.shape
    out = []
    for n in range(n_samples):
        ok = [int(np.argmax(y_cum[t, n])) == labels[n] for t in range(t_max)]
        out.append(next((t + 1 for t in range(t_max) if all(ok[t:])), t_max))
    return out


# ----------------------------------------------------------------------------- hand values
def test_hand_accuracy_per_timestep():
    acc = metrics.accuracy_per_timestep(HAND, HAND_LABELS)
    assert acc.dtype == np.float64
    np.testing.assert_array_equal(acc, [0.5, 0.5, 0.75])


def test_hand_oct_and_predictions():
    octs = metrics.oct(HAND, HAND_LABELS)
    assert octs.dtype == np.int64
    np.testing.assert_array_equal(octs, [1, 2, 3, 3])
    np.testing.assert_array_equal(
        metrics.predictions(HAND), [[0, 0, 2, 1], [0, 1, 1, 1], [0, 1, 2, 1]]
    )


def test_hand_exits():
    steps = np.array([3, 2, 1, 2])
    np.testing.assert_array_equal(metrics.predict_at_exit(HAND, steps), [0, 1, 2, 1])
    assert metrics.evaluate_exits(HAND, HAND_LABELS, steps) == (0.75, 2.0)
    # exiting at the OCT gives exactly the accuracy at T (the oracle's defining property)
    acc, avg = metrics.evaluate_exits(HAND, HAND_LABELS, metrics.oct(HAND, HAND_LABELS))
    assert (acc, avg) == (0.75, 2.25)
    assert metrics.average_timestep(steps) == 2.0
    assert metrics.average_timestep(torch.tensor([1, 1, 4]), t_max=4) == 2.0


def test_latency_ratios():
    assert metrics.fewer_timesteps(8, 2.0) == 4.0
    acc = np.array([0.2, 0.5, 0.7, 0.7, 0.9])
    assert metrics.fewer_timesteps_matched(acc, 0.7, 1.5) == 2.0  # t=3 is the first >= 0.7
    assert metrics.fewer_timesteps_matched(acc, 0.0, 2.0) == 0.5
    assert math.isnan(metrics.fewer_timesteps_matched(acc, 0.95, 2.0))  # no fixed T reaches it
    assert metrics.best_fixed_t(acc) == (5, 0.9)
    assert metrics.best_fixed_t([0.3, 0.8, 0.8, 0.1]) == (2, 0.8)  # tie -> earliest t


# ----------------------------------------------------------------------------- properties
@SETTINGS
@given(runs())
def test_oct_matches_brute_force(run):
    y_cum, labels = run
    np.testing.assert_array_equal(metrics.oct(y_cum, labels), ref_oct(y_cum, labels))


@SETTINGS
@given(runs())
def test_oracle_exit_has_accuracy_at_t_max_and_never_later_than_t(run):
    y_cum, labels = run
    octs = metrics.oct(y_cum, labels)
    assert octs.min() >= 1 and octs.max() <= y_cum.shape[0]
    acc, _ = metrics.evaluate_exits(y_cum, labels, octs)
    assert acc == metrics.accuracy_per_timestep(y_cum, labels)[-1]


@SETTINGS
@given(runs())
def test_accuracy_matches_brute_force(run):
    y_cum, labels = run
    ref = [
        np.mean([np.argmax(y_cum[t, n]) == labels[n] for n in range(len(labels))])
        for t in range(y_cum.shape[0])
    ]
    np.testing.assert_array_equal(metrics.accuracy_per_timestep(y_cum, labels), ref)


@SETTINGS
@given(runs(), st.data())
def test_numpy_and_torch_give_identical_results(run, data):
    y_cum, labels = run
    steps = data.draw(hnp.arrays(np.int64, labels.shape, elements=st.integers(1, len(y_cum))))
    yt, lt, st_ = torch.from_numpy(y_cum), torch.from_numpy(labels), torch.from_numpy(steps)
    for fn, args_np, args_t in [
        (metrics.oct, (y_cum, labels), (yt, lt)),
        (metrics.accuracy_per_timestep, (y_cum, labels), (yt, lt)),
        (metrics.predictions, (y_cum,), (yt,)),
        (metrics.predict_at_exit, (y_cum, steps), (yt, st_)),
    ]:
        a, b = fn(*args_np), fn(*args_t)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert metrics.evaluate_exits(y_cum, labels, steps) == metrics.evaluate_exits(yt, lt, st_)


# ----------------------------------------------------------------------------- bad inputs
BAD = [
    (lambda: metrics.oct(HAND[0], HAND_LABELS), r"cum_outputs must be 3-D \[T, N, K\].*\(4, 3\)"),
    (lambda: metrics.oct(HAND[:0], HAND_LABELS), r"cum_outputs needs T \(timesteps\) >= 1"),
    (lambda: metrics.oct(HAND[:, :0], HAND_LABELS[:0]), r"N \(samples\) >= 1"),
    (lambda: metrics.oct(HAND[..., :1], HAND_LABELS), r"K \(classes\) >= 2.*\(3, 4, 1\)"),
    (
        lambda: metrics.oct(HAND, HAND_LABELS[:3]),
        r"labels must have shape \[N\] = \(4,\); got shape \(3,\)",
    ),
    (lambda: metrics.oct(HAND, HAND_LABELS[:, None]), r"labels must have shape \[N\].*\(4, 1\)"),
    (
        lambda: metrics.oct(HAND, HAND_LABELS + 1),
        r"labels must lie in \[0, 2\]; got values from 1 to 3",
    ),
    (
        lambda: metrics.oct(HAND, HAND_LABELS - 1),
        r"labels must lie in \[0, 2\]; got values from -1",
    ),
    (
        lambda: metrics.oct(HAND, HAND_LABELS.astype(float)),
        r"labels must hold integer class indices",
    ),
    (lambda: metrics.predict_at_exit(HAND, [1, 2, 3, 4]), r"exit_steps must lie in \[1, 3\]"),
    (lambda: metrics.predict_at_exit(HAND, [0, 1, 1, 1]), r"exit_steps must lie in \[1, 3\]"),
    (
        lambda: metrics.evaluate_exits(HAND, HAND_LABELS, [1, 1]),
        r"exit_steps must have shape \[N\] = \(4,\)",
    ),
    (lambda: metrics.average_timestep([0, 2]), r"exit_steps must lie in \[1, 2\]"),
    (lambda: metrics.average_timestep([[1]]), r"exit_steps must be 1-D \[N\]"),
    (lambda: metrics.average_timestep([1, 5], t_max=4), r"exit_steps must lie in \[1, 4\]"),
    (lambda: metrics.fewer_timesteps(0, 1.0), r"t_max must be a finite number > 0; got 0"),
    (lambda: metrics.fewer_timesteps(4, float("nan")), r"avg_timestep must be .* > 0; got nan"),
    (
        lambda: metrics.fewer_timesteps_matched([0.5], 1.5, 1.0),
        r"accuracy must be a finite number in \[0, 1\]; got 1.5",
    ),
    (lambda: metrics.fewer_timesteps_matched([[0.5]], 0.5, 1.0), r"acc_per_t must be 1-D \[T\]"),
    (lambda: metrics.best_fixed_t([]), r"acc_per_t must be 1-D \[T\] with T >= 1"),
    (lambda: metrics.best_fixed_t([0.1, float("nan")]), r"acc_per_t must be finite"),
    (lambda: metrics.check_t(0, 3), r"t \(.*\) must be an integer in \[1, 3\]; got 0"),
    (lambda: metrics.check_t(1.0, 3), r"t \(.*\) must be an integer in \[1, 3\]; got 1\.0"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_inputs_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_outputs_are_located(bad):
    y = HAND.copy()
    y[1, 2, 0] = bad
    msg = r"cum_outputs must be finite; found 1 NaN/inf values, the first at .* = \[1, 2, 0\]"
    for arr in (y, torch.from_numpy(y)):
        with pytest.raises(ValueError, match=msg):
            metrics.accuracy_per_timestep(arr, HAND_LABELS)


def test_wrong_type_is_a_type_error():
    with pytest.raises(
        TypeError, match="cum_outputs must be a numpy array or torch tensor; got str"
    ):
        metrics.oct("outputs", HAND_LABELS)
