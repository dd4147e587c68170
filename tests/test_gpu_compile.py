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


def _kernel_names(modules=(apply, mix, moments)) -> set[str]:
    """Every launchable kernel of mn_triton.kernels (helpers called from kernels excluded)."""
    return {
        name
        for module in modules
        for name, _ in inspect.getmembers(module)
        if name.endswith("_kernel")
    }


def _has_ptxas() -> bool:
    try:
        from triton import knobs

        return Path(knobs.nvidia.ptxas.path).is_file()
    except Exception:
        return False


MIX_SPILL_BYTES = 8  # per thread, the most any mix kernel may spill (see below)


@pytest.mark.slow
@pytest.mark.skipif(not _has_ptxas(), reason="Triton's NVIDIA backend (ptxas) is not installed")
def test_every_kernel_compiles_for_sm90_without_spills_in_the_passes(tmp_path):
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
    # The passes over x (moments, gradient sums, apply) stream the bytes that bound a layer:
    # no spills there. ptxas (Triton 3.9) spills 8 bytes per thread in a few specialisations
    # of the mix kernels, which read only (N, C, K) statistics (2026-12-06: MN's backward
    # rows kernel at 64 registers, its forward at 80, the stack frame 8 bytes): no more.
    passes = _kernel_names((apply, moments))
    spilled = [c for c in compiled if c["spill_bytes"] and c["kernel"] in passes]
    assert not spilled, spilled
    spilled = [c for c in compiled if c["spill_bytes"] > MIX_SPILL_BYTES]
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


# compile_check's reporting, on a compiler stood in for (cuobjdump's text, the kernels'
# compiled objects and the sweep faked): what it counts, and that a failure fails it.
_REPORTING = r'''
import contextlib, io, json, sys, types
import torch
import compile_check as cc
from compile_check import Compiled, JITFunction

ns = types.SimpleNamespace
out = {}

# A case's layer call: a training forward and backward, then an eval forward
steps = []
class Noted(torch.nn.Module):
    def forward(self, x):
        steps.append("train" if self.training else "eval")
        return x * 2
module = Noted()
module.register_full_backward_hook(lambda *args: steps.append("backward"))
cc._train_and_eval(module, torch.randn(3))
out["train and eval"] = steps

# The sweeps: the layer calls their cases make (launches do nothing, calls are noted)
def noted(module, x):
    end = x.storage_offset() + sum((n - 1) * s for n, s in zip(x.shape, x.stride()))
    calls.append([type(module).__name__, module.num_modes, module.weight is not None,
                  str(x.dtype)[6:], list(x.shape), end,
                  x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last),
                  x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d),
                  x.is_contiguous()])
cc._train_and_eval = noted
JITFunction.__getitem__ = lambda fn, grid: lambda *args, **kwargs: None
for quick in (True, False):
    calls = []
    labels = []
    for label, case in cc.sweep(quick):
        labels.append(label)
        try:
            case()
        except Exception:
            pass  # cases that call the kernels or ops directly: their labels say
    out["quick" if quick else "full"] = {"labels": labels, "calls": calls}

# cuobjdump --dump-resource-usage of a cubin (sm_90, CUDA 12), its one function spilling
RESOURCES = """
Resource usage:
 Common:
  GLOBAL:0
 Function _k:
  REG:168 STACK:16 SHARED:0 LOCAL:40 CONSTANT[0]:568 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
cc.knobs = ns(nvidia=ns(ptxas=ns(path="/nowhere/bin/ptxas")))
cc.subprocess = ns(run=lambda command, **kw: ns(stdout=RESOURCES))
out["usage"] = cc.resource_usage(b"")

out["loads"] = cc.global_loads("""
    ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];
    @%p1 ld.global.v4.b32 { %r5, %r6, %r7, %r8 }, [ %rd2 + 0 ];
    @%p2 ld.global.L1::evict_last.v2.b32 { %r9, %r10 }, [ %rd3 + 0 ];
    ld.global.nc.b32 { %r11 }, [ %rd4 + 0 ];
    ld.global.b16 { %rs1 }, [ %rd5 + 0 ];
    st.global.v4.b32 [ %rd6 + 0 ], { %r1, %r2, %r3, %r4 };
    ld.shared.v4.b32 { %r1, %r2, %r3, %r4 }, [ %r12 + 0 ];
""")

# Recorder: each compiled kernel's resources, launch limits, compile errors, devices
usage = {"REG": 200, "STACK": 16, "LOCAL": 40}
cc.resource_usage = lambda cubin: dict(usage)
def kernel(hash, warps, ptx=""):
    return ns(hash=hash, asm={"cubin": b"", "ptx": ptx},
              metadata=ns(num_warps=warps, shared=1024, enable_fp_fusion=True))
recorder = cc.Recorder(90)
recorder.install()
recorder.case = "case A"
compiled = {"h1": kernel("h1", 16), "h2": kernel("h2", 16)}
def run(*args, grid, warmup, **kwargs):
    if kwargs.get("WHICH") == "bad":
        raise RuntimeError("PTXASError: an error from the compiler")
    return compiled[kwargs["WHICH"]]
fn = ns(fn=ns(__name__="_fake_kernel"), run=run)
meta = torch.empty(4, device="meta")
JITFunction.__getitem__(fn, (1,))(meta, 3, WHICH="h1", eps=1e-5)  # 200 regs x 512 threads
usage["REG"], usage["STACK"], usage["LOCAL"] = 128, 0, 0
JITFunction.__getitem__(fn, (1,))(meta, WHICH="h2")  # 128 x 512: exactly 65536, fits
JITFunction.__getitem__(fn, (1,))(meta, WHICH="bad")
recorder.case = "case B"
JITFunction.__getitem__(fn, (1,))(torch.empty(4), meta, WHICH="h2")  # a CPU tensor
out["compiled"] = {h: vars(c) for h, c in recorder.compiled.items()}
out["failures"] = [vars(f) for f in recorder.failures]

# PTX digests, source positions aside; compare() against an earlier --json's "compiled"
PTX = """.version 8.4
.file 1 "/repo/mn_triton/kernels/mix.py"
.visible .entry _k()
{
    .loc 1 420 5
    mul.f32 %f3, %f1, %f2;
    .loc 1 421 5
    st.global.b32 [%rd1], %f3;
    ret;
}
    .section .debug_abbrev
    {
.b8 1
    }
"""
moved = PTX.replace("420", "433").replace("421", "434").replace("/repo", "/elsewhere")
out["digests"] = [cc.ptx_digest(p) for p in (PTX, moved, PTX.replace("mul.f32", "add.f32"))]
def spec(kernel, digest):
    return Compiled(kernel, "x", "K=2", 4, 64, 0, 0, "", True, 0.1, digest)
old = [vars(spec(*kd)) for kd in (("_a", "1"), ("_b", "2"), ("_c", "3"), ("_t", "5"), ("_t", "6"))]
new = [spec(*kd) for kd in (("_a", "1"), ("_b", "9"), ("_d", "4"), ("_t", "6"), ("_t", "5"))]
out["compare"] = cc.compare(new, old)  # _t: twice (other alignments), in another order
out["compare, one of two changed"] = cc.compare(new[:3] + [spec("_t", "6"), spec("_t", "7")], old)
for name, text in (("no digests", json.dumps({"compiled": [{"kernel": "_a"}]})), ("no json", "{")):
    with open(sys.argv[1] + ".old", "w") as f:
        f.write(text)
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            cc.main(["--compare", sys.argv[1] + ".old"])
    except SystemExit as exit:
        out[name] = [exit.code, err.getvalue().splitlines()[-1]]

# main: its exit status and report, on sweeps that spill, fail in host code, or do neither
made = []
class Spy(cc.Recorder):
    def __init__(self, arch=90):
        super().__init__(arch)
        made.append(self)
    def install(self):
        pass
cc.Recorder = Spy
cc.compile_instead_of_launch = lambda arch=90: None
def fake(name, spill):
    def compile():
        made[-1].compiled[name] = Compiled(name, made[-1].case, "", 4, 64, spill, 0, "", True, 0.1)
    return compile
def broken():
    raise RuntimeError("a host synchronisation")
out["main"] = {}
for name, thunks, argv in (
    ("clean", [fake("_a", 0)], ["--no-spills"]),
    ("spilled", [fake("_a", 0), fake("_b", 8)], []),
    ("spilled, --no-spills", [fake("_a", 0), fake("_b", 8)], ["--no-spills"]),
    ("host error", [fake("_a", 0), broken], ["--json", sys.argv[1]]),
    ("compared", [fake("_a", 0), fake("_e", 0)], ["--compare", sys.argv[1]]),
):
    cc.sweep = lambda quick, thunks=thunks: [(f"case {i}", t) for i, t in enumerate(thunks)]
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(io.StringIO()):
        status = cc.main(argv)
    out["main"][name] = [status, text.getvalue()]
# refused before the sweep (here a fake one): an arch LLVM aborts on, a --json nowhere to go
for name, argv in (("arch", ["--arch", "71"]), ("json", ["--json", "/no-such-dir/x.json"])):
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            out["refused " + name] = [cc.main(argv), "ran"]
    except SystemExit as exit:
        out["refused " + name] = [exit.code, err.getvalue().splitlines()[-1]]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def reporting(tmp_path_factory) -> dict:
    """What compile_check reports on the faked compiler (one process: it turns the
    interpreter off on import)."""
    report = tmp_path_factory.mktemp("compile_check") / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", _REPORTING, str(report)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.splitlines()[-1])
    out["json"] = json.loads(report.read_text())
    return out


def test_resources_and_loads_are_read_from_the_compiler_output(reporting):
    """cuobjdump's figures of the cubin's function; global loads by width, cache hints or
    not (shared loads and stores are not global loads)."""
    usage = {"REG": 168, "STACK": 16, "SHARED": 0, "LOCAL": 40}  # the function's, not Common's
    assert reporting["usage"] == {**usage, "TEXTURE": 0, "SURFACE": 0, "SAMPLER": 0}
    assert reporting["loads"] == "2×v4.b32 1×v2.b32 1×b32 1×b16"


KERNEL = "_fake_kernel"


def test_the_recorder_notes_resources_and_every_kind_of_failure(reporting):
    """A compiled kernel's registers and spills (local memory, the stack frame included:
    ptxas spills there, and cuobjdump then says LOCAL:0); a launch CUDA would refuse, a
    compile error and a tensor on another device than meta are failures, each with its
    case."""
    first, second = reporting["compiled"]["h1"], reporting["compiled"]["h2"]
    assert (first["kernel"], first["case"], first["constexprs"]) == (KERNEL, "case A", "WHICH=h1")
    assert (first["registers"], first["spill_bytes"], first["num_warps"]) == (200, 16 + 40, 16)
    assert (second["registers"], second["spill_bytes"], second["num_warps"]) == (128, 0, 16)
    failures = [(f["kernel"], f["case"], f["error"]) for f in reporting["failures"]]
    assert failures == [
        (KERNEL, "case A", "would not launch: 200 registers x 512 threads > 65536 per block"),
        (KERNEL, "case A", "PTXASError: an error from the compiler"),
        (KERNEL, "case B", "tensor arguments on ['cpu', 'meta'], not all meta"),
    ]


def test_spills_fail_with_no_spills_and_failures_always(reporting):
    main = reporting["main"]
    assert main["clean"][0] == 0
    assert "1 specialisations compiled, 0 failures, 0 with spills" in main["clean"][1]
    assert main["spilled"][0] == 0
    assert "2 specialisations compiled, 0 failures, 1 with spills" in main["spilled"][1]
    assert main["spilled, --no-spills"][0] == 1
    status, text = main["host error"]
    assert status == 1 and "1 specialisations compiled, 1 failures" in text
    assert "FAILED (host code) in case 'case 1':\nRuntimeError('a host synchronisation')" in text
    report = reporting["json"]
    assert [c["kernel"] for c in report["compiled"]] == ["_a"]
    error = "RuntimeError('a host synchronisation')"
    assert report["failures"] == [{"kernel": "(host code)", "case": "case 1", "error": error}]


def test_ptx_digests_leave_out_source_positions_and_compare_names_changes(reporting):
    """--compare tells whether a change to the kernels changed what a GPU runs: their PTX
    without .file, .loc and debug sections (which move with every edit above a line)."""
    same, moved, changed = reporting["digests"]
    assert same == moved != changed
    changes = ["differs: _b [K=2] in case 'x'", "gone: _c [K=2] in case 'x'",
               "new: _d [K=2] in case 'x'"]  # fmt: skip
    assert reporting["compare"] == changes
    assert reporting["compare, one of two changed"] == sorted(
        changes + ["differs: _t [K=2] in case 'x'"]
    )
    status, text = reporting["main"]["compared"]
    assert status == 0
    assert "aside: 1 kernels (by constexprs and case) differ" in text
    assert "new: _e [] in case 'case 1'" in text
    status, error = reporting["no digests"]  # a file from before the digests: told, not compared
    assert status == 2 and "holds no PTX digests (written before --compare existed)" in error
    status, error = reporting["no json"]
    assert status == 2 and "is not a compile_check --json file" in error


def test_an_arch_llvm_aborts_on_and_a_json_nowhere_are_refused_first(reporting):
    """--arch 71 aborted the process inside LLVM (status 134, no summary) and --json into a
    missing folder raised after the whole sweep: both are refused before it."""
    status, error = reporting["refused arch"]
    assert status == 2 and "argument --arch: invalid choice: 71 (choose from 70, 72" in error
    status, error = reporting["refused json"]
    assert status == 2 and "--json /no-such-dir/x.json: not a file in an existing folder" in error


def test_a_case_compiles_training_forward_and_backward_and_eval(reporting):
    assert reporting["train and eval"] == ["train", "backward", "eval"]


def test_the_sweeps_make_the_calls_they_name(reporting):
    """The quick sweep (the check's usual run) and the full one make the layer calls the
    docstring lists: MN and MGN, four dtypes, channels_last in 2-d and 3-d, sliced views,
    offsets past 2³¹, K up to 16 (and 50, 300 and past MAX_MODES in the full one), N = 1."""
    for which in ("quick", "full"):
        labels, calls = reporting[which]["labels"], reporting[which]["calls"]
        for label in ("compiled and captured", "MN samples split", "SyncModeNorm mix"):
            assert label in labels, (which, label)
        assert {c[0] for c in calls} == {"ModeNorm", "ModeGroupNorm"}, which
        assert {c[3] for c in calls} == {"float32", "float16", "bfloat16", "float64"}, which
        assert any(c[6] for c in calls) and any(c[7] for c in calls), which  # channels_last
        assert any(not (c[6] or c[7] or c[8]) for c in calls), which  # sliced
        assert max(c[5] for c in calls) >= 2**31, which  # offsets past 2^31
        assert False in {c[2] for c in calls}, which  # no affine parameters
    assert {2, 3, 16} <= {c[1] for c in reporting["quick"]["calls"]}
    full = reporting["full"]["calls"]
    assert {1, 2, 8, 16, 50, 300, mix.MAX_MODES + 1} <= {c[1] for c in full}
    assert any(c[4][0] == 1 for c in full) and any(len(c[4]) == 5 for c in full)
