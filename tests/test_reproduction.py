"""The reproduction report (snnlib/study/reproduction.py), `compare`, and the fp paths."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from snnlib.__main__ import main
from snnlib.study import reproduction
from snnlib.tools import fp_path

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "results" / "quick"


def tables_of(folder: Path) -> Path:
    """A copy of the committed quick profile's tables only (no runs), under ``folder``,
    without its fp-path movements (tolerances from the seeds alone)."""
    shutil.copytree(QUICK / "tables", folder / "tables")
    (folder / "tables" / reproduction.FRAGILITY).unlink(missing_ok=True)
    return folder


def edit(folder: Path, table: str, change) -> None:
    path = folder / "tables" / f"{table}.csv"
    frame = pd.read_csv(path)
    change(frame)
    frame.to_csv(path, index=False)


def verdicts(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["claim"], frame["verdict"], strict=True))


ACC = "mnist5k qcfs mnist-cnn T=32 alpha=0: accuracy at T_max"
CONVERGING = "mnist5k mnist-cnn L=8 alpha=0: converging runs"
RCS = "mnist5k-dvs tet dvs-cnn T=8 alpha=0.003: RCS topk_avg_timestep"


def test_every_claim_of_an_identical_folder_is_identical(tmp_path):
    ref, new = tables_of(tmp_path / "ref"), tables_of(tmp_path / "new")
    frame = reproduction.compare(ref, new)
    # 4 groups x 7 numbers + the 2 QCFS ANN accuracies, 2 convergence counts, 16 + 2 verdicts
    assert len(frame) == 4 * 7 + 2 + 2 + 16 + 2
    assert set(frame["verdict"]) == {"identical"}
    line = reproduction.summary_line(frame)
    n = len(frame)
    assert line == f"reproduced {n} of {n} claims ({n} bit for bit, 0 within tolerance)"


def test_numbers_are_judged_against_the_seed_spread_and_verdicts_in_words_exactly(tmp_path):
    ref, new = tables_of(tmp_path / "ref"), tables_of(tmp_path / "new")
    summary = pd.read_csv(ref / "tables" / "summary.csv")
    sd = summary.loc[0, "accuracy_tmax_std"]
    tolerance = 2 * sd * (2 / 3) ** 0.5  # twice the standard error of a difference of 3-seed means

    def shift(frame):
        frame.loc[0, "accuracy_tmax_mean"] += 0.9 * tolerance
        frame.loc[1, "accuracy_tmax_mean"] += (
            1.1 * summary.loc[1, "accuracy_tmax_std"] * 2 * (2 / 3) ** 0.5
        )

    edit(new, "summary", shift)
    edit(new, "convergence", lambda f: f.__setitem__("converges", [False, *f["converges"][1:]]))
    edit(
        new,
        "regulariser",
        lambda f: f.__setitem__("verdict", f["verdict"].replace("worse", "better")),
    )
    frame = reproduction.compare(ref, new)
    got = verdicts(frame)
    assert got[ACC] == "within tolerance"
    assert frame.set_index("claim").loc[ACC, "tolerance"] == pytest.approx(tolerance)
    assert got["mnist5k qcfs mnist-cnn T=32 alpha=0.003: accuracy at T_max"] == "outside"
    # 6 of 6 converged: no spread over seeds, so 5 of 6 is outside
    assert got[CONVERGING] == "outside"
    assert got[RCS] == "outside"
    line = reproduction.summary_line(frame)
    assert line.startswith(f"reproduced {len(frame) - 5} of {len(frame)} claims")
    assert CONVERGING in line


def test_a_claim_the_new_folder_lacks_is_missing(tmp_path):
    ref, new = tables_of(tmp_path / "ref"), tables_of(tmp_path / "new")
    (new / "tables" / "convergence.csv").unlink()
    assert verdicts(reproduction.compare(ref, new))[CONVERGING] == "missing"
    # not measured on the other path: no movement, not fragile
    assert CONVERGING not in set(reproduction.fragility(ref, new)["claim"])


def test_committed_fp_movements_widen_the_tolerance(tmp_path):
    ref, new = tables_of(tmp_path / "ref"), tables_of(tmp_path / "new")
    edit(new, "convergence", lambda f: f.__setitem__("converges", [False, *f["converges"][1:]]))
    frame = reproduction.fragility(ref, new)
    row = frame.set_index("claim").loc[CONVERGING]
    assert (row["path"], row["movement"], row["fragile"]) == ("default", -1.0, "yes")
    frame.to_csv(ref / "tables" / "fragility.csv", index=False)
    judged = reproduction.compare(ref, new).set_index("claim").loc[CONVERGING]
    assert judged["verdict"] == "within tolerance"
    assert judged["tolerance"] == 2.0 and judged["basis"].endswith("+ fp path default")
    [ledger_row] = reproduction.ledger_rows(ref, "quick")
    assert ledger_row["dataset"] == "mnist5k" and CONVERGING in ledger_row["measured"]


def test_compare_writes_the_same_report_twice_and_names_no_folder(tmp_path, capsys):
    ref, new = tables_of(tmp_path / "ref"), tables_of(tmp_path / "new")
    assert main(["compare", str(ref), str(new), "--reference-label", "git HEAD"]) == 0
    assert "reproduced" in capsys.readouterr().out
    first = {p: p.read_bytes() for p in (new / "tables").glob("reproduction.*")}
    assert len(first) == 2 and not any(str(tmp_path).encode() in b for b in first.values())
    assert main(["compare", str(ref), str(new), "--reference-label", "git HEAD"]) == 0
    assert first == {p: p.read_bytes() for p in first}


def test_compare_names_a_folder_without_tables(tmp_path, capsys):
    ref = tables_of(tmp_path / "ref")
    assert main(["compare", str(ref), str(tmp_path / "nothing")]) == 2
    assert "NEW_DIR" in capsys.readouterr().err


def test_fp_paths_and_their_provenance(monkeypatch):
    from snnlib.pipeline.records import provenance

    assert fp_path.environment("default") == {}
    assert fp_path.environment("avx2")["ATEN_CPU_CAPABILITY"] == "avx2"
    with pytest.raises(ValueError, match=r"fp_path='avx3'.*default, avx2"):
        fp_path.environment("avx3")
    monkeypatch.delenv(fp_path.ENV_NAME, raising=False)
    assert "fp_path" not in provenance("cpu", 0, 0.0, 1.0)  # records of the default path unchanged
    monkeypatch.setenv(fp_path.ENV_NAME, "avx2")
    assert provenance("cpu", 0, 0.0, 1.0)["fp_path"] == "avx2"


def test_grid_passes_the_fp_path_on_to_each_printed_command(monkeypatch, capsys):
    for name in fp_path.environment("avx2"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores the environment afterwards
        monkeypatch.delenv(name)
    assert (
        main(
            ["grid", str(REPO / "configs" / "quick.yaml"), "--fp-path", "avx2", "--print-commands"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and all(line.endswith("--fp-path avx2") for line in lines)
    assert fp_path.current() == "avx2"
    with pytest.raises(SystemExit) as exit_status:  # argparse names the choices
        main(["grid", str(REPO / "configs" / "quick.yaml"), "--fp-path", "avx3"])
    assert exit_status.value.code == 2


def test_the_report_says_when_the_runs_were_computed_under_other_conditions(tmp_path):
    """Another thread count (or CPU type, or fp path) is why numbers differ: said, not hidden."""

    def folder(name: str, threads: int, capability: str) -> Path:
        run = tmp_path / name / "runs" / "r"
        run.mkdir(parents=True)
        provenance = {"threads": threads, "cpu": {"capability": capability}}
        (run / "provenance.json").write_text(json.dumps(provenance))
        return tmp_path / name

    ref, same, other = folder("a", 2, "AVX512"), folder("b", 2, "AVX512"), folder("c", 1, "AVX512")
    assert reproduction.conditions(ref, same) == []
    (line,) = reproduction.conditions(ref, other)
    assert line.startswith("CPU threads per run differ: reference 2, new 1")
    assert reproduction.conditions(ref, tmp_path / "no-provenance") == []
