"""tools/trace_probe.py: with ops.TRACE_KERNELS, torch.compile's traced graphs launch what
eager calls launch, and inductor's analysis takes only the kernels' outputs as written.

The probe needs real Triton JIT functions (the interpreter's cannot be recorded into a
graph), so it runs in a process of its own, without TRITON_INTERPRET, with the kernels
compiled for sm_90 and never run; so do the tests of its checks (importing it swaps
Triton's driver). What only a GPU can show (that inductor's generated code runs them
right, and how fast) is tests/test_gpu.py's."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "TRITON_INTERPRET": "0",
    "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), str(REPO)]),
}

# Launches per case, forward and backward graphs together: a case that stopped tracing what
# its name says (as captured, rows split, ...) would launch another number.
LAUNCHES = {
    "MN training, 2 channel blocks": 7,
    "MN eval": 7,
    "MN training, channels_last": 6,
    "MN training, samples split": 10,
    "MN training, rows split": 8,
    "MN training, as captured": 12,
    "MN eval, as captured": 9,
    "MGN training": 7,
    # Rows of one element skip the four passes over x (dx is a torch op there).
    "MN training, rows of one element": 3,
    "MGN training, rows of one element": 3,
    "MN training, bfloat16 rows of one element": 3,
    "MGN training, transposed rows of one element": 3,
    # Symbolic sizes keep the ops whole: nothing recorded.
    "MN training, dynamic sizes": 0,
    "MGN training, dynamic sizes": 0,
}
# Outputs no traced launch writes: the running estimates, which only eager calls update in
# the kernel (traced, the layer updates them after the op).
WRITTEN_ONLY_EAGERLY = {"_mn_mix_forward_kernel": {"RMEAN", "RMEAN_SQ"}}


def _run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def probe_run() -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "tools/trace_probe.py", "-v"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_traced_graphs_launch_as_eager_calls_and_copy_no_input(probe_run):
    result = probe_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    cases = [line for line in lines if " launches, " in line]
    assert all(line.endswith(", ok") for line in cases), lines
    counts = {line.split(", Mode")[0]: int(line.split(" graphs, ")[1].split()[0]) for line in cases}
    assert counts == LAUNCHES
    assert all(" 2 graphs, " in line for line in cases), cases
    assert any("decomposed: ['mn_triton.mode_norm_forward.default'], 0 recorded" in line
               for line in lines)  # fmt: skip
    # float64 records its launches only where inductor passes Python floats as float64.
    assert "float64 floats on: 0 ops kept whole, 6 launches recorded" in result.stdout
    assert "float64 floats off: 2 ops kept whole, 0 launches recorded" in result.stdout
    # With the switch off (the default) the ops stay whole.
    assert "switched off, ModeNorm2d: 2 ops kept whole, 0 launches recorded" in result.stdout


def test_kernel_outputs_are_what_the_traced_launches_write(probe_run):
    """KERNEL_OUTPUTS, which the probe holds the analysis to, names nothing more than the
    recorded launches write (an input listed there would hide its copy), and every kernel
    is launched by some case."""
    assert probe_run.returncode == 0, probe_run.stdout[-3000:] + probe_run.stderr[-3000:]
    written: dict[str, set[str]] = {}
    for kernel, names in re.findall(r"^    (\w+) grid .* writes (\[.*\])$", probe_run.stdout, re.M):
        written.setdefault(kernel, set()).update(ast.literal_eval(names))
    tree = ast.parse((REPO / "tools" / "trace_probe.py").read_text())
    assigned = {ast.unparse(node.targets[0]): node.value
                for node in tree.body if isinstance(node, ast.Assign)}  # fmt: skip
    outputs = ast.literal_eval(assigned["KERNEL_OUTPUTS"])
    for kernel, names in WRITTEN_ONLY_EAGERLY.items():
        outputs[kernel] -= names
    assert written == outputs


# The probe's checks on launches made up here: each mismatch is one.
_CHECKS = r"""
import contextlib, io, json, sys
import torch
import trace_probe as tp
from mn_triton import backend

out = {}
# An eager launch as the recorder notes it: its numbers and choices by name, no tensor
recorder = tp.Recorder()
recorder.eager = []
backend.row_moments(torch.randn(2, 3, 4), torch.float32)
((kernel, grid, noted),), recorder.eager = recorder.eager, None
out["eager"] = [kernel, grid, noted]

eager = [("_row_moments_kernel", (5, 2, 1), {"length": 9, "BLOCK_ROWS": 64, "num_warps": 4}),
         ("_row_affine_kernel", (5, 1, 1), {"BLOCK_LEN": 32, "num_warps": 8})]

def traced(launches):  # every argument by name, the compile-time choices among them
    return [(k, g, {"X": None, **a}) for k, g, a in launches]

moments, affine = eager
out["same"] = tp.same_launches(traced(eager), eager)
out["differ"] = {name: tp.same_launches(traced(launches), eager) for name, launches in {
    "grid": [(moments[0], (5, 1, 1), moments[2]), affine],
    "kernel": [("_row_grad_sums_kernel", *moments[1:]), affine],
    "constexpr": [(*moments[:2], {**moments[2], "BLOCK_ROWS": 32}), affine],
    "number": [(*moments[:2], {**moments[2], "length": 8}), affine],
    "num_warps": [moments, (*affine[:2], {"BLOCK_LEN": 32})],
    "missing": [moments],
    "extra": [moments, affine, affine],
    "order": [affine, moments],
}.items()}

params = {"_row_affine_kernel": {"X", "SHIFT", "OUT", "eps", "BLOCK_LEN"}}
args = {"X": None, "SHIFT": None, "OUT": None, "eps": 1e-5, "BLOCK_LEN": 32, "num_warps": 8}
launch = ("_row_affine_kernel", (5, 1, 1), args)
expected = [("_row_affine_kernel", (5, 1, 1), {"BLOCK_LEN": 32, "num_warps": 8})]
out["problems"] = {name: tp.launch_problems(found, expected, params.get) for name, found in {
    "clean": [(launch, ["OUT"])],
    "input written": [(launch, ["OUT", "X", "SHIFT"])],
    "compile option": [((*launch[:2], {**args, "enable_fp_fusion": True}), ["OUT"])],
    "other grid": [(("_row_affine_kernel", (4, 1, 1), args), ["OUT"])],
}.items()}

# main: its exit status, where one check of four finds a problem or none does
tp.CASES = [("a case",)]
checks = {"probe": "probe", "float64": "float64_needs_fp64_floats",
          "switched off": "switched_off", "exported": "exported_whole"}
out["main"] = {}
for failing in [None, *checks]:
    for name, function in checks.items():
        found = [f"a {name} problem"] if name == failing else []
        setattr(tp, function, lambda *_, found=found: found)
    sys.argv = ["trace_probe.py"]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        status = tp.main()
    out["main"][str(failing)] = [status, text.getvalue()]
print(json.dumps(out))
"""


def test_probe_checks_report_each_mismatch():
    """The recorder notes an eager launch's numbers and compile-time choices by name;
    same_launches and launch_problems, on made-up launches: another grid, kernel, number,
    compile-time choice, num_warps, a launch missing, one more or out of order; an input
    taken as written; a compile option passed; and main fails on any check's problem."""
    out = _run(_CHECKS)
    assert out["same"] is True
    assert out["differ"] == dict.fromkeys(out["differ"], False)
    assert len(out["differ"]) == 8
    kernel, grid, noted = out["eager"]
    assert (kernel, grid) == ("_row_moments_kernel", [1, 1, 1])
    assert noted["rows_total"] == 6 and noted["length"] == 4 and noted["num_warps"] >= 1
    assert {"X", "SHIFT", "MEAN", "VAR", "enable_fp_fusion"}.isdisjoint(noted)
    problems = out["problems"]
    assert problems["clean"] == []
    assert problems["input written"] == [
        "_row_affine_kernel: inputs taken as written (copied each call): ['SHIFT', 'X']"
    ]
    assert problems["compile option"] == [
        "_row_affine_kernel: recorded with arguments it does not take: ['enable_fp_fusion']"
    ]
    assert len(problems["other grid"]) == 1
    assert problems["other grid"][0].startswith("traced launches differ from eager ones")
    assert out["main"]["None"] == [0, ""]
    for failing in ("probe", "float64", "switched off", "exported"):
        assert out["main"][failing] == [1, f"  a {failing} problem\n"]


# The probe's whole-program checks, on mn_triton made to record where it must not.
_WHOLE = r"""
import json
import torch.export._trace
import trace_probe as tp
from mn_triton import ops

ops.TRACE_KERNELS = True
recorder = tp.Recorder()
out = {}
records = ops._records_kernels
ops._records_kernels = lambda x, types, asked: records(x, types, True)  # switch ignored
out["switched off"] = tp.switched_off(recorder)
ops._records_kernels = records
ops._inductor_passes_floats_as_fp64 = lambda: True  # float64 whatever inductor passes
out["float64"] = tp.float64_needs_fp64_floats(recorder)
torch.export._trace.custom_triton_ops_decomposition_disabled = lambda: False
try:
    out["exported"] = tp.exported_whole()
except Exception as error:  # recording is no program torch.export can keep: a failure too
    out["exported"] = [f"raised {type(error).__name__}"]
print(json.dumps(out))
"""


def test_probe_reports_launches_recorded_where_none_may_be():
    """switched_off, float64_needs_fp64_floats and exported_whole each report mn_triton
    recording launches with the switch off, for float64 where inductor passes float32
    floats, and for torch.export."""
    out = _run(_WHOLE)
    assert out["switched off"] == ["switched off, launches recorded anyway"]
    assert out["float64"] == [
        "float64 with inductor's float64 floats off: 0 ops kept whole, 6 launches recorded"
    ]
    assert out["exported"] != []
