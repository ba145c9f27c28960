"""DDP under torchrun: two CPU ranks (gloo) train one tiny run end to end; even sharding."""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from snnlib.data.batching import TensorBatches
from snnlib.pipeline.records import finished_runs, load_run


def test_ranks_get_the_same_number_of_batches():
    # 129 samples, batch 64, 2 ranks: without padding rank 0 would run 2 batches and rank 1
    # one, and DDP would wait forever for the missing gradients.
    x, y = torch.arange(129.0), torch.arange(129)
    shards = [TensorBatches(x, y, 64, shuffle=True, seed=3, rank=r, world=2) for r in (0, 1)]
    batches = [list(s.epoch(1)) for s in shards]
    assert [len(b) for b in batches] == [len(s) for s in shards] == [2, 2]
    seen = torch.cat([yb for b in batches for _, yb in b])
    assert len(seen) == 130 and set(seen.tolist()) == set(range(129))  # one sample wraps


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_two_cpu_ranks_write_one_record(tmp_path):
    config = {
        "dataset": "mnist5k",
        "method": "tet",
        "arch": "mnist-mlp",
        "T": 2,
        "epochs": 2,
        "train_limit": 129,  # uneven over 2 ranks
        "eval_limit": 100,
        "batch_size": 64,
        "bins": 20,
        "progress": False,
        "device": "cpu",
        "out_dir": str(tmp_path),
        "profile": "ddp",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*cmd, "-m", "snnlib", "run", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,  # a rank waiting for gradients that never come would hang here
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[done]") == 1  # only rank 0 reports
    assert done.stdout.count("epoch=1 ") == 1
    (run_dir,) = finished_runs(tmp_path / "ddp")
    record = load_run(run_dir)
    assert record["history"]["epoch"].tolist() == [1, 2]
    assert (run_dir / "model.pt").is_file()
