#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, from the repository root, everything in one call:
#
#     bash benchmarks/gpu_run.sh [OUT]        # OUT: where logs, JSON and PNGs go ($OUT)
#     bash benchmarks/gpu_run.sh --dry-run    # the same steps on the CPU (numpy, torch-cpu)
#
# With the device tool: first, here, `bash benchmarks/gpu_prepare.sh` (fills .whl/, which git
# ignores), then `run` with carry [".whl"] and the command `bash benchmarks/gpu_run.sh "$OUT"`;
# the logs, results/*.json and *.png come back from $OUT. Dry run here (2 cores): 5 min 40 s, rc 0
# (2026-11-30; the two suites are 4.8 min of it).
#
# 1. installs the wheels brought along in .whl/ (benchmarks/gpu_prepare.sh fetches them);
# 2. the suite on cupy and on torch tensors on cuda (counts in tests-*.log);
# 3. xpnet train --backend cupy (the default recipe), then that checkpoint on NumPy, then
#    the same data-parallel over every GPU (mpiexec, NCCL);
# 4. the benchmarks (ops, mnist) with CPU and GPU columns, JSON and PNGs into OUT/results;
# 5. JAX, where the machine has it (its GPU wheel is in the image; jax_step.py then measures
#    on the GPU): the compiled-step and autodiff tests, xpnet train --backend jax --compile,
#    benchmarks/jax_step.py;
# 6. a summary table last (the reply of a remote run shows its end).
# Each step's exit code is kept; the script exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT/results"
declare -A STATUS

step() {  # step NAME LOGFILE COMMAND...: run, log, remember the exit code
    local name=$1 log=$2
    shift 2
    echo "== $name: $*"
    local started=$SECONDS
    "$@" >"$OUT/$log" 2>&1
    STATUS[$name]="rc=$? $((SECONDS - started))s $log"
    tail -n 3 "$OUT/$log"
}

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src
else
    export PYTHONPATH=$PWD/src
fi
export MPLBACKEND=Agg
export XPNET_CUPY_KERNELS=1  # the CuPy kernels, tested equal to the generic code by the suite
if [ $DRY = 1 ]; then
    GPU_BACKEND=numpy TORCH_IDS=torch LIMIT=(--limit 2048) QUICK=(--quick)
else
    GPU_BACKEND=cupy TORCH_IDS=torch-cuda LIMIT=() QUICK=()
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
fi

step info info.txt python3 -m xpnet info
step "tests $GPU_BACKEND" "tests-$GPU_BACKEND.log" \
    env XPNET_TEST_BACKENDS=$GPU_BACKEND python3 -m pytest -q -p no:cacheprovider -m "not slow"
step "tests $TORCH_IDS" "tests-$TORCH_IDS.log" \
    env XPNET_TEST_BACKENDS=$TORCH_IDS python3 -m pytest -q -p no:cacheprovider -m "not slow"
step "train $GPU_BACKEND" "train-$GPU_BACKEND.log" \
    python3 -m xpnet train --backend $GPU_BACKEND --out "$OUT/run-$GPU_BACKEND" --no-progress "${LIMIT[@]}"
step "evaluate on numpy" evaluate-numpy.log \
    python3 -m xpnet evaluate "$OUT/run-$GPU_BACKEND/model.npz" --backend numpy "${LIMIT[@]}"
# data-parallel on every GPU of the machine (one rank each; NCCL for CuPy's gradients)
NGPU=1
[ $DRY = 0 ] && NGPU=$(nvidia-smi -L | wc -l)
step "distributed x$NGPU" distributed.log env PATH="/tmp/site/bin:$PATH" \
    mpiexec -n "$NGPU" python3 -m mpi4py -m xpnet train --distributed --backend $GPU_BACKEND \
    --out "$OUT/run-distributed" --no-progress "${LIMIT[@]}"
step "bench ops" bench-ops.log python3 benchmarks/ops.py --out "$OUT/results" "${QUICK[@]}"
step "bench mnist" bench-mnist.log python3 benchmarks/mnist.py --out "$OUT/results" "${QUICK[@]}"
# device operations per step of the generic path (torch.profiler, on the CPU tensors it counts)
step "launch counts" launches.log python3 benchmarks/launches.py --out "$OUT/results" "${QUICK[@]}"
if python3 -c "import jax" >/dev/null 2>&1; then
    export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX takes GPU memory as it needs it
    step "tests jax" tests-jax.log env XPNET_TEST_BACKENDS=jax python3 -m pytest -q \
        -p no:cacheprovider -m "not slow" tests/test_compiled.py tests/test_jax_autodiff.py
    step "train jax compiled" train-jax.log python3 -m xpnet train --backend jax --compile \
        --out "$OUT/run-jax" --no-progress "${LIMIT[@]}"
    step "bench jax" bench-jax.log python3 benchmarks/jax_step.py --out "$OUT/results" "${QUICK[@]}"
fi
if [ $DRY = 0 ]; then
    step "bench mnist tf32" bench-mnist-tf32.log \
        env CUPY_TF32=1 python3 benchmarks/mnist.py --out "$OUT/results-tf32"
fi

echo
echo "== summary ($OUT)"
failed=0
for name in "${!STATUS[@]}"; do
    echo "$name: ${STATUS[$name]}"
    case ${STATUS[$name]} in rc=0*) ;; *) failed=1 ;; esac
done | sort
grep -h -E "passed|failed" "$OUT"/tests-*.log | tail -n 2
grep -h "test_accuracy" "$OUT"/train-*.log "$OUT"/evaluate-numpy.log
grep -h -E "^xpnet-jax|^jax-native" "$OUT"/bench-jax.log 2>/dev/null
grep -h -E "^step b128|^epoch" "$OUT"/bench-mnist*.log
for name in "${!STATUS[@]}"; do case ${STATUS[$name]} in rc=0*) ;; *) exit 1 ;; esac; done
