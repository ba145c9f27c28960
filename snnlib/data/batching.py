"""Batches of a config's splits: in-memory tensors for the embedded data, a DataLoader otherwise.

Both kinds give ``epoch(e)`` iterators of ``(x, y)`` batch-first (``[B, ...]``;
:mod:`snnlib.data.layout` moves time first) whose order depends only on ``(seed, epoch)``, so a
resumed run sees the same batches. ``train_limit`` / ``eval_limit`` keep a fixed random subset
of a split (the same for every epoch), drawn with the config's seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from snnlib.catalog import dataset_info
from snnlib.config import Config
from snnlib.data import as_tensors, get_dataset
from snnlib.data.errors import check_augment

IN_MEMORY_BYTES = 1 << 30  # a split without augmentation up to this size is held in memory


@dataclass
class TensorBatches:
    """Batches of an in-memory split, by slicing a seeded permutation (fast on CPU too).

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    Under DDP each rank takes every ``world``-th sample of the permutation, padded by wrapping
    around (as ``DistributedSampler``) so that every rank runs the same number of batches:
    a rank with one batch more would wait forever for the others' gradients.
    """

    x: Tensor
    y: Tensor
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    rank: int = 0
    world: int = 1

    def epoch(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        pad = -n % self.world
        order = torch.cat([order, order[:pad]])[self.rank :: self.world]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.y) / self.world) / self.batch_size)


@dataclass
class LoaderBatches:
    """Batches of a map-style ``Dataset`` through a ``DataLoader`` seeded per epoch."""

    dataset: torch.utils.data.Dataset
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    workers: int = 0
    rank: int = 0
    world: int = 1

    def epoch(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        sampler = None
        if self.world > 1:
            sampler = torch.utils.data.DistributedSampler(
                self.dataset, self.world, self.rank, shuffle=self.shuffle, seed=self.seed
            )
            sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.workers,
            generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch),
        )
        yield from loader

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.world / self.batch_size)


def subset(n: int, limit: int, seed: int) -> Tensor:
    """A fixed random subset of ``limit`` of ``n`` indices, in increasing order (the split files
    are sorted by class, so the first ``limit`` would miss classes)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def batches_for(
    config: Config, split: str, shuffle: bool, augment: bool | None, rank: int = 0, world: int = 1
) -> TensorBatches | LoaderBatches:
    """Batches of one split: in-memory tensors for the embedded data and for any split whose
    samples are fixed (no augmentation) and take at most :data:`IN_MEMORY_BYTES` (read once:
    the N-MNIST subset, the calib and test splits of CIFAR), a DataLoader otherwise.

    ``augment=None`` is the dataset's training augmentation on split "train" only; embedded
    data without augmentation is served from memory.
    """
    info = dataset_info(config.dataset)
    T = config.T if info.kind == "event" else None
    size = config.batch_size if shuffle else config.eval_batch_size
    limit = config.train_limit if split == "train" else config.eval_limit
    if info.embedded and not augment:
        x, y = as_tensors(config.dataset, split, T=T)  # the same data for every seed
        if limit:
            keep = subset(len(y), limit, config.seed)
            x, y = x[keep], y[keep]
        return TensorBatches(x, y, size, shuffle, config.seed, rank, world)
    ds = get_dataset(config.dataset, split, root=config.data_root, T=T, augment=augment)
    if limit:
        ds = torch.utils.data.Subset(ds, subset(len(ds), limit, config.seed).tolist())
    fixed = not _draws_at_random(ds, check_augment(augment, split))
    if fixed and len(ds) * math.prod(info.input_shape) * (T or 1) * 4 <= IN_MEMORY_BYTES:
        x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))  # read once
        return TensorBatches(x, y, size, shuffle, config.seed, rank, world)
    return LoaderBatches(ds, size, shuffle, config.seed, config.workers, rank, world)


def _draws_at_random(ds, augment: bool) -> bool:
    """Whether a sample differs from one read to the next (a training augmentation): an event
    split knows (N-MNIST has no augmentation); otherwise ``augment`` says."""
    from snnlib.data.events import EventFrames

    base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
    return base.augment is not None if isinstance(base, EventFrames) else augment


class Splits(NamedTuple):
    """The batches of one run: shuffled training shards, the calib and the test split."""

    train: TensorBatches | LoaderBatches
    calib: TensorBatches | LoaderBatches
    test: TensorBatches | LoaderBatches


def load_splits(config: Config, rank: int = 0, world: int = 1) -> Splits:
    """The three splits of a run (fails fast on a missing or wrong data root)."""
    return Splits(
        train=batches_for(config, "train", True, None, rank, world),
        calib=batches_for(config, "calib", False, False),
        test=batches_for(config, "test", False, False),
    )
