"""A reloaded run reproduces its record exactly, even after its thresholds have moved.

``experiment.load_snn`` rebuilds the network from the config and loads ``model.pt``. Any state
that a layer computes from its parameters (an IF neuron's ``v_init = λ/2`` set at conversion,
thresholds, TEBN scales) must come back with it. Training here moves every learnable threshold
(QCFS ``λ``), every LIF threshold and every TEBN scale well away from its initial value, so a
layer that keeps a value from construction instead of the trained one changes the outputs.
"""

import numpy as np
import pytest
import torch

from snnlib import experiment
from snnlib.config import Config
from snnlib.data.batching import batches_for
from snnlib.layers import TEBN
from snnlib.neurons import LIF
from snnlib.pipeline import train
from snnlib.pipeline.evaluate import collect_outputs
from snnlib.pipeline.network import forward_for
from snnlib.pipeline.records import load_outputs
from snnlib.qcfs import QCFS

TINY = {
    "epochs": 1,
    "T": 4,
    "train_limit": 64,
    "eval_limit": 64,
    "batch_size": 32,
    "eval_batch_size": 64,
    "progress": False,
    "lr": 0.05,
    "bins": 20,
}


@torch.no_grad()
def move_thresholds(model: torch.nn.Module) -> None:
    """Move what a layer might derive state from away from its initial value."""
    for m in model.modules():
        if isinstance(m, QCFS):
            m.lam.mul_(0.7)  # 8 -> 5.6: an IF neuron built from the initial λ starts at 4
        elif isinstance(m, LIF):
            m.threshold.mul_(1.3)
        elif isinstance(m, TEBN):
            m.p.mul_(torch.linspace(0.8, 1.2, m.p.numel()))


@pytest.mark.parametrize("method", ["qcfs", "mean", "tet", "tebn"])
def test_load_snn_reproduces_the_record_after_thresholds_moved(tmp_path, monkeypatch, method):
    real = train.train_one_epoch

    def epoch_then_move(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        move_thresholds(model)
        return out

    monkeypatch.setattr(train, "train_one_epoch", epoch_then_move)
    config = Config.from_dict({**TINY, "out_dir": str(tmp_path), "method": method})
    run_dir = experiment.run(config, log=lambda *_: None)
    monkeypatch.setattr(train, "train_one_epoch", real)

    config, snn = experiment.load_snn(run_dir)
    if method == "qcfs":  # the move reached the converted network: λ = 5.6, not 8
        thresholds = [float(m.threshold) for m in snn.modules() if isinstance(m, LIF)]
        assert thresholds and all(abs(t - 5.6) < 0.5 for t in thresholds)
    test = batches_for(config, "test", False, False)
    forward = forward_for(config, trained=False)
    again = collect_outputs(snn, test, forward, torch.device("cpu"))["outputs"]
    stored = load_outputs(run_dir)["test_outputs"]
    assert np.array_equal(again, stored), f"max |diff| = {np.abs(again - stored).max()}"


def test_a_model_pt_without_the_saved_lif_parameters_is_refused_by_name(tmp_path):
    """A checkpoint written before LIF parameters were saved would silently use the initial
    v_init again; it is refused, saying what is missing and how to redo it."""
    config = Config.from_dict({**TINY, "out_dir": str(tmp_path), "method": "qcfs"})
    run_dir = experiment.run(config, log=lambda *_: None)
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    payload["model"] = {k: v for k, v in payload["model"].items() if "_extra_state" not in k}
    del payload["record"]  # written before records stated digests, as its record was
    (run_dir / "digests.json").unlink()
    torch.save(payload, run_dir / "model.pt")
    with pytest.raises(train.CheckpointError, match=r"_extra_state.*older version.*force"):
        experiment.load_snn(run_dir)
