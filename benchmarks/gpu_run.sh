#!/usr/bin/env bash
# The GPU run, on a lent GPU machine (H100/H200 with torch, triton, pandas, matplotlib and
# pytest-benchmark installed, no package registry): the GPU tests, the layer grid, the
# end-to-end training-step benchmark and the report. Run from anywhere:
#
#     bash benchmarks/gpu_run.sh        # everything in one call of ≤ 555 s (+ start-up)
#     bash benchmarks/gpu_run.sh 1      # or in two calls of ≤ 315 s each, for a device budget
#     bash benchmarks/gpu_run.sh 2      #   of 15 minutes, start-up included
#     bash benchmarks/gpu_run.sh traced # ≤ 315 s: the opt-in TRACE_KERNELS path, measured
#
# Each part starts with a preflight (one layer through the Triton kernels) and stops if it
# fails, then compiles its layer grid's kernels ahead, beside the GPU tests. Part 1: the fast
# GPU tests, the core of the layer grid (what the figures and every layer goal but one need),
# eager training steps, profiles of eager steps (where a step's time goes: kernels or host),
# the report. Part 2: the slow GPU tests
# (torch.compile, CUDA graphs, > 2³¹ elements), the rest of the grid (the compiled reference
# first), compiled and CUDA-graph training steps, host overhead, the report. `all` runs both,
# with the full grid in one pytest run. Part `traced` tries mn_triton.ops.TRACE_KERNELS
# (inductor launching the kernels of compiled layers itself; off by default until a GPU has
# run it): its GPU tests, the host time of a compiled layer call with the ops opaque and with
# their kernels traced, and LeNet's compiled training step both ways, beside BatchNorm's. Its
# rows go to reports/raw/ (train_step-traced-* and train_step-opaque-*), not to the report's
# data: SPEC §7's exec column has no value for them.
#
# Every stage runs under `timeout` and the suites stop starting new cases before their limit,
# so a stage that overruns still leaves the others' data (rows are appended as measured).
# Limits in seconds can be changed through the environment: GPU_TESTS_S, SLOW_TESTS_S,
# LAYERS_S, TRAIN_S, HOST_S, REPORT_S, PROFILE_S, WARM_WAIT_S; a stage's limit of 0 skips
# it. After every stage reports/ is packed into $OUT/reports.tar.gz, with the log beside it,
# when $OUT is set: files come back from the GPU machine (at most 8 files), even from a call
# cut short. Unpack it here with
#     tar -xzf <files_at>/reports.tar.gz
# The machine receives the working tree without .git: name the commit in the command, as in
#     MN_GIT_SHA=<sha> bash benchmarks/gpu_run.sh 1
# or the rows' git_sha column says "unknown".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PART=${1:-all}
case "$PART" in
    all | 1 | 2 | traced) ;;
    *) echo "usage: bash benchmarks/gpu_run.sh [all|1|2|traced]" >&2; exit 2 ;;
esac
# python3: on the lent machines the interpreter that holds PyTorch; `python` may be absent.
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a stage killed by its time limit still leaves its output
unset TRITON_INTERPRET
RUN_ID=${MN_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
[ "$PART" = all ] || RUN_ID+="-part$PART"
export MN_RUN_ID=$RUN_ID
# Stage limits in seconds, per part; each can be set in the environment instead. The
# training steps' limit must let the first (model, exec) group start: LeNet's 7 eager variants
# are guessed at 35 s, a compiled pair at 50 s (train_step.py's --max-seconds is the limit
# less 20). A compiled-reference case starts only with 45 s of the grid's budget left, then
# with 1.25× the slowest compiled case so far (benchmarks/conftest.py).
# limits=(GPU_TESTS_S SLOW_TESTS_S LAYERS_S TRAIN_S HOST_S REPORT_S PROFILE_S WARM_WAIT_S
# OPAQUE_TRAIN_S); PREFLIGHT_S 30. WARM_WAIT_S: how much longer than the tests' limit the kernel warm-up beside
# them may take. Each part keeps 5 s of its 315 s for what the limits leave out (packing
# reports/ after each stage). A stage that ignores SIGTERM is killed 10 s after its limit,
# which that margin does not cover; pytest and our scripts end on SIGTERM.
case "$PART" in
    # all: the GPU tests 90 s (69 of them took 74 s alone at 38c3cea, beside no warm-up; 79
    # now), 5 s of it from the layer grid, whose compiled-reference cases come last.
    all) limits=(90 50 180 120 25 25 20 15 0) ;;  # 555 s with the preflight
    1) limits=(70 0 90 60 0 20 25 15 0) ;;  # 310 s with the preflight
    2) limits=(0 40 100 95 15 20 0 10 0) ;;  # 310 s with the preflight
    # traced: its GPU tests; TRAIN_S for the compiled steps with the kernels traced (BatchNorm
    # and MN: a compiled pair), OPAQUE_TRAIN_S for MN's with the ops opaque; HOST_S for host
    # times of compiled layer calls, which compiles 5 small graphs. No layer grid, no report.
    traced) limits=(65 0 0 75 80 0 0 5 50) ;;  # 305 s with the preflight
esac
GPU_TESTS_S=${GPU_TESTS_S:-${limits[0]}}
SLOW_TESTS_S=${SLOW_TESTS_S:-${limits[1]}}
LAYERS_S=${LAYERS_S:-${limits[2]}}
TRAIN_S=${TRAIN_S:-${limits[3]}}
HOST_S=${HOST_S:-${limits[4]}}
REPORT_S=${REPORT_S:-${limits[5]}}
PROFILE_S=${PROFILE_S:-${limits[6]}}
WARM_WAIT_S=${WARM_WAIT_S:-${limits[7]}}
OPAQUE_TRAIN_S=${OPAQUE_TRAIN_S:-${limits[8]}}
PREFLIGHT_S=${PREFLIGHT_S:-30}
mkdir -p reports/data reports/raw reports/figures
LOG="reports/raw/gpu_run-$RUN_ID.log"
exec > >(tee -a "$LOG") 2>&1
SUMMARY=()
FAILED_STAGES=()
LAST_RC=0

# Pack reports/ (with the summary so far) into $OUT, if set.
save() {
    printf '%s\n' "${SUMMARY[@]}" > "reports/raw/gpu_run-$RUN_ID.summary.txt"
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        # Into a part file, then renamed: a call cut short mid-tar keeps the last whole archive.
        tar -czf "$OUT/reports.tar.gz.part" reports && mv -f "$OUT/reports.tar.gz.part" "$OUT/reports.tar.gz"
        cp "$LOG" "$OUT/gpu_run.log"
    fi
}

# stage NAME LIMIT_S CMD...: run CMD under a time limit; note how it ended in SUMMARY.
stage() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    LAST_RC=0
    if [ "$limit" -le 0 ]; then  # `timeout 0` would mean no limit at all: skip the stage
        echo "== $name skipped (limit 0)"
        SUMMARY+=("$name: skipped (limit 0)")
        return
    fi
    echo "== $name (limit ${limit} s): $*"
    timeout -k 10 "$limit" "$@" || LAST_RC=$?
    local note="$name: exit $LAST_RC after $((SECONDS - start)) s"
    if [ "$LAST_RC" = 124 ] || [ "$LAST_RC" = 137 ]; then
        note+=" (TIMED OUT)"
    fi
    [ "$LAST_RC" = 0 ] || FAILED_STAGES+=("$name")
    SUMMARY+=("$note")
    save
}

# GPU tests run the real kernels: TRITON_INTERPRET=0 overrides tests/conftest.py's default.
# -v: each outcome is printed as it comes, so a stage cut short still says what passed.
# Most of a GPU test's time is Triton compiling its kernels (each test has its own dtype,
# layout, K...), which is CPU work: the tests run in JOBS processes (TEST_JOBS, or
# SLOW_TEST_JOBS for the slow ones, which hold more memory each) where pytest-xdist is
# installed, as on the lent machines.
TEST_JOBS=${TEST_JOBS:-6}
SLOW_TEST_JOBS=${SLOW_TEST_JOBS:-3}
XDIST_CHECK="import xdist  # gpu_run.sh: is pytest-xdist there?"
gpu_tests() {  # NAME LIMIT MARKS JOBS [PYTEST OPTIONS]
    local name=$1 limit=$2 marks=$3 jobs=$4 parallel=()
    if [ "$jobs" -gt 1 ] && "$PY" -c "$XDIST_CHECK" 2>/dev/null; then
        parallel=(-n "$jobs")
    fi
    stage "$name" "$limit" env TRITON_INTERPRET=0 \
        "$PY" -m pytest tests -m "$marks" -v --tb=short -p no:cacheprovider "${parallel[@]}" \
        "${@:5}"
}

# The suite stops starting new cases 25 s before its limit, so it ends cleanly (its JSON and
# summary written); each grid lists its cases in priority order. (A budget of 0 or less
# would mean none at all: under 26 s the grid gets 1 s.)
layer_grid() {
    local grid=$1
    stage "layer grid ($grid)" "$LAYERS_S" "$PY" -m pytest benchmarks/test_layers.py \
        --benchmark-only -v -rs -p no:cacheprovider --grid "$grid" \
        --time-budget "$((LAYERS_S > 26 ? LAYERS_S - 25 : 1))" \
        --benchmark-json="reports/raw/pytest-benchmark-$RUN_ID.json" \
        --benchmark-columns=min,median,max,rounds
}

training_steps() {
    local execs=$1 before
    before=$(cache_entries)
    stage "training steps ($execs)" "$TRAIN_S" "$PY" benchmarks/train_step.py \
        --execs "$execs" --max-seconds "$((TRAIN_S - 20))"
    # Entries added here: kernels the warm-up missed, and inductor's own (compiled steps).
    SUMMARY+=("Triton cache entries: $before before the training steps, $(cache_entries) after")
}

# Eager steps of BatchNorm and MN under torch.profiler: kernels and their device time per
# step against the step time. Its own stage, after the timed steps, so a profiler that
# misbehaves on this machine costs only its own rows.
step_profiles() {
    stage "step profiles (eager)" "$PROFILE_S" "$PY" benchmarks/step_profile.py \
        --execs eager --max-seconds "$((PROFILE_S - 10))"
}

# Triton compiles each kernel specialisation at its first launch, one after another: on a
# 2-core CPU the core grid's and the training steps' layer calls took 437 s of compiling in
# all (1–38 s each; benchmarks/warm_kernels.py), more than the layer stage's whole budget.
# So they are compiled ahead into Triton's disk cache, in parallel processes, while the
# GPU tests run (which need the GPU, and little of the CPU). The warm-up's own limit is the
# tests' limit plus WARM_WAIT_S, from its start: the layer grid starts at most WARM_WAIT_S
# later than it would after tests that used their whole limit. The cache's entry count before
# and after the layer grid goes to the summary: entries added there are specialisations the
# warm-up missed, or (Triton 3.6 and older) the small C launcher Triton builds for a kernel
# signature at its first real launch, which a compile-only warm-up never makes (~0.4 s each).
WARM_PID=""
WARM_MODELS=lenet,resnet20,resnet56
# GRID BESIDE_S BESIDE_JOBS [OPTIONS]: the limit and the processes of the tests it runs
# beside; OPTIONS go to warm_kernels.py (--host-overhead and --compiled-steps where those
# stages run). The training steps of WARM_MODELS.
warm_kernels_start() {
    local grid=$1 beside=$2 beside_jobs=$3 jobs
    if [ "$((beside + WARM_WAIT_S))" -le 0 ]; then
        echo "== kernel warm-up skipped (no time for it: its limit would be 0)"
        return
    fi
    jobs=$(( $(nproc 2>/dev/null || echo 4) - beside_jobs - 1 ))
    jobs=$((jobs > 2 ? jobs : 2))
    echo "== kernel warm-up in the background: grid $grid and the training steps, $jobs processes"
    # At a lower priority: the tests beside it run under a time limit, and the slow ones
    # compile with inductor's own worker processes.
    timeout -k 5 "$((beside + WARM_WAIT_S))" nice -n 10 "$PY" benchmarks/warm_kernels.py \
        --grid "$grid" --models "$WARM_MODELS" --jobs "$jobs" "${@:4}" \
        > "reports/raw/warm_kernels-$RUN_ID.log" 2>&1 &
    WARM_PID=$!
}

warm_kernels_wait() {
    local start=$SECONDS rc=0
    [ -n "$WARM_PID" ] || return 0
    echo "== kernel warm-up wait (until its deadline: the tests' limit + ${WARM_WAIT_S} s)"
    wait "$WARM_PID" || rc=$?
    local last
    last=$(tail -n 1 "reports/raw/warm_kernels-$RUN_ID.log" 2>/dev/null)
    SUMMARY+=("kernel warm-up: exit $rc, the next stage waited $((SECONDS - start)) s: $last")
}

# torch.compile of a training step (model and loss) takes tens of seconds (LeNet 26 s on an
# H200's host; the ResNets longer), one compile after another inside the training stage's
# budget, which could not hold them all. So each compiled variant (model × exec × norm) runs
# once ahead, all in parallel beside the kernel warm-up: `train_step.py --warm-compile`, one
# step and no rows, fills inductor's and Triton's disk caches, and the timed stage compiles
# from them (LeNet: 5 s). They use the GPU, so they end (or are stopped, at the kernel
# warm-up's deadline) before the layer grid starts. Their logs go into one file.
COMPILE_PIDS=()
COMPILE_LOGS=""
# COMPILE_MODELS: the models compiled ahead; MN's steps once per value of TRACE_WAYS (the
# MN_TRITON_TRACE_KERNELS each is compiled with, as the timed stage will run it: part traced
# times both ways, the others the environment's).
COMPILE_MODELS="lenet resnet20 resnet56"
TRACE_WAYS=${MN_TRITON_TRACE_KERNELS:-0}
compile_warm_start() {  # LIMIT EXECS: one process per compiled variant
    local limit=$1 execs=$2 model exec norm way ways
    if [ "$limit" -le 0 ]; then
        return
    fi
    COMPILE_LOGS=$(mktemp -d)
    echo "== compile warm-up in the background: $execs steps, one process per variant"
    for model in $COMPILE_MODELS; do
        for exec in ${execs//,/ }; do
            for norm in batchnorm mn_triton; do
                ways=0
                [ "$norm" = mn_triton ] && ways=$TRACE_WAYS
                for way in $ways; do
                    MN_TRITON_TRACE_KERNELS=$way timeout -k 5 "$limit" nice -n 10 "$PY" \
                        benchmarks/train_step.py --warm-compile \
                        --models "$model" --execs "$exec" --norms "$norm" \
                        > "$COMPILE_LOGS/$model-$exec-$norm-trace$way.log" 2>&1 &
                    COMPILE_PIDS+=($!)
                done
            done
        done
    done
}

compile_warm_wait() {
    local start=$SECONDS ok=0 pid
    [ "${#COMPILE_PIDS[@]}" -gt 0 ] || return 0
    for pid in "${COMPILE_PIDS[@]}"; do
        wait "$pid" && ok=$((ok + 1))
    done
    for log in "$COMPILE_LOGS"/*.log; do
        printf '== %s\n' "$(basename "$log" .log)"
        cat "$log"
    done > "reports/raw/warm_compile-$RUN_ID.log"
    rm -rf "$COMPILE_LOGS"
    SUMMARY+=("compile warm-up: $ok of ${#COMPILE_PIDS[@]} variants compiled; the next stage \
waited $((SECONDS - start)) s more for it")
    COMPILE_PIDS=()
}

cache_entries() {
    find "${TRITON_CACHE_DIR:-$HOME/.triton/cache}" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

layer_grid_warmed() {
    local before
    warm_kernels_wait
    compile_warm_wait
    before=$(cache_entries)
    layer_grid "$1"
    SUMMARY+=("Triton cache entries: $before before the layer grid, $(cache_entries) after")
}

# Part traced: compiled training steps of TRACED_MODELS with ops.TRACE_KERNELS on (its
# BatchNorm step too, which the switch does not change, for the ratio), then MN's with it off,
# on the same machine minutes apart. Rows into reports/raw/ (see the header).
TRACED_MODELS=${TRACED_MODELS:-lenet}
traced_training_steps() {
    stage "training steps (compiled, kernels traced)" "$TRAIN_S" \
        env MN_REPORT_DATA=reports/raw MN_TRITON_TRACE_KERNELS=1 "$PY" benchmarks/train_step.py \
        --execs compiled --models "$TRACED_MODELS" --norms batchnorm,mn_triton \
        --out "train_step-traced-$RUN_ID" --max-seconds "$((TRAIN_S - 20))"
    stage "training steps (compiled, ops opaque)" "$OPAQUE_TRAIN_S" \
        env MN_REPORT_DATA=reports/raw MN_TRITON_TRACE_KERNELS=0 "$PY" benchmarks/train_step.py \
        --execs compiled --models "$TRACED_MODELS" --norms mn_triton \
        --out "train_step-opaque-$RUN_ID" --max-seconds "$((OPAQUE_TRAIN_S - 20))"
}

# One layer through the Triton kernels on the GPU before anything else: if kernels cannot
# compile or launch here (no gcc, no Python headers, no driver), every later stage would fail
# case by case and spend the device budget doing so.
PREFLIGHT='import torch, triton, mn_triton
print("torch", torch.__version__, "triton", triton.__version__, "cuda", torch.version.cuda)
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name())
x = torch.randn(8, 4, 6, 6, device="cuda", requires_grad=True)
assert mn_triton.backend.uses_kernels(x), "mn_triton would not use its Triton kernels"
y = mn_triton.ModeNorm2d(4).cuda()(x)
y.square().sum().backward()
torch.cuda.synchronize()
assert torch.isfinite(y).all() and torch.isfinite(x.grad).all(), "non-finite results"
print("preflight ok: a ModeNorm2d forward and backward through the Triton kernels")'

echo "== run $RUN_ID (part $PART, $PY)"
echo "== commit: ${MN_GIT_SHA:-(MN_GIT_SHA unset: from .git if present, else unknown)}"
nvidia-smi -L || echo "nvidia-smi not available"
stage "preflight" "$PREFLIGHT_S" "$PY" -c "$PREFLIGHT"
if [ "$LAST_RC" != 0 ]; then
    echo "== preflight failed: the other stages would fail too; stopping"
    printf '  %s\n' "${SUMMARY[@]}"
    exit 1
fi

case "$PART" in
    all)
        warm_kernels_start full "$GPU_TESTS_S" "$TEST_JOBS" --host-overhead --compiled-steps
        compile_warm_start "$((GPU_TESTS_S + WARM_WAIT_S))" compiled,cudagraph
        gpu_tests "gpu tests" "$GPU_TESTS_S" "gpu and not slow" "$TEST_JOBS"
        layer_grid_warmed full
        training_steps eager,compiled,cudagraph
        step_profiles
        # Alone at the end: one process per slow test (7; the 2^31-element one peaks at ~40 GB,
        # the others 1-2 GB), so that a limit cuts none of the compile-heavy traced ones.
        gpu_tests "slow gpu tests" "$SLOW_TESTS_S" "gpu and slow" "${SLOW_TEST_JOBS_ALONE:-7}"
        ;;
    1)
        warm_kernels_start core "$GPU_TESTS_S" "$TEST_JOBS"
        gpu_tests "gpu tests" "$GPU_TESTS_S" "gpu and not slow" "$TEST_JOBS"
        layer_grid_warmed core
        training_steps eager
        step_profiles
        ;;
    2)
        warm_kernels_start extra "$SLOW_TESTS_S" "$SLOW_TEST_JOBS" --host-overhead --compiled-steps
        compile_warm_start "$((SLOW_TESTS_S + WARM_WAIT_S))" compiled,cudagraph
        gpu_tests "slow gpu tests" "$SLOW_TESTS_S" "gpu and slow" "$SLOW_TEST_JOBS"
        layer_grid_warmed extra
        training_steps compiled,cudagraph
        ;;
    traced)
        # Beside the tests: the kernel warm-up compiles what the opaque steps and
        # host_overhead.py's calls launch (inductor compiles the traced ones itself), and each
        # compiled step (BatchNorm's, MN's both ways) is compiled ahead into the caches.
        WARM_MODELS=$TRACED_MODELS COMPILE_MODELS=${TRACED_MODELS//,/ } TRACE_WAYS="0 1"
        warm_kernels_start none "$GPU_TESTS_S" 2 --host-overhead --compiled-steps
        compile_warm_start "$((GPU_TESTS_S + WARM_WAIT_S))" compiled
        gpu_tests "traced gpu tests" "$GPU_TESTS_S" "gpu" 3 -k traced  # 3 tests: one process each
        warm_kernels_wait
        compile_warm_wait
        traced_training_steps
        stage "host overhead (compiled)" "$HOST_S" "$PY" benchmarks/host_overhead.py \
            --calls 200 --compiled
        ;;
esac
if [ "$PART" = all ] || [ "$PART" = 2 ]; then
    # Host time per layer call (Python side of the Triton path), into the log for NOTES.md.
    stage "host overhead" "$HOST_S" "$PY" benchmarks/host_overhead.py --calls 200
fi
stage "report" "$REPORT_S" "$PY" benchmarks/report.py

echo "== summary"
printf '  %s\n' "${SUMMARY[@]}"
if [ "${#FAILED_STAGES[@]}" -gt 0 ]; then  # every stage ran; say which did not end well
    # (before the last save, so that the log copied into $OUT says it too)
    echo "== stages that failed or timed out: ${FAILED_STAGES[*]}"
fi
save
[ -n "${OUT:-}" ] && echo "== packed reports/ into $OUT/reports.tar.gz"
[ "${#FAILED_STAGES[@]}" -gt 0 ] && exit 3
exit 0
