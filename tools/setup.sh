#!/usr/bin/env bash
# Create .venv (if needed) and install mn-triton with its test tools into it.
# On a machine without a GPU this installs PyTorch's CPU build, torch==2.13.0+cpu (PyPI's
# torch is a multi-GB CUDA build): from a local wheel where pip's find-links has one, else
# from PyTorch's CPU index. TORCH_SPEC=... installs that torch instead, even over one there.
# Run it (`bash tools/setup.sh`), then `. .venv/bin/activate` to work in the environment;
# tools/test.sh and tools/bench.sh source it, and find .venv's python first on PATH after.
case $- in
*i*) # sourced into an interactive shell, where `set -e` and the `cd` below would stay
    echo "tools/setup.sh: run it with bash, then . .venv/bin/activate" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
# .venv's python first on PATH, by this folder's path: .venv/bin/activate names the folder
# the venv was made in, which for a .venv moved here with the repository puts another
# python first, and pip would install into that one.
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
hash -r

CPU_TORCH=torch==2.13.0+cpu
CPU_INDEX=https://download.pytorch.org/whl/cpu
if [ -n "${TORCH_SPEC:-}" ]; then
    echo "== installing $TORCH_SPEC"
    python -m pip install -q "$TORCH_SPEC"
elif ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
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
# Pinned to the torch now here, so that pip never swaps it for PyPI's (a CUDA build) to meet
# mn-triton's requirement: a torch too old for it is an error to read, not a download.
torch_version=$(python -c "import torch; print(torch.__version__)")
echo "== installing mn-triton, its benchmark suite's and its tests' packages"
python -m pip install -q -e ".[bench,dev]" "torch==$torch_version"
python -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}, cuda: {torch.cuda.is_available()}')"
