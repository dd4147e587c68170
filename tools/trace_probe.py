"""What inductor would launch for the layers with `ops.TRACE_KERNELS`, on a machine without a GPU.

With TRACE_KERNELS, torch.compile traces the MN and MGN ops' bodies and records each kernel
launch into the graph (torch.library.wrap_triton), so that inductor launches the kernels from
its generated code (mn_triton/ops.py). Only a GPU can run that code. This probe checks the
two things a CPU can: that the traced forward and backward graphs launch the same kernels,
on the same grids, as eager calls of the ops' bodies; and that inductor's analysis of which
arguments each kernel writes (it copies every such argument before the launch, unless it can
prove the copy unneeded) names only the kernel's outputs (KERNEL_OUTPUTS), not its inputs.
It also checks that each recorded launch passes only the kernel's own arguments (no compile
option), and that with the switch off nothing is recorded.

As tools/compile_check.py, it swaps Triton's driver for one that compiles for sm_90 and runs
nothing: kernels are compiled, never launched, so the layers' results are meaningless here.

    python tools/trace_probe.py          # every case; exit status 1 on a mismatch
    python tools/trace_probe.py -v       # also print each graph's launches
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # before triton or mn_triton: real JIT functions
# The analysis compiles kernels without the launches' option; fusion on, as layout.FP_FUSION.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile_check import H100_SMS, compile_instead_of_launch

compile_instead_of_launch()

import torch  # noqa: E402
from functorch.compile import make_boxed_func  # noqa: E402
from torch._functorch.aot_autograd import aot_module_simplified  # noqa: E402
from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

import mn_triton  # noqa: E402
from mn_triton import backend, ops  # noqa: E402
from mn_triton.kernels import layout  # noqa: E402

# The arguments each kernel may write: its outputs. Every other argument it takes is an
# input, which a correct analysis leaves alone.
KERNEL_OUTPUTS = {
    "_row_moments_kernel": {"SHIFT", "MEAN", "VAR"},
    "_merge_splits_kernel": {"OUT_A", "OUT_B"},
    "_row_grad_sums_kernel": {"SUM_DY", "SUM_DY_XS"},
    "_row_affine_kernel": {"OUT"},
    "_mn_gates_kernel": {"GATES"},
    "_mn_batch_stats_kernel": {"STATS"},
    "_mn_merge_stats_kernel": {"STATS"},
    "_mn_mix_forward_kernel": {
        "SCALE", "BIAS", "MODE_MEAN", "MODE_VAR", "STATS_OUT", "GATES_OUT", "RMEAN", "RMEAN_SQ",
    },
    "_mn_mix_backward_rows_kernel": {
        "SUM_D_RSTD", "SUM_G_DB", "SUM_W_DEV", "DY_SCALE", "X_SCALE", "ROW_BIAS",
        "GDG_PARTIAL", "D_WEIGHT", "D_BIAS", "D_GATE_W", "D_GATE_B",
    },
    "_mn_mix_backward_gates_kernel": {"ROW_BIAS", "D_GATE_W", "D_GATE_B"},
    "_sum_partials_kernel": {"D_WEIGHT", "D_BIAS", "D_GATE_W", "D_GATE_B"},
    "_mgn_mix_forward_kernel": {"SCALE", "BIAS"},
    "_mgn_mix_backward_kernel": {"DY_SCALE", "X_SCALE", "ROW_BIAS", "PARTIAL"},
}  # fmt: skip

# (name, layer, input shape, training, captured into CUDA graphs, dynamic sizes)
CASES = [
    ("MN training, 2 channel blocks", "ModeNorm2d", (8, 40, 5, 5), True, False, False),
    ("MN eval", "ModeNorm2d", (8, 40, 5, 5), False, False, False),
    ("MN training, channels_last", "ModeNorm2d", (4, 8, 5, 3), True, False, False),
    ("MN training, samples split", "ModeNorm2d", (2048, 16, 2, 1), True, False, False),
    # Long rows split across programs, as on a GPU (_merge_splits_kernel): see probe.
    ("MN training, rows split", "ModeNorm2d", (2, 4, 64, 64), True, False, False),
    ("MN training, as captured", "ModeNorm2d", (32, 40, 3, 3), True, True, False),
    ("MN eval, as captured", "ModeNorm2d", (32, 40, 3, 3), False, True, False),
    ("MGN training", "ModeGroupNorm2d", (8, 16, 5, 5), True, False, False),
    # Rows of one element: no moments, gradient-sums or apply pass (backend.POINT_ROWS).
    ("MN training, rows of one element", "ModeNorm1d", (16, 40), True, False, False),
    ("MGN training, rows of one element", "ModeGroupNorm1d", (16, 40), True, False, False),
    # ... also in 16 bits or transposed (float32 copies of x and dy as s and Σ dy)
    ("MN training, bfloat16 rows of one element", "ModeNorm1d", (16, 40), True, False, False),
    ("MGN training, transposed rows of one element", "ModeGroupNorm1d", (16, 40), True, False,
     False),
    # Symbolic sizes keep the ops whole: the host code plans from sizes.
    ("MN training, dynamic sizes", "ModeNorm2d", (8, 40, 5, 5), True, False, True),
    ("MGN training, dynamic sizes", "ModeGroupNorm2d", (8, 16, 5, 5), True, False, True),
]  # fmt: skip

# (kernel, grid, arguments by name: eager ones give their sizes, strides and other numbers,
# the compile-time choices and num_warps; traced ones every argument)
Launch = tuple[str, tuple[int, int, int], dict]


def _grid3(grid: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(grid) + (1,) * (3 - len(grid))  # type: ignore[return-value]


class Recorder:
    """Eager launches (compiled for sm_90, not run) and the runs of traced graphs (nothing)."""

    def __init__(self) -> None:
        self.eager: list[Launch] | None = None
        self._parameters: dict[str, set[str]] = {}
        compile_only = JITFunction.__getitem__

        def getitem(fn: JITFunction, grid: tuple[int, ...]) -> Callable:
            run = compile_only(fn, grid)
            if self.eager is None or layout._RECORDING.get():
                return run

            def launch(*args: object, **kwargs: object) -> None:
                options = {k: v for k, v in kwargs.items() if k != "enable_fp_fusion"}
                numbers = {name: arg for name, arg in zip(fn.arg_names, args, strict=False)
                           if not isinstance(arg, torch.Tensor)}  # fmt: skip
                self.eager.append((fn.fn.__name__, _grid3(grid), {**numbers, **options}))
                run(*args, **kwargs)

            return launch

        JITFunction.__getitem__ = getitem
        # A traced graph launches through its kernel table; outside tracing, launch nothing.
        self._get_kernel = kernel_side_table.get_kernel
        kernel_side_table.get_kernel = self._kernel_or_nothing

    def _kernel_or_nothing(self, idx: int) -> object:
        kernel = self._get_kernel(idx)
        return kernel if layout._RECORDING.get() else _NoLaunch(kernel)

    def kernel_name(self, idx: int) -> str:
        kernel = self._get_kernel(idx)
        self._parameters[kernel.fn.__name__] = set(kernel.arg_names)
        return kernel.fn.__name__

    def parameters(self, name: str) -> set[str]:
        """The parameters of the kernel called `name` (one whose name this gave)."""
        return self._parameters[name]


class _NoLaunch:
    def __init__(self, kernel: JITFunction) -> None:
        self.kernel = kernel

    def __getattr__(self, name: str) -> object:
        return getattr(self.kernel, name)

    def __getitem__(self, grid: object) -> Callable:
        return lambda *args, **kwargs: None


def traced_launches(gm: torch.fx.GraphModule, recorder: Recorder) -> list[tuple[Launch, list]]:
    """Each recorded launch of a graph: (kernel, grid, every argument by name, num_warps
    among them) and the arguments taken as written."""
    hops = (
        torch.ops.higher_order.triton_kernel_wrapper_functional,
        torch.ops.higher_order.triton_kernel_wrapper_mutation,
    )
    found = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in hops:
            (grid,) = node.kwargs["grid"]
            kernel = recorder._get_kernel(node.kwargs["kernel_idx"])
            arguments = {
                **node.kwargs["kwargs"],
                **kernel_side_table.get_constant_args(node.kwargs["constant_args_idx"]),
            }
            if hasattr(kernel, "configs"):  # num_warps became a config of an autotuner
                arguments["num_warps"] = kernel.configs[0].num_warps
            launch = (recorder.kernel_name(node.kwargs["kernel_idx"]), _grid3(grid), arguments)
            found.append((launch, list(node.kwargs.get("tensors_to_clone", []))))
    return found


def same_launches(traced: list[Launch], eager: list[Launch]) -> bool:
    """The same kernels on the same grids, with the same numbers (sizes, strides, eps, …)
    and compile-time choices."""
    return len(traced) == len(eager) and all(
        t[:2] == e[:2] and all(t[2].get(k, "absent") == v for k, v in e[2].items())
        for t, e in zip(traced, eager, strict=True)
    )


def launch_problems(
    traced: list[tuple[Launch, list]], expected: list[Launch], parameters: Callable[[str], set]
) -> list[str]:
    """How a case's recorded launches (traced_launches) fall short: not the eager calls'
    launches (`expected`); an input among the arguments taken as written; an argument that
    is not among the kernel's `parameters` (a compile option)."""
    problems = []
    if not same_launches([launch for launch, _ in traced], expected):
        short = [launch[:2] for launch, _ in traced], [launch[:2] for launch in expected]
        problems.append("traced launches differ from eager ones: {} against {}".format(*short))
    for (kernel, _grid, arguments), written in traced:
        inputs = sorted(set(written) - KERNEL_OUTPUTS[kernel])
        if inputs:
            problems.append(f"{kernel}: inputs taken as written (copied each call): {inputs}")
        others = sorted(set(arguments) - parameters(kernel) - {"num_warps"})
        if others:  # compile options (enable_fp_fusion) are not the kernel's to take
            problems.append(f"{kernel}: recorded with arguments it does not take: {others}")
    return problems


def eager_launches(layer: torch.nn.Module, x: torch.Tensor, recorder: Recorder) -> list[Launch]:
    """The launches of the op bodies that the traced graphs hold, called as the compiled
    layer calls them (running estimates after the op in training; rows of one element
    where backend.point_rows says so)."""
    gw, gb = layer.gate.weight.detach(), layer.gate.bias.detach()
    w, b, eps = layer.weight.detach(), layer.bias.detach(), layer.eps
    points = backend.point_rows(x, gw)
    recorder.eager = []
    if isinstance(layer, mn_triton.ModeGroupNorm):
        y, *rows = ops._mode_group_norm_op_forward(x, gw, gb, w, b, eps, points)
        ops._mode_group_norm_op_backward(y, x, *rows, gw, gb, w, eps)
    else:
        training = layer.training
        estimates = (None, None) if training else (layer.running_mean, layer.running_mean_sq)
        out = ops._mode_norm_op_forward(x, gw, gb, w, b, *estimates, training, eps, points)
        y, shift, mean_dev, var_rows, _, _, stats, gates = out
        stats = stats if training else None
        ops._mode_norm_op_backward(
            y, x, shift, mean_dev, var_rows, stats, gates, gw, gb, w,
            layer.running_mean, layer.running_mean_sq, training, eps,
        )  # fmt: skip
    launches, recorder.eager = recorder.eager, None
    return launches


def compiled_graphs(
    layer: torch.nn.Module, x: torch.Tensor, inductor_config: dict, dynamic: bool = False
) -> list[torch.fx.GraphModule]:
    """The forward and backward graphs AOTAutograd makes of one training call of `layer`
    compiled (inductor's config patched as given while it is), as inductor would get them."""
    torch._dynamo.reset()
    graphs: list[torch.fx.GraphModule] = []

    def keep(gm: torch.fx.GraphModule, _inputs: list) -> Callable:
        graphs.append(gm)
        return make_boxed_func(gm)

    def compiler(gm: torch.fx.GraphModule, inputs: list) -> Callable:
        return aot_module_simplified(gm, inputs, fw_compiler=keep, bw_compiler=keep)

    from torch._inductor import config

    with config.patch(inductor_config):
        compiled = torch.compile(layer, backend=compiler, fullgraph=True, dynamic=dynamic)
        compiled(x.detach().requires_grad_()).sum().backward()
    return graphs


def _kept_whole(graphs: list[torch.fx.GraphModule]) -> int:
    return sum(str(n.target).startswith("mn_triton.") for gm in graphs for n in gm.graph.nodes)


def probe(case: tuple, recorder: Recorder, verbose: bool) -> list[str]:
    """The case's mismatches (none: the traced graphs launch as eager calls do). CPU tensors
    never split a row across programs (layout.CPU_TARGET_PROGRAMS); a "rows split" case asks
    for as many programs as compile_check's GPU (H100_SMS) takes, so long rows split as there."""
    saved = layout.CPU_TARGET_PROGRAMS
    if "rows split" in case[0]:
        layout.CPU_TARGET_PROGRAMS = layout.PROGRAMS_PER_SM * H100_SMS
    try:
        return _probe(case, recorder, verbose)
    finally:
        layout.CPU_TARGET_PROGRAMS = saved


def _probe(case: tuple, recorder: Recorder, verbose: bool) -> list[str]:
    name, kind, shape, training, captured, dynamic = case
    layer = getattr(mn_triton, kind)(shape[1], num_modes=2).train(training)
    channels_last = "channels_last" in name
    layout_ = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).to(memory_format=layout_)
    if "transposed" in name:
        x = x.t().contiguous().t()
    if "bfloat16" in name:  # the layer's parameters stay float32, as under autocast
        x = x.to(torch.bfloat16)
    graphs = compiled_graphs(layer, x, {"triton.cudagraphs": captured}, dynamic)
    traced = [launch for gm in graphs for launch in traced_launches(gm, recorder)]
    with backend.as_captured() if captured else nullcontext():
        expected = [] if dynamic else eager_launches(layer, x.detach(), recorder)
    problems = []
    whole = _kept_whole(graphs)
    if whole != (2 if dynamic else 0):
        problems.append(f"{whole} calls of mn_triton's ops kept whole")
    problems += launch_problems(traced, expected, recorder.parameters)
    print(f"{name}, {kind} {tuple(shape)}: {len(graphs)} graphs, {len(traced)} launches, "
          f"{'ok' if not problems else 'MISMATCH'}")  # fmt: skip
    if verbose:
        for (kernel, grid, _arguments), written in traced:
            print(f"    {kernel} grid {grid} writes {written}")
    return problems


def switched_off(recorder: Recorder) -> list[str]:
    """With the switch off (the default), nothing is recorded: the layers hand the ops
    record_kernels=False, and the ops stay whole, as they were before TRACE_KERNELS."""
    ops.TRACE_KERNELS = False
    try:
        graphs = compiled_graphs(mn_triton.ModeNorm2d(8, num_modes=2), torch.randn(4, 8, 3, 3), {})
    finally:
        ops.TRACE_KERNELS = True
    whole = _kept_whole(graphs)
    recorded = sum(len(traced_launches(gm, recorder)) for gm in graphs)
    print(f"switched off, ModeNorm2d: {whole} ops kept whole, {recorded} launches recorded")
    return [] if (whole, recorded) == (2, 0) else ["switched off, launches recorded anyway"]


def exported_whole() -> list[str]:
    """torch.export keeps the ops whole (a serialisable program, no kernels in it), also when
    its program is decomposed to aten ops."""
    layer = mn_triton.ModeNorm2d(8, num_modes=2)
    program = torch.export.export(layer, (torch.randn(4, 8, 3, 3),)).run_decompositions()
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    kept = [t for t in targets if t.startswith("mn_triton.")]
    recorded = [t for t in targets if "triton_kernel_wrapper" in t]
    print(f"torch.export of ModeNorm2d, decomposed: {kept}, {len(recorded)} recorded launches")
    return [] if kept and not recorded else [f"exported program holds {targets}"]


def float64_needs_fp64_floats(recorder: Recorder) -> list[str]:
    """A float64 layer records its launches only where inductor passes the kernels' Python
    float arguments (eps, 1/L) as float64, as they declare them (its setting
    _use_fp64_for_unbacked_floats, on by default); where a user turns that off, they would
    come as float32 and cost float64 its accuracy, so the ops stay whole."""
    problems = []
    for fp64_floats in (True, False):
        layer = mn_triton.ModeNorm2d(8, num_modes=2).double()
        graphs = compiled_graphs(layer, torch.randn(4, 8, 3, 3, dtype=torch.float64),
                                 {"_use_fp64_for_unbacked_floats": fp64_floats})  # fmt: skip
        whole = _kept_whole(graphs)
        recorded = sum(len(traced_launches(gm, recorder)) for gm in graphs)
        setting = "on" if fp64_floats else "off"
        print(f"float64 ModeNorm2d, inductor's float64 floats {setting}: {whole} ops kept "
              f"whole, {recorded} launches recorded")  # fmt: skip
        if (whole, recorded > 0) != ((0, True) if fp64_floats else (2, False)):
            problems.append(f"float64 with inductor's float64 floats {setting}: {whole} ops "
                            f"kept whole, {recorded} launches recorded")  # fmt: skip
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    ops.TRACE_KERNELS = True  # (compile_instead_of_launch gives CPU tensors the kernels)
    recorder = Recorder()
    problems = [p for case in CASES for p in probe(case, recorder, args.verbose)]
    problems += float64_needs_fp64_floats(recorder)
    problems += switched_off(recorder)
    problems += exported_whole()
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
