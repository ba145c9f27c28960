"""Stopping rules for anytime SNN inference, and the Top-K gap cutoff (docs/method.md §1.7).

A *stopping rule* looks at the cumulative output ``Y(t)`` of a batch after step ``t`` and says
which samples may stop. Every rule here is a small frozen dataclass with two methods::

    rule.stop(y_t, t) -> BoolTensor [N]   # y_t: [N, K] cumulative output, t: 1-based step
    rule.check(T, K)                       # ValueError if the rule cannot run on T steps, K classes

The anytime engine calls ``stop`` on a live batch after each step; :func:`exit_steps` calls the
same ``stop`` on stored outputs ``[T, N, K]``, so the offline evaluation and the engine share
one implementation. The exit of sample ``n`` is the first ``t`` whose ``stop`` is true, else
``T``. Rules: :class:`TopK` (the paper), :class:`FixedT`, :class:`Confidence` (SEENN-I,
Dynamic Confidence), :class:`Entropy` (DT-SNN). The oracle (OCT, docs/method.md §1.6) needs labels
and the future, so it is offline only: :func:`snnlib.metrics.oct`.

Sweeps (:func:`sweep`, :func:`epsilon_sweep`, :func:`evaluate_rules`) give one row per
parameter with the columns of the run record's ``cutoff.csv`` (:data:`CUTOFF_COLUMNS`); what
each policy sweeps is one table, :data:`POLICIES`. Inputs follow :mod:`snnlib.metrics`:
numpy or torch in, numpy out, timesteps 1-based, accuracies as fractions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from snnlib import checks
from snnlib.config import DEFAULT_EPSILONS
from snnlib.metrics import (
    as_labels,
    as_outputs,
    check_t,
    correct_per_timestep,
    exit_accuracy,
    fraction,
    oct_from_correct,
    suffix_correct,
)

CUTOFF_COLUMNS = ("policy", "parameter", "accuracy", "avg_timestep", "speedup", "acc_delta")


class StoppingRule(Protocol):
    """What the anytime engine and :func:`exit_steps` need from a rule."""

    def stop(self, y_t: torch.Tensor, t: int) -> torch.Tensor: ...

    def check(self, t_max: int, k: int) -> None: ...


# ----------------------------------------------------------------------------- helpers
def _live(y_t, name: str = "y_t") -> torch.Tensor:
    """Shape checks for one step of a live batch. No NaN scan: it would cost a device sync."""
    y = torch.as_tensor(y_t)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"{name} must be 2-D [N, K] with K >= 2; got shape {tuple(y.shape)}")
    return y if y.is_floating_point() else y.float()


def gap_and_pred(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Y_gap = Top1(Y) − Top2(Y)`` over the last axis, in ``y``'s dtype, and ``argmax Y``.

    Tied top values give a gap of 0; the argmax is the lowest tied index.
    """
    top1, pred = y.max(dim=-1)  # first maximal index, like argmax
    rest = y.clone().scatter_(-1, pred.unsqueeze(-1), float("-inf"))
    return top1 - rest.amax(dim=-1), pred


def check_epsilon(epsilon) -> float:
    return checks.number("epsilon", epsilon, low=0, high=1, high_open=True)


def check_bins(bins) -> int:
    return checks.integer("bins (M, the β grid size)", bins, low=2)


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class TopK:
    """Top-K gap cutoff (docs/method.md §1.7): stop at ``t`` when ``Y_gap(t, n) > β_t``.

    ``Y_gap(t, n) = Top1(Y(t, n)) − Top2(Y(t, n))`` on the raw cumulative outputs (no softmax,
    no division by ``t``), computed in the outputs' dtype; the comparison with ``β_t`` is in
    float64. ``betas`` is the per-timestep vector ``[T]`` from :func:`calibrate_topk`. A tie at
    the top gives a gap of 0, which never exceeds ``β_t >= 0``.
    """

    betas: tuple[float, ...]

    def __post_init__(self):
        b = self.betas.detach().cpu().numpy() if torch.is_tensor(self.betas) else self.betas
        b = np.asarray(b, dtype=np.float64)
        if b.ndim != 1 or b.size < 1:
            raise ValueError(f"betas must be 1-D [T] with T >= 1; got shape {b.shape}")
        if np.isnan(b).any():
            raise ValueError(f"betas must not contain NaN; got {b.tolist()}")
        object.__setattr__(self, "betas", tuple(float(v) for v in b))

    def check(self, t_max: int, k: int) -> None:
        if len(self.betas) != t_max:
            raise ValueError(
                f"betas must have shape [T] = ({t_max},) to match the outputs; "
                f"got shape ({len(self.betas)},)"
            )

    def stop(self, y_t, t: int) -> torch.Tensor:
        y = _live(y_t)
        t = check_t(t, len(self.betas))
        gap = gap_and_pred(y)[0]
        gap = gap if gap.device.type == "mps" else gap.double()  # exact compare; MPS: no f64
        return gap > self.betas[t - 1]


@dataclass(frozen=True)
class FixedT:
    """Fixed window: every sample stops at step ``t`` (the usual SNN; docs/method.md §1.8)."""

    t: int

    def __post_init__(self):
        checks.integer("FixedT.t (a 1-based timestep)", self.t, low=1)

    def check(self, t_max: int, k: int) -> None:
        check_t(self.t, t_max, name="FixedT.t")

    def stop(self, y_t, t: int) -> torch.Tensor:
        y = _live(y_t)
        return torch.full((y.shape[0],), t >= self.t, dtype=torch.bool, device=y.device)


@dataclass(frozen=True)
class _SoftmaxRule:
    threshold: float
    temperature: float = 1.0
    logits: str = "sum"

    def __post_init__(self):
        checks.number(f"{type(self).__name__}.threshold", self.threshold, low=0, high=1)
        checks.number("temperature", self.temperature, low=0, low_open=True)
        checks.one_of("logits", self.logits, ("sum", "mean"))

    def check(self, t_max: int, k: int) -> None:
        pass

    def _log_probs(self, y_t, t: int) -> torch.Tensor:
        y = _live(y_t)
        checks.integer("t (a 1-based timestep)", t, low=1)
        return torch.log_softmax(y / (self.temperature * (t if self.logits == "mean" else 1)), -1)


@dataclass(frozen=True)
class Confidence(_SoftmaxRule):
    """Max-softmax confidence (SEENN-I, Dynamic Confidence; SNC ``ConfCutoff``).

    ``p(t) = softmax(Z(t) / temperature)`` with ``Z(t) = Y(t)`` (``logits="sum"``, the
    cumulative sum, as in SEENN ``test_snn.py`` and SNC) or ``Z(t) = Y(t) / t``
    (``logits="mean"``, the running mean). Stop when ``max_k p_k(t) > threshold`` (strict, as
    in all three codes); ``threshold`` in ``[0, 1]``. The Dynamic Confidence demo is
    ``logits="sum", temperature=30`` (it divides every step's output by 30) with threshold
    0.6; SNC's ``ConfCutoff`` uses ``threshold = 1 − ε``. Dynamic Confidence's "confidence
    smoothing" is not included.
    """

    def stop(self, y_t, t: int) -> torch.Tensor:
        return self._log_probs(y_t, t).amax(dim=-1).exp() > self.threshold


@dataclass(frozen=True)
class Entropy(_SoftmaxRule):
    """Normalised entropy (DT-SNN; SEENN ``metric='entropy'``).

    ``H(t) = −Σ_k p_k(t) log p_k(t) / log K`` in ``[0, 1]``, with ``p(t)`` as in
    :class:`Confidence` (``logits``, ``temperature``). Stop when ``H(t) < threshold``
    (strict; ``threshold`` in ``[0, 1]``): DT-SNN stops when the entropy falls below a
    threshold. SEENN's code tests ``1 − H > t_seenn``, i.e. ``Entropy(threshold=1 − t_seenn)``.
    """

    def stop(self, y_t, t: int) -> torch.Tensor:
        lp = self._log_probs(y_t, t)
        return -(lp.exp() * lp).sum(dim=-1) / math.log(lp.shape[-1]) < self.threshold


def checked_stop(rule: StoppingRule, y_t: torch.Tensor, t: int) -> torch.Tensor:
    """``rule.stop(y_t, t)``, checked to be a bool tensor ``[N]`` (``ValueError`` otherwise)."""
    stop, n = rule.stop(y_t, t), y_t.shape[0]
    if stop.shape != (n,) or stop.dtype != torch.bool:
        raise ValueError(
            f"{type(rule).__name__}.stop must return a bool tensor of shape [N] = ({n},); "
            f"got {stop.dtype} of shape {tuple(stop.shape)}"
        )
    return stop


def _exit_steps(rule: StoppingRule, x: torch.Tensor) -> torch.Tensor:
    t_max, n, k = x.shape
    rule.check(t_max, k)
    steps = torch.full((n,), t_max, dtype=torch.int64)
    pending = torch.ones(n, dtype=torch.bool)
    for t in range(1, t_max):  # the exit at T is forced, so step T is not asked
        now = checked_stop(rule, x[t - 1], t) & pending
        steps[now] = t
        pending &= ~now
    return steps


def exit_steps(rule: StoppingRule, cum_outputs) -> np.ndarray:
    """Apply a rule to stored outputs: ``τ(n) = min{ t : rule.stop(Y(t), t)[n] }``, else ``T``.

    Returns ``int64 [N]``, 1-based. Loops over ``t`` only (vectorised over samples).
    """
    return _exit_steps(rule, as_outputs(cum_outputs)).numpy()


# ----------------------------------------------------------------------------- Top-K
def topk_gap(cum_outputs) -> np.ndarray:
    """``Y_gap(t, n) = Top1(Y(t, n)) − Top2(Y(t, n))``, ``float64 [T, N]`` (docs/method.md §1.7)."""
    return gap_and_pred(as_outputs(cum_outputs))[0].double().numpy()


def _confidence_rate(x: torch.Tensor, y: torch.Tensor, bins: int):
    gap, pred = gap_and_pred(x)
    gap = gap.double()  # [T, N]; float32 gaps are exact in float64
    s = suffix_correct(pred == y)  # [T, N]  S(t, n)
    grid = torch.arange(bins, dtype=torch.float64) * gap.max().item() / bins  # (m·G)/M

    def count_above(v: torch.Tensor) -> torch.Tensor:  # #{n : v(t, n) > β_m} as [T, M]
        srt = v.sort(dim=-1).values
        at_most = torch.searchsorted(srt, grid.expand(v.shape[0], bins).contiguous(), right=True)
        return v.shape[1] - at_most

    num = count_above(gap.masked_fill(~s, -math.inf))  # S = 0 never counts
    return num.double() / count_above(gap).double(), grid  # 0/0 -> NaN


def confidence_rate(cum_outputs, labels, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The confidence-rate map ``C(t, β_m)`` and its grid (docs/method.md §1.7.1, steps 3-5).

    With ``a(t, n) = 1[argmax Y(t, n) = y_n]`` and the suffix product
    ``S(t, n) = Π_{t' ≥ t} a(t', n)`` (correct from ``t`` to ``T``; ``= 1[OCT(n) ≤ t]`` for
    samples correct at ``T``), the grid is ``β_m = m·G/M``, ``m = 0..M−1``, ``M = bins``,
    ``G = max_{t,n} Y_gap(t, n)``, and::

        C(t, β_m) = Σ_n 1[Y_gap(t, n) > β_m] · S(t, n)  /  Σ_n 1[Y_gap(t, n) > β_m]

    ``C`` is ``float64 [T, M]`` with ``nan`` where no sample has a gap above ``β_m`` (0/0);
    the last bin is *not* forced to 1 here (that is :func:`calibrate_topk`'s step), so the map
    shows the data. ``grid`` is ``float64 [M]``, computed as ``(m·G)/M`` in float64.
    """
    x = as_outputs(cum_outputs)
    y = as_labels(labels, x.shape[1], x.shape[2])
    c, grid = _confidence_rate(x, y, check_bins(bins))
    return c.numpy(), grid.numpy()


def _select_betas(c: torch.Tensor, grid: torch.Tensor, epsilon: float) -> torch.Tensor:
    c = c.clone()
    c[:, -1] = 1.0  # forced, as in the official code, so that a threshold always exists
    ok = c >= 1.0 - epsilon  # nan (no sample above β) compares False: not satisfied
    return grid[ok.to(torch.uint8).argmax(dim=1)]  # first satisfied bin m*(t)


def _warn_if_flat(grid: torch.Tensor) -> None:
    if grid[-1] == 0:
        warnings.warn(
            "every calibration gap Y_gap(t, n) is 0 (G = 0): the β grid collapses to 0 and the "
            "forced last bin gives β_t = 0, so any test sample with a positive gap exits at t=1",
            RuntimeWarning,
            stacklevel=3,
        )


def calibrate_topk(cum_outputs, labels, epsilon: float, bins: int = 100) -> np.ndarray:
    """Per-timestep thresholds ``β_t`` of the Top-K cutoff (docs/method.md §1.7.1, step 6).

    ``β_t = β_{m*(t)}`` with ``m*(t) = min{ m : C(t, β_m) ≥ 1 − ε }``, where ``C`` is
    :func:`confidence_rate` with ``C(t, β_{M−1})`` forced to 1 (so ``m*`` always exists) and
    ``nan`` counting as not satisfied. Returns ``float64 [T]``; ``ε`` in ``[0, 1)``,
    ``bins = M >= 2``. The official code calibrates on the training set with dropout 0.3;
    which outputs to pass is the caller's choice.

    Degenerate case ``G = 0`` (every calibration gap is 0, e.g. all outputs tied): the grid is
    all zeros, ``C`` is ``nan`` below the last bin, and the formula gives ``β_t = 0`` for
    every ``t``; this is returned as specified, with a ``RuntimeWarning``.
    """
    epsilon = check_epsilon(epsilon)
    x = as_outputs(cum_outputs)
    y = as_labels(labels, x.shape[1], x.shape[2])
    c, grid = _confidence_rate(x, y, check_bins(bins))
    _warn_if_flat(grid)
    return _select_betas(c, grid, epsilon).numpy()


def topk_exit(cum_outputs, betas) -> np.ndarray:
    """Top-K exits ``τ(n) = min{ t : Y_gap(t, n) > β_t }``, else ``T``: ``int64 [N]``, 1-based."""
    return exit_steps(TopK(betas), cum_outputs)


# ----------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class Policy:
    """What :func:`sweep` does for one policy: the rule class (``None``: the oracle, which has
    no rule), its default parameters (``None``: ``1..T`` for a rule, none for the oracle),
    whether its rules are calibrated (Top-K: β per ε) and whether it takes rule options."""

    rule: type | None
    defaults: tuple[float, ...] | None
    calibrated: bool = False
    options: bool = False


POLICIES = {
    "topk": Policy(TopK, DEFAULT_EPSILONS, calibrated=True),
    "fixed": Policy(FixedT, None),
    "confidence": Policy(Confidence, (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999), options=True),
    "entropy": Policy(Entropy, (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.001), options=True),
    "oracle": Policy(None, None),
}


def topk_rules(calib_outputs, calib_labels, epsilons=None, bins: int = 100) -> list[tuple]:
    """One :class:`TopK` rule per ε (default :data:`snnlib.config.DEFAULT_EPSILONS`), each
    calibrated on the calibration outputs as :func:`calibrate_topk` does; ``C(t, β)`` is
    computed once for all of them. Returns ``[(ε, rule), ...]``."""
    if calib_outputs is None or calib_labels is None:
        raise ValueError("policy 'topk' needs calib_outputs and calib_labels")
    xc = as_outputs(calib_outputs, "calib_outputs")
    c, grid = _confidence_rate(
        xc, as_labels(calib_labels, xc.shape[1], xc.shape[2], "calib_labels"), check_bins(bins)
    )
    _warn_if_flat(grid)
    eps = [check_epsilon(e) for e in (DEFAULT_EPSILONS if epsilons is None else epsilons)]
    return [(e, TopK(_select_betas(c, grid, e))) for e in eps]


def evaluate_rules(policy: str, rules, test_outputs, test_labels) -> pd.DataFrame:
    """One row of :data:`CUTOFF_COLUMNS` (plus ``betas``) per ``(parameter, rule)`` of
    ``rules`` on the test outputs; a rule ``None`` is the oracle (exit at the OCT)."""
    x = as_outputs(test_outputs, "test_outputs")
    t_max, n, k = x.shape
    correct = correct_per_timestep(x, as_labels(test_labels, n, k, "test_labels"))
    acc_t_max = fraction(correct[-1])
    rows = []
    for parameter, rule in rules:
        steps = oct_from_correct(correct) if rule is None else _exit_steps(rule, x)
        acc, avg = exit_accuracy(correct, steps), float(steps.double().mean())
        betas = rule.betas if isinstance(rule, TopK) else None
        rows.append((policy, float(parameter), acc, avg, t_max / avg, acc - acc_t_max, betas))
    return pd.DataFrame(rows, columns=[*CUTOFF_COLUMNS, "betas"])


def sweep(
    policy: str,
    test_outputs,
    test_labels,
    params=None,
    *,
    calib_outputs=None,
    calib_labels=None,
    bins: int = 100,
    **rule_options,
) -> pd.DataFrame:
    """Evaluate one policy over a range of its parameter on the test outputs.

    ``policy`` and its ``parameter`` (defaults from :data:`POLICIES`):

    - ``"topk"``: ε [0.00..0.09]; needs ``calib_outputs`` and ``calib_labels``. ``C`` is
      computed once and β re-selected per ε (:func:`topk_rules`; the official scripts
      recalibrate for each ε, with the same result).
    - ``"fixed"``: ``t`` [1..T];
    - ``"confidence"``, ``"entropy"``: threshold; ``rule_options`` (``temperature``,
      ``logits``) go to the rule;
    - ``"oracle"``: no parameter (``params`` must be None); one row, ``parameter = nan``.

    Returns a DataFrame with :data:`CUTOFF_COLUMNS` (what ``cutoff.csv`` holds:
    ``speedup = T / avg_timestep``, ``acc_delta = accuracy − acc(T)``) plus ``betas``
    (the tuple ``β_t`` for Top-K rows, None otherwise; leave it out of the CSV).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {tuple(POLICIES)}; got {policy!r}")
    spec = POLICIES[policy]
    if not spec.calibrated and (calib_outputs is not None or calib_labels is not None):
        raise ValueError(f"calib_outputs/labels are only used by 'topk'; got policy {policy!r}")
    if not spec.options and rule_options:
        raise ValueError(f"options {sorted(rule_options)} do not apply to policy {policy!r}")
    if spec.rule is None and params is not None:
        raise ValueError(f"policy {policy!r} takes no params; got {params!r}")
    x = as_outputs(test_outputs, "test_outputs")
    if spec.calibrated:
        xc = None if calib_outputs is None else as_outputs(calib_outputs, "calib_outputs")
        if xc is not None and (xc.shape[0] != x.shape[0] or xc.shape[2] != x.shape[2]):
            raise ValueError(
                f"calib_outputs must have the test outputs' T={x.shape[0]} and K={x.shape[2]}; "
                f"got shape {tuple(xc.shape)}"
            )
        rules = topk_rules(xc, calib_labels, params, bins)
    elif spec.rule is None:
        rules = [(math.nan, None)]
    else:
        default = range(1, x.shape[0] + 1) if spec.defaults is None else spec.defaults
        rules = [(p, spec.rule(p, **rule_options)) for p in (default if params is None else params)]
    return evaluate_rules(policy, rules, x, test_labels)


def epsilon_sweep(
    calib_outputs,
    calib_labels,
    test_outputs,
    test_labels,
    epsilons=DEFAULT_EPSILONS,
    bins: int = 100,
) -> pd.DataFrame:
    """Top-K ε sweep (docs/method.md §1.7.3): :func:`sweep` with ``policy="topk"``."""
    kw = {"calib_outputs": calib_outputs, "calib_labels": calib_labels, "bins": bins}
    return sweep("topk", test_outputs, test_labels, epsilons, **kw)
