"""Notebooks: each runs under papermill with tiny parameters; parameters, stripping, badges.

Every notebook is executed as ``run_all.sh`` and a reader would: kernel ``python3``, working
directory ``notebooks/``, outputs into a temporary folder. The figures notebook and the
walkthrough's "committed results" section read a fabricated results folder (records made
from random outputs through :func:`snnlib.evaluate.summarise`), so nothing here depends on
``results/`` being present.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from record_fixtures import fabricate

from snnlib import badges, grid
from snnlib.config import Config
from snnlib.records import finished_runs, is_done, load_run

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("00_walkthrough", "10_train", "20_cutoff", "90_figures")
TINY = {
    "epochs": 1,
    "T": 4,
    "train_limit": 256,
    "eval_limit": 200,
    "batch_size": 64,
    "bins": 20,
    "progress": False,
}


def execute(name: str, dest: Path, **parameters) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` as run_all.sh does, into ``dest``; raises on a cell error."""
    return papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(dest / f"{name}.ipynb"),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=600,
    )


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
def test_train_notebook_runs_the_config_it_is_given(trained):
    config, executed = trained
    assert is_done(config.run_dir)
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.papermill.parameters == {**config.to_dict(), "force": False}
    assert load_run(config.run_dir)["config"] == config.to_dict()
    assert len(outputs(nb, "image/png")) >= 2  # training curve, accuracy per timestep


def test_cutoff_notebook_analyses_a_run(trained, tmp_path):
    config, _ = trained
    nb = execute("20_cutoff", tmp_path, run_dir=str(config.run_dir))
    assert len(outputs(nb, "image/png")) >= 5  # per-t, C map, trade-off, rules, exits
    anytime_table = outputs(nb, "text/html")[-1]  # the engine on the run's saved SNN
    assert "exits identical to offline" in anytime_table and "measured speedup" in anytime_table


def test_walkthrough_trains_tiny_models_and_shows_committed_results(tmp_path, fabricated):
    nb = execute(
        "00_walkthrough",
        tmp_path,
        epochs=1,
        train_limit=128,
        eval_limit=100,
        T=2,
        out_dir=str(tmp_path),
        quick_dir=str(fabricated),
    )
    assert len(finished_runs(tmp_path / "walkthrough")) == 4  # QCFS, TET, each +- RCS
    assert len(outputs(nb, "image/png")) >= 9
    html = "".join(outputs(nb, "text/html"))
    assert "1.76-2.76x" in html  # the ledger of the committed-results section


def test_figures_notebook_writes_every_figure_and_table(tmp_path, fabricated):
    before = sorted(p.relative_to(fabricated) for p in fabricated.rglob("*"))
    nb = execute("90_figures", tmp_path, profile_dir=str(fabricated), out_dir=str(tmp_path / "out"))
    assert sorted(p.relative_to(fabricated) for p in fabricated.rglob("*")) == before
    names = {p.name for p in (tmp_path / "out").rglob("*") if p.is_file()}
    for stem in ("accuracy_vs_timestep", "tradeoff", "exits"):
        for pair in ("mnist5k_qcfs", "cifar10_tet"):
            assert {f"{stem}_{pair}.png", f"{stem}_{pair}.svg"} <= names
    for table in ("summary", "summary_pretty", "ledger"):
        assert {f"{table}.csv", f"{table}.md", f"{table}.tex"} <= names
    assert len(outputs(nb, "image/png")) == 6


# ---- parameters -----------------------------------------------------------------------------
def declared(name: str) -> dict:
    return papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))


def test_train_notebook_declares_exactly_the_config_fields():
    assert set(declared("10_train")) == {f.name for f in fields(Config)} | {"force"}


def test_train_notebook_defaults_are_a_valid_small_config():
    values = {k: ast.literal_eval(v["default"]) for k, v in declared("10_train").items()}
    assert values.pop("force") is False
    config = Config.from_dict(values)
    assert config.dataset == "mnist5k" and config.epochs <= 2 and config.T <= 8  # a demo
    assert not config.progress
    grid.check_parameters({**config.to_dict(), "force": False})  # what grid.execute passes


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
def test_notebooks_are_committed_stripped():
    pytest.importorskip("nbstripout")
    paths = [str(NOTEBOOKS / f"{name}.ipynb") for name in NAMES]
    done = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", *paths],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"run `nbstripout notebooks/*.ipynb`:\n{done.stdout}{done.stderr}"
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )


# ---- Binder and Colab -----------------------------------------------------------------------
def test_the_notebook_set_is_the_expected_one():
    assert tuple(p.stem for p in badges.notebooks()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_badge_and_colab_cells_are_the_generated_ones(name):
    assert badges.problems(NOTEBOOKS / f"{name}.ipynb") == []


@pytest.mark.parametrize("name", NAMES)
def test_badge_targets_exist(name):
    targets = badges.link_targets(badges.badge_markdown(name))
    assert f"notebooks/{name}.ipynb" in targets and "environment.yml" in targets
    assert len(targets) == 3  # Binder's notebook and environment, Colab's notebook
    missing = [t for t in targets if not (REPO / t).is_file()]
    assert not missing, f"badge links point at missing files {missing}"


def test_link_to_another_repository_is_refused():
    with pytest.raises(ValueError, match="not a Binder or Colab link"):
        badges.link_targets("[x](https://colab.research.google.com/github/a/b/blob/main/n.ipynb)")


def test_colab_cell_never_installs_torch_and_is_inert_elsewhere(monkeypatch):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(badges.COLAB_PACKAGES) <= set(deps)  # pinned as in pyproject
    assert not [p for p in badges.COLAB_PACKAGES if p.lower().startswith("torch")]
    source = badges.colab_install_source()
    code = [line for line in source.splitlines() if not line.lstrip().startswith("#")]
    assert '"--no-deps"' in source and not [line for line in code if "torch" in line]
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cwd, path = Path.cwd(), list(sys.path)
    exec(compile(source, "colab-install", "exec"), {})
    assert Path.cwd() == cwd and sys.path == path
