"""Bad input and faults met as a user (or an attacker) meets them: each case ends in a clear
message that names the file, the key or the run and a fix that works, and no data folder can
run code or pass as real data.
"""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import pytest

from snnlib import data, grid
from snnlib.__main__ import main
from snnlib.config import Config, ConfigError, parse_overrides
from snnlib.data.fingerprint import data_fingerprint
from snnlib.data.standins import write_cifar, write_nmnist, write_standins
from snnlib.pipeline import smoke
from snnlib.pipeline.train import CheckpointError, load_checkpoint
from snnlib.tools.yamlfile import YAMLFileError, load_yaml

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick.yaml"
OLD_MARKER = "SYNTHETIC-STANDINS.txt"  # what earlier versions trusted


# ---- no data folder can run code ------------------------------------------------------------
class Payload:
    """Unpickling this creates ``flag``: the stand-in for code an attacker runs."""

    def __init__(self, flag: Path):
        self.flag = str(flag)

    def __reduce__(self):
        return (open, (self.flag, "w"))


def _plant(folder: Path, flag: Path) -> None:
    """Replace every pickled file of a CIFAR folder by the payload."""
    for path in folder.iterdir():
        path.write_bytes(pickle.dumps(Payload(flag)))


def test_a_pickle_under_the_old_marker_is_not_unpickled(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_per_batch=20)
    flag = tmp_path / "payload-ran"
    _plant(folder, flag)
    (tmp_path / OLD_MARKER).write_text("stand-ins")
    for split in ("test", "train"):
        with pytest.raises(data.CorruptSampleError, match=r"MD5.*none was unpickled"):
            data.get_dataset("cifar10", split, root=tmp_path)
    assert not flag.exists()


def test_a_forged_manifest_in_a_smoke_folder_does_not_unpickle_either(tmp_path):
    root = write_standins(tmp_path / "p-smoke" / "standins", ["cifar10"])
    flag = tmp_path / "payload-ran"
    _plant(root / "cifar-10-batches-py", flag)
    manifest = root / "cifar10.manifest.json"
    forged = json.loads(manifest.read_text())
    forged["files"] = {}  # whatever it lists, the pickles must match the suite's own digests
    manifest.write_text(json.dumps(forged))
    with pytest.raises(data.CorruptSampleError, match="MD5"):
        data.get_dataset("cifar10", "test", root=root)
    assert not flag.exists()


def test_the_suites_own_cifar_standins_are_read_after_their_digests_match(tmp_path):
    root = write_standins(tmp_path / "p-smoke" / "standins", ["cifar10"])
    assert len(data.get_dataset("cifar10", "test", root=root)) == 20
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04N.")  # pickled None
    with pytest.raises(
        data.CorruptSampleError, match=rf"MD5.*delete {root} and rerun with --smoke"
    ):
        data.get_dataset("cifar10", "test", root=root)


def test_standins_are_written_only_into_a_smoke_folder(tmp_path):
    with pytest.raises(ValueError, match=r"only into a smoke folder's standins/"):
        write_standins(tmp_path / "standins", ["nmnist"])
    assert not (tmp_path / "standins").exists()


def test_a_changed_standin_is_named_by_its_manifest(tmp_path):
    root = write_standins(tmp_path / "p-smoke" / "standins", ["nmnist"])
    config = Config(dataset="nmnist", arch="dvs-cnn", data_root=str(root), partial=True)
    assert data_fingerprint(smoke.smoke_config(config))["standin"] is True
    victim = next((root / "NMNIST" / "Test").rglob("*.bin"))
    victim.write_bytes(victim.read_bytes()[:-5])
    with pytest.raises(data.CorruptSampleError, match=rf"{victim.name} is changed.*delete {root}"):
        data_fingerprint(smoke.smoke_config(config))


@pytest.mark.parametrize("where", ["old-marker", "smoke-standins"])
def test_a_real_run_refuses_standins(tmp_path, where, capsys):
    if where == "old-marker":
        root = tmp_path / "data"
        write_nmnist(root, {"Train": 2, "Test": 1})
        (root / OLD_MARKER).write_text("stand-ins")
    else:
        root = write_standins(tmp_path / "p-smoke" / "standins", ["nmnist"])
    config = Config(dataset="nmnist", arch="dvs-cnn", data_root=str(root), partial=True)
    with pytest.raises(ValueError, match=r"holds synthetic stand-ins.*--data-root.*--smoke"):
        data_fingerprint(config)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("dataset: nmnist\narch: dvs-cnn\npartial: true\nepochs: 1\n")
    argv = ["run", str(yaml_file), f"data_root={root}", f"out_dir={tmp_path / 'results'}"]
    assert main(argv) == 2  # a usage error, before any work
    assert "holds synthetic stand-ins" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# ---- YAML as users write it -----------------------------------------------------------------
def _yaml(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_merge_keys_are_accepted(tmp_path):
    path = _yaml(tmp_path, "base: &b {T: 8, alpha: 0.0}\nrun:\n  <<: *b\n  alpha: 0.003\n")
    assert load_yaml(path)["run"] == {"T": 8, "alpha": 0.003}
    twice = _yaml(tmp_path, "base: &b {T: 8}\nrun: {<<: *b, alpha: 0.1, alpha: 0.2}\n", "d.yaml")
    with pytest.raises(YAMLFileError, match=r"key 'alpha' is given twice"):
        load_yaml(twice)


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + f"\nT: *a{levels - 1}\n"


def test_an_alias_bomb_fails_fast(tmp_path):
    text = _bomb()
    assert len(text) < 700
    start = time.perf_counter()
    with pytest.raises(YAMLFileError, match=r"aliases.*expand") as err:
        load_yaml(_yaml(tmp_path, text))
    assert time.perf_counter() - start < 1 and len(str(err.value)) < 500


def test_deep_nesting_is_named(tmp_path):
    with pytest.raises(YAMLFileError, match=r"d.yaml: nested too deeply"):
        load_yaml(_yaml(tmp_path, "T: " + "[" * 500 + "]" * 500 + "\n", "d.yaml"))


def test_an_error_about_a_big_value_is_short():
    row = ["x" * 10] * 100
    value = [row] * 100  # 10,000 strings, 140 kB as a repr
    with pytest.raises(ConfigError) as err:
        Config.from_dict({"T": value})
    line = next(line for line in str(err.value).splitlines() if "T=" in line)
    assert len(line) < 300 and "..." in line


@pytest.mark.parametrize("text", ["T: 010\n", "epsilons: [0.0, 010]\n"])
def test_an_integer_with_a_leading_zero_is_refused(tmp_path, text):
    key = text.split(":")[0]
    with pytest.raises(YAMLFileError, match=rf"{key}: 010 .*leading zero.*write 10"):
        load_yaml(_yaml(tmp_path, text))
    with pytest.raises(ConfigError, match=r"override 'T=010'.*leading zero"):
        parse_overrides(["T=010"])
    assert load_yaml(_yaml(tmp_path, "T: 0\nalpha: 0.003\nx: 0x10\n", "ok.yaml")) == {
        "T": 0,
        "alpha": 0.003,
        "x": 16,
    }


# ---- messages that name the file, the key or the run ----------------------------------------
def test_a_config_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: café\nT: 8\n".encode("latin-1"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "UTF-8" in err and "line 1" in err
    assert "UnicodeDecodeError" not in err


@pytest.mark.parametrize("pair", ["alpha=[0.1,", "alpha={a: 1", "T=*x"])
def test_an_unparsable_override_names_its_key(tmp_path, pair, capsys):
    with pytest.raises(ConfigError, match=re.escape(f"override {pair!r}: ")):
        parse_overrides([pair])
    assert main(["run", str(_yaml(tmp_path, "T: 8\n")), pair]) == 2
    err = capsys.readouterr().err
    assert f"override {pair!r}" in err and "Error:" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- dataset: mnist5k\n", r"expected a mapping"),
        ("runs: {dataset: mnist5k}\n", r"runs: expected a list of mappings.*got a mapping"),
        ("runs: 5\n", r"runs: expected a list of mappings.*got int 5"),
        ("runs:\n  - mnist5k\n", r"runs\[0\]: expected a mapping of config keys.*'mnist5k'"),
        ("defaults: [1, 2]\nruns: [{T: 4}]\n", r"defaults: expected a mapping.*got a list"),
        ("seeds: 3\nruns: [{T: 4}]\n", r"seeds: expected a list of integers.*got int 3"),
    ],
)
def test_a_profile_of_the_wrong_shape_is_named(tmp_path, text, expected, capsys):
    path = _yaml(tmp_path, text, "p.yaml")
    with pytest.raises(ConfigError, match=expected):
        grid.expand(path)
    assert main(["grid", str(path), "--no-notebook"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Error:" not in err


def test_ctrl_c_ends_with_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(grid, "execute", interrupted)
    argv = ["grid", str(QUICK), "--only", "mnist5k-qcfs", f"out_dir={tmp_path}"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "interrupted; rerun the same command to resume"
    assert not any("Traceback" in line for line in err)

    class KernelInterrupted(Exception):  # how papermill reports Ctrl-C inside the notebook
        ename, evalue = "KeyboardInterrupt", ""

    def kernel_interrupted(*_, **__):
        raise KernelInterrupted

    monkeypatch.setattr(grid, "execute", kernel_interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted; rerun the same command to resume")
    monkeypatch.setattr("snnlib.__main__.dispatch", interrupted)
    assert main(["figures", str(QUICK)]) == 130
    assert capsys.readouterr().err == "interrupted; rerun the same command to resume\n"


def test_a_corrupt_checkpoint_advises_what_works(tmp_path):
    path = tmp_path / ".run.staging" / "checkpoint.pt"
    path.parent.mkdir()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, "abcd1234")
    message = str(err.value)
    assert f"delete {path}" in message and "force" not in message  # --force keeps the staging


def test_grid_says_where_it_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(grid, "run_grid", lambda *_, **__: [])
    assert main(["grid", str(QUICK), "--only", "mnist5k-qcfs"]) == 0
    out = capsys.readouterr().out
    assert out.count(str(tmp_path / "results" / "quick")) == 1


# ---- the thread count of the committed records ----------------------------------------------
def test_a_thread_count_unlike_the_records_is_announced(tmp_path, monkeypatch):
    config = Config(out_dir=str(tmp_path), profile="p", device="cpu")
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "provenance.json").write_text(json.dumps({"threads": 2, "device": "cpu"}))
    (config.run_dir / "DONE").write_text("")
    monkeypatch.setattr("torch.get_num_threads", lambda: 1)
    lines: list[str] = []
    monkeypatch.setattr(grid, "execute", lambda *_, **__: None)
    grid.run_grid([config], force=True, log=lines.append)
    warning = [line for line in lines if "thread" in line]
    assert len(warning) == 1
    assert "1 CPU thread" in warning[0] and "made with 2" in warning[0]
    assert "not be bit-identical" in warning[0] and "OMP_NUM_THREADS=2" in warning[0]
    monkeypatch.setattr("torch.get_num_threads", lambda: 2)
    lines.clear()
    grid.run_grid([config], force=True, log=lines.append)
    assert not [line for line in lines if "thread" in line]
