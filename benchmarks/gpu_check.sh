#!/usr/bin/env bash
# The prepared GPU check of the paper profile: one command, at most 5 minutes on one GPU.
#   benchmarks/gpu_check.sh [--data-root DIR]
#
# Stages (each under its own time limit, all under one deadline; each stage's time and
# outcome is printed and logged to results/bench/gpu_check.log):
#   triton-tests     the Triton LIF tests, on the GPU itself (tests/test_triton_lif.py)
#   training         samples/s of every kind of paper run -> results/bench/gpu.json
#   cost-table       docs/gpu.md's "what the paper profile costs" from gpu.json
#   paper-smoke      ./run_all.sh --profile paper --smoke on CUDA with AMP -> results/paper-smoke/
#   neurons-sj-*     the LIF at the paper's sizes vs SpikingJelly (torch, then triton kernels)
#   anytime          the anytime benchmark on CUDA -> results/bench/anytime_gpu.json
# Without a CUDA GPU it says so and exits 0 having written nothing. Exit status 1 names the
# stages that failed or ran out of time. Python: $PYTHON, else .venv/bin/python, else python3.
set -uo pipefail
cd "$(dirname "$0")/.."

TOTAL_S=${GPU_CHECK_SECONDS:-285}  # the whole check; the stages' own limits add up to less
data_root=()
if [[ ${1:-} == --data-root && -n ${2:-} ]]; then
    data_root=(--data-root "$2")
elif [[ $# -gt 0 ]]; then
    echo "usage: benchmarks/gpu_check.sh [--data-root DIR]" >&2
    exit 2
fi
PY=${PYTHON:-}
[[ -z $PY && -x .venv/bin/python ]] && PY=.venv/bin/python
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

start=$SECONDS
if ! gpu=$("$PY" -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name())' 2>/dev/null); then
    echo "[gpu_check] no CUDA GPU found (torch.cuda.is_available() is false, or torch is missing"
    echo "[gpu_check] for $PY): nothing measured, no numbers written. Run this on a GPU machine."
    exit 0
fi
echo "[gpu_check] $gpu; $TOTAL_S s in all"
mkdir -p results/bench
rm -f results/bench/gpu.json  # this run's numbers only
LOG=results/bench/gpu_check.log
echo "# gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $gpu" > "$LOG"
failed=()

# stage NAME LIMIT_S COMMAND...: run COMMAND under min(LIMIT_S, time left); log its time.
stage() {
    local name=$1 limit=$2
    shift 2
    local left=$((TOTAL_S - (SECONDS - start)))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        echo "[gpu_check] $name: skipped, no time left" | tee -a "$LOG"
        failed+=("$name (no time left)")
        return
    fi
    echo "[gpu_check] $name: starting (limit $limit s)"
    local t0=$SECONDS rc=0
    timeout --kill-after=5 "$limit" "$@" || rc=$?
    local outcome="ok"
    if ((rc == 124 || rc == 137)); then
        outcome="timed out"
        failed+=("$name (timed out)")
    elif ((rc != 0)); then
        outcome="failed (exit $rc)"
        failed+=("$name")
    fi
    echo "[gpu_check] $name: $outcome in $((SECONDS - t0)) s" | tee -a "$LOG"
}

have_spikingjelly() { "$PY" -c 'import spikingjelly' 2>/dev/null; }

# the most wanted numbers first: a stage squeezed by the deadline is a later one
stage triton-tests 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_triton_lif.py \
    tests/test_fast_lif.py::test_gpu_pure_pytorch_path
stage training 80 "$PY" benchmarks/gpu_bench.py training --batches 4 --budget-s 55
stage cost-table 10 "$PY" benchmarks/render_cost.py --doc docs/gpu.md
if ./run_all.sh --help 2>/dev/null | grep -q -- --smoke; then
    # run_all.sh uses an active environment that has snnlib's dependencies: this interpreter's
    env_dir=$("$PY" -c 'import sys; print(sys.prefix)')
    stage paper-smoke 60 env VIRTUAL_ENV="$env_dir" PATH="$env_dir/bin:$PATH" \
        ./run_all.sh --profile paper --smoke "${data_root[@]}"
else
    echo "[gpu_check] paper-smoke: skipped, this run_all.sh has no --smoke yet" | tee -a "$LOG"
    failed+=("paper-smoke (no --smoke in run_all.sh)")
fi
stage neurons-sj-torch 25 "$PY" benchmarks/gpu_bench.py neurons --sj-impl torch
if have_spikingjelly; then
    stage neurons-sj-triton 20 "$PY" benchmarks/gpu_bench.py neurons --sj-impl triton --T 8
else
    echo "[gpu_check] neurons-sj-triton: skipped, spikingjelly is not installed" | tee -a "$LOG"
fi
stage anytime 30 "$PY" benchmarks/anytime_bench.py --device cuda --name anytime_gpu --repeats 5
echo "[gpu_check] done in $((SECONDS - start)) s; log: $LOG; numbers: results/bench/gpu.json"
if ((${#failed[@]})); then
    echo "[gpu_check] not complete: ${failed[*]}" | tee -a "$LOG"
    exit 1
fi
