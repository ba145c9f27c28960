"""Binder and Colab badges and the Colab install cell of every notebook, from one place.

Each notebook under ``notebooks/`` starts with two generated cells:

1. a Markdown cell tagged ``badges``: a "launch binder" badge that opens the notebook in
   JupyterLab on mybinder.org (which builds the root ``environment.yml``) and an "Open in
   Colab" badge;
2. a code cell tagged ``colab-install`` that does nothing outside Colab. On Colab it clones
   the repository (for the committed ``results/`` and the notebooks' relative paths), installs
   ``snnlib`` with ``--no-deps`` and the few dependencies Colab lacks, and moves into
   ``notebooks/``. It never installs torch or torchvision: Colab ships its own CUDA build.

The links are built from :data:`REPO_SLUG` and :data:`BRANCH` only, so a move of the
repository is a one-line change followed by::

    python -m snnlib.badges            # rewrite the generated cells of every notebook
    python -m snnlib.badges --check    # exit 1 and name the notebooks that are out of date

``tests/test_notebooks.py`` checks that every notebook's cells equal the generated ones and
that every link points at a path that exists in the repository.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = "notebooks"
# Placeholder until the repository is published: change it here, then run this module.
REPO_SLUG = "snnlib-org/snnlib"
BRANCH = "main"
BADGE_TAG = "badges"
COLAB_TAG = "colab-install"
# What `pip install --no-deps snnlib` leaves missing on Colab (it has torch, torchvision,
# numpy, pandas, matplotlib, seaborn, tqdm, pyyaml, tabulate, ipywidgets). Never torch here.
COLAB_PACKAGES = ("tonic>=1.4", "aedat>=2.0", "mlxtend>=0.23")
COLAB_CLONE = "/content/snnlib"

BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def notebook_path(name: str) -> str:
    """``notebooks/<name>.ipynb``, relative to the repository root (``name`` has no suffix)."""
    return f"{NOTEBOOK_DIR}/{name}.ipynb"


def binder_url(name: str) -> str:
    return f"https://mybinder.org/v2/gh/{REPO_SLUG}/HEAD?urlpath=lab/tree/{notebook_path(name)}"


def colab_url(name: str) -> str:
    return (
        f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/{notebook_path(name)}"
    )


def badge_markdown(name: str) -> str:
    """The Markdown of the ``badges`` cell of notebook ``name``."""
    return (
        f"[![Launch Binder]({BINDER_BADGE})]({binder_url(name)}) "
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(name)})"
    )


def colab_install_source() -> str:
    """The source of the ``colab-install`` cell (plain Python: valid outside Colab too)."""
    packages = ", ".join(f'"{p}"' for p in COLAB_PACKAGES)
    return f'''\
# On Colab only (nothing happens elsewhere): fetch the repository for its committed results,
# install snnlib without its dependencies and the few packages Colab lacks. torch and
# torchvision are never (re)installed: Colab ships its own CUDA build.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    if not os.path.isdir("{COLAB_CLONE}"):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{BRANCH}",
                        "https://github.com/{REPO_SLUG}", "{COLAB_CLONE}"], check=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "-e", "{COLAB_CLONE}"], check=True)
    subprocess.run([*pip, {packages}], check=True)
    sys.path.insert(0, "{COLAB_CLONE}")  # the editable install is seen after a restart only
    os.chdir("{COLAB_CLONE}/{NOTEBOOK_DIR}")'''


def link_targets(markdown: str) -> list[str]:
    """Repository paths that the Binder and Colab links of a badge cell point at.

    Binder's ``urlpath=lab/tree/<path>`` and Colab's ``github/<slug>/blob/<branch>/<path>``
    both name a file of the repository; a link to another repository or branch raises
    ``ValueError``. Binder also needs ``environment.yml`` at the root, so it is listed too.
    """
    out: list[str] = []
    for url in re.findall(r"\]\((https://[^)\s]+)\)", markdown):
        if url in (BINDER_BADGE, COLAB_BADGE):
            continue
        binder = re.fullmatch(
            r"https://mybinder\.org/v2/gh/([^/]+/[^/]+)/HEAD\?urlpath=lab/tree/(.+)", url
        )
        colab = re.fullmatch(
            r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", url
        )
        if binder and binder[1] == REPO_SLUG:
            out += [binder[2], "environment.yml"]
        elif colab and colab[1] == REPO_SLUG and colab[2] == BRANCH:
            out.append(colab[3])
        else:
            raise ValueError(
                f"badge link {url!r} is not a Binder or Colab link to {REPO_SLUG}@{BRANCH}"
            )
    return out


def notebooks(repo: Path = REPO) -> list[Path]:
    """Every notebook under ``notebooks/`` (checkpoints excluded), sorted."""
    return sorted(p for p in (repo / NOTEBOOK_DIR).glob("*.ipynb"))


def expected_cells(name: str) -> dict[str, tuple[str, str]]:
    """``{tag: (cell_type, source)}`` of the generated cells of notebook ``name``."""
    return {
        BADGE_TAG: ("markdown", badge_markdown(name)),
        COLAB_TAG: ("code", colab_install_source()),
    }


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def problems(path: Path) -> list[str]:
    """What differs between a notebook's generated cells and :func:`expected_cells`."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    out = []
    for position, (tag, (kind, source)) in enumerate(expected_cells(Path(path).stem).items()):
        found = _tagged(nb, tag)
        if found != [position]:
            out.append(
                f"{path.name}: expected exactly one cell tagged {tag!r} at position "
                f"{position}, found positions {found}"
            )
        elif nb.cells[position].cell_type != kind or nb.cells[position].source != source:
            out.append(
                f"{path.name}: the {tag!r} cell differs from the generated one "
                "(run `python -m snnlib.badges`)"
            )
    return out


def update(path: Path) -> bool:
    """Write the generated cells into a notebook (first two cells); True if it changed.

    A generated cell already in place keeps its id and metadata and only gets its source
    replaced; a missing or misplaced one is (re)inserted, after which ``nbstripout`` should
    be run once to renumber the cell ids as the committed notebooks have them.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for position, (tag, (kind, source)) in enumerate(expected_cells(path.stem).items()):
        found = _tagged(nb, tag)
        if found == [position] and nb.cells[position].cell_type == kind:
            nb.cells[position].source = source
            continue
        for i in reversed(found):
            del nb.cells[i]
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source)
        cell.metadata["tags"] = [tag]
        nb.cells.insert(position, cell)
    changed = nbformat.writes(nb) != before
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib.badges",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    paths = notebooks()
    if args.check:
        found = [p for path in paths for p in problems(path)]
        print("\n".join(found) or f"{len(paths)} notebook(s) up to date")
        return 1 if found else 0
    for path in paths:
        print(f"{'updated' if update(path) else 'unchanged'}: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
