"""The table "what the paper profile costs" of docs/gpu.md, from ``results/bench/gpu.json``.

    python benchmarks/render_cost.py [--json results/bench/gpu.json] [--doc docs/gpu.md]

Estimated GPU hours of a run = epochs x training samples / measured training samples per
second / 3600: training only (evaluation, conversion and calibration come on top, minutes),
with the data already in memory (a slow data loader makes it longer). Prints the table; with
``--doc`` also writes it between that Markdown file's ``paper-cost`` markers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- paper-cost:start -->", "<!-- paper-cost:end -->"
HEADER = (
    "| dataset | method | arch | T trained | batch | RCS | samples/s | runs | epochs "
    "| GPU h per run | GPU h, these runs |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def run_hours(epochs: int, train_samples: int, samples_per_s: float) -> float:
    return epochs * train_samples / samples_per_s / 3600


def rows(training: dict) -> tuple[list[str], float, list[str]]:
    """Table rows, total GPU hours of the measured runs, and the run kinds not measured."""
    lines, total, missing = [], 0.0, []
    for k in training["kinds"]:
        name = f"{k['dataset']} {k['method']} {k['arch']}"
        if "samples_per_s" not in k:
            missing.append(f"{name} ({k.get('error', 'not measured')})")
            continue
        hours = [run_hours(r["epochs"], k["train_samples"], k["samples_per_s"]) for r in k["runs"]]
        epochs = sorted({r["epochs"] for r in k["runs"]})
        total += sum(hours)
        lines.append(
            f"| {k['dataset']} | {k['method']} | {k['arch']} | {k['train_T']} | "
            f"{k['batch_size']} | {'yes' if k['rcs'] else 'no'} | {k['samples_per_s']:,.0f} | "
            f"{len(hours)} | {', '.join(map(str, epochs))} | {max(hours):.2f} | {sum(hours):.1f} |"
        )
    return lines, total, missing


def render(data: dict) -> str:
    """The markdown section (without the markers)."""
    training = data.get("training")
    if not training:
        return "Not measured yet: run `benchmarks/gpu_check.sh` on a machine with a CUDA GPU."
    env = training["environment"]
    lines, total, missing = rows(training)
    text = [
        f"Measured on {env['device']} ({env['date'][:10]}; torch {env['torch']}, CUDA "
        f"{env['cuda']}, Triton {env['triton']}), AMP, stand-in batches at the true shapes "
        f"(`benchmarks/gpu_bench.py training`); GPU hours = epochs x training samples / "
        "samples per second, training only, data in memory.",
        "",
        HEADER,
        *lines,
        "",
        f"All measured runs together: **{total:.0f} GPU hours** on this GPU.",
    ]
    if missing:
        text.append(f"Not measured (not in the total): {'; '.join(missing)}.")
    return "\n".join(text)


def write_section(doc: Path, section: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc} has no {START} ... {END} markers")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    doc.write_text(pattern.sub(lambda _: f"{START}\n{section}\n{END}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=REPO / "results" / "bench" / "gpu.json")
    parser.add_argument(
        "--doc", type=Path, help="write the table between the paper-cost markers of this file"
    )
    args = parser.parse_args()
    data = json.loads(args.json.read_text()) if args.json.exists() else {}
    section = render(data)
    print(section)
    if args.doc:
        write_section(args.doc, section)


if __name__ == "__main__":
    main()
