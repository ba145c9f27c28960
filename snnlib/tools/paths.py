"""The repository root, and paths written relative to it.

The notebooks' path parameters (``out_dir = "results"``, ``profile_dir = "results/quick"``)
are relative to the root of the checkout, whatever the kernel's working folder: JupyterLab
starts kernels in ``notebooks/``, papermill in whatever folder it was given, Colab in
``/content``. :func:`resolve` turns such a parameter into an absolute path; an absolute
one is used as given.

The root is the checkout that holds the imported ``snnlib`` (a clone installed with
``pip install -e``, or on ``sys.path``), recognised by its ``configs/`` and ``notebooks/``
folders. A ``snnlib`` installed elsewhere (a wheel in ``site-packages``) falls back on the
nearest such folder at or above the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # snnlib/, this file being snnlib/tools/paths.py
CHECKOUT = PACKAGE_DIR.parent  # what holds the package: the repository root in a clone
MARKERS = ("configs", "notebooks")  # folders that only the repository root holds


def is_root(folder: Path) -> bool:
    """True when ``folder`` has every folder of :data:`MARKERS`."""
    return all((Path(folder) / name).is_dir() for name in MARKERS)


def repo_root(package_dir: Path = PACKAGE_DIR, start: Path | None = None) -> Path:
    """The repository root: the parent of ``package_dir`` if it is a checkout, else the
    nearest folder at or above ``start`` (default: the working folder) that is one.

    Raises ``FileNotFoundError`` naming both places searched when neither is a checkout.
    """
    checkout = Path(package_dir).parent
    if is_root(checkout):
        return checkout
    start = Path.cwd() if start is None else Path(start).absolute()
    for folder in (start, *start.parents):
        if is_root(folder):
            return folder
    raise FileNotFoundError(
        f"no snnlib repository root (a folder with {' and '.join(MARKERS)}/) holds the "
        f"imported package ({package_dir}) or the folder start={str(start)!r} or any folder "
        "above it; clone the repository and install it with `pip install -e .`, or start "
        "from inside the clone"
    )


def resolve(path: str | os.PathLike, root: Path | None = None) -> Path:
    """``path`` as an absolute path: relative paths are taken from ``root`` (default
    :func:`repo_root`), absolute ones are returned as given; a leading ``~`` is expanded.

    >>> str(resolve("results/quick", root=Path("/clone")))
    '/clone/results/quick'
    >>> str(resolve("/data/runs", root=Path("/clone")))
    '/data/runs'
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (repo_root() if root is None else Path(root)) / path


def from_root(path: str | os.PathLike, root: Path | None = None) -> str:
    """``path`` (relative to the working folder) as the notebooks take it: relative to the
    repository root when it lies inside the checkout, else absolute (portable records keep no
    machine's folder names)."""
    where = Path(path).expanduser().resolve()
    root = (repo_root() if root is None else Path(root)).resolve()
    return str(where.relative_to(root)) if where.is_relative_to(root) else str(where)


def cache_dir() -> Path:
    """snnlib's cache folder (compiled kernels, emulated and event frames): ``$SNNLIB_CACHE``
    itself when set, else ``$XDG_CACHE_HOME/snnlib``, else ``~/.cache/snnlib``."""
    if os.environ.get("SNNLIB_CACHE"):
        return Path(os.environ["SNNLIB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "snnlib"
