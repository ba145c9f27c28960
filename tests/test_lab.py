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
        **lab.SETTINGS,
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


def test_the_notebook_becomes_the_page_the_printed_url_opens(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.ipynb").write_text("{}")
    args = lab.server_args(tmp_path, tmp_path / "runtime", "notebooks/a.ipynb")
    assert "--LabApp.default_url=/lab/tree/notebooks/a.ipynb" in args
    assert not any("default_url" in a for a in lab.server_args(tmp_path, tmp_path / "runtime"))
    with pytest.raises(ValueError, match=r"notebook='notebooks/b\.ipynb' is not a file"):
        lab.server_args(tmp_path, tmp_path / "runtime", "notebooks/b.ipynb")


def test_settings_are_valid_in_the_installed_jupyterlab():
    """Each setting names a plugin and a key of this JupyterLab's schemas, with an allowed
    value (a renamed key would be ignored silently and the news pop-up would come back)."""
    share = Path(sys.prefix) / "share" / "jupyter"
    for plugin, values in lab.SETTINGS.items():
        package, _, name = plugin.partition(":")
        core = share / "lab" / "schemas" / package / f"{name}.json"  # JupyterLab's own
        extension = share / "labextensions" / package / "schemas" / package / f"{name}.json"
        schema = json.loads((core if core.is_file() else extension).read_text())
        for key, value in values.items():
            spec = schema["properties"][key]
            allowed = [c["const"] for c in spec.get("oneOf", [])] or None
            assert allowed is None or value in allowed, (plugin, key, value, allowed)
            assert isinstance(value, {"boolean": bool, "string": str}[spec["type"]])


@pytest.mark.slow
def test_lab_prints_a_url_that_opens_the_walkthrough(tmp_path):
    """``python -m snnlib.tools.lab notebooks/00_walkthrough.ipynb`` (``./run_all.sh lab``)
    prints a URL, token included, whose page is the walkthrough."""
    import time
    import urllib.request

    from lab_server import free_port, private_dirs, stop

    port = free_port()
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "snnlib.tools.lab", "notebooks/00_walkthrough.ipynb",
           "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]  # fmt: skip
    env = {**os.environ, **private_dirs(tmp_path / "home")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        prefix = f"http://127.0.0.1:{port}/lab/tree/notebooks/00_walkthrough.ipynb?token="
        deadline = time.monotonic() + 90
        while prefix not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        text = log.read_text()
        assert prefix in text, text[-3000:]
        url = prefix + text.split(prefix)[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and page.url.startswith(prefix.split("?")[0])
    finally:
        stop(proc)
