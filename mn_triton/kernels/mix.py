"""The mix as Triton kernels: the small math between the passes over x, in few launches.

Same mathematics as `mn_triton/mix.py` (read that first: notation, the pivots, the
backward derivation); there it is ~45 small torch ops forward and ~60 backward, which on a
GPU costs more in launches than the passes over x. Here:

- MN forward: one kernel. Each program owns a block of channels and walks its samples
  three times: twice for the mode statistics (the gate-weighted mean, merged tile by tile;
  then, around each mode's own pivot, its residual and the variance), once for the per-row
  coefficients. The gates need every channel, so each program computes them itself,
  reading all C row statistics of each sample per walk: cheap where they are few or one
  program holds every channel. Where several programs would each repeat that over many
  statistics, one small kernel first writes the gates, (N, K), for all of them to read
  (GATES_KERNEL_MIN_ELEMENTS); the backward reads the forward's gates (and chooses alike
  only where it is given none). A program's samples are all N, except where many samples
  meet few channels: there the samples are split along the grid's second axis too
  (SPLIT_MIN_ROWS), and in training each split's statistics are computed and merged
  first, for the forward kernel to take as given.
- MN backward: two kernels (one where a program holds every channel: FUSE_GATES; three
  with the gates kernel, where it is given no gates). The first owns channels again and
  produces everything that sums over samples, per-row terms, and its channels' share of
  ∂L/∂g per sample; the second adds those shares up (a sum over channels, hence the
  second launch), takes the softmax backward and finishes the rows and the gate gradients.
  With the samples split, in training the first runs as two launches around the sum of the
  splits' sums over samples (in eval each split runs both passes alone), and the splits'
  parameter gradients are summed at the end.
- MGN: one kernel forward and one backward, a program per sample (statistics are per
  sample: two walks over its channels for the mean, then residual and variance); parameter
  gradients come out as per-sample partials, summed by `_sum_partials_kernel` (one launch).

Rows of one element (L = 1) are their own statistics: where backend.point_rows takes that
path, the callers pass x as s and dy as Σ dy (as float32 copies where they are 16-bit or
not dense rows), and None for the mean deviations, variances and Σ dy·(x − s),
which are 0 and which the kernels then do not read (_load_or_zero).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.graph import increment_version

from reference._base import MIN_MODE_MASS, update_running_stats

from ..mix import MixGrads, ModeStats
from .layout import FP_FUSION, cdiv, launch, next_pow2

# Elements of the largest 3-D temporary ([samples, modes, channels]) a program holds.
MIX_TILE = 4096
# The largest K the mix kernels take: up to it each temporary of theirs stays within MIX_TILE
# elements (blocks of one sample and one channel at K_PAD = MIX_TILE). Larger K runs the mix
# in torch ops between the Triton passes over x (backend._fused_mix): correct, in more
# launches. The paper uses K ≤ 6; for sm_90 every mix kernel compiles in under 10 s up to
# K = 4096, but at K = 4096 they run out of registers and spill (MN's 24–928 bytes per
# thread, MGN's 72–1816; tools/compile_check.py, 2026-12-06); at K ≤ 512 none spills more
# than 8 bytes (benchmarks/NOTES.md).
MAX_MODES = MIX_TILE
# MN's blocks of samples × modes × channels: at most MN_TILE elements (one sample × one
# channel once K_PAD passes MN_TILE: K > 512) and MN_BLOCK_N samples.
# With larger blocks the compiled MN mix kernels gave wrong per-row coefficients on an H200
# (Triton 3.6, sm_90, float32 statistics): forward scale and bias, backward dy_scale, off by
# 80–300 %, while their mode statistics, their float64 versions and the interpreter were
# right. Every failing block held ≥ 16 samples and ≥ 16 channels ([16, 4, 32], [64, 2, 32],
# [32, 2, 16], [64, 1, 32], and still [16, 2, 16] and [16, 1, 32] at MN_TILE = 512); every
# block of ≤ 8 samples that ran was right ([4, 4, 32], [8, 2, 32], [2, 8, 32], [4, 8, 16],
# [8, 2, 8], [4, 2, 32]). The cause, likely a lowering of these 3-D layouts, is not
# established (benchmarks/NOTES.md); tests/test_gpu.py checks the kernels against the
# torch-op mix on a GPU at those shapes.
MN_TILE = 512
MN_BLOCK_N = 8
# MGN's blocks of channels × modes, [CHUNK_C, K_PAD]: at most MGN_TILE elements (8 per
# thread of 4 warps and temporary). One program per sample walks its channels in such
# blocks. At MIX_TILE's 4096 the compiled backward kernel ran out of registers (sm_90,
# Triton 3.9: 255, spilling 224 bytes per thread at C = 512, K = 8; 3400 in float64) and
# the float64 forward spilled 776; at 1024 neither spills (96 and 216 registers).
MGN_TILE = 1024
# MN backward: where one program holds every channel, its rows kernel finishes the gates'
# share too (no gates kernel). A switch for tests, which compare both ways.
FUSE_GATES = True
# MN: the gates need every channel of a sample, and each program of the mix kernels holds
# BLOCK_C of them, so computing the gates in every program reads all C row statistics of
# each of its samples per walk, in each of cdiv(C, BLOCK_C) programs (3 walks forward; the
# backward reads the forward's gates).
# From this many (N, C) elements on, where several programs share the channels, one small
# kernel (_mn_gates_kernel) writes them once, (N, K), and the walks read those instead: one
# launch more per direction against N·C reads less per walk and program (the threshold is a
# prediction, benchmarks/NOTES.md; a GPU run is to place it). Tests move it to try both.
GATES_KERNEL_MIN_ELEMENTS = 16384
# MN: each program of the mix kernels walks its channels' samples, so with many samples and
# few channels (a BatchNorm1d-like (65 536, 64) batch: 2 programs) a launch is two programs
# streaming everything. There the samples are split too, across the grid's second axis, into
# splits of at least SPLIT_MIN_ROWS samples, until about MIX_PROGRAMS programs run (two per SM
# of an H100/H200): the splits' statistics are merged as SyncModeNorm merges processes', and
# the backward's sums over samples add up the splits' partial sums (_mn_splits). Batches of
# fewer than 2·SPLIT_MIN_ROWS samples (every CNN layer of the benchmark grid) are never
# split. Tests move both to try the split on small batches.
SPLIT_MIN_ROWS = 1024
MIX_PROGRAMS = 256
# Inside a CUDA graph the host's cost per launch is gone and only the GPU's time counts,
# where a walk over N samples is a chain of N / BLOCK_N dependent steps: on an H200 the mix
# of a CNN batch of 128 samples (16 blocks, 3 walks forward, 5 backward then; 2–3 since the
# backward takes the forward's statistics and gates) took ~150 µs
# forward and ~200 µs backward per layer, more than the passes over x (benchmarks/NOTES.md).
# Captured calls of the custom ops (torch.compile with CUDA graphs) therefore split batches
# of 2·GRAPH_SPLIT_MIN_ROWS samples or more into splits of at least GRAPH_SPLIT_MIN_ROWS:
# chains of 2 steps, for 2 launches more forward and 3 backward, which eager calls, bound by
# the host, would pay for (mn_triton/ops.py). For the same reason they compute the gates
# once wherever several programs share the channels, whatever GATES_KERNEL_MIN_ELEMENTS
# says: one launch more, against every program forming each sample's gates from all C
# channels in each of the forward's walks.
GRAPH_SPLIT_MIN_ROWS = 16
# MN backward, where P = cdiv(C, BLOCK_C) programs share the channels: the rows kernel
# leaves each program's share of Σ_c g·∂L/∂g, (P, N, K), and every program of the gates
# kernel sums all P shares of its samples: P²·N·K loads, which for wide features ((65 536,
# 1024) at K = 8: 67 MB of shares, each read by all 32 programs, 2.1 GB in all) pass the
# backward's reads of x (1.3 GB there). From (P − 1)·N·K ≥ GATE_PARTIALS_SUM_MIN the
# shares are summed first (one torch sum, N·K·P reads in all) and the gates kernel reads
# the (N, K) total: one launch more against (P − 1)·N·K loads less per program, ~5 µs of
# device time at an assumed 50–100 GB/s per program (a guess, benchmarks/NOTES.md, to place
# from a GPU run). Tests move it.
GATE_PARTIALS_SUM_MIN = 2**17
_as_captured: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mn_triton_as_captured", default=False
)


@contextlib.contextmanager
def as_captured() -> Iterator[None]:
    """A block whose MN mix calls choose as calls captured into a CUDA graph do: samples
    split from 2·GRAPH_SPLIT_MIN_ROWS on (instead of 2·SPLIT_MIN_ROWS), gates computed once
    wherever several programs share the channels. For the calls of this thread (the autograd
    engine runs a CUDA backward on its own thread: set it inside the backward)."""
    token = _as_captured.set(True)
    try:
        yield
    finally:
        _as_captured.reset(token)


_TINY: tl.constexpr = tl.constexpr(MIN_MODE_MASS)


# ----------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------


@triton.jit
def _row_offsets(rows, cols, width):
    """Offsets of [rows, cols] in a dense row-major array `width` wide, in 64 bits: the
    (N, C) statistics pass 2³¹ elements at N·C ≥ 2³¹ (8 GiB of float32 rows)."""
    return rows.to(tl.int64)[:, None] * width + cols[None, :]


@triton.jit
def _mode_channel_offsets(modes, mode_ok, cols, col_ok, C):
    """Offsets and mask of a [K_PAD, BLOCK_C] block of a dense (K, C) array (gate weights,
    per-mode statistics)."""
    return modes[:, None] * C + cols[None, :], mode_ok[:, None] & col_ok[None, :]


@triton.jit
def _load_rows(PTR, rows, cols, C, mask):
    return tl.load(PTR + _row_offsets(rows, cols, C), mask=mask, other=0.0)


@triton.jit
def _load_or_zero(PTR, offs, mask, like):
    """A row statistic that is 0 where every row holds one element (L = 1): the mean
    deviation x − s, the variance, Σ dy·(x − s). There the caller passes PTR = None (a
    constexpr: nothing is read, see backend.point_rows); elsewhere it is loaded."""
    if PTR is None:  # noqa: SIM108 (a constexpr branch: only the one taken is compiled)
        value = tl.zeros_like(like)
    else:
        value = tl.load(PTR + offs, mask=mask, other=0.0)
    return value


@triton.jit
def _load_or(PTR, idx, ok, fill, dtype, PRESENT: tl.constexpr):
    """An optional per-channel parameter (affine weight or bias), or `fill` without one."""
    if PRESENT:
        value = tl.load(PTR + idx, mask=ok, other=fill).to(dtype)
    else:
        value = tl.full(idx.shape, fill, dtype=dtype)
    return value


@triton.jit
def _own_samples(N, ROWS_PER_SPLIT):
    """This program's samples, [start, stop): its split along the grid's second axis (all N
    samples where they are not split: ROWS_PER_SPLIT ≥ N, one split). In 64 bits: a split's
    start, or its start + ROWS_PER_SPLIT, may pass 2³¹ where N comes near it."""
    start = tl.program_id(1).to(tl.int64) * ROWS_PER_SPLIT
    return start, tl.minimum(start + ROWS_PER_SPLIT, N)


@triton.jit
def _split_offset(SPLIT_STRIDE):
    """Where this program's split of the samples writes its partial results: one row of
    SPLIT_STRIDE elements per split (0 unsplit: the outputs themselves)."""
    return tl.program_id(1).to(tl.int64) * SPLIT_STRIDE


@triton.jit
def _mn_gates(
    SHIFT, MDEV, GW, GB, rows, row_ok, modes, mode_ok, C,
    HAS_GATE_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, K_PAD: tl.constexpr,
    CHUNK_C: tl.constexpr,
):  # fmt: skip
    """g = softmax(W·m + b) for a block of samples, [BLOCK_N, K_PAD]; 0 in padding."""
    dtype = SHIFT.dtype.element_ty
    logits = tl.zeros([BLOCK_N, K_PAD], dtype=dtype)
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        mask = row_ok[:, None] & c_ok[None, :]
        offs = _row_offsets(rows, cc, C)
        s = tl.load(SHIFT + offs, mask=mask, other=0.0)
        m = s + _load_or_zero(MDEV, offs, mask, s)
        w_mask = mode_ok[:, None] & c_ok[None, :]
        w = tl.load(GW + modes[:, None] * C + cc[None, :], mask=w_mask, other=0.0).to(dtype)
        logits += tl.sum(m[:, None, :] * w[None, :, :], axis=2)
    if HAS_GATE_BIAS:
        logits += tl.load(GB + modes, mask=mode_ok, other=0.0).to(dtype)[None, :]
    return _softmax_rows(logits, row_ok, mode_ok)


@triton.jit
def _softmax_rows(logits, row_ok, mode_ok):
    """Softmax over the last axis (modes) of a 2-D block; padded modes and rows give 0."""
    logits = tl.where(mode_ok[None, :], logits, float("-inf"))
    top = tl.max(logits, axis=1)
    e = tl.exp(logits - top[:, None])
    g = e / tl.sum(e, axis=1)[:, None]
    return tl.where(row_ok[:, None] & mode_ok[None, :], g, 0.0)


@triton.jit
def _mn_block_gates(
    SHIFT, MDEV, GW, GB, GATES, rows, row_ok, modes, mode_ok, C, K,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """A block of samples' gates, [BLOCK_N, K_PAD]: read from GATES, (N, K) written once by
    _mn_gates_kernel, or computed here from every channel's row statistics."""
    if GATES_GIVEN:
        nk_ok = row_ok[:, None] & mode_ok[None, :]
        g = tl.load(GATES + _row_offsets(rows, modes, K), mask=nk_ok, other=0.0)
    else:
        g = _mn_gates(SHIFT, MDEV, GW, GB, rows, row_ok, modes, mode_ok, C,
                      HAS_GATE_BIAS, BLOCK_N, K_PAD, CHUNK_C)  # fmt: skip
    return g


@triton.jit
def _mn_gates_kernel(
    SHIFT, MDEV, GW, GB, GATES, N, C, K,
    HAS_GATE_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, K_PAD: tl.constexpr,
    CHUNK_C: tl.constexpr,
):  # fmt: skip
    """Every sample's gates, once, into GATES (N, K), for the mix kernels' programs to read
    instead of each computing them (see GATES_KERNEL_MIN_ELEMENTS)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    g = _mn_gates(SHIFT, MDEV, GW, GB, rows, row_ok, modes, mode_ok, C,
                  HAS_GATE_BIAS, BLOCK_N, K_PAD, CHUNK_C)  # fmt: skip
    tl.store(GATES + _row_offsets(rows, modes, K), g, mask=row_ok[:, None] & mode_ok[None, :])


@triton.jit
def _softmax_backward(g, g_dg, K_PAD: tl.constexpr):
    """∂L/∂logits from g and g ⊙ ∂L/∂g, [B, K_PAD], in the form that keeps its precision
    when a gate saturates: Σ_{j≠k} (g_j·g_k∂g_k − g_k·g_j∂g_j) (see mix._softmax_backward).

    The sums over the other modes j ≠ k take O(K) work per row: for each row's largest gate
    they are summed directly; for every other mode k, g_k ≤ ½, and total − own loses nothing
    that matters: 1 − g_k ≥ ½, and the rounding of g_k∂g_k in the total is at most ~ε of
    the term g_k∂g_k·(1 − g_k) beside it. Padded modes and rows hold g = 0 and give 0."""
    j = tl.arange(0, K_PAD)[None, :]
    # The first of the largest gates (not tl.argmax: the interpreter's raises on NaN rows).
    top = tl.min(tl.where(g == tl.max(g, axis=1)[:, None], j, K_PAD), axis=1)
    is_top = j == top[:, None]
    rest_g = tl.sum(tl.where(is_top, 0.0, g), axis=1)[:, None]
    rest_gdg = tl.sum(tl.where(is_top, 0.0, g_dg), axis=1)[:, None]
    top_g = tl.sum(tl.where(is_top, g, 0.0), axis=1)[:, None]
    top_gdg = tl.sum(tl.where(is_top, g_dg, 0.0), axis=1)[:, None]
    others_g = tl.where(is_top, rest_g, (rest_g + top_g) - g)
    others_gdg = tl.where(is_top, rest_gdg, (rest_gdg + top_gdg) - g_dg)
    return g_dg * others_g - g * others_gdg


@triton.jit
def _as(value, dtype: tl.constexpr):
    """A float argument from the host, in `dtype`. Such arguments are annotated float64:
    compiled Triton would pass them as float32, too coarse for float64 layers. (`0 + value`
    rather than `.to`: the interpreter passes them as plain Python floats.)"""
    return (tl.zeros([], dtype) + value).to(dtype)


@triton.jit
def _at_least(value, floor):
    """max(value, floor) that keeps NaN, as torch's clamp_min: tl.maximum is IEEE maxNum
    (max(NaN, 0) = 0), which would turn a NaN statistic into a plausible number."""
    return tl.where(value < floor, floor, value)


@triton.jit
def _nonzero(mass):
    """`mass` where it is positive, else 1: a weighted mean over no mass is then 0."""
    return tl.where(mass > 0, mass, 1.0)


@triton.jit
def _around_mode_pivot(sum_raw, sum_sq, mode_pivot, coverage):
    """(μ − P, σ²) from Σ w·(m − P) and Σ w·(v + (m − P)²), P a mode's own pivot (μ as a
    sum rounds it) and Σ w = `coverage` (see mix.ModeStats): μ − P = Σ w·(m − P) −
    (1 − Σ w)·P and σ² = Σ w·(v + (m − μ)²) expanded around P. The expansion cancels
    (μ − P)² / σ² of σ²'s digits: nothing while P lies within σ of μ, which a P within a few
    ulps of the mode's own values is, for any σ that float32 data can resolve; it saves a
    walk. (It cost 1e-4 of σ² when P missed μ by ~100σ: see _mn_batch_stats.)"""
    residual = sum_raw - (1.0 - coverage) * mode_pivot
    var = sum_sq - 2.0 * residual * sum_raw + residual * residual * coverage
    return residual, _at_least(var, 0.0)


@triton.jit
def _sample_rows(n0, stop, BLOCK_N: tl.constexpr):
    """The samples of the block from n0 (below `stop`), and which of them exist.

    Kept apart from the helpers that take pointers (_mn_block, _mn_backward_block), so that
    the rows a kernel stores to do not come out of a call that also took the inputs:
    inductor's analysis of which arguments a kernel writes (torch.library.wrap_triton)
    counts every argument of such a call as written, and would copy them before each
    launch (tools/trace_probe.py)."""
    rows = n0 + tl.arange(0, BLOCK_N)
    return rows, rows < stop


@triton.jit
def _mn_block(
    SHIFT, MDEV, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes, mode_ok,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """A block of samples (`rows`, from _sample_rows) × this program's channels: mask,
    gates, s and md."""
    g = _mn_block_gates(SHIFT, MDEV, GW, GB, GATES, rows, row_ok, modes, mode_ok, C, K,
                        HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C)  # fmt: skip
    mask = row_ok[:, None] & col_ok[None, :]
    offs = _row_offsets(rows, cols, C)
    shift = tl.load(SHIFT + offs, mask=mask, other=0.0)
    mdev = _load_or_zero(MDEV, offs, mask, shift)
    return mask, g, shift, mdev


@triton.jit
def _mn_batch_stats(
    SHIFT, MDEV, VAR, GW, GB, GATES, cols, col_ok, modes, mode_ok, start, stop, C, K,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr, K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """(N_k, P_k, μ_k − P_k, σ²_k) for this program's channels: the mode's own pivot P_k
    (μ_k as its sum rounds) and the rest, as in mix.batch_mode_stats (see mix.ModeStats),
    over the samples [start, stop).

    Two passes over the samples: μ_k = Σ w·m, merged tile by tile; then Σ w·(m − P_k) and
    Σ w·(v + (m − P_k)²), from which μ_k − P_k and σ²_k around μ_k. (μ_k summed relative to
    sample 0's shift, as it once was, missed μ_k by the rounding of values as far from that
    shift as the data reach: with sample 0 at 1e8 and a mode of the others spread by 0.1,
    by up to ~10 (100σ), and _around_mode_pivot's σ² then lost 1e-4.)
    """
    dtype = SHIFT.dtype.element_ty
    mass = tl.zeros([K_PAD], dtype=dtype)
    mean = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    for n0 in range(start, stop, BLOCK_N):
        rows, row_ok = _sample_rows(n0, stop, BLOCK_N)
        mask, g, shift, mdev = _mn_block(
            SHIFT, MDEV, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes, mode_ok,
            HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C,
        )  # fmt: skip
        m = tl.where(mask, shift + mdev, 0.0)
        # The block's own mean, merged into the running one (Chan).
        b_mass = tl.sum(g, axis=0)
        b_mean = tl.sum(g[:, :, None] * m[:, None, :], axis=0) / _nonzero(b_mass)[:, None]
        total = mass + b_mass
        mean += (b_mean - mean) * (b_mass / _nonzero(total))[:, None]
        mass = total
    # mix.batch_mode_stats divides by max(N_k, tiny) (0 for a mode without mass): below tiny
    # μ_k is the exact weighted mean times Σ w = N_k / tiny, and σ²_k is taken around that.
    clamped = _at_least(mass, _TINY)
    coverage = (mass / clamped)[:, None]
    center = mean * coverage
    sum_raw = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    sum_sq = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    for n0 in range(start, stop, BLOCK_N):
        rows, row_ok = _sample_rows(n0, stop, BLOCK_N)
        mask, g, shift, mdev = _mn_block(
            SHIFT, MDEV, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes, mode_ok,
            HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C,
        )  # fmt: skip
        raw = _mn_dev(shift, mdev, mask, center, tl.zeros_like(center))
        v = _load_or_zero(VAR, _row_offsets(rows, cols, C), mask, shift)
        sum_raw += tl.sum(g[:, :, None] * raw, axis=0)
        sum_sq += tl.sum(g[:, :, None] * (v[:, None, :] + raw * raw), axis=0)
    residual, var = _around_mode_pivot(
        sum_raw / clamped[:, None], sum_sq / clamped[:, None], center, coverage
    )
    return mass, center, residual, var


@triton.jit
def _padded_as_zero(per_mode_channel, mode_ok, col_ok):
    """A [K_PAD, BLOCK_C] value with 0 in the padded modes and channels. Their variance is 0,
    so their 1/√(σ² + ε) is 1/√ε, which overflows for a tiny ε (in float32 below ~1e-38 ε is
    0): gates of 0 times inf would then put NaN into every row's coefficients."""
    return tl.where(mode_ok[:, None] & col_ok[None, :], per_mode_channel, 0.0)


@triton.jit
def _var_grad(d_rstd, rstd):
    """∂L/∂σ² from ∂L/∂r, multiplied from ∂L/∂r on: r³ alone overflows for a constant
    channel with a tiny ε, where ∂L/∂r is 0 (see mn_triton.mix._var_grad)."""
    return -0.5 * d_rstd * rstd * rstd * rstd


@triton.jit
def _mn_dev(s, mdev, mask, center, residual):
    """m − μ_k, [BLOCK_N, K_PAD, BLOCK_C], as (s − P_k) + md − (μ_k − P_k); 0 off the mask."""
    dev = (s[:, None, :] - center[None, :, :]) + mdev[:, None, :] - residual[None, :, :]
    return tl.where(mask[:, None, :], dev, 0.0)


@triton.jit
def _mn_mode_stats(
    SHIFT, MDEV, VAR, GW, GB, GATES, RMEAN, RMEAN_SQ, GIVEN, cols, col_ok, modes, mode_ok,
    start, stop, C, K,
    TRAINING: tl.constexpr, GIVEN_STATS: tl.constexpr, HAS_GATE_BIAS: tl.constexpr,
    GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """(N_k, P_k, μ_k − P_k, σ²_k): batch statistics (training: of the samples [start, stop),
    the whole batch wherever the samples are not split), given ones (SyncModeNorm's, merged
    across processes, or the splits' of the samples, merged, or those the training forward
    kept for its backward; packed in GIVEN), or the running estimates' (eval: mass 1, P_k
    the running mean itself, exactly)."""
    if GIVEN_STATS:
        kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
        mass, center, residual, var = _load_mode_stats(GIVEN, kc, kc_ok, modes, mode_ok, K, C)
    elif TRAINING:
        mass, center, residual, var = _mn_batch_stats(
            SHIFT, MDEV, VAR, GW, GB, GATES, cols, col_ok, modes, mode_ok, start, stop, C, K,
            HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, BLOCK_C, K_PAD, CHUNK_C,
        )  # fmt: skip
    else:
        dtype = SHIFT.dtype.element_ty
        kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
        running = tl.load(RMEAN + kc, mask=kc_ok, other=0.0)
        # σ² = ⟨x²⟩ − ⟨x⟩² in float64, as in mix.running_mode_stats.
        r64 = running.to(tl.float64)
        sq = tl.load(RMEAN_SQ + kc, mask=kc_ok, other=0.0).to(tl.float64)
        var = _at_least(sq - r64 * r64, 0.0).to(dtype)
        center = running.to(dtype)
        residual = tl.zeros_like(center)
        mass = tl.full([K_PAD], 1.0, dtype=dtype)
    return mass, center, residual, var


@triton.jit
def _sum_partials_kernel(
    PARTIAL, D_WEIGHT, D_BIAS, D_GATE_W, D_GATE_B, N, C, GATE_W_SIZE, K, WIDTH,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """Column sums over the N rows (WIDTH apart) of PARTIAL's first 2C + GATE_W_SIZE + K
    columns, [∂weight | ∂bias | ∂gate weight | ∂gate bias], each stored in the output it
    belongs to: four parameter gradients from one launch, in four tensors that share no
    storage (MGN's per-sample partials; MN's per split, where the samples are split)."""
    m = 2 * C + GATE_W_SIZE + K
    cols = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    col_ok = cols < m
    total = tl.zeros([BLOCK_M], dtype=PARTIAL.dtype.element_ty)
    for n0 in range(0, N, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        mask = (rows < N)[:, None] & col_ok[None, :]
        tile = tl.load(PARTIAL + _row_offsets(rows, cols, WIDTH), mask=mask, other=0.0)
        total += tl.sum(tile, axis=0)
    gate_b0 = 2 * C + GATE_W_SIZE
    tl.store(D_WEIGHT + cols, total, mask=cols < C)
    tl.store(D_BIAS + (cols - C), total, mask=(cols >= C) & (cols < 2 * C))
    tl.store(D_GATE_W + (cols - 2 * C), total, mask=(cols >= 2 * C) & (cols < gate_b0))
    tl.store(D_GATE_B + (cols - gate_b0), total, mask=(cols >= gate_b0) & col_ok)


# ----------------------------------------------------------------------------------------
# Mode Normalization
# ----------------------------------------------------------------------------------------


@triton.jit
def _update_running(RMEAN, RMEAN_SQ, MOMENTUM, momentum, mean, var, kc, kc_ok,
                    MOMENTUM_IN_TENSOR: tl.constexpr):  # fmt: skip
    """running ← running + λ·(batch − running) for ⟨x⟩ and ⟨x²⟩ = σ² + μ², in place."""
    if MOMENTUM_IN_TENSOR:  # momentum=None: λ = 1/num_batches_tracked, a tensor on device
        momentum = tl.load(MOMENTUM).to(mean.dtype)
    running = tl.load(RMEAN + kc, mask=kc_ok, other=0.0).to(mean.dtype)
    running_sq = tl.load(RMEAN_SQ + kc, mask=kc_ok, other=0.0).to(mean.dtype)
    running += momentum * (mean - running)
    running_sq += momentum * (var + mean * mean - running_sq)
    tl.store(RMEAN + kc, running.to(RMEAN.dtype.element_ty), mask=kc_ok)
    tl.store(RMEAN_SQ + kc, running_sq.to(RMEAN_SQ.dtype.element_ty), mask=kc_ok)


@triton.jit
def _mn_mix_forward_kernel(
    SHIFT, MDEV, VAR, GW, GB, GATES, ALPHA, BETA, RMEAN, RMEAN_SQ, MOMENTUM, GIVEN,
    SCALE, BIAS, MODE_MEAN, MODE_VAR, STATS_OUT, GATES_OUT,
    N, C, K, ROWS_PER_SPLIT, eps: tl.float64, momentum: tl.float64,
    TRAINING: tl.constexpr, GIVEN_STATS: tl.constexpr,
    UPDATE_RUNNING: tl.constexpr, MOMENTUM_IN_TENSOR: tl.constexpr,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """(scale, bias) per row for this program's channels and samples (its split of them
    where they are split: then, in training, the batch statistics come merged, GIVEN_STATS).
    STATS_OUT (training, unless None): the batch statistics computed here, packed
    (_store_mode_stats), for the backward to take as given. GATES_OUT (unless None): the
    gates computed here (every channel block computes the same; the first stores them)."""
    cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    start, stop = _own_samples(N, ROWS_PER_SPLIT)
    dtype = SHIFT.dtype.element_ty
    eps, momentum = _as(eps, dtype), _as(momentum, dtype)
    mass, center, residual, var = _mn_mode_stats(
        SHIFT, MDEV, VAR, GW, GB, GATES, RMEAN, RMEAN_SQ, GIVEN, cols, col_ok, modes,
        mode_ok, start, stop, C, K, TRAINING, GIVEN_STATS, HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N,
        BLOCK_C, K_PAD, CHUNK_C,
    )  # fmt: skip
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
    absolute_mean = center + residual
    if tl.program_id(1) == 0:  # every split holds the statistics; the first stores them
        tl.store(MODE_MEAN + kc, absolute_mean, mask=kc_ok)
        tl.store(MODE_VAR + kc, var, mask=kc_ok)
        if STATS_OUT is not None:
            _store_mode_stats(STATS_OUT, mass, center, residual, var, kc, kc_ok, modes,
                              mode_ok, K, C)  # fmt: skip
        if UPDATE_RUNNING:  # training: the running estimates follow the batch's, here
            _update_running(RMEAN, RMEAN_SQ, MOMENTUM, momentum, absolute_mean, var, kc,
                            kc_ok, MOMENTUM_IN_TENSOR)  # fmt: skip

    rstd = _padded_as_zero(1.0 / tl.sqrt(var + eps), mode_ok, col_ok)
    alpha = _load_or(ALPHA, cols, col_ok, 1.0, dtype, HAS_WEIGHT)
    beta = _load_or(BETA, cols, col_ok, 0.0, dtype, HAS_BIAS)
    for n0 in range(start, stop, BLOCK_N):
        rows, row_ok = _sample_rows(n0, stop, BLOCK_N)
        mask, g, shift, mdev = _mn_block(
            SHIFT, MDEV, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes, mode_ok,
            HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C,
        )  # fmt: skip
        dev = _mn_dev(shift, mdev, mask, center, residual)
        a = tl.sum(g[:, :, None] * rstd[None, :, :], axis=1)
        b = tl.sum(g[:, :, None] * dev * rstd[None, :, :], axis=1)
        scale = alpha * a
        offs = _row_offsets(rows, cols, C)
        if SCALE is not None:  # None on rows of one element, whose y is the bias alone
            tl.store(SCALE + offs, scale, mask=mask)
        tl.store(BIAS + offs, beta + alpha * b - mdev * scale, mask=mask)
        if GATES_OUT is not None:  # noqa: SIM102 (constexpr; compiled only where given)
            if tl.program_id(0) == 0:
                nk_ok = row_ok[:, None] & mode_ok[None, :]
                tl.store(GATES_OUT + _row_offsets(rows, modes, K), g, mask=nk_ok)


@triton.jit
def _store_mode_stats(STATS, mass, center, residual, var, kc, kc_ok, modes, mode_ok, K, C):
    """This program's channels of (N_k, P_k, μ_k − P_k, σ²_k) into a packed row of K + 3·K·C
    elements (mix.ModeStats.packed); N_k, the same in every program, by the first alone."""
    KC = K * C
    tl.store(STATS + K + kc, center, mask=kc_ok)
    tl.store(STATS + K + KC + kc, residual, mask=kc_ok)
    tl.store(STATS + K + 2 * KC + kc, var, mask=kc_ok)
    if tl.program_id(0) == 0:
        tl.store(STATS + modes, mass, mask=mode_ok)


@triton.jit
def _load_mode_stats(STATS, kc, kc_ok, modes, mode_ok, K, C):
    """This program's channels of (N_k, P_k, μ_k − P_k, σ²_k) from a packed row, as
    _store_mode_stats writes it."""
    KC = K * C
    mass = tl.load(STATS + modes, mask=mode_ok, other=0.0)
    center = tl.load(STATS + K + kc, mask=kc_ok, other=0.0)
    residual = tl.load(STATS + K + KC + kc, mask=kc_ok, other=0.0)
    var = tl.load(STATS + K + 2 * KC + kc, mask=kc_ok, other=0.0)
    return mass, center, residual, var


@triton.jit
def _mn_batch_stats_kernel(
    SHIFT, MDEV, VAR, GW, GB, GATES, STATS, N, C, K, ROWS_PER_SPLIT, SPLIT_STRIDE,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr, K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """This process's batch statistics (N_k, P_k, μ_k − P_k, σ²_k), for SyncModeNorm to
    merge across processes before the forward kernel takes them as given; or, where the
    samples are split, each split's, one row of SPLIT_STRIDE per split, to be merged so."""
    pid = tl.program_id(0)
    cols = pid * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    start, stop = _own_samples(N, ROWS_PER_SPLIT)
    mass, center, residual, var = _mn_batch_stats(
        SHIFT, MDEV, VAR, GW, GB, GATES, cols, col_ok, modes, mode_ok, start, stop, C, K,
        HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, BLOCK_C, K_PAD, CHUNK_C,
    )  # fmt: skip
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
    stats_row = STATS + _split_offset(SPLIT_STRIDE)
    _store_mode_stats(stats_row, mass, center, residual, var, kc, kc_ok, modes, mode_ok, K, C)


@triton.jit
def _mn_merge_stats_kernel(
    GATHERED, STATS, R, C, K, BLOCK_C: tl.constexpr, K_PAD: tl.constexpr,
):  # fmt: skip
    """SyncModeNorm's merge of R processes' statistics, as sync._merge_across_processes
    (which explains each step): GATHERED holds one row per process, [N_k | P_k | μ_k − P_k |
    σ²_k] (K + 3·K·C values), and STATS receives the whole batch's so. Four walks over the
    processes: the masses, then P, μ − P and σ² of the whole batch, each needing the one
    before."""
    pid = tl.program_id(0)
    cols = pid * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
    KC = K * C
    row_len = K + 3 * KC
    dtype = GATHERED.dtype.element_ty
    # Each walk moves a pointer from row to row (64-bit: R rows may pass 2³¹ values).
    total = tl.zeros([K_PAD], dtype=dtype)
    held = tl.zeros([K_PAD], dtype=dtype)
    row = GATHERED
    for _ in range(0, R):
        mass_r = tl.load(row + modes, mask=mode_ok, other=0.0)
        total += mass_r
        held += _at_least(mass_r, _TINY)
        row += row_len
    clamped_total = _at_least(total, _TINY)[:, None]
    coverage = held[:, None] / clamped_total
    center = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    row = GATHERED
    for _ in range(0, R):
        share_r = _at_least(tl.load(row + modes, mask=mode_ok, other=0.0), _TINY)[:, None]
        center_r = tl.load(row + K + kc, mask=kc_ok, other=0.0)
        center += share_r / clamped_total * center_r
        row += row_len
    residual = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    row = GATHERED
    for _ in range(0, R):
        share_r = _at_least(tl.load(row + modes, mask=mode_ok, other=0.0), _TINY)[:, None]
        center_r = tl.load(row + K + kc, mask=kc_ok, other=0.0)
        residual_r = tl.load(row + K + KC + kc, mask=kc_ok, other=0.0)
        residual += share_r / clamped_total * ((center_r - center) + residual_r)
        row += row_len
    residual -= (1.0 - coverage) * center
    m2 = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    row = GATHERED
    for _ in range(0, R):
        mass_r = tl.load(row + modes, mask=mode_ok, other=0.0)[:, None]
        held_r = _at_least(mass_r, _TINY)
        center_r = tl.load(row + K + kc, mask=kc_ok, other=0.0)
        residual_r = tl.load(row + K + KC + kc, mask=kc_ok, other=0.0)
        var_r = tl.load(row + K + 2 * KC + kc, mask=kc_ok, other=0.0)
        gap_r = ((center_r - center) + residual_r) - residual  # μ_r − μ
        spread_r = gap_r * (2.0 * (held_r - mass_r) * (center_r + residual_r) + mass_r * gap_r)
        m2 += var_r * held_r + spread_r
        row += row_len
    var = m2 / clamped_total
    _store_mode_stats(STATS, total, center, residual, var, kc, kc_ok, modes, mode_ok, K, C)


@triton.jit
def _mn_backward_block(
    SHIFT, MDEV, SUM_DY, SUM_DY_XS, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes,
    mode_ok, center, residual, rstd, alpha,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """A block of samples (`rows`, from _sample_rows) × this program's channels: the gates
    and the per-row terms both passes of the backward need (a, b of the forward; da, db
    into them)."""
    mask, g, shift, mdev = _mn_block(
        SHIFT, MDEV, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes, mode_ok,
        HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C,
    )  # fmt: skip
    sum_dy = _load_rows(SUM_DY, rows, cols, C, mask)
    sum_dy_xs = _load_or_zero(SUM_DY_XS, _row_offsets(rows, cols, C), mask, sum_dy)
    sum_dy_xm = sum_dy_xs - mdev * sum_dy  # Σ dy·(x − m)
    dev = _mn_dev(shift, mdev, mask, center, residual)
    a = tl.sum(g[:, :, None] * rstd[None, :, :], axis=1)
    b = tl.sum(g[:, :, None] * dev * rstd[None, :, :], axis=1)
    return (
        mask,
        g,
        mdev,
        sum_dy,
        sum_dy_xm,
        dev,
        a,
        b,
        alpha * sum_dy_xm,
        alpha * sum_dy,
    )


@triton.jit
def _mn_mix_backward_rows_kernel(
    SHIFT, MDEV, VAR, SUM_DY, SUM_DY_XS, GW, GB, GATES, ALPHA, RMEAN, RMEAN_SQ, GIVEN,
    SUM_D_RSTD, SUM_G_DB, SUM_W_DEV,
    DY_SCALE, X_SCALE, ROW_BIAS, GDG_PARTIAL, D_WEIGHT, D_BIAS, D_GATE_W, D_GATE_B,
    N, C, K, ROWS_PER_SPLIT, SPLIT_STRIDE, eps: tl.float64, inv_length: tl.float64,
    TRAINING: tl.constexpr, GIVEN_STATS: tl.constexpr, PASSES: tl.constexpr,
    FUSE_GATES: tl.constexpr, ONE_ELEMENT: tl.constexpr, HAS_GATE_BIAS: tl.constexpr,
    GATES_GIVEN: tl.constexpr, HAS_WEIGHT: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr, K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """Everything but the gates' share: sums over samples, per-row dx terms without the
    gate term, and this program's channels' part of g ⊙ ∂L/∂g per sample.

    PASSES = 3: both passes over the samples. SyncModeNorm completes the sums over the batch
    across processes in between: PASSES = 1 stores them (SUM_*: the three (K, C) sums of
    mix.mode_norm_backward's `sum_over_batch`), PASSES = 2 reads them back. So do split
    samples in training (_mn_splits): each split stores its partial sums, SUM_*, D_WEIGHT
    and D_BIAS in its row of SPLIT_STRIDE elements, and the host adds them up.

    FUSE_GATES: one program holds every channel, so each sample's g ⊙ ∂L/∂g is complete in
    pass 2, and the gates kernel's work is done there (one launch fewer, same results).
    ONE_ELEMENT: rows of one element (L = 1), whose dx pass 2 forms whole, in ROW_BIAS
    (DY_SCALE 0), as mix.mode_norm_backward does."""
    pid = tl.program_id(0)
    cols = pid * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    start, stop = _own_samples(N, ROWS_PER_SPLIT)
    split_row = _split_offset(SPLIT_STRIDE)
    dtype = SHIFT.dtype.element_ty
    eps, inv_length = _as(eps, dtype), _as(inv_length, dtype)
    mass, center, residual, var = _mn_mode_stats(
        SHIFT, MDEV, VAR, GW, GB, GATES, RMEAN, RMEAN_SQ, GIVEN, cols, col_ok, modes,
        mode_ok, start, stop, C, K, TRAINING, GIVEN_STATS, HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N,
        BLOCK_C, K_PAD, CHUNK_C,
    )  # fmt: skip
    rstd = _padded_as_zero(1.0 / tl.sqrt(var + eps), mode_ok, col_ok)
    alpha = _load_or(ALPHA, cols, col_ok, 1.0, dtype, HAS_WEIGHT)
    held = _at_least(mass, _TINY)
    inv_mass = 1.0 / held
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)

    if PASSES != 2:  # pass 1 over samples: the sums over the batch
        d_rstd = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
        g_db = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
        sum_g_dev = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)  # Σ_n g·(m − μ): 0 but rounding
        d_weight = tl.zeros([BLOCK_C], dtype=dtype)
        d_bias = tl.zeros([BLOCK_C], dtype=dtype)
        for n0 in range(start, stop, BLOCK_N):
            rows, row_ok = _sample_rows(n0, stop, BLOCK_N)
            _, g, _, sum_dy, sum_dy_xm, dev, a, b, da, db = _mn_backward_block(
                SHIFT, MDEV, SUM_DY, SUM_DY_XS, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok,
                modes, mode_ok, center, residual, rstd, alpha, HAS_GATE_BIAS, GATES_GIVEN,
                BLOCK_N, K_PAD, CHUNK_C,
            )  # fmt: skip
            d_bias += tl.sum(sum_dy, axis=0)
            d_weight += tl.sum(sum_dy_xm * a + sum_dy * b, axis=0)
            d_rstd += tl.sum(g[:, :, None] * (da[:, None, :] + db[:, None, :] * dev), axis=0)
            g_db += tl.sum(g[:, :, None] * db[:, None, :], axis=0)
            if TRAINING:
                sum_g_dev += tl.sum(g[:, :, None] * dev, axis=0)
        tl.store(D_WEIGHT + split_row + cols, d_weight, mask=col_ok)
        tl.store(D_BIAS + split_row + cols, d_bias, mask=col_ok)
        sum_w_dev = sum_g_dev * inv_mass[:, None]
        if PASSES == 1:
            tl.store(SUM_D_RSTD + split_row + kc, d_rstd, mask=kc_ok)
            tl.store(SUM_G_DB + split_row + kc, g_db, mask=kc_ok)
            tl.store(SUM_W_DEV + split_row + kc, sum_w_dev, mask=kc_ok)
    else:  # the sums of pass 1, completed across processes (and splits of the samples)
        d_rstd = tl.load(SUM_D_RSTD + kc, mask=kc_ok, other=0.0)
        g_db = tl.load(SUM_G_DB + kc, mask=kc_ok, other=0.0)
        sum_w_dev = tl.load(SUM_W_DEV + kc, mask=kc_ok, other=0.0)

    if PASSES != 1:  # pass 2 over samples: per-row terms and these channels' gate shares
        _mn_backward_pass_2(
            SHIFT, MDEV, VAR, SUM_DY, SUM_DY_XS, GW, GB, GATES, DY_SCALE, X_SCALE, ROW_BIAS,
            GDG_PARTIAL, D_GATE_W, D_GATE_B, pid, N, start, stop, split_row, C, K, cols, col_ok,
            modes, mode_ok, center, residual, var, rstd, alpha, held, inv_mass, d_rstd, g_db,
            sum_w_dev, inv_length, TRAINING, FUSE_GATES, ONE_ELEMENT, HAS_GATE_BIAS, GATES_GIVEN,
            BLOCK_N, BLOCK_C, K_PAD, CHUNK_C,
        )  # fmt: skip


@triton.jit
def _own_terms_of_one_element_rows(g, held, db, g_db, rstd):
    """Σ_k (g·db − w·Σ_n g·db)·r per row, mode by mode, as mix._own_terms_of_one_element_rows
    (which says why): where a mode is one sample's alone, each difference is 0 exactly. For
    that, w = g / N_k is divided correctly rounded (g / g = 1; g·(1/N_k) need not be), and
    the difference is one explicit fused multiply-add of the rounded g·db: left to the
    compiler's fusion (FP_FUSION), g·db − w·Σ g·db could become fma(g, db, −w·Σ g·db), the
    rounding of g·db, which r (≈ ε^-½ there) would multiply."""
    if g.dtype == tl.float64:  # noqa: SIM108 (a constexpr branch, as Triton compiles it)
        w = g / held[None, :]  # (float64's division rounds correctly)
    else:
        w = tl.div_rn(g, held[None, :])  # (float32's `/` need not: div.full, 2 ulps)
    own = tl.fma(-w[:, :, None], g_db[None, :, :], g[:, :, None] * db[:, None, :])
    return tl.sum(own * rstd[None, :, :], axis=1)


@triton.jit
def _mn_backward_pass_2(
    SHIFT, MDEV, VAR, SUM_DY, SUM_DY_XS, GW, GB, GATES, DY_SCALE, X_SCALE, ROW_BIAS, GDG_PARTIAL,
    D_GATE_W, D_GATE_B, pid, N, start, stop, split_row, C, K, cols, col_ok, modes, mode_ok, center,
    residual, var, rstd, alpha, held, inv_mass, d_rstd, g_db, sum_w_dev, inv_length,
    TRAINING: tl.constexpr, FUSE_GATES: tl.constexpr, ONE_ELEMENT: tl.constexpr,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr, K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """Per-row dx terms without the gate term, and these channels' part of g ⊙ ∂L/∂g, for
    the samples [start, stop); with FUSE_GATES (all channels here), the gate term and the
    gate gradients as well (this split's, at `split_row`), as _mn_mix_backward_gates_kernel
    computes them."""
    dtype = rstd.dtype
    if TRAINING:  # (in eval μ and σ² are constants; a dead channel's r³ may overflow there)
        d_var = _var_grad(d_rstd, rstd)
        d_mean_via_b = -g_db * rstd  # μ's gradient through b = Σ_k g·(m − μ)·r
        # σ²'s derivative in μ, −2·Σ_n w·(m − μ), as in mix.mode_norm_backward.
        d_mean_via_var = -2.0 * d_var * sum_w_dev
        d_mean = d_mean_via_b + d_mean_via_var
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
    if FUSE_GATES:
        w_gate = tl.load(GW + kc, mask=kc_ok, other=0.0).to(dtype)
        d_gate_w = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
        d_gate_b = tl.zeros([K_PAD], dtype=dtype)
    for n0 in range(start, stop, BLOCK_N):
        rows, row_ok = _sample_rows(n0, stop, BLOCK_N)
        mask, g, mdev, sum_dy, _, dev, a, _, da, db = _mn_backward_block(
            SHIFT, MDEV, SUM_DY, SUM_DY_XS, GW, GB, GATES, rows, row_ok, C, K, cols, col_ok, modes,
            mode_ok, center, residual, rstd, alpha, HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD,
            CHUNK_C,
        )  # fmt: skip
        scale = alpha * a
        dm = db * a - scale * sum_dy
        g_dg = g * tl.sum(rstd[None, :, :] * (da[:, None, :] + db[:, None, :] * dev), axis=2)
        dv = tl.zeros([BLOCK_N, BLOCK_C], dtype=dtype)
        if TRAINING:
            w = g * inv_mass[None, :]
            dv = tl.sum(w[:, :, None] * d_var[None, :, :], axis=1)
            if ONE_ELEMENT:  # x − m = 0: see _own_terms_of_one_element_rows
                dm = _own_terms_of_one_element_rows(g, held, db, g_db, rstd)
                dm += tl.sum(w[:, :, None] * (2.0 * dev * d_var[None, :, :]
                                              + d_mean_via_var[None, :, :]), 1)  # fmt: skip
                scale = tl.zeros_like(scale)
            else:
                dm += tl.sum(
                    w[:, :, None] * (2.0 * dev * d_var[None, :, :] + d_mean[None, :, :]), 1
                )
            v = _load_or_zero(VAR, _row_offsets(rows, cols, C), mask, mdev)
            spread = v[:, None, :] + dev * dev - var[None, :, :]
            inner = d_mean[None, :, :] * dev + d_var[None, :, :] * spread
            g_dg += w * tl.sum(tl.where(col_ok[None, None, :], inner, 0.0), axis=2)
        offs = _row_offsets(rows, cols, C)
        e = 2.0 * dv * inv_length
        tl.store(DY_SCALE + offs, scale, mask=mask)
        if X_SCALE is not None:  # None on rows of one element, where x − s = 0
            tl.store(X_SCALE + offs, e, mask=mask)
        row_bias = dm * inv_length - mdev * e
        if FUSE_GATES:
            d_logits = _softmax_backward(g, g_dg, K_PAD)
            dm_gate = tl.sum(d_logits[:, :, None] * w_gate[None, :, :], axis=1)
            row_bias += dm_gate * inv_length
            m = _load_rows(SHIFT, rows, cols, C, mask) + mdev
            d_gate_w += tl.sum(d_logits[:, :, None] * m[:, None, :], axis=0)
            d_gate_b += tl.sum(d_logits, axis=0)
        else:
            # (channel blocks)·N ≤ N·C, which may pass 2³¹: in 64 bits, as _row_offsets.
            nk = _row_offsets(pid.to(tl.int64) * N + rows, modes, K)
            tl.store(GDG_PARTIAL + nk, g_dg, mask=row_ok[:, None] & mode_ok[None, :])
        tl.store(ROW_BIAS + offs, row_bias, mask=mask)
    if FUSE_GATES:
        tl.store(D_GATE_W + split_row + kc, d_gate_w, mask=kc_ok)
        tl.store(D_GATE_B + split_row + modes, d_gate_b, mask=mode_ok)


@triton.jit
def _mn_mix_backward_gates_kernel(
    SHIFT, MDEV, GW, GB, GATES, GDG_PARTIAL, ROW_BIAS, D_GATE_W, D_GATE_B,
    N, C, K, ROWS_PER_SPLIT, SPLIT_STRIDE, num_partials, inv_length: tl.float64,
    HAS_GATE_BIAS: tl.constexpr, GATES_GIVEN: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr, K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """Sum the channel blocks' shares of g ⊙ ∂L/∂g, take the softmax backward, and finish:
    the gate term of each row's dx bias, and the gate parameters' gradients (this split's,
    where the samples are split: a row of SPLIT_STRIDE per split)."""
    pid = tl.program_id(0)
    cols = pid * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    dtype = SHIFT.dtype.element_ty
    inv_length = _as(inv_length, dtype)
    kc, kc_ok = _mode_channel_offsets(modes, mode_ok, cols, col_ok, C)
    w_gate = tl.load(GW + kc, mask=kc_ok, other=0.0).to(dtype)
    d_gate_w = tl.zeros([K_PAD, BLOCK_C], dtype=dtype)
    d_gate_b = tl.zeros([K_PAD], dtype=dtype)
    start, stop = _own_samples(N, ROWS_PER_SPLIT)
    for n0 in range(start, stop, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        row_ok = rows < stop
        nk_ok = row_ok[:, None] & mode_ok[None, :]
        g_dg = tl.zeros([BLOCK_N, K_PAD], dtype=dtype)
        nk = _row_offsets(rows, modes, K)
        partial = GDG_PARTIAL  # one (N, K) share per channel block
        for _ in range(0, num_partials):
            g_dg += tl.load(partial + nk, mask=nk_ok, other=0.0)
            partial += tl.cast(N, tl.int64) * K  # N·K may pass 2³¹ (large K)
        g = _mn_block_gates(SHIFT, MDEV, GW, GB, GATES, rows, row_ok, modes, mode_ok, C, K,
                            HAS_GATE_BIAS, GATES_GIVEN, BLOCK_N, K_PAD, CHUNK_C)  # fmt: skip
        d_logits = _softmax_backward(g, g_dg, K_PAD)
        mask = row_ok[:, None] & col_ok[None, :]
        offs = _row_offsets(rows, cols, C)
        s = tl.load(SHIFT + offs, mask=mask, other=0.0)
        m = s + _load_or_zero(MDEV, offs, mask, s)
        dm_gate = tl.sum(d_logits[:, :, None] * w_gate[None, :, :], axis=1)
        row_bias = tl.load(ROW_BIAS + offs, mask=mask, other=0.0)
        tl.store(ROW_BIAS + offs, row_bias + dm_gate * inv_length, mask=mask)
        d_gate_w += tl.sum(d_logits[:, :, None] * m[:, None, :], axis=0)
        d_gate_b += tl.sum(d_logits, axis=0)
    split_row = _split_offset(SPLIT_STRIDE)
    tl.store(D_GATE_W + split_row + kc, d_gate_w, mask=kc_ok)
    if pid == 0:
        tl.store(D_GATE_B + split_row + modes, d_gate_b, mask=mode_ok)


def _mn_blocks(n: int, c: int, k: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_C, K_PAD, CHUNK_C) keeping [BLOCK_N, K_PAD, BLOCK_C] within MN_TILE
    (MIX_TILE, where that is smaller: tests shrink it), or at one sample × one channel where
    K_PAD alone passes it, and BLOCK_N within MN_BLOCK_N."""
    tile = min(MIX_TILE, MN_TILE)
    k_pad = next_pow2(k)
    block_c = max(1, min(next_pow2(c), 32, tile // k_pad))
    block_n = max(1, min(next_pow2(n), MN_BLOCK_N, tile // (k_pad * block_c)))
    chunk_c = max(1, min(next_pow2(c), tile // (k_pad * block_n)))
    return block_n, block_c, k_pad, chunk_c


def shared_gates(
    shift: Tensor, mean_dev: Tensor | None, gate_weight: Tensor, gate_bias: Tensor | None
) -> Tensor | None:
    """Every sample's gates, (N, K), computed once, where several mix programs would each
    compute them over at least GATES_KERNEL_MIN_ELEMENTS statistics; None where they are
    better computed inside each program (see GATES_KERNEL_MIN_ELEMENTS).

    The MN entry points below decide so themselves, or take its result as `gates`
    (SyncModeNorm computes the gates once for its statistics, forward and backward)."""
    shift, mean_dev = _dense(shift, mean_dev)
    n, c = shift.shape
    tiles = _mn_blocks(n, c, gate_weight.shape[0])
    return _shared_gates(shift, mean_dev, gate_weight.contiguous(), gate_bias, tiles)


def _shared_gates(
    shift: Tensor, mean_dev: Tensor | None, gw: Tensor, gate_bias: Tensor | None,
    tiles: tuple[int, int, int, int], out: Tensor | None = None,
) -> Tensor | None:  # fmt: skip
    """shared_gates on dense statistics, given the mix kernels' _mn_blocks (which the entry
    points have at hand: the rule is checked on every layer call); into `out` (N, K), where
    given."""
    n, c = shift.shape
    block_n, block_c, k_pad, chunk_c = tiles
    min_elements = 0 if _as_captured.get() else GATES_KERNEL_MIN_ELEMENTS
    if n * c < min_elements or cdiv(c, block_c) == 1:
        return None
    # The mix kernels' blocks: the same CHUNK_C, so each row's logits are summed over the same
    # chunks as there (in the interpreter, the same bits; a GPU may order a chunk's sum
    # otherwise), and BLOCK_N samples per program (≤ MN_BLOCK_N), side by side where each mix
    # program walks all its samples.
    k = gw.shape[0]
    gates = shift.new_empty((n, k)) if out is None else out
    launch(_mn_gates_kernel, (cdiv(n, block_n),))(
        shift, mean_dev, gw, _or(gate_bias, gw), gates, n, c, k,
        HAS_GATE_BIAS=gate_bias is not None, BLOCK_N=block_n, K_PAD=k_pad, CHUNK_C=chunk_c,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    return gates


def _gates_for(
    shift: Tensor, mean_dev: Tensor | None, gw: Tensor, gate_bias: Tensor | None,
    gates: Tensor | None, tiles: tuple[int, int, int, int], out: Tensor | None = None,
) -> Tensor | None:  # fmt: skip
    """`gates` as the kernels read them (dense, in the statistics' dtype: the kernels'
    accumulators take the gates' type), or shared_gates' choice where none are given (into
    `out`, where the gates kernel computes them)."""
    if gates is None:
        return _shared_gates(shift, mean_dev, gw, gate_bias, tiles, out)
    if gates.shape != (shift.shape[0], gw.shape[0]):
        raise ValueError(
            f"gates of shape {tuple(gates.shape)}, expected (N, K) = "
            f"{(shift.shape[0], gw.shape[0])}"
        )
    return gates.to(shift.dtype).contiguous()


def _dense(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """The kernels index (N, C) statistics as dense row-major arrays. None (rows of one
    element: no mean deviation, variance or Σ dy·(x − s), see _load_or_zero) stays None."""
    return tuple(None if t is None else t.contiguous() for t in tensors)


def _unless_points(shift: Tensor, mean_dev: Tensor | None) -> Tensor | None:
    """Room for a per-row coefficient that multiplies x − s (the forward's scale, the
    backward's x_scale); None on rows of one element (no `mean_dev`), where x − s = 0 and the
    layer reads neither (ops._apply, ops._dx): the kernels then skip that store."""
    return None if mean_dev is None else torch.empty_like(shift)


def _or(t: Tensor | None, placeholder: Tensor) -> Tensor:
    return placeholder if t is None else t.contiguous()


# MN's statistics per mode and channel go between kernels packed, as one buffer of K + 3·K·C
# elements, [N_k | P_k | μ_k − P_k | σ²_k] (mix.ModeStats.packed; _store_mode_stats,
# _load_mode_stats): what SyncModeNorm's processes exchange and a forward keeps for its
# backward. One pointer per launch instead of four.


def _mn_splits(n: int, c: int, block_n: int, block_c: int) -> tuple[int, int]:
    """(splits, samples per split): the MN mix kernels' grid's second axis. One split of all
    N samples, unless at least two splits of SPLIT_MIN_ROWS samples (GRAPH_SPLIT_MIN_ROWS
    inside as_captured) fit and the channel blocks alone give fewer than MIX_PROGRAMS
    programs (see SPLIT_MIN_ROWS)."""
    min_rows = GRAPH_SPLIT_MIN_ROWS if _as_captured.get() else SPLIT_MIN_ROWS
    splits = min(n // max(min_rows, 1), cdiv(MIX_PROGRAMS, cdiv(c, block_c)))
    if splits < 2:
        return 1, n
    rows = cdiv(n, splits)
    if rows > block_n:  # whole tiles of BLOCK_N samples: only the last split's partly masked
        rows = cdiv(rows, block_n) * block_n
    return cdiv(n, rows), rows


def _sum_partials(
    partial: Tensor, outputs: tuple[Tensor, Tensor, Tensor, Tensor], c: int, gate_w_size: int,
    k: int,
) -> None:  # fmt: skip
    """Sum the rows of `partial`, [∂weight | ∂bias | ∂gate weight | ∂gate bias | …], into
    the four `outputs` (_sum_partials_kernel): one launch; the op's outputs must not share
    storage, so not one sum split four ways."""
    n = partial.shape[0]
    m = 2 * c + gate_w_size + k
    block_m = min(next_pow2(m), MIX_TILE // 16)  # 256 columns per program
    block_n = max(1, min(next_pow2(n), MIX_TILE // block_m))
    launch(_sum_partials_kernel, (cdiv(m, block_m),))(
        partial, *outputs, n, c, gate_w_size, k, partial.stride(0),
        BLOCK_N=block_n, BLOCK_M=block_m,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip


def _gate_shares(partial: Tensor, programs: int) -> tuple[Tensor, int]:
    """The P programs' shares of Σ_c g·∂L/∂g, (P, N, K), as the MN backward's gates kernel
    reads them, and how many: summed first (one torch sum) from (P − 1)·N·K ≥
    GATE_PARTIALS_SUM_MIN, where each of its P programs would read all P shares."""
    _, n, k = partial.shape
    if (programs - 1) * n * k >= GATE_PARTIALS_SUM_MIN:
        return partial.sum(0, keepdim=True), 1
    return partial, programs


def _columns(per_split: Tensor, sizes: list[int]) -> tuple[Tensor, ...]:
    """A (splits, Σ sizes) buffer as one view per field, each spanning every split's row:
    the kernels write split s's field at the view's start + s·row width (_split_offset),
    which stays inside the view (the bounds tests/memcheck.py checks)."""
    return per_split.split(sizes, dim=1)


def mode_norm_batch_stats(
    shift: Tensor,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    out: Tensor | None = None,
    gates: Tensor | None = None,
) -> Tensor:
    """This batch's (N_k, P_k, μ_k − P_k, σ²_k), as mix.batch_mode_stats, packed (K + 3·K·C
    elements; into `out`, where given: SyncModeNorm gathers that buffer). `gates`:
    shared_gates' result, if already computed."""
    shift, mean_dev, var_rows = _dense(shift, mean_dev, var_rows)
    n, c = shift.shape
    tiles = _mn_blocks(n, c, gate_weight.shape[0])
    gw = gate_weight.contiguous()
    gates = _gates_for(shift, mean_dev, gw, gate_bias, gates, tiles)
    return _batch_stats(shift, mean_dev, var_rows, gw, gate_bias, gates, tiles, out)


def _batch_stats(
    shift: Tensor, mean_dev: Tensor | None, var_rows: Tensor | None, gw: Tensor,
    gate_bias: Tensor | None, gates: Tensor | None, tiles: tuple[int, int, int, int],
    out: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """mode_norm_batch_stats on dense statistics, given the gates' choice and the blocking.
    Where the samples are split (_mn_splits), the splits' statistics are merged as
    SyncModeNorm merges processes' (merge_mode_stats): one launch more."""
    n, c = shift.shape
    k = gw.shape[0]
    block_n, block_c, k_pad, chunk_c = tiles
    splits, rows = _mn_splits(n, c, block_n, block_c)
    size = ModeStats.packed_size(k, c)
    if out is None:
        out = shift.new_empty(size)
    per_split = out.view(1, -1) if splits == 1 else shift.new_empty((splits, size))
    launch(_mn_batch_stats_kernel, (cdiv(c, block_c), splits))(
        shift, mean_dev, var_rows, gw, _or(gate_bias, gw), _or(gates, gw),
        per_split, n, c, k, rows, per_split.stride(0),
        HAS_GATE_BIAS=gate_bias is not None, GATES_GIVEN=gates is not None,
        BLOCK_N=block_n, BLOCK_C=block_c, K_PAD=k_pad, CHUNK_C=chunk_c,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    if splits > 1:
        merge_mode_stats(per_split, k, c, out=out)
    return out


def merge_mode_stats(gathered: Tensor, k: int, c: int, out: Tensor | None = None) -> Tensor:
    """The whole batch's (N_k, P_k, μ_k − P_k, σ²_k), packed (K + 3·K·C elements; into
    `out`, where given), from each process's (or split of the samples'), `gathered` as
    (processes, K + 3·K·C) rows (see _mn_merge_stats_kernel)."""
    gathered = gathered.contiguous()
    if out is None:
        out = gathered.new_empty(ModeStats.packed_size(k, c))
    _, block_c, k_pad, _ = _mn_blocks(1, c, k)
    launch(_mn_merge_stats_kernel, (cdiv(c, block_c),))(
        gathered, out, gathered.shape[0], c, k,
        BLOCK_C=block_c, K_PAD=k_pad, enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    return out


def mode_norm_forward(
    shift: Tensor,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    momentum: float | Tensor | None = None,
    stats: Tensor | None = None,
    gates: Tensor | None = None,
    stats_out: Tensor | None = None,
    gates_out: Tensor | None = None,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
    """(scale, bias) per row and (μ, σ²) per mode and channel; see mix.mode_norm_forward.
    Without `mean_dev` (rows of one element: x − s = 0) the scale is left out, None.

    In training with a `momentum` (a float, or a one-element tensor on the device) and
    running estimates, those are updated in place too, as `update_running_stats` does.
    Given `stats` (training only, packed: SyncModeNorm's, merged across processes), the
    kernel takes them instead of computing the batch's; given `gates` (shared_gates' result), it
    reads those. Where the samples are split (_mn_splits), the batch statistics come from
    _batch_stats first (two launches) and the kernel's programs share the samples.
    Given `stats_out` (K + 3·K·C elements), training without `stats` writes the batch
    statistics it computes there, packed (mix.ModeStats.packed), for the backward to take
    as `stats` instead of computing them again (two walks over the samples fewer). Given
    `gates_out` (N, K; without `gates`), the gates it computes are written there, for the
    backward to take as `gates` (its walks then read K gates per sample, not C statistics).
    """
    if gates is not None and gates_out is not None:
        raise ValueError("gates_out is for gates computed here: not with given gates")
    update = training and momentum is not None and running_mean is not None
    fused_update = update and running_mean.is_contiguous() and running_mean_sq.is_contiguous()
    in_tensor = isinstance(momentum, Tensor)
    shift, mean_dev, var_rows = _dense(shift, mean_dev, var_rows)
    n, c = shift.shape
    k = gate_weight.shape[0]
    tiles = block_n, block_c, k_pad, chunk_c = _mn_blocks(n, c, k)
    splits, rows = _mn_splits(n, c, block_n, block_c)
    scale, row_bias = _unless_points(shift, mean_dev), torch.empty_like(shift)
    mode_mean = shift.new_empty((k, c))
    mode_var = shift.new_empty((k, c))
    gw = gate_weight.contiguous()
    gates = _gates_for(shift, mean_dev, gw, gate_bias, gates, tiles, gates_out)
    if gates is not None:  # given, or computed once (into gates_out): nothing to write
        gates_out = None
    if not training or stats is not None:
        stats_out = None  # nothing computed here to keep
    elif splits > 1:  # the splits' statistics, merged (into stats_out, where given)
        stats = _batch_stats(shift, mean_dev, var_rows, gw, gate_bias, gates, tiles, stats_out)
        stats_out = None
    launch(_mn_mix_forward_kernel, (cdiv(c, block_c), splits))(
        shift, mean_dev, var_rows, gw, _or(gate_bias, gw), _or(gates, gw), _or(weight, gw),
        _or(bias, gw),
        _or(running_mean, gw), _or(running_mean_sq, gw), momentum if in_tensor else gw,
        _or(stats, gw), scale, row_bias, mode_mean, mode_var, stats_out, gates_out,
        n, c, k, rows, eps, 0.0 if in_tensor or momentum is None else float(momentum),
        TRAINING=training, GIVEN_STATS=stats is not None,
        UPDATE_RUNNING=fused_update, MOMENTUM_IN_TENSOR=in_tensor,
        HAS_GATE_BIAS=gate_bias is not None, GATES_GIVEN=gates is not None,
        HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BLOCK_N=block_n,
        BLOCK_C=block_c, K_PAD=k_pad, CHUNK_C=chunk_c,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    if fused_update:  # written through raw pointers: tell autograd they changed in place
        increment_version([running_mean, running_mean_sq])
    elif update:  # strided estimates: the kernel indexes them densely
        update_running_stats(running_mean, running_mean_sq, mode_mean, mode_var, momentum)
    return scale, row_bias, mode_mean, mode_var


def mode_norm_backward(
    sum_dy: Tensor,
    sum_dy_xs: Tensor | None,
    length: int,
    shift: Tensor,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    stats: Tensor | None = None,
    sum_over_batch: Callable[[Tensor], Tensor] | None = None,
    gates: Tensor | None = None,
) -> MixGrads:
    """MixGrads: (dy_scale, x_scale, row_bias) per row and the gradients of the gate weight,
    gate bias, weight and bias: see mix.mode_norm_backward (`stats`, here packed, and
    `sum_over_batch` as there; `gates`: shared_gates' result, if already computed). Without
    `mean_dev` (rows of one element) x_scale, which multiplies x − s = 0, is left out: None.

    With `sum_over_batch` (training) the rows kernel runs as two launches, its first pass
    over the samples, then the second, and the three (K, C) sums between them go through it.
    So it does in training where the samples are split (_mn_splits): the splits' partial
    sums are added up in between. Split, training or eval, the splits' parameter gradients
    are added up at the end (_sum_partials)."""
    sum_dy, sum_dy_xs, shift, mean_dev, var_rows = _dense(
        sum_dy, sum_dy_xs, shift, mean_dev, var_rows
    )
    n, c = shift.shape
    k = gate_weight.shape[0]
    tiles = block_n, block_c, k_pad, chunk_c = _mn_blocks(n, c, k)
    splits, rows = _mn_splits(n, c, block_n, block_c)
    programs = cdiv(c, block_c)
    fuse_gates = FUSE_GATES and programs == 1
    dy_scale, row_bias = torch.empty_like(shift), torch.empty_like(shift)
    x_scale = _unless_points(shift, mean_dev)
    g_dg_partial = None if fuse_gates else shift.new_empty((programs, n, k))
    grads = (shift.new_empty(c), shift.new_empty(c), shift.new_empty((k, c)), shift.new_empty(k))
    gw = gate_weight.contiguous()
    gb = _or(gate_bias, gw)
    gates = _gates_for(shift, mean_dev, gw, gate_bias, gates, tiles)
    if training and stats is None and splits > 1:
        stats = _batch_stats(shift, mean_dev, var_rows, gw, gate_bias, gates, tiles)
    # Where the kernels write the parameter gradients and the sums over samples: the outputs
    # themselves, or one row per split of the samples, [∂w | ∂b | ∂gate w | ∂gate b | 3 sums].
    two_launches = training and (sum_over_batch is not None or splits > 1)
    partial, split_stride = None, 0
    if splits > 1:
        partial = shift.new_empty((splits, 2 * c + 4 * k * c + k))
        split_stride = partial.stride(0)
        *param_out, split_sums = _columns(partial, [c, c, k * c, k, 3 * k * c])
    else:
        param_out = grads
        split_sums = shift.new_empty(3 * k * c) if two_launches else None
    common = {"HAS_GATE_BIAS": gate_bias is not None, "GATES_GIVEN": gates is not None,
              "BLOCK_N": block_n, "BLOCK_C": block_c, "K_PAD": k_pad,
              "CHUNK_C": chunk_c}  # fmt: skip

    def rows_kernel(passes: int, sums: Tensor | None = None) -> None:
        launch(_mn_mix_backward_rows_kernel, (programs, splits))(
            shift, mean_dev, var_rows, sum_dy, sum_dy_xs, gw, gb, _or(gates, gw), _or(weight, gw),
            _or(running_mean, gw), _or(running_mean_sq, gw), _or(stats, gw),
            *(sums.split(k * c, dim=-1) if sums is not None else (gw, gw, gw)),
            dy_scale, x_scale, row_bias, _or(g_dg_partial, gw), *param_out,
            n, c, k, rows, split_stride, eps, 1.0 / length,
            TRAINING=training, GIVEN_STATS=stats is not None, PASSES=passes,
            FUSE_GATES=fuse_gates, ONE_ELEMENT=length == 1, HAS_WEIGHT=weight is not None,
            **common,
            enable_fp_fusion=FP_FUSION,
        )  # fmt: skip

    if two_launches:
        rows_kernel(1, split_sums)  # pass 1: the sums over (each split's) samples
        batch_sums = split_sums if splits == 1 else split_sums.sum(0)
        if sum_over_batch is not None:
            batch_sums = sum_over_batch(batch_sums.view(3, k, c)).contiguous().view(-1)
        rows_kernel(2, batch_sums)
    else:  # one split of all samples; or eval, which needs no sums over the whole batch
        rows_kernel(3)
    if not fuse_gates:
        g_dg_partial, shares = _gate_shares(g_dg_partial, programs)
        launch(_mn_mix_backward_gates_kernel, (programs, splits))(
            shift, mean_dev, gw, gb, _or(gates, gw), g_dg_partial, row_bias, *param_out[2:],
            n, c, k, rows, split_stride, shares, 1.0 / length, **common,
            enable_fp_fusion=FP_FUSION,
        )  # fmt: skip
    if splits > 1:
        _sum_partials(partial, grads, c, k * c, k)
    d_weight, d_bias, d_gate_w, d_gate_b = grads
    return MixGrads(dy_scale=dy_scale, x_scale=x_scale, row_bias=row_bias, gate_weight=d_gate_w,
                    gate_bias=d_gate_b, weight=d_weight, bias_param=d_bias)  # fmt: skip


# ----------------------------------------------------------------------------------------
# Mode Group Normalization: a program per sample
# ----------------------------------------------------------------------------------------


@triton.jit
def _mgn_pivot(SHIFT, base, C, CHUNK_C: tl.constexpr):
    """The sample's pivot p: of its channels' shifts, the one nearest 0 (the first of
    equals; channel 0's where no magnitude is a number). One walk over C shifts, beside the
    statistics' walks over three (C,) rows each. Why this one: mix._mgn_pivots."""
    first = tl.load(SHIFT + base)
    pivot = first
    least = tl.full([], float("inf"), first.dtype)
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        s = tl.load(SHIFT + base + cc, mask=c_ok, other=0.0)
        size = tl.abs(s)
        size = tl.where(c_ok & (size == size), size, float("inf"))  # no NaN, no padding
        nearest = tl.argmin(size, axis=0, tie_break_left=True)
        block_least = tl.min(size, axis=0)
        value = tl.sum(tl.where(cc == c0 + nearest, s, 0.0), axis=0)
        pivot = tl.where(block_least < least, value, pivot)
        least = tl.minimum(least, block_least)
    return pivot


@triton.jit
def _mgn_gate_terms(GW, GB, pivot, modes, mode_ok, HAS_GATE_BIAS: tl.constexpr):
    """The gate's slopes w_k and offsets D_k = A_k − max_j A_j, A_k = w_k·p + b_k (p: the
    sample's pivot), [K_PAD] each: a channel's logits w_k·m + b_k are A_k + w_k·(m − p).
    The biases' common part, which the softmax ignores, is taken out first (b − max b): it
    would round every A_k (see mix._mgn_gates_and_weights)."""
    slope = tl.load(GW + modes, mask=mode_ok, other=0.0).to(pivot.dtype)
    a = slope * pivot
    if HAS_GATE_BIAS:
        bias = tl.load(GB + modes, mask=mode_ok, other=float("-inf")).to(pivot.dtype)
        a += bias - tl.max(bias, axis=0)
    a = tl.where(mode_ok, a, float("-inf"))
    return slope, a - tl.max(a, axis=0)


@triton.jit
def _mgn_gate_logs(m_rel, slope, offset, c_ok, mode_ok):
    """ℓ = log g − D per channel, [CHUNK_C, K_PAD], −inf off C and K (log g = D + ℓ).

    ℓ = w_k·(m − p) − log Σ_j exp(D_j + w_j·(m − p)) holds no constant of its own mode, so
    the weights over the channels, softmax_c(ℓ) (see _mgn_stats), do not carry the rounding
    of logits as large as the data's offset or a shunned mode's bias (−1e5 leaves log g
    ± 4e-3 in float32, the weights ± 0.4 %); see mix._mgn_gates_and_weights for the rest."""
    z = m_rel[:, None] * slope[None, :]
    t = tl.where(mode_ok[None, :], offset[None, :] + z, float("-inf"))
    top = tl.max(t, axis=1)
    lse = top + tl.log(tl.sum(tl.exp(t - top[:, None]), axis=1))
    return tl.where(c_ok[:, None] & mode_ok[None, :], z - lse[:, None], float("-inf"))


@triton.jit
def _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok, pivot, slope, offset, mode_ok):
    """A block of one sample's channels: s, md, v, m − p, and the gates as ℓ."""
    s = tl.load(SHIFT + base + cc, mask=c_ok, other=0.0)
    mdev = _load_or_zero(MDEV, base + cc, c_ok, s)
    v = _load_or_zero(VAR, base + cc, c_ok, s)
    m_rel = tl.where(c_ok, (s - pivot) + mdev, 0.0)
    return s, mdev, v, m_rel, _mgn_gate_logs(m_rel, slope, offset, c_ok, mode_ok)


@triton.jit
def _finite_or_zero(top):
    """A mode's largest ℓ, 0 for padded modes (−inf: −inf − (−inf) would be NaN)."""
    return tl.where(top == float("-inf"), 0.0, top)


@triton.jit
def _mgn_dev(s, mdev, c_ok, mode_pivot, residual):
    """m − μ_k, [CHUNK_C, K_PAD], as (s − P_k) + md − ρ_k (see _mgn_stats); 0 off C."""
    dev = (s[:, None] - mode_pivot[None, :]) + mdev[:, None] - residual[None, :]
    return tl.where(c_ok[:, None], dev, 0.0)


@triton.jit
def _mgn_stats(
    SHIFT, MDEV, VAR, base, pivot, slope, offset, mode_ok, C,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    """Per mode: its largest ℓ (_mgn_gate_logs), M_k; 1 / Ĉ_k, Ĉ_k = Σ_c ĝ with
    ĝ = exp(ℓ − M_k); the mode's pivot P_k (μ_k rounded), ρ_k = μ_k − P_k, and σ²_k.

    The weights g / C_k are taken as ĝ / Ĉ_k, the same numbers (g = exp(D + ℓ), D constant
    over the channels): the channel the mode likes best weighs 1, so Ĉ_k ≥ 1 where C_k itself
    may underflow (every channel shunning the mode; see mix._mgn_gates_and_weights).

    As in mix._mgn_deviations, m − μ_k is formed as (s − P_k) + md − ρ_k, exact near the
    mode's channels, rather than from m − pivot, which carries the rounding of values as far
    from the sample's pivot (_mgn_pivot) as the data reach. Two passes over the channels: M_k
    and μ_k relative to the pivot (merged block by block, rescaling the sums so far where
    M_k grows), then ρ_k and σ²_k.
    """
    dtype = pivot.dtype
    top = tl.full([K_PAD], float("-inf"), dtype=dtype)
    mass = tl.zeros([K_PAD], dtype=dtype)
    mean = tl.zeros([K_PAD], dtype=dtype)
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        _s, _md, _v, m_rel, ell = _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok, pivot,
                                                     slope, offset, mode_ok)  # fmt: skip
        new_top = _finite_or_zero(tl.maximum(top, tl.max(ell, axis=0)))
        mass = mass * tl.exp(top - new_top)  # the mass so far, on the new scale
        top = new_top
        g = tl.exp(ell - top[None, :])
        b_mass = tl.sum(g, axis=0)
        b_mean = tl.sum(g * m_rel[:, None], axis=0) / _nonzero(b_mass)
        total = mass + b_mass
        mean += (b_mean - mean) * (b_mass / _nonzero(total))
        mass = total
    inv_mass = 1.0 / _nonzero(mass)  # padded modes: 1 (their ĝ are 0)
    mode_pivot = pivot + mean
    sum_raw = tl.zeros([K_PAD], dtype=dtype)
    sum_sq = tl.zeros([K_PAD], dtype=dtype)
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        s, mdev, v, _m_rel, ell = _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok, pivot,
                                                     slope, offset, mode_ok)  # fmt: skip
        g = tl.exp(ell - top[None, :])
        raw = _mgn_dev(s, mdev, c_ok, mode_pivot, tl.zeros_like(mass))
        sum_raw += tl.sum(g * raw, axis=0)
        sum_sq += tl.sum(g * (v[:, None] + raw * raw), axis=0)
    residual, var = _around_mode_pivot(sum_raw * inv_mass, sum_sq * inv_mass, mode_pivot, 1.0)
    return top, inv_mass, mode_pivot, residual, var


@triton.jit
def _mgn_mix_forward_kernel(
    SHIFT, MDEV, VAR, GW, GB, ALPHA, BETA, SCALE, BIAS,
    C, K, eps: tl.float64,
    HAS_GATE_BIAS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    base = tl.program_id(0).to(tl.int64) * C
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    pivot = _mgn_pivot(SHIFT, base, C, CHUNK_C)
    eps = _as(eps, pivot.dtype)
    slope, offset = _mgn_gate_terms(GW, GB, pivot, modes, mode_ok, HAS_GATE_BIAS)
    # (Not `_` for the unused values: the loop below rebinds `_` to another shape, which the
    # compiler rejects, though the interpreter does not.)
    _top, _inv_mass, mode_pivot, residual, var = _mgn_stats(
        SHIFT, MDEV, VAR, base, pivot, slope, offset, mode_ok, C, K_PAD, CHUNK_C
    )
    rstd = tl.where(mode_ok, 1.0 / tl.sqrt(var + eps), 0.0)
    a = tl.sum(rstd, axis=0) / K
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        s, mdev, _v, _m_rel, _ell = _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok,
                                                       pivot, slope, offset, mode_ok)  # fmt: skip
        dev = _mgn_dev(s, mdev, c_ok, mode_pivot, residual)
        b = tl.sum(dev * rstd[None, :], axis=1) / K
        alpha = _load_or(ALPHA, cc, c_ok, 1.0, pivot.dtype, HAS_WEIGHT)
        beta = _load_or(BETA, cc, c_ok, 0.0, pivot.dtype, HAS_BIAS)
        scale = alpha * a
        if SCALE is not None:  # None on rows of one element, as in the MN kernel
            tl.store(SCALE + base + cc, scale, mask=c_ok)
        tl.store(BIAS + base + cc, beta + alpha * b - mdev * scale, mask=c_ok)


@triton.jit
def _mgn_mix_backward_kernel(
    SHIFT, MDEV, VAR, SUM_DY, SUM_DY_XS, GW, GB, ALPHA,
    DY_SCALE, X_SCALE, ROW_BIAS, PARTIAL,
    C, K, eps: tl.float64, inv_length: tl.float64,
    HAS_GATE_BIAS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    K_PAD: tl.constexpr, CHUNK_C: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0).to(tl.int64)
    base = n * C
    partial_row = PARTIAL + n * (2 * C + 2 * K)
    modes = tl.arange(0, K_PAD)
    mode_ok = modes < K
    pivot = _mgn_pivot(SHIFT, base, C, CHUNK_C)
    dtype = pivot.dtype
    eps, inv_length = _as(eps, dtype), _as(inv_length, dtype)
    slope, offset = _mgn_gate_terms(GW, GB, pivot, modes, mode_ok, HAS_GATE_BIAS)
    top, inv_mass, mode_pivot, residual, var = _mgn_stats(
        SHIFT, MDEV, VAR, base, pivot, slope, offset, mode_ok, C, K_PAD, CHUNK_C
    )
    rstd = tl.where(mode_ok, 1.0 / tl.sqrt(var + eps), 0.0)
    a = tl.sum(rstd, axis=0) / K

    # Pass 1 over channels: the sums over channels that r and μ receive.
    d_rstd = tl.zeros([K_PAD], dtype=dtype)
    sum_db = tl.zeros([K_PAD], dtype=dtype)  # the same in every lane
    sum_g_dev = tl.zeros([K_PAD], dtype=dtype)  # Σ_c ĝ·(m − μ): 0 but for μ's rounding
    sum_g_spread = tl.zeros([K_PAD], dtype=dtype)  # Σ_c ĝ·(v + (m − μ)² − σ²): likewise, σ²'s
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        s, mdev, v, _m_rel, ell = _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok, pivot,
                                                     slope, offset, mode_ok)  # fmt: skip
        g = tl.exp(ell - top[None, :])
        dev = _mgn_dev(s, mdev, c_ok, mode_pivot, residual)
        alpha = _load_or(ALPHA, cc, c_ok, 1.0, dtype, HAS_WEIGHT)
        sum_dy = tl.load(SUM_DY + base + cc, mask=c_ok, other=0.0)
        sum_dy_xm = _load_or_zero(SUM_DY_XS, base + cc, c_ok, sum_dy) - mdev * sum_dy
        da, db = alpha * sum_dy_xm, alpha * sum_dy
        d_rstd += tl.sum(tl.where(c_ok[:, None], da[:, None] + db[:, None] * dev, 0.0), axis=0)
        sum_db += tl.sum(db, axis=0)
        sum_g_dev += tl.sum(tl.where(c_ok[:, None], g * dev, 0.0), axis=0)
        spread = v[:, None] + dev * dev - var[None, :]
        sum_g_spread += tl.sum(tl.where(c_ok[:, None], g * spread, 0.0), axis=0)
    d_rstd = d_rstd / K
    # g ⊙ ∂L/∂g sums to 0 over the channels: so must (m − μ) and the spread, weighted by w
    # (see mix.mode_group_norm_backward); the rounding of μ and σ² is taken out again.
    mean_w_dev = sum_g_dev * inv_mass
    mean_w_spread = sum_g_spread * inv_mass
    d_var = _var_grad(d_rstd, rstd)
    # σ²'s derivative in μ, −2·Σ_c w·(m − μ): see mix.mode_group_norm_backward.
    d_mean = -sum_db * rstd / K - 2.0 * d_var * sum_g_dev * inv_mass

    # Pass 2: per-channel terms, the softmax backward and the parameters' partial sums.
    d_gate_w = tl.zeros([K_PAD], dtype=dtype)
    d_gate_b = tl.zeros([K_PAD], dtype=dtype)
    for c0 in range(0, C, CHUNK_C):
        cc = c0 + tl.arange(0, CHUNK_C)
        c_ok = cc < C
        s, mdev, v, _m_rel, ell = _mgn_channel_block(SHIFT, MDEV, VAR, base, cc, c_ok, pivot,
                                                     slope, offset, mode_ok)  # fmt: skip
        g = tl.exp(offset[None, :] + ell)
        dev = _mgn_dev(s, mdev, c_ok, mode_pivot, residual)
        b = tl.sum(dev * rstd[None, :], axis=1) / K
        alpha = _load_or(ALPHA, cc, c_ok, 1.0, dtype, HAS_WEIGHT)
        sum_dy = tl.load(SUM_DY + base + cc, mask=c_ok, other=0.0)
        sum_dy_xm = _load_or_zero(SUM_DY_XS, base + cc, c_ok, sum_dy) - mdev * sum_dy
        db = alpha * sum_dy
        scale = alpha * a
        w = tl.exp(ell - top[None, :]) * inv_mass[None, :]  # g / C_k
        dv = tl.sum(w * d_var[None, :], axis=1)
        dm = db * a - scale * sum_dy
        dm += tl.sum(w * (2.0 * dev * d_var[None, :] + d_mean[None, :]), axis=1)
        spread = (v[:, None] + dev * dev - var[None, :]) - mean_w_spread[None, :]
        # g ⊙ ∂L/∂g = ∂L/∂log g, in w: finite also where g underflows to 0.
        g_dg = w * (d_mean[None, :] * (dev - mean_w_dev[None, :]) + d_var[None, :] * spread)
        d_logits = _softmax_backward(g, g_dg, K_PAD)
        dm += tl.sum(d_logits * slope[None, :], axis=1)
        m = tl.where(c_ok, s + mdev, 0.0)
        d_gate_w += tl.sum(d_logits * m[:, None], axis=0)
        d_gate_b += tl.sum(d_logits, axis=0)
        e = 2.0 * dv * inv_length
        tl.store(DY_SCALE + base + cc, scale, mask=c_ok)
        if X_SCALE is not None:  # None on rows of one element, as in the MN kernel
            tl.store(X_SCALE + base + cc, e, mask=c_ok)
        tl.store(ROW_BIAS + base + cc, dm * inv_length - mdev * e, mask=c_ok)
        # This sample's shares of the affine parameters' gradients, [Σ dy(x−m)·a + Σdy·b, Σdy],
        # in its row of PARTIAL: [d weight (C), d bias (C), d gate w (K), d gate b (K)].
        tl.store(partial_row + cc, sum_dy_xm * a + sum_dy * b, mask=c_ok)
        tl.store(partial_row + C + cc, sum_dy, mask=c_ok)
    tl.store(partial_row + 2 * C + modes, d_gate_w, mask=mode_ok)
    tl.store(partial_row + 2 * C + K + modes, d_gate_b, mask=mode_ok)


def _mgn_blocks(c: int, k: int) -> tuple[int, int]:
    """(K_PAD, CHUNK_C) keeping [CHUNK_C, K_PAD] within MGN_TILE (MIX_TILE, where that is
    smaller: tests shrink it), or at one channel where K_PAD alone passes it."""
    k_pad = next_pow2(k)
    return k_pad, max(1, min(next_pow2(c), min(MIX_TILE, MGN_TILE) // k_pad))


def mode_group_norm_forward(
    shift: Tensor,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> tuple[Tensor | None, Tensor]:
    """(scale, bias) per row; see mix.mode_group_norm_forward. The scale None as for MN."""
    shift, mean_dev, var_rows = _dense(shift, mean_dev, var_rows)
    n, c = shift.shape
    k = gate_weight.shape[0]
    k_pad, chunk_c = _mgn_blocks(c, k)
    scale, row_bias = _unless_points(shift, mean_dev), torch.empty_like(shift)
    gw = gate_weight.contiguous()
    launch(_mgn_mix_forward_kernel, (n,))(
        shift, mean_dev, var_rows, gw, _or(gate_bias, gw), _or(weight, gw), _or(bias, gw),
        scale, row_bias, c, k, eps,
        HAS_GATE_BIAS=gate_bias is not None, HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None, K_PAD=k_pad, CHUNK_C=chunk_c,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    return scale, row_bias


def mode_group_norm_backward(
    sum_dy: Tensor,
    sum_dy_xs: Tensor | None,
    length: int,
    shift: Tensor,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    eps: float,
) -> MixGrads:
    """As `mode_norm_backward`, for MGN (see mix.mode_group_norm_backward); x_scale None
    as there."""
    sum_dy, sum_dy_xs, shift, mean_dev, var_rows = _dense(
        sum_dy, sum_dy_xs, shift, mean_dev, var_rows
    )
    n, c = shift.shape
    k = gate_weight.shape[0]
    k_pad, chunk_c = _mgn_blocks(c, k)
    dy_scale, row_bias = torch.empty_like(shift), torch.empty_like(shift)
    x_scale = _unless_points(shift, mean_dev)
    partial = shift.new_empty((n, 2 * c + 2 * k))
    d_weight, d_bias = shift.new_empty(c), shift.new_empty(c)
    d_gate_w, d_gate_b = shift.new_empty((k, 1)), shift.new_empty(k)
    gw = gate_weight.contiguous()
    launch(_mgn_mix_backward_kernel, (n,))(
        shift, mean_dev, var_rows, sum_dy, sum_dy_xs, gw, _or(gate_bias, gw), _or(weight, gw),
        dy_scale, x_scale, row_bias, partial,
        c, k, eps, 1.0 / length,
        HAS_GATE_BIAS=gate_bias is not None, HAS_WEIGHT=weight is not None,
        K_PAD=k_pad, CHUNK_C=chunk_c,
        enable_fp_fusion=FP_FUSION,
    )  # fmt: skip
    _sum_partials(partial, (d_weight, d_bias, d_gate_w, d_gate_b), c, k, k)
    return MixGrads(dy_scale=dy_scale, x_scale=x_scale, row_bias=row_bias, gate_weight=d_gate_w,
                    gate_bias=d_gate_b, weight=d_weight, bias_param=d_bias)  # fmt: skip
