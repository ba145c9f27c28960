#!/usr/bin/env bash
# Set up the environment, then run the suite or its tests.
#   ./run_all.sh          set-up + the quick profile on embedded data + figures
#   ./run_all.sh test     set-up + the test suite (what CI runs)
#   ./run_all.sh lab      set-up + JupyterLab at the walkthrough (127.0.0.1 only)
#   ./run_all.sh --help   all options
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'USAGE'
Usage: ./run_all.sh [test | lab] [--profile NAME] [--smoke] [--data-root DIR] [--only PATTERN]
                   [--force] [--wait] [--threads N] [--fp-path NAME] [--calibration] [--help]

  (no argument)      set-up, then the quick profile (embedded data, 2 CPU cores, ~4 min)
                     and every figure and table under results/quick/, then whether it
                     reproduced the committed tables: a verdict per claim in
                     tables/reproduction.{md,csv} and one line (docs/reproducing.md)
  test               set-up, then ruff and the test suite (CI), the notebooks' strip check
                     among the tests (it reads what git holds of a notebook: saved with its
                     outputs in Lab, it is stripped on `git add` by the set-up's git filter)
  lab                set-up, then JupyterLab on 127.0.0.1 (token-protected) at
                     notebooks/00_walkthrough.ipynb, with the project's kernel
  --profile NAME     run configs/NAME.yaml instead (e.g. paper: needs the datasets, a GPU)
  --smoke            every run of the profile for one epoch of 2 batches and one calibration
                     and one test batch, at its true architecture, input size, T and method,
                     into results/NAME-smoke/ (never results/NAME/); datasets missing under the
                     data root are replaced by synthetic stand-ins in their real file formats
                     (snnlib/pipeline/smoke.py). Checks the pipeline, not accuracy or speed
  --data-root DIR    folder holding the paper datasets (see snnlib/data)
  --only PATTERN     only runs whose run_id matches PATTERN (glob or substring)
  --force            rerun finished runs (default: skip them; unfinished runs resume, and
                     records without their weights, as committed, are recomputed; a
                     recomputed record equal to the committed one leaves its files untouched)
  --wait             wait for runs that another process is writing (default: name the
                     process holding a run and count the run as failed)
  --threads N        CPU threads per run (default: $OMP_NUM_THREADS, else 2, the count the
                     committed records were computed with; results are bit-identical only
                     at the same count; recorded in each run's provenance.json)
  --fp-path NAME     run on another vectorised floating-point path (default, avx2: every
                     library capped at AVX2), to measure how far each result moves with the
                     arithmetic alone; recorded in provenance.json (docs/reproducing.md)
  --calibration      also compare the paper's Top-K calibration (training data through spike
                     dropout) with the held-out one on the trained runs, into
                     tables/calibration.*: evaluation only, but it passes the whole training
                     split through every network (about 7 min for the quick profile here)

Each run executes notebooks/10_train.ipynb through papermill; its executed copy is kept
under results/<profile>/notebooks/ (ignored by git). A failing run does not stop the
others; it is named at the end and the exit status is non-zero. The figures and tables
aggregate exactly the runs configs/<profile>.yaml declares (under its out_dir).

Memory: exports MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ (unless
already set) so that glibc keeps freed memory for reuse (see snnlib/tools/allocator.py); the
notebooks' kernel and `python -m snnlib` carry the same settings.

Environment: uses the active virtual or conda environment when snnlib's dependencies are
importable there; otherwise creates .venv with pip (Python >= 3.10, chosen by $PYTHON,
default python3). Set-up is skipped on reruns unless pyproject.toml, postBuild or
snnlib/tools/lab.py changed.
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
    # what the set-up installs: the dependencies, the kernel and the lab default
    want=$(cat pyproject.toml postBuild snnlib/tools/lab.py | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        echo "[setup] .venv is up to date"
        return
    fi
    echo "[setup] installing snnlib and its dependencies into .venv with pip: PyTorch and"
    echo "[setup] torchvision (on Linux from PyPI with their CUDA libraries: about 5 GB installed,"
    echo "[setup] most of the download), JupyterLab, papermill, tonic, pandas, matplotlib, and the"
    echo "[setup] test tools (pytest, ruff, SpikingJelly, snnTorch, selenium); first run: minutes"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --progress-bar on -e '.[dev]'
    # the notebooks' kernel and JupyterLab default (the same step Binder runs)
    PYTHON="$PY" ./postBuild
    echo "$want" > "$stamp"
}

mode=run
profile=quick
threads=${OMP_NUM_THREADS:-2}
grid_args=()
figures_args=()
calibration_args=()
label=""
suffix=""
calibration=0
while [[ $# -gt 0 ]]; do
    case $1 in
        test) mode=test ;;
        lab) mode=lab ;;
        --profile) profile=${2:?--profile needs a name}; shift ;;
        --smoke) grid_args+=(--smoke); figures_args+=(--smoke); label=" (smoke)"; suffix=-smoke ;;
        --data-root) grid_args+=(--data-root "${2:?--data-root needs a folder}")
                     calibration_args+=(--data-root "$2"); shift ;;
        --only) grid_args+=(--only "${2:?--only needs a pattern}"); shift ;;
        --force) grid_args+=(--force) ;;
        --wait) grid_args+=(--wait) ;;
        --threads) threads=${2:?--threads needs a number}; shift ;;
        --fp-path) grid_args+=(--fp-path "${2:?--fp-path needs a name}"); shift ;;
        --calibration) calibration=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if ! [[ $threads =~ ^[1-9][0-9]*$ ]]; then
    echo "error: --threads $threads: expected a whole number >= 1 (e.g. --threads 2)" >&2
    exit 2
fi
if [[ ! -f configs/$profile.yaml ]]; then
    echo "error: --profile $profile: configs/$profile.yaml does not exist (have: $(ls configs | sed 's/.yaml//' | tr '\n' ' '))" >&2
    exit 2
fi

# In a git checkout, git strips notebooks' outputs on `git add` (nbstripout's filter, in this
# checkout's .git only), so a notebook saved in Lab with its outputs is committed without them.
strip_filter() {
    git rev-parse --is-inside-work-tree >/dev/null 2>&1 || return 0
    "$PY" -m nbstripout --is-installed 2>/dev/null && return 0
    if "$PY" -m nbstripout --install; then
        echo "[setup] git filter nbstripout installed: notebooks are committed without outputs"
    else
        echo "[setup] could not install the nbstripout git filter; strip notebooks by hand" >&2
    fi
}

# did this rerun reproduce the committed tables of results/$1? A verdict per claim into its
# tables/reproduction.{md,csv} and one line here (docs/reproducing.md)
compare_with_committed() {
    local dir=results/$1 reference
    if ! git rev-parse --verify -q HEAD >/dev/null 2>&1 || [[ -z "$(git ls-tree HEAD -- "$dir/tables")" ]]; then
        echo "[run_all] $dir has no committed version (no git checkout, or never committed): nothing to compare with"
        return 0
    fi
    reference=$(mktemp -d)
    # the tables, and each run's provenance (the thread count and CPU the numbers were made with)
    git archive HEAD "$dir/tables" ":(glob)$dir/runs/*/provenance.json" | tar -x -C "$reference"
    "$PY" -m snnlib compare "$reference/$dir" "$dir" --reference-label "the committed $dir (git HEAD)" \
        || { local failed=$?; rm -rf "$reference"; return $failed; }
    rm -rf "$reference"
}

setup
strip_filter
# glibc keeps freed memory for reuse (snnlib/tools/allocator.py says why); a value already set wins
eval "$("$PY" -m snnlib.tools.allocator --shell)"
# torch reads the thread count from here (each notebook kernel inherits it): a sum split over
# another number of threads rounds differently, so the count is pinned and recorded.
export OMP_NUM_THREADS=$threads
case $mode in
    test)
        "$PY" -m ruff check snnlib tests benchmarks examples
        "$PY" -m pytest -q
        ;;
    lab)
        # 127.0.0.1 only, kernels over Unix sockets (snnlib/tools/lab.py says why)
        exec "$PY" -m snnlib.tools.lab notebooks/00_walkthrough.ipynb
        ;;
    run)
        start=$(date +%s)
        status=0
        echo "[run_all] profile $profile$label with $threads CPU thread(s) per run"
        "$PY" -m snnlib grid "configs/$profile.yaml" "${grid_args[@]}" || status=$?
        [[ $status -ne 130 ]] || exit 130  # Ctrl-C (it said so): stop here, a rerun resumes
        # the runs the profile declares, under its out_dir (a failed figures step counts too)
        "$PY" -m snnlib figures "configs/$profile.yaml" "${figures_args[@]}" || status=$((status == 0 ? $? : status))
        [[ $status -ne 130 ]] || exit 130
        compare_with_committed "$profile$suffix" || status=$((status == 0 ? $? : status))
        if [[ $calibration -eq 1 ]]; then
            # the paper's Top-K calibration against the held-out one (evaluation of the trained runs)
            "$PY" -m snnlib calibration "configs/$profile.yaml" "${figures_args[@]}" "${calibration_args[@]}" || status=$((status == 0 ? $? : status))
        fi
        echo "[run_all] profile $profile$label finished in $(( $(date +%s) - start )) s (exit status $status)"
        exit $status
        ;;
esac
