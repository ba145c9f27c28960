"""The scripts in examples/ run as a reader runs them, and their anytime check holds.

Each script trains a small network for one epoch on the CPU (well under a minute each),
calibrates Top-K on the held-out split and asserts that the anytime exits equal the offline
ones; a script that fails its own check exits non-zero.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from snnlib.tools import paths

ROOT = paths.repo_root()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "library"),
    [("spikingjelly_cutoff.py", "spikingjelly"), ("snntorch_cutoff.py", "snntorch")],
)
def test_example_runs_and_anytime_equals_offline(script, library):
    pytest.importorskip(library, reason=f"{library} is in the dev extra: pip install -e '.[dev]'")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])  # this checkout's snnlib
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, f"examples/{script}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "anytime: same exits and predictions" in done.stdout, done.stdout
    accuracy = float(done.stdout.split("accuracy at T=8: ")[1].split("%")[0])
    assert accuracy > 60, f"{script} trained to {accuracy} % only:\n{done.stdout}"


def test_every_example_is_tested():
    scripts = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert scripts == ["snntorch_cutoff.py", "spikingjelly_cutoff.py"]
