"""The benchmark tables of docs/benchmarks.md, from the JSON the benchmarks write.

Each table is a block (:mod:`snnlib.study.readme_numbers`) named after its file under
``results/bench/``:

* ``bench-neurons``: ``neurons.json`` (the fused LIF kernel against SpikingJelly, snnTorch and
  the reference loop), with the one-thread and glibc-default speed-ups of
  ``neurons_1thread.json`` and ``neurons_glibc_defaults.json`` where they exist;
* ``bench-train``: ``train_step.json`` (one training step against the SpikingJelly-built twin);
* ``bench-pooling``: ``pooling.json`` (the strided-view average pool against ``F.avg_pool2d``);
* ``bench-anytime`` and ``bench-anytime-stream``: ``anytime.json`` (the engine in step mode on one
  batch, and streaming the whole split, against ``T_max`` and the matched fixed T).

Each block starts with the line that says where and when it was measured, from the JSON.
:func:`ledger_rows` gives a profile's ledger the measured wall-time twin of its
"x fewer (matched fixed T)" for each of its runs the anytime benchmark timed.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd

TRAIN_VARIANTS = (
    ("snnlib", "alpha = 0 (the TET loss, what the SpikingJelly twin computes)"),
    ("snnlib_r_log", "alpha = 0, an epoch's last batch (R computed for the log)"),
    ("snnlib_rcs", "RCS in the loss"),
)


def _threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def _markdown(rows: list[dict]) -> str:
    """A Markdown table of formatted cells, shown as written (no re-parsed numbers)."""
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def measured_on(data: dict) -> str:
    """One line: the date, cores, torch, device and load average the JSON recorded."""
    env = data["environment"]
    loads = data.get("load_average_1min_during_run") or env.get("load_average_1min_before_after")
    if loads is None and "load_average_before" in env:
        loads = env["load_average_before"][:1]
    load = f", 1-min load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    return (
        f"Measured {env['date'][:10]} on {env['cpu_count']} {env['machine']} cores, torch "
        f"{env['torch']}, device {env['device']}{load}."
    )


def neuron_table(data: dict, one_thread: dict | None, glibc: dict | None) -> str:
    """Forward + backward of the multi-step LIF per T: times, speed-ups, peak memory."""

    def by_t(other: dict | None) -> dict[int, float]:
        if other is None:
            return {}
        return {
            r["T"]: r["speedup_vs_spikingjelly"]["forward_backward"]["snnlib_fast"]
            for r in other["results"]
        }

    threads, glibc_speedup = by_t(one_thread), by_t(glibc)
    rows = []
    for r in data["results"]:
        time, speedup = r["time"], r["speedup_vs_spikingjelly"]["forward_backward"]
        rows.append(
            {
                "T": r["T"],
                "neurons": r["N"],
                "snnlib fast (ms)": f"{time['snnlib_fast']['forward_backward']['median_ms']:.1f}",
                "SpikingJelly (ms)": (
                    f"{time['spikingjelly_torch']['forward_backward']['median_ms']:.1f}"
                ),
                "speed-up": _x(speedup["snnlib_fast"]),
                "1 thread": _x(threads.get(r["T"])),
                "glibc defaults": _x(glibc_speedup.get(r["T"])),
                "reference loop": _x(speedup["snnlib_reference"]),
                "snnTorch": _x(speedup["snntorch"]),
                "peak memory vs SpikingJelly": _x(r["peak_memory_vs_spikingjelly"]["snnlib_fast"]),
            }
        )
    return f"{measured_on(data)}\n\n{_markdown(rows)}"


def train_table(data: dict) -> str:
    """Speed-up of each step variant over the SpikingJelly twin per thread count, and the
    neuron layers' share of the profiled step."""
    rows = []
    for name, label in TRAIN_VARIANTS:
        row = {"our step": label}
        for r in data["results"]:
            row[_threads(r["threads"])] = _x(r["speedup_vs_spikingjelly"][name])
        rows.append(row)
    profiles = []
    for r in data["results"]:
        ms = {
            side: sum(r["profile"][side]["by_layer_kind"]["neuron"].values())
            for side in ("snnlib", "spikingjelly")
        }
        median = {side: r["time"][side]["median_ms"] for side in ("snnlib", "spikingjelly")}
        profiles.append(
            f"{_threads(r['threads'])}: a step {median['snnlib']:.0f} ms against "
            f"{median['spikingjelly']:.0f} ms, the LIF layers {ms['snnlib']:.0f} ms against "
            f"{ms['spikingjelly']:.0f} ms"
        )
    return (
        f"{measured_on(data)} RCS weight {data['setup']['rcs_alpha']:g}; medians of "
        f"{data['method']['repeats']} interleaved rounds.\n\n"
        f"{_markdown(rows)}\n\nProfiled: {'; '.join(profiles)}."
    )


def pool_table(data: dict) -> str:
    """The strided-view average pool against ``F.avg_pool2d`` per shape and thread count."""
    rows = []
    for r in data["results"]:
        fwd, both = r["forward"], r["forward_backward"]
        rows.append(
            {
                "pool": r["what"],
                "threads": r["threads"],
                "F.avg_pool2d (ms)": f"{fwd['torch_ms']:.2f}",
                "snnlib (ms)": f"{fwd['snnlib_ms']:.2f}",
                "forward speed-up": _x(fwd["speedup"]),
                "forward + backward speed-up": _x(both["speedup"]),
            }
        )
    return f"{measured_on(data)}\n\n{_markdown(rows)}"


def _models(data: dict) -> dict[str, dict]:
    """Run name -> the benchmark's row of each model it timed, with its ``label``
    ("dataset method α ... (T_max ...)")."""
    return {
        r["run"]: r
        | {"label": f"{r['dataset']} {r['method']} α {r['alpha']:g} (T_max {r['T_max']})"}
        for r in data["results"]
    }


def anytime_step_table(data: dict) -> str:
    """One batch, Top-K at the calibrated ε, exiting after every step and with the tail."""
    models, rows = _models(data), []
    for r in data["results"]:
        topk = [row for row in r["rows"] if row["rule"].startswith("topk")]
        by_mode = {row["mode"]: row for row in topk}
        step = by_mode["step"]
        tail = next((row for mode, row in by_mode.items() if mode.startswith("tail")), None)
        rows.append(
            {
                "model": models[r["run"]]["label"],
                "threads": r["threads"],
                "avg exit": f"{step['avg_exit_step']:.2f}",
                "stepping cost": _x(r["stepping_cost_ratio"]),
                "ideal vs T_max": _x(step["ideal_speedup"]),
                "measured/ideal, step": _ratio(step["ratio_to_ideal"]),
                f"measured/ideal, tail {tail['tail'] if tail else ''}".strip(): _ratio(
                    tail["ratio_to_ideal"] if tail else None
                ),
                "exact": all(row["matches_offline"] for row in r["rows"]),
            }
        )
    return (
        f"{measured_on(data)} One test batch of {data['batch']}, medians of {data['repeats']} "
        f"interleaved rounds.\n\n{_markdown(rows)}"
    )


def anytime_stream_table(data: dict) -> str:
    """The whole split through ``stream_anytime``: measured / ideal per tail, against T_max
    and against the matched fixed T."""
    models, rows = _models(data), {}
    for s in data["stream"]:
        key = (s["run"], s["threads"])
        row = rows.setdefault(
            key,
            {
                "model": models[s["run"]]["label"],
                "threads": s["threads"],
                "avg exit": f"{s['avg_exit_step']:.2f}",
                "ideal vs T_max": _x(s["ideal_speedup"]),
                "matched T": "none" if s["matched_T"] is None else s["matched_T"],
                "ideal vs matched": _x(s.get("ideal_speedup_vs_matched")),
            },
        )
        row[f"tail {s['tail']}: vs T_max"] = _ratio(s["ratio_to_ideal"])
        row[f"tail {s['tail']}: vs matched"] = _ratio(s.get("ratio_to_ideal_vs_matched"))
        row["exact"] = row.get("exact", True) and s["matches_offline"]
    for row in rows.values():
        row["exact"] = row.pop("exact")  # the last column
    samples = statistics.mode(s["samples"] for s in data["stream"])
    return (
        f"{measured_on(data)} {samples} test samples, at most {data['stream'][0]['batch']} "
        f"live; medians of {data['repeats']} interleaved rounds. Each cell: measured speed-up / "
        f"ideal.\n\n{_markdown(list(rows.values()))}"
    )


def _read(bench: Path, name: str) -> dict | None:
    path = Path(bench) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ledger_rows(profile_dir: Path, profile: str, tail: int = 16) -> list[dict]:
    """One ledger row per run of ``profile_dir`` that ``results/bench/anytime.json`` timed
    streaming the whole split with ``tail``: the measured wall-time speed-up of Top-K against
    the multi-step call at the matched fixed T, beside its ideal, per thread count."""
    data = _read(Path(profile_dir).parent / "bench", "anytime")
    if data is None:
        return []
    by_run = {}
    for s in data["stream"]:
        if s["tail"] == tail and (Path(profile_dir) / "runs" / s["run"]).is_dir():
            by_run.setdefault(s["run"], []).append(s)
    models, rows = _models(data) if by_run else {}, []
    for run, streams in by_run.items():
        first = streams[0]
        if first["matched_T"] is None:
            measured = "no fixed T reaches Top-K's accuracy on the split"
        else:
            measured = (
                "; ".join(
                    f"{_threads(s['threads'])}: {_x(s['measured_speedup_vs_matched'])} measured, "
                    f"ideal {_x(s['ideal_speedup_vs_matched'])}"
                    for s in streams
                )
                + f" (fixed T = {first['matched_T']})"
            )
        model = models[run]
        seed = json.loads((Path(profile_dir) / "runs" / run / "config.json").read_text())["seed"]
        rows.append(
            {
                "dataset": model["dataset"],
                "claim": (
                    f"wall time: Top-K through the engine vs the matched fixed T "
                    f"({model['label']}, seed {seed}, {first['samples']} test samples streamed, "
                    f"tail {tail})"
                ),
                "paper": "-",
                "measured": (
                    f"{measured}; results/bench/anytime.json, {data['environment']['date'][:10]}"
                ),
                "scale": profile,
            }
        )
    return rows


def blocks(bench: Path) -> dict[str, str]:
    """The benchmark blocks whose JSON exists under ``bench``."""
    out = {}
    if (neurons := _read(bench, "neurons")) is not None:
        out["bench-neurons"] = neuron_table(
            neurons, _read(bench, "neurons_1thread"), _read(bench, "neurons_glibc_defaults")
        )
    if (train := _read(bench, "train_step")) is not None:
        out["bench-train"] = train_table(train)
    if (pooling := _read(bench, "pooling")) is not None:
        out["bench-pooling"] = pool_table(pooling)
    if (anytime := _read(bench, "anytime")) is not None:
        out["bench-anytime"] = anytime_step_table(anytime)
        if anytime.get("stream"):
            out["bench-anytime-stream"] = anytime_stream_table(anytime)
    return out
