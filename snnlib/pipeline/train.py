"""The training loop: devices, seeds, one epoch, checkpoint/resume, model selection.

Follows the shape of torchvision's reference scripts: ``train_one_epoch`` and ``evaluate``
under a ``fit`` that checkpoints after every epoch (model, optimiser, scheduler, epoch, RNG,
history, the best weights so far and the config digest), atomically, and resumes from it.
Models are selected on the validation split (never on test). Under ``torchrun`` with
``WORLD_SIZE > 1`` the model is wrapped in DDP and every rank trains on its own shard.
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snnlib.tools.atomic import atomic_write

# objective(model, x, y, log_reg) -> (total loss, regulariser value or None, per-step outputs
# [T, B, K]); log_reg: the loop logs this batch's regulariser value (each epoch's last batch)
Objective = Callable[[nn.Module, Tensor, Tensor, bool], tuple[Tensor, Tensor | None, Tensor]]


class Batches(Protocol):
    """What the loop needs of a split (:mod:`snnlib.data.batching`): ``epoch(e)`` and ``len``."""

    def epoch(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this run (corrupt, or another config)."""


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA (the local rank's GPU under torchrun), then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", launch().local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Launch(NamedTuple):
    """Where this process stands in a torchrun launch (``0, 0, 1`` without one)."""

    rank: int
    local_rank: int
    world_size: int


def launch() -> Launch:
    """This process's place as torchrun sets it in the environment: the one reader of
    ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``."""
    env = os.environ.get
    return Launch(int(env("RANK", "0")), int(env("LOCAL_RANK", "0")), int(env("WORLD_SIZE", "1")))


def silent(*_) -> None:
    """A log that says nothing (ranks other than 0, conversions reloaded quietly)."""


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun."""
    world = launch().world_size
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def barrier(world: int) -> None:
    """Wait for every rank (no-op in a single process)."""
    if world > 1:
        torch.distributed.barrier()


def train_one_epoch(
    model: nn.Module,
    batches,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``batches``: one optimiser step per batch. Raises on NaN/inf loss.

    ``reg_loss`` is the sample-weighted mean of the regulariser values the objective returned:
    of every batch where the regulariser is in the loss, of the last batch where it is only
    logged (``alpha = 0``, :func:`snnlib.pipeline.network.make_objective`)."""
    model.train()
    totals = {"loss": 0.0, "reg": 0.0, "reg_n": 0, "correct": 0, "n": 0}
    last = len(batches) - 1
    bar = tqdm(
        batches.epoch(epoch),
        total=len(batches),
        desc=f"epoch {epoch + 1}",
        disable=not progress,
        leave=False,
    )
    for i, (xb, yb) in enumerate(bar):
        x, y = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=scaler is not None):
            loss, reg, outputs = objective(model, x, y, i == last)
        loss_value = loss.item()  # one device sync per batch, needed for the NaN check
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"loss is {loss_value} at epoch {epoch + 1}, batch {i + 1}; the last good "
                "checkpoint is kept (lower lr, or check the data)"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        b = len(y)
        totals["loss"] += loss_value * b
        if reg is not None:
            totals["reg"] += float(reg) * b
            totals["reg_n"] += b
        totals["correct"] += int((outputs.detach().mean(0).argmax(-1) == y).sum())
        totals["n"] += b
        shown = {} if reg is None else {"reg": f"{float(reg):.3f}"}
        bar.set_postfix(
            loss=f"{loss_value:.3f}", **shown, acc=f"{totals['correct'] / totals['n']:.3f}"
        )
    n = max(totals["n"], 1)
    return {
        "train_loss": totals["loss"] / n,
        "reg_loss": totals["reg"] / max(totals["reg_n"], 1),
        "train_acc": totals["correct"] / n,
    }


@torch.no_grad()
def accuracy(
    model: nn.Module, batches, forward: Callable[[nn.Module, Tensor], Tensor], device: torch.device
) -> float:
    """Accuracy of ``argmax mean_t o_t``, the training-time accuracy (docs/method.md §1.4)."""
    model.eval()
    correct = total = 0
    for x, y in batches.epoch():
        outputs = forward(model, x.to(device))
        correct += int((outputs.mean(0).argmax(-1) == y.to(device)).sum())
        total += len(y)
    return correct / max(total, 1)


# ---- checkpoints ----------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: Path, digest: str) -> dict:
    """Load with ``weights_only=True``; refuse a corrupt file or one from another config."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means "corrupt"
        raise CheckpointError(  # force would not help: the staging folder is kept to resume
            f"checkpoint {path} is corrupt or unreadable ({err}); delete {path} and rerun the "
            "same command: the run then starts over"
        ) from err
    if not isinstance(payload, dict) or payload.get("config_digest") != digest:
        found = payload.get("config_digest") if isinstance(payload, dict) else None
        raise CheckpointError(
            f"checkpoint {path} belongs to config {found!r}, not {digest!r}; "
            f"refusing to load it (delete {path} to start over, or use another out_dir)"
        )
    return payload


def fit(
    model: nn.Module,
    *,
    train: Batches,
    held_out: Batches,
    objective: Objective,
    forward: Callable[[nn.Module, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epochs: int,
    device: torch.device,
    checkpoint: Path,
    digest: str,
    amp: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train for ``epochs`` (resuming from ``checkpoint``, which must belong to config
    ``digest``); leave in ``model`` the weights of the epoch with the best accuracy on the
    ``held_out`` batches (the calibration split; the history calls it ``val_acc``); return the
    per-epoch history."""
    rank, world = distributed()
    net = _distributed_wrapper(model, device) if world > 1 else model
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    history: list[dict] = []
    best = {"val_acc": -1.0, "epoch": 0, "model": None}
    start = 0
    if checkpoint.is_file():
        history, best, start = _resume(checkpoint, digest, model, optimizer, scheduler)
        log(f"resuming from {checkpoint} after epoch {start}")
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            net, train, objective, optimizer, device, epoch, scaler, progress and rank == 0
        )
        scheduler.step()
        val_acc = accuracy(model, held_out, forward, device)
        row = {
            "epoch": epoch + 1,
            **stats,
            "val_acc": val_acc,
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        history.append(row)
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch + 1, "model": _snapshot(model)}
        log(
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        )
        if rank == 0:
            state = {"history": history, "best": best, "epoch": epoch + 1, "config_digest": digest}
            save_checkpoint(checkpoint, _training_state(model, optimizer, scheduler, **state))
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    return history


def _distributed_wrapper(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``model`` (the unwrapped module is what gets evaluated and saved)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _snapshot(model: nn.Module) -> dict:
    """A copy of the weights that later training steps do not change."""
    return {  # a layer's extra state (LIF parameters) is a fresh dict
        k: v.detach().clone() if isinstance(v, torch.Tensor) else v
        for k, v in model.state_dict().items()
    }


def _training_state(model, optimizer, scheduler, **state) -> dict:
    """Everything a resume needs, in the checkpoint's key order."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": state["epoch"],
        "history": state["history"],
        "best": state["best"],
        "config_digest": state["config_digest"],
    }


def _resume(checkpoint: Path, digest: str, model, optimizer, scheduler) -> tuple[list, dict, int]:
    """Load a training checkpoint into the objects; return ``(history, best, epoch)``."""
    state = load_checkpoint(checkpoint, digest)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["history"], state["best"], state["epoch"]
