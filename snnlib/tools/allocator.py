"""glibc allocator settings that keep freed memory for reuse, in one place.

glibc's ``malloc`` returns every large freed block to the system, so each training or
evaluation step page-faults its activations afresh; keeping freed memory makes CPU runs
faster (``docs/benchmarks.md``) and changes no number. glibc reads these variables once, at
process start, so they must be in the environment before Python starts:

* ``./run_all.sh`` exports them (``python -m snnlib.tools.allocator --shell``);
* the project's Jupyter kernel carries them in its kernelspec (``--kernel-args``);
* ``python -m snnlib`` restarts itself once with them (:func:`restart_with_settings`).

A value already in the environment wins; other C libraries ignore these variables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys

SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": "2147483647",
    "MALLOC_TRIM_THRESHOLD_": "2147483647",
    "MALLOC_TOP_PAD_": "536870912",
}


def missing(env: dict[str, str] | None = None) -> dict[str, str]:
    """The settings that ``env`` (default: this process's environment) does not set yet."""
    env = os.environ if env is None else env
    return {k: v for k, v in SETTINGS.items() if k not in env}


def applies() -> bool:
    """True on Linux with glibc, the only C library that reads these variables."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def restart_with_settings(module: str, argv: list[str]) -> None:
    """Replace this process by ``python -m module argv...`` with the missing settings added;
    return at once where they do not apply or are all set (so it restarts at most once)."""
    add = missing()
    if not add or not applies():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], {**os.environ, **add})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib.tools.allocator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    form = parser.add_mutually_exclusive_group(required=True)
    form.add_argument("--shell", action="store_true", help="`export` lines for the missing ones")
    form.add_argument(
        "--kernel-args",
        action="store_true",
        help="`--env NAME VALUE` pairs for `python -m ipykernel install`",
    )
    args = parser.parse_args(argv)
    if args.shell:
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in missing().items()))
    else:
        print(" ".join(f"--env {k} {v}" for k, v in SETTINGS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
