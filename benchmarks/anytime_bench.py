"""Anytime inference wall time vs running all T_max steps (the saving the paper promises).

    python benchmarks/anytime_bench.py [--runs results/quick/runs] [--threads 2 1]

Models: the finished quick-profile runs with a ``model.pt`` under ``--runs``, one per
(dataset, method, arch, alpha), lowest seed; when there is none, two smaller runs of the
quick profile's kinds are trained first (``snnlib.experiment.run`` into a temporary folder:
QCFS on mnist5k, TET on emulated-DVS mnist5k) and the JSON says so. For each model, on one
test batch of ``--batch`` samples with ``T_max`` = the run's ``T``:

* ``full``: the model's multi-step call on ``[T_max, B, ...]`` (what the offline evaluation
  runs) and ``stepped-full``: the engine with ``FixedT(T_max)``; the faster is the baseline;
* the engine in step mode, step mode with ``tail=16`` and chunked mode, for Top-K at the
  run's chosen ε (``metrics.json`` ``topk_betas``) and a few other rules; each result is
  checked against the offline exits (``matches_offline``).

* stream mode (``--stream-batch``): the whole test split through ``stream_anytime`` with at
  most that many samples live, a finished sample replaced by the next one (once per
  ``--stream-tails`` value), against the multi-step call over consecutive batches of the
  same size.

Reported per row: avg exit step, ``T_max / avg exit`` (the ideal speedup), the measured
speedup ``baseline time / anytime time`` and their ratio; and the fair alternative: the
multi-step call at the *matched fixed T*, the smallest T whose accuracy on the same samples
reaches the rule's (``matched_T``; ``None`` where no fixed T does), with the ideal
``matched T / avg exit``, the measured speedup against it and their ratio (``*_vs_matched``).
Target: >= 0.9 of both ideals in stream mode at batch 256. All
callables of one model are timed round-robin in one process, so the ratios are comparable
on a noisy machine; absolute times are not. The CPU allocator matters: by default glibc
hands large blocks back to the OS, so every call page-faults its activations again; the
benchmark asks it to keep freed memory (``common.keep_freed_memory``; ``--glibc-defaults``
leaves it alone), which made both sides several times faster here; the JSON records it.
Writes ``results/bench/anytime.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import environment, keep_freed_memory, time_round_robin, write_json

from snnlib import cutoff, metrics
from snnlib.anytime import run_anytime, stream_anytime
from snnlib.config import Config
from snnlib.data.batching import batches_for
from snnlib.data.layout import anytime_input
from snnlib.experiment import load_snn, run
from snnlib.tools import paths

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.9
# Used only when no finished quick run is found: the quick profile's two kinds of run
# (configs/quick.yaml; T = 8 where not given), with fewer epochs so that both train in minutes.
FALLBACK = (
    dict(
        dataset="mnist5k",
        method="qcfs",
        arch="mnist-cnn",
        L=8,
        T=32,
        lam_rule="data",
        epochs=2,
        lr=0.05,
    ),
    dict(dataset="mnist5k-dvs", method="tet", arch="dvs-cnn", epochs=2),
)


def finished_runs(root: Path) -> list[Path]:
    """One finished run with a ``model.pt`` per (dataset, method, arch, alpha): lowest seed."""
    chosen: dict[tuple, tuple[int, Path]] = {}
    for path in sorted(root.glob("*/model.pt")):
        run_dir = path.parent
        if not (run_dir / "DONE").exists():
            continue
        c = json.loads((run_dir / "config.json").read_text())
        key = (c["dataset"], c["method"], c["arch"], c.get("alpha"))
        if key not in chosen or c.get("seed", 0) < chosen[key][0]:
            chosen[key] = (c.get("seed", 0), run_dir)
    return [run_dir for _, run_dir in chosen.values()]


def train_fallback(out_dir: Path, device: torch.device) -> list[Path]:
    runs = []
    for overrides in FALLBACK:
        settings = {"T": 8, "out_dir": str(out_dir), "device": device.type, "progress": False}
        config = Config(**(settings | overrides))
        runs.append(run(config, log=lambda msg: print(f"  {msg}")))
    return runs


def load(run_dir: Path, device: torch.device):
    """``(config, SNN in eval mode on device, metrics.json)`` of a finished run with weights."""
    config, net = load_snn(run_dir)
    return config, net.to(device), json.loads((run_dir / "metrics.json").read_text())


def test_batch(config: Config, batch: int, device: torch.device):
    """``(engine input, sequence?, [T, B, ...] input of the full call, labels)``; the inputs on
    ``device``, the labels on the CPU."""
    batches = batches_for(config.replace(eval_batch_size=batch), "test", False, False)
    x, y = next(iter(batches.epoch()))
    x, sequence = anytime_input(config, x.to(device))
    x_full = x if sequence else x.unsqueeze(0).expand(config.T, *x.shape)
    return x, sequence, x_full, y


def matched_t(cum: torch.Tensor, labels: torch.Tensor, correct: int) -> int | None:
    """The fair fixed window: the smallest ``T`` (1-based) whose accuracy on these samples
    reaches ``correct`` right answers (counts, not rounded fractions), or ``None``."""
    reached = ((cum.argmax(-1) == labels).sum(1) >= correct).nonzero()
    return int(reached[0]) + 1 if reached.numel() else None


def vs_matched(row: dict, wall: dict, key: str) -> None:
    """Add the comparison with the multi-step call at the matched fixed T to ``row``: the ideal
    ``matched T / avg exit``, the measured ``time(fixed matched T) / time(key)`` (median of the
    per-round ratios) and their ratio (``None`` where no fixed T reaches the accuracy)."""
    m = row["matched_T"]
    if m is None:
        row.update(ideal_speedup_vs_matched=None, measured_speedup_vs_matched=None,
                   ratio_to_ideal_vs_matched=None)  # fmt: skip
        return
    row["ideal_speedup_vs_matched"] = m / row["avg_exit_step"]
    row["measured_speedup_vs_matched"] = speedup(wall, key, baselines=(f"fixed-T{m}",))
    row["ratio_to_ideal_vs_matched"] = (
        row["measured_speedup_vs_matched"] / row["ideal_speedup_vs_matched"]
    )


def speedup(times: dict, key: str, baselines=("full", "stepped-full"), statistic=None) -> float:
    """Baseline time / ``key`` time, against the faster way to run all T_max steps: the
    multi-step call (time folded into the batch) or the engine's stepping without exits
    (either may win on a CPU: the folded batch is T times larger and can fall out of cache).

    Default: the median over rounds of the per-round ratio, so that a change in the machine's
    load between rounds cancels; ``statistic=min`` uses the fastest time of each instead.
    """
    if statistic is not None:
        return min(statistic(times[b]) for b in baselines) / statistic(times[key])
    per_round = [
        [base / t for base, t in zip(times[b], times[key], strict=True)] for b in baselines
    ]
    return min(statistics.median(r) for r in per_round)


def sync_for(device: torch.device):
    """What ends a timed call: a CUDA synchronisation on a GPU (kernels run asynchronously)."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def bench_model(run_dir: Path, batch: int, modes: dict, repeats: int, device) -> dict:
    config, net, summary = load(run_dir, device)
    T = config.T
    x, sequence, x_full, y = test_batch(config, batch, device)
    with torch.no_grad():
        cum = net(x_full).float().cumsum(0).cpu()  # offline cumulative outputs [T, B, K]
    rules = {
        f"topk(eps={summary['topk_epsilon']:g})": cutoff.TopK(summary["topk_betas"]),
        "confidence(0.9)": cutoff.Confidence(0.9),
        "entropy(0.1)": cutoff.Entropy(0.1),
        f"fixed(t={T // 2})": cutoff.FixedT(T // 2),
    }

    def full():
        with torch.no_grad():
            net(x_full)

    def stepped_full():
        run_anytime(net, x, cutoff.FixedT(T), T, sequence=sequence)

    def fixed(m: int):  # the multi-step call at a fixed window of m steps
        def run_fixed():
            with torch.no_grad():
                net(x_full[:m])

        return run_fixed

    fns = {"full": full, "stepped-full": stepped_full}
    rows = []
    for rule_name, rule in rules.items():
        steps = cutoff.exit_steps(rule, cum)
        preds = metrics.predict_at_exit(cum, steps)
        for mode, options in modes.items():
            res = run_anytime(net, x, rule, T, sequence=sequence, **options)
            same = np.array_equal(res.exit_steps, steps) and np.array_equal(res.predictions, preds)
            key = f"{rule_name}/{mode}"
            fns[key] = lambda rule=rule, options=options: run_anytime(
                net, x, rule, T, sequence=sequence, **options
            )
            row = {"rule": rule_name, "mode": mode, **options, "key": key}
            row["matches_offline"] = bool(same)
            row["accuracy"] = float((res.predictions == y.numpy()).mean())
            row["matched_T"] = matched_t(cum, y, int((res.predictions == y.numpy()).sum()))
            if row["matched_T"] is not None:
                fns.setdefault(f"fixed-T{row['matched_T']}", fixed(row["matched_T"]))
            row["avg_exit_step"] = res.avg_exit_step
            row["ideal_speedup"] = T / res.avg_exit_step  # T_max / avg exit step
            row["work_speedup"] = 1.0 / res.work_fraction  # N·T_max / sample-steps run
            row["batch_sizes"] = list(res.batch_sizes)
            rows.append(row)
    wall, cpu = time_round_robin(fns, repeats, sync=sync_for(device))
    for row in rows:
        key = row["key"]
        row["time_ms"] = statistics.median(wall[key])
        row["measured_speedup"] = speedup(wall, key)
        row["measured_speedup_min_times"] = speedup(wall, key, statistic=min)
        row["measured_speedup_vs_multistep"] = speedup(wall, key, baselines=("full",))
        row["cpu_time_speedup"] = speedup(cpu, key)
        row["ratio_to_ideal"] = row["measured_speedup"] / row["ideal_speedup"]
        row["ratio_to_work"] = row["measured_speedup"] / row["work_speedup"]
        vs_matched(row, wall, key)
        stepwise = row.get("chunk", 1) == 1  # the target is for step mode (exits every step)
        row["target_met"] = row["ratio_to_ideal"] >= TARGET if stepwise else None
    return {
        "run": run_dir.name,
        "method": config.method,
        "arch": config.arch,
        "dataset": config.dataset,
        "alpha": config.alpha,
        "T_max": T,
        "batch": len(y),
        "input": "sequence [T, B, ...]" if sequence else "static [B, ...]",
        "accuracy_tmax": float((cum[-1].argmax(-1) == y).float().mean()),
        "full_ms": statistics.median(wall["full"]),
        "stepped_full_ms": statistics.median(wall["stepped-full"]),
        # > 1: one step of the batch costs more than a step of the folded multi-step call,
        # which caps step mode's measured/ideal ratio at about 1 / this.
        "stepping_cost_ratio": statistics.median(
            [s / f for s, f in zip(wall["stepped-full"], wall["full"], strict=True)]
        ),
        "times_ms": wall,
        "cpu_times_ms": cpu,
        "rows": rows,
    }


def bench_stream(run_dir: Path, batch: int, tails: list[int], repeats: int, device) -> list[dict]:
    """The whole test split, Top-K at the run's ε: ``stream_anytime`` with at most ``batch``
    samples live (a sample that exits is replaced by the next; ``tail``: the stragglers' last
    steps in multi-step calls), against the folded multi-step call over consecutive batches of
    ``batch``, for all T_max steps and for the matched fixed T (the smallest T whose accuracy
    on the split reaches Top-K's). One row per tail."""
    config, net, summary = load(run_dir, device)
    T = config.T
    x, sequence, x_full, y = test_batch(config, 10**6, device)  # the whole split in one tensor
    chunks = [x_full[:, i : i + batch] for i in range(0, len(y), batch)]
    with torch.no_grad():
        cum = torch.cat([net(c).float().cumsum(0).cpu() for c in chunks], 1)
    rule = cutoff.TopK(summary["topk_betas"])
    steps = cutoff.exit_steps(rule, cum)
    preds = metrics.predict_at_exit(cum, steps)
    correct = int((torch.as_tensor(preds) == y).sum())
    matched = matched_t(cum, y, correct)
    acc_t = (cum.argmax(-1) == y).float().mean(1).tolist()  # accuracy at each fixed T

    def fixed(m: int):  # the multi-step call on the first m steps, batch after batch
        def run_fixed():
            with torch.no_grad():
                for c in chunks:
                    net(c[:m])

        return run_fixed

    def stream(tail: int):
        return lambda: stream_anytime(net, x, rule, T, batch=batch, sequence=sequence, tail=tail)

    fns = {"full": fixed(T)}
    if matched is not None:
        fns[f"fixed-T{matched}"] = fixed(matched)
    results = {}
    for tail in tails:
        fns[f"stream-tail{tail}"] = stream(tail)
        results[tail] = stream(tail)()
    wall, _ = time_round_robin(fns, repeats, warmup=1, sync=sync_for(device))
    rows = []
    for tail, res in results.items():
        key = f"stream-tail{tail}"
        measured = speedup(wall, key, baselines=("full",))
        row = {
            "run": run_dir.name,
            "samples": len(y),
            "batch": batch,
            "tail": tail,
            "rule": f"topk(eps={summary['topk_epsilon']:g})",
            "matches_offline": bool(
                np.array_equal(res.exit_steps, steps) and np.array_equal(res.predictions, preds)
            ),
            "accuracy": correct / len(y),
            "avg_exit_step": float(steps.mean()),
            "ideal_speedup": T / float(steps.mean()),
            "measured_speedup": measured,
            "ratio_to_ideal": measured / (T / float(steps.mean())),
            "matched_T": matched,
            "accuracy_matched_T": None if matched is None else acc_t[matched - 1],
            "calls": len(res.call_steps),
            "sample_steps": res.sample_steps,
            "calls_full": len(chunks),
            "time_ms": statistics.median(wall[key]),
            "full_ms": statistics.median(wall["full"]),
            "matched_ms": None if matched is None else statistics.median(wall[f"fixed-T{matched}"]),
        }
        vs_matched(row, wall, key)
        rows.append(row)
    rows[-1]["times_ms"] = wall  # every callable's rounds, once per model
    return rows


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def vs_matched_text(row: dict) -> str:
    return (
        f"vs fixed T={row['matched_T']}: ideal x{fmt(row['ideal_speedup_vs_matched'])} "
        f"measured x{fmt(row['measured_speedup_vs_matched'])} "
        f"ratio {fmt(row['ratio_to_ideal_vs_matched'])}"
    )


def describe(row: dict) -> str:
    return (
        f"  {row['rule']:<18} {row['mode']:<7} avg exit {row['avg_exit_step']:.2f}  "
        f"ideal x{row['ideal_speedup']:.2f}  measured x{row['measured_speedup']:.2f} "
        f"(min-times x{row['measured_speedup_min_times']:.2f}, "
        f"cpu x{row['cpu_time_speedup']:.2f})  ratio {row['ratio_to_ideal']:.2f}; "
        f"{vs_matched_text(row)}  exact={row['matches_offline']}"
    )


def describe_stream(row: dict) -> str:
    return (
        f"  stream tail={row['tail']}, {row['samples']} samples, batch {row['batch']}: avg exit "
        f"{row['avg_exit_step']:.2f}, {row['calls']} calls; vs T_max: ideal "
        f"x{row['ideal_speedup']:.2f} measured x{row['measured_speedup']:.2f} ratio "
        f"{row['ratio_to_ideal']:.2f}; {vs_matched_text(row)}  exact={row['matches_offline']}"
    )


def lowest(rows, field: str) -> dict:
    """Per thread count: the smallest ``field`` over ``(threads, row)`` pairs (None skipped)."""
    out: dict[str, float] = {}
    for threads, row in rows:
        if row[field] is not None:
            key = f"threads={threads}"
            out[key] = min(out.get(key, float("inf")), row[field])
    return out


def summary(results: list[dict], mode_prefix: str, field: str = "ratio_to_ideal") -> dict:
    """Per thread count: the smallest ``field`` over the rows of one mode."""
    rows = [(r["threads"], row) for r in results for row in r["rows"]]
    return lowest([(t, row) for t, row in rows if row["mode"].startswith(mode_prefix)], field)


def stream_summary(stream_rows: list[dict], tail: int, field: str) -> dict:
    """Per thread count: the smallest ``field`` over the stream rows with this ``tail``."""
    return lowest([(row["threads"], row) for row in stream_rows if row["tail"] == tail], field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "quick" / "runs")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunks", type=int, nargs="*", default=[2])
    parser.add_argument("--tail", type=int, default=16, help="engine tail= for the tail mode")
    parser.add_argument(
        "--stream-batch",
        type=int,
        default=256,
        help="live batch of the whole-split stream mode (0: skip it)",
    )
    parser.add_argument(
        "--stream-tails",
        type=int,
        nargs="+",
        default=[0, 16, 32],
        help="stream_anytime tail= values to time (0: every step its own call)",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="leave glibc malloc as it is (default: keep freed memory, see the docstring)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[torch.get_num_threads()],
        help="torch thread counts to measure, one after the other",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (timed with syncs)")
    parser.add_argument("--name", default="anytime", help="results/bench/<name>.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    allocator = keep_freed_memory(not args.glibc_defaults)
    modes = {"step": {}, f"tail{args.tail}": {"tail": args.tail}}
    modes.update({f"chunk{c}": {"chunk": c} for c in args.chunks})
    runs = finished_runs(args.runs)
    # the folder relative to the repository when inside it: the JSON names no machine paths
    source = f"finished quick-profile runs under {paths.from_root(args.runs)}"
    loads = [os.getloadavg()]
    results, stream_rows = [], []

    def write(complete: bool) -> Path:
        """The JSON of what is measured so far (rewritten after each model: a run cut short
        keeps its finished models, marked ``"complete": false``)."""
        payload = {
            "complete": complete,
            "environment": {**environment(), "device": args.device},
            "load_average_1min_during_run": [round(load[0], 2) for load in loads],
            "allocator": {
                "mallopt": allocator or "glibc defaults",
                "environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            },
            "models_from": source,
            "batch": args.batch,
            "repeats": args.repeats,
            "target": (
                f"measured speedup >= {TARGET} x the ideal: in stream mode against T_max "
                f"(T_max / avg exit) and against the matched fixed T (matched T / avg exit)"
            ),
            "all_exact": all(row["matches_offline"] for r in results for row in r["rows"])
            and all(row["matches_offline"] for row in stream_rows),
            "min_ratio_step": summary(results, "step"),
            "min_ratio_tail": summary(results, "tail"),
            "min_ratio_step_vs_matched": summary(results, "step", "ratio_to_ideal_vs_matched"),
            "min_ratio_stream": {
                f"tail={tail}": {
                    "vs_tmax": stream_summary(stream_rows, tail, "ratio_to_ideal"),
                    "vs_matched": stream_summary(stream_rows, tail, "ratio_to_ideal_vs_matched"),
                }
                for tail in args.stream_tails
            },
            "stream": stream_rows,
            "results": results,
        }
        return write_json(args.name, payload)

    with tempfile.TemporaryDirectory(prefix="anytime-bench-") as tmp:
        if not runs:
            print(f"no finished run with a model.pt under {args.runs}: training small models")
            runs = train_fallback(Path(tmp), device)
            source = f"trained here (no finished quick run), T=8 unless given: {FALLBACK}"
        for threads in args.threads:
            torch.set_num_threads(threads)
            for run_dir in runs:
                print(f"[{run_dir.name}, {threads} thread(s)]")
                r = bench_model(run_dir, args.batch, modes, args.repeats, device)
                r = {"threads": threads, **r}
                print(
                    f"  all {r['T_max']} steps: multi-step {r['full_ms']:.1f} ms, "
                    f"stepped {r['stepped_full_ms']:.1f} ms (medians; stepping cost ratio "
                    f"{r['stepping_cost_ratio']:.2f})"
                )
                for row in r["rows"]:
                    print(describe(row))
                results.append(r)
                if args.stream_batch:
                    rows = bench_stream(
                        run_dir, args.stream_batch, args.stream_tails, args.repeats, device
                    )
                    for row in rows:
                        stream_rows.append({"threads": threads, **row})
                        print(describe_stream(row))
                loads.append(os.getloadavg())
                write(complete=False)
    print(f"wrote {write(complete=True)}")


if __name__ == "__main__":
    main()
