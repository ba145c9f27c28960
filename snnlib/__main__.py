"""Command line.

python -m snnlib run CONFIG.yaml [key=value ...] [--force]   one experiment
python -m snnlib grid configs/quick.yaml [--only PATTERN] [--force] [--data-root DIR]
python -m snnlib figures results/quick                       every figure and table
python -m snnlib demo [key=value ...]                        a few-minute QCFS run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from snnlib.config import Config, ConfigError, parse_overrides


def load_config(path: str | None, overrides: list[str]) -> Config:
    values = {}
    if path is not None:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values)}")
    values.update(parse_overrides(overrides))
    return Config.from_dict(values)


def show(run_dir: Path) -> None:
    from snnlib.records import load_run

    record = load_run(run_dir)
    print(record["per_timestep"].to_string(index=False))
    print(record["cutoff"].query("policy == 'topk'").to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one experiment from a YAML config")
    p.add_argument("config", help="YAML file of config keys (see snnlib.config.Config)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--force", action="store_true", help="rerun a finished run")
    p = sub.add_parser("grid", help="run every experiment of a profile through papermill")
    p.add_argument("profile", help="configs/<profile>.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    p.add_argument("--only", help="run only run_ids matching this glob or substring")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("--data-root", help="folder holding the paper datasets")
    p.add_argument("--no-notebook", action="store_true", help="call snnlib directly")
    p = sub.add_parser("figures", help="write every figure and table of a profile")
    p.add_argument("profile_dir", help="results/<profile>")
    p = sub.add_parser("demo", help="a few-minute QCFS run on the embedded MNIST digits")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    # key=value overrides may also follow the options: collect them from the leftovers
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]

    try:
        if args.command == "figures":
            from snnlib.figures import make_all

            written = make_all(Path(args.profile_dir))
            print(f"wrote {len(written)} files under {args.profile_dir}")
            return 0
        if args.command == "grid":
            from snnlib.grid import expand, run_grid

            overrides = parse_overrides(args.overrides)
            if args.data_root:
                overrides["data_root"] = args.data_root
            failures = run_grid(
                expand(Path(args.profile), overrides), args.only, args.force, not args.no_notebook
            )
            return 1 if failures else 0
        from snnlib.experiment import run  # heavy imports only once the arguments are fine

        if args.command == "run":
            run_dir = run(load_config(args.config, args.overrides), force=args.force)
        else:
            run_dir = run(load_config(None, ["profile=demo", "epochs=2", *args.overrides]))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from snnlib.train import distributed

    if distributed()[0] == 0:  # under torchrun the other ranks have no record to show
        show(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
