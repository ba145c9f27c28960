"""Anytime inference: stop each sample as soon as a stopping rule fires, and save the work.

The offline evaluation (:mod:`snnlib.pipeline.evaluate`, :func:`snnlib.cutoff.exit_steps`) runs all
``T_max`` steps for every sample and picks the exit afterwards, so no time is saved. The
engine here runs a batch one timestep at a time, accumulates ``Y(t) = Σ_{τ≤t} o_τ``, asks
``rule.stop(Y(t), t)`` after every step (docs/method.md §1.7.2), and removes the samples that
stopped from the batch *and from every layer's state*, so each later step costs less::

    τ(n) = min{ t : rule.stop(Y(t), t)[n] }, else T_max       prediction: argmax_k Y_k(τ(n), n)

This is :func:`snnlib.cutoff.exit_steps` and :func:`snnlib.metrics.predict_at_exit` on the
stored cumulative outputs, evaluated online; the results are identical as long as a sample's
outputs do not depend on which other samples share its batch (eval mode; checked by the
adapters, verified bit for bit by ``tests/test_anytime.py``). ``Y`` is accumulated from the
float32 outputs in the dtype that ``torch.cumsum`` uses on the device (float64 on CPU), as
:func:`snnlib.pipeline.evaluate.collect_outputs` stores it, so the rules see the same bits.

Chunked mode (``chunk=k``) runs ``k`` steps per call ``[k, n_live, ...]`` (time folded into the
batch of the stateless layers, for throughput) and removes samples at chunk ends only. A
sample still exits at the first ``t`` inside the chunk where the rule fires, with the
prediction at that ``t``, so predictions and exit steps equal step mode's; only the work
saved is coarser (``sample_steps`` counts the steps actually run).

Stream mode (:func:`stream_anytime`) serves many samples with at most ``batch`` live: an
exited sample's place goes to the next waiting sample, restarted in place from a fresh state
(continuous batching: every layer state's ``restart``), so samples at different steps share
each call; each still runs exactly its own steps. Top-K compares each row's gap with its
own ``β_t`` in one call; other rules are asked once per distinct step in the batch. Once
nobody waits, ``tail`` lets the last few samples run several steps per call (about ``tail``
sample-steps each), which saves network calls for a little extra work.

The network is anything :class:`~snnlib.anytime.adapters.Steppable` (see
:mod:`snnlib.anytime.adapters`);
an snnlib model is wrapped in :class:`~snnlib.anytime.adapters.SnnlibAdapter` automatically.
Exactness needs a network whose numbers for a sample do not depend on the batch around it.
On a CPU that fails for a batch of one (matrix-vector kernels round differently), so
:class:`~snnlib.anytime.adapters.SnnlibAdapter` runs a lone sample as two copies; the other
adapters do not, and a last straggler's exit may then differ in rare near-tie cases.

Speed (``benchmarks/anytime_bench.py``; measured numbers in ``docs/benchmarks.md``): on a CPU
a step of the live batch costs little more than a step of the folded multi-step call, since the LIF
layers update their membranes in place; what keeps the speedup below
``T_max / avg exit step`` is the fixed cost of a network call, paid at every step by the last
few samples (``tail`` trades it for a little extra work). With glibc, keep freed memory for
reuse (``run_all.sh`` sets ``MALLOC_*``) or every step page-faults its activations afresh.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from snnlib import checks
from snnlib.anytime.adapters import as_steppable
from snnlib.anytime.inputs import Inputs, call_steps, call_window
from snnlib.cutoff import StoppingRule, TopK, checked_stop, gap_and_pred

__all__ = ["AnytimeResult", "cumulative_outputs", "run_anytime", "stream_anytime"]


@dataclass(frozen=True)
class AnytimeResult:
    """What one anytime run decided and how much work it did.

    ``predictions`` and ``exit_steps`` are ``int64 [N]`` (1-based steps), as
    :func:`snnlib.metrics.predict_at_exit` and :func:`snnlib.cutoff.exit_steps` return them.
    ``steps_run`` is the number of timesteps executed for the batch (the last exit, rounded up
    to a chunk end); ``sample_steps = Σ_calls k · n_live`` is the work done, which equals
    ``exit_steps.sum()`` in step mode. ``batch_sizes`` and ``call_steps`` are the live batch
    ``n_live`` and the number of steps ``k`` of every network call.
    """

    predictions: np.ndarray
    exit_steps: np.ndarray
    steps_run: int
    sample_steps: int
    t_max: int
    chunk: int
    batch_sizes: tuple[int, ...]
    call_steps: tuple[int, ...]

    @property
    def avg_exit_step(self) -> float:
        """``(1/N) Σ_n τ(n)``."""
        return float(self.exit_steps.mean())

    @property
    def work_fraction(self) -> float:
        """``sample_steps / (N · T_max)``: the share of the full run's work that was done."""
        return self.sample_steps / (self.exit_steps.size * self.t_max)


@functools.cache
def _cumsum_dtype(device_type: str) -> torch.dtype:
    """The dtype in which ``torch.cumsum`` accumulates float32 on this device.

    On CPU it is float64 (``acc_type``), rounded to float32 at each output; on CUDA float32.
    The engine accumulates the same way, so ``Y(t)`` equals the offline ``cumsum`` bit for bit.
    Probed with ``1 + 2⁻²⁴ + 2⁻²⁴``, which is ``1`` in float32 and ``1 + 2⁻²³`` in float64.
    """
    probe = torch.tensor([1.0, 2.0**-24, 2.0**-24], device=device_type).cumsum(0)
    return torch.float64 if probe[-1].item() > 1.0 else torch.float32


def _check_rule(rule) -> None:
    if not (callable(getattr(rule, "stop", None)) and callable(getattr(rule, "check", None))):
        raise ValueError(
            f"rule must be a stopping rule with stop(y_t, t) and check(t_max, k) "
            f"(snnlib.cutoff: TopK, FixedT, Confidence, Entropy); got {rule!r}"
        )


def _check_rule_fits(rule, t_max: int, k: int) -> None:
    try:
        rule.check(t_max, k)
    except ValueError as err:
        raise ValueError(
            f"rule={rule!r} cannot run for t_max={t_max} with K={k} classes: {err}"
        ) from None


def _check_outputs(o: Tensor, k: int, n: int) -> None:
    if not isinstance(o, Tensor) or o.dim() != 3 or o.shape[:2] != (k, n) or o.shape[2] < 2:
        got = tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__
        raise ValueError(
            f"the network must return per-step logits [n, K] (K >= 2) for a live batch of "
            f"n = {n}; got {got} for {k} step(s)"
        )


class _Exits:
    """Each sample's exit step and prediction, filled in as samples exit."""

    def __init__(self, n: int, t_max: int, device: torch.device) -> None:
        self.steps = torch.full((n,), t_max, dtype=torch.int64, device=device)
        self.predictions = torch.zeros(n, dtype=torch.int64, device=device)

    def record(self, idx: Tensor, steps: Tensor, predictions: Tensor) -> None:
        """Samples ``idx`` (original indices) exited at ``steps`` predicting ``predictions``."""
        self.steps[idx] = steps.to(self.steps.device)
        self.predictions[idx] = predictions.to(self.predictions.device)

    def result(self, t_max: int, chunk: int, sizes: list, ks: list) -> AnytimeResult:
        return AnytimeResult(
            predictions=self.predictions.cpu().numpy(),
            exit_steps=self.steps.cpu().numpy(),
            steps_run=sum(ks),
            sample_steps=sum(k * n for k, n in zip(ks, sizes, strict=True)),
            t_max=t_max,
            chunk=chunk,
            batch_sizes=tuple(sizes),
            call_steps=tuple(ks),
        )


def _call_steps(chunk: int, tail: int, n: int) -> int:
    """Steps of the next call for ``n`` live samples: ``chunk``, or once fewer than ``tail`` are
    live, enough steps for about ``tail`` sample-steps (``ceil(tail / n)``), so that a few
    stragglers do not pay the network's fixed per-call cost at every step."""
    return max(chunk, -(-tail // n)) if n < tail else chunk


def _scan(rule, o: Tensor, acc: Tensor | None, t0: int, t_max: int):
    """Accumulate the outputs ``o`` ``[k, n, K]`` of steps ``t0+1 .. t0+k`` onto ``acc``
    (``Y(t0)`` in the cumsum accumulator dtype; ``None`` before the first step) and find each
    sample's first step that fires: ``(acc, exit steps [n], predictions [n], pending [n])``."""
    n = o.shape[1]
    acc_dtype = _cumsum_dtype(o.device.type)
    pending = torch.ones(n, dtype=torch.bool, device=o.device)
    exit_step = torch.full((n,), t_max, dtype=torch.int64, device=o.device)
    pred = torch.zeros(n, dtype=torch.int64, device=o.device)
    for j in range(o.shape[0]):
        t = t0 + j + 1
        o_t = o[j].float().to(acc_dtype)
        acc = o_t if acc is None else acc + o_t
        y = acc.float()  # what the offline float32 cumsum stores
        fire = pending if t == t_max else checked_stop(rule, y, t) & pending
        exit_step = torch.where(fire, t, exit_step)
        pred = torch.where(fire, y.argmax(dim=-1), pred)
        pending = pending & ~fire
    return acc, exit_step, pred, pending


@torch.no_grad()
def run_anytime(
    model,
    x,
    rule: StoppingRule,
    t_max: int | None = None,
    *,
    sequence: bool = False,
    chunk: int = 1,
    tail: int = 0,
    num_samples: int | None = None,
) -> AnytimeResult:
    """Run ``model`` on a batch until every sample has exited under ``rule``.

    ``model``: a :class:`~snnlib.anytime.adapters.Steppable` or an snnlib model (in eval mode).
    ``x``: a static input ``[N, ...]`` repeated at every step (needs ``t_max``), a time-first
    sequence ``[T, N, ...]`` with ``sequence=True`` (``t_max`` defaults to ``T``), or a
    function ``x(t, live) -> [n_live, ...]`` giving step ``t``'s input for the live samples
    (``live``: their original indices, int64 on the CPU; needs ``t_max`` and
    ``num_samples``). ``rule``: any stopping rule of :mod:`snnlib.cutoff` (Top-K with β
    calibrated offline); every sample still running at ``t_max`` exits there.
    ``chunk``: steps per network call (1 = step mode).
    ``tail``: once fewer than ``tail`` samples are live, each call runs ``ceil(tail / n_live)``
    steps (at least ``chunk``), about ``tail`` sample-steps; a few stragglers otherwise pay
    the network's fixed per-call cost at every step. Neither ``chunk`` nor ``tail`` changes
    predictions or exits.
    """
    _check_rule(rule)
    chunk = checks.integer("chunk", chunk, low=1)
    tail = checks.integer("tail", tail, low=0)  # 0: off
    inputs = Inputs(x, t_max, sequence, num_samples)
    adapter = as_steppable(model)
    n_all, t_max = inputs.n, inputs.t_max
    live = torch.arange(n_all, device=inputs.device)
    exits = _Exits(n_all, t_max, inputs.device)
    adapter.reset(n_all)
    acc: Tensor | None = None  # Y(t) in the cumsum accumulator dtype
    t, sizes, ks = 0, [], []
    while t < t_max:
        n = live.numel()
        k = min(_call_steps(chunk, tail, n), t_max - t)
        o = call_steps(adapter, inputs, t, k, live, n == n_all)
        _check_outputs(o, k, n)
        if acc is None:
            _check_rule_fits(rule, t_max, o.shape[2])
        acc, exit_step, pred, pending = _scan(rule, o, acc, t, t_max)
        t += k
        sizes.append(n)
        ks.append(k)
        done = ~pending
        if t == t_max or bool(done.any()):  # one device sync per call: the next batch size
            exits.record(live[done.to(live.device)], exit_step[done], pred[done])
            if t == t_max or bool(done.all()):
                break
            adapter.keep(pending)
            rest = pending.nonzero().squeeze(1)  # index_select: faster than a bool mask
            inputs.keep(rest.to(inputs.device))
            acc = acc.index_select(0, rest)
            live = live.index_select(0, rest.to(live.device))
    return exits.result(t_max, chunk, sizes, ks)


def _row_stopper(rule: StoppingRule, t_max: int, device: torch.device):
    """``stop(y [n, K], t [n]) -> fire [n]``: ``rule.stop`` for samples at different steps
    ``t``, forced at ``t_max``. Top-K compares every row's gap with its own ``β_t`` in one
    vectorised call (the gap and the float64 comparison of :meth:`~snnlib.cutoff.TopK.stop`,
    so the same bits); any other rule is called once per distinct step (rules act row by
    row), which costs a device sync and a call per step present."""
    if isinstance(rule, TopK) and device.type != "mps":  # MPS: no float64
        betas = torch.tensor(rule.betas, dtype=torch.float64, device=device)

        def stop_topk(y: Tensor, t: Tensor) -> Tensor:
            return (gap_and_pred(y)[0].double() > betas[t - 1]) | (t == t_max)

        return stop_topk

    def stop_each(y: Tensor, t: Tensor) -> Tensor:
        fire = t == t_max
        for step in t.unique().tolist():
            if step < t_max:
                rows = t == step
                fire[rows] = checked_stop(rule, y[rows], step)
        return fire

    return stop_each


def _restartable(adapter):
    """``adapter`` if it can restart samples in place (stream mode), else ``ValueError``."""
    if not callable(getattr(adapter, "restart", None)):
        raise ValueError(
            f"stream mode needs an adapter with restart(rows) (SnnlibAdapter has it); "
            f"{type(adapter).__name__} has none: use run_anytime"
        )
    return adapter


class _Stream:
    """The live samples of a stream: their original indices ``live``, the step each is at
    ``t`` (1-based, the step it runs next), ``Y`` in the cumsum dtype, and for a static input
    the live samples' inputs, kept in place (a refill writes only the new rows), so a step
    does not gather the whole live batch's inputs again."""

    def __init__(self, inputs: Inputs, adapter, batch: int) -> None:
        self.inputs, self.adapter = inputs, adapter
        self.waiting = min(batch, inputs.n)  # the next sample to start
        self.live = torch.arange(self.waiting, device=inputs.device)
        self.t = torch.ones_like(self.live)
        self.acc: Tensor | None = None
        self.x = None if inputs.sequence else inputs.x.index_select(0, self.live)
        # a sequence [T, N, ...] as [T·N, ...] (a view; a copy once if x is not contiguous):
        # the rows of the live samples' steps are gathered with index_select
        self.frames = inputs.x.flatten(0, 1) if inputs.sequence else None
        adapter.reset(self.waiting)

    def window(self, k: int) -> Tensor:
        """Inputs ``[k, n, ...]`` of each live sample's next ``k`` steps."""
        if self.x is not None:
            return self.x.unsqueeze(0).expand(k, *self.x.shape)
        steps = self.t.unsqueeze(0) - 1 + torch.arange(k, device=self.t.device).unsqueeze(1)
        rows = (steps * self.inputs.n + self.live.unsqueeze(0)).flatten()  # [k·n] in [T·N]
        return self.frames.index_select(0, rows).unflatten(0, (k, self.live.numel()))

    def refill(self, fire: Tensor) -> None:
        """The places of the samples that fired go to the next waiting samples, restarted
        from a fresh state; the places nobody is left to take are dropped."""
        slots = fire.nonzero().squeeze(1)
        k = min(slots.numel(), self.inputs.n - self.waiting)
        if k:  # the next waiting samples take the first k freed places
            fill = slots[:k]
            new = torch.arange(self.waiting, self.waiting + k, device=self.live.device)
            self.live[fill] = new
            self.t[fill] = 1
            self.acc[fill] = 0  # index_put: index_fill_ walks the whole tensor
            if self.x is not None:
                self.x.index_copy_(0, fill, self.inputs.x.index_select(0, new))
            self.adapter.restart(fill)
            self.waiting += k
        if k < slots.numel():  # nobody left to take the others: shrink the batch
            rest = torch.ones_like(fire)
            rest[slots[k:]] = False
            rest = rest.nonzero().squeeze(1)  # index_select: faster than a bool mask
            self.adapter.keep(rest)
            self.live, self.t = self.live[rest], self.t[rest]
            self.acc = self.acc.index_select(0, rest)
            self.x = None if self.x is None else self.x.index_select(0, rest)


@torch.no_grad()
def stream_anytime(
    model,
    x: Tensor,
    rule: StoppingRule,
    t_max: int | None = None,
    *,
    batch: int,
    sequence: bool = False,
    tail: int = 0,
) -> AnytimeResult:
    """Anytime inference over many samples with at most ``batch`` of them live at once.

    Continuous batching: when samples exit, the next waiting samples take their places in
    the batch, restarted from a fresh state
    (:meth:`~snnlib.anytime.adapters.SnnlibAdapter.restart`),
    so samples at different steps share each call and every call but the last few runs a
    full batch. Each sample still runs exactly its own steps ``1 .. τ(n)``, so predictions
    and exits equal :func:`run_anytime`'s and the offline ones.

    ``x``: static ``[N, ...]`` (needs ``t_max``) or, with ``sequence=True``, ``[T, N, ...]``.
    The adapter must offer ``restart`` (snnlib models). ``tail``: once nobody waits and fewer
    than ``tail`` samples are live, each call runs ``ceil(tail / n_live)`` steps (no further
    than the most advanced sample's ``t_max``; exits still found at each sample's own step)
    instead of every straggler paying the network's fixed per-call cost at every step; 0
    turns it off.
    ``batch_sizes`` and ``call_steps`` of the result are the live batch and the steps of
    every call; ``sample_steps`` counts the steps actually run.
    """
    _check_rule(rule)
    batch = checks.integer("batch", batch, low=1)
    tail = checks.integer("tail", tail, low=0)  # 0: off
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a tensor in stream mode; got {type(x).__name__}")
    inputs = Inputs(x, t_max, sequence, None)
    adapter = _restartable(as_steppable(model))
    n_all, t_max = inputs.n, inputs.t_max
    exits = _Exits(n_all, t_max, inputs.device)
    s = _Stream(inputs, adapter, batch)
    stop = _row_stopper(rule, t_max, inputs.device)
    sizes, ks = [], []
    while s.live.numel():
        n = s.live.numel()
        k = 1 if s.waiting < n_all else min(_call_steps(1, tail, n), t_max + 1 - int(s.t.max()))
        o = call_window(adapter, s.window(k))
        _check_outputs(o, k, n)
        if s.acc is None:
            _check_rule_fits(rule, t_max, o.shape[2])
            s.acc = torch.zeros(o.shape[1:], dtype=_cumsum_dtype(o.device.type), device=o.device)
        fired = torch.zeros(n, dtype=torch.bool, device=o.device)
        for j in range(k):  # a sample's outputs after its exit go nowhere: its place is refilled
            s.acc += o[j].float().to(s.acc.dtype)
            y = s.acc.float()  # what the offline float32 cumsum stores
            fire = stop(y, s.t) & ~fired
            exits.record(s.live[fire], s.t[fire], y[fire].argmax(dim=-1))
            fired |= fire
            s.t += 1
        sizes.append(n)
        ks.append(k)
        if bool(fired.any()):
            s.refill(fired)
    return exits.result(t_max, 1, sizes, ks)


@torch.no_grad()
def cumulative_outputs(
    model,
    x,
    t_max: int | None = None,
    *,
    sequence: bool = False,
    chunk: int | None = None,
    num_samples: int | None = None,
) -> Tensor:
    """All ``T_max`` steps for every sample: cumulative outputs ``Y`` ``[T, N, K]``.

    The offline counterpart of :func:`run_anytime` for any adapter (e.g. to calibrate Top-K
    β on a calibration set); inputs as there. ``chunk`` steps per call (default: all at once).
    """
    inputs = Inputs(x, t_max, sequence, num_samples)
    adapter = as_steppable(model)
    t_max = inputs.t_max
    chunk = t_max if chunk is None else checks.integer("chunk", chunk, low=1)
    live = torch.arange(inputs.n, device=inputs.device)
    adapter.reset(inputs.n)
    outs = []
    for t0 in range(0, t_max, chunk):
        k = min(chunk, t_max - t0)
        o = call_steps(adapter, inputs, t0, k, live, True)
        _check_outputs(o, k, inputs.n)
        outs.append(o)
    return torch.cat(outs).float().cumsum(0)  # [T, N, K], as snnlib.pipeline.evaluate stores it
