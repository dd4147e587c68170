"""tools/trace_probe.py: with ops.TRACE_KERNELS, torch.compile's traced graphs launch what
eager calls launch, and inductor's analysis takes only the kernels' outputs as written.

The probe needs real Triton JIT functions (the interpreter's cannot be recorded into a
graph), so it runs in a process of its own, without TRITON_INTERPRET, with the kernels
compiled for sm_90 and never run. What only a GPU can show (that inductor's generated code
runs them right, and how fast) is tests/test_gpu.py's."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_traced_graphs_launch_as_eager_calls_and_copy_no_input():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    result = subprocess.run(
        [sys.executable, "tools/trace_probe.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    cases = [line for line in lines if " launches, " in line]
    # Nine cases record their launches (3 to 12 each: 3 on rows of one element, which skip
    # the four passes over x; dx is a torch op there), two with symbolic sizes keep the ops.
    assert len(cases) == 11 and all(line.endswith(", ok") for line in cases), lines
    assert sum(" 3 launches" in line for line in cases) == 2
    assert sum(" 0 launches" in line for line in cases) == 2
    assert any("decomposed: ['mn_triton.mode_norm_forward.default'], 0 recorded" in line
               for line in lines)  # fmt: skip
    # float64 records its launches only where inductor passes Python floats as float64.
    assert "float64 floats on: 0 ops kept whole, 6 launches recorded" in result.stdout
    assert "float64 floats off: 2 ops kept whole, 0 launches recorded" in result.stdout
    # With the switch off (the default) the ops stay whole.
    assert "switched off, ModeNorm2d: 2 ops kept whole, 0 launches recorded" in result.stdout
