"""JupyterLab on the walkthrough, as ``./run_all.sh lab`` starts it.

The server listens on 127.0.0.1 only and serves the repository root. It talks to its kernels
over Unix sockets (IPC) in Jupyter's runtime folder instead of TCP ports: over TCP the kernel
warns at every start that its traffic is unencrypted, while a Unix socket is reachable by
this user only, and the runtime folder keeps the socket files out of the checkout.

The set-up (its ``postBuild`` step, which Binder runs too) also gives the environment's
JupyterLab its defaults (:data:`SETTINGS`, written by :func:`install_settings` into
``<prefix>/share/jupyter/lab/settings/overrides.json``): save the widgets' state with the
notebook, so that a saved notebook opened again shows its ε slider, not the slider's text
(executed copies written by papermill carry that state anyway); and no Jupyter news or
update checks, whose "receive official Jupyter news?" pop-up would cover the walkthrough.

``python -m snnlib.tools.lab [NOTEBOOK] [ARGS...]`` replaces itself by ``python -m jupyter lab``
with these settings and ``ARGS`` (e.g. ``--no-browser``, ``--port=8890``); a ``NOTEBOOK``
(``.ipynb``, relative to the repository root) becomes the server's default page, so the URL
it prints, token included, opens that notebook (``/lab/tree/NOTEBOOK``).
``python -m snnlib.tools.lab --install-settings`` writes the defaults and exits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from snnlib.tools import paths
from snnlib.tools.atomic import atomic_write

SETTINGS = {
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    # JupyterLab 4's schema: fetchNews is the string "true", "false" or "none" (ask)
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def server_args(root: Path, runtime_dir: Path, notebook: str | None = None) -> list[str]:
    """The ``jupyter lab`` options: 127.0.0.1, ``root`` served, kernels over IPC sockets
    named ``runtime_dir/kernel-*``, and ``notebook`` (relative to ``root``) as the page the
    printed URL opens."""
    args = [
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--KernelManager.transport=ipc",
        f"--KernelManager.ip={runtime_dir / 'kernel'}",
    ]
    if notebook is not None:
        if not (Path(root) / notebook).is_file():
            raise ValueError(
                f"notebook={notebook!r} is not a file under {root}; give a path relative to "
                "the repository root, e.g. notebooks/00_walkthrough.ipynb"
            )
        args.append(f"--LabApp.default_url=/lab/tree/{Path(notebook).as_posix()}")
    if os.geteuid() == 0:
        args.append("--allow-root")  # containers, Colab-like machines
    return args


def install_settings(prefix: Path | str = sys.prefix) -> Path:
    """Merge :data:`SETTINGS` into the environment's JupyterLab overrides (other plugins' and
    other keys' values are kept); returns the file."""
    path = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(path.read_text()) if path.is_file() else {}
    for plugin, values in SETTINGS.items():
        current[plugin] = {**current.get(plugin, {}), **values}
    atomic_write(path, (json.dumps(current, indent=2) + "\n").encode())
    return path


def main(argv: list[str] | None = None) -> None:
    from jupyter_core.paths import jupyter_runtime_dir

    extra = list(sys.argv[1:] if argv is None else argv)
    if extra == ["--install-settings"]:
        print(f"[setup] JupyterLab defaults in {install_settings()}")
        return
    notebook = extra.pop(0) if extra and extra[0].endswith(".ipynb") else None
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    args = server_args(paths.repo_root(), runtime, notebook)
    os.execv(sys.executable, [sys.executable, "-m", "jupyter", "lab", *args, *extra])


if __name__ == "__main__":
    main()
