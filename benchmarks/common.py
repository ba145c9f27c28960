"""Shared benchmark helpers: timing (alone or round robin), the allocator, environment, JSON."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench"


def time_call(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> dict:
    """Median and spread of the wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def time_round_robin(fns: dict, repeats: int, warmup: int = 2, sync=None) -> tuple[dict, dict]:
    """Wall and process-CPU times in ms of every callable, one call each per round (so a drift
    in the machine's load hits all of them alike); ``sync()`` ends each call (on a GPU:
    ``torch.cuda.synchronize``)."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


# glibc mallopt parameters (malloc.h) and the values set by keep_freed_memory.
MALLOPT = {
    "M_TRIM_THRESHOLD": (-1, 2**31 - 1),
    "M_TOP_PAD": (-2, 2**29),
    "M_MMAP_THRESHOLD": (-3, 2**31 - 1),
}


def keep_freed_memory(enable: bool = True) -> dict:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default glibc serves blocks above a threshold (at most 32 MiB) with ``mmap`` and unmaps
    them on free, so every call of a network on a large CPU batch page-faults its activations
    afresh: here a 151 MB tensor cost 81 ms to allocate and fill by default and 18 ms with
    this setting. It is what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` /
    ``MALLOC_TOP_PAD_`` in the environment do, applied in-process. Returns what was set, for
    the benchmark's JSON (``{}`` where not enabled or not glibc).
    """
    if not enable:
        return {}
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    return {name: value for name, (param, value) in MALLOPT.items() if mallopt(param, value) == 1}


def environment() -> dict:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(name: str, payload: dict) -> Path:
    """Write ``results/bench/<name>.json`` atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
