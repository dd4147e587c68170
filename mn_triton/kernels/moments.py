"""Row reductions: the one pass over x forward, and the one pass over (x, dy) backward.

Forward, per row (n, c): a shift s, the median of the row's first, middle and last values
(`_row_shift`; float64 statistics: its first value), so a value of the row itself: x − s is
exact for nearby values and small for data with a large common offset, and one outlying
value there is not the shift. Then the mean of x − s and the biased variance, accumulated
tile by tile with Chan et al.'s merge of (count, mean, M2) triples, never as E[x²] − E[x]².

Backward, per row: Σ dy and Σ dy·(x − s).

Long rows may be split across several programs (`reduction_split`); each program writes a
partial result and one more small kernel combines them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .addressing import position_offsets, program_index, row_offsets, tile_positions
from .layout import (
    FP_FUSION,
    RowPlan,
    cdiv,
    launch,
    needs_64_bit_indices,
    next_pow2,
    plan_rows_or_copy,
    reduction_split,
)
from .layout import strides_tuple as _strides


@triton.jit
def _row_shift(row_ptr, row_ok, length, inner_size, stride_outer, stride_inner,
               TWO_LEVEL: tl.constexpr, ACC_FP64: tl.constexpr):  # fmt: skip
    """Each row's shift: the median of its values at positions 0, L // 2 and L − 1 (with
    float64 statistics, its first value).

    Not x[n, c, 0] alone: the passes work with x − s, whose rounding grows with s's distance
    from the row, and the mean of x − s sums L such values; one outlying first value (a hot
    pixel in a corner, 1e4 in 128×128 rows of randn) put 8.5e-4 into the mean and 3.6e-5
    into the affine weight's gradient, where a float32 evaluation of the reference keeps
    1.7e-7. Two of the three values must lie out for the shift to. Float64 sums keep such
    means to ~1e-12, and there the median's registers made the 2-level float64 moments
    kernel spill (sm_90: 230 → 255 registers, 56 bytes). Returned in the accumulators'
    dtype (compared there: the interpreter's 16-bit arithmetic is not to be trusted),
    exactly the value of the row."""
    first = tl.load(row_ptr, mask=row_ok, other=0.0)
    if ACC_FP64:  # float64 keeps such sums to ~1e-12; and the median spilled (sm_90, 2-level)
        shift = first.to(tl.float64)
    else:
        first = first.to(tl.float32)
        probe = tl.arange(0, 2)
        positions = tl.where(probe == 0, length // 2, length - 1)
        offs = position_offsets(positions, inner_size, stride_outer, stride_inner, TWO_LEVEL)
        pair = tl.load(row_ptr[:, None] + offs[None, :], mask=row_ok[:, None], other=0.0)
        pair = pair.to(tl.float32)
        middle = tl.sum(tl.where(probe[None, :] == 0, pair, 0.0), axis=1)
        last = tl.sum(tl.where(probe[None, :] == 1, pair, 0.0), axis=1)
        low, high = tl.minimum(first, middle), tl.maximum(first, middle)
        shift = tl.maximum(low, tl.minimum(high, last))
    return shift


@triton.jit
def _row_moments_kernel(
    X, SHIFT, MEAN, VAR,
    rows_total, channels, length, inner_size,
    stride_n, stride_c, stride_outer, stride_inner,
    split_len, num_splits,
    BLOCK_ROWS: tl.constexpr, BLOCK_LEN: tl.constexpr,
    TWO_LEVEL: tl.constexpr, ACC_FP64: tl.constexpr, INDEX_64: tl.constexpr,
):  # fmt: skip
    acc_dtype = tl.float64 if ACC_FP64 else tl.float32
    pid_rows = program_index(0, INDEX_64)
    pid_split = program_index(1, INDEX_64)
    rows = pid_rows * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < rows_total
    row_ptr = X + row_offsets(rows, channels, stride_n, stride_c)
    shift = _row_shift(row_ptr, row_ok, length, inner_size, stride_outer, stride_inner,
                       TWO_LEVEL, ACC_FP64)  # fmt: skip

    start = pid_split * split_len
    stop = tl.minimum(start + split_len, length)
    mean = tl.zeros([BLOCK_ROWS], dtype=acc_dtype)
    m2 = tl.zeros([BLOCK_ROWS], dtype=acc_dtype)
    for tile_start in range(start, stop, BLOCK_LEN):
        cols = tile_positions(tile_start, BLOCK_LEN, INDEX_64)
        mask = row_ok[:, None] & (cols < stop)[None, :]
        offs = position_offsets(cols, inner_size, stride_outer, stride_inner, TWO_LEVEL)
        x = tl.load(row_ptr[:, None] + offs[None, :], mask=mask, other=0.0).to(acc_dtype)
        d = tl.where(mask, x - shift[:, None], 0.0)
        # The tile's own (count, mean, M2), centred on the tile mean ...
        tile_count = tl.minimum(stop - tile_start, BLOCK_LEN).to(acc_dtype)
        tile_mean = tl.sum(d, axis=1) / tile_count
        centred = tl.where(mask, d - tile_mean[:, None], 0.0)
        tile_m2 = tl.sum(centred * centred, axis=1)
        # ... merged into the running triple (Chan, Golub & LeVeque).
        count = (tile_start - start).to(acc_dtype)
        total = count + tile_count
        delta = tile_mean - mean
        mean += delta * (tile_count / total)
        m2 += tile_m2 + delta * delta * (count * tile_count / total)

    out = rows * num_splits + pid_split
    if pid_split == 0:
        tl.store(SHIFT + rows, shift, mask=row_ok)
    tl.store(MEAN + out, mean, mask=row_ok)
    tl.store(VAR + out, m2 / (stop - start).to(acc_dtype), mask=row_ok)


@triton.jit
def _row_grad_sums_kernel(
    X, DY, SHIFT, SUM_DY, SUM_DY_XS,
    rows_total, channels, length, inner_size,
    sx_n, sx_c, sx_outer, sx_inner,
    sdy_n, sdy_c, sdy_outer, sdy_inner,
    split_len, num_splits,
    BLOCK_ROWS: tl.constexpr, BLOCK_LEN: tl.constexpr,
    TWO_LEVEL: tl.constexpr, ACC_FP64: tl.constexpr, INDEX_64: tl.constexpr,
):  # fmt: skip
    acc_dtype = tl.float64 if ACC_FP64 else tl.float32
    pid_rows = program_index(0, INDEX_64)
    pid_split = program_index(1, INDEX_64)
    rows = pid_rows * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < rows_total
    x_ptr = X + row_offsets(rows, channels, sx_n, sx_c)
    dy_ptr = DY + row_offsets(rows, channels, sdy_n, sdy_c)
    shift = tl.load(SHIFT + rows, mask=row_ok, other=0.0)

    start = pid_split * split_len
    stop = tl.minimum(start + split_len, length)
    acc_dy = tl.zeros([BLOCK_ROWS, BLOCK_LEN], dtype=acc_dtype)
    acc_dy_xs = tl.zeros([BLOCK_ROWS, BLOCK_LEN], dtype=acc_dtype)
    for tile_start in range(start, stop, BLOCK_LEN):
        cols = tile_positions(tile_start, BLOCK_LEN, INDEX_64)
        mask = row_ok[:, None] & (cols < stop)[None, :]
        x_offs = position_offsets(cols, inner_size, sx_outer, sx_inner, TWO_LEVEL)
        dy_offs = position_offsets(cols, inner_size, sdy_outer, sdy_inner, TWO_LEVEL)
        x = tl.load(x_ptr[:, None] + x_offs[None, :], mask=mask, other=0.0).to(acc_dtype)
        dy = tl.load(dy_ptr[:, None] + dy_offs[None, :], mask=mask, other=0.0).to(acc_dtype)
        acc_dy += dy
        acc_dy_xs += dy * tl.where(mask, x - shift[:, None], 0.0)

    out = rows * num_splits + pid_split
    tl.store(SUM_DY + out, tl.sum(acc_dy, axis=1), mask=row_ok)
    tl.store(SUM_DY_XS + out, tl.sum(acc_dy_xs, axis=1), mask=row_ok)


@triton.jit
def _merge_splits_kernel(
    MEAN, VAR, SUM_DY, SUM_DY_XS, OUT_A, OUT_B,
    rows_total, length, split_len, last_split_len, num_splits,
    SPLITS_PAD: tl.constexpr, BLOCK_ROWS: tl.constexpr, MOMENTS: tl.constexpr,
):  # fmt: skip
    """Combine the per-split partial results of long rows into (R,) outputs.

    Moments: Chan's merge of (count, mean, var) triples; gradient sums: plain sums.
    """
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < rows_total
    splits = tl.arange(0, SPLITS_PAD)
    mask = row_ok[:, None] & (splits < num_splits)[None, :]
    offs = rows[:, None] * num_splits + splits[None, :]
    if MOMENTS:
        mean = tl.load(MEAN + offs, mask=mask, other=0.0)
        var = tl.load(VAR + offs, mask=mask, other=0.0)
        # Every split holds split_len positions but the last, which holds the rest (counted
        # on the host: split_len · (num_splits − 1) may pass 2³¹).
        count = tl.where(splits == num_splits - 1, last_split_len, split_len)
        weight = tl.where(splits < num_splits, count, 0).to(mean.dtype) / length
        total_mean = tl.sum(mean * weight[None, :], axis=1)
        spread = tl.where(mask, mean - total_mean[:, None], 0.0)
        total_var = tl.sum((var + spread * spread) * weight[None, :], axis=1)
        tl.store(OUT_A + rows, total_mean, mask=row_ok)
        tl.store(OUT_B + rows, total_var, mask=row_ok)
    else:
        sum_dy = tl.sum(tl.load(SUM_DY + offs, mask=mask, other=0.0), axis=1)
        sum_dy_xs = tl.sum(tl.load(SUM_DY_XS + offs, mask=mask, other=0.0), axis=1)
        tl.store(OUT_A + rows, sum_dy, mask=row_ok)
        tl.store(OUT_B + rows, sum_dy_xs, mask=row_ok)


def _partials(
    n: int, c: int, num_splits: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Two buffers for the (N·C, S) partial results: shaped (N, C) already when S = 1 (the
    kernels index them flat), so the common case needs no merge and no view."""
    shape = (n, c) if num_splits == 1 else (n * c, num_splits)
    return torch.empty(shape, dtype=dtype, device=device), torch.empty(
        shape, dtype=dtype, device=device
    )


def _merge_splits(
    a: Tensor, b: Tensor, plan: RowPlan, split_len: int, num_splits: int, moments: bool
) -> tuple[Tensor, Tensor]:
    """(N·C, S) partials → contiguous (N, C) results; with S = 1 they are that already."""
    if num_splits == 1:
        return a, b
    rows = plan.rows
    out_a = a.new_empty((rows // plan.channels, plan.channels))
    out_b = torch.empty_like(out_a)
    splits_pad = next_pow2(num_splits)
    block_rows = max(1, min(next_pow2(rows), 4096 // splits_pad))
    launch(_merge_splits_kernel, (cdiv(rows, block_rows),))(
        a, b, a, b, out_a, out_b,
        rows, plan.length, split_len, plan.length - split_len * (num_splits - 1), num_splits,
        SPLITS_PAD=splits_pad, BLOCK_ROWS=block_rows, MOMENTS=moments,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    return out_a, out_b


def row_moments(x: Tensor, stat_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row shift s (`_row_shift`), mean of x − s and biased variance, each (N, C)."""
    (x,), plan, (strides,) = plan_rows_or_copy(x)
    n, c = x.shape[:2]
    split_len, num_splits = reduction_split(plan, x.device)
    shift = torch.empty((n, c), dtype=stat_dtype, device=x.device)
    mean, var = _partials(n, c, num_splits, stat_dtype, x.device)
    grid = (cdiv(plan.rows, plan.block_rows), num_splits)
    launch(_row_moments_kernel, grid)(
        x, shift, mean, var,
        plan.rows, plan.channels, plan.length, plan.inner_size,
        *_strides(strides),
        split_len, num_splits,
        BLOCK_ROWS=plan.block_rows, BLOCK_LEN=plan.block_len,
        TWO_LEVEL=plan.two_level, ACC_FP64=stat_dtype == torch.float64,
        INDEX_64=needs_64_bit_indices(plan, split_len, num_splits),
        num_warps=plan.num_warps,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    mean, var = _merge_splits(mean, var, plan, split_len, num_splits, moments=True)
    return shift, mean, var


def row_grad_sums(x: Tensor, dy: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row Σ dy and Σ dy·(x − s), each of shape (N, C), in `shift`'s dtype."""
    (x, dy), plan, (x_strides, dy_strides) = plan_rows_or_copy(x, dy)
    n, c = x.shape[:2]
    split_len, num_splits = reduction_split(plan, x.device)
    sum_dy, sum_dy_xs = _partials(n, c, num_splits, shift.dtype, x.device)
    grid = (cdiv(plan.rows, plan.block_rows), num_splits)
    launch(_row_grad_sums_kernel, grid)(
        x, dy, shift, sum_dy, sum_dy_xs,
        plan.rows, plan.channels, plan.length, plan.inner_size,
        *_strides(x_strides), *_strides(dy_strides),
        split_len, num_splits,
        BLOCK_ROWS=plan.block_rows, BLOCK_LEN=plan.block_len,
        TWO_LEVEL=plan.two_level, ACC_FP64=shift.dtype == torch.float64,
        INDEX_64=needs_64_bit_indices(plan, split_len, num_splits),
        num_warps=plan.num_warps,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    return _merge_splits(sum_dy, sum_dy_xs, plan, split_len, num_splits, moments=False)
