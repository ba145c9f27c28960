"""What the paper profile costs on a GPU: the LIF neuron at the paper's sizes, and the training
throughput of every kind of run in ``configs/paper.yaml``.

    python benchmarks/gpu_bench.py neurons [--sj-impl torch] [--T 4 8 16] [--N 8388608]
    python benchmarks/gpu_bench.py training [--batches 6] [--budget-s 100]

Each command merges its section into ``results/bench/gpu.json`` (``neurons_sj-<impl>``,
``training``) after every measurement, so a stage stopped by its time limit keeps what it
measured. Without a CUDA device both say so and exit 0, writing nothing.

* ``neurons``: forward (``no_grad``) and forward + ``backward(g)`` of multi-step LIF (decay 0.5,
  threshold 1, hard reset) on ``[T, N]``; ``N = 2^23`` is a paper layer (ResNet-18's first
  stage on CIFAR at batch 128: 128 x 64 x 32 x 32; VGG on 128x128 DVS frames after its 4x4/4
  stem likewise). snnlib's reference loop, its fused path (the Triton kernels on CUDA) and its
  pure-PyTorch path, SpikingJelly with the implementation ``--sj-impl`` selects (its
  ``SJ_LIF_CUDA_IMPLEMENTATION``: torch, triton, cuda) and snnTorch, where installed. Median of
  CUDA-event times; peak memory = ``max_memory_allocated`` above the inputs.
* ``training``: for each kind of paper run (dataset, method, architecture, trained T, batch,
  RCS on or off), ``snnlib.pipeline.train.train_one_epoch`` (AMP, GradScaler, SGD as in a run) over
  ``--batches`` stand-in batches of random tensors at the dataset's true shape, after one
  warm-up batch; samples per second. ``benchmarks/render_cost.py`` turns these into GPU hours.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from common import RESULTS, environment

from snnlib import grid
from snnlib.catalog import dataset_info
from snnlib.data.splits import CALIB_FRACTION
from snnlib.methods import METHOD_TABLE
from snnlib.pipeline.network import build_network, forward_for, make_objective
from snnlib.pipeline.train import train_one_epoch
from snnlib.tools import paths

PAPER = paths.CHECKOUT / "configs" / "paper.yaml"
# Official training-set sizes; a run trains on them less the calibration split it carves
# (CALIB_FRACTION), except N-Caltech101, whose 80/10/10 split has its own calibration tenth.
OFFICIAL_TRAIN = {
    "cifar10": 50_000,
    "cifar100": 50_000,
    "tiny-imagenet": 100_000,
    "cifar10-dvs": 9_000,  # 90 % of 10,000 per class
    "dvs128-gesture": 1_077,
}
TRAIN_SAMPLES = {k: round(n * (1 - CALIB_FRACTION)) for k, n in OFFICIAL_TRAIN.items()}
TRAIN_SAMPLES["ncaltech101"] = round(8_709 * 0.8)


def merge_section(name: str, payload: dict) -> Path:
    """Set ``name`` in ``results/bench/gpu.json`` (atomically), keeping the other sections."""
    path = RESULTS / "gpu.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = payload
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def gpu_environment() -> dict:
    import triton

    return {
        **environment(),
        "device": torch.cuda.get_device_name(),
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
    }


def cuda_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn()`` between CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def neuron_row(make, T: int, N: int, repeats: int) -> dict:
    """Times and peak memory of one neuron at ``[T, N]`` on the GPU."""
    f = make()
    x = torch.randn(T, N, device="cuda")
    g = torch.randn(T, N, device="cuda")
    xg = x.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            f(x)

    def forward_backward():
        f(xg).backward(g)
        xg.grad = None

    row = {"forward_ms": cuda_ms(forward, repeats)}
    row["forward_backward_ms"] = cuda_ms(forward_backward, repeats)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward_backward()
    torch.cuda.synchronize()
    row["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return row


def neurons(args) -> None:
    os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = args.sj_impl  # before SpikingJelly's import
    from neuron_bench import make_neuron

    names = ["snnlib_reference", "snnlib_fast", "snnlib_torch"]
    skipped = {}
    optional = (("spikingjelly", f"spikingjelly_{args.sj_impl}"), ("snntorch", "snntorch"))
    for package, name in optional:
        if importlib.util.find_spec(package) is None:
            skipped[name] = f"{package} is not installed"
            print(f"  skipped {name}: {package} is not installed")
        else:
            names.append(name)
    section = {"environment": gpu_environment(), "skipped": skipped, "results": []}
    for T in args.T:
        row = {"T": T, "N": args.N}
        for name in names:
            make = partial(make_neuron, name, "cuda")
            try:
                row[name] = neuron_row(make, T, args.N, args.repeats)
            except Exception as err:  # one neuron failing (an SJ kernel) must not stop the rest
                row[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            print(f"  T={T:3d} {name:28s} {row[name]}")
        section["results"].append(row)
        merge_section(f"neurons_sj-{args.sj_impl}", section)


def run_kinds(paper: Path) -> dict[tuple, list]:
    """The paper's configs grouped by what their training step costs."""
    kinds: dict[tuple, list] = {}
    for c in grid.expand(paper):
        train_T = METHOD_TABLE[c.method].train_T(c.T)
        key = (c.dataset, c.method, c.arch, train_T, c.batch_size, c.alpha > 0)
        kinds.setdefault(key, []).append(c)
    return kinds


class StandIn:
    """``batches`` for ``train_one_epoch``: ``n`` random batches at the dataset's true shape."""

    def __init__(self, config, n: int) -> None:
        info, b = dataset_info(config.dataset), config.batch_size
        frames = (b, config.T) if info.kind == "event" else (b,)
        self.x = torch.rand(*frames, *info.input_shape)  # event frames are counts >= 0
        self.y = torch.randint(info.num_classes, (b,))
        self.n = n

    def epoch(self, epoch: int = 0):
        return ((self.x, self.y) for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


def samples_per_second(config, batches: int, device: torch.device) -> dict:
    """Training throughput of ``config`` as ``snnlib.pipeline.train`` runs it (AMP on CUDA)."""
    model = build_network(config).to(device)
    objective = make_objective(config, forward_for(config, trained=True))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if cuda else None

    def epoch(n: int) -> None:
        train_one_epoch(model, StandIn(config, n), objective, optimizer, device, 0, scaler, False)
        if cuda:
            torch.cuda.synchronize()

    epoch(1)  # warm-up: cuDNN's algorithm search, the Triton kernels' compilation
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    epoch(batches)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {"samples_per_s": batches * config.batch_size / seconds, "peak_gib": peak}


def training(args) -> None:
    start = time.perf_counter()
    section = {"environment": gpu_environment(), "batches": args.batches, "kinds": []}
    for (dataset, method, arch, train_T, batch, rcs), configs in run_kinds(args.paper).items():
        kind = {"dataset": dataset, "method": method, "arch": arch, "train_T": train_T}
        kind |= {"batch_size": batch, "rcs": rcs, "train_samples": TRAIN_SAMPLES[dataset]}
        kind["runs"] = [{"run_id": c.run_id, "epochs": c.epochs} for c in configs]
        if time.perf_counter() - start > args.budget_s:
            kind["error"] = f"not measured: the {args.budget_s:.0f} s budget was spent"
        else:
            try:
                kind |= samples_per_second(configs[0], args.batches, torch.device("cuda"))
            except Exception as err:  # e.g. out of memory: name it, measure the others
                kind["error"] = f"{type(err).__name__}: {err}"[:300]
            torch.cuda.empty_cache()
        print(f"  {dataset} {method} {arch} T={train_T} b={batch} rcs={rcs}: "
              f"{kind.get('samples_per_s', kind.get('error'))}")  # fmt: skip
        section["kinds"].append(kind)
        merge_section("training", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("neurons", help="LIF forward/backward at the paper's sizes")
    p.add_argument("--sj-impl", default="torch", choices=["torch", "triton", "cuda", "auto"])
    p.add_argument("--T", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--N", type=int, default=2**23)
    p.add_argument("--repeats", type=int, default=10)
    p = sub.add_parser("training", help="training samples/s of each kind of paper run")
    p.add_argument("--paper", type=Path, default=PAPER)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--budget-s", type=float, default=100.0, help="stop starting new kinds")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device found; nothing measured, nothing written")
        return
    {"neurons": neurons, "training": training}[args.command](args)
    print(f"wrote {RESULTS / 'gpu.json'}")


if __name__ == "__main__":
    main()
