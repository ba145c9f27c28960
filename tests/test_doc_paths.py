"""Every repository path that README.md and docs/*.md name exists.

A name that starts with one of the repository's folders (``snnlib/cutoff.py``,
``configs/quick.yaml``, ``examples/...``) must be that file or folder; a name without a folder
(``cfg.yaml``, ``batching.py``, ``tables/ledger.md``) must be the end of some file's path in
the checkout (a file in results/ named by its table, a module named in a list of its
package). Patterns (``configs/<profile>.yaml``, ``*.ipynb``) and URLs are not names; nor are
the files a command in the same text writes (``... > commands.txt``) and the run outputs in a
results folder that is not committed (``results/scratch/...``).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from snnlib.tools import paths

ROOT = paths.repo_root()
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]
SUFFIXES = "py|yaml|yml|ipynb|sh|toml|md|json|csv|png|svg|pdf|txt|cpp"
NAME = re.compile(rf"(?<![\w/.:<>*{{-])(\.?[\w][\w.-]*(?:/[\w.-]+)*/?\.?[\w-]*\.(?:{SUFFIXES}))\b")
URL = re.compile(r"\b(?:https?://|github\.com/|www\.)\S+")
# paths in other repositories, named as such where they appear
OTHER_REPOSITORIES = {
    "docs/_static/snn-regularisation-cutoff.png",  # the official code's overview figure
    "docs/cutoff/topk.md",  # the snncutoff package's documentation page
}


def repository_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()


def named_paths(text: str) -> set[str]:
    """The file names in a Markdown text (URLs, patterns and redirect targets left out)."""
    text = URL.sub(" ", text)
    written = {m.group(1) for m in re.finditer(r">\s*([\w./-]+)", text)}
    return {m.group(1).rstrip("/") for m in NAME.finditer(text)} - written


def test_names_are_found_in_text():
    text = (
        "see `snnlib/cutoff.py` and [fig](results/quick/figures/a.png); run cfg.yaml; "
        "`configs/<profile>.yaml`, https://github.com/x/y/blob/main/z.py, *.ipynb, "
        "grid --print-commands > commands.txt"
    )
    assert named_paths(text) == {"snnlib/cutoff.py", "results/quick/figures/a.png", "cfg.yaml"}


def missing(names: set[str], files: list[str]) -> list[str]:
    folders = {f.split("/")[0] for f in files if "/" in f}
    existing = set(files) | {f.rsplit("/", i)[0] for f in files for i in (1, 2) if "/" in f}
    bad = []
    for name in sorted(n.removeprefix("./") for n in names - OTHER_REPOSITORIES):
        parts = name.split("/")
        if parts[0] == "results" and len(parts) > 2 and "/".join(parts[:2]) not in existing:
            continue  # the output of a run into a folder that is not committed
        if parts[0] in folders or name in existing:
            ok = name in existing or (ROOT / name).exists()
        else:
            ok = any(f == name or f.endswith("/" + name) for f in files)
        if not ok:
            bad.append(name)
    return bad


def test_missing_names_are_caught():
    files = ["snnlib/cutoff.py", "snnlib/data/batching.py", "results/quick/tables/ledger.md"]
    names = {"snnlib/cutoff.py", "batching.py", "tables/ledger.md", "cfg.yaml", "snnlib/cut.py",
             "results/scratch/10_train.ipynb", "results/quick/tables/x.md"}  # fmt: skip
    assert missing(names, files) == ["cfg.yaml", "results/quick/tables/x.md", "snnlib/cut.py"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_named_path_exists(doc):
    bad = missing(named_paths((ROOT / doc).read_text()), repository_files())
    assert not bad, f"{doc} names paths that do not exist in the repository: {bad}"
