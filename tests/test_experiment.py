"""Experiments end to end on the embedded data: records, recomputation, resume, bad input."""

import json
import subprocess
import sys
import threading
from dataclasses import fields
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from snnlib import config as config_module
from snnlib import experiment
from snnlib.config import Config, ConfigError
from snnlib.data.batching import TensorBatches, batches_for
from snnlib.data.errors import DatasetNotFoundError
from snnlib.pipeline import records, train
from snnlib.pipeline.evaluate import collect_outputs, summarise
from snnlib.pipeline.network import network_forward
from snnlib.pipeline.records import (
    OUTPUT_ARRAYS,
    RECORD_FILES,
    WEIGHT_FILES,
    RunLocked,
    git_state,
    is_done,
    load_outputs,
    load_run,
    open_run,
    staging_dir,
    write_json,
)
from snnlib.pipeline.train import CheckpointError, load_checkpoint, save_checkpoint

TINY = {
    "epochs": 1,
    "T": 4,
    "train_limit": 192,
    "eval_limit": 300,
    "batch_size": 64,
    "progress": False,
    "lr": 0.05,
    "bins": 20,
}


def tiny(tmp_path, **changes) -> Config:
    return Config.from_dict({**TINY, "out_dir": str(tmp_path), **changes})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["qcfs", "mean", "tet", "tebn"])
def test_each_method_leaves_a_complete_record(tmp_path, method):
    alpha = 0.0 if method == "mean" else 0.003
    run_dir = experiment.run(tiny(tmp_path, method=method, alpha=alpha), log=lambda *_: None)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(RECORD_FILES + WEIGHT_FILES)
    record = load_run(run_dir)
    assert record["config"]["method"] == method
    outputs = load_outputs(run_dir)
    converted = {"ann_outputs"} if method == "qcfs" else set()
    assert set(outputs) == set(OUTPUT_ARRAYS) - {"ann_outputs"} | converted
    assert outputs["test_outputs"].shape == (4, 300, 10)
    assert outputs["test_outputs"].dtype == np.float32
    assert outputs["calib_outputs"].shape == (4, 300, 10)
    assert outputs["test_labels"].dtype == np.int64
    assert list(record["history"].columns) == [
        "epoch",
        "train_loss",
        "reg_loss",
        "train_acc",
        "val_acc",
        "lr",
        "seconds",
    ]
    assert 0.0 <= record["metrics"]["accuracy_tmax"] <= 1.0
    assert record["per_timestep"]["timestep"].tolist() == [1, 2, 3, 4]
    if method == "qcfs":
        assert record["metrics"]["ann_accuracy"] is not None
    # The saved SNN reloads (weights_only) and reproduces the stored test outputs exactly.
    config, snn = experiment.load_snn(run_dir)
    forward = partial(network_forward, T=config.T, kind="frame", accumulate=False)
    test = batches_for(config, "test", False, False)
    again = collect_outputs(snn, test, forward, torch.device("cpu"))["outputs"]
    assert np.array_equal(again, outputs["test_outputs"])


def test_record_numbers_recompute_from_outputs(tmp_path):
    run_dir = experiment.run(tiny(tmp_path), log=lambda *_: None)
    record = load_run(run_dir)
    per_t, table, summary = summarise(
        load_outputs(run_dir),
        record["config"]["epsilons"],
        record["config"]["bins"],
        record["config"]["max_acc_drop"],
    )
    pd.testing.assert_frame_equal(per_t, record["per_timestep"], check_dtype=False)
    pd.testing.assert_frame_equal(table, record["cutoff"], check_dtype=False)
    write_json(tmp_path / "recomputed.json", summary)  # the same JSON encoding as the record
    assert json.loads((tmp_path / "recomputed.json").read_text()) == record["metrics"]


def test_rerun_of_a_finished_run_does_nothing(tmp_path):
    config = tiny(tmp_path)
    run_dir = experiment.run(config, log=lambda *_: None)
    stamp = (run_dir / "DONE").stat().st_mtime_ns
    messages = []
    experiment.run(config, log=messages.append)
    assert (run_dir / "DONE").stat().st_mtime_ns == stamp
    assert any("[skip]" in m for m in messages)


@pytest.mark.slow
def test_record_without_weights_is_recomputed_to_the_same_numbers(tmp_path):
    # As on a fresh clone: the committed record has DONE but no model.pt.
    config = tiny(tmp_path)
    run_dir = experiment.run(config, log=lambda *_: None)
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "outputs.npz")}
    (run_dir / "model.pt").unlink()
    messages = []
    experiment.run(config, log=messages.append)
    assert not any("[skip]" in m for m in messages)
    assert is_done(run_dir) and (run_dir / "model.pt").is_file()
    assert all((run_dir / name).read_bytes() == data for name, data in before.items())


def test_a_failed_rerun_leaves_the_finished_record_as_it_was(tmp_path, monkeypatch):
    config = tiny(tmp_path, eval_limit=100)
    run_dir = experiment.run(config, log=lambda *_: None)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    def dies(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill during training")

    monkeypatch.setattr(train, "train_one_epoch", dies)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, force=True, log=lambda *_: None)
    if not torch.cuda.is_available():  # the device is checked before anything is written
        with pytest.raises(ValueError, match="device='cuda'"):
            experiment.run(config.replace(device="cuda"), force=True, log=lambda *_: None)
    with open_run(run_dir):  # another process holds the run
        with pytest.raises(RunLocked, match=r"PID \d+"):
            experiment.run(config, force=True, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_missing_data_is_refused_before_anything_is_written(tmp_path):
    config = Config(
        dataset="nmnist",
        method="tet",
        arch="dvs-cnn",
        data_root=str(tmp_path / "no data here"),
        out_dir=str(tmp_path / "out"),
    )
    with pytest.raises(DatasetNotFoundError, match="nmnist: dataset not found"):
        experiment.run(config, log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_a_run_that_waited_for_the_lock_skips_what_the_holder_finished(tmp_path, monkeypatch):
    config = tiny(tmp_path, eval_limit=100)
    run_dir = experiment.run(config, log=lambda *_: None)
    finished = run_dir.rename(tmp_path / "finished elsewhere")
    reached_lock = threading.Event()
    real_open_run = records.open_run

    def signalling_open_run(*args, **kwargs):
        reached_lock.set()  # past the first skip check, which saw no record
        return real_open_run(*args, **kwargs)

    monkeypatch.setattr(records, "open_run", signalling_open_run)
    messages: list[str] = []
    waiter = threading.Thread(target=lambda: experiment.run(config, log=messages.append, wait=True))
    with open_run(run_dir):  # the other process, which finishes the record while it holds it
        waiter.start()
        assert reached_lock.wait(timeout=60)
        finished.rename(run_dir)
    waiter.join(timeout=60)
    assert not waiter.is_alive() and any("[skip]" in m for m in messages)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    config = tiny(tmp_path / "a", epochs=2, method="tet", alpha=0.003)
    reference = experiment.run(config, log=lambda *_: None)

    interrupted = tiny(tmp_path / "b", epochs=2, method="tet", alpha=0.003)
    real = train.train_one_epoch
    calls = {"n": 0}

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(interrupted, log=lambda *_: None)
    assert not interrupted.run_dir.exists()  # nothing is written into the run folder itself
    assert (staging_dir(interrupted.run_dir) / "checkpoint.pt").exists()
    monkeypatch.setattr(train, "train_one_epoch", real)
    messages = []
    resumed = experiment.run(interrupted, log=messages.append)
    assert any("resuming" in m for m in messages)
    a = torch.load(reference / "model.pt", weights_only=True)["model"]
    b = torch.load(resumed / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:  # tensors, and a layer's extra state (a dict) where it has one
        assert torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k], k
    assert load_run(reference)["metrics"] == load_run(resumed)["metrics"]


def test_load_snn_needs_a_finished_run_with_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run_dir=.*not a finished run with a model\.pt"):
        experiment.load_snn(tmp_path)


def test_checkpoint_from_another_config_or_corrupt_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"config_digest": "aaaa1111", "model": {}})
    with pytest.raises(CheckpointError, match="belongs to config 'aaaa1111'"):
        load_checkpoint(path, "bbbb2222")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, "bbbb2222")


def test_nan_loss_names_epoch_and_batch():
    x, y = torch.randn(8, 3), torch.zeros(8, dtype=torch.long)
    model = torch.nn.Linear(3, 2)
    calls = {"n": 0}

    def objective(m, xb, yb, log_reg=True):
        calls["n"] += 1
        out = m(xb).unsqueeze(0)
        loss = out.sum() * (float("nan") if calls["n"] == 2 else 1.0)
        return loss, torch.tensor(0.0), out

    batches = TensorBatches(x, y, batch_size=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="epoch 3, batch 2"):
        train.train_one_epoch(
            model, batches, objective, opt, torch.device("cpu"), 2, progress=False
        )


# values refused by Config(...) itself, and so by from_dict
VALUE_PROBLEMS = [
    ({"method": "tett"}, r"method must be one of \('qcfs', .*\); got 'tett'"),
    ({"T": 0}, "T must be an integer >= 1; got 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1; got 0"),
    ({"arch": "vggann"}, "arch='vggann' does not fit dataset='mnist5k'"),
    # refused at config time what would only fail later, or write outside the profile
    ({"alpha": float("nan")}, "alpha must be a finite number >= 0; got nan"),
    ({"lr": float("inf")}, "lr must be a finite number > 0; got inf"),
    ({"weight_decay": -1e-4}, "weight_decay must be a finite number >= 0; got -0.0001"),
    ({"epsilons": (0.1, float("nan"))}, "each of epsilons must be a finite number in"),
    ({"seed": -1}, "seed must be an integer >= 0; got -1"),
    ({"workers": -2}, "workers must be an integer >= 0; got -2"),
    ({"profile": "../quick"}, r"profile must be a plain folder name .*; got '\.\./quick'"),
    ({"profile": "a/b"}, r"profile must be a plain folder name .*; got 'a/b'"),
    ({"profile": ".."}, r"profile must be a plain folder name .*; got '\.\.'"),
    (
        {"method": "qcfs", "dataset": "dvs128-gesture", "arch": "vgg-gesture"},
        r"method='qcfs' converts a trained ANN, but arch='vgg-gesture' keeps MaxPool",
    ),
]


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"alhpa": 0.1}, "unknown key 'alhpa' \\(did you mean 'alpha'\\?\\)"),
        ({"epochs": "two"}, "epochs='two': expected an integer"),
        *VALUE_PROBLEMS,
    ],
)
def test_bad_config_is_one_clear_error(values, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_dict(values)


@pytest.mark.parametrize(("values", "match"), VALUE_PROBLEMS)
def test_config_cannot_be_built_wrong(values, match):
    with pytest.raises(ConfigError, match=match):
        Config(**values)


def test_config_constructor_lists_every_problem():
    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as err:
        Config(T=0, method="nope")
    assert "T must be an integer >= 1; got 0" in str(err.value)
    assert "method must be one of ('qcfs', 'mean', 'tet', 'tebn'); got 'nope'" in str(err.value)


def test_unknown_keys_and_bad_values_are_listed_together():
    with pytest.raises(ConfigError, match=r"3 problem\(s\)") as err:
        Config.from_dict({"alhpa": 0.1, "T": 0, "lr": "fast"})
    assert "did you mean 'alpha'" in str(err.value) and "lr='fast'" in str(err.value)


def test_validating_a_config_does_not_import_torch():
    code = (
        "import sys\n"
        "from snnlib.config import Config\n"
        "Config.from_dict({'dataset': 'mnist5k-dvs', 'arch': 'dvs-cnn', 'method': 'tet'})\n"
        "assert 'torch' not in sys.modules, 'validating a config imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_partial_leaves_existing_digests_alone():
    plain = Config()
    assert "partial" not in plain.to_dict() and "partial" not in plain.identity()
    assert Config(partial=False).digest() == plain.digest()
    partial_copy = Config(partial=True)
    assert partial_copy.identity()["partial"] is True
    assert partial_copy.digest() != plain.digest()
    assert Config.from_dict(partial_copy.to_dict()) == partial_copy


def test_int_for_a_float_field_gives_the_same_config():
    direct = Config(alpha=0, lr=1, epsilons=[0, 0.05])
    assert direct == Config.from_dict({"alpha": 0.0, "lr": 1.0, "epsilons": [0.0, 0.05]})
    assert direct.digest() == Config(alpha=0.0, lr=1.0, epsilons=(0.0, 0.05)).digest()


def test_every_field_has_a_check():
    assert set(config_module._FIELD_CHECKS) == {f.name for f in fields(Config)}


def test_several_problems_are_listed_together():
    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as err:
        Config.from_dict({"T": 0, "alpha": -1.0})
    assert "T must be an integer >= 1; got 0" in str(err.value)
    assert "alpha must be a finite number >= 0; got -1.0" in str(err.value)


def test_run_id_is_readable_and_stable():
    a = Config.from_dict({"alpha": 0.003, "device": "cpu"})
    b = Config.from_dict({"alpha": 0.003, "device": "auto", "out_dir": "elsewhere"})
    assert a.run_id == b.run_id
    assert a.run_id.startswith("mnist5k-qcfs-mnist-cnn-T8-a0.003-s0-")
    assert a.run_id != Config.from_dict({"alpha": 0.002}).run_id


def test_provenance_dirty_flag_ignores_rewritten_records(tmp_path):
    # A rerun rewrites committed records under results/: that alone is not a dirty checkout.
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "record.csv").write_text("x\n1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "results" / "record.csv").write_text("x\n2\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_state(tmp_path)["dirty"] is True
