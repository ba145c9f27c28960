"""Notebooks: each runs under papermill with tiny parameters from the repository root and from
``notebooks/``; parameters, stripping, the repository root, badges, the dependency lists.

Path parameters are given relative to the repository root (``../../tmp/...``), so a notebook
that resolved them against its working folder instead would miss its inputs or write
elsewhere when run from ``notebooks/``. The figures notebook and the walkthrough's
"committed results" section read a fabricated results folder (records made from random
outputs through :func:`snnlib.pipeline.evaluate.summarise`), so nothing here depends on ``results/``
being present, and nothing is written into the checkout.
"""

from __future__ import annotations

import ast
import doctest
import os
import subprocess
import sys
import types
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from record_fixtures import fabricate

from snnlib import grid
from snnlib.config import Config
from snnlib.pipeline.records import finished_runs, is_done, load_run
from snnlib.tools import badges, paths

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("00_walkthrough", "10_train", "20_cutoff", "90_figures")
FOLDERS = {"root": REPO, "notebooks": NOTEBOOKS}
TINY = {
    "epochs": 1,
    "T": 4,
    "train_limit": 256,
    "eval_limit": 200,
    "batch_size": 64,
    "bins": 20,
    "progress": False,
}


def execute(name: str, dest: Path, where: str = "notebooks", **parameters):
    """Run ``notebooks/<name>.ipynb`` with the kernel in ``FOLDERS[where]``, into ``dest``;
    raises on a cell error."""
    return papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(dest / f"{name}.ipynb"),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(FOLDERS[where]),
        progress_bar=False,
        execution_timeout=600,
    )


def from_root(path: Path) -> str:
    """``path`` relative to the repository root, as a reader would write a parameter."""
    return os.path.relpath(path, REPO)


def outputs(nb, mime: str) -> list:
    return [
        o["data"][mime]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if mime in o.get("data", {})
    ]


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory) -> Path:
    """``<tmp>/fab``: 2 (dataset, method) pairs x 2 alphas x 2 seeds; cifar10 is in the ledger."""
    out = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    base = {"T": 4, "bins": 20, "out_dir": str(out), "profile": "fab"}
    pairs = [("mnist5k", "qcfs", "mnist-cnn"), ("cifar10", "tet", "vgg16")]
    runs = [
        {"dataset": dataset, "method": method, "arch": arch, "alpha": alpha, "seed": seed}
        for dataset, method, arch in pairs
        for alpha in (0.0, 0.003)
        for seed in (0, 1)
    ]
    for values in runs:
        fabricate(Config.from_dict({**base, **values}), rng)
    return out / "fab"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Config, Path]:
    """A tiny run made through 10_train exactly as the grid runner makes every run."""
    config = Config.from_dict(
        {**TINY, "out_dir": str(tmp_path_factory.mktemp("train")), "profile": "nb"}
    )
    return config, grid.execute(config)


# ---- execution ------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_notebook_runs_the_config_it_is_given(trained):
    config, executed = trained
    assert is_done(config.run_dir)
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.papermill.parameters == {**config.to_dict(), "force": False, "wait": False}
    assert load_run(config.run_dir)["config"] == config.to_dict()
    assert len(outputs(nb, "image/png")) >= 2  # training curve, accuracy per timestep


@pytest.mark.slow
@pytest.mark.parametrize("where", FOLDERS)
def test_train_notebook_writes_under_the_root_relative_out_dir(where, tmp_path):
    execute("10_train", tmp_path, where, **TINY, out_dir=from_root(tmp_path), profile="nb")
    assert len(finished_runs(tmp_path / "nb")) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("where", "key"), [("root", "run_dir"), ("notebooks", "profile_dir")])
def test_cutoff_notebook_analyses_a_run(trained, where, key, tmp_path):
    config, _ = trained
    given = config.run_dir if key == "run_dir" else config.run_dir.parents[1]
    nb = execute("20_cutoff", tmp_path, where, **{key: from_root(given)})
    assert len(outputs(nb, "image/png")) >= 5  # per-t, C map, trade-off, rules, exits
    anytime_table = outputs(nb, "text/html")[-1]  # the engine on the run's saved SNN
    assert "exits identical to offline" in anytime_table and "measured speedup" in anytime_table
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "exits identical to offline: True" in printed  # the reloaded SNN is the record's


@pytest.mark.slow
@pytest.mark.parametrize("where", FOLDERS)
def test_walkthrough_trains_tiny_models_and_shows_committed_results(where, tmp_path, fabricated):
    nb = execute(
        "00_walkthrough",
        tmp_path,
        where,
        epochs=1,
        train_limit=64,
        eval_limit=50,
        T=2,
        out_dir=from_root(tmp_path),
        quick_dir=from_root(fabricated),
    )
    assert len(finished_runs(tmp_path / "walkthrough")) == 4  # QCFS, TET, each +- RCS
    assert len(outputs(nb, "image/png")) >= 9
    html = "".join(outputs(nb, "text/html"))
    assert "1.76-2.76x" in html  # the ledger of the committed-results section
    assert "of its ANN at T = 4L" in html and "RCS alpha=0.003" in html  # with its claim rows
    # the executed copy carries the ε slider's state, so a static view draws the slider
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    views = outputs(nb, "application/vnd.jupyter.widget-view+json")
    assert views and all(view["model_id"] in state for view in views)
    assert any(m["model_name"] == "FloatSliderModel" for m in state.values())


@pytest.mark.slow
@pytest.mark.parametrize("where", FOLDERS)
def test_figures_notebook_writes_every_figure_and_table(where, tmp_path, fabricated):
    before = sorted(p.relative_to(fabricated) for p in fabricated.rglob("*"))
    out = tmp_path / "out"
    nb = execute(
        "90_figures", tmp_path, where, profile_dir=from_root(fabricated), out_dir=from_root(out)
    )
    assert sorted(p.relative_to(fabricated) for p in fabricated.rglob("*")) == before
    names = {p.name for p in out.rglob("*") if p.is_file()}
    for stem in ("accuracy_vs_timestep", "tradeoff", "exits"):
        for pair in ("mnist5k_qcfs", "cifar10_tet"):
            assert {f"{stem}_{pair}.png", f"{stem}_{pair}.svg"} <= names
    for table in ("summary", "summary_pretty", "ledger", "convergence", "regulariser"):
        assert {f"{table}.csv", f"{table}.md", f"{table}.tex"} <= names
    # the six above, the converted runs against their ANN, the paired differences across α
    assert {"convergence_mnist5k.png", "regulariser.png"} <= names
    assert len(outputs(nb, "image/png")) == 8


# ---- parameters -----------------------------------------------------------------------------
def declared(name: str) -> dict:
    return papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))


def test_train_notebook_declares_exactly_the_config_fields():
    assert set(declared("10_train")) == {f.name for f in fields(Config)} | {"force", "wait"}


def test_train_notebook_defaults_are_configs_own():
    """The parameters cell is the one list of fields, with no second set of defaults."""
    values = {k: ast.literal_eval(v["default"]) for k, v in declared("10_train").items()}
    assert values.pop("force") is False and values.pop("wait") is False
    assert Config.from_dict(values) == Config()
    grid.check_parameters({**Config().to_dict(), "force": False, "wait": False})  # as execute


@pytest.mark.parametrize("name", NAMES)
def test_default_folders_are_inside_the_repository(name):
    defaults = {k: ast.literal_eval(v["default"]) for k, v in declared(name).items()}
    folders = {k: v for k, v in defaults.items() if k.endswith("_dir") and v}
    assert folders
    for key, value in folders.items():
        where = Path(os.path.normpath(paths.resolve(value)))
        assert where.is_relative_to(REPO / "results"), f"{name}: {key} = {value!r}"


@pytest.mark.parametrize("name", NAMES)
def test_one_parameters_cell_that_papermill_reads_whole(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    assigned = [t.id for node in ast.parse(tagged[0].source).body for t in node.targets]
    # papermill skips a line with a second "=" (e.g. in its comment) without an error
    assert list(declared(name)) == assigned
    assert nb.metadata.kernelspec.name == "python3"


# ---- stripped -------------------------------------------------------------------------------
def committed_text(path: Path, repo: Path = REPO) -> str:
    """What ``git add`` puts in the repository for ``path``: the index copy where git's
    nbstripout filter applies (a notebook saved with outputs in Lab is stripped on ``git add``;
    the set-up installs the filter), else the file itself."""
    git = ["git", "-C", str(repo)]
    attr = subprocess.run([*git, "check-attr", "filter", "--", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if attr.returncode == 0 and attr.stdout.strip().endswith(": nbstripout"):
        rel = path.relative_to(repo).as_posix()
        shown = subprocess.run([*git, "show", f":{rel}"], capture_output=True, text=True,
                               check=False)  # fmt: skip
        if shown.returncode == 0:  # tracked
            return shown.stdout
    return path.read_text()


@pytest.mark.slow  # runs nbstripout on every notebook
def test_notebooks_are_committed_stripped():
    pytest.importorskip("nbstripout")
    for name in NAMES:
        text = committed_text(NOTEBOOKS / f"{name}.ipynb")
        done = subprocess.run(
            [sys.executable, "-m", "nbstripout", "--verify"],
            input=text, check=False, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, f"run `nbstripout notebooks/{name}.ipynb`:\n{done.stdout}"
        nb = nbformat.reads(text, as_version=4)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )


def test_a_notebook_saved_with_outputs_is_committed_stripped(tmp_path):
    """With git's nbstripout filter (the set-up's), what git holds of a notebook saved with
    outputs is stripped, and the check above reads that; without the filter, the file."""
    pytest.importorskip("nbstripout")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    nb.cells[0].execution_count = 1
    path = repo / "notebooks" / "a.ipynb"
    nbformat.write(nb, path)
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    assert "execute_result" in committed_text(path, repo)  # no filter: the saved file
    subprocess.run([sys.executable, "-m", "nbstripout", "--install"], cwd=repo, check=True)
    subprocess.run(["git", "-C", str(repo), "add", "notebooks/a.ipynb"], check=True)
    assert "execute_result" in path.read_text()
    assert "execute_result" not in committed_text(path, repo)


# ---- the repository root --------------------------------------------------------------------
def test_root_is_the_checkout_of_the_imported_package():
    assert paths.repo_root() == REPO
    assert paths.resolve("results/quick") == REPO / "results" / "quick"
    assert paths.resolve("/elsewhere/runs") == Path("/elsewhere/runs")  # absolute: as given
    assert doctest.testmod(paths).failed == 0


def test_paths_given_to_the_notebooks_are_root_relative_inside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.chdir(NOTEBOOKS)
    assert paths.from_root("../results") == "results"  # as the grid passes out_dir
    monkeypatch.chdir(REPO)
    assert paths.from_root("results/quick") == os.path.join("results", "quick")
    assert paths.from_root(tmp_path) == str(tmp_path.resolve())  # outside: absolute


def test_root_of_an_installed_package_is_found_above_the_working_folder(tmp_path):
    installed = tmp_path / "site-packages" / "snnlib"  # a wheel install: no checkout around it
    assert paths.repo_root(installed, start=NOTEBOOKS) == REPO
    clone = tmp_path / "content" / "snnlib"  # Colab: the clone, cwd /content
    for folder in paths.MARKERS:
        (clone / folder).mkdir(parents=True)
    assert paths.repo_root(clone / "snnlib", start=tmp_path / "content") == clone
    with pytest.raises(FileNotFoundError, match="no snnlib repository root"):
        paths.repo_root(installed, start=tmp_path)


# ---- Binder and Colab -----------------------------------------------------------------------
def test_the_notebook_set_is_the_expected_one():
    assert tuple(p.stem for p in badges.notebooks()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_badge_and_colab_cells_are_the_generated_ones(name):
    assert badges.problems(NOTEBOOKS / f"{name}.ipynb", badges.repository()) == []


def test_readme_badges_are_the_generated_ones():
    assert badges.readme_problems(REPO / badges.README, badges.repository()) == []


def git_repo(folder: Path, origin: str | None = None, setting: str = "") -> Path:
    """A checkout at ``folder`` with an optional origin remote and ``[tool.snnlib]`` table."""
    for name in paths.MARKERS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f"[tool.snnlib]\n{setting}\n")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    if origin:
        subprocess.run(["git", "-C", str(folder), "remote", "add", "origin", origin], check=True)
    return folder


@pytest.mark.parametrize(
    "origin",
    [
        "https://github.com/owner/snnlib.git",
        "https://github.com/owner/snnlib",
        "git@github.com:owner/snnlib.git",
        "ssh://git@github.com/owner/snnlib.git",
    ],
)
def test_badges_open_the_origin_repository(origin, tmp_path):
    repo = badges.repository(git_repo(tmp_path, origin, 'repository = "other/name"'))
    assert repo == badges.Repository("owner/snnlib", "main")
    name = "00_walkthrough"
    binder = "https://mybinder.org/v2/gh/owner/snnlib/main?labpath=notebooks/00_walkthrough.ipynb"
    colab = (
        "https://colab.research.google.com/github/owner/snnlib/blob/main/"
        "notebooks/00_walkthrough.ipynb"
    )
    assert badges.binder_url(repo, name) == binder and badges.colab_url(repo, name) == colab
    assert f"]({binder})" in badges.badge_markdown(repo, name)
    assert f"]({colab})" in badges.badge_markdown(repo, name)
    assert '"https://github.com/owner/snnlib"' in badges.colab_install_source(repo)
    assert (REPO / "environment.yml").is_file()  # what Binder builds


def test_branch_is_origins_default_else_the_setting(tmp_path):
    root = git_repo(tmp_path, "git@github.com:owner/snnlib.git", 'branch = "dev"')
    assert badges.repository(root).branch == "dev"
    head = ["git", "-C", str(root), "symbolic-ref", "refs/remotes/origin/HEAD"]
    subprocess.run([*head, "refs/remotes/origin/trunk"], check=True)
    assert badges.repository(root) == badges.Repository("owner/snnlib", "trunk")


def test_the_setting_serves_a_checkout_without_a_github_origin(tmp_path):
    root = git_repo(tmp_path, "https://gitlab.com/a/b.git", 'repository = "owner/snnlib"')
    assert badges.repository(root) == badges.Repository("owner/snnlib", "main")
    (root / "pyproject.toml").write_text('[tool.snnlib]\nrepository = "not a slug"\n')
    with pytest.raises(ValueError, match="repository = 'not a slug'"):
        badges.repository(root)


def test_no_repository_no_link_but_how_to_set_it(tmp_path):
    root = git_repo(tmp_path, setting='repository = ""')
    assert badges.repository(root) is None
    for text in (badges.badge_markdown(None, "10_train"), badges.readme_block(None)):
        assert "https://" not in text and "python -m snnlib.tools.badges" in text
        assert "[tool.snnlib]" in text
    assert "github.com" not in badges.colab_install_source(None)


def test_one_command_rewrites_the_readme_and_notebooks(tmp_path, capsys):
    root = git_repo(tmp_path, "git@github.com:owner/snnlib.git")
    notebook = root / "notebooks" / "90_figures.ipynb"
    notebook.write_text((NOTEBOOKS / "90_figures.ipynb").read_text())
    readme = root / badges.README
    readme.write_text(f"# x\n\n{badges.README_START}\nstale\n{badges.README_END}\n\ntext\n")
    assert badges.main(["--check"], root=root) == 1
    assert badges.main([], root=root) == 0
    assert badges.main(["--check"], root=root) == 0
    assert "badges up to date (owner/snnlib@main)" in capsys.readouterr().out
    repo = badges.Repository("owner/snnlib")
    cell = nbformat.read(notebook, as_version=4).cells[0]
    assert cell.source == badges.badge_markdown(repo, "90_figures")
    assert readme.read_text().endswith(f"{badges.readme_block(repo)}\n\ntext\n")


def test_colab_cell_pins_torch_and_numpy_and_installs_the_rest(tmp_path, monkeypatch):
    clone = tmp_path / "snnlib"
    clone.mkdir()
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: calls.append(cmd))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    source = badges.colab_install_source(badges.Repository("owner/snnlib"), str(clone))
    exec(compile(source, "colab-install", "exec"), {})
    constraints = tmp_path / "colab-constraints.txt"
    assert constraints.read_text().split() == [
        f"{name}=={version(name)}" for name in ("torch", "torchvision", "numpy")
    ]
    assert len(calls) == 2 and all(
        call[3:7] == ["install", "--quiet", "-c", str(constraints)] for call in calls
    )
    installed = [arg for call in calls for arg in call[7:] if not arg.startswith("-")]
    assert installed == ["tonic>=1.4", str(clone), "mlxtend>=0.23", "aedat>=2.0"]
    assert calls[1][7] == "--no-deps"  # mlxtend's scikit-learn and numpy pins are not pulled
    assert not [a for a in installed if a.startswith(("torch", "numpy"))]
    deps = dependencies_of_pyproject()
    assert all(Requirement(r).name in deps for r in badges.COLAB_PACKAGES + badges.COLAB_NO_DEPS)
    assert sys.path[0] == str(clone)


def test_colab_cell_without_a_repository_says_what_to_do_and_raises_nothing(
    tmp_path, monkeypatch, capsys
):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: calls.append(cmd))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    clone = tmp_path / "snnlib"
    source = badges.colab_install_source(None, str(clone))
    exec(compile(source, "colab-install", "exec"), {})  # no clone yet: one line, no error
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "git clone" in out and str(clone) in out
    assert calls == []
    clone.mkdir()  # the user cloned it: the same cell installs from there
    exec(compile(source, "colab-install", "exec"), {})
    assert len(calls) == 2 and str(clone) in calls[1] and sys.path[0] == str(clone)


def test_colab_cell_is_inert_elsewhere(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cwd, path = Path.cwd(), list(sys.path)
    for repo in (badges.Repository("owner/snnlib"), None):
        exec(compile(badges.colab_install_source(repo), "colab-install", "exec"), {})
    assert Path.cwd() == cwd and sys.path == path


# ---- dependencies ---------------------------------------------------------------------------
CONDA_NAMES = {"pytorch-cpu": "torch", "pytorch": "torch"}


def dependencies_of_pyproject(python: str | None = None) -> dict[str, str]:
    """``{name: specifier}`` of ``[project] dependencies`` that apply to ``python``."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = {"python_version": python} if python else None
    reqs = [Requirement(r) for r in listed]
    return {
        canonicalize_name(r.name): str(r.specifier)
        for r in reqs
        if r.marker is None or r.marker.evaluate(env)
    }


def test_environment_yml_lists_the_dependencies_of_pyproject():
    spec = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = [d for d in spec if isinstance(d, str) and d != "pip"]
    python = next(d for d in conda if d.startswith("python="))
    pip = next(d for d in spec if isinstance(d, dict))["pip"]
    listed = {}
    assert "-e .[dev]" in pip  # snnlib with the test tools: ./run_all.sh test runs from it
    for entry in [d for d in conda if d != python] + [d for d in pip if d != "-e .[dev]"]:
        req = Requirement(entry)
        listed[canonicalize_name(CONDA_NAMES.get(req.name, req.name))] = str(req.specifier)
    assert listed == dependencies_of_pyproject(python.removeprefix("python="))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.removeprefix("python=") in SpecifierSet(requires)
    assert {"jupyterlab", "nbconvert", "papermill", "ipykernel"} <= set(listed)
