#!/usr/bin/env bash
# Set up (tools/setup.sh) and run the whole test suite: lint, then pytest.
# Without a GPU the Triton kernels run in Triton's interpreter (tests/conftest.py sets
# TRITON_INTERPRET=1); with one, run `TRITON_INTERPRET=0 pytest tests -m gpu` too for the real
# kernels (without TRITON_INTERPRET=0 the conftest's default runs them interpreted).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/setup.sh
echo "== ruff"
python -m ruff check .
python -m ruff format --check .
echo "== pytest"
python -m pytest -q "$@"
