"""Direct-training losses over per-timestep outputs ``o`` ``[T, B, K]`` (docs/method.md §1.4).

* ``mean``: ``CE((1/T) Σ_t o_t, y)``.
* ``tet`` (Deng et al., ICLR 2022): ``(1 − λ)·(1/T) Σ_t CE(o_t, y) + λ·MSE(o, φ)``, the MSE
  over all ``T·B·K`` outputs against the constant ``φ`` (``λ = 1e-3``, ``φ = 1``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from snnlib import checks


def _check(outputs: Tensor, labels: Tensor) -> None:
    if outputs.dim() != 3:
        raise ValueError(f"outputs must be [T, B, K]; got shape {tuple(outputs.shape)}")
    if labels.shape != outputs.shape[1:2]:
        raise ValueError(
            f"labels must be [B] with B={outputs.shape[1]}; got shape {tuple(labels.shape)}"
        )


def mean_ce(outputs: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the time-averaged output."""
    _check(outputs, labels)
    return F.cross_entropy(outputs.mean(0), labels)


def tet_loss(outputs: Tensor, labels: Tensor, lamb: float = 1e-3, phi: float = 1.0) -> Tensor:
    """The TET loss: per-timestep CE plus a small pull of every output towards ``phi``."""
    _check(outputs, labels)
    checks.number("lamb", lamb, low=0, high=1)
    T = outputs.shape[0]
    per_step = F.cross_entropy(outputs.flatten(0, 1), labels.repeat(T))  # mean over T*B
    mse = F.mse_loss(outputs, torch.full_like(outputs, phi))
    return (1.0 - lamb) * per_step + lamb * mse


