"""Command line.

python -m snnlib run CONFIG.yaml [key=value ...] [--force] [--wait]   one experiment
python -m snnlib grid configs/quick.yaml [--only PATTERN] [--force] [--wait] [--data-root DIR]
python -m snnlib grid configs/quick.yaml --fp-path avx2 --force   on another fp path
python -m snnlib grid configs/paper.yaml --smoke     every run for a few batches -> paper-smoke/
python -m snnlib grid configs/paper.yaml --print-commands [--gpus-per-run N]   one line a run
python -m snnlib figures configs/quick.yaml   every figure and table of the runs it declares
python -m snnlib figures results/scratch      ... or of every finished run in a folder
python -m snnlib calibration configs/quick.yaml   the paper's calibration vs the held-out one
python -m snnlib digests results/quick [--backfill]   check each record's parts agree
python -m snnlib compare REF_DIR NEW_DIR      did NEW reproduce REF? a verdict per claim
python -m snnlib demo [key=value ...]                               a few-minute QCFS run

A run whose config names no ``profile`` goes to ``results/scratch/``, never into a named
profile. Errors are one short message; ``--debug`` shows the traceback. Exit status: 0 done,
1 failed (a run, or another process holds the run), 2 a usage error (arguments, config, YAML,
missing or incomplete data, stand-ins outside a smoke run), 130 interrupted (Ctrl-C: finished
runs are kept and an interrupted one resumes when the same command is run again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snnlib.config import Config, ConfigError, parse_overrides
from snnlib.data.errors import DatasetNotFoundError, StandInError
from snnlib.data.validate import IncompleteDatasetError
from snnlib.tools import fp_path, paths
from snnlib.tools.yamlfile import YAMLFileError, load_yaml

USAGE_ERRORS = (
    ConfigError,
    YAMLFileError,
    DatasetNotFoundError,
    IncompleteDatasetError,
    StandInError,
)
INTERRUPTED = "interrupted; rerun the same command to resume"


def load_config(path: str | None, overrides: list[str]) -> Config:
    """The config of ``path`` (a YAML mapping) with ``overrides`` (a config that names no
    profile is in the ``scratch`` profile, :class:`~snnlib.config.Config`'s default)."""
    values = {} if path is None else load_yaml(path) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    values.update(parse_overrides(overrides))
    return Config.from_dict(values)


def show(run_dir: Path) -> None:
    from snnlib.pipeline.records import load_run

    record = load_run(run_dir)
    print(record["per_timestep"].to_string(index=False))
    print(record["cutoff"].query("policy == 'topk'").to_string(index=False))


SMOKE_HELP = (
    "every run for one epoch of 2 batches, at its true shapes, into results/<profile>-smoke/ "
    "(synthetic stand-ins for datasets missing under the data root)"
)


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1, or an error saying what was given."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    # --debug before or after the command; SUPPRESS: a command's parser must not reset it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    top = argparse.ArgumentParser(
        prog="python -m snnlib",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one experiment from a YAML config", parents=[common])
    p.add_argument("config", help="YAML file of config keys (see snnlib.config.Config)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--force", action="store_true", help="rerun a finished run")
    p.add_argument("--wait", action="store_true", help="wait while another process runs it")
    p = sub.add_parser("grid", help="run every experiment of a profile", parents=[common])
    p.add_argument("profile", help="configs/<profile>.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    p.add_argument("--only", help="run only run_ids matching this glob or substring")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("--wait", action="store_true", help="wait for runs another process holds")
    p.add_argument("--data-root", help="folder holding the paper datasets")
    p.add_argument("--no-notebook", action="store_true", help="call snnlib directly")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    p.add_argument(
        "--fp-path",
        default="default",
        choices=list(fp_path.PATHS),
        help="run on another vectorised floating-point path (snnlib/tools/fp_path.py: "
        "default, avx2); recorded in provenance.json, not in the run id",
    )
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="print one self-contained shell command per run (for a job array) and exit",
    )
    p.add_argument(
        "--gpus-per-run",
        type=positive,
        default=1,
        metavar="N",
        help="with --print-commands: launch each run on N GPUs with torchrun (DDP)",
    )
    p = sub.add_parser("figures", help="write every figure and table", parents=[common])
    p.add_argument("profile", help="configs/<profile>.yaml, or a results/<profile> folder")
    p.add_argument("--smoke", action="store_true", help="of the profile's smoke runs (--smoke)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (e.g. out_dir=...)")
    p = sub.add_parser(
        "calibration",
        help="the paper's Top-K calibration against the held-out one (needs model.pt)",
        parents=[common],
    )
    p.add_argument("profile", help="configs/<profile>.yaml, or a results/<profile> folder")
    p.add_argument("--smoke", action="store_true", help="of the profile's smoke runs (--smoke)")
    p.add_argument("--data-root", help="folder holding the runs' datasets (the training split)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (e.g. out_dir=...)")
    p = sub.add_parser(
        "digests",
        help="check that each finished record's parts agree with the digests they state",
        parents=[common],
    )
    p.add_argument("folder", help="a results/<profile> folder, or one run folder")
    p.add_argument(
        "--backfill",
        action="store_true",
        help="write digests.json for records that have none (from their parts as they are)",
    )
    p = sub.add_parser(
        "compare",
        help="compare two result folders of a profile claim by claim (reproduction report)",
        parents=[common],
    )
    p.add_argument("reference", help="the reference folder, e.g. another machine's results/quick")
    p.add_argument("new", help="the folder to judge; its tables/reproduction.{md,csv} are written")
    p.add_argument("--reference-label", help="the reference in words (default: its path)")
    p.add_argument(
        "--fragility",
        metavar="FILE",
        help="also write each claim's movement to FILE (NEW on another fp path than REFERENCE)",
    )
    p = sub.add_parser(
        "demo", help="a few-minute QCFS run on the embedded digits", parents=[common]
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    return top


def parse(argv: list[str] | None) -> argparse.Namespace:
    top = parser()
    # key=value overrides may also follow the options: collect them from the leftovers
    args, extra = top.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        top.error(f"unrecognized arguments: {' '.join(stray or extra)}")  # exits with status 2
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _profile(target: str, overrides: list[str], smoke: bool) -> tuple[Path, list | None]:
    """``(profile folder, declared configs or None)`` of a profile YAML or a results folder
    (with the declaration of ``configs/<folder name>.yaml`` when the repository has one;
    ``results/<profile>-smoke`` is the smoke runs of ``configs/<profile>.yaml``)."""
    from snnlib.pipeline.smoke import SUFFIX

    path = Path(target)
    values = parse_overrides(overrides)
    if path.is_dir():
        name = path.name
        if name.endswith(SUFFIX) and not (paths.CHECKOUT / "configs" / f"{name}.yaml").is_file():
            name, smoke = name.removesuffix(SUFFIX), True  # results/<profile>-smoke
        declared_by = paths.CHECKOUT / "configs" / f"{name}.yaml"
        values.setdefault("out_dir", str(path.parent))
    else:
        declared_by = path
    if not declared_by.is_file():
        if not path.is_dir():
            raise ConfigError(f"{target}: no such profile file or results folder")
        print(f"[{path}] no profile file declares its runs; using every finished run")
        return path, None
    runs = declared(str(declared_by), values, smoke)
    profile_dir = Path(runs[0].out_dir) / runs[0].profile
    kind = "smoke runs" if smoke else "runs"
    print(f"[{profile_dir}] the {len(runs)} {kind} declared by {declared_by}")
    return profile_dir, runs


def figures(target: str, overrides: list[str], smoke: bool = False) -> int:
    """``figures``: every figure and table of the runs a profile declares (or of every
    finished run of a folder), the convergence of converted runs, and the regulariser study
    where runs pair up across α. A record whose parts disagree or cannot be read is named and
    left out, and makes the exit status 1."""
    from snnlib.study.report import write_all

    profile_dir, runs = _profile(target, overrides, smoke)
    written, coverage = write_all(profile_dir, declared=runs)
    print(f"wrote {len(written)} files under {profile_dir}")
    left_out = coverage.refused
    for line in left_out:
        print(f"error: left out of every figure and table, parts disagree: {line}", file=sys.stderr)
    return 1 if left_out else 0


def calibration(
    target: str, overrides: list[str], smoke: bool = False, data_root: str | None = None
) -> int:
    """``calibration``: the paper's calibration against the held-out one, on the trained
    networks of a profile (evaluation only; ``data_root``: where their datasets are)."""
    from snnlib.study.calibration import write_study

    profile_dir, runs = _profile(target, overrides, smoke)
    written = write_study(profile_dir, declared=runs, progress=True, data_root=data_root)
    print(f"wrote {len(written)} files under {profile_dir}")
    return 0


def digests_command(folder: str, backfill: bool = False) -> int:
    """``digests``: one line per finished record of ``folder``: ``[ok]``, ``[no digests]``
    (written before records stated them), ``[wrote]`` (``backfill``: its digests.json now
    states its parts as they are) or ``[disagree]`` with the parts; 1 where any disagrees."""
    from snnlib.pipeline import digests, records

    path = Path(folder)
    runs = [path] if records.is_done(path) else records.finished_runs(path)
    if not runs:
        raise ConfigError(f"{folder}: no finished run (give a results/<profile> or a run folder)")
    bad = records.refused(runs)
    for run_dir in runs:
        if run_dir.name in bad:
            print(f"[disagree] {run_dir.name}: {bad[run_dir.name]}")
        elif backfill and digests.backfill(run_dir):
            print(f"[wrote] {run_dir.name}: {digests.DIGESTS}")
        else:
            print(f"[{'ok' if digests.stated(run_dir) else 'no digests'}] {run_dir.name}")
    return 1 if bad else 0


def compare(args: argparse.Namespace) -> int:
    """``compare``: the reproduction report of ``args.new`` against ``args.reference``."""
    from snnlib.pipeline.records import write_csv
    from snnlib.study import reproduction

    reference, new = Path(args.reference), Path(args.new)
    for name, folder in (("REF_DIR", reference), ("NEW_DIR", new)):
        if not (folder / "tables").is_dir():
            raise ConfigError(f"{name} {folder}: no tables/ folder (expected a results/<profile>)")
    frame = reproduction.compare(reference, new)
    notes = reproduction.conditions(reference, new)
    reproduction.write_report(frame, new, args.reference_label or args.reference, notes)
    if args.fragility:
        write_csv(Path(args.fragility), reproduction.fragility(reference, new))
    print(reproduction.summary_line(frame))
    for note in notes:
        print(f"[compare] {note}")
    return 0


def declared(profile: str, overrides: dict, smoke: bool) -> list:
    """The configs a profile file declares with ``overrides``; their smoke runs if ``smoke``."""
    from snnlib.grid import expand

    if smoke:
        from snnlib.pipeline.smoke import check_overrides, smoke_config

        check_overrides(overrides)
        return [smoke_config(c) for c in expand(Path(profile), overrides)]
    return expand(Path(profile), overrides)


def grid_command(args: argparse.Namespace) -> int:
    """``grid``: run the selected runs of a profile, or print a command for each."""
    from snnlib import grid

    overrides = parse_overrides(args.overrides)
    if args.gpus_per_run > 1 and not args.print_commands:
        raise ConfigError(
            f"--gpus-per-run {args.gpus_per_run} is for --print-commands; run one command "
            "under torchrun yourself (torchrun --nproc_per_node N -m snnlib grid ...)"
        )
    if args.data_root:
        overrides["data_root"] = args.data_root
    fp_path.apply(args.fp_path)  # before any kernel runs; the runs' kernels inherit it
    configs = grid.select(declared(args.profile, overrides, args.smoke), args.only)
    if args.print_commands:
        for line in grid.commands(args.profile, configs, _passed_on(args), args.gpus_per_run):
            print(line)
        then = f"python -m snnlib figures {args.profile}" + " --smoke" * args.smoke
        print(f"# {len(configs)} commands, one a run; once they are done: {then}", file=sys.stderr)
        return 0
    print(f"[grid] writing the records under {configs[0].run_dir.parent.parent.resolve()}")
    if args.smoke:
        from snnlib.pipeline.smoke import with_data

        configs = with_data(configs)
    failures = grid.run_grid(configs, None, args.force, not args.no_notebook, wait=args.wait)
    return 1 if failures else 0


def _passed_on(args: argparse.Namespace) -> list[str]:
    """The options of this ``grid`` call that each printed command repeats."""
    options = ["--smoke"] * args.smoke + ["--force"] * args.force + ["--wait"] * args.wait
    options += ["--no-notebook"] * args.no_notebook
    if args.fp_path != "default":
        options += ["--fp-path", args.fp_path]
    if args.data_root:
        options += ["--data-root", str(Path(args.data_root).expanduser().resolve())]
    return options + list(args.overrides)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "figures":
        return figures(args.profile, args.overrides, args.smoke)
    if args.command == "calibration":
        return calibration(args.profile, args.overrides, args.smoke, args.data_root)
    if args.command == "grid":
        return grid_command(args)
    if args.command == "digests":
        return digests_command(args.folder, args.backfill)
    if args.command == "compare":
        return compare(args)
    if args.command == "run":
        config = load_config(args.config, args.overrides)
    else:
        config = load_config(None, ["profile=demo", "epochs=2", *args.overrides])
    from snnlib.experiment import run  # heavy imports only once the arguments are fine
    from snnlib.pipeline.train import distributed

    run_dir = run(config, force=getattr(args, "force", False), wait=getattr(args, "wait", False))
    if distributed()[0] == 0:  # under torchrun the other ranks have no record to show
        show(run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return dispatch(args)
    except KeyboardInterrupt:  # Ctrl-C: records are written atomically, a rerun resumes
        if args.debug:
            raise
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        from snnlib.pipeline.records import RunLocked

        first = str(err).strip() or type(err).__name__
        if isinstance(err, USAGE_ERRORS):
            print(f"error: {first}", file=sys.stderr)
            return 2
        if not isinstance(err, RunLocked):
            first = f"{type(err).__name__}: {first}\n(rerun with --debug for the traceback)"
        print(f"error: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from snnlib.tools.allocator import restart_with_settings

    restart_with_settings("snnlib", sys.argv[1:])  # once, before torch allocates anything
    sys.exit(main())
