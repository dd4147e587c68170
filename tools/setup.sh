#!/usr/bin/env bash
# Create .venv (if needed) and install mn-triton with its test tools into it.
# On a machine without a GPU this installs PyTorch's CPU build, torch==2.13.0+cpu (PyPI's
# torch is a multi-GB CUDA build): from a local wheel where pip's find-links has one, else
# from PyTorch's CPU index. Override with TORCH_SPEC=...
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

CPU_TORCH=torch==2.13.0+cpu
CPU_INDEX=https://download.pytorch.org/whl/cpu
if ! python -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_SPEC:-}" ]; then
        echo "== installing $TORCH_SPEC"
        python -m pip install -q "$TORCH_SPEC"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "== installing torch (a GPU is here)"
        python -m pip install -q torch
    else
        # PyPI's torch for Linux is the CUDA build: the CPU build comes from a local wheel
        # (pip's find-links, as on the CI machines) or else from PyTorch's CPU index.
        echo "== installing $CPU_TORCH"
        # (PyPI holds no "+cpu" version, so without such a wheel the first try fails fast.)
        python -m pip install -q "$CPU_TORCH" 2>/dev/null \
            || python -m pip install -q --extra-index-url "$CPU_INDEX" "$CPU_TORCH"
    fi
fi
echo "== installing mn-triton, its benchmark suite's and its tests' packages"
python -m pip install -q -e ".[bench,dev]"
python -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}, cuda: {torch.cuda.is_available()}')"
