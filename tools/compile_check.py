"""Compile every Triton kernel for a real GPU, on a machine without one.

The tests run the kernels in Triton's interpreter, which accepts programs that the GPU
compiler rejects (a loop-carried variable that changes shape, say) and says nothing about
registers or spills. This script swaps Triton's driver for one that only compiles: a sweep
of layer calls (MN and MGN; training forward and backward, eval; four dtypes; NCHW,
channels_last, sliced and 3-D layouts; K from 1 to 16, and 50, 300 and 4097 in the full sweep; rows
split across programs; offsets past 2³¹) launches the kernels as usual, and each launch
is compiled to a cubin for the target GPU instead of run. Tensors live on PyTorch's `meta`
device (shapes, no data), so nothing is computed, big shapes cost no memory, and two more
GPU-only faults show: a kernel handed a tensor that the host code created on another
device, and a host synchronisation (`.item()` and the like raise on meta tensors).

It prints one line per compiled specialisation (registers, spills, shared memory) and
exits with status 1 if any kernel failed to compile, would not launch (more shared memory
or registers per block than the GPU has: CUDA refuses those at launch, not at compile
time), or spilled with --no-spills. With --compare OLD.json (an earlier --json, e.g. from
before a change to the kernels) it lists the specialisations whose PTX differs from OLD's,
source positions aside: a change that leaves them all the same leaves what a GPU runs the
same.

    python tools/compile_check.py              # sm_90 (H100/H200), the whole sweep
    python tools/compile_check.py --arch 80 --quick --json out.json
    python tools/compile_check.py --arch 80 --quick --compare out.json   # after a change
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# Before triton or mn_triton is imported: the kernels must be real JIT functions.
os.environ["TRITON_INTERPRET"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction

import mn_triton
from mn_triton import backend, ops
from mn_triton.kernels import layout, mix

H100_SMS = 132
DEVICE = torch.device("meta")


class CompileOnlyDriver(DriverBase):
    """Just enough of a Triton driver to compile for `arch` (no device, no launches)."""

    def __init__(self, arch: int) -> None:
        self.target = GPUTarget("cuda", arch, 32)

    @staticmethod
    def is_active() -> bool:
        return True

    def get_current_target(self) -> GPUTarget:
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def get_device_interface(self):
        return torch.cuda

    def map_python_to_cpp_type(self, ty: str) -> str:
        return ty

    def get_benchmarker(self):
        raise RuntimeError("compile-only driver: nothing can be timed")

    def get_empty_cache_for_benchmark(self):
        raise RuntimeError("compile-only driver: nothing can be timed")

    def clear_cache(self, cache) -> None:
        pass


def compile_instead_of_launch(arch: int = 90) -> None:
    """From now on every tensor (CPU or meta) takes mn_triton's kernel path, and
    `kernel[grid](...)` compiles for sm_`arch` (once per specialisation, as a launch would)
    and returns without running anything."""
    driver.set_active(CompileOnlyDriver(arch))
    JITFunction.__getitem__ = lambda fn, grid: functools.partial(fn.run, grid=grid, warmup=True)
    backend.uses_kernels = lambda x: True


# What one block may use, per compute capability (CUDA's tables): shared memory with the
# opt-in carve-out that Triton requests, and registers. The smallest for other targets.
MAX_SHARED_BYTES = {
    70: 98_304, 75: 65_536, 80: 166_912, 86: 101_376, 89: 101_376, 90: 232_448,
}  # fmt: skip
MAX_REGISTERS_PER_BLOCK = 65_536


def launch_limit_error(arch: int, shared_bytes: int, registers: int, num_warps: int) -> str:
    """Why a compiled kernel would be refused at launch on sm_`arch`; empty if it would not."""
    known = arch in MAX_SHARED_BYTES
    max_shared = MAX_SHARED_BYTES[arch] if known else min(MAX_SHARED_BYTES.values())
    errors = []
    if shared_bytes > max_shared:
        has = "has" if known else "is assumed to have"
        errors.append(f"{shared_bytes} B of shared memory, sm_{arch} {has} {max_shared}")
    if registers * num_warps * 32 > MAX_REGISTERS_PER_BLOCK:
        errors.append(f"{registers} registers x {num_warps * 32} threads > 65536 per block")
    return "; ".join(errors)


@dataclass
class Compiled:
    kernel: str
    case: str
    constexprs: str
    num_warps: int
    registers: int
    # Registers that did not fit: local memory per thread, the stack frame (STACK: where
    # ptxas puts spills, "8 bytes stack frame, 8 bytes spill stores" with LOCAL 0) included
    spill_bytes: int
    shared_bytes: int
    global_loads: str  # load instructions by width, e.g. "8×v4.b32 1×b32": vectorised?
    fp_fusion: bool  # compiled with fused multiply-adds (layout.FP_FUSION)
    seconds: float
    ptx_digest: str = ""  # of the PTX without source positions (see ptx_digest)


@dataclass
class Failure:
    kernel: str
    case: str
    error: str


class Recorder:
    """Turns `kernel[grid](...)` into a compile for the target; keeps results and errors."""

    def __init__(self, arch: int = 90) -> None:
        self.arch = arch
        self.case = ""
        self.compiled: dict[str, Compiled] = {}
        self.failures: list[Failure] = []

    def install(self) -> None:
        recorder = self

        def getitem(fn: JITFunction, grid):
            def compile_only(*args, **kwargs):
                start = time.perf_counter()
                devices = {a.device for a in args if isinstance(a, torch.Tensor)}
                if devices != {DEVICE}:
                    error = f"tensor arguments on {sorted(map(str, devices))}, not all {DEVICE}"
                    recorder.failures.append(Failure(fn.fn.__name__, recorder.case, error))
                try:
                    kernel = fn.run(*args, grid=grid, warmup=True, **kwargs)
                except Exception as error:
                    recorder.failures.append(Failure(fn.fn.__name__, recorder.case, str(error)))
                    return None
                recorder.add(fn, kernel, kwargs, time.perf_counter() - start)
                return kernel

            return compile_only

        JITFunction.__getitem__ = getitem

    def add(self, fn: JITFunction, kernel, kwargs: dict, seconds: float) -> None:
        if kernel.hash in self.compiled:
            return
        usage = resource_usage(kernel.asm["cubin"])
        constexprs = ",".join(f"{k}={v}" for k, v in kwargs.items() if k.isupper())
        compiled = Compiled(
            fn.fn.__name__, self.case, constexprs, kernel.metadata.num_warps,
            usage.get("REG", -1), usage.get("STACK", 0) + usage.get("LOCAL", 0),
            kernel.metadata.shared,
            global_loads(kernel.asm["ptx"]), kernel.metadata.enable_fp_fusion, seconds,
            ptx_digest(kernel.asm["ptx"]),
        )  # fmt: skip
        self.compiled[kernel.hash] = compiled
        limits = launch_limit_error(
            self.arch, compiled.shared_bytes, compiled.registers, compiled.num_warps
        )
        if limits:
            self.failures.append(Failure(compiled.kernel, self.case, f"would not launch: {limits}"))


def ptx_digest(ptx: str) -> str:
    """A digest of the PTX without its source positions (.file, .loc and the debug sections
    after the code): moving a kernel's lines, or editing a comment, leaves it the same."""
    code = re.sub(r"^\s*\.section\s+\.debug.*", "", ptx, flags=re.S | re.M)
    lines = [line for line in code.splitlines() if not re.match(r"\s*\.(loc|file)\b", line)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def compare(compiled: list[Compiled], old: list[dict]) -> list[str]:
    """The specialisations (kernel, constexprs and case) whose PTX differs from `old`'s (the
    "compiled" of an earlier --json), and those compiled in only one of the two sweeps."""

    def digests(specs: list[dict]) -> dict[str, list[str]]:
        # A case may compile one kernel and constexprs more than once (other argument
        # alignments or dtypes), so each name holds the sorted digests of all of them.
        found: dict[str, list[str]] = {}
        for c in specs:
            name = f"{c['kernel']} [{c['constexprs']}] in case '{c['case']}'"
            found.setdefault(name, []).append(c["ptx_digest"])
        return {name: sorted(d) for name, d in found.items()}

    before, now = digests(old), digests([asdict(c) for c in compiled])
    return sorted(
        [f"differs: {k}" for k in now.keys() & before.keys() if now[k] != before[k]]
        + [f"new: {k}" for k in now.keys() - before.keys()]
        + [f"gone: {k}" for k in before.keys() - now.keys()]
    )


def global_loads(ptx: str) -> str:
    """Global load instructions counted by width: 128-bit (v4.b32) ones move the most.
    (Qualifiers may hold colons: ld.global.L1::evict_last.v4.b32, from eviction_policy.)"""
    widths = Counter(
        f"{vector or ''}b{bits}"
        for vector, bits in re.findall(r"ld\.global(?:\.[\w:]+)*?\.(v\d\.)?b(\d+)", ptx)
    )
    return " ".join(f"{n}×{w}" for w, n in sorted(widths.items(), reverse=True))


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, LOCAL, STACK, SHARED of the cubin's one function, from cuobjdump."""
    cuobjdump = Path(knobs.nvidia.ptxas.path).with_name("cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(cuobjdump), "--dump-resource-usage", f.name],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    function = text.split("Function", 1)[-1]
    return {key: int(value) for key, value in re.findall(r"(\w+):(\d+)", function)}


# ------------------------------------ the sweep ---------------------------------------


def _train_and_eval(module: torch.nn.Module, x: torch.Tensor) -> None:
    x = x.detach().requires_grad_()
    module.train()
    y = module(x)
    y.backward(torch.randn_like(y))  # a dense dy, as in training (not sum()'s stride-0 one)
    module.eval()
    with torch.no_grad():
        module(x)


def _layer(kind: str, c: int, k: int, dtype: torch.dtype, affine: bool = True):
    cls = mn_triton.ModeNorm if kind == "MN" else mn_triton.ModeGroupNorm
    return cls(c, num_modes=k, affine=affine).to(DEVICE, dtype)


def _beyond_2_pow_31() -> None:
    """A view whose offsets pass 2³¹ elements (the kernels' int arguments become 64-bit), and
    index counts past 2³¹: N·C rows, and one row's positions (the passes' 64-bit indices)."""
    storage = torch.empty(2**31 + 64, dtype=torch.float16, device=DEVICE)
    many_rows = torch.empty(2**30 + 8, 2, 2, dtype=torch.float16, device=DEVICE)
    long_rows = torch.empty(1, 2, 2**31 + 64, dtype=torch.float16, device=DEVICE)
    for kind in ("MN", "MGN"):
        for x in (storage.as_strided((3, 2, 5), (2**30 + 8, 5, 1)), many_rows, long_rows):
            _train_and_eval(_layer(kind, 2, 2, torch.float16), x)


def sweep(quick: bool) -> list[tuple[str, Callable[[], None]]]:
    """(label, thunk) pairs; each thunk makes the launches of one kind of layer call.

    The quick sweep takes every constexpr branch of every kernel at least once (dtypes,
    layouts, optional parameters, 64-bit offsets, the custom ops' calls as torch.compile
    makes them and as captured into CUDA graphs) in about 200 specialisations; the full one
    adds the benchmark's shapes in every dtype and K ∈ {1, 2, 8}, and K = 50, 300 and 4097,
    about 670.
    """
    if quick:
        return [
            (f"{kind} {label}", case)
            for kind in ("MN", "MGN")
            for label, case in (
                ("resnet_cifar float32 K=2", _shape_case(kind, (128, 16, 32, 32), None, 2)),
                # (bfloat16 rows of one element would take the float32 path's kernels)
                ("rows of two bfloat16 K=3", _shape_case(kind, (32, 120, 2), torch.bfloat16, 3)),
                # rows of one element: their own statistics (backend.POINT_ROWS)
                ("fc float32 K=3", _shape_case(kind, (32, 120), None, 3)),
                ("channels_last float16", _layout_case(kind, torch.float16, "cl")),
                ("sliced float64", _layout_case(kind, torch.float64, "sliced")),
                ("K=16 no affine", _shape_case(kind, (8, 24, 9, 9), None, 16, False)),
                ("momentum=None", _cumulative_average_case(kind)),
                ("no gate bias", _no_gate_bias_case(kind)),
            )
        ] + [
            ("MN gates computed once", _shape_case("MN", (128, 128, 3, 3), None, 2)),
            ("MN samples split", _samples_split_case),
            # 32 channel blocks: their shares of the gate sums summed first
            ("MN gate shares summed", _shape_case("MN", (4096, 1024), None, 2)),
            ("compiled and captured", _compiled_case),
            ("offsets past 2^31", _beyond_2_pow_31),
            ("SyncModeNorm mix", _sync_mix_case),
        ]

    cases: list[tuple[str, Callable[[], None]]] = []
    shapes = {
        "resnet_cifar": (128, 16, 32, 32),
        "imagenet_56": (32, 64, 56, 56),
        "imagenet_7": (64, 512, 7, 7),
        "lenet_fc": (128, 120),
        "volume": (2, 8, 4, 6, 10),
    }
    for kind in ("MN", "MGN"):
        for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            for name, shape in shapes.items():
                for k in (1, 2, 8):
                    label = f"{kind} {name} {str(dtype)[6:]} K={k}"
                    cases.append((label, _shape_case(kind, shape, dtype, k)))
            cases.append((f"{kind} channels_last {dtype}", _layout_case(kind, dtype, "cl")))
            cases.append((f"{kind} sliced {dtype}", _layout_case(kind, dtype, "sliced")))
        cases.append((f"{kind} K=16 no affine", _shape_case(kind, (8, 24, 9, 9), None, 16, False)))
        cases.append((f"{kind} K=50", _shape_case(kind, (8, 24, 9, 9), None, 50)))
        cases.append((f"{kind} K=300", _shape_case(kind, (8, 24, 9, 9), None, 300)))
        # Past kernels/mix.MAX_MODES: the passes only (the mix runs in torch ops).
        past = mix.MAX_MODES + 1
        cases.append((f"{kind} K={past}", _shape_case(kind, (8, 24, 9, 9), None, past)))
        cases.append((f"{kind} momentum=None", _cumulative_average_case(kind)))
        cases.append((f"{kind} no gate bias", _no_gate_bias_case(kind)))
        cases.append((f"{kind} N=1", _shape_case(kind, (1, 3, 5, 7), None, 3)))
    cases.append(("MN samples split", _samples_split_case))
    cases.append(("MN gate shares summed", _shape_case("MN", (4096, 1024), None, 2)))
    cases.append(("compiled and captured", _compiled_case))
    cases.append(("offsets past 2^31", _beyond_2_pow_31))
    cases.append(("SyncModeNorm mix", _sync_mix_case))
    return cases


def _samples_split_case() -> None:
    """MN's mix kernels with the samples split across the grid's second axis
    (kernels/mix.SPLIT_MIN_ROWS): many samples of few features, one channel block (the
    gates fused into the rows kernel) and two (the gates computed once, or in each program);
    training and eval, both directions; rows of one element (their own statistics,
    backend.POINT_ROWS) and, at 64 features, rows of two (with row statistics)."""
    saved = mix.GATES_KERNEL_MIN_ELEMENTS
    try:
        for c, gates_once, length in ((24, True, 1), (64, True, 1), (64, False, 1),
                                      (64, True, 2), (64, False, 2)):  # fmt: skip
            mix.GATES_KERNEL_MIN_ELEMENTS = saved if gates_once else 2**62
            layer = _layer("MN", c, 2, torch.float32)
            x = torch.randn(4096, c, length, device=DEVICE).squeeze(2)
            _train_and_eval(layer, x)
            y = layer.eval()(x.requires_grad_())
            y.backward(torch.randn_like(y))
    finally:
        mix.GATES_KERNEL_MIN_ELEMENTS = saved


def _compiled_case() -> None:
    """MN and MGN as torch.compile runs them (`compiled_layer_calls`): at 16 channels (MN:
    one channel block, the gates fused into the rows kernel) and at 64 (MN: two blocks, the
    gates kernel)."""
    for kind in ("MN", "MGN"):
        for shape in ((128, 16, 32, 32), (128, 64, 8, 8)):
            layer = _layer(kind, shape[1], 2, torch.float32)
            compiled_layer_calls(layer, torch.randn(shape, device=DEVICE))


def compiled_layer_calls(layer: torch.nn.Module, x: torch.Tensor) -> None:
    """A training forward and backward of `layer` as torch.compile runs them: the custom ops'
    implementations (mn_triton.ops), some of whose kernels are not the eager calls'. MN's
    forward mix leaves the running estimates to ops after it, its backward takes the
    forward's statistics and gates, rows of one element take the path the layer picks as
    traced (`points`), and the first call of each signature also runs as captured into a
    CUDA graph (ops._with_capture_choices: MN's samples split in GRAPH_SPLIT_MIN_ROWS, its
    gates computed once). Also benchmarks/warm_kernels.py's, for the compiled steps."""
    params = (layer.gate.weight, layer.gate.bias, layer.weight)
    points = backend.point_rows(x, layer.gate.weight)
    dy = torch.empty_like(x)
    if isinstance(layer, mn_triton.ModeGroupNorm):
        _, *rows = ops._mode_group_norm_forward(x, *params, layer.bias, layer.eps, points)
        ops._mode_group_norm_op_backward(dy, x, *rows, *params, layer.eps)
    else:  # in training, as the compiled step's custom op: without running estimates
        _, *rows, _, _, stats, gates = ops._mode_norm_forward(
            x, *params, layer.bias, None, None, True, layer.eps, points
        )
        ops._mode_norm_backward(dy, x, *rows, stats, gates, *params, None, None, True, layer.eps)


def _sync_mix_case() -> None:
    """SyncModeNorm's mix launches (no process group on meta tensors: the kernels directly):
    the batch statistics, their merge, the forward from given statistics, the backward in
    two launches (C = 24: one channel block, the gates fused; C = 40: two; 128 × 200: the
    gates computed once, kernels/mix.GATES_KERNEL_MIN_ELEMENTS; 4096 × 40: the samples split
    as well, kernels/mix.SPLIT_MIN_ROWS)."""
    k = 3
    for n, c in ((16, 24), (16, 40), (128, 200), (4096, 40)):
        rows = [torch.randn(n, c, device=DEVICE) for _ in range(5)]
        shift, mean_dev, var_rows, sum_dy, sum_dy_xs = rows
        gate_weight, gate_bias = torch.randn(k, c, device=DEVICE), torch.randn(k, device=DEVICE)
        weight, bias = torch.randn(c, device=DEVICE), torch.randn(c, device=DEVICE)
        mix.mode_norm_batch_stats(shift, mean_dev, var_rows, gate_weight, gate_bias)
        stats = mix.merge_mode_stats(torch.randn(4, k + 3 * k * c, device=DEVICE), k, c)
        common = (gate_weight, gate_bias, weight)
        mix.mode_norm_forward(shift, mean_dev, var_rows, *common, bias, None, None, True,
                              1e-5, stats=stats)  # fmt: skip
        mix.mode_norm_backward(sum_dy, sum_dy_xs, 9, shift, mean_dev, var_rows, *common,
                               None, None, True, 1e-5, stats, lambda sums: sums)  # fmt: skip


def _cumulative_average_case(kind: str) -> Callable[[], None]:
    """momentum=None: the running estimates' weight is a tensor the kernel reads."""

    def run() -> None:
        layer = _layer(kind, 6, 2, torch.float32)
        if kind == "MN":
            layer.momentum = None
        _train_and_eval(layer, torch.randn(4, 6, 5, 5, device=DEVICE))

    return run


def _no_gate_bias_case(kind: str) -> Callable[[], None]:
    """The functional API without a gate bias (the layers always have one)."""

    def run() -> None:
        x = torch.randn(6, 10, 5, 5, device=DEVICE, requires_grad=True)
        if kind == "MN":
            gate_weight = torch.randn(2, 10, device=DEVICE, requires_grad=True)
            stats = torch.zeros(2, 10, device=DEVICE), torch.ones(2, 10, device=DEVICE)
            y = mn_triton.functional.mode_norm(x, gate_weight, None, *stats, training=True)
        else:
            gate_weight = torch.randn(2, 1, device=DEVICE, requires_grad=True)
            y = mn_triton.functional.mode_group_norm(x, gate_weight, None)
        y.sum().backward()

    return run


def _shape_case(kind, shape, dtype, k, affine=True):
    dtype = dtype or torch.float32

    def run() -> None:
        x = torch.randn(shape, dtype=dtype, device=DEVICE)
        _train_and_eval(_layer(kind, shape[1], k, dtype, affine), x)

    return run


def _layout_case(kind: str, dtype: torch.dtype, which: str) -> Callable[[], None]:
    def run() -> None:
        if which == "cl":
            x = torch.randn(16, 32, 14, 14, dtype=dtype, device=DEVICE)
            x = x.to(memory_format=torch.channels_last)
            x3 = torch.randn(4, 8, 3, 5, 6, dtype=dtype, device=DEVICE)
            x3 = x3.to(memory_format=torch.channels_last_3d)
            _train_and_eval(_layer(kind, 8, 2, dtype), x3)
        else:  # batch, channel and spatial slices: one or two strided spatial levels
            x = torch.randn(12, 40, 15, 17, dtype=dtype, device=DEVICE)[::2, 3:35, 1:14, ::3]
        _train_and_eval(_layer(kind, x.shape[1], 2, dtype), x)

    return run


# ------------------------------------- report -----------------------------------------


def read_compared(path: Path) -> list[dict]:
    """The "compiled" of an earlier --json; ValueError (before the sweep's minutes) if the
    file is not one, or was written before compile_check kept PTX digests."""
    try:
        compiled = json.loads(path.read_text())["compiled"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a compile_check --json file: {error!r}") from None
    if not all("ptx_digest" in c for c in compiled):
        raise ValueError(f"{path} holds no PTX digests (written before --compare existed): "
                         "write it again with --json at the kernels to compare with")  # fmt: skip
    return compiled


# Compute capabilities of NVIDIA GPUs from Volta on that Triton 3.9's LLVM compiles for (each
# checked on 2026-12-07). Another number can abort the whole process inside LLVM (71, 101,
# 130: "Cannot select"), after a sweep's worth of work, with no summary.
ARCHS = (70, 72, 75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    archs = ", ".join(map(str, ARCHS))
    parser.add_argument("--arch", type=int, default=90, choices=ARCHS, metavar="ARCH",
                        help=f"compute capability, one of {archs}")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smaller sweep")
    parser.add_argument("--no-spills", action="store_true", help="fail if a kernel spills")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--compare", type=Path, help="an earlier --json: whose PTX differs?")
    args = parser.parse_args(argv)
    try:
        compared = read_compared(args.compare) if args.compare else None
    except ValueError as error:
        parser.error(f"--compare: {error}")
    if args.json and (args.json.is_dir() or not args.json.parent.is_dir()):
        parser.error(f"--json {args.json}: not a file in an existing folder")  # before the sweep

    compile_instead_of_launch(args.arch)
    recorder = Recorder(args.arch)
    recorder.install()  # launches also record what they compiled
    layout.CPU_TARGET_PROGRAMS = layout.PROGRAMS_PER_SM * H100_SMS  # GPU-sized row splits
    mn_triton.set_backend("triton")

    cases = sweep(args.quick)
    for i, (label, run) in enumerate(cases, 1):
        recorder.case = label
        print(f"[{i}/{len(cases)}] {label}", file=sys.stderr, flush=True)
        try:
            run()
        except Exception as error:
            recorder.failures.append(Failure("(host code)", label, repr(error)))

    print(f"{'kernel':30} {'warps':>5} {'regs':>4} {'spill':>5} {'smem':>6}  {'loads':24} case")
    for c in sorted(recorder.compiled.values(), key=lambda c: (c.kernel, c.registers)):
        print(
            f"{c.kernel:30} {c.num_warps:5d} {c.registers:4d} {c.spill_bytes:5d} "
            f"{c.shared_bytes:6d}  {c.global_loads:24} {c.case}  [{c.constexprs}]"
        )
    spilled = [c for c in recorder.compiled.values() if c.spill_bytes > 0]
    print(
        f"sm_{args.arch}: {len(recorder.compiled)} specialisations compiled, "
        f"{len(recorder.failures)} failures, {len(spilled)} with spills"
    )
    for failure in recorder.failures:
        print(f"FAILED {failure.kernel} in case '{failure.case}':\n{failure.error}\n")
    if compared is not None:
        changes = compare(list(recorder.compiled.values()), compared)
        print(f"PTX against {args.compare}, source positions aside: {len(changes)} kernels "
              "(by constexprs and case) differ, are new or are gone")  # fmt: skip
        for change in changes:
            print(f"    {change}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "arch": args.arch,
                    "compiled": [asdict(c) for c in recorder.compiled.values()],
                    "failures": [asdict(f) for f in recorder.failures],
                },
                indent=1,
            )
        )
    return 1 if recorder.failures or (args.no_spills and spilled) else 0


if __name__ == "__main__":
    sys.exit(main())
