"""Count the bytes the MN mix kernels move, per launch and per program, without a GPU.

The mix works on (N, C) row statistics, small next to x, but each of its programs walks
every sample several times, and the time of a launch is its slowest program's. This runs
one training forward and backward of the MN mix kernels in Triton's interpreter on random
statistics and counts, for each launch, the bytes its loads and stores move (lanes the
mask lets through), as tests/memcheck.py sees them (and checks them): in all, and for its
busiest program. Beside them, the passes over x
of the same layer move 3·|x| forward and 5·|x| backward (benchmarks/NOTES.md, "The bytes
model"), spread over the whole GPU.

    python tools/mix_traffic.py                          # the grid's layer shapes, K = 2
    python tools/mix_traffic.py --shape 128 512 49 --k 2 6
    python tools/mix_traffic.py --gates inline           # every program computes the gates
    python tools/mix_traffic.py --shape 8192 64 1 --split off   # one block of all samples
    python tools/mix_traffic.py --layer --shape 128 120 1 --k 6  # every launch of a layer step
    python tools/mix_traffic.py --layer --shape 128 120 1 --k 6 --points off
    python tools/mix_traffic.py --captured --shape 128 120 1 --k 6  # as in a CUDA graph
    python tools/mix_traffic.py --shape 2048 512 1 --k 8 --gate-shares apart

`--layer` counts every launch of a ModeNorm1d layer's training step on float32 (N, C, L)
inputs ((N, C) where L = 1), the passes over x included (on rows of one element, dx's
torch op, TORCH_DX, in their place; where the MN backward sums its channel blocks' shares
of the gate sums first, that torch op too, TORCH_GATE_SHARES), against the minimum of 3·|x|
forward and 5·|x| backward; `--points off` keeps the passes for rows of one element
(mn_triton.backend.POINT_ROWS).

Counts only: what they cost in time depends on the GPU (a program's reads come from L2 at
a fraction of the device's bandwidth); benchmarks/NOTES.md turns them into predictions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are decorated
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import memcheck  # noqa: E402  (tests/: it sees every interpreted load and store)
import mn_triton  # noqa: E402
from mn_triton import backend, ops  # noqa: E402
from mn_triton.kernels import mix  # noqa: E402

# (N, C, L) of the layer grid's shapes at batch 128 (benchmarks/grid.py): CIFAR ResNet,
# ImageNet ResNet-18, and LeNet's first fully connected layer.
SHAPES = [(128, 16, 1024), (128, 32, 256), (128, 64, 64), (128, 64, 3136), (128, 128, 784),
          (128, 256, 196), (128, 512, 49), (128, 120, 1)]  # fmt: skip


@dataclass
class Launch:
    kernel: str
    programs: int
    bytes_per_program: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total(self) -> int:
        return sum(self.bytes_per_program.values())

    @property
    def busiest(self) -> int:
        return max(self.bytes_per_program.values(), default=0)


class Counter:
    """Notes each interpreted launch's bytes per program, from the accesses memcheck sees
    (which also checks them: in bounds, no races)."""

    def __init__(self) -> None:
        self.launches: list[Launch] = []

    def install(self) -> None:
        if not memcheck.install():
            raise RuntimeError(f"this Triton's interpreter lacks {memcheck.missing_hooks()}")
        memcheck.add_listener(self._note)

    def _note(self, kernel: str, grid: tuple[int, ...], accesses: memcheck.Accesses) -> None:
        launch = Launch(kernel, int(np.prod(grid)))
        for access in accesses.values():
            for addresses, program, size in access:
                launch.bytes_per_program[program] += addresses.size * size
        self.launches.append(launch)


def run_mix(n: int, c: int, k: int, counter: Counter) -> tuple[list[Launch], list[Launch]]:
    """One training forward and backward of the MN mix (float32 statistics; the backward
    takes the batch statistics and gates the forward kept, as the layers do): the launches
    of each."""
    g = torch.Generator().manual_seed(0)
    shift, mean_dev, sum_dy, sum_dy_xs = (torch.randn(n, c, generator=g) for _ in range(4))
    var_rows = torch.rand(n, c, generator=g) + 0.5
    gate_weight, gate_bias = torch.randn(k, c, generator=g) / c**0.5, torch.zeros(k)
    weight, bias = torch.ones(c), torch.zeros(c)
    running = torch.zeros(k, c), torch.ones(k, c)
    counter.launches.clear()
    kept, gates = torch.empty(k + 3 * k * c), torch.empty(n, k)  # as the layers keep them
    mix.mode_norm_forward(shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias,
                          *running, True, 1e-5, momentum=0.1, stats_out=kept,
                          gates_out=gates)  # fmt: skip
    forward = list(counter.launches)
    counter.launches.clear()
    with _counting_gate_shares(counter):
        mix.mode_norm_backward(sum_dy, sum_dy_xs, 49, shift, mean_dev, var_rows, gate_weight,
                               gate_bias, weight, *running, True, 1e-5, stats=kept,
                               gates=gates)  # fmt: skip
    return forward, list(counter.launches)


def run_layer(
    n: int, c: int, length: int, k: int, counter: Counter
) -> tuple[list[Launch], list[Launch]]:
    """One training forward and backward of a ModeNorm1d layer on float32 (N, C, L) data
    ((N, C) at L = 1), through mn_triton's kernels: the launches of each."""
    g = torch.Generator().manual_seed(0)
    layer = mn_triton.ModeNorm1d(c, num_modes=k)
    shape = (n, c) if length == 1 else (n, c, length)
    x = torch.randn(shape, generator=g).requires_grad_()
    dy = torch.randn(shape, generator=g)
    counter.launches.clear()
    with (
        mn_triton.use_backend("triton"),
        _counting_torch_dx(counter),
        _counting_gate_shares(counter),
    ):
        y = layer(x)
        forward = list(counter.launches)
        counter.launches.clear()
        y.backward(dy)
    return forward, list(counter.launches)


# What ops._dx launches instead of the apply pass on rows of one element: one torch op.
TORCH_DX = "torch addcmul_ (dx)"
# What the MN backward launches to sum its programs' shares of the gate sums first, where
# many programs share the channels (kernels/mix.GATE_PARTIALS_SUM_MIN): one torch op.
TORCH_GATE_SHARES = "torch sum (gate shares)"


@contextlib.contextmanager
def _counting_gate_shares(counter: Counter) -> Iterator[None]:
    """The sum of the programs' shares of Σ_c g·∂L/∂g (kernels/mix._gate_shares), a torch op
    the interpreter does not see: noted, where it runs, as a launch of one program moving the
    (P, N, K) shares and their (N, K) sum."""
    original = mix._gate_shares

    def counted(partial, programs):
        summed, shares = original(partial, programs)
        if summed is not partial:
            launch = Launch(TORCH_GATE_SHARES, 1)
            launch.bytes_per_program[0] = (partial.numel() + summed.numel()) * summed.element_size()
            counter.launches.append(launch)
        return summed, shares

    mix._gate_shares = counted
    try:
        yield
    finally:
        mix._gate_shares = original


@contextlib.contextmanager
def _counting_torch_dx(counter: Counter) -> Iterator[None]:
    """On rows of one element the backward's dx is a torch op, dx = row_bias + dy·dy_scale in
    place on the mix's row_bias (ops._dx), which the interpreter does not see: noted as a launch
    of one program moving its four (N, C) operands (three read, one written)."""
    original = ops._dx

    def counted(x, shift, grads, dy, input_grad, dy_rows, **kwargs):
        if input_grad and dy_rows is not None:
            launch = Launch(TORCH_DX, 1)
            launch.bytes_per_program[0] = 4 * grads.row_bias.numel() * grads.row_bias.element_size()
            counter.launches.append(launch)
        return original(x, shift, grads, dy, input_grad, dy_rows, **kwargs)

    ops._dx = counted
    try:
        yield
    finally:
        ops._dx = original


def _kib(b: int) -> str:
    return f"{b / 1024:8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, metavar=("N", "C", "L"), action="append",
                        help="a layer as (N, C, L = elements per row); repeatable")  # fmt: skip
    parser.add_argument("--k", type=int, nargs="+", default=[2], help="numbers of modes")
    parser.add_argument("--gates", choices=("default", "inline", "kernel"), default="default",
                        help="inline: every program computes the gates; kernel: one kernel "
                        "computes them wherever several programs share the channels")  # fmt: skip
    parser.add_argument("--split", choices=("default", "off"), default="default",
                        help="off: every program walks all samples of its channels (no "
                        "blocks of samples: kernels/mix.SPLIT_MIN_ROWS, and "
                        "GRAPH_SPLIT_MIN_ROWS under --captured)")  # fmt: skip
    parser.add_argument("--gate-shares", choices=("default", "apart", "summed"),
                        default="default", help="apart: each program of the backward's gates "
                        "kernel sums every channel block's share of the gate sums itself; "
                        "summed: a torch sum adds them up first wherever several programs "
                        "share the channels (kernels/mix.GATE_PARTIALS_SUM_MIN)")  # fmt: skip
    parser.add_argument(
        "--layer",
        action="store_true",
        help="every launch of a ModeNorm1d layer step, passes included",
    )
    parser.add_argument("--points", choices=("default", "off"), default="default",
                        help="off: rows of one element keep their passes over x "
                        "(mn_triton.backend.POINT_ROWS)")  # fmt: skip
    parser.add_argument("--captured", action="store_true",
                        help="the mix's choices for calls captured into CUDA graphs "
                        "(kernels/mix.as_captured: splits of 16 samples, gates once)")  # fmt: skip
    args = parser.parse_args(argv)
    for n, c, length in args.shape or ():
        if min(n, c, length) < 1 or (args.layer and n * length < 2):
            parser.error(f"--shape {n} {c} {length}: N, C and L must be 1 or more (and N·L 2 "
                         "or more with --layer: a training step's statistics)")  # fmt: skip
    if min(args.k) < 1:
        parser.error(f"--k {min(args.k)}: a layer has 1 mode or more")
    if args.gates != "default":
        mix.GATES_KERNEL_MIN_ELEMENTS = 2**62 if args.gates == "inline" else 0
    if args.split == "off":  # eager and captured calls split from different batch sizes
        mix.SPLIT_MIN_ROWS = mix.GRAPH_SPLIT_MIN_ROWS = 2**62
    if args.gate_shares != "default":
        mix.GATE_PARTIALS_SUM_MIN = 2**62 if args.gate_shares == "apart" else 0
    if args.points == "off":
        backend.POINT_ROWS = False
    counter = Counter()
    counter.install()
    if args.captured:
        print("As captured into a CUDA graph (kernels/mix.as_captured).")
    if args.layer:
        print("KiB moved by every launch of a ModeNorm1d layer (float32), training forward and")
        print("backward; 'busiest' is the program that moves the most.")
    else:
        print("KiB moved by the MN mix kernels (float32 statistics), training forward and "
              "backward;")  # fmt: skip
        print("'busiest' is the program that moves the most, which bounds the launch's time.")
    print(f"{'N':>5} {'C':>4} {'K':>3} {'|x| KiB':>9}  {'dir':4} {'kernel':30} {'progs':>5} "
          f"{'total':>8} {'busiest':>8}")  # fmt: skip
    for n, c, length in args.shape or SHAPES:
        for k in args.k:
            x_bytes = n * c * length * 4
            with mix.as_captured() if args.captured else contextlib.nullcontext():
                if args.layer:
                    forward, backward = run_layer(n, c, length, k, counter)
                else:
                    forward, backward = run_mix(n, c, k, counter)
            for direction, launches in (("fwd", forward), ("bwd", backward)):
                for launch in launches:
                    print(f"{n:5d} {c:4d} {k:3d} {_kib(x_bytes):>9}  {direction:4} "
                          f"{launch.kernel:30} {launch.programs:5d} {_kib(launch.total)} "
                          f"{_kib(launch.busiest)}")  # fmt: skip
                busiest = sum(launch.busiest for launch in launches)
                passes = (3 if direction == "fwd" else 5) * x_bytes
                if args.layer:
                    total = sum(launch.total for launch in launches)
                    print(f"{'':24}{direction:4} {'Σ, against the minimum':30} "
                          f"{len(launches):5d} {_kib(total)} {_kib(busiest)}   minimum "
                          f"{_kib(passes).strip()}")  # fmt: skip
                else:
                    print(f"{'':24}{direction:4} {'Σ busiest, against the passes':30} {'':5} "
                          f"{_kib(passes)} {_kib(busiest)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
