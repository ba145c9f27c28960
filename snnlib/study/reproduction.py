"""Did a rerun reproduce a profile? Two result folders compared claim by claim.

A claim is a number the README and the ledger state, read from a profile's tables:

* per group (dataset, method, arch, T, α) of ``tables/summary.csv``, the seed means of the
  accuracy at T_max, the ANN accuracy (converted runs), the Top-K accuracy, its average
  steps, both "x fewer" numbers (T_max / avg and matched fixed T / avg), Top-K's accuracy
  change and the mean OCT;
* per converted group of ``tables/convergence.csv``, how many runs converge;
* each verdict of ``tables/regulariser.csv`` and the ledger's verdict of each RCS claim.

Each claim gets the reference value, the new one, a tolerance and a verdict: ``identical``
(the same number bit for bit, or the same words), ``within tolerance`` or ``outside``
(``missing`` where the new folder lacks it; verdicts in words have no tolerance). The
tolerance is twice the standard error of the difference expected between two reruns
(docs/reproducing.md): ``2 * sqrt(s**2 + f**2)`` with

* ``s`` the seed part: the group's seed-to-seed standard deviation in the reference
  (``summary.csv``'s ``*_std``; for a count, that of the runs' 0/1 outcomes times the number
  of runs) times ``sqrt(2 / n)``, the standard error of the difference between two means of
  ``n`` seeds each, as if another floating-point path were a fresh draw of every seed;
* ``f`` the floating-point part: how far the claim moved between two floating-point paths on
  one machine, from the reference's committed ``tables/fragility.csv`` (0 where it has none;
  the report says which basis each tolerance has).

``fragility.csv`` (:func:`fragility`) lists each claim's value on the default path and on
another one, its movement, the seed-only tolerance, and whether the claim is fragile: a
verdict in words that changed, or a number that moved outside its seed-only tolerance. The
ledger carries one row per dataset naming its fragile claims (:func:`ledger_rows`).

``python -m snnlib compare REF_DIR NEW_DIR`` writes ``NEW_DIR/tables/reproduction.{md,csv}``
and prints one line; ``./run_all.sh`` ends with it against the committed folder (git HEAD).
Their contents name no time, machine or temporary folder, so an identical rerun rewrites them
byte for byte.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from snnlib.pipeline.records import write_csv
from snnlib.tools.atomic import atomic_write

# summary.csv columns (without ``_mean``) that the README and the ledger state, and their names
METRICS = {
    "accuracy_tmax": "accuracy at T_max",
    "ann_accuracy": "ANN accuracy",
    "topk_accuracy": "Top-K accuracy",
    "topk_avg_timestep": "Top-K steps",
    "topk_speedup": "x fewer (T_max/avg)",
    "topk_speedup_matched": "x fewer (matched fixed T/avg)",
    "topk_acc_delta": "Top-K accuracy change",
    "oct_mean": "mean OCT",
}
CONVERGING = "converging runs"
Z = 2.0  # tolerance = Z standard errors of the expected difference (about 95 %)
FRAGILITY = "fragility.csv"
COLUMNS = ["claim", "reference", "new", "tolerance", "basis", "verdict"]
REPRODUCED = ("identical", "within tolerance")


def _group(row: pd.Series) -> str:
    return f"{row['dataset']} {row['method']} {row['arch']} T={row['T']:g} alpha={row['alpha']:g}"


def read_claims(profile_dir: Path) -> dict[str, dict]:
    """Every claim of a profile folder's tables: ``{claim: {"value", "sd", "n", "scale"}}``
    (``sd``/``n``/``scale``: the per-run spread over ``n`` seeds, and ``n`` for a count;
    a verdict in words has ``sd`` None). Tables the folder lacks contribute nothing."""
    tables = Path(profile_dir) / "tables"
    claims: dict[str, dict] = {}
    if (tables / "summary.csv").is_file():
        for _, row in pd.read_csv(tables / "summary.csv").iterrows():
            for metric, label in METRICS.items():
                value = row[f"{metric}_mean"]
                if not math.isnan(value):
                    sd = float(row[f"{metric}_std"])
                    claims[f"{_group(row)}: {label}"] = {
                        "value": float(value),
                        "sd": sd,
                        "n": int(row["seeds"]),
                        "scale": 1,
                    }
    if (tables / "convergence.csv").is_file():
        runs = pd.read_csv(tables / "convergence.csv")
        for (dataset, arch, level, alpha), sel in runs.groupby(
            ["dataset", "arch", "L", "alpha"], sort=False
        ):
            outcome = sel["converges"].astype(bool).astype(float)
            n = len(outcome)
            claims[f"{dataset} {arch} L={level} alpha={alpha:g}: {CONVERGING}"] = {
                "value": float(outcome.sum()),
                "sd": float(outcome.std()) if n > 1 else math.nan,
                "n": n,
                "scale": n,
            }
    if (tables / "regulariser.csv").is_file():
        for _, row in pd.read_csv(tables / "regulariser.csv").iterrows():
            claims[f"{_group(row)}: RCS {row['metric']}"] = {"value": row["verdict"], "sd": None}
    if (tables / "ledger.csv").is_file():
        ledger = pd.read_csv(tables / "ledger.csv")
        for _, row in ledger[ledger["claim"].str.startswith("RCS")].iterrows():
            verdict = row["measured"].partition(":")[0]
            claims[f"{row['dataset']}: {row['claim']}"] = {"value": verdict, "sd": None}
    return claims


def read_fragility(profile_dir: Path) -> dict[str, dict]:
    """The committed floating-point movements of a profile folder, by claim (empty if none)."""
    path = Path(profile_dir) / "tables" / FRAGILITY
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype={"default": str, "other": str})
    return {row["claim"]: row for _, row in frame.iterrows()}


def seed_part(claim: dict) -> float:
    """``s``: the standard error of the difference of two reruns' values, from the seeds."""
    if claim["n"] < 2 or math.isnan(claim["sd"]):
        return 0.0
    return claim["scale"] * claim["sd"] * math.sqrt(2 / claim["n"])


def _verdict(ref, new, tolerance: float | None) -> str:
    if new is None:
        return "missing"
    if ref == new:
        return "identical"
    if tolerance is not None and abs(new - ref) <= tolerance:
        return "within tolerance"
    return "outside"


def compare(ref_dir: Path, new_dir: Path) -> pd.DataFrame:
    """One row per claim of the reference (then claims only the new folder has, as ``new
    claim``): reference, new, tolerance, its basis, verdict (see the module docstring)."""
    ref, new = read_claims(ref_dir), read_claims(new_dir)
    movements = read_fragility(ref_dir)
    rows = []
    for name, claim in ref.items():
        other = new.get(name, {}).get("value")
        if claim["sd"] is None:
            tolerance, basis = None, "-"
        else:
            s, moved = seed_part(claim), movements.get(name)
            f = 0.0 if moved is None else abs(float(moved["movement"]))
            tolerance = Z * math.hypot(s, f)
            seeds = f"{claim['n']} seeds" if s else f"no spread over {claim['n']} seed(s)"
            basis = seeds if moved is None else f"{seeds} + fp path {moved['path']}"
        rows.append(
            {
                "claim": name,
                "reference": claim["value"],
                "new": other,
                "tolerance": tolerance,
                "basis": basis,
                "verdict": _verdict(claim["value"], other, tolerance),
            }
        )
    rows += [
        {
            "claim": n,
            "reference": None,
            "new": c["value"],
            "tolerance": None,
            "basis": "-",
            "verdict": "new claim",
        }
        for n, c in new.items()
        if n not in ref
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_line(frame: pd.DataFrame) -> str:
    """The terminal's one line, e.g. ``reproduced 15 of 16 claims (12 bit for bit, 3 within
    tolerance); outside: ...``."""
    counted = frame[frame["verdict"] != "new claim"]
    identical = int((counted["verdict"] == "identical").sum())
    within = int((counted["verdict"] == "within tolerance").sum())
    line = (
        f"reproduced {identical + within} of {len(counted)} claims "
        f"({identical} bit for bit, {within} within tolerance)"
    )
    failed = counted[~counted["verdict"].isin(REPRODUCED)]
    if len(failed):
        named = [f"{r.claim} ({r.verdict})" for r in failed.itertuples()]
        more = f"; and {len(named) - 5} more" if len(named) > 5 else ""
        line += "; not reproduced: " + "; ".join(named[:5]) + more
    return line


def claim_value(value) -> str:
    """A claim's value for Markdown: a number (or its text) to 4 significant digits, words
    as they are, ``–`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return str(value)


CONDITIONS = (
    ("threads", "CPU threads per run"),
    ("cpu.capability", "vector instruction set"),
    ("fp_path", "floating-point path"),
)


def _conditions_of(profile_dir: Path) -> dict[str, set[str]]:
    """What each :data:`CONDITIONS` key was in the runs' ``provenance.json`` (``fp_path``
    absent: the default path)."""
    seen: dict[str, set[str]] = {}
    for path in sorted(Path(profile_dir).glob("runs/*/provenance.json")):
        provenance = json.loads(path.read_text())
        for key, _ in CONDITIONS:
            value = provenance
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            default = "default" if key == "fp_path" else "unknown"
            seen.setdefault(key, set()).add(str(default if value is None else value))
    return seen


def conditions(ref_dir: Path, new_dir: Path) -> list[str]:
    """One line per condition under which the two folders' runs were computed differently
    (thread count, vector instruction set, fp path): records are bit-identical only where
    none differs. Nothing where a folder holds no provenance."""
    ref, new = _conditions_of(ref_dir), _conditions_of(new_dir)
    return [
        f"{label} differ: reference {', '.join(sorted(ref[key]))}, new "
        f"{', '.join(sorted(new[key]))} (numbers are bit-identical only where they agree)"
        for key, label in CONDITIONS
        if key in ref and key in new and ref[key] != new[key]
    ]


def write_report(
    frame: pd.DataFrame, new_dir: Path, reference: str, notes: list[str] = ()
) -> list[Path]:
    """``tables/reproduction.{csv,md}`` under ``new_dir``; ``reference``: what the reference
    is, in words (no temporary folder: the files must not change between identical reruns);
    ``notes``: lines said under the summary (e.g. :func:`conditions`)."""
    out = Path(new_dir) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "reproduction.csv", frame)
    shown = ("reference", "new", "tolerance")
    table = frame.assign(**{c: frame[c].map(claim_value) for c in shown})
    said = "".join(f"{note}.\n\n" for note in notes)
    text = (
        f"# Reproduction of {Path(new_dir).name} against {reference}\n\n"
        f"{summary_line(frame)}.\n\n{said}"
        "Tolerance: twice the standard error of the difference expected between two reruns, "
        "from the reference's seed-to-seed spread and, where committed, the movement between "
        "floating-point paths (docs/reproducing.md).\n\n"
        f"{table.to_markdown(index=False)}\n"
    )
    atomic_write(out / "reproduction.md", text.encode())
    return [out / "reproduction.csv", out / "reproduction.md"]


def fp_path_of(profile_dir: Path) -> str:
    """The floating-point path the runs of a folder were computed on (their provenance's
    ``fp_path``; ``default`` where none says one); an error if they disagree."""
    names = set()
    for record in sorted((Path(profile_dir) / "runs").glob("*/provenance.json")):
        names.add(json.loads(record.read_text()).get("fp_path", "default"))
    if len(names) > 1:
        raise ValueError(
            f"profile_dir={str(profile_dir)!r}: runs on several fp paths {sorted(names)}"
        )
    return names.pop() if names else "default"


def fragility(ref_dir: Path, new_dir: Path) -> pd.DataFrame:
    """Each claim's movement from ``ref_dir`` (the default path) to ``new_dir`` (another
    path, from its runs' provenance): ``claim, path, default, other, movement,
    seed_tolerance, fragile``; fragile = a verdict in words changed, or a number moved
    further than its seed-only tolerance (``Z * s``). Claims that ``new_dir`` lacks were not
    measured on the other path and are left out."""
    path = fp_path_of(new_dir)
    ref, new = read_claims(ref_dir), read_claims(new_dir)
    rows = []
    for name, claim in ref.items():
        if name not in new:
            continue
        value = new[name]["value"]
        if claim["sd"] is None:
            moved, tolerance = None, None
            fragile = value != claim["value"]
        else:
            moved, tolerance = value - claim["value"], Z * seed_part(claim)
            fragile = abs(moved) > tolerance
        rows.append(
            {
                "claim": name,
                "path": path,
                "default": claim["value"],
                "other": value,
                "movement": moved,
                "seed_tolerance": tolerance,
                "fragile": "yes" if fragile else "no",
            }
        )
    return pd.DataFrame(rows)


def ledger_rows(profile_dir: Path, profile: str) -> list[dict]:
    """One ledger row per dataset with fragile claims in the folder's committed
    ``fragility.csv``: what moved, from the default path to the other one."""
    movements = read_fragility(profile_dir)
    by_dataset: dict[str, list[str]] = {}
    for name, row in movements.items():
        if row["fragile"] == "yes":
            moved = f"{name} {claim_value(row['default'])} -> {claim_value(row['other'])}"
            by_dataset.setdefault(name.split(" ", 1)[0].rstrip(":"), []).append(moved)
    return [
        {
            "dataset": dataset,
            "claim": f"fragile: moved beyond the seeds' spread on fp path {_path(movements)}",
            "paper": "-",
            "measured": "; ".join(moved),
            "scale": profile,
        }
        for dataset, moved in by_dataset.items()
    ]


def _path(movements: dict[str, dict]) -> str:
    return next(iter(movements.values()))["path"]
