"""One layer case: its module, rotated inputs, the call that is timed, and its CSV row.

The timed call is what a training (or inference) step pays for the layer:
- forward: a training-mode forward with autograd recording (x requires grad, as inside a net);
- backward: only the backward of a retained graph (`torch.autograd.grad(..., retain_graph=True)`,
  which returns gradients instead of accumulating them, so no extra `+=` pass is timed);
- full: forward + backward;
- eval: `module.eval()` forward under `torch.no_grad()`.
Gradients are taken with respect to x and every parameter. Every provider holds its parameters
in the input's dtype (`module.to(dtype)`), except BatchNorm on 16-bit inputs, which keeps
float32 weights and statistics as AMP runs it (and as cuDNN's kernel takes them); our layers
keep float32 running estimates in 16-bit layers themselves.

A case of exec `cudagraph` captures its timed call once per input set into CUDA graphs, after
uncaptured warm-up calls (which load every kernel the capture launches), and times their
replays: the device's time without the host's, Python, dispatch and launches, which bound most
eager calls on the lent GPUs. Its peak memory is that of the captured call.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import measure
import records
import torch
import torch._functorch.config
from grid import GRAPH_EXEC, MODE_OPS, Case, bytes_min
from torch import Tensor, nn

import mn_triton
import reference

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Which mn_triton backend each of its providers runs under ("auto": Triton kernels on CUDA).
BACKENDS = {"triton": "auto", "torch_ops": "torch"}
COMPILED_CACHE_SIZE = 4  # compiled modules kept, so forward/backward/full share one compile
# Input sets a CUDA-graph case captures (one graph each): the L2 flush before every replay
# already leaves the caches cold, and each graph takes a capture.
GRAPH_SETS = 4
GRAPH_WARMUP_CALLS = 3


@dataclass(frozen=True)
class Settings:
    """How long each case is timed (time_fn's arguments) and how many input sets rotate."""

    warmup: int
    reps: int
    max_seconds: float
    max_sets: int
    rounds: int  # pytest-benchmark rounds, after time_fn (already warm)


@dataclass(frozen=True)
class BenchRun:
    """What every case of one run shares (the suite's session fixture `bench_run`)."""

    device: torch.device
    settings: Settings
    copy_gbps: float  # measured once per run: the physical ceiling of every row
    run_id: str
    csv_name: str  # rows go to reports/data/<csv_name>.csv
    cases_planned: int = 0  # the grid's cases in this run: the report counts the missing ones


def settings_for(device: torch.device) -> Settings:
    if device.type == "cuda":
        # Most cases reach 50 repetitions within a few ms; the slow ones (the eager reference
        # at ≥ 98 MiB, ~10–30 ms a call) stop after 0.5 s of timing (≥ 5 repetitions), which
        # leaves the grid's later cases more of a device call's budget.
        return Settings(warmup=10, reps=50, max_seconds=0.5, max_sets=64, rounds=5)
    # CPU rows only exercise the pipeline: few repetitions, few (cheap to build) input sets.
    return Settings(warmup=2, reps=10, max_seconds=0.5, max_sets=4, rounds=3)


def configure_compile() -> None:
    """Never let dynamo fall back to eager silently: that would record eager as compiled.

    Donated buffers (compiled backwards that reuse saved tensors' memory) forbid
    `retain_graph=True`, which the backward mode needs; they are turned off, so the compiled
    reference's peak memory may read a little higher than a plain training step's.
    """
    functorch_config = torch._functorch.config
    if hasattr(functorch_config, "donated_buffer"):
        functorch_config.donated_buffer = False
    config = torch._dynamo.config
    for name, value in (
        ("recompile_limit", 64),
        ("cache_size_limit", 64),
        ("accumulated_recompile_limit", 512),
        ("fail_on_recompile_limit_hit", True),
    ):
        if hasattr(config, name):
            setattr(config, name, value)


@contextlib.contextmanager
def backend_for(case: Case) -> Iterator[None]:
    """mn_triton's providers run under their backend; the others do not touch mn_triton."""
    if case.provider in BACKENDS:
        with mn_triton.use_backend(BACKENDS[case.provider]):
            yield
    else:
        yield


def make_module(case: Case, device: torch.device) -> nn.Module:
    c, h, w = case.c, case.h, case.w
    if case.op in MODE_OPS:
        package = reference if case.provider.startswith("reference") else mn_triton
        layer = package.ModeNorm2d if case.op == "mode_norm" else package.ModeGroupNorm2d
        module = layer(c, num_modes=case.k)
    elif case.op == "batch_norm":
        module = nn.BatchNorm2d(c)
    elif case.op == "group_norm":
        module = nn.GroupNorm(case.k, c)
    elif case.op == "instance_norm":
        module = nn.InstanceNorm2d(c, affine=True)
    elif case.op == "layer_norm":
        module = nn.LayerNorm((c, h, w))
    else:
        raise ValueError(f"unknown op {case.op!r}")
    dtype = DTYPES[case.dtype]
    if case.op == "batch_norm" and dtype.itemsize == 2:
        # BatchNorm as a 16-bit model runs it (under AMP, and as cuDNN wants it): 16-bit data,
        # float32 weights and statistics. 16-bit weights would send it to ATen's own kernel.
        return module.to(device=device)
    return module.to(device=device, dtype=dtype)


_compiled: OrderedDict[tuple, tuple[nn.Module, Callable]] = OrderedDict()


def compiled_module(case: Case, device: torch.device) -> tuple[nn.Module, Callable]:
    """torch.compile of the reference, shared by the training modes of one point."""
    key = (case.op, case.dtype, case.layout, case.n, case.c, case.h, case.w, case.k, device)
    if key not in _compiled:
        module = make_module(case, device)
        _compiled[key] = (module, torch.compile(module, dynamic=False))
        while len(_compiled) > COMPILED_CACHE_SIZE:
            _compiled.popitem(last=False)
    _compiled.move_to_end(key)
    return _compiled[key]


def input_bytes(case: Case) -> int:
    """Bytes of the tensors one call reads as inputs (x, and dy for the training modes)."""
    per_tensor = case.numel * DTYPES[case.dtype].itemsize
    return per_tensor * (2 if case.mode in ("backward", "full") else 1)


def make_inputs(case: Case, device: torch.device, count: int) -> list[tuple[Tensor, Tensor]]:
    """`count` independent (x, dy) sets of normal data (never zeros) in the case's layout."""
    fmt = torch.channels_last if case.layout == "nhwc" else torch.contiguous_format
    shape = (case.n, case.c, case.h, case.w)
    sets = []
    for _ in range(count):
        x = torch.randn(shape, device=device, dtype=DTYPES[case.dtype]).to(memory_format=fmt)
        # Only the backward reads dy; the forward modes reuse x in its slot.
        dy = torch.randn_like(x) if case.mode in ("backward", "full") else x
        sets.append((x.requires_grad_(case.mode != "eval"), dy))
    return sets


def timed_call(
    case: Case, module: nn.Module, run: Callable, inputs: list[tuple[Tensor, Tensor]]
) -> Callable[[int], None]:
    """The call that is timed; `i` picks the input set. It returns nothing, so that no graph
    outlives its call (peak memory then counts one call's graph)."""
    params = [p for p in module.parameters() if p.requires_grad]
    count = len(inputs)
    if case.mode == "eval":
        module.eval()

        def call(i: int) -> None:
            with torch.no_grad():
                run(inputs[i % count][0])

    elif case.mode == "forward":

        def call(i: int) -> None:
            run(inputs[i % count][0])

    elif case.mode == "full":

        def call(i: int) -> None:
            x, dy = inputs[i % count]
            torch.autograd.grad(run(x), (x, *params), dy)

    else:  # backward: graphs built once here, only their backward is timed
        outputs = [run(x) for x, _ in inputs]

        def call(i: int) -> None:
            x, dy = inputs[i % count]
            torch.autograd.grad(outputs[i % count], (x, *params), dy, retain_graph=True)

    return call


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def graph_replays(
    call: Callable[[int], None], count: int, device: torch.device
) -> tuple[Callable[[int], None], float]:
    """`call(i)` for each of `count` input sets captured into a CUDA graph, and a call that
    replays graph i; with the peak memory (MiB) of the captures, one call's.

    The warm-up runs uncaptured on a side stream, as torch.cuda.graph asks: CUDA refuses to
    load a kernel during a capture, so every kernel must have run before. The graphs share
    one memory pool: no tensor outlives a call, and they replay in the order captured.
    """
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for i in range(max(GRAPH_WARMUP_CALLS, count)):
            call(i)
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    graphs: list[torch.cuda.CUDAGraph] = []
    for i in range(count):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=graphs[0].pool() if graphs else None):
            call(i)
        graphs.append(graph)
    peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20

    def replay(i: int) -> None:
        graphs[i % count].replay()

    return replay, peak_mb


@dataclass
class Measured:
    timing: measure.Timing
    setup_s: float  # module + inputs + first call: includes torch.compile and Triton JIT
    call: Callable[[int], None]  # the timed call, for pytest-benchmark's rounds


def measure_case(case: Case, device: torch.device, settings: Settings) -> Measured:
    """Build the case and time it with measure.time_fn (run inside `backend_for(case)`)."""
    started = time.perf_counter()
    if case.provider == "reference_compiled":
        module, run = compiled_module(case, device)
    else:
        module = run = make_module(case, device)
    graphed = case.exec == GRAPH_EXEC
    max_sets = min(settings.max_sets, GRAPH_SETS) if graphed else settings.max_sets
    count = measure.rotation_count(input_bytes(case), max_sets=max_sets)
    call = timed_call(case, module, run, make_inputs(case, device, count))
    if graphed:
        if device.type != "cuda":
            raise ValueError(f"{case.id}: CUDA graphs need a CUDA device, not {device}")
        call, graph_peak_mb = graph_replays(call, count, device)
    call(0)
    synchronize(device)
    setup_s = time.perf_counter() - started
    timing = measure.time_fn(call, device, settings.warmup, settings.reps, settings.max_seconds)
    if graphed:  # replays allocate nothing: the memory is the captured call's
        timing = replace(timing, peak_mem_mb=graph_peak_mb, peak_total_mb=None)
    return Measured(timing, setup_s, call)


def make_case_row(
    case: Case,
    measured: Measured,
    copy_gbps: float,
    device: torch.device,
    run_id: str,
    cases_planned: int = 0,
) -> dict[str, Any]:
    """SPEC §7's row for a case, plus run_id, reps, setup_s and the run's cases_planned."""
    itemsize = DTYPES[case.dtype].itemsize
    return records.make_row(
        op=case.op,
        provider=case.provider,
        mode=case.mode,
        dtype=case.dtype,
        layout=case.layout,
        shape=(case.n, case.c, case.h, case.w),
        k="" if case.k is None else case.k,
        timing=measured.timing,
        bytes_min=bytes_min(case.numel, itemsize, case.mode, case.op),
        copy_gbps=copy_gbps,
        device=device,
        exec="compiled" if case.provider == "reference_compiled" else case.exec,
        run_id=run_id,
        reps=measured.timing.reps,
        setup_s=round(measured.setup_s, 3),
        cases_planned=cases_planned or "",
    )
