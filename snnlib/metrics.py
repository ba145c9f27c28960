"""Metrics on stored per-timestep outputs: accuracy per timestep, OCT, latency ratios.

Every function takes cumulative outputs ``cum_outputs`` of shape ``[T, N, K]``: time first,
``Y(t) = Σ_{τ≤t} o_τ`` summed (not averaged) over the first ``t`` steps, ``t = 1..T``
(docs/method.md §1.1). numpy arrays and torch tensors are both accepted and converted once at the
boundary; results are numpy (``float64`` accuracies, ``int64`` timesteps). Timesteps are
1-based everywhere. Accuracies are fractions in ``[0, 1]``, not percentages.

The prediction at ``t`` is ``argmax_k Y_k(t)``; on a tie the lowest class index wins, as in
``torch.argmax`` and ``numpy.argmax``.

The input checks that this module and :mod:`snnlib.cutoff` share live here (``as_outputs``,
``as_labels``, ``as_steps``, ``check_t``), so a bad argument fails the same way everywhere: a
``ValueError`` that names the argument, what was given and what is allowed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from snnlib import checks

__all__ = [
    "accuracy_per_timestep",
    "average_timestep",
    "best_fixed_t",
    "evaluate_exits",
    "fewer_timesteps",
    "fewer_timesteps_matched",
    "oct",
    "predict_at_exit",
    "predictions",
]


# ----------------------------------------------------------------------------- input checks
def _to_tensor(value, name: str) -> torch.Tensor:
    """A CPU tensor view of ``value`` (numpy array, tensor, or nested list of numbers)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if not isinstance(value, np.ndarray | list | tuple):
        raise TypeError(f"{name} must be a numpy array or torch tensor; got {type(value).__name__}")
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold numbers; got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def as_outputs(cum_outputs, name: str = "cum_outputs") -> torch.Tensor:
    """Check cumulative outputs and return them as a CPU tensor ``[T, N, K]``.

    ``float64`` stays ``float64``; every other dtype becomes ``float32`` (the dtype of run
    records). Needs ``T >= 1``, ``N >= 1``, ``K >= 2`` and finite values.
    """
    x = _to_tensor(cum_outputs, name)
    if x.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D [T, N, K] (time first, cumulative); got shape {tuple(x.shape)}"
        )
    for axis, (size, least) in enumerate(zip(x.shape, (1, 1, 2), strict=True)):
        if size < least:
            what = ("T (timesteps)", "N (samples)", "K (classes)")[axis]
            raise ValueError(f"{name} needs {what} >= {least}; got shape {tuple(x.shape)}")
    if x.dtype != torch.float64:
        x = x.float()
    lo, hi = torch.aminmax(x)  # one cheap pass; NaN propagates into both
    if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
        bad = torch.nonzero(~torch.isfinite(x))
        raise ValueError(
            f"{name} must be finite; found {len(bad)} NaN/inf values, the first at "
            f"[t, n, k] = {bad[0].tolist()}"
        )
    return x


def _as_integers(value, name: str, n: int, lo: int, hi: int, what: str) -> torch.Tensor:
    t = _to_tensor(value, name)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape [N] = ({n},); got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer {what}; got dtype {t.dtype}")
    t = t.long()
    tmin, tmax = int(t.min()), int(t.max())
    if tmin < lo or tmax > hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}]; got values from {tmin} to {tmax}")
    return t


def as_labels(labels, n: int, k: int, name: str = "labels") -> torch.Tensor:
    """Check class labels: integer ``[N]`` with values in ``[0, K)``; returns ``int64``."""
    return _as_integers(labels, name, n, 0, k - 1, "class indices")


def as_steps(exit_steps, t_max: int, n: int, name: str = "exit_steps") -> torch.Tensor:
    """Check exit timesteps: integer ``[N]`` with values in ``1..T``; returns ``int64``."""
    return _as_integers(exit_steps, name, n, 1, t_max, "1-based timesteps")


def check_t(t, t_max: int, name: str = "t") -> int:
    """Check a 1-based timestep ``t`` in ``1..T``."""
    return checks.integer(f"{name} (a 1-based timestep)", t, low=1, high=t_max)


def _as_curve(acc_per_t, name: str = "acc_per_t") -> np.ndarray:
    a = _to_tensor(acc_per_t, name).double().numpy()
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"{name} must be 1-D [T] with T >= 1; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got {a.tolist()}")
    return a


def _positive(value, name: str) -> float:
    return checks.number(name, value, low=0, low_open=True)


# ----------------------------------------------------------------------------- tensor cores
def fraction(mask: torch.Tensor) -> float:
    """Share of True entries, as ``count / N`` (the same float for the same count everywhere)."""
    return int(mask.sum()) / mask.numel()


def correct_per_timestep(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``a(t, n) = 1[argmax_k Y_k(t, n) = y_n]`` as a bool tensor ``[T, N]`` (checked inputs)."""
    return x.argmax(dim=-1) == y  # [T, N]; ties -> lowest index


def suffix_correct(correct: torch.Tensor) -> torch.Tensor:
    """``S(t, n) = Π_{t' ≥ t} a(t', n)``: correct at ``t`` and at every later step. ``[T, N]``."""
    flipped = correct.flip(0).to(torch.uint8)
    return flipped.cumprod(dim=0).flip(0).bool()


def oct_from_correct(correct: torch.Tensor) -> torch.Tensor:
    """OCT (§1.6) from ``correct`` ``[T, N]`` (:func:`correct_per_timestep`): ``int64 [N]``."""
    t_max = correct.shape[0]
    trailing = suffix_correct(correct).sum(dim=0)  # length of the correct run that ends at T
    return t_max + 1 - trailing.clamp(min=1)


def exit_accuracy(correct: torch.Tensor, steps: torch.Tensor) -> float:
    """Accuracy of the predictions at ``steps`` (``[N]``, 1-based) given ``correct`` ``[T, N]``."""
    return fraction(correct[steps - 1, torch.arange(correct.shape[1])])


# ----------------------------------------------------------------------------- public metrics
def predictions(cum_outputs) -> np.ndarray:
    """``argmax_k Y_k(t, n)`` for every ``t`` and ``n``: ``int64 [T, N]`` (ties -> lowest k)."""
    return as_outputs(cum_outputs).argmax(dim=-1).numpy()


def accuracy_per_timestep(cum_outputs, labels) -> np.ndarray:
    """Fixed-timestep accuracy curve (docs/method.md §1.8): ``acc(t) = (1/N) Σ_n a(t, n)``.

    This is the accuracy of an SNN stopped at ``t`` for every sample; ``float64 [T]``.
    """
    x = as_outputs(cum_outputs)
    y = as_labels(labels, x.shape[1], x.shape[2])
    correct = correct_per_timestep(x, y)
    return np.array([fraction(c) for c in correct], dtype=np.float64)


def oct(cum_outputs, labels) -> np.ndarray:
    """Optimal Cutoff Timestep, the oracle exit (docs/method.md §1.6): ``int64 [N]``, 1-based.

    ``g(n) = min{ t : argmax Y(t', n) = y_n  for every t' in [t, T] }``, and ``g(n) = T`` when
    the sample is wrong at ``T`` (as in the official code). It needs the label and the future,
    so it is an offline upper bound: exiting at ``g(n)`` gives exactly the accuracy at ``T``.
    """
    x = as_outputs(cum_outputs)
    y = as_labels(labels, x.shape[1], x.shape[2])
    return oct_from_correct(correct_per_timestep(x, y)).numpy()


def predict_at_exit(cum_outputs, exit_steps) -> np.ndarray:
    """Prediction at each sample's exit: ``argmax_k Y_k(τ(n), n)``; ``int64 [N]``."""
    x = as_outputs(cum_outputs)
    steps = as_steps(exit_steps, x.shape[0], x.shape[1])
    return x[steps - 1, torch.arange(x.shape[1])].argmax(dim=-1).numpy()


def evaluate_exits(cum_outputs, labels, exit_steps) -> tuple[float, float]:
    """Accuracy at the exits and the average timestep ``(1/N) Σ_n τ(n)`` (docs/method.md §1.7.2)."""
    x = as_outputs(cum_outputs)
    y = as_labels(labels, x.shape[1], x.shape[2])
    steps = as_steps(exit_steps, x.shape[0], x.shape[1])
    return exit_accuracy(correct_per_timestep(x, y), steps), float(steps.double().mean())


def average_timestep(exit_steps, t_max: int | None = None) -> float:
    """Mean 1-based exit timestep ``(1/N) Σ_n τ(n)`` (docs/method.md §1.8).

    Steps must be integers ``>= 1`` (and ``<= t_max`` when it is given).
    """
    s = _to_tensor(exit_steps, "exit_steps")
    if s.ndim != 1 or s.numel() < 1:
        raise ValueError(f"exit_steps must be 1-D [N] with N >= 1; got shape {tuple(s.shape)}")
    hi = t_max if t_max is not None else max(int(s.max()), 1)
    return float(as_steps(s, hi, s.shape[0]).double().mean())


def fewer_timesteps(t_max: int, avg_timestep: float) -> float:
    """The "× fewer timesteps" against the full window: ``T_max / avg_timestep``.

    The paper's exact definition is unknown (docs/method.md §1.8 and §6, question 4); this is one
    of the two readings, :func:`fewer_timesteps_matched` is the other.
    """
    return _positive(t_max, "t_max") / _positive(avg_timestep, "avg_timestep")


def fewer_timesteps_matched(acc_per_t, accuracy: float, avg_timestep: float) -> float:
    """The "× fewer timesteps" against a fixed-T SNN of the same accuracy.

    ``t_match = min{ t : acc(t) >= accuracy }`` (1-based, from the fixed-timestep curve), and
    the ratio is ``t_match / avg_timestep``. When no fixed ``t`` reaches ``accuracy`` (the
    dynamic exit beats every fixed window), the ratio is undefined and ``nan`` is returned,
    so a table shows the gap instead of a made-up number.
    """
    a = _as_curve(acc_per_t)
    accuracy = checks.number("accuracy", accuracy, low=0, high=1)
    avg = _positive(avg_timestep, "avg_timestep")
    reached = np.flatnonzero(a >= accuracy)
    return float("nan") if reached.size == 0 else (int(reached[0]) + 1) / avg


def best_fixed_t(acc_per_t) -> tuple[int, float]:
    """The best fixed window: ``(t*, acc(t*))`` with ``t* = argmax_t acc(t)``, 1-based.

    On a tie the earliest ``t`` wins (``numpy.argmax``).
    """
    a = _as_curve(acc_per_t)
    t = int(np.argmax(a))
    return t + 1, float(a[t])
