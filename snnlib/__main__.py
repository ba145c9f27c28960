"""Command line.

python -m snnlib run CONFIG.yaml [key=value ...] [--force] [--wait]   one experiment
python -m snnlib grid configs/quick.yaml [--only PATTERN] [--force] [--data-root DIR]
python -m snnlib figures configs/quick.yaml   every figure and table of the runs it declares
python -m snnlib figures results/scratch      ... or of every finished run in a folder
python -m snnlib calibration configs/quick.yaml   the paper's calibration vs the held-out one
python -m snnlib demo [key=value ...]                               a few-minute QCFS run

A run whose config names no ``profile`` goes to ``results/scratch/``, never into a named
profile. Errors are one short message; ``--debug`` shows the traceback. Exit status: 0 done,
1 failed (a run, or another process holds the run), 2 a usage error (arguments, config, YAML,
missing or incomplete data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snnlib import paths
from snnlib.config import Config, ConfigError, parse_overrides
from snnlib.data.errors import DatasetNotFoundError
from snnlib.data.validate import IncompleteDatasetError
from snnlib.yamlfile import YAMLFileError, load_yaml

USAGE_ERRORS = (ConfigError, YAMLFileError, DatasetNotFoundError, IncompleteDatasetError)


def load_config(path: str | None, overrides: list[str]) -> Config:
    """The config of ``path`` (a YAML mapping) with ``overrides`` (a config that names no
    profile is in the ``scratch`` profile, :class:`~snnlib.config.Config`'s default)."""
    values = {} if path is None else load_yaml(path) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    values.update(parse_overrides(overrides))
    return Config.from_dict(values)


def show(run_dir: Path) -> None:
    from snnlib.records import load_run

    record = load_run(run_dir)
    print(record["per_timestep"].to_string(index=False))
    print(record["cutoff"].query("policy == 'topk'").to_string(index=False))


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
    p.add_argument("--data-root", help="folder holding the paper datasets")
    p.add_argument("--no-notebook", action="store_true", help="call snnlib directly")
    p = sub.add_parser("figures", help="write every figure and table", parents=[common])
    p.add_argument("profile", help="configs/<profile>.yaml, or a results/<profile> folder")
    p.add_argument("overrides", nargs="*", help="key=value overrides (e.g. out_dir=...)")
    p = sub.add_parser(
        "calibration",
        help="the paper's Top-K calibration against the held-out one (needs model.pt)",
        parents=[common],
    )
    p.add_argument("profile", help="configs/<profile>.yaml, or a results/<profile> folder")
    p.add_argument("overrides", nargs="*", help="key=value overrides (e.g. out_dir=...)")
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


def _profile(target: str, overrides: list[str]) -> tuple[Path, list | None]:
    """``(profile folder, declared configs or None)`` of a profile YAML or a results folder
    (with the declaration of ``configs/<folder name>.yaml`` when the repository has one)."""
    from snnlib.grid import expand

    path = Path(target)
    values = parse_overrides(overrides)
    if path.is_dir():
        declared_by = paths.CHECKOUT / "configs" / f"{path.name}.yaml"
        values.setdefault("out_dir", str(path.parent))
    else:
        declared_by = path
    if not declared_by.is_file():
        if not path.is_dir():
            raise ConfigError(f"{target}: no such profile file or results folder")
        print(f"[{path}] no profile file declares its runs; using every finished run")
        return path, None
    declared = expand(declared_by, values)
    profile_dir = Path(declared[0].out_dir) / declared[0].profile
    print(f"[{profile_dir}] the {len(declared)} runs declared by {declared_by}")
    return profile_dir, declared


def figures(target: str, overrides: list[str]) -> int:
    """``figures``: every figure and table of the runs a profile declares (or of every
    finished run of a folder), the convergence of converted runs, and the regulariser study
    where runs pair up across α."""
    from snnlib.report import write_all

    profile_dir, declared = _profile(target, overrides)
    written = write_all(profile_dir, declared=declared)
    print(f"wrote {len(written)} files under {profile_dir}")
    return 0


def calibration(target: str, overrides: list[str]) -> int:
    """``calibration``: the paper's calibration against the held-out one, on the trained
    networks of a profile (evaluation only)."""
    from snnlib.calibration_study import write_study

    profile_dir, _ = _profile(target, overrides)
    written = write_study(profile_dir)
    print(f"wrote {len(written)} files under {profile_dir}")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    if args.command in ("figures", "calibration"):
        return {"figures": figures, "calibration": calibration}[args.command](
            args.profile, args.overrides
        )
    if args.command == "grid":
        from snnlib.grid import expand, run_grid

        overrides = parse_overrides(args.overrides)
        if args.data_root:
            overrides["data_root"] = args.data_root
        configs = expand(Path(args.profile), overrides)
        failures = run_grid(configs, args.only, args.force, not args.no_notebook)
        return 1 if failures else 0
    if args.command == "run":
        config = load_config(args.config, args.overrides)
    else:
        config = load_config(None, ["profile=demo", "epochs=2", *args.overrides])
    from snnlib.experiment import run  # heavy imports only once the arguments are fine
    from snnlib.train import distributed

    run_dir = run(config, force=getattr(args, "force", False), wait=getattr(args, "wait", False))
    if distributed()[0] == 0:  # under torchrun the other ranks have no record to show
        show(run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return dispatch(args)
    except Exception as err:
        if args.debug:
            raise
        from snnlib.records import RunLocked

        first = str(err).strip() or type(err).__name__
        if isinstance(err, USAGE_ERRORS):
            print(f"error: {first}", file=sys.stderr)
            return 2
        if not isinstance(err, RunLocked):
            first = f"{type(err).__name__}: {first}\n(rerun with --debug for the traceback)"
        print(f"error: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from snnlib.allocator import restart_with_settings

    restart_with_settings("snnlib", sys.argv[1:])  # once, before torch allocates anything
    sys.exit(main())
