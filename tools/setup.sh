#!/usr/bin/env bash
# Create .venv (if needed) and install mn-triton with its test tools into it.
# On a machine without a GPU this installs PyTorch's CPU build (pinned: an unpinned
# `pip install torch` pulls a multi-GB CUDA build). Override with TORCH_SPEC=...
# Source it (`. tools/setup.sh`) to stay in the environment afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

if ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        TORCH_SPEC=${TORCH_SPEC:-torch}
    else
        TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
    fi
    echo "== installing $TORCH_SPEC"
    python -m pip install -q "$TORCH_SPEC"
fi
echo "== installing mn-triton and its dev tools"
python -m pip install -q -e ".[dev]"
python -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}, cuda: {torch.cuda.is_available()}')"
