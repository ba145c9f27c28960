"""The allocator settings: one table used by run_all.sh, the kernelspec and the CLI."""

import os
import subprocess
import sys

import pytest

from snnlib.tools import allocator


def test_missing_leaves_values_already_set():
    env = {"MALLOC_TOP_PAD_": "1"}
    assert allocator.missing(env) == {
        k: v for k, v in allocator.SETTINGS.items() if k != "MALLOC_TOP_PAD_"
    }
    assert allocator.missing(dict(allocator.SETTINGS)) == {}


def test_restart_adds_the_missing_settings_once(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "applies", lambda: True)
    monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
    for key in allocator.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    allocator.restart_with_settings("snnlib", ["run", "cfg.yaml"])
    ((_, argv, env),) = calls
    assert argv == [sys.executable, "-m", "snnlib", "run", "cfg.yaml"]
    assert all(env[k] == v for k, v in allocator.SETTINGS.items())
    for key, value in allocator.SETTINGS.items():  # the restarted process has them all
        monkeypatch.setenv(key, value)
    allocator.restart_with_settings("snnlib", ["run"])
    assert len(calls) == 1


def test_no_restart_where_glibc_does_not_read_them(monkeypatch):
    monkeypatch.setattr(allocator, "applies", lambda: False)
    monkeypatch.setattr(os, "execve", lambda *args: pytest.fail("restarted"))
    for key in allocator.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    allocator.restart_with_settings("snnlib", [])


def test_shell_and_kernel_forms(monkeypatch):
    for key in allocator.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "7")
    shell = subprocess.run(
        [sys.executable, "-m", "snnlib.tools.allocator", "--shell"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert "export MALLOC_MMAP_THRESHOLD_=2147483647" in shell
    assert not any("MALLOC_TOP_PAD_" in line for line in shell)  # the user's value wins
    kernel = subprocess.run(
        [sys.executable, "-m", "snnlib.tools.allocator", "--kernel-args"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert kernel.count("--env") == len(allocator.SETTINGS)
    assert kernel[kernel.index("MALLOC_TOP_PAD_") + 1] == allocator.SETTINGS["MALLOC_TOP_PAD_"]


@pytest.mark.slow
def test_the_cli_restarts_once_with_the_settings(tmp_path):
    """``python -m snnlib`` starts without them and runs with them: a ``sitecustomize`` on
    ``PYTHONPATH`` logs the setting each time an interpreter starts."""
    if not allocator.applies():
        pytest.skip("not glibc: the settings do not apply")
    log = tmp_path / "starts.txt"
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(str(os.environ.get('MALLOC_TOP_PAD_')) + '\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in allocator.SETTINGS}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-m", "snnlib", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert log.read_text().split() == ["None", allocator.SETTINGS["MALLOC_TOP_PAD_"]]
