#!/usr/bin/env bash
# One call on a lent GPU machine (H100/H200 with torch, triton, pandas, matplotlib and
# pytest-benchmark installed, no package registry): the GPU tests, the full layer grid, the
# end-to-end training-step benchmark and the report, in under ten minutes. Run from anywhere:
#
#     bash benchmarks/gpu_run.sh
#
# Every stage runs under `timeout`, so a stage that overruns still leaves the others' data
# (rows are appended as they are measured). Limits in seconds, changeable through the
# environment: GPU_TESTS_S, LAYERS_S, TRAIN_S, HOST_S, REPORT_S (defaults sum to 560 s, which
# leaves ~40 s of the device call's 600 for start-up). After every stage reports/ (CSV rows,
# figures, README.md, raw logs and pytest-benchmark JSON) is copied into $OUT when it is set:
# that is how files come back from the GPU machine, even from a call cut short.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a stage killed by its time limit still leaves its output
unset TRITON_INTERPRET
export MN_RUN_ID=${MN_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
GPU_TESTS_S=${GPU_TESTS_S:-90}
LAYERS_S=${LAYERS_S:-250}
TRAIN_S=${TRAIN_S:-150}
HOST_S=${HOST_S:-25}
REPORT_S=${REPORT_S:-45}
mkdir -p reports/data reports/raw reports/figures
LOG="reports/raw/gpu_run-$MN_RUN_ID.log"
exec > >(tee -a "$LOG") 2>&1
SUMMARY=()
LAST_RC=0

# Copy reports/ (with the summary so far) into $OUT, if set.
save() {
    printf '%s\n' "${SUMMARY[@]}" > "reports/raw/gpu_run-$MN_RUN_ID.summary.txt"
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        cp -r reports "$OUT/"
    fi
}

# stage NAME LIMIT_S CMD...: run CMD under a time limit; note how it ended in SUMMARY.
stage() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "== $name (limit ${limit} s): $*"
    LAST_RC=0
    timeout -k 10 "$limit" "$@" || LAST_RC=$?
    local note="$name: exit $LAST_RC after $((SECONDS - start)) s"
    if [ "$LAST_RC" = 124 ] || [ "$LAST_RC" = 137 ]; then
        note+=" (TIMED OUT)"
    fi
    SUMMARY+=("$note")
    save
}

echo "== run $MN_RUN_ID"
nvidia-smi -L || echo "nvidia-smi not available"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__,
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO GPU')"

# GPU tests run the real kernels: TRITON_INTERPRET=0 overrides tests/conftest.py's default.
# Exit code 5 means no test is marked gpu yet, which is not a failure.
# The slow GPU tests (torch.compile, CUDA graphs, > 2³¹ elements) need a call of their own:
#     TRITON_INTERPRET=0 python -m pytest tests -m gpu
stage "gpu tests" "$GPU_TESTS_S" env TRITON_INTERPRET=0 \
    python -m pytest tests -m "gpu and not slow" -q -p no:cacheprovider
if [ "$LAST_RC" = 5 ]; then
    SUMMARY[${#SUMMARY[@]} - 1]+=" (no tests marked gpu yet: not a failure)"
fi

# The suite stops starting new cases 40 s before its limit, so it ends cleanly (its JSON
# and summary written) with the headline cases, which come first, measured.
stage "layer grid" "$LAYERS_S" python -m pytest benchmarks/test_layers.py --benchmark-only \
    -v -rs -p no:cacheprovider --grid full --time-budget "$((LAYERS_S - 40))" \
    --benchmark-json="reports/raw/pytest-benchmark-$MN_RUN_ID.json" \
    --benchmark-columns=min,median,max,rounds

if [ -f benchmarks/train_step.py ]; then
    budget=()
    if python benchmarks/train_step.py --help 2>/dev/null | grep -q -- --max-seconds; then
        budget=(--max-seconds "$((TRAIN_S - 30))")
    fi
    stage "training steps" "$TRAIN_S" python benchmarks/train_step.py ${budget[@]+"${budget[@]}"}
else
    SUMMARY+=("training steps: benchmarks/train_step.py not present, skipped")
fi

# Host time per layer call (Python side of the Triton path), into the log for NOTES.md.
stage "host overhead" "$HOST_S" python benchmarks/host_overhead.py --calls 200

stage "report" "$REPORT_S" python benchmarks/report.py

echo "== summary"
printf '  %s\n' "${SUMMARY[@]}"
save
[ -n "${OUT:-}" ] && echo "== copied reports/ to $OUT/reports"
exit 0
