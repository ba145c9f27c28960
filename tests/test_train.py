"""The training loop steps as docs/method.md §2.1 says: one optimiser step per batch (also under
DDP and across a resume), one scheduler step per epoch, and a cosine schedule that starts at the
configured rate (no warm-up) and ends at 0."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snnlib import experiment
from snnlib.config import Config
from snnlib.data.batching import TensorBatches, load_splits
from snnlib.pipeline import train
from snnlib.pipeline.train import fit

N_BATCHES = 3  # 10 samples in batches of 4: the last batch is short


def _objective(model, x, y, log_reg=True):
    out = model(x)[None]  # [T=1, B, K]
    return nn.functional.cross_entropy(out[0], y), torch.zeros(()), out


def _forward(model, x):
    return model(x)[None]


def _logged_fit(tmp_path, epochs: int) -> tuple[list[int], list[nn.Module], int]:
    """``fit`` a linear model on 3 batches per epoch. Returns, for each optimiser step, the
    scheduler's epoch count at that step; the module each epoch trained; and the scheduler's
    epoch count at the end."""
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    batches = TensorBatches(torch.randn(10, 5), torch.randint(0, 3, (10,)), 4, shuffle=True)
    assert len(batches) == N_BATCHES
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    steps: list[int] = []
    optimizer.register_step_pre_hook(lambda *_: steps.append(scheduler.last_epoch))
    trained: list[nn.Module] = []
    one_epoch = train.train_one_epoch

    def logged_epoch(net, *args, **kwargs):
        trained.append(net)
        return one_epoch(net, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "train_one_epoch", logged_epoch)
        fit(
            model,
            train=batches,
            held_out=batches,
            objective=_objective,
            forward=_forward,
            optimizer=optimizer,
            scheduler=scheduler,
            epochs=epochs,
            device=torch.device("cpu"),
            checkpoint=tmp_path / "checkpoint.pt",
            digest="d",
            amp=False,
            progress=False,
            log=lambda *_: None,
        )
    return steps, trained, scheduler.last_epoch


def test_one_optimiser_step_per_batch_and_one_scheduler_step_per_epoch(tmp_path):
    steps, trained, scheduler_epochs = _logged_fit(tmp_path, 3)
    # 3 optimiser steps in each epoch e, all taken while the scheduler has stepped e times.
    assert steps == [0] * N_BATCHES + [1] * N_BATCHES + [2] * N_BATCHES
    assert scheduler_epochs == 3 and len(trained) == 3
    # A resumed fit steps only for the epochs left: 4 epochs in all across the interruption.
    steps, trained, scheduler_epochs = _logged_fit(tmp_path, 4)
    assert steps == [3] * N_BATCHES
    assert scheduler_epochs == 4 and len(trained) == 1


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_one_optimiser_step_per_batch_under_ddp(monkeypatch, tmp_path):
    # A one-process gloo group; ``distributed`` says two ranks, so that ``fit`` wraps the model
    # in DDP as under torchrun (the step count must not depend on the wrapper).
    dist = torch.distributed
    rendezvous = f"file://{tmp_path / 'rendezvous'}"
    dist.init_process_group("gloo", init_method=rendezvous, rank=0, world_size=1)
    try:
        monkeypatch.setattr(train, "distributed", lambda: (0, 2))
        steps, trained, scheduler_epochs = _logged_fit(tmp_path, 2)
    finally:
        dist.destroy_process_group()
    assert all(isinstance(net, nn.parallel.DistributedDataParallel) for net in trained)
    assert steps == [0] * N_BATCHES + [1] * N_BATCHES
    assert scheduler_epochs == 2


def test_learning_rate_schedule_starts_at_lr_and_ends_at_zero(monkeypatch, tmp_path):
    """The run's own optimiser and schedule (``experiment.train_network``): every step of epoch
    ``e`` of ``E`` uses ``lr / 2 * (1 + cos(pi * e / E))`` (docs/method.md §2.1), so the first
    step uses the configured ``lr`` and the rate after the last epoch is 0."""
    config = Config.from_dict(
        {
            "dataset": "mnist5k",
            "method": "mean",
            "arch": "mnist-mlp",
            "T": 2,
            "epochs": 4,
            "lr": 0.05,
            "batch_size": 16,
            "train_limit": 32,
            "eval_limit": 16,
            "device": "cpu",
            "progress": False,
            "out_dir": str(tmp_path),
        }
    )
    seen: dict = {"lrs": []}

    def logged_fit(model, *, optimizer, **kwargs):
        optimizer.register_step_pre_hook(
            lambda *_: seen["lrs"].append(optimizer.param_groups[0]["lr"])
        )
        seen["optimizer"] = optimizer
        return fit(model, optimizer=optimizer, **kwargs)

    monkeypatch.setattr(experiment, "fit", logged_fit)
    splits = load_splits(config)
    _, history = experiment.train_network(
        config, splits, torch.device("cpu"), tmp_path, lambda *_: None
    )
    E, per_epoch = config.epochs, len(splits.train)
    assert per_epoch == 2
    expected = [config.lr / 2 * (1 + math.cos(math.pi * e / E)) for e in range(E)]
    assert seen["lrs"][0] == config.lr  # no warm-up
    assert seen["lrs"] == pytest.approx(
        [lr for lr in expected for _ in range(per_epoch)], abs=1e-12
    )
    assert seen["lrs"][-1] == pytest.approx(config.lr / 2 * (1 - math.cos(math.pi / E)))
    assert [row["lr"] for row in history] == pytest.approx(expected, abs=1e-12)
    assert seen["optimizer"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.003])
def test_the_regulariser_is_computed_every_batch_only_when_it_is_in_the_loss(monkeypatch, alpha):
    """At alpha = 0 R only serves the log: computed on an epoch's last batch, with no layer
    collected on the others, and ``reg_loss`` is that batch's R; with alpha > 0 every batch
    computes it and ``reg_loss`` is the sample-weighted epoch mean (docs/method.md §1.4)."""
    from snnlib.pipeline.network import build_network, forward_for, make_objective
    from snnlib.regularisers import RCS

    config = Config(dataset="mnist5k-dvs", method="tet", arch="dvs-cnn", T=2, alpha=alpha)
    torch.manual_seed(0)
    model = build_network(config)
    x, y = torch.rand(10, 2, 2, 34, 34), torch.randint(0, 10, (10,))
    batches = TensorBatches(x, y, 4)  # batches of 4, 4 and 2
    values, collected = [], []
    value = RCS.value

    def logged(self, collector, outputs, labels):
        out = value(self, collector, outputs, labels)
        values.append((float(out.detach()), len(labels)))
        return out

    monkeypatch.setattr(RCS, "value", logged)
    forward = forward_for(config, trained=True)
    objective = make_objective(
        config, lambda m, xb, c=None: collected.append(c is not None) or forward(m, xb, c)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every batch sees one net
    stats = train.train_one_epoch(
        model, batches, objective, optimizer, torch.device("cpu"), 0, progress=False
    )
    if alpha == 0:
        assert collected == [False, False, True]
        assert [n for _, n in values] == [2]
        assert stats["reg_loss"] == pytest.approx(values[0][0], rel=1e-12)
    else:
        assert collected == [True, True, True]
        assert [n for _, n in values] == [4, 4, 2]
        mean = sum(v * n for v, n in values) / 10
        assert stats["reg_loss"] == pytest.approx(mean, rel=1e-12)
