"""Which layer cases the suite measures (SPEC §6), as focused sweeps.

The full cross product of SPEC §6 (5 K × 7 shapes × 7 batches × 3 dtypes × 2 layouts × 4 modes,
times ten providers) would take hours on a GPU. Each sweep instead varies one or two axes around
a default point (K = 2, float32, NCHW, forward+backward, batch 128), which is what the report's
figures and headline ratios need. Cases come out in priority order, headline cases first, so a
run cut short by its time budget still holds them.

Grids: `full` (the GPU grid), its two halves `core` and `extra` (one device call each, when a
call is too short for the whole: `core` holds what the figures and every layer goal but one
need, `extra` the compiled reference first, then dtypes, layouts and eval), `small` (a CPU
pipeline check of a few minutes) and `smoke` (the handful of cases the tests run).
torch.compile of the reference costs seconds per distinct shape, dtype and K, so it is
measured on a bounded subset only (`Point.compile`). On a GPU a few points are also measured
as CUDA-graph replays (`Point.graphs`: our Triton layers, BatchNorm2d and GroupNorm, exec
`cudagraph`): the device's time alone, without the host's cost per call, which bounds most
eager calls on the lent machines; the report shows those rows apart.

Also each case's minimal bytes (SPEC §3, `bytes_min`): the suite writes them into every row
and the report, which needs no torch, re-derives them for rows of older models.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

CIFAR_SHAPES = ((16, 32, 32), (32, 16, 16), (64, 8, 8))
IMAGENET_SHAPES = ((64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7))
KS = (1, 2, 4, 6, 8)
BATCHES = (4, 8, 16, 32, 64, 128, 256)
DTYPES = ("float32", "bfloat16", "float16")
LAYOUTS = ("nchw", "nhwc")
GRIDS = ("auto", "full", "core", "extra", "small", "smoke")

MODE_OPS = ("mode_norm", "mode_group_norm")
GRAPH_EXEC = "cudagraph"  # SPEC §7's exec value for CUDA-graph replays
# What is replayed at a `Point.graphs` point: ours, and the baselines they are held against.
GRAPH_KINDS = (("mode_norm", "triton"), ("mode_group_norm", "triton"),
               ("batch_norm", "native"), ("group_norm", "native"))  # fmt: skip
# Native baselines measured at every point; group_norm's K column holds its group count.
NATIVE_OPS = ("batch_norm", "group_norm", "instance_norm", "layer_norm")
TRAINING_MODES = ("forward", "backward", "full")


# SPEC §3: the minimal traffic of a normalisation layer, in passes over x's bytes.
MIN_PASSES = {"forward": 3, "eval": 3, "backward": 5, "full": 8}
# Where a baseline's own minimum is lower: BatchNorm in eval normalises with its running
# statistics, so it needs no reduction pass (read x, write y). The other baselines keep
# SPEC §3's model: their gbps is at MN's bytes model (the bandwidth figure's legend says so).
OWN_MIN_PASSES = {("batch_norm", "eval"): 2}


def bytes_min(numel: int, element_size: int, mode: str, op: str = "mode_norm") -> int:
    """Bytes `op` must move at least: 3·|x| forward/eval, 5·|x| backward (SPEC §3), and
    2·|x| for BatchNorm's eval."""
    passes = OWN_MIN_PASSES.get((op, mode), MIN_PASSES[mode])
    return passes * numel * element_size


@dataclass(frozen=True)
class Point:
    """One point of a sweep: every provider is measured here."""

    mode: str
    dtype: str
    layout: str
    n: int
    shape: tuple[int, int, int]  # C, H, W
    k: int
    compile: bool = False  # also measure torch.compile(reference) here
    graphs: bool = False  # also measure ours and BatchNorm/GroupNorm as CUDA-graph replays


@dataclass(frozen=True)
class Case:
    """One measurement: one op by one provider at one point (one CSV row)."""

    op: str
    provider: str
    mode: str
    dtype: str
    layout: str
    n: int
    c: int
    h: int
    w: int
    k: int | None  # modes for MN/MGN, groups for group_norm, None for the other natives
    exec: str = "eager"  # or "cudagraph": the timed call captured once, then replayed

    @property
    def id(self) -> str:
        k = "" if self.k is None else f"-K{self.k}"
        graph = "-cudagraph" if self.exec == GRAPH_EXEC else ""
        return (
            f"{self.op}-{self.provider}-{self.mode}-{self.dtype}-{self.layout}"
            f"-N{self.n}-{self.c}x{self.h}x{self.w}{k}{graph}"
        )

    @property
    def group(self) -> str:
        """pytest-benchmark group: every op and provider measured at the same shape, eager
        calls and CUDA-graph replays apart."""
        graph = " cudagraph" if self.exec == GRAPH_EXEC else ""
        return (
            f"{self.mode} {self.dtype} {self.layout} N={self.n} {self.c}x{self.h}x{self.w}{graph}"
        )

    @property
    def numel(self) -> int:
        return self.n * self.c * self.h * self.w


def group_norm_groups(k: int, c: int) -> int:
    """The GroupNorm MGN is held against: GroupNorm(K, C) when K divides C, else GroupNorm(1, C)."""
    return k if c % k == 0 else 1


def _sweep(
    shapes: Iterable[tuple[int, int, int]],
    *,
    ks: Iterable[int] = (2,),
    batches: Iterable[int] = (128,),
    dtypes: Iterable[str] = ("float32",),
    layouts: Iterable[str] = ("nchw",),
    modes: Iterable[str] = ("full",),
    compile_shapes: Iterable[tuple[int, int, int]] = (),
    compile_ks: Iterable[int] = (2,),
    graphs: bool = False,
) -> Iterator[Point]:
    """Points of the product of the given axes (the defaults hold the other axes fixed)."""
    compile_shapes, compile_ks = set(compile_shapes), set(compile_ks)
    for shape in shapes:
        for k in ks:
            for n in batches:
                for dtype in dtypes:
                    for layout in layouts:
                        for mode in modes:
                            # Eval needs a second compiled graph; compile training modes only.
                            comp = shape in compile_shapes and k in compile_ks
                            comp = comp and mode in TRAINING_MODES
                            yield Point(mode, dtype, layout, n, shape, k, comp, graphs)


_CIFAR, _BIG = (32, 16, 16), (64, 56, 56)  # big: 128 × 64 × 56 × 56 float32 = 98 MiB
_ALL_SHAPES = CIFAR_SHAPES + IMAGENET_SHAPES
_COMPILED_SHAPES = (CIFAR_SHAPES[0], CIFAR_SHAPES[2], IMAGENET_SHAPES[0], IMAGENET_SHAPES[2])


def _core_points() -> Iterator[Point]:
    """Headline points first: every shape in the training modes, then the K and batch sweeps,
    then the CUDA-graph replays."""
    yield from _sweep(_ALL_SHAPES, modes=TRAINING_MODES)
    yield from _sweep((_CIFAR, _BIG), ks=KS, modes=("full", "forward"))
    yield from _sweep((CIFAR_SHAPES[0], _BIG), batches=BATCHES)
    yield from _graph_points()


def _graph_points() -> Iterator[Point]:
    """Forward+backward replayed from CUDA graphs, at points the core measures eagerly: every
    shape, then the goals' other points (>= 64 MiB at batch 256; K = 1 and 8)."""
    yield from _sweep(_ALL_SHAPES, graphs=True)
    yield from _sweep((_BIG,), batches=(256,), graphs=True)
    yield from _sweep((_CIFAR, _BIG), ks=(1, 8), graphs=True)


def _compiled_points() -> Iterator[Point]:
    """Points seen in the core again, now adding the compiled reference (tens of seconds of
    compiling each): forward+backward at every shape first, then K = 8, then the rest."""
    modes = ("full", "forward", "backward")
    yield from _sweep(_COMPILED_SHAPES, compile_shapes=_COMPILED_SHAPES)
    yield from _sweep((_BIG,), ks=(8,), modes=modes[:2], compile_shapes=(_BIG,), compile_ks=(8,))
    yield from _sweep(_COMPILED_SHAPES, modes=modes[1:], compile_shapes=_COMPILED_SHAPES)


def _rest_points() -> Iterator[Point]:
    yield from _sweep((_CIFAR, _BIG), dtypes=DTYPES, layouts=LAYOUTS)
    yield from _sweep(_ALL_SHAPES, modes=("eval",))


def _full_points() -> Iterator[Point]:
    # Compiled points last: a time budget that runs out then loses the fewest rows.
    yield from _core_points()
    yield from _rest_points()
    yield from _compiled_points()


def _extra_points() -> Iterator[Point]:
    # A call of its own: the compiled reference first, as one layer goal needs it.
    yield from _compiled_points()
    yield from _rest_points()


def _small_points() -> Iterator[Point]:
    cifar = (32, 16, 16)
    yield from _sweep(CIFAR_SHAPES, batches=(8,), compile_shapes=(cifar,))
    yield from _sweep((cifar,), batches=(8,), modes=TRAINING_MODES, compile_shapes=(cifar,))
    yield from _sweep((cifar,), ks=(1, 8), batches=(8,))
    yield from _sweep((CIFAR_SHAPES[2],), batches=(4, 32))
    yield from _sweep((cifar,), batches=(8,), dtypes=("bfloat16",), layouts=LAYOUTS)
    yield from _sweep((cifar,), batches=(8,), modes=("eval",))


def _smoke_points() -> Iterator[Point]:
    tiny = (16, 8, 8)
    yield from _sweep((tiny,), batches=(4,), modes=("full", "forward"))
    yield from _sweep((tiny,), batches=(4,), layouts=("nhwc",), modes=("backward", "eval"))


def _mode_cases(point: Point, cuda: bool, compile: bool) -> Iterator[Case]:
    providers = ["triton"] if cuda else []  # the Triton kernels need a GPU (no interpreter here)
    providers += ["torch_ops", "reference"]
    if point.compile and compile:
        providers.append("reference_compiled")
    c, h, w = point.shape
    for op in MODE_OPS:
        for provider in providers:
            yield Case(
                op, provider, point.mode, point.dtype, point.layout, point.n, c, h, w, point.k
            )


def _native_cases(point: Point) -> Iterator[Case]:
    c, h, w = point.shape
    for op in NATIVE_OPS:
        k = group_norm_groups(point.k, c) if op == "group_norm" else None
        yield Case(op, "native", point.mode, point.dtype, point.layout, point.n, c, h, w, k)


def resolve(grid: str, cuda: bool) -> str:
    """`auto` is the full grid on a GPU and the small one on a CPU."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if grid == "auto":
        return "full" if cuda else "small"
    return grid


def cases(grid: str, cuda: bool, compile: bool = True) -> list[Case]:
    """The cases of `grid`, deduplicated, in priority order."""
    points = {
        "full": _full_points,
        "core": _core_points,
        "extra": _extra_points,
        "small": _small_points,
        "smoke": _smoke_points,
    }
    seen: dict[str, Case] = {}
    for point in points[resolve(grid, cuda)]():
        if not compile:
            point = replace(point, compile=False)
        point_cases = [*_mode_cases(point, cuda, compile), *_native_cases(point)]
        if point.graphs and cuda:  # (the Triton provider, replayed, needs a GPU anyway)
            point_cases += [replace(case, exec=GRAPH_EXEC) for case in point_cases
                            if (case.op, case.provider) in GRAPH_KINDS]  # fmt: skip
        for case in point_cases:
            seen.setdefault(case.id, case)
    return list(seen.values())
