#!/usr/bin/env bash
# The main job: set up (tools/setup.sh), run the layer benchmark suite, the end-to-end
# training-step benchmark and its step profiles, and write the report (reports/README.md,
# reports/figures/).
# On a GPU this runs the full grid; on a CPU a small grid and quick training steps, a pipeline
# check of a few minutes whose rows say device=cpu. Extra arguments go to the layer suite's
# pytest, e.g. `bash tools/bench.sh --grid smoke` or `-k mode_norm`.
# MN_NO_SETUP=1 skips the setup and uses $PYTHON, else the `python` on PATH, else `python3`
# (for prepared machines: on the lent GPU machines only python3 exists).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${MN_NO_SETUP:-0}" != 1 ]; then
    . tools/setup.sh
    PY=python  # the venv's: tools/setup.sh put it first on PATH ($PYTHON only made the venv)
elif [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif command -v python >/dev/null 2>&1; then
    PY=python
else
    PY=python3
fi
# The benchmarks time the real kernels (or mn_triton's torch ops on a CPU), never the
# interpreter that the tests use.
unset TRITON_INTERPRET
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# One id names this run's CSV rows, its pytest-benchmark JSON and its training-step rows.
export MN_RUN_ID=${MN_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p reports/data reports/raw
status=0

echo "== layer benchmarks (run $MN_RUN_ID, $PY)"
"$PY" -m pytest benchmarks/test_layers.py --benchmark-only -v -p no:cacheprovider \
    --benchmark-json="reports/raw/pytest-benchmark-$MN_RUN_ID.json" \
    --benchmark-columns=min,median,max,rounds "$@" || status=$?

if [ -f benchmarks/train_step.py ]; then
    echo "== training-step benchmark"
    # Full on a GPU; on a CPU the script runs its short, labelled --quick version.
    "$PY" benchmarks/train_step.py || status=$?
    echo "== step profiles (where a training step's time goes)"
    "$PY" benchmarks/step_profile.py || status=$?
fi

echo "== report"
"$PY" benchmarks/report.py || status=$?
exit "$status"
