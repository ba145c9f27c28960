"""Multi-step LIF time and BPTT memory: snnlib (reference, fast) vs SpikingJelly and snnTorch.

    python benchmarks/neuron_bench.py [--T 4 8 16 32] [--N 262144] [--repeats 15] [--threads 2]

Writes ``results/bench/neurons.json``. Every neuron runs the same dynamics (LIF, decay 0.5,
threshold 1, hard reset to 0) on the same ``[T, N]`` input on CPU:

* ``snnlib_reference``: :class:`snnlib.neurons.LIF` with ``backend="reference"`` (the loop);
* ``snnlib_fast``: the same module with the fused kernel (:mod:`snnlib.neurons.fast_lif`);
* ``spikingjelly_torch``: ``LIFNode(tau=2, decay_input=False, v_reset=0, step_mode="m")``, whose
  only CPU backend is its torch loop;
* ``snntorch``: ``Leaky(beta=0.5, reset_mechanism="zero", reset_delay=False)``, looped over T
  as snnTorch users do (same spikes as ours on the hand trace).

Time: forward under ``no_grad``, and forward + ``backward(g)`` with a fixed dense ``g`` (what a
layer above sends; ``.sum()`` would hand every neuron a free stride-0 gradient). All neurons are
timed interleaved, round by round, in this one process, so ratios hold on a noisy machine;
absolute times do not. Timings run with glibc malloc keeping freed memory
(``common.keep_freed_memory``; ``--glibc-defaults`` to compare), so that fresh output buffers
do not page-fault on every call. Memory: see :func:`peak_memory`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import environment, keep_freed_memory, write_json

from snnlib.neurons import LIF, fast_lif

NEURONS = ("snnlib_reference", "snnlib_fast", "spikingjelly_torch", "snntorch")
BASELINE = "spikingjelly_torch"
MIB = 2**20


SNNLIB_BACKENDS = {"snnlib_reference": "reference", "snnlib_fast": "auto", "snnlib_torch": "torch"}


def make_neuron(name: str, device: str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``x [T, N] -> spikes [T, N]`` that starts from a fresh state on every call.

    ``spikingjelly_*``: on CUDA, SpikingJelly picks its kernels by the environment variable
    ``SJ_LIF_CUDA_IMPLEMENTATION`` (torch, triton, cuda; read when it is first imported)."""
    if name in SNNLIB_BACKENDS:
        return LIF(decay=0.5, backend=SNNLIB_BACKENDS[name]).to(device)
    if name.startswith("spikingjelly"):
        from spikingjelly.activation_based import neuron

        node = neuron.LIFNode(
            tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m"
        )

        def spikingjelly(x):
            out = node(x)
            node.reset()  # SpikingJelly keeps the membrane between calls otherwise
            return out

        return spikingjelly
    if name == "snntorch":
        import snntorch

        leaky = snntorch.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero", reset_delay=False)
        leaky = leaky.to(device)

        def snntorch_loop(x):
            mem = leaky.init_leaky()
            spikes = []
            for x_t in x:
                spk, mem = leaky(x_t, mem)
                spikes.append(spk)
            return torch.stack(spikes)

        return snntorch_loop
    raise ValueError(f"unknown neuron {name!r}")


def timings(names, T: int, N: int, repeats: int, warmup: int = 2) -> dict:
    """Median/min/max ms of forward and forward+backward for each neuron, interleaved."""
    torch.manual_seed(0)
    x = torch.randn(T, N)
    g = torch.randn(T, N)
    xg = x.clone().requires_grad_(True)
    neurons = {name: make_neuron(name) for name in names}

    def forward(f):
        with torch.no_grad():
            f(x)

    def forward_backward(f):
        f(xg).backward(g)
        xg.grad = None

    phases = {"forward": forward, "forward_backward": forward_backward}
    times = {name: {phase: [] for phase in phases} for name in names}
    for r in range(warmup + repeats):
        for name, f in neurons.items():
            for phase, run in phases.items():
                start = time.perf_counter()
                run(f)
                if r >= warmup:
                    times[name][phase].append((time.perf_counter() - start) * 1e3)
    return {
        name: {
            phase: {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t)}
            for phase, t in by_phase.items()
        }
        for name, by_phase in times.items()
    }


def _status_kib(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)[1])


def memory_child(name: str, T: int, N: int) -> dict:
    """One forward+backward in this (fresh) process; peak RSS growth and autograd-saved bytes."""
    f = make_neuron(name)
    small = torch.randn(T, 1024, requires_grad=True)
    f(small).backward(torch.ones_like(small))  # warm-up: lazy imports, kernel build/load
    torch.manual_seed(0)
    xg = torch.randn(T, N).requires_grad_(True)
    g = torch.randn(T, N)
    saved: dict[int, int] = {}  # distinct storages autograd keeps for backward, input excluded

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() != xg.untyped_storage().data_ptr():
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    base = _status_kib("VmRSS")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = f(xg)
    out.backward(g)
    peak = _status_kib("VmHWM")
    return {"peak_mib": (peak - base) / 1024, "saved_mib": sum(saved.values()) / MIB}


def peak_memory(name: str, T: int, N: int) -> dict:
    """Peak memory of forward+backward, measured in a fresh subprocess.

    The child allocates ``x`` and the upstream gradient, warms the neuron up on a small input,
    resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs one forward+backward
    and reports ``VmHWM − VmRSS(before)``: every byte the step touched at its peak (outputs,
    saved state, temporaries, ``x.grad``), whatever allocated it. glibc runs with
    ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors go back to the OS at once and RSS tracks
    live memory instead of malloc's cache. ``saved_mib``: distinct storages that autograd
    saves for backward (``saved_tensors_hooks``), not counting the input's own storage.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    cmd = [sys.executable, __file__, "--memory-child", name, str(T), str(N)]
    cmd += ["--threads", str(torch.get_num_threads())]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_build_seconds() -> float:
    """Wall time of a first build of the C++ kernel, in a subprocess with an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        code = (
            "import time, torch; from snnlib import fast_lif; t = time.perf_counter(); "
            "ok = fast_lif.cpp_available(); print(time.perf_counter() - t if ok else -1)"
        )
        env = {**os.environ, "SNNLIB_CACHE": cache}
        done = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
        return float(done.stdout.strip().splitlines()[-1])


def versions() -> dict:
    import snntorch
    import spikingjelly

    return {
        "spikingjelly": getattr(spikingjelly, "__version__", "unknown"),
        "snntorch": snntorch.__version__,
        "snnlib_fast_backend": "cpp" if fast_lif.cpp_available() else "torch",
        "cxx_flags": fast_lif.CXXFLAGS + list(fast_lif.EXTRA_FLAGS[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--N", type=int, default=2**18)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="time with glibc malloc as it is (default: keep freed memory, common.py)",
    )
    parser.add_argument("--name", default="neurons", help="results/bench/<name>.json")
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("NAME", "T", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        name, T, N = args.memory_child
        print(json.dumps(memory_child(name, int(T), int(N))))
        return
    allocator = keep_freed_memory(not args.glibc_defaults)  # timings only: not the children
    load_before = os.getloadavg()  # other processes on the machine: the reason to trust ratios only
    rows = []
    for T in args.T:
        row = {"T": T, "N": args.N, "time": timings(NEURONS, T, args.N, args.repeats)}
        if not args.no_memory:
            row["memory"] = {name: peak_memory(name, T, args.N) for name in NEURONS}
        base = row["time"][BASELINE]
        row["speedup_vs_spikingjelly"] = {
            phase: {
                n: base[phase]["median_ms"] / t[phase]["median_ms"] for n, t in row["time"].items()
            }
            for phase in ("forward", "forward_backward")
        }
        if "memory" in row:
            sj = row["memory"][BASELINE]["peak_mib"]
            row["peak_memory_vs_spikingjelly"] = {
                n: m["peak_mib"] / sj for n, m in row["memory"].items()
            }
        rows.append(row)
        print(f"T={T:3d} N={args.N}  median ms (forward | forward+backward), peak MiB:")
        for name in NEURONS:
            t, s = row["time"][name], row["speedup_vs_spikingjelly"]
            mem = f"{row['memory'][name]['peak_mib']:7.1f}" if "memory" in row else "    n/a"
            print(
                f"  {name:20s} {t['forward']['median_ms']:8.2f} ({s['forward'][name]:5.2f}x) | "
                f"{t['forward_backward']['median_ms']:8.2f} ({s['forward_backward'][name]:5.2f}x)"
                f" | {mem}"
            )
    env = {**environment(), **versions()}
    env["allocator_for_timings"] = allocator or "glibc defaults"
    env["load_average_1min_before_after"] = [load_before[0], os.getloadavg()[0]]
    env["snnlib_fast_first_build_s"] = first_build_seconds()
    payload = {
        "environment": env,
        "method": {
            "time": "median of interleaved repeats in one process; ratios = SpikingJelly / other",
            "backward": "out.backward(g) with a fixed dense g ~ N(0, 1)",
            "memory": " ".join(peak_memory.__doc__.split()),
        },
        "results": rows,
    }
    path = write_json(args.name, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
