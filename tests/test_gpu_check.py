"""The prepared GPU check (benchmarks/gpu_check.sh) and its parts, on a machine without a GPU:
it must say so and write nothing; the cost table's arithmetic; the stand-in training batches."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_bench  # noqa: E402
import render_cost  # noqa: E402

from snnlib.catalog import dataset_info  # noqa: E402
from snnlib.config import Config  # noqa: E402


@pytest.mark.slow  # runs the script and its Python stages
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run")
def test_gpu_check_without_a_gpu_says_so_and_writes_nothing():
    bench = REPO / "results" / "bench"
    before = sorted(bench.iterdir()) if bench.exists() else []
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA GPU found" in done.stdout and "no numbers written" in done.stdout
    assert (sorted(bench.iterdir()) if bench.exists() else []) == before


def kind(dataset="cifar10", samples_per_s=1000.0, epochs=(300, 300), **extra):
    runs = [{"run_id": f"r{i}", "epochs": e} for i, e in enumerate(epochs)]
    return {
        "dataset": dataset, "method": "tet", "arch": "resnet18", "train_T": 6,
        "batch_size": 128, "rcs": True, "train_samples": 45_000, "runs": runs,
        "samples_per_s": samples_per_s, **extra,
    }  # fmt: skip


def test_cost_table_hours_and_doc_section(tmp_path):
    env = {"device": "NVIDIA H200", "date": "2026-11-28T10:00:00", "torch": "2", "cuda": "13"}
    unmeasured = {k: v for k, v in kind("cifar10-dvs").items() if k != "samples_per_s"}
    training = {"environment": {**env, "triton": "3"}, "kinds": [kind(), unmeasured]}
    # 300 epochs x 45,000 samples / 1,000 samples/s = 3.75 h a run; two runs: 7.5 h
    assert render_cost.run_hours(300, 45_000, 1000.0) == 3.75
    section = render_cost.render({"training": training})
    assert "| 1,000 | 2 | 300 | 3.75 | 7.5 |" in section
    assert "**8 GPU hours**" in section
    assert "Not measured (not in the total): cifar10-dvs" in section
    assert "Not measured yet" in render_cost.render({})
    doc = tmp_path / "gpu.md"
    doc.write_text(f"# x\n{render_cost.START}\nold\n{render_cost.END}\nrest\n")
    render_cost.write_section(doc, section)
    text = doc.read_text()
    assert "old" not in text and "| 3.75 |" in text and text.endswith("rest\n")
    # the file the prepared check writes holds the markers
    assert "render_cost.py --doc docs/gpu.md" in (REPO / "benchmarks" / "gpu_check.sh").read_text()
    gpu_doc = (REPO / "docs" / "gpu.md").read_text()
    assert render_cost.START in gpu_doc and render_cost.END in gpu_doc


def test_every_paper_run_has_a_stand_in_at_its_true_shape():
    kinds = gpu_bench.run_kinds(gpu_bench.PAPER)
    assert sum(len(configs) for configs in kinds.values()) > len(kinds) > 10
    for (dataset, method, _arch, train_T, _b, _rcs), configs in kinds.items():
        info = dataset_info(dataset)
        assert gpu_bench.TRAIN_SAMPLES[dataset] > 900  # DVS128 Gesture: 969
        assert train_T == (1 if method == "qcfs" else configs[0].T)
        x = gpu_bench.StandIn(configs[0].replace(batch_size=2), 1).x
        frames = (2, configs[0].T) if info.kind == "event" else (2,)
        assert x.shape == (*frames, *info.input_shape)
    # the measured step is the training loop's own: it runs on a small config on the CPU
    small = Config(dataset="mnist5k-dvs", method="tet", arch="dvs-cnn", T=2, batch_size=4)
    assert gpu_bench.samples_per_second(small, 1, torch.device("cpu"))["samples_per_s"] > 0
