"""The lab settings of the set-up (snnlib/tools/lab.py) and the step that installs them
(postBuild)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snnlib.tools import allocator, lab

REPO = Path(__file__).resolve().parents[1]


def test_server_listens_locally_and_talks_to_kernels_over_unix_sockets(tmp_path):
    args = lab.server_args(tmp_path / "root", tmp_path / "runtime")
    assert "--ServerApp.ip=127.0.0.1" in args
    assert f"--ServerApp.root_dir={tmp_path / 'root'}" in args
    assert "--KernelManager.transport=ipc" in args
    assert f"--KernelManager.ip={tmp_path / 'runtime' / 'kernel'}" in args


def test_settings_are_merged_into_the_environments_overrides(tmp_path):
    path = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True)
    plugin = "@jupyter-widgets/jupyterlab-manager:plugin"
    path.write_text(json.dumps({"other:plugin": {"a": 1}, plugin: {"keep": 2, "saveState": False}}))
    assert lab.install_settings(tmp_path) == path
    assert json.loads(path.read_text()) == {
        "other:plugin": {"a": 1},
        plugin: {"keep": 2, "saveState": True},
    }
    assert lab.install_settings(tmp_path / "new").is_file()  # no file yet: created


@pytest.mark.slow
def test_post_build_installs_the_kernel_with_the_allocator_settings_and_the_lab_default():
    # into this environment (idempotent: the set-up runs the same step)
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(REPO / "postBuild")], check=True, env=env, cwd=REPO)
    share = Path(sys.prefix) / "share" / "jupyter"
    spec = json.loads((share / "kernels" / "python3" / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (snnlib)"
    assert spec["env"] == allocator.SETTINGS
    overrides = json.loads((share / "lab" / "settings" / "overrides.json").read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
