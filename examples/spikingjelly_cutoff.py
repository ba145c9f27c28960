"""The Top-K cutoff on your own SpikingJelly network, offline and anytime.

A small convolutional SNN written with SpikingJelly is trained for one epoch on mnist5k-dvs
(5,000 real MNIST digits through an emulated DVS sensor; embedded, nothing to download), then:

1. its per-step outputs are summed over time (``cumsum``): Top-K works on the cumulative
   outputs ``Y(t)`` ``[T, N, K]``, not on per-step or averaged ones;
2. the thresholds β_t are calibrated on the held-out ``calib`` split (never the test split);
3. the test exits are computed offline (all T steps run, the exit picked afterwards);
4. the same network runs anytime (:func:`snnlib.anytime.run_anytime`), really stopping every
   sample that exits, and the exits and predictions are checked equal to the offline ones.

Run from the repository root (about a minute on 2 CPU cores)::

    python examples/spikingjelly_cutoff.py

SpikingJelly is in the dev extra: ``pip install -e '.[dev]'`` (``./run_all.sh`` installs it).
"""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snnlib import cutoff, data, metrics
from snnlib.anytime import run_anytime
from snnlib.anytime.adapters import SpikingJellyAdapter
from snnlib.data.layout import to_time_first

T = 8  # timesteps (event frames per sample)
EPSILON = 0.02  # Top-K: at most about 2 % of the calibration samples may exit wrong


def csnn() -> nn.Module:
    """Your network: any SpikingJelly model with per-step logits ``[B, 10]`` as output."""
    return nn.Sequential(
        layer.Conv2d(2, 8, 5, stride=2), layer.BatchNorm2d(8), neuron.LIFNode(),  # [*, 8, 15, 15]
        layer.Conv2d(8, 16, 3, stride=2), layer.BatchNorm2d(16), neuron.LIFNode(),  # [*, 16, 7, 7]
        layer.Flatten(), layer.Linear(16 * 7 * 7, 10),
    )  # fmt: skip


def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split, time first: event frames ``[T, N, 2, 34, 34]`` and labels ``[N]``."""
    x, y = data.as_tensors("mnist5k-dvs", split, T=T)  # x: [N, T, 2, 34, 34] (batch first)
    return to_time_first(x, T, "event", accumulate=False), y  # [T, N, 2, 34, 34]


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 100) -> None:
    """One epoch in multi-step mode: cross-entropy of the time-averaged output."""
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    net.train()
    for idx in torch.randperm(y.numel()).split(batch):
        loss = nn.functional.cross_entropy(net(x[:, idx]).mean(0), y[idx])  # [T, B, 10] -> [B, 10]
        opt.zero_grad()
        loss.backward()
        opt.step()
        functional.reset_net(net)  # SpikingJelly keeps the membranes between calls


@torch.no_grad()
def cumulative_outputs(net: nn.Module, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """All T steps for every sample: ``Y(t) = Σ_{τ≤t} o_τ`` ``[T, N, 10]``."""
    outs = []
    for xb in x.split(batch, dim=1):
        outs.append(net(xb))  # [T, B, 10], one multi-step call
        functional.reset_net(net)
    return torch.cat(outs, dim=1).cumsum(0)  # sums, not means: what Top-K's gap is defined on


def main() -> None:
    torch.manual_seed(0)
    net = csnn()
    functional.set_step_mode(net, "m")  # multi-step: the layers take [T, B, ...]
    train(net, *load("train"))
    net.eval()  # required: removing exited samples must not change the others' outputs

    x_calib, y_calib = load("calib")
    x_test, y_test = load("test")
    betas = cutoff.calibrate_topk(cumulative_outputs(net, x_calib), y_calib, EPSILON)
    cum = cumulative_outputs(net, x_test)
    exits = cutoff.topk_exit(cum, betas)  # offline: 1-based exit step per test sample
    acc, avg_t = metrics.evaluate_exits(cum, y_test, exits)
    print(f"accuracy at T={T}: {metrics.accuracy_per_timestep(cum, y_test)[-1]:.1%}")
    print(f"Top-K (eps={EPSILON}): {acc:.1%} at {avg_t:.2f} steps on average "
          f"({metrics.fewer_timesteps(T, avg_t):.1f}x fewer)")  # fmt: skip

    # Anytime: the adapter steps the network one timestep at a time (single-step mode,
    # same weights) and drops exited samples from every neuron's membrane.
    functional.set_step_mode(net, "s")
    res = run_anytime(SpikingJellyAdapter(net), x_test, cutoff.TopK(betas), sequence=True)
    assert np.array_equal(res.exit_steps, exits), "anytime exits differ from the offline ones"
    assert np.array_equal(res.predictions, metrics.predict_at_exit(cum, exits))
    print(
        f"anytime: same exits and predictions, {res.work_fraction:.0%} of the full run's "
        "sample-steps computed"
    )


if __name__ == "__main__":
    main()
