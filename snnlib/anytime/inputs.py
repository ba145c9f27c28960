"""The inputs of an anytime run: what the live samples see at each step.

:class:`Inputs` serves a static input repeated at every step, a time-first sequence, or an
input function, for the samples still live (:mod:`snnlib.anytime`); :func:`call_steps`
and :func:`call_window` run a network adapter on a window of steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from snnlib import checks

# Input of step t (1-based) for the live samples (their original indices) -> [n_live, ...].
InputFn = Callable[[int, Tensor], Tensor]


class Inputs:
    """Serves the input of the live samples: a static ``[N, ...]`` tensor repeated at every
    step, a time-first sequence ``[T, N, ...]`` (``sequence=True``), or a function
    ``x(t, live_indices) -> [n_live, ...]``."""

    def __init__(self, x, t_max, sequence: bool, num_samples) -> None:
        self.fn: InputFn | None = None
        self.sequence = bool(sequence)
        if isinstance(x, Tensor):
            if self.sequence:
                if x.dim() < 2:
                    raise ValueError(f"x must be [T, N, ...] with sequence=True; got {x.shape}")
                t_max = x.shape[0] if t_max is None else checks.integer("t_max", t_max, low=1)
                if t_max > x.shape[0]:
                    raise ValueError(
                        f"t_max={t_max} must be <= the sequence length T={x.shape[0]} of x "
                        f"(shape {tuple(x.shape)})"
                    )
                self.n = x.shape[1]
            else:
                if x.dim() < 1:
                    raise ValueError("x must be [N, ...] (static) or [T, N, ...] (sequence=True)")
                self.n = x.shape[0]
            if num_samples is not None and num_samples != self.n:
                raise ValueError(f"num_samples={num_samples!r} does not match x: N={self.n}")
            self.x = x
            self.device = x.device
        elif callable(x):
            if sequence:
                raise ValueError("sequence=True applies to a tensor x, not to an input function")
            why = "num_samples (needed with an input function)"
            self.n = checks.integer(why, num_samples, low=1)
            self.fn, self.x, self.device = x, None, torch.device("cpu")
        else:
            raise ValueError(f"x must be a tensor or a function (t, live) -> x_t; got {type(x)}")
        if t_max is None:
            raise ValueError("t_max is needed for a static input or an input function")
        self.t_max = checks.integer("t_max", t_max, low=1)
        if self.n < 1:
            raise ValueError(f"x holds no samples (N = 0); shape {tuple(x.shape)}")

    def window(self, t0: int, k: int, live: Tensor, full: bool) -> Tensor:
        """Inputs of steps ``t0+1 .. t0+k`` for the live samples: ``[k, n, ...]``."""
        if self.fn is not None:
            return torch.stack([self.fn(t0 + j + 1, live) for j in range(k)])
        if not self.sequence:
            return self.x.unsqueeze(0).expand(k, *self.x.shape)
        w = self.x[t0 : t0 + k]
        return w if full else w.index_select(1, live)

    def keep(self, rest: Tensor) -> None:
        """Keep the samples at positions ``rest`` (int64) of the live batch."""
        if self.fn is None and not self.sequence:
            self.x = self.x.index_select(0, rest)


def call_steps(adapter, inputs: Inputs, t0: int, k: int, live: Tensor, full: bool) -> Tensor:
    """Per-step outputs ``[k, n, K]`` of steps ``t0+1 .. t0+k`` (one call when possible)."""
    return call_window(adapter, inputs.window(t0, k, live, full))


def call_window(adapter, x: Tensor) -> Tensor:
    """Per-step outputs ``[k, n, K]`` of the inputs ``x`` ``[k, n, ...]`` (one call when
    possible), continuing the adapter's state."""
    if x.shape[0] == 1:
        return adapter.step(x[0]).unsqueeze(0)
    if getattr(adapter, "steps", None) is not None:
        return adapter.steps(x)
    return torch.stack([adapter.step(x_t) for x_t in x])
