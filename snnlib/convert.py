"""ANN -> SNN conversion: every QCFS activation becomes an IF neuron (docs/method.md §1.3).

Each :class:`~snnlib.qcfs.QCFS` with learned clip ``λ`` is replaced by a
:class:`~snnlib.neurons.LIF` with ``decay=1`` (IF), ``threshold=λ``, soft reset,
``v_init=λ/2`` and weighted output ``λ·s_t``; everything else (Conv, BN in eval mode,
pooling, Linear) is kept. Replacement is by type, through an explicit mapping, never by
class-name substrings; an activation that has no spiking counterpart is an error that names
its path, so nothing is silently left analog (the official SRC code converts nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from snnlib.neurons import LIF
from snnlib.qcfs import QCFS

# Activations that cannot be turned into spiking neurons by this conversion.
UNCONVERTIBLE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool2d,
)


def qcfs_to_if(act: QCFS) -> LIF:
    """The IF neuron that reproduces a QCFS layer's output rate."""
    lam = act.lam.detach().clone()
    return LIF(decay=1.0, threshold=lam, reset="soft", v_init=lam.item() / 2, weighted_output=True)


CONVERSIONS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {QCFS: qcfs_to_if}


@dataclass(frozen=True)
class Replacement:
    """One converted module: its dotted path, the old and the new kind (``"IF"`` for the
    neurons of :func:`qcfs_to_if`) and the new threshold."""

    path: str
    old: str
    new: str
    threshold: float


def convert(ann: nn.Module, conversions=None) -> tuple[nn.Module, list[Replacement]]:
    """Return ``(snn, report)``: a converted deep copy of ``ann`` (left untouched).

    Raises ``ValueError`` naming every module that is an unconvertible activation, or when
    the model has no QCFS layer at all.
    """
    conversions = CONVERSIONS if conversions is None else conversions
    bad = [
        f"{name} ({type(m).__name__})"
        for name, m in ann.named_modules()
        if isinstance(m, UNCONVERTIBLE) and not isinstance(m, tuple(conversions))
    ]
    if bad:
        raise ValueError(
            "cannot convert these modules to spiking neurons: "
            + ", ".join(bad)
            + f"; convertible types: {[t.__name__ for t in conversions]} (MaxPool: use AvgPool)"
        )
    snn = copy.deepcopy(ann)
    report: list[Replacement] = []
    for parent_name, parent in list(snn.named_modules()):
        for child_name, child in list(parent.named_children()):
            rule = next((f for t, f in conversions.items() if isinstance(child, t)), None)
            if rule is None:
                continue
            new = rule(child)
            setattr(parent, child_name, new)
            path = f"{parent_name}.{child_name}" if parent_name else child_name
            spiking = isinstance(new, LIF)
            threshold = float(new.threshold.mean()) if spiking else float("nan")
            kind = new.kind if spiking else type(new).__name__
            report.append(Replacement(path, type(child).__name__, kind, threshold))
    if not report:
        raise ValueError(
            f"nothing to convert: no module of type {[t.__name__ for t in conversions]} "
            f"in {type(ann).__name__}"
        )
    return snn.eval(), report
