"""A private JupyterLab server for the browser test: a free port on 127.0.0.1, a random token,
and its own config, data and runtime folders, so that it neither reads nor writes the user's
``~/.jupyter`` and finds the project's ``python3`` kernel in ``.venv``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from snnlib.tools.lab import server_args

SETTINGS = {
    # every cell stays in the page, so that prompts and outputs off screen can be read
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # no news or update check: no request leaves the machine, no pop-up over the page
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass(frozen=True)
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    log: Path

    def api(self, method: str, path: str):
        """The server's REST API: ``method`` on ``/api/<path>``; returns the decoded JSON
        answer (None when empty)."""
        auth = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method, headers=auth)
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def open_url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (relative to the root folder) in a fresh
        workspace."""
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_dirs(home: Path) -> dict[str, str]:
    """Jupyter's config, data and runtime folders under ``home``, with the lab settings."""
    for name, values in SETTINGS.items():
        plugin, _, rest = name.rpartition("/")
        settings = (
            home / "config" / "lab" / "user-settings" / plugin / f"{rest}.jupyterlab-settings"
        )
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    return {
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
    }


def wait_until_up(lab: Lab, proc: subprocess.Popen, timeout: float) -> None:
    """Poll the server's status API until it answers; raise with the log's end if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    tail = lab.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"JupyterLab did not answer on {lab.url} within {timeout} s:\n{tail}")


@contextmanager
def jupyter_lab(root_dir: Path, home: Path, timeout: float = 60.0):
    """Run ``python -m jupyter lab`` on ``root_dir`` (this interpreter: the project's
    ``.venv``) with the settings of ``./run_all.sh lab`` until the block ends; yields a
    :class:`Lab`."""
    home.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}", token, home / "jupyterlab.log")
    dirs = private_dirs(home)
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        *server_args(root_dir, Path(dirs["JUPYTER_RUNTIME_DIR"])),
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]  # fmt: skip
    with lab.log.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=root_dir, env={**os.environ, **dirs},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_up(lab, proc, timeout)
        yield lab
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; its process group goes if it hangs."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
