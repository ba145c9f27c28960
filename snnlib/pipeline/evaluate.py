"""Evaluation: run an SNN for T_max steps, keep cumulative outputs, and summarise them.

:func:`collect_outputs` is the model side: it runs a network over a split and returns the
cumulative outputs ``[T, N, K]``, the labels, and per-sample spike and synaptic-operation
counts. :func:`summarise` is the record side: every number in ``per_timestep.csv``,
``cutoff.csv`` and ``metrics.json`` is computed from the arrays of ``outputs.npz`` with the
public API of :mod:`snnlib.cutoff` and :mod:`snnlib.metrics`, so anyone can recompute them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from snnlib import cutoff, metrics
from snnlib.layers import Folded, Sequential
from snnlib.neurons import LIF, Collector

# forward(model, x, collector) -> per-step outputs [T, B, K]
Forward = Callable[[nn.Module, Tensor, Collector | None], Tensor]


def fanouts(model: nn.Module) -> dict[nn.Module, float]:
    """Approximate outgoing synapses per neuron of every LIF layer (keyed by the layer).

    The first Conv/Linear registered after a LIF layer is taken as the layer it feeds (true
    for sequential stacks; in residual blocks a shortcut convolution is not counted). A
    convolution contributes ``out_channels · kh · kw / (stride_h · stride_w · groups)``; a
    Linear layer ``out_features``.
    """
    out: dict[nn.Module, float] = {}
    pending: list[LIF] = []
    for m in model.modules():
        if isinstance(m, LIF):
            pending.append(m)
        elif isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)) and pending:
            if isinstance(m, nn.Linear):
                f = float(m.out_features)
            else:
                f = m.out_channels * float(np.prod(m.kernel_size))
                f /= float(np.prod(m.stride)) * m.groups
            for lif in pending:
                out[lif] = f
            pending = []
    return out


@torch.no_grad()
def collect_outputs(
    model: nn.Module, batches, forward: Forward, device: torch.device, progress: bool = False
) -> dict[str, np.ndarray]:
    """Cumulative outputs, labels, spikes and SynOps per sample over one pass of ``batches``."""
    from tqdm.auto import tqdm

    fan = fanouts(model)
    cum, labels, spikes, synops = [], [], [], []
    for x, y in tqdm(
        batches.epoch(), total=len(batches), desc="evaluate", disable=not progress, leave=False
    ):
        col = Collector(detach=True)
        out = forward(model, x.to(device), col).float()  # [T, B, K]
        cum.append(out.cumsum(0).cpu())
        labels.append(y.cpu())
        s = torch.zeros(len(y), device=out.device)
        ops = torch.zeros(len(y), device=out.device)
        for rec in col.records:
            if rec.spikes is None:
                continue
            count = rec.spikes.flatten(2).sum((0, 2))  # [B]
            s += count
            ops += count * fan.get(rec.layer, 0.0)
        spikes.append(s.cpu())
        synops.append(ops.cpu())
    return {
        "outputs": torch.cat(cum, 1).numpy().astype(np.float32),
        "labels": torch.cat(labels).numpy().astype(np.int64),
        "spikes": torch.cat(spikes).numpy().astype(np.float64),
        "synops": torch.cat(synops).numpy().astype(np.float64),
    }


def with_spike_dropout(model: nn.Module, p: float) -> nn.Module:
    """A copy whose LIF outputs pass through ``Dropout(p)`` in train mode (BN stays in eval).

    The paper's calibration setting (docs/method.md §1.7.1, step 1).
    """
    net = copy.deepcopy(model).eval()
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LIF):
                drop = Folded(nn.Dropout(p))
                drop.train()
                setattr(parent, name, Sequential(child, drop))
    return net


def choose_epsilon(rules, calib_outputs, calib_labels, max_drop: float) -> tuple[float, tuple]:
    """The operating point, chosen without test data: of the calibrated Top-K ``rules``
    (:func:`snnlib.cutoff.topk_rules`), the largest ε whose accuracy on the calibration
    outputs stays within ``max_drop`` of their accuracy at ``T_max`` (else the smallest ε);
    returns ``(ε, β)``."""
    table = cutoff.evaluate_rules("topk", rules, calib_outputs, calib_labels)
    ok = table[table["acc_delta"] >= -max_drop - 1e-12]
    eps = float(ok["parameter"].max()) if len(ok) else min(e for e, _ in rules)
    return eps, dict(rules)[eps].betas


def operating_point(rules, calib, calib_labels, test, labels, max_drop: float):
    """The Top-K cutoff at its operating point: ``(ε, β, test accuracy, average timestep)``,
    ε and β chosen by :func:`choose_epsilon` among the calibrated ``rules`` without test
    data, then applied to the test outputs."""
    eps, betas = choose_epsilon(rules, calib, calib_labels, max_drop)
    accuracy, avg = metrics.evaluate_exits(test, labels, cutoff.topk_exit(test, betas))
    return eps, np.asarray(betas), accuracy, avg


def summarise(arrays: dict, epsilons, bins: int = 100, max_drop: float = 0.005):
    """``(per_timestep, cutoff_table, metrics)`` from the arrays of ``outputs.npz``."""
    test, labels = arrays["test_outputs"], arrays["test_labels"]
    calib, calib_labels = arrays["calib_outputs"], arrays["calib_labels"]
    t_max = test.shape[0]
    acc = metrics.accuracy_per_timestep(test, labels)
    per_timestep = pd.DataFrame({"timestep": range(1, t_max + 1), "accuracy": acc})
    rules = cutoff.topk_rules(calib, calib_labels, epsilons, bins)  # C(t, β) once per run
    tables = [cutoff.evaluate_rules("topk", rules, test, labels)]
    tables += [cutoff.sweep(p, test, labels) for p in ("fixed", "confidence", "entropy", "oracle")]
    cutoff_table = pd.concat(tables, ignore_index=True)[list(cutoff.CUTOFF_COLUMNS)]

    eps, betas, top_acc, avg = operating_point(rules, calib, calib_labels, test, labels, max_drop)
    best_t, best_acc = metrics.best_fixed_t(acc)
    summary = {
        "T_max": t_max,
        "n_test": len(labels),
        "n_calib": len(calib_labels),
        "ann_accuracy": None,
        "accuracy_tmax": float(acc[-1]),
        "best_accuracy": float(best_acc),
        "best_t": int(best_t),
        "oct_mean": float(metrics.oct(test, labels).mean()),
        "topk_epsilon": eps,
        "topk_max_acc_drop": max_drop,
        "topk_betas": [float(b) for b in betas],
        "topk_accuracy": float(top_acc),
        "topk_avg_timestep": float(avg),
        "topk_acc_delta": float(top_acc - acc[-1]),
        "topk_speedup": metrics.fewer_timesteps(t_max, avg),
        "topk_speedup_matched": metrics.fewer_timesteps_matched(acc, top_acc, avg),
        "spikes_per_sample": None,
        "synops_per_sample": None,
    }
    if "ann_outputs" in arrays:
        summary["ann_accuracy"] = float(
            metrics.accuracy_per_timestep(arrays["ann_outputs"], labels)[-1]
        )
    if "test_spikes" in arrays:
        summary["spikes_per_sample"] = float(np.mean(arrays["test_spikes"]))
        summary["synops_per_sample"] = float(np.mean(arrays["test_synops"]))
    return per_timestep, cutoff_table, summary
