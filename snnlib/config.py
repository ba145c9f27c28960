"""One typed experiment config: defaults are the small demo values; overrides are checked.

A config cannot be built wrong: ``Config(...)`` itself checks every value (``__post_init__``)
and :meth:`Config.from_dict` adds unknown keys (with a did-you-mean) and wrong types; every
problem is collected into one :class:`ConfigError` that names the field, the value and what is
allowed. Combinations that could only fail after training (an input the architecture cannot
take, a conversion of a MaxPool network) are refused too. Validation reads torch-free tables
(:mod:`snnlib.catalog`, :mod:`snnlib.methods`), so it does not import torch. The papermill
``parameters`` cell of ``notebooks/10_train.ipynb`` declares these fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from snnlib import checks
from snnlib.catalog import ARCH_INFO, ARCHITECTURES, DATASETS, check_fit
from snnlib.methods import METHOD_TABLE, METHODS

CALIBRATION = ("split", "train-dropout")
LAM_RULES = ("data", "official")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Fields that change where or how fast a run goes, not what it computes.
NON_IDENTITY = ("device", "out_dir", "profile", "data_root", "workers", "progress")
# Fields that only a converting method reads: the digest of a direct-training run leaves them out.
CONVERSION_ONLY = ("lam_rule", "lam_percentile")

DEFAULT_EPSILONS = tuple(i / 100 for i in range(10))  # the Top-K ε grid 0.00..0.09 (§1.7.3)


class ConfigError(ValueError):
    """A config with one or more problems (``.problems``).

    Given a list, the message lists each problem and the allowed keys; given one message
    (e.g. about a YAML file or a notebook's parameters), it is that message.
    """

    def __init__(self, problems: list[str] | str):
        single = isinstance(problems, str)
        self.problems = [problems] if single else list(problems)
        super().__init__(problems if single else _message(self.problems))


@dataclass(frozen=True)
class Config:
    """Everything one experiment needs (see ``configs/*.yaml`` for profiles)."""

    dataset: str = "mnist5k"
    method: str = "qcfs"
    arch: str = "mnist-cnn"
    T: int = 8  # timesteps: evaluation T_max (qcfs), training and evaluation T (direct)
    L: int = 4  # QCFS quantisation levels
    lam_rule: str = "official"  # QCFS clip λ: "official" (8.0, decayed) or "data" (percentile)
    lam_percentile: float = 99.0  # lam_rule="data": this percentile of the pre-activations
    alpha: float = 0.0  # RCS weight; 0 turns the regulariser off
    rho: float = 0.3  # RCS reference window (fraction of T)
    mask_rho: float = 0.3  # RCS mask window (fraction of T)
    epochs: int = 3
    batch_size: int = 128
    eval_batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    tet_lamb: float = 1e-3
    tet_phi: float = 1.0
    decay: float = 0.5  # LIF decay for direct training
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    bins: int = 100
    max_acc_drop: float = 0.005  # operating point: largest ε within this drop on calib
    calibration: str = "split"  # "split": held-out calib split; "train-dropout": the paper's
    calib_dropout: float = 0.3
    train_limit: int = 0  # a fixed random subset of n training samples (0 = all); smoke runs
    eval_limit: int = 0  # a fixed random subset of n calib/test samples (0 = all); smoke runs
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used on CUDA only
    workers: int = 0
    data_root: str | None = None
    profile: str = "scratch"  # a published profile is named by its configs/<profile>.yaml
    out_dir: str = "results"
    progress: bool = True
    partial: bool = False  # accept a copy of the dataset with missing classes or files
    smoke: bool = False  # a smoke run (snnlib.pipeline.smoke): a pipeline check, never a result

    def __post_init__(self) -> None:
        for f in fields(self):  # stored as from_dict stores them, so the digest is the same
            object.__setattr__(self, f.name, _as_declared(f.type, getattr(self, f.name)))
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    # ---- identity -------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The fields that determine the result (and the checkpoint compatibility)."""
        d = self.to_dict()
        for key in NON_IDENTITY:
            d.pop(key, None)
        if not METHOD_TABLE[self.method].converts:  # read by QCFS training only
            for key in CONVERSION_ONLY:
                d.pop(key)
        return d

    def digest(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        """Readable and stable, e.g. ``mnist5k-qcfs-mnist-cnn-T8-a0.003-s0-1f2e3d4c``."""
        return (
            f"{self.dataset}-{self.method}-{self.arch}-T{self.T}-a{self.alpha:g}-s{self.seed}"
            f"-{self.digest()}"
        )

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.profile / "runs" / self.run_id

    def to_dict(self) -> dict[str, Any]:
        """Every field, except ``partial`` and ``smoke`` when False: configs (and their digests
        and ``config.json``) from before those fields existed stay as they were."""
        d = dataclasses.asdict(self)
        d["epsilons"] = list(self.epsilons)
        for flag in ("partial", "smoke"):
            if not d[flag]:
                del d[flag]
        return d

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build and validate; raise :class:`ConfigError` listing every problem."""
        problems: list[str] = []
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown key {checks.shown(key)}{hint}")
                continue
            try:
                kwargs[key] = _coerce(key, value, getattr(cls, key, None))
            except (TypeError, ValueError) as err:
                problems.append(str(err))
        try:
            config = cls(**kwargs)
        except ConfigError as err:
            problems += err.problems
        if problems:
            raise ConfigError(problems)
        return config

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_dict(), **changes})

    def problems(self) -> list[str]:
        """Every problem of this config: each value against what is allowed, then the fit of
        method, architecture and dataset (from torch-free tables, :mod:`snnlib.catalog`)."""
        p: list[str] = []
        for name, check in _FIELD_CHECKS.items():
            try:
                check(name, getattr(self, name))
            except ValueError as err:
                p.append(str(err))
        if not p:
            p += _fit_problems(self)
        return p


# what each field allows; checks.py raises ValueError naming the field, the value and the rule
def _epsilons(name: str, value) -> None:
    if not isinstance(value, (tuple, list)) or len(value) == 0:
        raise ValueError(
            f"{name} must be a non-empty list of numbers in [0, 1); got {checks.shown(value)}"
        )
    for e in value:
        checks.number(f"each of {name}", e, low=0, high=1, high_open=True)


def _optional_str(name: str, value) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a folder path or None; got {value!r}")


def _str(name: str, value) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")


def _ints(**lows: int) -> dict:
    return {k: partial(checks.integer, low=low) for k, low in lows.items()}


_FIELD_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": partial(checks.one_of, allowed=DATASETS),
    "method": partial(checks.one_of, allowed=METHODS),
    "arch": partial(checks.one_of, allowed=ARCHITECTURES),
    **_ints(T=1, L=1, epochs=1, batch_size=1, eval_batch_size=1),
    "lam_rule": partial(checks.one_of, allowed=LAM_RULES),
    "lam_percentile": partial(checks.number, low=0, high=100, low_open=True),
    "alpha": partial(checks.number, low=0),  # 0 turns RCS off
    "rho": partial(checks.number, low=0, high=1, low_open=True),
    "mask_rho": partial(checks.number, low=0, high=1, low_open=True),
    "lr": partial(checks.number, low=0, low_open=True),
    "momentum": partial(checks.number, low=0, high=1, high_open=True),
    "weight_decay": partial(checks.number, low=0),
    "tet_lamb": partial(checks.number, low=0, high=1),
    "tet_phi": checks.number,
    "decay": partial(checks.number, low=0, high=1, low_open=True),
    "epsilons": _epsilons,
    **_ints(bins=2),
    "max_acc_drop": partial(checks.number, low=0, high=1, high_open=True),
    "calibration": partial(checks.one_of, allowed=CALIBRATION),
    "calib_dropout": partial(checks.number, low=0, high=1, high_open=True),
    **_ints(train_limit=0, eval_limit=0, seed=0),  # limits: 0 = all samples
    "device": partial(checks.one_of, allowed=DEVICES),
    "amp": checks.boolean,
    **_ints(workers=0),
    "data_root": _optional_str,
    "profile": checks.folder_name,  # a folder of out_dir
    "out_dir": _str,
    "progress": checks.boolean,
    "partial": checks.boolean,
    "smoke": checks.boolean,
}


def _as_declared(kind: str, value: Any) -> Any:
    """An int given for a float as that float, a list of epsilons as a tuple of floats."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "float" and is_int(value):
        return float(value)
    if kind == "tuple[float, ...]" and isinstance(value, (list, tuple)):
        return tuple(float(v) if is_int(v) else v for v in value)
    return value


def _fit_problems(config: Config) -> list[str]:
    """Combinations that could only fail later: an input the architecture cannot take, a
    conversion of a network that keeps MaxPool."""
    p = []
    try:
        check_fit(config.arch, config.dataset)
    except ValueError as err:
        p.append(f"arch={config.arch!r} does not fit dataset={config.dataset!r}: {err}")
    if METHOD_TABLE[config.method].converts and not ARCH_INFO[config.arch].convertible:
        convertible = tuple(a for a in ARCHITECTURES if ARCH_INFO[a].convertible)
        direct = tuple(m for m in METHODS if not METHOD_TABLE[m].converts)
        p.append(
            f"method={config.method!r} converts a trained ANN, but arch={config.arch!r} keeps "
            f"MaxPool, which cannot be converted; use a direct-training method {direct}, or "
            f"an architecture with average pooling {convertible}"
        )
    return p


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check a value against the field's type (ints stay ints, no silent truncation)."""
    kind = type(default)
    if key == "epsilons":
        if isinstance(value, (int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"epsilons={checks.shown(value)}: expected a list of floats")
        return tuple(float(v) for v in value)
    if key == "data_root":
        return None if value in (None, "", "none", "None") else str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise TypeError(f"{key}={checks.shown(value)}: expected true/false")
    if kind is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
        ):
            raise TypeError(f"{key}={checks.shown(value)}: expected an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(f"{key}={checks.shown(value)}: expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{key}={checks.shown(value)}: expected a number") from None
    if kind is str and not isinstance(value, str):
        raise TypeError(f"{key}={checks.shown(value)}: expected a string")
    return value


def _message(problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    known = sorted(f.name for f in fields(Config))
    return f"invalid config ({len(problems)} problem(s)):\n{lines}\nallowed keys: {known}"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["alpha=0.003", "epochs=2"]`` -> dict, values read as YAML (strictly, as config files
    are: :func:`snnlib.tools.yamlfile.parse_yaml`); an error names the override."""
    from snnlib.tools.yamlfile import YAMLFileError, parse_yaml

    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r}: expected key=value")
        try:
            out[key.strip()] = parse_yaml(raw, f"override {pair!r}")
        except YAMLFileError as err:
            raise ConfigError(str(err)) from None
    return out
