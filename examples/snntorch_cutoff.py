"""The Top-K cutoff on your own snnTorch network, offline and anytime.

A small fully connected SNN written with snnTorch (``snn.Leaky`` neurons that keep their own
state, ``init_hidden=True``) is trained for one epoch on mnist5k (5,000 real MNIST digits,
embedded, nothing to download), each image fed at every step; then:

1. its per-step outputs are summed over time (``cumsum``): Top-K works on the cumulative
   outputs ``Y(t)`` ``[T, N, K]``, not on per-step or averaged ones;
2. the thresholds β_t are calibrated on the held-out ``calib`` split (never the test split);
3. the test exits are computed offline (all T steps run, the exit picked afterwards);
4. the same network runs anytime (:func:`snnlib.anytime.run_anytime`), really stopping every
   sample that exits, and the exits and predictions are checked equal to the offline ones.

Run from the repository root (well under a minute on 2 CPU cores)::

    python examples/snntorch_cutoff.py

snnTorch is in the dev extra: ``pip install -e '.[dev]'`` (``./run_all.sh`` installs it).
A network written with explicit ``mem`` variables (``init_hidden=False``) runs anytime through
:class:`snnlib.anytime.adapters.FunctionalAdapter` instead.
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from snnlib import cutoff, data, metrics
from snnlib.anytime import run_anytime
from snnlib.anytime.adapters import SnnTorchAdapter

T = 8  # timesteps (the same image at every step)
EPSILON = 0.02  # Top-K: at most about 2 % of the calibration samples may exit wrong


def mlp() -> nn.Module:
    """Your network: one call is one timestep, ``[B, 1, 28, 28]`` -> logits ``[B, 10]``."""
    return nn.Sequential(
        nn.Flatten(),  # [B, 784]
        nn.Linear(784, 128), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(128, 10),
    )  # fmt: skip


def per_step_outputs(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """T steps from a fresh state: per-step logits ``[T, B, 10]`` (time first)."""
    utils.reset(net)  # snnTorch keeps the membranes between calls
    return torch.stack([net(x) for _ in range(T)])


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 100) -> None:
    """One epoch: cross-entropy of the time-averaged output."""
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for idx in torch.randperm(y.numel()).split(batch):
        loss = nn.functional.cross_entropy(per_step_outputs(net, x[idx]).mean(0), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def cumulative_outputs(net: nn.Module, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """All T steps for every sample: ``Y(t) = Σ_{τ≤t} o_τ`` ``[T, N, 10]``."""
    outs = [per_step_outputs(net, xb) for xb in x.split(batch)]  # each [T, B, 10]
    return torch.cat(outs, dim=1).cumsum(0)  # sums, not means: what Top-K's gap is defined on


def main() -> None:
    torch.manual_seed(0)
    net = mlp()
    train(net, *data.as_tensors("mnist5k", "train"))  # x: [N, 1, 28, 28] in [0, 1]
    net.eval()  # required: removing exited samples must not change the others' outputs

    x_calib, y_calib = data.as_tensors("mnist5k", "calib")
    x_test, y_test = data.as_tensors("mnist5k", "test")
    betas = cutoff.calibrate_topk(cumulative_outputs(net, x_calib), y_calib, EPSILON)
    cum = cumulative_outputs(net, x_test)
    exits = cutoff.topk_exit(cum, betas)  # offline: 1-based exit step per test sample
    acc, avg_t = metrics.evaluate_exits(cum, y_test, exits)
    print(f"accuracy at T={T}: {metrics.accuracy_per_timestep(cum, y_test)[-1]:.1%}")
    print(f"Top-K (eps={EPSILON}): {acc:.1%} at {avg_t:.2f} steps on average "
          f"({metrics.fewer_timesteps(T, avg_t):.1f}x fewer)")  # fmt: skip

    # Anytime: the adapter steps the network (static input: the same x_test at every step,
    # up to t_max) and drops exited samples from every neuron's hidden state.
    res = run_anytime(SnnTorchAdapter(net), x_test, cutoff.TopK(betas), t_max=T)
    assert np.array_equal(res.exit_steps, exits), "anytime exits differ from the offline ones"
    assert np.array_equal(res.predictions, metrics.predict_at_exit(cum, exits))
    print(
        f"anytime: same exits and predictions, {res.work_fraction:.0%} of the full run's "
        "sample-steps computed"
    )


if __name__ == "__main__":
    main()
