"""Smoke mode: every run of a profile for a few batches, at its true shapes, end to end.

``python -m snnlib grid configs/paper.yaml --smoke`` (``./run_all.sh --profile paper --smoke``)
runs each declared run with :func:`smoke_config`: the same dataset, architecture, input size,
T, method, alpha and every other field, but one epoch of :data:`TRAIN_BATCHES` training
batches and one calibration and one test batch, batches of at most :data:`SMOKE_BATCH`
samples. Each run goes through the whole pipeline (data loading, framing and caching, the
splits, training, conversion, evaluation, the record, the figures and tables) into
``<out_dir>/<profile>-smoke/``, never into the profile's own folder, and says what it is:
``smoke: true`` in ``config.json`` (part of the run id's digest, so a smoke record can never
pass for a real one), and the figures and tables of a smoke folder are marked SMOKE.

Where a dataset is not under the data root, the run reads synthetic stand-ins in the dataset's
real on-disk format (:mod:`snnlib.data.standins`), written once under
``<out_dir>/<profile>-smoke/standins/`` with a manifest of their digests, the only place
stand-ins are recognised; ``provenance.json`` then says ``data.standin: true``. A run that is
not a smoke run refuses them.
Smoke runs accept a partial copy (``partial: true``): they check the pipeline, not the data.

What a smoke run shows: every run of the profile builds, trains, converts, evaluates and is
recorded without an error, with its real shapes and memory layout at a small batch. What it
cannot show: accuracy (a few random batches; stand-ins are noise), speed or memory at the real
batch size on the real device, or that a long run converges.
"""

from __future__ import annotations

from pathlib import Path

from snnlib.catalog import dataset_info
from snnlib.config import Config, ConfigError

SMOKE_EPOCHS = 1
TRAIN_BATCHES = 2  # training batches of the one epoch; calibration and test: one batch each
SMOKE_BATCH = 2  # samples per batch at most (the profile's own batch size when smaller)
SUFFIX = "-smoke"  # results/<profile>-smoke/
SET_BY_SMOKE = ("epochs", "train_limit", "eval_limit", "smoke", "partial", "profile")


def smoke_config(config: Config) -> Config:
    """The smoke run of ``config`` (see the module docstring): only the length of training and
    evaluation, the batch size, the profile folder and the labels change."""
    batch = min(config.batch_size, SMOKE_BATCH)
    eval_batch = min(config.eval_batch_size, SMOKE_BATCH)
    return config.replace(
        epochs=SMOKE_EPOCHS,
        batch_size=batch,
        eval_batch_size=eval_batch,
        train_limit=TRAIN_BATCHES * batch,
        eval_limit=eval_batch,
        smoke=True,
        partial=True,
        profile=config.profile + SUFFIX,
    )


def check_overrides(overrides: dict) -> None:
    """Refuse overrides that smoke mode sets itself (before any work)."""
    clash = [key for key in overrides if key in SET_BY_SMOKE]
    if clash:
        given = ", ".join(f"{k}={overrides[k]!r}" for k in clash)
        raise ConfigError(
            f"--smoke sets {', '.join(SET_BY_SMOKE)} itself; drop the override(s) {given} "
            "(or run without --smoke)"
        )


def standin_dir(config: Config) -> Path:
    """Where the stand-ins of a smoke profile are written: beside its runs."""
    return Path(config.out_dir) / config.profile / "standins"


def with_data(configs: list[Config], log=print) -> list[Config]:
    """Each smoke config on its dataset where it is under the config's data root, else on
    stand-ins (written now, once per dataset; see :mod:`snnlib.data.standins`)."""
    absent: dict[str, bool] = {}
    for config in configs:
        if config.dataset not in absent:
            absent[config.dataset] = _absent(config)
    names = sorted(name for name, missing in absent.items() if missing)
    if not names:
        return configs
    from snnlib.data.standins import write_standins

    for root in sorted({standin_dir(c) for c in configs if absent[c.dataset]}):
        log(f"[smoke] not under the data root, so read from synthetic stand-ins: {names}")
        write_standins(root, names)
    return [c.replace(data_root=str(standin_dir(c))) if absent[c.dataset] else c for c in configs]


def _absent(config: Config) -> bool:
    """Whether the dataset of ``config`` is missing from its data root. Any other problem with
    the data (a damaged copy) is left to the run, which reports it without stopping the others.
    """
    if dataset_info(config.dataset).embedded:
        return False
    from snnlib.data.errors import DatasetNotFoundError
    from snnlib.data.fingerprint import data_fingerprint

    try:
        data_fingerprint(config)
    except DatasetNotFoundError:
        return True
    except Exception:  # e.g. a damaged copy: the run reports it, and the others go on
        pass
    return False
