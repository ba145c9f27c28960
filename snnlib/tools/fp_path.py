"""Floating-point paths: environments that make the CPU libraries take another vectorised
code path, to measure how far each result moves with the arithmetic alone.

The same config on the same CPU gives other numbers when PyTorch's kernels, oneDNN or MKL
dispatch to other vector instructions (sums split into other lanes round differently). A
path is a set of environment variables these libraries read once, when they first run a
kernel, so they must be set before any kernel runs: ``python -m snnlib grid --fp-path NAME``
sets them for the runs it starts (each notebook kernel inherits them), and each run records
the path's name in ``provenance.json`` as ``fp_path`` (the default path records nothing, so
records made before paths existed stay as they are). The path is never part of the run id:
it is one way of computing the same experiment. docs/reproducing.md shows what moved.
"""

from __future__ import annotations

import os

ENV_NAME = "SNNLIB_FP_PATH"  # the name of the path this process runs on, read by records

PATHS: dict[str, dict[str, str]] = {
    # whatever the libraries choose on this CPU (the committed records')
    "default": {},
    # every library capped at AVX2 (what an AVX2-only CPU runs), MKL's results pinned to it
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_CBWR": "AVX2",
    },
}


def environment(name: str) -> dict[str, str]:
    """The variables of path ``name`` (with :data:`ENV_NAME`, except for ``default``)."""
    if name not in PATHS:
        raise ValueError(
            f"fp_path={name!r}: no such floating-point path (have: {', '.join(PATHS)})"
        )
    return {**PATHS[name], ENV_NAME: name} if PATHS[name] else {}


def apply(name: str) -> None:
    """Put path ``name`` into this process's environment (before any kernel has run)."""
    os.environ.update(environment(name))


def current() -> str | None:
    """The name of the path this process was put on, or None for the default path."""
    return os.environ.get(ENV_NAME) or None
