"""One training step of the quick profile's direct-training network: snnlib vs SpikingJelly.

    python benchmarks/train_bench.py [--threads 2 1] [--repeats 7] [--warmup 1] [--glibc-defaults]

Writes ``results/bench/train_step.json``. The network is the quick profile's TET run
(``configs/quick.yaml``: emulated-DVS ``mnist5k-dvs``, ``dvs-cnn``, ``T = 8``, the
:class:`~snnlib.config.Config` defaults for batch size, SGD and LIF decay), on the first
training batch of epoch 0 (``batches_for(config, "train", shuffle=True)``, as ``run()``
sees it). One step = ``zero_grad`` + forward + loss + ``backward`` + ``optimizer.step()``:

* ``snnlib``: ``build_network`` + ``make_objective`` at alpha = 0 + the SGD of ``run()``: the
  step of every batch but an epoch's last (the TET loss only, what the SpikingJelly side
  computes);
* ``snnlib_r_log``: the same on an epoch's last batch, where the regulariser's value is
  computed for the log (``reg_loss``) without entering the loss;
* ``snnlib_rcs``: alpha = 0.003, the RCS regulariser in the loss (SpikingJelly has no RCS);
* ``spikingjelly``: the same layers from ``spikingjelly.activation_based`` in multi-step mode
  (``layer.Conv2d``, ``layer.BatchNorm2d``, ``neuron.LIFNode``, ``layer.AvgPool2d``,
  ``layer.Flatten``, ``layer.Linear``) with our weights copied in, the same ``tet_loss`` and
  SGD settings, and ``functional.reset_net`` before every forward. ``LIFNode(tau=2,
  decay_input=False, v_reset=0, v_threshold=1)`` is our LIF (decay 0.5, hard reset); its
  surrogate ``PiecewiseQuadratic(alpha=1/γ)`` has the gradient ``max(0, 1/γ − |x|/γ²)``, the
  same triangle as our ZIF. On CPU SpikingJelly runs its torch loop under autograd.

Before timing, both networks run the batch in eval mode and in train mode; the JSON records how
far apart their outputs, spikes and parameter gradients are (SpikingJelly fires at ``u >= θ``,
we at ``u > θ``: the spikes are equal unless some ``u`` is exactly ``θ``, and then every layer
above may differ a little).

Time: every step function is called once per round, round after round, in this one process
(median over rounds; ratios = SpikingJelly time / ours), once per ``--threads`` value; then
one step of each under ``torch.autograd.profiler``, attributed to layer kinds (forward by
module, backward by the autograd node each forward op created). With 2 threads, another
process on the 2 cores stalls the parallel regions, SpikingJelly's many small ones most:
``rounds_ms`` keeps every round, and the per-round ratio cancels a load change between rounds.
As in ``anytime_bench.py``, glibc is asked to keep freed memory (``common.keep_freed_memory``;
``--glibc-defaults`` leaves it alone): otherwise every step page-faults its activations afresh.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version

import torch
from common import environment, keep_freed_memory, time_round_robin, write_json
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn
from torch.autograd import profiler

from snnlib.catalog import dataset_info
from snnlib.config import Config
from snnlib.data.batching import batches_for
from snnlib.data.layout import to_time_first
from snnlib.layers import Folded
from snnlib.losses import tet_loss
from snnlib.neurons import LIF, fast_lif
from snnlib.pipeline.network import build_network, make_objective, network_forward
from snnlib.pipeline.train import seed_everything

QUICK_TET = dict(dataset="mnist5k-dvs", method="tet", arch="dvs-cnn", T=8)  # configs/quick.yaml
RCS_ALPHA = 0.003
BASELINE = "spikingjelly"
# speed-up over the SpikingJelly-built network each step should reach
TARGETS = {"snnlib": 1.6, "snnlib_rcs": 1.5}
LAYER_KINDS = (
    (nn.Conv2d, "conv"),
    (nn.BatchNorm2d, "batchnorm"),
    ((LIF, neuron.LIFNode), "neuron"),
    (nn.AvgPool2d, "pool"),
    (nn.Flatten, "flatten"),
    (nn.Linear, "linear"),
)
RANGE = "layer:"  # profiler ranges put around each layer's forward
BACKWARD = "autograd::engine::evaluate_function: "


def layer_kind(m: nn.Module) -> str | None:
    inner = m.module if isinstance(m, Folded) else m
    return next((kind for types, kind in LAYER_KINDS if isinstance(inner, types)), None)


def spikingjelly_layer(m: nn.Module) -> nn.Module | None:
    """The multi-step SpikingJelly layer computing what snnlib's layer ``m`` computes."""
    if isinstance(m, nn.Conv2d):
        shape = (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
        return layer.Conv2d(*shape, bias=m.bias is not None, step_mode="m")
    if isinstance(m, nn.BatchNorm2d):
        return layer.BatchNorm2d(m.num_features, m.eps, m.momentum, step_mode="m")
    if isinstance(m, LIF):
        p = m.params
        if p.reset != "hard" or p.v_init != 0 or p.weighted_output or m.threshold.dim():
            raise ValueError(f"no SpikingJelly LIFNode twin for {m}")
        return neuron.LIFNode(
            tau=1.0 / (1.0 - p.decay),
            decay_input=False,
            v_threshold=float(m.threshold),
            v_reset=0.0,
            surrogate_function=surrogate.PiecewiseQuadratic(alpha=1.0 / p.gamma),
            step_mode="m",
        )
    if isinstance(m, nn.AvgPool2d):
        return layer.AvgPool2d(m.kernel_size, m.stride, step_mode="m")
    if isinstance(m, nn.Flatten):
        return layer.Flatten(m.start_dim, m.end_dim, step_mode="m")
    if isinstance(m, nn.Linear):
        return layer.Linear(m.in_features, m.out_features, bias=m.bias is not None, step_mode="m")
    return None


def spikingjelly_twin(model: nn.Module) -> nn.Sequential:
    """Our network's leaf layers, in registration order (the forward order of the small
    sequential models), as SpikingJelly layers with our weights and BN statistics."""
    layers = []
    for m in model.modules():
        twin = spikingjelly_layer(m)
        if twin is None:
            if not isinstance(m, (Folded, nn.Sequential)) and m is not model:
                raise ValueError(f"no SpikingJelly twin for {type(m).__name__}")
            continue
        if not isinstance(m, LIF):  # a LIF's only state is its threshold, passed above
            twin.load_state_dict(m.state_dict())
        layers.append(twin)
    return nn.Sequential(*layers)


def sgd(model: nn.Module, config: Config) -> torch.optim.SGD:
    """The optimiser of ``snnlib.experiment.train_network``."""
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def training_step(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], config: Config
) -> Callable[[], None]:
    """``zero_grad`` + ``loss_fn()`` + backward + the SGD step of ``run()``."""
    optimizer = sgd(model, config)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def with_spikes(model: nn.Module, run, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """``run(x)`` and the spikes of every neuron layer of ``model`` on the way."""
    spikes = []
    hooks = [
        m.register_forward_hook(lambda m, args, out: spikes.append(out.detach()))
        for m in model.modules()
        if layer_kind(m) == "neuron"
    ]
    out = run(x)
    for hook in hooks:
        hook.remove()
    return out, spikes


def compare(ours: tuple, theirs: tuple) -> dict:
    """How far apart the ``[T, B, K]`` outputs and the spikes of two forward calls are."""
    (a, spikes_a), (b, spikes_b) = ours, theirs
    a, b = a.detach(), b.detach()
    return {
        "outputs_max_abs_diff": max_abs(a, b),
        "outputs_max_abs": float(a.abs().max()),
        "argmax_equal_fraction": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
        "prediction_equal_fraction": float(
            (a.mean(0).argmax(-1) == b.mean(0).argmax(-1)).float().mean()
        ),
        "spikes_per_layer": [s.numel() for s in spikes_a],
        "spikes_differing_per_layer": [
            int((s != t).sum()) for s, t in zip(spikes_a, spikes_b, strict=True)
        ],
    }


def equality(ours, sj, run_ours, run_sj, x, y, loss) -> dict:
    """Outputs and spikes of both networks in eval and in train mode; parameter gradients."""
    ours.eval()
    sj.eval()
    with torch.no_grad():
        report = {"eval": compare(with_spikes(ours, run_ours, x), with_spikes(sj, run_sj, x))}
    ours.train()
    sj.train()
    a, b = with_spikes(ours, run_ours, x), with_spikes(sj, run_sj, x)
    report["train"] = compare(a, b)
    loss(a[0], y).backward()
    loss(b[0], y).backward()
    pairs = list(zip(ours.parameters(), sj.parameters(), strict=True))
    report["train"]["grad_max_abs_diff"] = max(max_abs(p.grad, q.grad) for p, q in pairs)
    report["train"]["grad_max_abs"] = max(float(p.grad.abs().max()) for p, _ in pairs)
    for p, q in pairs:
        p.grad = q.grad = None
    return report


def summarise(times: dict[str, list[float]]) -> dict:
    """Median/min/max per step function; ratios SpikingJelly / ours (of the medians, and the
    median of the per-round ratios, which cancels a load change between rounds)."""
    base = times[BASELINE]
    return {
        "time": {
            name: {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t)}
            for name, t in times.items()
        },
        "speedup_vs_spikingjelly": {
            name: statistics.median(base) / statistics.median(t) for name, t in times.items()
        },
        "speedup_vs_spikingjelly_per_round_median": {
            name: statistics.median(b / o for b, o in zip(base, t, strict=True))
            for name, t in times.items()
        },
    }


def profile_step(model: nn.Module, step: Callable[[], None]) -> dict:
    """One step under the autograd profiler, in ms per layer kind (forward and backward).

    Each layer's forward runs inside a ``layer:<kind>`` range; a backward node counts for the
    kind of the forward op that created it (same ``sequence_nr``). ``other``: the rest of the
    step (input copy, loss, R log, AccumulateGrad, zero_grad, reset, profiler overhead).
    """
    ranges: dict[int, profiler.record_function] = {}

    def enter(m, args):
        ranges[id(m)] = profiler.record_function(RANGE + layer_kind(m))
        ranges[id(m)].__enter__()

    def leave(m, args, out):
        ranges.pop(id(m)).__exit__(None, None, None)

    hooks = []
    for m in model.modules():
        if layer_kind(m) is not None:
            hooks += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    start = time.perf_counter()
    with profiler.profile() as prof:
        step()
    total = (time.perf_counter() - start) * 1e3
    for hook in hooks:
        hook.remove()

    def enclosing_kind(event) -> str | None:
        while event is not None:
            if event.name.startswith(RANGE):
                return event.name[len(RANGE) :]
            event = event.cpu_parent
        return None

    events = prof.function_events
    kinds = {kind: {"forward_ms": 0.0, "backward_ms": 0.0} for _, kind in LAYER_KINDS}
    created_by: dict[int, str] = {}  # forward op sequence_nr -> layer kind
    optimizer_ms = 0.0
    for e in events:
        kind = enclosing_kind(e.cpu_parent)
        if e.name.startswith(RANGE) and kind is None:  # outermost range of a layer
            kinds[e.name[len(RANGE) :]]["forward_ms"] += e.cpu_time_total / 1e3
        elif kind is not None and e.sequence_nr >= 0:
            created_by[e.sequence_nr] = kind
        elif e.name.startswith("Optimizer.step") and e.cpu_parent is None:
            optimizer_ms += e.cpu_time_total / 1e3
    for e in events:
        if e.name.startswith(BACKWARD) and e.sequence_nr in created_by:
            kinds[created_by[e.sequence_nr]]["backward_ms"] += e.cpu_time_total / 1e3
    attributed = optimizer_ms + sum(sum(v.values()) for v in kinds.values())
    top = sorted(prof.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)[:10]
    return {
        "step_ms_profiled": total,
        "by_layer_kind": kinds,
        "optimizer_step_ms": optimizer_ms,
        "other_ms": total - attributed,
        "top_ops_self_cpu_ms": {a.key: a.self_cpu_time_total / 1e3 for a in top},
    }


def lif_backend(model: nn.Module) -> dict:
    """Which multi-step LIF implementation our side ran (see ``snnlib.neurons.fast_lif``)."""
    backends = sorted({m.backend for m in model.modules() if isinstance(m, LIF)})
    cpp = fast_lif.cpp_available() and not fast_lif.FORCE_TORCH
    return {"module_backends": backends, "cpp_kernel": cpp and set(backends) <= {"auto", "cpp"}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_threads = sorted({torch.get_num_threads(), 1}, reverse=True)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=default_threads, help="torch thread counts"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="leave glibc malloc as it is (default: keep freed memory, see the docstring)",
    )
    return parser.parse_args()


def print_equality(equal: dict) -> None:
    for mode, e in equal.items():
        print(
            f"  {mode}: outputs max |diff| {e['outputs_max_abs_diff']:.3g} "
            f"(max |output| {e['outputs_max_abs']:.3g}), argmax equal "
            f"{e['argmax_equal_fraction']:.4f}, spikes differing per layer "
            f"{e['spikes_differing_per_layer']} of {e['spikes_per_layer']}"
        )
    print(
        f"  train: gradients max |diff| {equal['train']['grad_max_abs_diff']:.3g} "
        f"(max |grad| {equal['train']['grad_max_abs']:.3g})"
    )


def time_at(threads: int, steps: dict, models: dict, args: argparse.Namespace) -> dict:
    """One results row: every step timed round-robin with ``threads`` torch threads, then
    profiled once."""
    torch.set_num_threads(threads)
    print(f"[{threads} thread(s)] {args.warmup} warm-up + {args.repeats} rounds")
    times, cpu = time_round_robin(steps, args.repeats, args.warmup)
    row = {"threads": threads, **summarise(times), "rounds_ms": times, "rounds_cpu_ms": cpu}
    row["target_met"] = {
        name: row["speedup_vs_spikingjelly"][name] >= target for name, target in TARGETS.items()
    }
    row["profile"] = {name: profile_step(models[name], step) for name, step in steps.items()}
    row["load_average_after"] = list(os.getloadavg())
    for name, t in row["time"].items():
        prof = row["profile"][name]
        by_kind = {k: round(sum(v.values())) for k, v in prof["by_layer_kind"].items()}
        print(
            f"  {name:16s} {t['median_ms']:7.1f} ms, "
            f"{row['speedup_vs_spikingjelly'][name]:.2f}x vs SpikingJelly "
            f"(per round {row['speedup_vs_spikingjelly_per_round_median'][name]:.2f}x); "
            f"profiled ms: {by_kind}, optimizer {prof['optimizer_step_ms']:.0f}, "
            f"other {prof['other_ms']:.0f}"
        )
    return row


def setup_block(config: Config, x: torch.Tensor, sj: nn.Module) -> dict:
    """The ``setup`` block of the JSON: what was timed."""
    return {
        "config": {
            k: getattr(config, k)
            for k in (*QUICK_TET, "batch_size", "lr", "momentum", "weight_decay", "decay")
        },
        "tet": {"lamb": config.tet_lamb, "phi": config.tet_phi},
        "rcs_alpha": RCS_ALPHA,
        "batch": "first batch of epoch 0 of batches_for(config, 'train', shuffle=True)",
        "input_shape_data_layer": list(x.shape),
        "spikingjelly_network": repr(sj),
        "surrogate": (
            "snnlib ZIF max(0, γ−|x|)/γ² (γ=1) vs SpikingJelly PiecewiseQuadratic(alpha=1) "
            "max(0, α−α²|x|): the same function; SpikingJelly fires at u >= θ, snnlib at u > θ"
        ),
    }


def method_block(args: argparse.Namespace) -> dict:
    """The ``method`` block of the JSON: how it was timed."""
    return {
        "step": "zero_grad + forward (SJ: after reset_net) + loss + backward + SGD step",
        "time": "interleaved rounds in one process; median; ratios = SpikingJelly / other",
        "warmup": args.warmup,
        "repeats": args.repeats,
        "target": {f"{name} speed-up": f">= {target}x" for name, target in TARGETS.items()},
        "profile": " ".join(profile_step.__doc__.split()),
    }


def main() -> None:
    args = parse_args()
    allocator = keep_freed_memory(not args.glibc_defaults)
    machine = environment()  # before the thread count changes
    load_before = os.getloadavg()
    config = Config(**QUICK_TET, seed=args.seed, device="cpu", progress=False)
    info = dataset_info(config.dataset)
    forward = partial(network_forward, T=config.T, kind=info.kind, accumulate=False)
    time_first = partial(to_time_first, T=config.T, kind=info.kind, accumulate=False)
    tet = partial(tet_loss, lamb=config.tet_lamb, phi=config.tet_phi)
    x, y = next(iter(batches_for(config, "train", True, None).epoch(0)))
    print(f"batch {tuple(x.shape)} of {config.dataset}; equality check")

    seed_everything(config.seed)
    ours = build_network(config)
    sj = spikingjelly_twin(ours)

    def run_sj(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(sj)  # SpikingJelly keeps the membranes of the last call
        return sj(time_first(x))

    equal = equality(ours, sj, partial(forward, ours), run_sj, x, y, tet)
    print_equality(equal)
    rcs_config = config.replace(alpha=RCS_ALPHA)
    r_log, rcs = copy.deepcopy(ours), copy.deepcopy(ours)
    objective = make_objective(config, forward)
    rcs_objective = make_objective(rcs_config, forward)
    models = {"snnlib": ours, "snnlib_r_log": r_log, "snnlib_rcs": rcs, BASELINE: sj}
    steps = {
        "snnlib": training_step(ours, lambda: objective(ours, x, y, False)[0], config),
        "snnlib_r_log": training_step(r_log, lambda: objective(r_log, x, y, True)[0], config),
        "snnlib_rcs": training_step(rcs, lambda: rcs_objective(rcs, x, y)[0], rcs_config),
        BASELINE: training_step(sj, lambda: tet(run_sj(x), y), config),
    }
    results = [time_at(threads, steps, models, args) for threads in args.threads]
    env = {
        **machine,
        "spikingjelly": version("spikingjelly"),
        "snnlib_lif": lif_backend(ours),
        "allocator": {
            "mallopt": allocator or "glibc defaults",
            "environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        },
        "load_average_before": list(load_before),
    }
    payload = {
        "environment": env,
        "setup": setup_block(config, x, sj),
        "method": method_block(args),
        "equality": equal,
        "results": results,
    }
    print(f"wrote {write_json('train_step', payload)}")


if __name__ == "__main__":
    main()
