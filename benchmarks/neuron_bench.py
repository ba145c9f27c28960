"""Multi-step LIF forward and forward+backward time: snnlib vs SpikingJelly (torch backend).

    python benchmarks/neuron_bench.py [--T 8 32] [--N 262144] [--repeats 7]

Writes ``results/bench/neurons.json``. Both neurons run in this process on the same input,
so the ratios are comparable even on a noisy machine; absolute times are not.
"""

from __future__ import annotations

import argparse

import torch
from common import environment, time_call, write_json

from snnlib.neurons import LIF


def spikingjelly_lif():
    from spikingjelly.activation_based import neuron

    # SpikingJelly 2.0's LIFNode has only the torch backend on CPU; the same dynamics as ours.
    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m")


def measure(make_neuron, T: int, N: int, repeats: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(T, N)
    neuron = make_neuron()

    def forward():
        with torch.no_grad():
            neuron(x)
        reset = getattr(neuron, "reset", None)
        if reset is not None:
            reset()

    xg = x.clone().requires_grad_(True)

    def forward_backward():
        neuron(xg).sum().backward()
        xg.grad = None
        reset = getattr(neuron, "reset", None)
        if reset is not None:
            reset()

    return {
        "forward": time_call(forward, repeats),
        "forward_backward": time_call(forward_backward, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--N", type=int, default=2**18)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for T in args.T:
        ours = measure(lambda: LIF(decay=0.5), T, args.N, args.repeats)
        theirs = measure(spikingjelly_lif, T, args.N, args.repeats)
        row = {"T": T, "N": args.N, "snnlib": ours, "spikingjelly_torch": theirs}
        for phase in ("forward", "forward_backward"):
            ratio = theirs[phase]["median_ms"] / ours[phase]["median_ms"]
            row[f"{phase}_speedup_vs_spikingjelly"] = ratio
        rows.append(row)
        print(
            f"T={T:3d} N={args.N}: forward {ours['forward']['median_ms']:.2f} ms "
            f"(SJ {theirs['forward']['median_ms']:.2f}), forward+backward "
            f"{ours['forward_backward']['median_ms']:.2f} ms "
            f"(SJ {theirs['forward_backward']['median_ms']:.2f})"
        )
    path = write_json("neurons", {"environment": environment(), "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
