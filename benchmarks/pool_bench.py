"""Average pooling: snnlib's strided-view pool against ``F.avg_pool2d`` (the same bits).

    python benchmarks/pool_bench.py [--threads 2 1] [--repeats 15]

Writes ``results/bench/pooling.json``. The shapes are the quick profile's pools, per network
call: the live batch of the anytime stream (256 samples, one step) and the folded multi-step
call (256 samples x T), for the QCFS ``mnist-cnn`` (28x28, T = 32) and the TET ``dvs-cnn``
(34x34 event frames, T = 8). Forward under ``no_grad`` and forward + ``backward(g)`` with a
fixed dense ``g``; both pools are timed round robin in one process (ratios hold on a noisy
machine, absolute times do not), with glibc keeping freed memory (``common.keep_freed_memory``).
Each timed pair is first checked to give the same bits.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
import torch.nn.functional as F
from common import environment, keep_freed_memory, time_round_robin, write_json

from snnlib.pooling import avg_pool2d

# (what, [N, C, H, W]) of the quick profile's 2x2 pools
SHAPES = (
    ("mnist-cnn pool 1, stream step (256)", (256, 16, 28, 28)),
    ("mnist-cnn pool 2, stream step (256)", (256, 32, 14, 14)),
    ("mnist-cnn pool 1, multi-step T=32 (256 x 32)", (8192, 16, 28, 28)),
    ("mnist-cnn pool 2, multi-step T=32 (256 x 32)", (8192, 32, 14, 14)),
    ("dvs-cnn pool 1, stream step (256)", (256, 16, 34, 34)),
    ("dvs-cnn pool 1, multi-step T=8 (256 x 8)", (2048, 16, 34, 34)),
)
POOLS = {"torch": F.avg_pool2d, "snnlib": avg_pool2d}


def bench_shape(shape: tuple, repeats: int) -> dict:
    torch.manual_seed(0)
    x = (torch.rand(shape) < 0.3).float() * 0.731  # spikes times a threshold, as pools see
    xg = x.clone().requires_grad_(True)
    g = torch.randn_like(F.avg_pool2d(x, 2))
    if not torch.equal(avg_pool2d(x, 2), F.avg_pool2d(x, 2)):
        raise AssertionError(f"snnlib's pool and F.avg_pool2d differ on {shape}")
    fns = {}
    for name, pool in POOLS.items():

        def forward(pool=pool):
            with torch.no_grad():
                pool(x, 2)

        def forward_backward(pool=pool):
            pool(xg, 2).backward(g)
            xg.grad = None

        fns[f"{name}/forward"], fns[f"{name}/forward_backward"] = forward, forward_backward
    wall, _ = time_round_robin(fns, repeats)
    out = {"shape": list(shape)}
    for phase in ("forward", "forward_backward"):
        t, s = wall[f"torch/{phase}"], wall[f"snnlib/{phase}"]
        out[phase] = {
            "torch_ms": statistics.median(t),
            "snnlib_ms": statistics.median(s),
            "speedup": statistics.median([a / b for a, b in zip(t, s, strict=True)]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--name", default="pooling", help="results/bench/<name>.json")
    args = parser.parse_args()
    allocator = keep_freed_memory()
    loads, results = [os.getloadavg()[0]], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for what, shape in SHAPES:
            row = {"threads": threads, "what": what, **bench_shape(shape, args.repeats)}
            results.append(row)
            print(
                f"{threads} thread(s) {what}: forward x{row['forward']['speedup']:.2f}, "
                f"forward+backward x{row['forward_backward']['speedup']:.2f}"
            )
        loads.append(os.getloadavg()[0])
    payload = {
        "environment": environment(),
        "load_average_1min_during_run": [round(load, 2) for load in loads],
        "allocator": allocator or "glibc defaults",
        "method": (
            f"medians of {args.repeats} round-robin rounds; speedup = median per-round ratio "
            "torch / snnlib; the input is 30 % spikes of 0.731, the gradient N(0, 1)"
        ),
        "results": results,
    }
    print(f"wrote {write_json(args.name, payload)}")


if __name__ == "__main__":
    main()
