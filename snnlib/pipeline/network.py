"""A config's network, its forward pass and its training objective, as :mod:`snnlib.methods`
describes each method: the network built for the method, the SNN it evaluates (converted for
``qcfs``), and ``loss + alpha · RCS``."""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from snnlib import models
from snnlib.catalog import dataset_info
from snnlib.config import Config
from snnlib.convert import convert
from snnlib.data.layout import to_time_first
from snnlib.losses import mean_ce, tet_loss
from snnlib.methods import METHOD_TABLE
from snnlib.neurons import Collector
from snnlib.qcfs import clip_from_data, without_clip_decay
from snnlib.regularisers import RCS


def build_network(config: Config) -> nn.Module:
    """The network the config's method trains (untrained), for the dataset's input."""
    info = dataset_info(config.dataset)
    method = METHOD_TABLE[config.method]
    return models.build(
        config.arch,
        num_classes=info.num_classes,
        in_channels=info.input_shape[0],
        input_size=tuple(info.input_shape[1:]),
        neuron=method.neuron,
        levels=config.L,  # used by QCFS only
        decay=config.decay,  # used by LIF only
        norm=method.norm,
        T=config.T,  # used by TEBN only
    )


def to_snn(config: Config, model: nn.Module, log=print) -> nn.Module:
    """The SNN the method evaluates: the converted IF network for ``qcfs``, else ``model``."""
    if not METHOD_TABLE[config.method].converts:
        return model
    snn, report = convert(model)
    log(f"converted {len(report)} QCFS layers to IF neurons")
    return snn


def network_forward(
    model: nn.Module,
    x: Tensor,
    collector: Collector | None = None,
    *,
    T: int,
    kind: str,
    accumulate: bool,
) -> Tensor:
    """``model`` on a data-layer batch ``x`` laid out time first for ``T`` steps."""
    return model(to_time_first(x, T, kind, accumulate), collector=collector)


def forward_for(config: Config, *, trained: bool):
    """``forward(model, x, collector=None)`` of the trained network (``trained=True``: ``T = 1``
    for a converted ANN) or of the evaluated SNN (``T`` steps)."""
    kind = dataset_info(config.dataset).kind
    method = METHOD_TABLE[config.method]
    T = method.train_T(config.T) if trained else config.T
    return partial(network_forward, T=T, kind=kind, accumulate=method.accumulates(kind))


def make_objective(config: Config, forward):
    """``objective(model, x, y, log_reg) -> (loss, R, outputs)`` for the config's method.

    With ``alpha > 0``, ``R`` is part of the loss and computed for every batch. With
    ``alpha = 0`` it only serves the log: computed, without a graph, where ``log_reg`` asks
    for it (the training loop asks on each epoch's last batch), else ``R`` is ``None`` and
    no layer's spikes or membranes are collected."""
    rcs = RCS(config.rho, config.mask_rho)
    losses = {"ce": mean_ce, "tet": partial(tet_loss, lamb=config.tet_lamb, phi=config.tet_phi)}
    task = losses[METHOD_TABLE[config.method].loss]

    def objective(model: nn.Module, x: Tensor, y: Tensor, log_reg: bool = True):
        if config.alpha == 0 and not log_reg:
            outputs = forward(model, x)
            return task(outputs, y), None, outputs
        collector = Collector(detach=config.alpha == 0)
        outputs = forward(model, x, collector)
        reg = rcs.value(collector, outputs, y)
        loss = task(outputs, y)
        if config.alpha > 0:
            loss = loss + config.alpha * reg
        return loss, reg.detach(), outputs

    return objective


def trained_parameters(config: Config, model: nn.Module, batches, forward, log=print):
    """The parameters the optimiser trains. A converting method with ``lam_rule="data"`` first
    sets each QCFS clip λ from a percentile of the training activations and trains λ without
    weight decay (docs/method.md §1.3); otherwise every parameter, as built."""
    if not (METHOD_TABLE[config.method].converts and config.lam_rule == "data"):
        return model.parameters()
    lams = clip_from_data(model, batches, forward, config.lam_percentile)
    shown = ", ".join(f"{v:.3f}" for v in lams)
    log(f"QCFS clip λ from the data ({config.lam_percentile:g}th percentile): {shown}")
    return without_clip_decay(model)
