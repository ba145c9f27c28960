"""Checks of scalar arguments, shared by the library, the config and the command line.

Each check returns the value it accepted (so ``t = checks.integer("t", t, low=1)`` reads as a
conversion) and raises ``ValueError`` naming the argument, the value and what is allowed.
Booleans are refused where a number is expected (``True`` is not a timestep).

>>> integer("T", 8, low=1)
8
>>> number("rho", 0.3, low=0, high=1, low_open=True)
0.3
>>> one_of("method", "tet", ("qcfs", "mean", "tet", "tebn"))
'tet'
>>> boolean("download", 1)
Traceback (most recent call last):
ValueError: download must be True or False; got 1
>>> boolean("augment", None, none=True) is None
True
>>> folder_name("profile", "quick")
'quick'
>>> folder_name("profile", "../quick")
Traceback (most recent call last):
ValueError: profile must be a plain folder name ([A-Za-z0-9._-], not . or ..); got '../quick'
>>> shown(list(range(1000)))
'[0, 1, 2, 3, ...]'
"""

from __future__ import annotations

import math
import numbers
import re
import reprlib
from collections.abc import Collection
from typing import TypeVar

V = TypeVar("V")

# a value in a message is shown short: a huge one (an expanded YAML alias) would fill memory
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 2, 4, 4, 40


def shown(value) -> str:
    """``repr(value)``, cut short (two levels of a few items, strings to 40 characters)."""
    return _SHORT.repr(value)


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "finite"


def _inside(value, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) within ``[low, high]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not _inside(value, low, high, False, False):
        raise ValueError(
            f"{name} must be an integer {_bounds(low, high, False, False)}; got {value!r}"
        )
    return int(value)


def number(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number within the given bounds (open or closed at each end)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not _inside(value, low, high, low_open, high_open):
        bounds = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a finite number {bounds}; got {value!r}")
    return float(value)


def boolean(name: str, value, *, none: bool = False) -> bool | None:
    """``value`` if it is a bool (or None where ``none=True``); ``1`` and ``"yes"`` are refused."""
    if isinstance(value, bool) or (none and value is None):
        return value
    allowed = "None, True or False" if none else "True or False"
    raise ValueError(f"{name} must be {allowed}; got {value!r}")


def folder_name(name: str, value) -> str:
    """A string that is safe as one folder name: no separator, not ``.`` or ``..``."""
    ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]+", value) is not None
    if not ok or value in (".", ".."):
        raise ValueError(
            f"{name} must be a plain folder name ([A-Za-z0-9._-], not . or ..); got {value!r}"
        )
    return value


def one_of(name: str, value: V, allowed: Collection[V]) -> V:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}; got {value!r}")
    return value
