"""One experiment: config -> data -> model -> train -> evaluate -> run record.

``run(config) -> run_dir`` is the single entry point; ``python -m snnlib run`` and the
``10_train`` notebook call it. A finished run (``DONE`` and ``model.pt`` present) is skipped
unless ``force=True``; an unfinished one resumes from its last checkpoint; a record without
its weights (as committed under ``results/``) is recomputed in place.

Methods (spec 1.3-1.4):

* ``qcfs``: train the QCFS ANN with ``T = 1`` (cross-entropy, optional ANN-side RCS),
  convert it to an IF SNN and run that for ``T`` steps on the repeated input.
* ``mean``, ``tet``, ``tebn``: direct training of the LIF SNN for ``T`` steps with the mean
  or TET loss (``tebn``: TET loss with TEBN normalisation), plus ``alpha · RCS``.

Static images are repeated over time; event datasets give ``T`` frames. For ``qcfs`` on an
event dataset, the ANN and the SNN both see the accumulated frame (the mean of the ``T``
frames), as the official code's one-frame ``dvs-cifar10-1`` setting.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from snnlib import data, models
from snnlib.config import Config
from snnlib.convert import convert
from snnlib.evaluate import collect_outputs, summarise, with_spike_dropout
from snnlib.losses import mean_ce, tet_loss
from snnlib.neurons import Collector
from snnlib.records import (
    HISTORY_COLUMNS,
    has_weights,
    is_done,
    mark_done,
    provenance,
    write_csv,
    write_json,
    write_npz,
)
from snnlib.regularisers import RCS
from snnlib.train import (
    LoaderBatches,
    TensorBatches,
    barrier,
    distributed,
    fit,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    select_device,
)

EMBEDDED = ("mnist5k", "mnist5k-dvs")


def to_time_first(x: Tensor, T: int, kind: str, accumulate: bool) -> Tensor:
    """A batch from the data layer -> the network input ``[T, B, ...]``."""
    if kind == "event":
        x = x.transpose(0, 1)  # [B, T, C, H, W] -> [T, B, C, H, W]
        if not accumulate:
            return x
        x = x.mean(0)  # the accumulated frame [B, C, H, W]
    return x.unsqueeze(0).expand(T, *x.shape)  # the same input at every step


def anytime_input(config: Config, x: Tensor) -> tuple[Tensor, bool]:
    """A data-layer batch -> ``(x, sequence)`` for :func:`snnlib.anytime.run_anytime`, as the
    run's SNN sees it: event frames ``[T, B, ...]`` (``sequence=True``), else the static input
    ``[B, ...]`` repeated at every step (images; the accumulated frame for ``qcfs`` on events).
    """
    kind = data.info(config.dataset).kind
    accumulate = config.method == "qcfs" and kind == "event"
    x = to_time_first(x, config.T, kind, accumulate)
    if kind == "event" and not accumulate:
        return x, True
    return x[0].contiguous(), False


def network_forward(
    model: nn.Module,
    x: Tensor,
    collector: Collector | None = None,
    *,
    T: int,
    kind: str,
    accumulate: bool,
) -> Tensor:
    return model(to_time_first(x, T, kind, accumulate), collector=collector)


def make_objective(config: Config, forward):
    """``objective(model, x, y) -> (loss, R, outputs)`` for the config's method."""
    rcs = RCS(config.alpha, config.rho, config.mask_rho)
    if config.method == "mean":
        task = mean_ce
    elif config.method == "qcfs":
        task = mean_ce  # T = 1: plain cross-entropy
    else:
        task = partial(tet_loss, lamb=config.tet_lamb, phi=config.tet_phi)

    def objective(model: nn.Module, x: Tensor, y: Tensor):
        collector = Collector(detach=config.alpha == 0)  # R is still logged when alpha = 0
        outputs = forward(model, x, collector)
        reg = rcs.value(collector, outputs, y)
        loss = task(outputs, y)
        if config.alpha > 0:
            loss = loss + config.alpha * reg
        return loss, reg.detach(), outputs

    return objective


def subset(n: int, limit: int, seed: int) -> Tensor:
    """A fixed random subset of ``limit`` indices (splits are stored sorted by class)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def batches_for(config: Config, split: str, shuffle: bool, augment: bool | None, rank=0, world=1):
    """Batches of one split: in-memory tensors for the embedded data, a DataLoader otherwise."""
    info = data.info(config.dataset)
    T = config.T if info.kind == "event" else None
    size = config.batch_size if shuffle else config.eval_batch_size
    limit = config.train_limit if split == "train" else config.eval_limit
    if config.dataset in EMBEDDED and not augment:
        x, y = data.as_tensors(config.dataset, split, T=T)  # the same data for every seed
        if limit:
            keep = subset(len(y), limit, config.seed)
            x, y = x[keep], y[keep]
        return TensorBatches(x, y, size, shuffle, config.seed, rank, world)
    ds = data.get_dataset(config.dataset, split, root=config.data_root, T=T, augment=augment)
    if limit:
        ds = torch.utils.data.Subset(ds, subset(len(ds), limit, config.seed).tolist())
    return LoaderBatches(ds, size, shuffle, config.seed, config.workers, rank, world)


def build_network(config: Config) -> nn.Module:
    info = data.info(config.dataset)
    common = dict(
        num_classes=info.num_classes,
        in_channels=info.input_shape[0],
        input_size=tuple(info.input_shape[1:]),
    )
    if config.method == "qcfs":
        return models.build(config.arch, neuron="qcfs", levels=config.L, **common)
    norm = "tebn" if config.method == "tebn" else "bn"
    return models.build(
        config.arch, neuron="lif", decay=config.decay, norm=norm, T=config.T, **common
    )


def _quiet(*_) -> None:
    pass


def run(config: Config | dict, force: bool = False, log=print) -> Path:
    """Run one experiment and return its run folder (skipped when already finished)."""
    if not isinstance(config, Config):
        config = Config.from_dict(config)
    run_dir = config.run_dir
    rank, world = distributed()
    if rank != 0:  # under torchrun only rank 0 reports and writes the record
        log = _quiet
    if has_weights(run_dir) and not force:
        log(f"[skip] {run_dir} is finished (force=True reruns it)")
        return run_dir
    barrier(world)  # every rank has checked before rank 0 changes the folder
    if rank == 0 and force and run_dir.exists():
        shutil.rmtree(run_dir)
    elif rank == 0 and is_done(run_dir):  # a record without its weights: incomplete till redone
        (run_dir / "DONE").unlink()
    barrier(world)
    started = time.time()
    device = select_device(config.device)
    seed_everything(config.seed)
    info = data.info(config.dataset)
    accumulate = config.method == "qcfs" and info.kind == "event"
    train_T = 1 if config.method == "qcfs" else config.T
    train_fwd = partial(network_forward, T=train_T, kind=info.kind, accumulate=accumulate)
    snn_fwd = partial(network_forward, T=config.T, kind=info.kind, accumulate=accumulate)

    # Data first (fails fast on a wrong root), then the model.
    train = batches_for(config, "train", True, None, rank, world)
    calib = batches_for(config, "calib", False, False)
    test = batches_for(config, "test", False, False)
    if rank == 0:
        write_json(run_dir / "config.json", config.to_dict())

    model = build_network(config).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history = fit(
        model,
        train,
        calib,
        make_objective(config, train_fwd),
        train_fwd,
        optimizer,
        scheduler,
        config.epochs,
        device,
        run_dir / "checkpoint.pt",
        config.digest(),
        config.amp,
        config.progress,
        log,
    )
    if rank != 0:
        return run_dir

    arrays: dict = {}
    snn = model
    if config.method == "qcfs":
        ann_test = collect_outputs(model.eval(), test, train_fwd, device)
        arrays["ann_outputs"] = ann_test["outputs"]
        snn, report = convert(model)
        log(f"converted {len(report)} QCFS layers to IF neurons")
    snn.eval()
    test_out = collect_outputs(snn, test, snn_fwd, device, config.progress)
    if config.calibration == "train-dropout":
        calib_model = with_spike_dropout(snn, config.calib_dropout)
        calib_out = collect_outputs(
            calib_model,
            batches_for(config, "train", False, False),
            snn_fwd,
            device,
            config.progress,
        )
    else:
        calib_out = collect_outputs(snn, calib, snn_fwd, device, config.progress)
    arrays.update(
        test_outputs=test_out["outputs"],
        test_labels=test_out["labels"],
        calib_outputs=calib_out["outputs"],
        calib_labels=calib_out["labels"],
        test_spikes=test_out["spikes"],
        test_synops=test_out["synops"],
    )
    write_npz(run_dir / "outputs.npz", **arrays)
    per_timestep, cutoff_table, summary = summarise(
        arrays, config.epsilons, config.bins, config.max_acc_drop
    )
    write_csv(run_dir / "history.csv", pd.DataFrame(history, columns=list(HISTORY_COLUMNS)))
    write_csv(run_dir / "per_timestep.csv", per_timestep)
    write_csv(run_dir / "cutoff.csv", cutoff_table)
    write_json(run_dir / "metrics.json", summary)
    write_json(
        run_dir / "provenance.json",
        provenance(str(device), config.seed, started, time.time(), world_size=world),
    )
    save_checkpoint(
        run_dir / "model.pt", {"model": snn.state_dict(), "config_digest": config.digest()}
    )
    mark_done(run_dir)
    log(f"[done] {run_dir}: accuracy at T={config.T}: {summary['accuracy_tmax']:.4f}")
    return run_dir


def load_snn(run_dir: Path | str) -> tuple[Config, nn.Module]:
    """``(config, SNN in eval mode on the CPU)`` of a finished run, from its ``model.pt``.

    The SNN is what the run evaluated (for ``qcfs`` the converted IF network). The checkpoint
    loads with ``weights_only=True`` and must belong to the run's ``config.json``
    (:class:`~snnlib.train.CheckpointError` otherwise).
    """
    run_dir = Path(run_dir)
    if not has_weights(run_dir):
        raise FileNotFoundError(
            f"run_dir={str(run_dir)!r} is not a finished run with a model.pt (records copied "
            "without weights, like results/quick, cannot be loaded; rerun the config)"
        )
    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    snn = build_network(config)
    if config.method == "qcfs":
        snn, _ = convert(snn)
    snn.load_state_dict(load_checkpoint(run_dir / "model.pt", config.digest())["model"])
    return config, snn.eval()
