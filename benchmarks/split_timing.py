"""Time ModeNorm with and without its mix kernels' sample split (kernels/mix.SPLIT_MIN_ROWS),
beside BatchNorm, at BatchNorm1d-like shapes and at the smallest CNN batch that splits: the
measurement that is to place SPLIT_MIN_ROWS and MIX_PROGRAMS (benchmarks/NOTES.md).

    python benchmarks/split_timing.py                          # on a GPU: the shapes below
    python benchmarks/split_timing.py --shape 8192 64 --shape 2048 16 8 8 --k 2 6

Per shape and K it prints the median forward+backward time of a training step of the layer
(CUDA events after a warm-up, the L2 flushed before each call: benchmarks/measure.time_fn)
with the samples split as the rule says, never split, and of BatchNorm, and the ratios.
Without a GPU it runs the same code through Triton's interpreter (set TRITON_INTERPRET=1),
as a check that it works, by default on one tiny shape split in 3 and one timed call (the
GPU's shapes would take the interpreter hours); those times say nothing about GPU speed and
are labelled so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

# Run as a script, only benchmarks/ is on sys.path; the layers live in the repository root.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import measure  # noqa: E402

import mn_triton  # noqa: E402
from mn_triton.kernels import mix  # noqa: E402

# (N, C, *S): many samples of few features (2 and 128 programs split), a wider one, and the
# smallest CNN batch that splits (2048 × 16 × 8 × 8: there the split's launches cost time
# that the passes over x may not hide).
SHAPES = [(8192, 64), (65536, 64), (4096, 256), (2048, 16, 8, 8)]
NEVER = 2**62
# Without a GPU (the interpreter, ~5 ms per program): 12 samples split in 3 (at 4 rows).
CPU_CHECK = {"shape": [(12, 5)], "split_min_rows": 4, "warmup": 0, "reps": 1}


def _splits(shape: tuple[int, ...], k: int) -> int:
    n, c = shape[:2]
    block_n, block_c, _, _ = mix._mn_blocks(n, c, k)
    return mix._mn_splits(n, c, block_n, block_c)[0]


def _step_ms(layer: nn.Module, shape: tuple[int, ...], device: str, args) -> float:
    """Median ms of one forward + backward of `layer` on a fresh input of `shape`."""
    x = torch.randn(shape, device=device, requires_grad=True)
    dy = torch.randn(shape, device=device)

    leaves = [x, *layer.parameters()]

    def step(_: int) -> None:
        for leaf in leaves:  # stored, not added to the last step's (dx: a pass over x more)
            leaf.grad = None
        layer(x).backward(dy)

    return measure.time_fn(step, torch.device(device), args.warmup, args.reps).ms_p50


def _batch_norm(shape: tuple[int, ...]) -> nn.Module:
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    return cls[len(shape)](shape[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", action="append", metavar="DIM",
                        help="an input shape (N, C, *S); repeatable")  # fmt: skip
    parser.add_argument("--k", type=int, nargs="+", default=[2], help="numbers of modes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 10; CPU 0)")
    parser.add_argument("--reps", type=int, help="timed calls (default 50; CPU 1)")
    parser.add_argument("--split-min-rows", type=int,
                        help="the rule's SPLIT_MIN_ROWS for the 'split' column (default: "
                             "the rule's; CPU 4)")  # fmt: skip
    args = parser.parse_args(argv)
    defaults = {"shape": SHAPES, "split_min_rows": mix.SPLIT_MIN_ROWS, "warmup": 10, "reps": 50}
    if torch.device(args.device).type != "cuda":
        if not mn_triton.backend.INTERPRETING:
            parser.error("without a GPU, set TRITON_INTERPRET=1 (the split is in the kernels)")
        print("CPU, Triton's interpreter: a check that this runs, not GPU speed")
        defaults = CPU_CHECK
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    mn_triton.set_backend("triton")
    print(f"device: {measure.device_name(args.device)}; median ms of forward + backward")
    print(f"{'shape':>22} {'K':>3} {'splits':>6} {'split':>9} {'no split':>9} "
          f"{'BatchNorm':>9} {'no split / split':>16} {'split / BN':>10}")  # fmt: skip
    saved = mix.SPLIT_MIN_ROWS
    try:
        for shape in [tuple(s) for s in args.shape]:
            bn = _batch_norm(shape).to(args.device)
            bn_ms = _step_ms(bn, shape, args.device, args)
            for k in args.k:
                layer = mn_triton.ModeNorm(shape[1], num_modes=k).to(args.device)
                times = {}
                for name, min_rows in (("no split", NEVER), ("split", args.split_min_rows)):
                    mix.SPLIT_MIN_ROWS = min_rows
                    times[name] = _step_ms(layer, shape, args.device, args)
                splits = _splits(shape, k)  # under the 'split' column's rule, still set
                print(f"{str(shape):>22} {k:3d} {splits:6d} {times['split']:9.4f} "
                      f"{times['no split']:9.4f} {bn_ms:9.4f} "
                      f"{times['no split'] / times['split']:16.2f} "
                      f"{times['split'] / bn_ms:10.2f}")  # fmt: skip
    finally:
        mix.SPLIT_MIN_ROWS = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
