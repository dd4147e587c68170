"""Every kernel compiles for a real GPU (sm_90: H100/H200), checked on a machine without one.

The other tests run the kernels in Triton's interpreter, which accepts some programs the GPU
compiler rejects. `tools/compile_check.py` compiles the kernels that a sweep of layer calls
launches, for the GPU, without running them, on tensors of the `meta` device: so it also
catches a kernel handed a tensor on another device, and host synchronisations. It runs in
its own process because the kernels there must not be decorated for the interpreter.
"""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mn_triton.kernels import apply, mix, moments

REPO = Path(__file__).resolve().parents[1]


def _kernel_names() -> set[str]:
    """Every launchable kernel of mn_triton.kernels (helpers called from kernels excluded)."""
    return {
        name
        for module in (apply, mix, moments)
        for name, _ in inspect.getmembers(module)
        if name.endswith("_kernel")
    }


def _has_ptxas() -> bool:
    try:
        from triton import knobs

        return Path(knobs.nvidia.ptxas.path).is_file()
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptxas(), reason="Triton's NVIDIA backend (ptxas) is not installed")
def test_every_kernel_compiles_for_sm90_without_spills(tmp_path):
    report = tmp_path / "compile.json"
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "cache")}  # compile from scratch
    env.pop("TRITON_DEFAULT_FP_FUSION", None)  # Triton warns if a launch leaves it unset
    result = subprocess.run(
        [sys.executable, "tools/compile_check.py", "--quick", "--arch", "90",
         "--json", str(report)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert report.exists(), result.stderr[-4000:]
    data = json.loads(report.read_text())
    assert not data["failures"], "\n\n".join(
        f"{f['kernel']} ({f['case']}):\n{f['error']}" for f in data["failures"]
    )
    assert result.returncode == 0, result.stdout[-4000:]
    compiled = data["compiled"]
    assert {c["kernel"] for c in compiled} == _kernel_names()
    spilled = [c for c in compiled if c["spill_bytes"] != 0]
    assert not spilled, spilled
    assert all(c["registers"] > 0 for c in compiled)
    # Every launch says enable_fp_fusion (Triton 3.10 changes the default), so no warning.
    assert all(c["fp_fusion"] for c in compiled)
    assert "TRITON_DEFAULT_FP_FUSION" not in result.stderr


def test_kernels_beyond_a_blocks_shared_memory_or_registers_are_failures():
    """CUDA refuses such a launch although it compiled: the check counts it as a failure
    (sm_90 opt-in shared memory 227 KiB; 64 Ki registers per block; other archs are
    assumed to have the smallest table entry). Run apart: compile_check turns the interpreter
    off on import."""
    code = (
        "from compile_check import launch_limit_error as f\n"
        "print(repr((f(90, 232_448, 255, 8), f(90, 232_449, 32, 4),\n"
        "            f(90, 0, 129, 16), f(75, 65_537, 32, 4), f(60, 65_537, 32, 4))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    fits, shared, registers, turing, unknown = eval(result.stdout)
    assert fits == ""
    assert shared == "232449 B of shared memory, sm_90 has 232448"
    assert registers == "129 registers x 512 threads > 65536 per block"
    assert turing == "65537 B of shared memory, sm_75 has 65536"
    assert unknown == "65537 B of shared memory, sm_60 is assumed to have 65536"


def test_float_arguments_reach_the_kernels_in_float64():
    """Compiled Triton passes an unannotated Python float as float32: eps, momentum and 1/L
    would reach float64 layers rounded (relative errors ~1e-8 against the 1e-10 target).
    The mix kernels annotate them float64 and cast them to the statistics' dtype inside."""
    import inspect

    import triton.language as tl

    from mn_triton.kernels import mix

    floats = {"eps", "momentum", "inv_length"}
    seen = 0
    for name in dir(mix):
        fn = getattr(getattr(mix, name), "fn", None)  # the function under @triton.jit
        if not name.endswith("_kernel") or fn is None:
            continue
        for param in inspect.signature(fn).parameters.values():
            if param.name in floats:
                assert param.annotation in (tl.float64, "tl.float64"), f"{name}: {param.name}"
                seen += 1
    assert seen == 8  # MN forward 2, backward 2, gates 1; MGN forward 1, backward 2


def test_every_masked_load_says_what_masked_lanes_hold():
    """A masked `tl.load` without `other=` leaves the masked lanes undefined on a GPU, where
    the interpreter gives 0: a kernel that sums such a block passes here and not there."""
    import ast

    checked = 0
    for module in (apply, mix, moments):
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "tl.load":
                keywords = {k.arg for k in node.keywords}
                if "mask" in keywords:
                    checked += 1
                    assert "other" in keywords, f"{module.__name__}:{node.lineno}"
    assert checked >= 10
