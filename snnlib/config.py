"""One typed experiment config: defaults are the small demo values; overrides are checked.

A config is validated as a whole before anything runs: every unknown key, wrong type and
out-of-range value is collected into one :class:`ConfigError` that says what is allowed.
The papermill ``parameters`` cell of ``notebooks/10_train.ipynb`` maps onto these fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

METHODS = ("qcfs", "mean", "tet", "tebn")
CALIBRATION = ("split", "train-dropout")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Fields that change where or how fast a run goes, not what it computes.
NON_IDENTITY = ("device", "out_dir", "profile", "data_root", "workers", "progress")


class ConfigError(ValueError):
    """A config with one or more problems; the message lists each of them."""


@dataclass(frozen=True)
class Config:
    """Everything one experiment needs (see ``configs/*.yaml`` for profiles)."""

    dataset: str = "mnist5k"
    method: str = "qcfs"
    arch: str = "mnist-cnn"
    T: int = 8  # timesteps: evaluation T_max (qcfs), training and evaluation T (direct)
    L: int = 4  # QCFS quantisation levels
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
    epsilons: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(10))
    bins: int = 100
    max_acc_drop: float = 0.005  # operating point: largest ε within this drop on calib
    calibration: str = "split"  # "split": held-out calib split; "train-dropout": the paper's
    calib_dropout: float = 0.3
    train_limit: int = 0  # use only the first n training samples (0 = all); for smoke runs
    eval_limit: int = 0  # use only the first n calib/test samples (0 = all); for smoke runs
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used on CUDA only
    workers: int = 0
    data_root: str | None = None
    profile: str = "quick"
    out_dir: str = "results"
    progress: bool = True

    # ---- identity -------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The fields that determine the result (and the checkpoint compatibility)."""
        d = self.to_dict()
        for key in NON_IDENTITY:
            d.pop(key, None)
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
        d = dataclasses.asdict(self)
        d["epsilons"] = list(self.epsilons)
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
                problems.append(f"unknown key {key!r}{hint}")
                continue
            try:
                kwargs[key] = _coerce(key, value, getattr(cls, key, None))
            except (TypeError, ValueError) as err:
                problems.append(str(err))
        if problems:
            raise ConfigError(_message(problems, known))
        config = cls(**kwargs)
        problems = config.problems()
        if problems:
            raise ConfigError(_message(problems, known))
        return config

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_dict(), **changes})

    def problems(self) -> list[str]:
        """Every value problem, including the architecture-vs-dataset fit."""
        from snnlib import data, models

        p: list[str] = []

        def check(ok: bool, msg: str) -> None:
            if not ok:
                p.append(msg)

        check(self.method in METHODS, f"method={self.method!r}: allowed {METHODS}")
        check(self.dataset in data.DATASETS, f"dataset={self.dataset!r}: known {data.DATASETS}")
        check(
            self.arch in models.ARCHITECTURES, f"arch={self.arch!r}: known {models.ARCHITECTURES}"
        )
        check(self.device in DEVICES, f"device={self.device!r}: allowed {DEVICES}")
        check(self.calibration in CALIBRATION, f"calibration={self.calibration!r}: {CALIBRATION}")
        for name in ("T", "L", "epochs", "batch_size", "eval_batch_size", "bins"):
            low = 2 if name == "bins" else 1
            check(getattr(self, name) >= low, f"{name}={getattr(self, name)!r}: must be >= {low}")
        check(self.alpha >= 0, f"alpha={self.alpha!r}: must be >= 0 (0 = off)")
        for name in ("rho", "mask_rho"):
            value = getattr(self, name)
            check(0 < value <= 1, f"{name}={value!r}: must lie in (0, 1]")
        check(self.lr > 0, f"lr={self.lr!r}: must be > 0")
        check(0 <= self.momentum < 1, f"momentum={self.momentum!r}: must lie in [0, 1)")
        check(self.weight_decay >= 0, f"weight_decay={self.weight_decay!r}: must be >= 0")
        check(0 <= self.tet_lamb <= 1, f"tet_lamb={self.tet_lamb!r}: must lie in [0, 1]")
        check(0 < self.decay <= 1, f"decay={self.decay!r}: must lie in (0, 1]")
        check(0 <= self.calib_dropout < 1, f"calib_dropout={self.calib_dropout!r}: in [0, 1)")
        check(0 <= self.max_acc_drop < 1, f"max_acc_drop={self.max_acc_drop!r}: in [0, 1)")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            check(value >= 0, f"{name}={value!r}: must be >= 0 (0 = all samples)")
        check(
            len(self.epsilons) > 0 and all(0 <= e < 1 for e in self.epsilons),
            f"epsilons={list(self.epsilons)!r}: need at least one value, each in [0, 1)",
        )
        if self.dataset in data.DATASETS and self.arch in models.ARCHITECTURES:
            info = data.info(self.dataset)
            try:
                models.check_input(
                    self.arch, info.input_shape[0], tuple(info.input_shape[1:]), info.num_classes
                )
            except ValueError as err:
                p.append(f"arch={self.arch!r} does not fit dataset={self.dataset!r}: {err}")
        return p


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check a value against the field's type (ints stay ints, no silent truncation)."""
    kind = type(default)
    if key == "epsilons":
        if isinstance(value, (int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"epsilons={value!r}: expected a list of floats")
        return tuple(float(v) for v in value)
    if key == "data_root":
        return None if value in (None, "", "none", "None") else str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise TypeError(f"{key}={value!r}: expected true/false")
    if kind is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
        ):
            raise TypeError(f"{key}={value!r}: expected an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(f"{key}={value!r}: expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{key}={value!r}: expected a number") from None
    if kind is str and not isinstance(value, str):
        raise TypeError(f"{key}={value!r}: expected a string")
    return value


def _message(problems: list[str], known: dict) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"invalid config ({len(problems)} problem(s)):\n{lines}\nallowed keys: {sorted(known)}"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["alpha=0.003", "epochs=2"]`` -> dict, values parsed as YAML scalars."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw)
    return out
