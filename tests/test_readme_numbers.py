"""The README's and docs/' result blocks agree with results/ (snnlib/study/readme_numbers.py)."""

import json
import shutil
from pathlib import Path

import pandas as pd

from snnlib.study import readme_numbers

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_blocks_match_results():
    assert readme_numbers.problems(REPO) == []
    names = {
        m["name"]
        for p in readme_numbers.documents(REPO)
        for m in readme_numbers.BLOCK.finditer(p.read_text())
    }
    assert {"results-quick", "results-rcs", "results-nmnist"} <= names
    assert {
        "bench-neurons",
        "bench-pooling",
        "bench-train",
        "bench-anytime",
        "bench-anytime-stream",
    } <= names


def copy_of_the_repo(root: Path) -> Path:
    """README, docs, the committed tables of every profile and the benchmarks' JSON, under
    ``root``."""
    shutil.copy(REPO / "README.md", root / "README.md")
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copytree(REPO / "results" / "bench", root / "results" / "bench")
    for tables in (REPO / "results").glob("*/tables"):
        shutil.copytree(tables, root / "results" / tables.parent.name / "tables")
    return root


def test_a_number_that_drifts_from_results_is_named_and_regenerated(tmp_path):
    root = copy_of_the_repo(tmp_path)
    doc = root / "docs" / "results.md"
    committed = doc.read_text()
    assert "| 97.7 ± 0.2  | 97.7 ± 0.2 " in committed  # quick, QCFS alpha = 0
    doc.write_text(
        committed.replace("| 97.7 ± 0.2  | 97.7 ± 0.2 ", "| 97.7 ± 0.2  | 97.8 ± 0.2 ", 1)
    )
    assert readme_numbers.problems(root) == [
        "docs/results.md: block results-quick differs from results/"
    ]
    assert readme_numbers.update(root) == [doc]
    assert doc.read_text() == committed


def test_a_block_of_a_profile_without_tables_is_named(tmp_path):
    root = copy_of_the_repo(tmp_path)
    readme = root / "README.md"
    readme.write_text(
        readme.read_text() + "\n<!-- results-nope:start -->\n<!-- results-nope:end -->\n"
    )
    assert readme_numbers.problems(root) == [
        "README.md: block results-nope has no table under results/"
    ]


def test_headline_marks_the_claims_another_fp_path_flips(tmp_path):
    """A claim that moved beyond the seeds' spread on another fp path (the committed
    fragility.csv) says so where the headline states it; without the evidence, no mark."""
    tables = tmp_path / "tables"
    shutil.copytree(REPO / "results" / "quick" / "tables", tables)
    frame = pd.read_csv(tables / "fragility.csv", dtype=str)
    claim = "mnist5k mnist-cnn L=8 alpha=0: converging runs"
    frame.loc[frame["claim"] == claim, ["other", "fragile"]] = ["1", "yes"]
    frame.to_csv(tables / "fragility.csv", index=False)
    text = readme_numbers.headline(tables)
    assert "runs that converge: 6 of 6 (fragile: 3 of 6 on the avx2 fp path)" in text
    # an RCS verdict the other path flips is not stated as a finding, but with both answers
    assert (
        "(qcfs, 3 paired seeds): not established (not distinguishable on the default fp path, "
        "contradicted on the avx2 path)." in text
    )
    (tables / "fragility.csv").unlink()
    text = readme_numbers.headline(tables)
    assert "fragile" not in text and "not established" not in text
    assert "(qcfs, 3 paired seeds): not distinguishable." in text


def test_a_benchmark_number_that_drifts_from_its_json_is_named(tmp_path):
    """docs/benchmarks.md's tables come from results/bench/*.json: a re-measured speed-up
    that the doc does not show is named, and the figures step writes it in."""
    root = copy_of_the_repo(tmp_path)
    path = root / "results" / "bench" / "train_step.json"
    data = json.loads(path.read_text())
    data["results"][0]["speedup_vs_spikingjelly"]["snnlib_rcs"] = 9.87
    path.write_text(json.dumps(data))
    doc = root / "docs" / "benchmarks.md"
    assert "9.87x" not in doc.read_text()
    assert readme_numbers.problems(root) == [
        "docs/benchmarks.md: block bench-train differs from results/"
    ]
    assert readme_numbers.update(root) == [doc]
    assert "| RCS in the loss " in doc.read_text() and "9.87x" in doc.read_text()
    assert readme_numbers.problems(root) == []
