"""One experiment: config -> data -> network -> train -> evaluate -> run record.

``run(config) -> run_dir`` is the single entry point; ``python -m snnlib run`` and the
``10_train`` notebook call it. A finished run (``DONE`` and ``model.pt`` present, computed
from the same data, its parts agreeing with their digests:
:func:`snnlib.pipeline.records.is_current`)
is skipped unless ``force=True``; a rerun that computes the same content leaves the record's
files as they were and says "identical" (:func:`snnlib.pipeline.records.open_run`).
Config, data and device are checked before anything is written; then the run holds its lock
(:func:`snnlib.pipeline.records.open_run`) and writes its new record, checkpoint included, into the
staging folder, which replaces the old record only once it is ``DONE``: a failure leaves the
old record as it was, and a rerun resumes from the staged checkpoint. A record without its
weights (as committed under ``results/``) is recomputed the same way.

What each method trains, converts and evaluates is the table in :mod:`snnlib.methods`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from snnlib.config import Config
from snnlib.data.batching import Splits, batches_for, load_splits
from snnlib.data.fingerprint import data_fingerprint
from snnlib.methods import METHOD_TABLE
from snnlib.pipeline import digests, records
from snnlib.pipeline.evaluate import collect_outputs, summarise, with_spike_dropout
from snnlib.pipeline.network import (
    build_network,
    forward_for,
    make_objective,
    to_snn,
    trained_parameters,
)
from snnlib.pipeline.records import HISTORY_COLUMNS, write_csv, write_json, write_npz
from snnlib.pipeline.train import (
    CheckpointError,
    barrier,
    distributed,
    fit,
    load_checkpoint,
    seed_everything,
    select_device,
    silent,
)


def run(config: Config | dict, force: bool = False, log=print, *, wait: bool = False) -> Path:
    """Run one experiment and return its run folder (skipped when already finished).

    ``wait=True`` waits for another process that holds the run's lock instead of raising
    :class:`snnlib.pipeline.records.RunLocked`.
    """
    config = config if isinstance(config, Config) else Config.from_dict(config)
    run_dir = config.run_dir
    rank, world = distributed()
    log = log if rank == 0 else silent  # under torchrun only rank 0 reports and writes
    fingerprint = data_fingerprint(config)  # refuses missing data, or an incomplete copy
    if _skip(run_dir, fingerprint, force, log, say_why=True):
        return run_dir
    started = time.time()
    device = select_device(config.device)
    seed_everything(config.seed)
    splits = load_splits(config, rank, world)
    if rank != 0:
        barrier(world)  # rank 0 holds the run's lock and has set up its staging folder
        if not _skip(run_dir, fingerprint, force, log):
            train_network(config, splits, device, records.staging_dir(run_dir), log)
        return run_dir
    with records.open_run(run_dir, wait=wait, log=log) as stage:
        barrier(world)
        if _skip(run_dir, fingerprint, force, log):  # finished by the process we waited for
            return run_dir
        write_json(stage / "config.json", records.record_config(config.to_dict()))
        model, history = train_network(config, splits, device, stage, log)
        snn, arrays = evaluate_network(config, model, splits, device, log)
        info = {"device": str(device), "started": started, "world_size": world, "data": fingerprint}
        summary = write_record(stage, config, snn, arrays, history, info)
    log(f"[done] {run_dir}: accuracy at T={config.T}: {summary['accuracy_tmax']:.4f}")
    return run_dir


def _skip(run_dir: Path, fingerprint: dict, force: bool, log, say_why: bool = False) -> bool:
    """Whether the run is current and not forced (then debris of a crashed swap is repaired);
    ``say_why``: log why a finished record is recomputed."""
    why = records.why_rerun(run_dir, fingerprint)
    if why is None and not force:
        records.repair(run_dir)
        log(f"[skip] {run_dir} is finished (force=True reruns it)")
        return True
    if say_why and why is not None and records.is_done(run_dir):
        log(f"[recompute] {run_dir.name}: {why}")
    return False


def train_network(
    config: Config, splits: Splits, device: torch.device, folder: Path, log
) -> tuple[nn.Module, list[dict]]:
    """Build and train the method's network (resuming from ``folder/checkpoint.pt``); return it
    with the best validation weights, and the per-epoch history."""
    model = build_network(config).to(device)
    forward = forward_for(config, trained=True)
    params = trained_parameters(config, model, splits.train, forward, log)
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history = fit(
        model,
        train=splits.train,
        held_out=splits.calib,
        objective=make_objective(config, forward),
        forward=forward,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=config.epochs,
        device=device,
        checkpoint=folder / "checkpoint.pt",
        digest=config.digest(),
        amp=config.amp,
        progress=config.progress,
        log=log,
    )
    return model, history


def evaluate_network(
    config: Config, model: nn.Module, splits: Splits, device: torch.device, log
) -> tuple[nn.Module, dict]:
    """The evaluated SNN and the arrays of ``outputs.npz`` (test and calibration outputs,
    spikes and SynOps; the ANN's test outputs too where the method converts)."""
    arrays: dict = {}
    if METHOD_TABLE[config.method].converts:
        ann = collect_outputs(model.eval(), splits.test, forward_for(config, trained=True), device)
        arrays["ann_outputs"] = ann["outputs"]
    snn = to_snn(config, model, log).eval()
    forward = forward_for(config, trained=False)
    test = collect_outputs(snn, splits.test, forward, device, config.progress)
    calib_net, calib_batches = calibration_data(config, snn, splits)
    calib = collect_outputs(calib_net, calib_batches, forward, device, config.progress)
    arrays.update(
        test_outputs=test["outputs"],
        test_labels=test["labels"],
        calib_outputs=calib["outputs"],
        calib_labels=calib["labels"],
        test_spikes=test["spikes"],
        test_synops=test["synops"],
    )
    return snn, arrays


def calibration_data(config: Config, snn: nn.Module, splits: Splits):
    """``(network, batches)`` the Top-K cutoff is calibrated on: the held-out calib split, or
    the paper's training data through spike dropout (:func:`paper_calibration_data`)."""
    if config.calibration == "train-dropout":
        return paper_calibration_data(config, snn)
    return snn, splits.calib


def paper_calibration_data(config: Config, snn: nn.Module):
    """``(network, batches)`` of the paper's calibration: the training split, without
    augmentation, through a copy of ``snn`` with spike dropout (docs/method.md §1.7.1)."""
    return with_spike_dropout(snn, config.calib_dropout), batches_for(config, "train", False, False)


def write_record(
    folder: Path, config: Config, snn: nn.Module, arrays: dict, history: list, info: dict
) -> dict:
    """Write the run record into ``folder``, ``model.pt``, ``digests.json`` and ``DONE`` last;
    return the summary.

    ``info`` holds the provenance's ``device``, ``started`` (a ``time.time()``),
    ``world_size`` and ``data`` (the data fingerprint, read by
    :func:`snnlib.pipeline.records.is_current`).
    """
    write_npz(folder / "outputs.npz", **arrays)
    per_timestep, cutoff_table, summary = summarise(
        arrays, config.epsilons, config.bins, config.max_acc_drop
    )
    write_csv(folder / "history.csv", pd.DataFrame(history, columns=list(HISTORY_COLUMNS)))
    write_csv(folder / "per_timestep.csv", per_timestep)
    write_csv(folder / "cutoff.csv", cutoff_table)
    write_json(folder / "metrics.json", summary)
    provenance = records.provenance(
        info["device"],
        config.seed,
        info["started"],
        time.time(),
        world_size=info["world_size"],
        data=info["data"],
    )
    write_json(folder / "provenance.json", provenance)
    digests.seal(folder, snn.state_dict(), config.digest())  # model.pt and digests.json
    records.mark_done(folder)
    return summary


def load_snn(run_dir: Path | str) -> tuple[Config, nn.Module]:
    """``(config, SNN in eval mode on the CPU)`` of a finished run, from its ``model.pt``.

    The SNN is what the run evaluated (for ``qcfs`` the converted IF network). The checkpoint
    loads with ``weights_only=True`` and must belong to the run's ``config.json``
    (:class:`~snnlib.pipeline.train.CheckpointError` otherwise) and to its record: weights whose
    digest
    disagrees with the record's (:func:`snnlib.pipeline.records.check_parts`) raise
    :class:`~snnlib.pipeline.records.RecordError` naming the run and the part.
    """
    run_dir = Path(run_dir)
    if not records.has_weights(run_dir):
        raise FileNotFoundError(
            f"run_dir={str(run_dir)!r} is not a finished run with a model.pt (records copied "
            "without weights, like results/quick, cannot be loaded; rerun the config)"
        )
    records.check_parts(run_dir)
    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    snn = to_snn(config, build_network(config), log=silent)
    weights = load_checkpoint(run_dir / "model.pt", config.digest())["model"]
    missing = [k for k in snn.state_dict() if k not in weights]
    if missing:  # e.g. a model.pt from before the LIF parameters were saved with the weights
        raise CheckpointError(
            f"{run_dir / 'model.pt'} lacks {len(missing)} entries this snnlib saves (first: "
            f"{missing[0]!r}); it was written by an older version: rerun the run with force"
        )
    snn.load_state_dict(weights)
    return config, snn.eval()
