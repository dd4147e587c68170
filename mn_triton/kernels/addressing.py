"""Pointer arithmetic shared by the kernels: rows (n, c) and positions l within a row.

All offsets are int64: N·C·L, or a single stride times an index, may pass 2³¹. Row and
position indices are int32 unless the host asks for 64 bits (`layout.needs_64_bit_indices`:
N·C or L itself near 2³¹), where a product of a program id and a block size would wrap.
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


@triton.jit
def program_index(axis, INDEX_64: tl.constexpr):
    """This program's id along `axis`, widened to int64 when the indices derived from it may
    pass 2³¹ (int32 otherwise: cheaper row divisions)."""
    pid = tl.program_id(axis)
    if INDEX_64:
        pid = pid.to(tl.int64)
    return pid


@triton.jit
def tile_positions(tile_start, BLOCK_LEN: tl.constexpr, INDEX_64: tl.constexpr):
    """Positions tile_start + [0, BLOCK_LEN), in int64 where they may pass 2³¹ (the loop
    variable alone does not make them so in Triton's interpreter)."""
    cols = tl.arange(0, BLOCK_LEN)
    if INDEX_64:
        cols = cols.to(tl.int64)
    return tile_start + cols
