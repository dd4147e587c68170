"""How the kernels see a tensor of shape (N, C, *S): N·C rows of L = prod(S) elements.

A row (n, c) starts at `n·stride_n + c·stride_c`. Its L elements are addressed through at
most two strided spatial levels, `l = outer·inner_size + inner`, so contiguous (NCHW),
channels_last, batch- or channel-sliced views and most spatially sliced views are read in
place. Spatial dims are merged wherever every tensor of a call allows it; a layout that still
needs three levels (a 3-D input sliced in two spatial dims) is copied to contiguous first,
once per op call (backend.addressable).

The same plan also picks the tile shape and, for reductions, how many programs share a row.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

# Elements per tile (BLOCK_ROWS × BLOCK_LEN). Module-level so tests can shrink MAX_TILE to
# make small shapes walk several tiles and several reduction splits.
MAX_TILE = 2048
MAX_BLOCK_LEN = 1024
# Reductions over long rows split each row across programs until at least this many
# programs per streaming multiprocessor run (CUDA), or this many programs in all (CPU, where
# the interpreter pays ~5 ms per program, so one program is the fastest choice).
PROGRAMS_PER_SM = 4
CPU_TARGET_PROGRAMS = 1
# Every launch passes this compile option: fused multiply-adds on, the default of Triton up
# to 3.9. Left unset, Triton 3.9 warns on every first compile and 3.10 turns fusion off,
# which would change results and speed with the Triton version.
FP_FUSION = True

# Set while an op's body is traced for inductor (mn_triton/ops.py, TRACE_KERNELS): launches
# are then recorded into the graph rather than run.
_RECORDING = contextvars.ContextVar("mn_triton_recording_launches", default=False)


@contextlib.contextmanager
def recording_launches() -> Iterator[None]:
    """A block whose `launch`es are recorded into the graph being traced
    (torch.library.wrap_triton): inductor then compiles those kernels and launches them from
    the code it generates, without mn_triton's Python in between."""
    token = _RECORDING.set(True)
    try:
        yield
    finally:
        _RECORDING.reset(token)


def launch(kernel: Callable, grid: tuple[int, ...]) -> Callable:
    """`kernel[grid]`: what each launch site calls with the kernel's arguments; while
    `recording_launches`, the launch recorded instead."""
    if not _RECORDING.get():
        return kernel[grid]
    from torch.library import wrap_triton

    recorded = wrap_triton(kernel)[grid]

    def record(*args, enable_fp_fusion: bool = FP_FUSION, **kwargs) -> None:
        # Inductor compiles the kernels it records with its own options (fused
        # multiply-adds on, as FP_FUSION): a compile option is not a kernel argument.
        recorded(*args, **kwargs)

    return record


@dataclass(frozen=True)
class RowStrides:
    """One tensor's strides for the row view: (n, c, outer spatial, inner spatial)."""

    n: int
    c: int
    outer: int
    inner: int


def strides_tuple(s: RowStrides) -> tuple[int, int, int, int]:
    """The four strides in kernel-argument order."""
    return s.n, s.c, s.outer, s.inner


@dataclass(frozen=True)
class RowPlan:
    """Geometry shared by the tensors of one kernel call, plus the chosen tiling."""

    rows: int  # N·C
    channels: int  # C
    length: int  # L
    inner_size: int  # size of the inner spatial level (== length for one level)
    block_rows: int
    block_len: int
    num_warps: int

    @property
    def two_level(self) -> bool:
        return self.inner_size != self.length


def _merge_spatial_dims(
    shape: tuple[int, ...], strides: tuple[tuple[int, ...], ...]
) -> list[tuple[int, list[int]]] | None:
    """Spatial dims as (size, per-tensor strides), merged where every tensor allows it."""
    merged: list[tuple[int, list[int]]] = []
    for dim in range(2, len(shape)):
        size = shape[dim]
        if size == 1:
            continue  # a size-1 dim has no extent; its stride is meaningless
        dim_strides = [t[dim] for t in strides]
        if merged and all(
            outer == inner * size for outer, inner in zip(merged[-1][1], dim_strides, strict=True)
        ):
            merged[-1] = (merged[-1][0] * size, dim_strides)
        else:
            merged.append((size, dim_strides))
    return merged if len(merged) <= 2 else None


# Plain-Python versions of triton.cdiv and triton.next_power_of_2, which are Triton
# constexpr functions and cost ~1 µs of host time per call; a layer call makes ~16.
def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two ≥ n (1 for n ≤ 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def _choose_tile(
    rows: int, length: int, rows_contiguous: bool, max_tile: int, max_block_len: int
) -> tuple[int, int, int]:
    if rows_contiguous:
        # channels_last: neighbouring rows (channels) are neighbours in memory, so a tile
        # spans many rows and fewer positions.
        block_rows = min(next_pow2(rows), 128, max_tile)
        block_len = max(1, min(next_pow2(length), max_tile // block_rows, max_block_len))
    else:
        # Rows are contiguous runs: a tile spans as much of a row as fits, then more rows
        # (short rows, e.g. 7×7 maps or (N, C) inputs, put many rows in one program).
        block_len = min(next_pow2(length), max_tile, max_block_len)
        block_rows = max(1, min(next_pow2(rows), max_tile // block_len))
    num_warps = 8 if block_rows * block_len >= 4096 else 4
    return block_rows, block_len, num_warps


def plan_rows(*tensors: Tensor) -> tuple[RowPlan, tuple[RowStrides, ...]] | None:
    """Plan a call over same-shaped tensors; None if their layouts need three spatial levels.

    Plans are cached by shape and strides: a layer sees the same few layouts every step, and
    planning in Python would otherwise cost more host time than launching a kernel.
    """
    strides = tuple(t.stride() for t in tensors)
    return _plan(tuple(tensors[0].shape), strides, MAX_TILE, MAX_BLOCK_LEN)


@functools.lru_cache(maxsize=4096)
def _plan(
    shape: tuple[int, ...],
    strides: tuple[tuple[int, ...], ...],
    max_tile: int,
    max_block_len: int,
) -> tuple[RowPlan, tuple[RowStrides, ...]] | None:
    n, c = shape[0], shape[1]
    count = len(strides)
    merged = _merge_spatial_dims(shape, strides)
    if merged is None:
        return None
    if not merged:
        length, inner_size = 1, 1
        outer_strides, inner_strides = [0] * count, [0] * count
    elif len(merged) == 1:
        length = inner_size = merged[0][0]
        outer_strides, inner_strides = [0] * count, merged[0][1]
    else:
        (outer_size, outer_strides), (inner_size, inner_strides) = merged
        length = outer_size * inner_size
    row_strides = tuple(
        RowStrides(t[0], t[1], so, si)
        for t, so, si in zip(strides, outer_strides, inner_strides, strict=True)
    )
    lead = row_strides[0]
    # Rows r = n·C + c are neighbours in memory when channels are (channels_last) or, with a
    # single channel, when samples are (a transposed (L, N) input viewed as (N, 1, L)).
    row_stride = lead.c if c > 1 else lead.n
    rows_contiguous = row_stride == 1 and lead.inner != 1
    tile = _choose_tile(n * c, length, rows_contiguous, max_tile, max_block_len)
    return RowPlan(n * c, c, length, inner_size, *tile), row_strides


def plan_rows_or_copy(
    *tensors: Tensor, written: int = 0
) -> tuple[tuple[Tensor, ...], RowPlan, tuple[RowStrides, ...]]:
    """Like `plan_rows`, copying to contiguous the rare layouts the kernels cannot address.

    The last `written` tensors are outputs: where the others are copied, those of them not
    contiguous already become new contiguous buffers (the caller copies them into its own),
    not copies of contents that nothing has written yet.
    """
    planned = plan_rows(*tensors)
    if planned is None:
        read = len(tensors) - written
        tensors = (
            *(t.contiguous() for t in tensors[:read]),
            *(t if t.is_contiguous() else _contiguous_buffer(t) for t in tensors[read:]),
        )
        planned = plan_rows(*tensors)
        assert planned is not None  # contiguous tensors merge into one spatial level
    return (tensors, *planned)


def _contiguous_buffer(t: Tensor) -> Tensor:
    """A new contiguous tensor of t's shape, dtype and device; its contents unwritten."""
    return torch.empty_like(t, memory_format=torch.contiguous_format)


@functools.lru_cache(maxsize=16)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def reduction_split(plan: RowPlan, device: torch.device) -> tuple[int, int]:
    """(elements per split, number of splits) so that enough programs share the work.

    Splits are whole multiples of the tile length; partial results are merged afterwards.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        target = PROGRAMS_PER_SM * _sm_count(index)
    else:
        target = CPU_TARGET_PROGRAMS
    row_blocks = cdiv(plan.rows, plan.block_rows)
    tiles_per_row = cdiv(plan.length, plan.block_len)
    splits = max(1, min(cdiv(target, row_blocks), tiles_per_row))
    split_len = cdiv(tiles_per_row, splits) * plan.block_len
    return split_len, cdiv(plan.length, split_len)


def needs_64_bit_indices(plan: RowPlan, split_len: int | None = None, num_splits: int = 1) -> bool:
    """Whether a pass kernel must form its row and position indices in 64 bits.

    The indices a program derives from its id stay below (rows + one block of rows) ·
    splits (the (N·C, S) partial results) and below the end of its last tile along a row;
    int32 holds them up to 2³¹ − 1. Beyond that (N·C or L near 2³¹: 4 GiB of float16 in one
    row, or a (2³¹, 1) batch) they would wrap and address memory before the tensors.
    """
    split_len = plan.length if split_len is None else split_len
    largest = max(
        (plan.rows + plan.block_rows) * num_splits,
        split_len * num_splits + plan.block_len,
    )
    return largest >= 2**31
