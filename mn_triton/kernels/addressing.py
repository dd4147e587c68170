"""Pointer arithmetic shared by the kernels: rows (n, c) and positions l within a row.

All offsets are int64: N·C·L, or a single stride times an index, may pass 2³¹.
"""

import triton
import triton.language as tl


@triton.jit
def row_offsets(rows, channels, stride_n, stride_c):
    """Offset of element 0 of each row r = n·C + c."""
    n = rows // channels
    c = rows - n * channels
    return n.to(tl.int64) * stride_n + c.to(tl.int64) * stride_c


@triton.jit
def position_offsets(cols, inner_size, stride_outer, stride_inner, TWO_LEVEL: tl.constexpr):
    """Offset of position l within a row: one strided level, or (l // inner, l % inner)."""
    cols = cols.to(tl.int64)
    if TWO_LEVEL:
        outer = cols // inner_size
        return outer * stride_outer + (cols - outer * inner_size) * stride_inner
    return cols * stride_inner
