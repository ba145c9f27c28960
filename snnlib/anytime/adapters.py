"""Adapters that let the anytime engine (:mod:`snnlib.anytime`) step any SNN.

The engine needs three things from a network, the :class:`Steppable` protocol::

    adapter.reset(batch_size)      # fresh state for a batch of N samples
    adapter.step(x_t) -> o_t       # one timestep: input [n, ...] -> per-step output [n, K]
    adapter.keep(mask)             # drop samples (bool [n]) from every piece of state

``o_t`` is the output of step ``t`` alone, not the running sum; the engine accumulates
``Y(t) = Σ_{τ≤t} o_τ``. An adapter may also offer ``steps(x) -> [k, n, K]`` on a time-first
chunk ``[k, n, ...]`` (one multi-step call continuing the state); :class:`StepAdapter`
provides a loop over ``step`` for the others. Stream mode
(:func:`snnlib.anytime.stream_anytime`) also needs ``restart(rows)``: the samples at those
batch positions start afresh, so that waiting samples can take exited ones' places.

Removing samples must not change the numbers of the samples that stay, so every module has
to be in eval mode (BatchNorm with running statistics, no dropout); the adapters of
``nn.Module`` networks check that and raise ``ValueError`` otherwise.

Adapters: :class:`SnnlibAdapter` (snnlib models, through a :class:`~snnlib.neurons.state.RunState`),
:class:`SpikingJellyAdapter` (single-step SpikingJelly networks), :class:`SnnTorchAdapter`
(snnTorch networks whose neurons keep their state, ``init_hidden=True``) and
:class:`FunctionalAdapter` (any ``step(x_t, state) -> (out, state)`` with an explicit state,
e.g. an snnTorch network written with ``mem`` variables). SpikingJelly and snnTorch are
imported only when their adapter is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from snnlib.neurons.state import RunState, SpikingModule


@runtime_checkable
class Steppable(Protocol):
    """A network the anytime engine can run one timestep at a time."""

    def reset(self, batch_size: int) -> None: ...

    def step(self, x_t: Tensor) -> Tensor: ...

    def keep(self, mask: Tensor) -> None: ...


def check_eval(model: nn.Module, what: str) -> None:
    """``ValueError`` unless every submodule is in eval mode (batch-independent outputs)."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"{what} must be in eval mode (call .eval()): in train mode BatchNorm uses batch "
            f"statistics and dropout is random, so removing exited samples would change the "
            f"others' outputs; modules in train mode: {training[:5]}"
        )


class StepAdapter:
    """Base class: ``steps`` as a loop over ``step`` (override where a faster call exists)."""

    def reset(self, batch_size: int) -> None:
        raise NotImplementedError

    def step(self, x_t: Tensor) -> Tensor:
        raise NotImplementedError

    def keep(self, mask: Tensor) -> None:
        raise NotImplementedError

    def steps(self, x: Tensor) -> Tensor:
        """Run ``x`` ``[k, n, ...]`` from the current state: per-step outputs ``[k, n, K]``."""
        return torch.stack([self.step(x_t) for x_t in x])


class SnnlibAdapter(StepAdapter):
    """An snnlib model ``forward(x [T, B, ...], state) -> [T, B, K]`` with a :class:`RunState`.

    ``step`` is the model on ``x_t[None]``; ``steps`` is one multi-step call on the chunk
    (time folded into the batch of the stateless layers), continuing the same state. Both
    give exactly the multi-step outputs, because every stateful snnlib layer streams through
    its own typed state in the ``RunState``; ``keep`` and ``restart`` act on all of them alike.
    """

    def __init__(self, model: nn.Module) -> None:
        check_eval(model, "model")
        self.model = model
        self.state = RunState()

    def reset(self, batch_size: int) -> None:
        self.state = RunState()

    def step(self, x_t: Tensor) -> Tensor:
        return self.steps(x_t.unsqueeze(0))[0]  # [1, n, ...] -> [n, K]

    def steps(self, x: Tensor) -> Tensor:
        if x.shape[0] * x.shape[1] != 1:
            return self.model(x, self.state)  # [k, n, ...] -> [k, n, K]
        # One sample for one step: CPU kernels take other paths for a batch of one (e.g.
        # matrix-vector) whose rounding differs from the batched run, so run two copies.
        self.state.keep(torch.zeros(2, dtype=torch.int64))
        out = self.model(x.expand(1, 2, *x.shape[2:]), self.state)
        self.state.keep(torch.zeros(1, dtype=torch.int64))
        return out[:, :1]

    def keep(self, mask: Tensor) -> None:
        self.state.keep(mask)

    def restart(self, rows: Tensor) -> None:
        """Restart the samples at batch positions ``rows`` (int64) from a fresh state, so that
        new samples can take exited ones' places (:func:`snnlib.anytime.stream_anytime`)."""
        self.state.restart(rows)


class SpikingJellyAdapter(StepAdapter):
    """A SpikingJelly ``activation_based`` network in single-step mode (``step_mode='s'``).

    ``reset`` is ``functional.reset_net``; ``step`` is ``net(x_t)``; ``keep(mask)`` slices every
    tensor memory (``named_memories``) of every ``base.MemoryModule`` along dim 0.

    Limits: every tensor memory must have the batch in dim 0, as single-step neurons do
    (``v`` is ``[N, ...]``); a 0-d tensor or a Python number (a memory not yet materialised)
    is left alone, and any other shape raises ``ValueError`` rather than be guessed at. State
    kept outside ``_memories`` is not touched: a neuron's ``v_seq`` (``store_v_seq=True``)
    restarts when the batch shrinks, and a custom module that stores state in plain
    attributes is not supported. Multi-step (``'m'``) networks are refused: use
    ``functional.set_step_mode(net, 's')`` first (the weights are shared, results equal).
    """

    def __init__(self, net: nn.Module) -> None:
        from spikingjelly.activation_based import base

        self._base = base
        multi = [
            name or type(net).__name__
            for name, m in net.named_modules()
            if isinstance(m, base.StepModule) and m.step_mode != "s"
        ]
        if multi:
            raise ValueError(
                f"net must be in single-step mode (step_mode='s'); modules in another mode: "
                f"{multi[:5]}; call spikingjelly.activation_based.functional.set_step_mode("
                "net, 's')"
            )
        check_eval(net, "net")
        self.net = net
        self.memory_modules = [m for m in net.modules() if isinstance(m, base.MemoryModule)]

    def reset(self, batch_size: int) -> None:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)

    def step(self, x_t: Tensor) -> Tensor:
        return self.net(x_t)

    def keep(self, mask: Tensor) -> None:
        n = mask.shape[0]
        for m in self.memory_modules:
            for name, value in list(m.named_memories()):
                if not isinstance(value, Tensor) or value.dim() == 0:
                    continue
                if value.shape[0] != n:
                    raise ValueError(
                        f"{type(m).__name__}.{name} has shape {tuple(value.shape)}, whose dim 0 "
                        f"is not the live batch size {n}; SpikingJellyAdapter can only drop "
                        "samples from memories with the batch in dim 0"
                    )
                setattr(m, name, value[mask])


class SnnTorchAdapter(StepAdapter):
    """An snnTorch network whose neurons keep their own state (``init_hidden=True``).

    This is the ``nn.Sequential(nn.Linear(...), snn.Leaky(beta, init_hidden=True), ...)``
    idiom: ``step`` is ``readout(net(x_t))`` (``readout`` defaults to the output itself; give
    e.g. ``lambda out: out[1]`` for a last neuron with ``output=True`` that returns
    ``(spk, mem)``); ``reset`` calls every neuron's ``reset_mem()``.

    ``keep(mask)`` slices the hidden states, which snnTorch stores as the *non-persistent*
    buffers of each ``snntorch.SpikingNeuron`` (``mem``, ``syn``, ``spk``, ...); parameters
    such as ``beta`` and ``threshold`` are persistent buffers and are left alone. This
    matters: a snnTorch neuron whose state no longer matches its input's shape silently
    restarts from zero. Limits: an unmaterialised state (shape ``[0]``) is left alone, a state
    whose dim 0 is not the live batch raises ``ValueError``; state kept anywhere else (custom
    modules, ``init_hidden=False`` neurons fed explicit ``mem`` variables) is invisible here:
    use :class:`FunctionalAdapter` for those.
    """

    def __init__(self, net: nn.Module, readout: Callable[[Any], Tensor] | None = None) -> None:
        import snntorch

        check_eval(net, "net")
        self.net = net
        self.readout = readout
        self.neurons: list[tuple[nn.Module, list[str]]] = []
        for m in net.modules():
            if isinstance(m, snntorch.SpikingNeuron):
                if not callable(getattr(m, "reset_mem", None)):
                    raise ValueError(
                        f"{type(m).__name__} has no reset_mem(), so its state cannot be reset "
                        "per batch here; wrap the network in FunctionalAdapter instead"
                    )
                persistent = set(m.state_dict(keep_vars=True))
                names = [n for n, _ in m.named_buffers(recurse=False) if n not in persistent]
                self.neurons.append((m, names))
        if not self.neurons:
            raise ValueError(f"net ({type(net).__name__}) holds no snntorch.SpikingNeuron")

    def reset(self, batch_size: int) -> None:
        for m, _ in self.neurons:
            m.reset_mem()

    def step(self, x_t: Tensor) -> Tensor:
        out = self.net(x_t)
        if self.readout is not None:
            return self.readout(out)
        if not isinstance(out, Tensor):
            raise ValueError(
                f"net returned {type(out).__name__}, not a tensor of logits; pass readout= "
                "to pick the per-step output (e.g. readout=lambda out: out[1] for the membrane)"
            )
        return out

    def keep(self, mask: Tensor) -> None:
        n = mask.shape[0]
        for m, names in self.neurons:
            for name in names:
                value = getattr(m, name)
                if value.dim() == 0 or value.shape[0] == 0:
                    continue
                if value.shape[0] != n:
                    raise ValueError(
                        f"{type(m).__name__}.{name} has shape {tuple(value.shape)}, whose dim 0 "
                        f"is not the live batch size {n}"
                    )
                setattr(m, name, value[mask])


def _select(state: Any, mask: Tensor) -> Any:
    """Index every tensor leaf of a (nested tuple / list / dict) state with ``mask``."""
    if isinstance(state, Tensor):
        if state.dim() == 0 or state.shape[0] == 0:  # a scalar or an empty placeholder
            return state
        if state.shape[0] != mask.shape[0]:
            raise ValueError(
                f"a state tensor has shape {tuple(state.shape)}, whose dim 0 is not the live "
                f"batch size {mask.shape[0]}; every state tensor must have the batch in dim 0"
            )
        return state[mask]
    if isinstance(state, dict):
        return {key: _select(value, mask) for key, value in state.items()}
    if isinstance(state, (tuple, list)):
        items = [_select(value, mask) for value in state]
        if hasattr(state, "_fields"):  # NamedTuple
            return type(state)(*items)
        return type(state)(items)
    return state  # numbers, None, strings: no batch


class FunctionalAdapter(StepAdapter):
    """Any network written as a pure step with an explicit state.

    ``step_fn(x_t, state) -> (o_t, state)`` and ``init_state(batch_size) -> state``, where the
    state is a tensor or a nested tuple / list / dict of tensors, each with the batch in dim 0
    (0-d tensors, empty placeholders and non-tensors are carried unchanged). For an snnTorch
    network with ``init_hidden=False`` neurons::

        def step_fn(x_t, mem):
            spk, mem = lif(fc1(x_t), mem)
            return fc2(spk), mem

        FunctionalAdapter(step_fn, lambda n: torch.zeros(n, hidden))

    No eval-mode check is possible here (there may be no module): the caller makes sure the
    step is batch-independent.
    """

    def __init__(
        self, step_fn: Callable[[Tensor, Any], tuple[Tensor, Any]], init_state: Callable[[int], Any]
    ) -> None:
        if not callable(step_fn) or not callable(init_state):
            raise ValueError("step_fn and init_state must both be callables")
        self.step_fn = step_fn
        self.init_state = init_state
        self.state: Any = None

    def reset(self, batch_size: int) -> None:
        self.state = self.init_state(batch_size)

    def step(self, x_t: Tensor) -> Tensor:
        out, self.state = self.step_fn(x_t, self.state)
        return out

    def keep(self, mask: Tensor) -> None:
        self.state = _select(self.state, mask)


def as_steppable(model) -> Steppable:
    """``model`` itself if it is :class:`Steppable`, an snnlib model wrapped, else an error."""
    if isinstance(model, Steppable):
        return model
    if isinstance(model, SpikingModule):
        return SnnlibAdapter(model)
    raise ValueError(
        f"model must be Steppable (reset/step/keep) or an snnlib SpikingModule; got "
        f"{type(model).__name__}; wrap it in SpikingJellyAdapter, SnnTorchAdapter or "
        "FunctionalAdapter"
    )
