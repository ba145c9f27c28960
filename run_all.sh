#!/usr/bin/env bash
# Set up the environment, then run the suite or its tests.
#   ./run_all.sh          set-up + the quick profile on embedded data + figures
#   ./run_all.sh test     set-up + the test suite (what CI runs)
#   ./run_all.sh --help   all options
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'USAGE'
Usage: ./run_all.sh [test] [--help]

  (no argument)  create/refresh the environment, then run the quick demo on embedded data
  test           create/refresh the environment, then run ruff and the test suite

Environment: uses the active virtual environment or conda environment when snnlib's
dependencies are importable there; otherwise creates .venv with pip (Python >= 3.10,
chosen by $PYTHON, default python3). Set-up is skipped on reruns unless pyproject.toml
changed.
USAGE
}

setup() {
    if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ]] && python -c "import snnlib, torch, tonic" 2>/dev/null \
        && [[ "$(python -c 'import sys; print(sys.prefix)')" != "$PWD/.venv" ]]; then
        PY=python
        echo "[setup] using the active environment: $(python -c 'import sys; print(sys.prefix)')"
        return
    fi
    local base=${PYTHON:-python3}
    if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "error: $base is $("$base" --version 2>&1); snnlib needs Python >= 3.10 (set PYTHON=...)" >&2
        exit 2
    fi
    [[ -x .venv/bin/python ]] || "$base" -m venv .venv
    PY=.venv/bin/python
    local stamp=.venv/.snnlib-setup
    local want
    want=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())' < pyproject.toml)
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        echo "[setup] .venv is up to date"
        return
    fi
    echo "[setup] installing snnlib and its dependencies into .venv (first run: a few minutes)"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -e '.[dev]'
    "$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
}

mode=run
for arg in "$@"; do
    case $arg in
        test) mode=test ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

setup
case $mode in
    test)
        "$PY" -m ruff check snnlib tests benchmarks
        "$PY" -m pytest -q
        ;;
    run)
        "$PY" -m snnlib demo
        ;;
esac
