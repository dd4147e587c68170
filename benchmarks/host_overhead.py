"""Host time of one layer call (forward + backward) on a tiny input: what a small network pays
per normalization layer when kernel launches, not memory traffic, bound a step.

    python benchmarks/host_overhead.py [--device cuda|cpu] [--calls 500] [--compile-only]
                                       [--compiled [--compiled-input maps|features]]
                                       [--points on|off] [--dtype float32|float16|bfloat16]

On a GPU this times the Triton path's Python side (argument checks, planning, launches);
on a CPU, mn_triton's torch-op path. With --compile-only (no GPU needed) it times the Triton
path's host side on CPU tensors: every launch binds and specialises its arguments and looks
up the compiled kernel as a real launch does, with the kernels compiled for sm_90 and never
run (tools/compile_check.py). It leaves out the launcher itself: Triton's C launcher packing
the arguments and the CUDA driver call, a few µs per launch. Prints microseconds per call,
median of 5 rounds, for maps (2, 8, 4, 4) and for features (2, 8).

With --compiled it then times the layers on maps under torch.compile (forward and backward
compiled, as in a compiled training step) in two ways: the custom ops opaque, their Python
bodies run on every call (the default), and with ops.TRACE_KERNELS, inductor launching the
kernels from its own code. The second needs CUDA: inductor does not launch user Triton kernels
for CPU tensors, so --compile-only shows the first only. `--compiled-input features` times them
on the features instead; `--points off` turns off the path that rows of one element take
(backend.POINT_ROWS), for what it saves. `--dtype` gives the inputs another dtype (the layers'
parameters stay float32, as under autocast).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Run as a script, only benchmarks/ is on sys.path; time the layers of this checkout (the
# repository root), not whichever mn_triton happens to be installed.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

import mn_triton  # noqa: E402
from mn_triton import backend, ops  # noqa: E402

# Maps, and features (rows of one element: no passes over x, backend.POINT_ROWS).
SHAPES = ((2, (2, 8, 4, 4)), (1, (2, 8)))  # (rank variant, input shape)
# What --compiled times: maps by default (the kernel warm-up compiles those calls).
COMPILED_INPUTS = {"maps": SHAPES[0], "features": SHAPES[1]}
COMPILED_SHAPE = COMPILED_INPUTS["maps"]


def layers_for(dim: int) -> dict[str, nn.Module]:
    """BatchNorm{dim}d and our two layers at K = 2, on 8 channels."""
    return {
        f"BatchNorm{dim}d": getattr(nn, f"BatchNorm{dim}d")(8),
        **{
            f"mn_triton.{kind}{dim}d K=2": getattr(mn_triton, f"{kind}{dim}d")(8, num_modes=2)
            for kind in ("ModeNorm", "ModeGroupNorm")
        },
    }


def _per_call_us(layer: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Host µs per forward+backward call. The gradients are set to None before each call, as
    a training step's `zero_grad()` does: otherwise each call would add into the last one's,
    an `add_` per leaf (3 for BatchNorm, 5 for ours) that a training step does not pay."""
    leaves = [x, *layer.parameters()]

    def run() -> None:
        for _ in range(calls):
            for leaf in leaves:
                leaf.grad = None
            layer(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    run()  # warm-up (compiles kernels on a GPU, and the layer under --compiled)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def compiled_variants(traced_too: bool) -> list[tuple[str, bool]]:
    """(label, ops.TRACE_KERNELS) per compiled way of running our layers."""
    variants = [("compiled, ops opaque", False)]
    if traced_too:
        variants.append(("compiled, kernels traced", True))
    return variants


def _compiled_us(layer: nn.Module, x: torch.Tensor, calls: int, trace_kernels: bool) -> float:
    """`_per_call_us` of torch.compile(layer), compiled afresh (its own dynamo cache) with
    TRACE_KERNELS as given while it traces; the switch is put back after."""
    torch._dynamo.reset()
    saved = ops.TRACE_KERNELS
    ops.TRACE_KERNELS = trace_kernels
    try:
        return _per_call_us(torch.compile(layer, fullgraph=True), x, calls)
    finally:
        ops.TRACE_KERNELS = saved
        torch._dynamo.reset()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--calls", type=int, default=500)
    p.add_argument(
        "--compile-only", action="store_true",
        help="the Triton path's host time without a GPU (kernels compiled, not launched)",
    )  # fmt: skip
    p.add_argument(
        "--skip-launch-path", action="store_true",
        help="with --compile-only: kernel[grid](...) does nothing (its share of host time)",
    )  # fmt: skip
    p.add_argument(
        "--compiled", action="store_true",
        help="also the layers on maps under torch.compile: ops opaque, and (CUDA) kernels traced",
    )  # fmt: skip
    p.add_argument(
        "--compiled-input", choices=COMPILED_INPUTS, default="maps",
        help="what --compiled times the layers on (default: maps)",
    )  # fmt: skip
    p.add_argument(
        "--points", choices=["on", "off"], default="on",
        help="off: rows of one element keep their passes (backend.POINT_ROWS), to compare",
    )  # fmt: skip
    p.add_argument(
        "--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
        help="the inputs' dtype (the layers' parameters stay float32, as under autocast)",
    )  # fmt: skip
    args = p.parse_args()
    backend.POINT_ROWS = args.points == "on"
    path = "torch ops" if args.device == "cpu" else "Triton"
    if args.compile_only:
        if backend.INTERPRETING:
            p.error("--compile-only needs the real kernels: unset TRITON_INTERPRET")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
        from compile_check import compile_instead_of_launch

        compile_instead_of_launch()
        args.device, path = "cpu", "Triton, compile-only"
        if args.skip_launch_path:
            JITFunction.__getitem__ = lambda fn, grid: lambda *a, **k: None
            path = "Triton, without its launch path"
    elif args.skip_launch_path:
        p.error("--skip-launch-path needs --compile-only")
    dtype = getattr(torch, args.dtype)
    of_dtype = "" if dtype == torch.float32 else f" {args.dtype}"
    for dim, shape in SHAPES:
        x = torch.randn(shape, device=args.device, dtype=dtype, requires_grad=True)
        print(f"host time per forward+backward call, {args.device} ({path}), input {shape}"
              f"{of_dtype}:")  # fmt: skip
        for name, layer in layers_for(dim).items():
            print(f"  {name:32s} {_per_call_us(layer.to(args.device), x, args.calls):8.1f} µs")
    if not args.compiled:
        return 0
    dim_and_shape = COMPILED_INPUTS[args.compiled_input]
    print(f"under torch.compile, {args.device} ({path}), input {dim_and_shape[1]}{of_dtype}:")
    traced_too = args.device.startswith("cuda") and not args.compile_only
    failed = print_compiled(args.device, args.calls, traced_too, dim_and_shape, dtype)
    return 1 if failed else 0


def print_compiled(
    device: str, calls: int, traced_too: bool, dim_and_shape: tuple,
    dtype: torch.dtype = torch.float32,
) -> int:  # fmt: skip
    """Prints each layer's host time per compiled call (ours each way) on `dim_and_shape`'s
    input in `dtype`; returns how many ways failed, each printed as FAILED with its error
    while the others still run."""
    dim, shape = dim_and_shape
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    failures = 0
    for name, layer in layers_for(dim).items():
        layer = layer.to(device)
        ours = name.startswith("mn_triton")
        for way, traced in compiled_variants(traced_too) if ours else [("compiled", False)]:
            label = f"{name}, {way}"
            try:
                us = _compiled_us(layer, x, calls, traced)
            except Exception as error:
                failures += 1
                first_line = (str(error).splitlines() or [""])[0][:200]
                print(f"  {label:58s}   FAILED: {type(error).__name__}: {first_line}")
                continue
            print(f"  {label:58s} {us:8.1f} µs")
    if not traced_too:
        print("  (kernels traced: needs CUDA; inductor launches no user kernels on a CPU)")
    return failures


if __name__ == "__main__":
    sys.exit(main())
