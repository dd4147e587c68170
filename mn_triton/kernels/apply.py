"""The elementwise pass: out = (x − s)·a + b [+ dy·d], with per-row s, a, b, d.

Forward it writes y (a = scale, b = bias term); backward it writes dx with the same
kernel (a, b from the mix backward, d = the forward scale). Rows of one element take
neither pass where the mix runs as kernels (x − s = 0: y is b, dx = b + dy·d, torch ops;
ops._apply, ops._dx; backend.point_rows decides). Working on x − s rather than
x keeps the result accurate when x carries a large common offset.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .addressing import position_offsets, program_index, row_offsets
from .layout import FP_FUSION, cdiv, launch, needs_64_bit_indices, plan_rows_or_copy
from .layout import strides_tuple as _strides


@triton.jit
def _row_affine_kernel(
    X, DY, OUT, SHIFT, X_SCALE, BIAS, DY_SCALE,
    rows_total, channels, length, inner_size, len_tiles,
    sx_n, sx_c, sx_outer, sx_inner,
    sdy_n, sdy_c, sdy_outer, sdy_inner,
    so_n, so_c, so_outer, so_inner,
    BLOCK_ROWS: tl.constexpr, BLOCK_LEN: tl.constexpr,
    TWO_LEVEL: tl.constexpr, HAS_DY: tl.constexpr, INDEX_64: tl.constexpr,
):  # fmt: skip
    # A 1-D grid (CUDA allows 65535 programs on its other axes, which long channels_last rows
    # of 16-position tiles exceed): program → (block of rows, tile along them).
    pid = program_index(0, INDEX_64)
    rows = (pid // len_tiles) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = (pid % len_tiles) * BLOCK_LEN + tl.arange(0, BLOCK_LEN)
    row_ok = rows < rows_total
    mask = row_ok[:, None] & (cols < length)[None, :]

    shift = tl.load(SHIFT + rows, mask=row_ok, other=0.0)
    x_scale = tl.load(X_SCALE + rows, mask=row_ok, other=0.0)
    bias = tl.load(BIAS + rows, mask=row_ok, other=0.0)

    x_ptr = X + row_offsets(rows, channels, sx_n, sx_c)[:, None]
    x_ptr += position_offsets(cols, inner_size, sx_outer, sx_inner, TWO_LEVEL)[None, :]
    x = tl.load(x_ptr, mask=mask, other=0.0).to(shift.dtype)
    out = (x - shift[:, None]) * x_scale[:, None] + bias[:, None]
    if HAS_DY:
        dy_scale = tl.load(DY_SCALE + rows, mask=row_ok, other=0.0)
        dy_ptr = DY + row_offsets(rows, channels, sdy_n, sdy_c)[:, None]
        dy_ptr += position_offsets(cols, inner_size, sdy_outer, sdy_inner, TWO_LEVEL)[None, :]
        dy = tl.load(dy_ptr, mask=mask, other=0.0).to(shift.dtype)
        out += dy * dy_scale[:, None]

    out_ptr = OUT + row_offsets(rows, channels, so_n, so_c)[:, None]
    out_ptr += position_offsets(cols, inner_size, so_outer, so_inner, TWO_LEVEL)[None, :]
    tl.store(out_ptr, out.to(OUT.dtype.element_ty), mask=mask)


def row_affine(
    x: Tensor,
    shift: Tensor,
    x_scale: Tensor,
    bias: Tensor,
    dy: Tensor | None = None,
    dy_scale: Tensor | None = None,
    like: Tensor | None = None,
) -> Tensor:
    """(x − shift)·x_scale + bias [+ dy·dy_scale], per-row coefficients of shape (N, C).

    The result has x's dtype and `torch.empty_like(like)`'s layout (`like`: x by default;
    the op's own input where x is a copy of it, backend.addressable).
    """
    # The kernel indexes the per-row coefficients as dense (N, C) arrays.
    shift, x_scale, bias = shift.contiguous(), x_scale.contiguous(), bias.contiguous()
    dy_scale = x_scale if dy_scale is None else dy_scale.contiguous()
    out = torch.empty_like(x if like is None else like)
    tensors = (x, out) if dy is None else (x, dy, out)
    (x_, *dy_, out_), plan, strides = plan_rows_or_copy(*tensors, written=1)
    dy_ = dy_[0] if dy_ else x_  # a placeholder pointer when there is no dy
    dy_strides = strides[1] if dy is not None else strides[0]
    len_tiles = cdiv(plan.length, plan.block_len)
    launch(_row_affine_kernel, (cdiv(plan.rows, plan.block_rows) * len_tiles,))(
        x_, dy_, out_,
        shift, x_scale, bias, dy_scale,
        plan.rows, plan.channels, plan.length, plan.inner_size, len_tiles,
        *_strides(strides[0]), *_strides(dy_strides), *_strides(strides[-1]),
        BLOCK_ROWS=plan.block_rows, BLOCK_LEN=plan.block_len,
        TWO_LEVEL=plan.two_level, HAS_DY=dy is not None,
        INDEX_64=needs_64_bit_indices(plan),
        num_warps=plan.num_warps,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    if out_ is not out:  # the planner fell back to contiguous copies
        out.copy_(out_)
    return out
