"""Mutation check: plant known bugs, one at a time, and see that the tests catch each.

A test that cannot fail is a defect; this shows, bug by bug, that ours can. Every mutant
below is a small edit of one line or two (a dropped term, an off-by-one mask, a wrong default)
that a careless change could make. Each runs in a scratch copy of the working tree, with the
tests that should notice it; the source here is never touched.

    python tools/mutants.py                 # all mutants (hours: one at a time)
    python tools/mutants.py --only L7 M9    # some, by id (the name's first word)
    python tools/mutants.py --from I1       # from one on, in list order (resume a full run)
    python tools/mutants.py --list

Most mutants are expected to be caught (a test fails). A few are expected to survive because
they change nothing but rounding (`expect="equivalent"`, with the reason). The exit status is
1 when any outcome differs from its expectation, or when a mutant's target text is no longer
in the source (edit the mutant with the code it mutates).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER_TESTS = "tests/test_kernels.py tests/test_mode_norm.py tests/test_mode_group_norm.py"
REPORT_TESTS = "tests/test_report_values.py tests/test_bench_harness.py tests/test_benchmarks.py"
ZERO_IN_EXACT_ARITHMETIC = (
    "Σ_n w·(m − μ) is 0 in exact arithmetic (μ is the w-weighted mean of m); the term only "
    "removes rounding: over 150 float32 outlier draws of tools/fuzz.py it changed dx's error "
    "by at most 1.4× at ~1e-7, far below any bound"
)

MGN_ZERO_IN_EXACT_ARITHMETIC = (
    "as for MN: Σ_c w·(m − μ) is 0 in exact arithmetic (μ is the w-weighted mean of the "
    "sample's channel means); the tests caught it only on some random draws, by rounding "
    "(survived on 2026-12-04's draw, so it is not a reliable catch)"
)


@dataclass(frozen=True)
class Mutant:
    name: str  # its id first (--only takes ids), then what it does
    file: str
    old: str  # must occur exactly once in file
    new: str
    tests: str = LAYER_TESTS  # test files, or tests in them (file::test), space-separated
    expect: str = "caught"  # or "equivalent": survives, for the reason given
    why: str = ""


MUTANTS = [
    # --- statistics: moments of rows, split rows merged (kernels/moments.py) ---
    Mutant(
        "L6 Chan merge drops the delta term",
        "mn_triton/kernels/moments.py",
        "        m2 += tile_m2 + delta * delta * (count * tile_count / total)",
        "        m2 += tile_m2",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L7 moments without a shift",
        "mn_triton/kernels/moments.py",
        "    shift = _row_shift(row_ptr, row_ok, length, inner_size, stride_outer, stride_inner,\n"
        "                       TWO_LEVEL, ACC_FP64)  # fmt: skip\n",
        "    shift = tl.zeros([BLOCK_ROWS], dtype=acc_dtype)\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L9 split merge miscounts the last split",
        "mn_triton/kernels/moments.py",
        "tl.where(splits == num_splits - 1, last_split_len, split_len)",
        "tl.where(splits == num_splits - 1, split_len, split_len)",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L15 32-bit indices at N·C or L past 2³¹",
        "mn_triton/kernels/layout.py",
        "    return largest >= 2**31\n",
        "    return False\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L16 the split merge reads the padded splits' variances (past the last row's end; a "
        "weight of 0 hides them in the result: only tests/memcheck.py sees it)",
        "mn_triton/kernels/moments.py",
        "        var = tl.load(VAR + offs, mask=mask, other=0.0)",
        "        var = tl.load(VAR + offs, mask=row_ok[:, None], other=0.0)",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L17 every split of a row stores the row's shift (the same value: a race whose result "
        "does not change here; only tests/memcheck.py sees it)",
        "mn_triton/kernels/moments.py",
        "    if pid_split == 0:\n        tl.store(SHIFT + rows, shift, mask=row_ok)",
        "    if True:\n        tl.store(SHIFT + rows, shift, mask=row_ok)",
        "tests/test_kernels.py",
    ),
    Mutant(
        "M20 the mix kernels' clamp turns NaN into the floor",
        "mn_triton/kernels/mix.py",
        "    return tl.where(value < floor, floor, value)\n",
        "    return tl.maximum(value, floor)\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "M5 split merge drops the spread of the splits' means",
        "mn_triton/kernels/moments.py",
        "spread = tl.where(mask, mean - total_mean[:, None], 0.0)",
        "spread = tl.where(mask, 0.0 * mean, 0.0)",
        "tests/test_kernels.py",
    ),
    # --- addressing and the apply pass ---
    Mutant(
        "L1 row offsets as an int32 product",
        "mn_triton/kernels/addressing.py",
        "    return n.to(tl.int64) * stride_n + c.to(tl.int64) * stride_c",
        "    return n * stride_n + c * stride_c",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L10 apply mask one column too far",
        "mn_triton/kernels/apply.py",
        "    mask = row_ok[:, None] & (cols < length)[None, :]",
        "    mask = row_ok[:, None] & (cols <= length)[None, :]",
        "tests/test_kernels.py",
    ),
    Mutant(
        "A1 apply reads dy with x's strides",
        "mn_triton/kernels/apply.py",
        "    dy_strides = strides[1] if dy is not None else strides[0]\n",
        "    dy_strides = strides[0]\n",
    ),
    Mutant(
        "A2 apply drops its result when the planner copied the input",
        "mn_triton/kernels/apply.py",
        "        out.copy_(out_)\n",
        "        pass\n",
    ),
    Mutant(
        "P1 two-level positions with the strides swapped",
        "mn_triton/kernels/addressing.py",
        "        return outer * stride_outer + (cols - outer * inner_size) * stride_inner",
        "        return outer * stride_inner + (cols - outer * inner_size) * stride_outer",
        "tests/test_kernels.py",
    ),
    Mutant(
        "G1 gradient sums read dy with x's strides",
        "mn_triton/kernels/moments.py",
        "        dy_offs = position_offsets(cols, inner_size, sdy_outer, sdy_inner, TWO_LEVEL)",
        "        dy_offs = position_offsets(cols, inner_size, sx_outer, sx_inner, TWO_LEVEL)",
    ),
    Mutant(
        "G2 merged gradient sums keep the first split only",
        "mn_triton/kernels/moments.py",
        "        sum_dy = tl.sum(tl.load(SUM_DY + offs, mask=mask, other=0.0), axis=1)",
        "        sum_dy = tl.load(SUM_DY + rows * num_splits, mask=row_ok, other=0.0)",
    ),
    Mutant(
        "G3 row variance divided by L - 1",
        "mn_triton/kernels/moments.py",
        "    tl.store(VAR + out, m2 / (stop - start).to(acc_dtype), mask=row_ok)",
        "    tl.store(VAR + out, m2 / (stop - start - 1).to(acc_dtype), mask=row_ok)",
        "tests/test_kernels.py",
    ),
    # --- the mix kernels (kernels/mix.py) ---
    Mutant(
        "L11 gate bias ignored",
        "mn_triton/kernels/mix.py",
        "        logits += tl.load(GB + modes, mask=mode_ok, other=0.0).to(dtype)[None, :]\n",
        "        logits += 0.0 * tl.load(GB + modes, mask=mode_ok, other=0.0).to(dtype)[None, :]\n",
    ),
    Mutant(
        "M8 gates summed over the first partial only",
        "mn_triton/kernels/mix.py",
        "for _ in range(0, num_partials):",
        "for _ in range(0, 1):",
    ),
    Mutant(
        "M3 gate mass clamped as mass + tiny",
        "mn_triton/kernels/mix.py",
        "    clamped = _at_least(mass, _TINY)\n    coverage = (mass / clamped)[:, None]",
        "    clamped = mass + _TINY\n    coverage = (mass / clamped)[:, None]",
    ),
    Mutant(
        "M9 softmax backward in the cancelling standard form (kernels)",
        "mn_triton/kernels/mix.py",
        "    return g_dg * others_g - g * others_gdg",
        "    return g_dg - g * tl.sum(g_dg, axis=1)[:, None]",
    ),
    Mutant(
        "M17 softmax backward forms the largest gate's others as total − own (kernels)",
        "mn_triton/kernels/mix.py",
        "    others_g = tl.where(is_top, rest_g, (rest_g + top_g) - g)\n"
        "    others_gdg = tl.where(is_top, rest_gdg, (rest_gdg + top_gdg) - g_dg)\n",
        "    others_g = (rest_g + top_g) - g\n    others_gdg = (rest_gdg + top_gdg) - g_dg\n",
    ),
    Mutant(
        "M18 softmax backward sums directly for the smallest gate, not the largest (kernels)",
        "mn_triton/kernels/mix.py",
        "tl.where(g == tl.max(g, axis=1)[:, None], j, K_PAD)",
        "tl.where(g == tl.min(g, axis=1)[:, None], j, K_PAD)",
    ),
    Mutant(
        "M19 rows kernel with the gates fused leaves the gate term out of dx",
        "mn_triton/kernels/mix.py",
        "            row_bias += dm_gate * inv_length\n",
        "",
    ),
    Mutant(
        "M21 gates computed once are read with the padded number of modes as row width",
        "mn_triton/kernels/mix.py",
        "        g = tl.load(GATES + _row_offsets(rows, modes, K), mask=nk_ok, other=0.0)",
        "        g = tl.load(GATES + _row_offsets(rows, modes, K_PAD), mask=nk_ok, other=0.0)",
    ),
    Mutant(
        "M22 gates computed once for the first block of samples only",
        "mn_triton/kernels/mix.py",
        "    launch(_mn_gates_kernel, (cdiv(n, block_n),))(",
        "    launch(_mn_gates_kernel, (1,))(",
    ),
    Mutant(
        "M23 samples split: the batch statistics of the first split only, not merged",
        "mn_triton/kernels/mix.py",
        "        merge_mode_stats(per_split, k, c, out=out)\n",
        "        out.copy_(per_split[0])\n",
    ),
    Mutant(
        "M24 samples split: every split writes its partial sums into the first split's row",
        "mn_triton/kernels/mix.py",
        "    return tl.program_id(1).to(tl.int64) * SPLIT_STRIDE\n",
        "    return tl.program_id(1).to(tl.int64) * 0\n",
    ),
    Mutant(
        "M25 samples split: each split stops one sample short",
        "mn_triton/kernels/mix.py",
        "    return start, tl.minimum(start + ROWS_PER_SPLIT, N)\n",
        "    return start, tl.minimum(start + ROWS_PER_SPLIT - 1, N)\n",
    ),
    Mutant(
        "M26 partial sums place the gate bias after K gate-weight columns (MGN's), not K·C",
        "mn_triton/kernels/mix.py",
        "    gate_b0 = 2 * C + GATE_W_SIZE\n",
        "    gate_b0 = 2 * C + K\n",
    ),
    Mutant(
        "M27 samples split: every split stores the statistics and updates the running ones",
        "mn_triton/kernels/mix.py",
        "    if tl.program_id(1) == 0:  # every split holds the statistics; the first stores them",
        "    if True:  # every split holds the statistics; the first stores them",
    ),
    Mutant(
        "M28 samples split: a split's first sample in int32 (wraps near N = 2³¹)",
        "mn_triton/kernels/mix.py",
        "    start = tl.program_id(1).to(tl.int64) * ROWS_PER_SPLIT\n",
        "    start = tl.program_id(1) * ROWS_PER_SPLIT\n",
        "tests/test_kernels.py",
    ),
    # --- rows of one element, their own statistics (backend.POINT_ROWS) ---
    Mutant(
        "M29 one-element rows: an absent statistic read as the shift instead of 0",
        "mn_triton/kernels/mix.py",
        "        value = tl.zeros_like(like)\n",
        "        value = like\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L18 one-element rows: y returned as a view of the mix's rows",
        "mn_triton/backend.py",
        "        return y.detach()\n",
        "        return y\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L19 one-element rows: y in the rows' strides rather than x's",
        "mn_triton/backend.py",
        "    if y.dtype == x.dtype and y.stride() == x.stride():\n",
        "    if y.dtype == x.dtype:\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L20 one-element rows: a torch-op backward left without Σ dy·(x − s)",
        "mn_triton/backend.py",
        "zeros if i in (1, 4, 5) and t is None else t",
        "zeros if i in (4, 5) and t is None else t",
        "tests/test_kernels.py",
    ),
    Mutant(
        "L21 one-element rows: only dense ones skip the passes (16-bit and strided keep them)",
        "mn_triton/backend.py",
        "    return POINT_ROWS and row_length(x) == 1 and _fused_mix(x, gate_weight)\n",
        "    return POINT_ROWS and row_length(x) == 1 and x.is_contiguous()"
        " and _fused_mix(x, gate_weight)\n",
        "tests/test_kernels.py::test_one_element_rows_path_wherever_the_mix_kernels_run",
    ),
    Mutant(
        "L22 one-element rows: y of 16-bit x left in the mix's float32",
        "mn_triton/backend.py",
        "    if y.dtype == x.dtype and y.stride() == x.stride():\n",
        "    if y.stride() == x.stride():\n",
        "tests/test_kernels.py::test_16_bit_one_element_rows_skip_their_passes_as_float32_rows",
    ),
    Mutant(
        "L23 one-element rows: s of 16-bit x in x's dtype",
        "mn_triton/backend.py",
        "    return t.reshape(t.shape[0], t.shape[1]).to(dtype).contiguous()\n",
        "    return t.reshape(t.shape[0], t.shape[1]).contiguous()\n",
        "tests/test_kernels.py::test_16_bit_one_element_rows_skip_their_passes_as_float32_rows",
    ),
    Mutant(
        "L24 one-element rows: dx of transposed or 16-bit rows cast back dense, not as x",
        "mn_triton/ops.py",
        "        return backend.rows_like(grads.row_bias.addcmul_(dy_rows, grads.dy_scale), x)\n",
        "        return grads.row_bias.addcmul_(dy_rows, grads.dy_scale)"
        ".view(x.shape).to(x.dtype)\n",
        "tests/test_compile.py::test_opcheck_on_transposed_rows_of_one_element",
    ),
    Mutant(
        "L25 three-level layouts: copied again by each pass, not once per op call",
        "mn_triton/backend.py",
        "    return tuple(t.contiguous() for t in tensors)\n",
        "    return tensors\n",
        "tests/test_mode_norm.py::test_a_layout_of_three_levels_is_copied_once_per_call",
    ),
    Mutant(
        "L26 three-level layouts: the apply pass copies its output buffer before writing it",
        "mn_triton/kernels/layout.py",
        "*(t if t.is_contiguous() else _contiguous_buffer(t) for t in tensors[read:]),",
        "*(t.contiguous() for t in tensors[read:]),",
        "tests/test_mode_norm.py::test_a_layout_of_three_levels_is_copied_once_per_call",
    ),
    Mutant(
        "L27 three-level layouts: y and dx laid out as the contiguous copy, not as x",
        "mn_triton/kernels/apply.py",
        "    out = torch.empty_like(x if like is None else like)\n",
        "    out = torch.empty_like(x)\n",
        "tests/test_mode_norm.py::test_a_layout_of_three_levels_is_copied_once_per_call",
    ),
    Mutant(
        "L28 three-level layouts: SyncModeNorm's backward passes copy x and dy again",
        "mn_triton/sync.py",
        "            x_in, dy_in = backend.addressable(x, dy)  # what both passes read\n",
        "            x_in, dy_in = x, dy\n",
        "tests/test_sync.py::test_synchronising_reads_a_three_level_layout_from_one_copy",
    ),
    Mutant(
        "L29 three-level layouts: SyncModeNorm's y laid out as the contiguous copy, not as x",
        "mn_triton/sync.py",
        "backend.row_affine(x_in, shift, scale, row_bias, like=x)",
        "backend.row_affine(x_in, shift, scale, row_bias)",
        "tests/test_sync.py::test_synchronising_reads_a_three_level_layout_from_one_copy",
    ),
    Mutant(
        "M10 eval variance from running estimates in the input's precision",
        "mn_triton/kernels/mix.py",
        "var = _at_least(sq - r64 * r64, 0.0).to(dtype)",
        "var = _at_least(sq.to(dtype) - running * running, 0.0).to(dtype)",
    ),
    Mutant(
        "M11 running mean without its residual",
        "mn_triton/kernels/mix.py",
        "    absolute_mean = center + residual\n",
        "    absolute_mean = center\n",
        expect="equivalent",
        why="P = Σ w·m as it rounds (since 2026-12-07) lies within a few ulps of μ, about the"
        " running mean's own float32 rounding, so μ − P changes the stored estimate by"
        " rounding alone (with P summed around sample 0, as before, it cost 3e-5σ to 1.3e-4σ,"
        " which tests/test_mode_norm.py::test_running_mean_of_a_mode_far_from_sample_0"
        " caught)",
    ),
    Mutant(
        "L12 momentum tensor ignored",
        "mn_triton/kernels/mix.py",
        "        momentum = tl.load(MOMENTUM).to(mean.dtype)\n",
        "        momentum = momentum * 0.5\n",
    ),
    Mutant(
        "L13 MN without weight scales by 0.5",
        "mn_triton/kernels/mix.py",
        "    alpha = _load_or(ALPHA, cols, col_ok, 1.0, dtype, HAS_WEIGHT)\n"
        "    beta = _load_or(BETA, cols, col_ok, 0.0, dtype, HAS_BIAS)\n    for n0",
        "    alpha = _load_or(ALPHA, cols, col_ok, 0.5, dtype, HAS_WEIGHT)\n"
        "    beta = _load_or(BETA, cols, col_ok, 0.0, dtype, HAS_BIAS)\n    for n0",
    ),
    Mutant(
        "M1 MN backward drops σ²'s derivative in μ (kernels)",
        "mn_triton/kernels/mix.py",
        "        d_mean_via_var = -2.0 * d_var * sum_w_dev\n",
        "        d_mean_via_var = 0.0 * sum_w_dev\n",
        expect="equivalent",
        why=ZERO_IN_EXACT_ARITHMETIC,
    ),
    Mutant(
        "M30 MGN: the first walk keeps the mass so far unscaled when a mode's largest ℓ grows",
        "mn_triton/kernels/mix.py",
        "        mass = mass * tl.exp(top - new_top)  # the mass so far, on the new scale\n",
        "",
    ),
    Mutant(
        "M2 MGN backward drops σ²'s derivative in μ",
        "mn_triton/kernels/mix.py",
        "d_mean = -sum_db * rstd / K - 2.0 * d_var * sum_g_dev * inv_mass",
        "d_mean = -sum_db * rstd / K",
        expect="equivalent",
        why=MGN_ZERO_IN_EXACT_ARITHMETIC,
    ),
    Mutant(
        "M16 MGN averages 1/σ over the padded modes",
        "mn_triton/kernels/mix.py",
        "    a = tl.sum(rstd, axis=0) / K\n    for c0",
        "    a = tl.sum(rstd, axis=0) / K_PAD\n    for c0",
    ),
    Mutant(
        "L14 MGN partial sums lose the first bias column",
        "mn_triton/kernels/mix.py",
        "    tl.store(D_BIAS + (cols - C), total, mask=(cols >= C) & (cols < 2 * C))",
        "    tl.store(D_BIAS + (cols - C), total, mask=(cols > C) & (cols < 2 * C))",
    ),
    # --- the torch-op path (mn_triton/mix.py) ---
    Mutant(
        "M13 softmax backward in the cancelling standard form (torch ops)",
        "mn_triton/mix.py",
        "    return kept.sub_(given)",
        "    return g_dg - gates * g_dg.sum(modes_dim, keepdim=True)",
    ),
    Mutant(
        "T2 MGN weights as g / max(C_k, tiny) (torch ops)",
        "mn_triton/mix.py",
        "    return (offset + ell).exp_(), torch.softmax(ell, dim=-1)\n",
        "    g = (offset + ell).exp()\n"
        "    return g, g / g.sum(dim=-1, keepdim=True).clamp_min(MIN_MODE_MASS)\n",
    ),
    Mutant(
        "T1 MN backward drops σ²'s derivative in μ (torch ops)",
        "mn_triton/mix.py",
        "        d_mean_via_var = -2.0 * d_var * sum_w_dev\n",
        "        d_mean_via_var = 0.0 * sum_w_dev\n",
        "tests/test_mode_norm.py tests/test_kernels.py",
        expect="equivalent",
        why=ZERO_IN_EXACT_ARITHMETIC,
    ),
    Mutant(
        "Q1 MGN backward drops σ²'s derivative in μ (torch ops)",
        "mn_triton/mix.py",
        "    d_mean = d_mean - 2.0 * d_var * (w * s.dev).sum(dim=-1)\n",
        "",
        expect="equivalent",
        why=MGN_ZERO_IN_EXACT_ARITHMETIC,
    ),
    Mutant(
        "Q2 MGN sums the modes' normalisations instead of averaging",
        "mn_triton/mix.py",
        "    b = (dev * rstd.unsqueeze(-1)).mean(dim=1)\n",
        "    b = (dev * rstd.unsqueeze(-1)).sum(dim=1)\n",
    ),
    # --- SyncModeNorm (sync.py), over 2 gloo processes ---
    Mutant(
        "Y1 merged variance without the spread of the processes' means",
        "mn_triton/sync.py",
        "(center_r + residual_r) + mass_r * gap_r)",
        "(center_r + residual_r))",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y3 backward sums not reduced across processes",
        "mn_triton/sync.py",
        "sum_over_batch = functools.partial(_all_reduce_sum, group=ctx.group)",
        "sum_over_batch = (lambda t: t)",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y7 merge kernel without the spread of the processes' means",
        "mn_triton/kernels/mix.py",
        "(center_r + residual_r) + mass_r * gap_r)",
        "(center_r + residual_r))",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y8 merge kernel takes Σ_r u_r as 1",
        "mn_triton/kernels/mix.py",
        "    residual -= (1.0 - coverage) * center\n",
        "",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y6 the kernels' second backward pass reads the sums before the all_reduce",
        "mn_triton/kernels/mix.py",
        "batch_sums = sum_over_batch(batch_sums.view(3, k, c)).contiguous().view(-1)",
        "batch_sums = batch_sums.view(-1)",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y4 process shares as N_r / N below float32 tiny",
        "mn_triton/sync.py",
        "    share_r = held_r / total.clamp_min(MIN_MODE_MASS).unsqueeze(1)",
        "    share_r = mass_r.unsqueeze(2) / total.clamp_min(MIN_MODE_MASS).unsqueeze(1)",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y5 convert_sync_modenorm loses the training mode",
        "mn_triton/sync.py",
        "        output.train(module.training)\n        return output\n",
        "        return output\n",
        "tests/test_sync.py",
    ),
    # --- from the mutation audit of sync.py (2026-12-06): its real gaps ---
    Mutant(
        "Y9 the backward's all_reduce over the default group, not process_group",
        "mn_triton/sync.py",
        "dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)",
        "dist.all_reduce(t, op=dist.ReduceOp.SUM)",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y10 the world size of the default group, not process_group's",
        "mn_triton/sync.py",
        "    return dist.get_world_size(group)",
        "    return dist.get_world_size()",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y11 the layer on the kernels merges the processes in torch ops, not merge_mode_stats",
        "mn_triton/sync.py",
        "    if on_kernels:\n        return mix.ModeStats.unpacked(",
        "    if False:\n        return mix.ModeStats.unpacked(",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y12 running estimates updated where there are none (track_running_stats=False)",
        "mn_triton/sync.py",
        "        if momentum is not None:\n            # A batch",
        "        if True:\n            # A batch",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y13 a gradient returned for an absent weight (affine=False)",
        "mn_triton/sync.py",
        "            None if weight is None else grads.weight.to(weight.dtype),",
        "            grads.weight,",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y14 the backward divides by L unclamped (rows of no values)",
        "mn_triton/sync.py",
        "            length = max(row_length(x), 1)",
        "            length = row_length(x)",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y15 rows of no values (L = 0) bring gate mass into the merge",
        "mn_triton/sync.py",
        "        zeros = x.new_zeros((0, x.shape[1]), dtype=stat_dtype(x.dtype))",
        "        zeros = x.new_zeros(x.shape[:2], dtype=stat_dtype(x.dtype))",
        "tests/test_sync.py",
    ),
    Mutant(
        "Y16 convert_sync_modenorm makes every layer affine",
        "mn_triton/sync.py",
        "            module.affine, module.track_running_stats, process_group,",
        "            True, module.track_running_stats, process_group,",
        "tests/test_sync.py",
    ),
    # --- argument checks and transforms (functional.py) ---
    Mutant(
        "F1 eps = 0 accepted",
        "reference/_base.py",
        "    if not _number_in(eps, 0.0, low_open=True):",
        "    if not _number_in(eps, 0.0):",
        "tests/test_errors.py",
    ),
    Mutant(
        "F2 a momentum tensor of several elements accepted",
        "reference/_base.py",
        "    if isinstance(momentum, Tensor) and momentum.numel() != 1:\n",
        "    if isinstance(momentum, Tensor) and momentum.numel() < 1:\n",
        "tests/test_errors.py tests/test_mode_norm.py",
    ),
    Mutant(
        "F3 torch.func transforms take the kernel path",
        "mn_triton/functional.py",
        "    if torch._C._are_functorch_transforms_active():\n        return True\n",
        "",
        "tests/test_ecosystem.py tests/test_mode_norm.py tests/test_double_backward.py",
    ),
    Mutant(
        "F4 autocast left on for the statistics",
        "reference/_base.py",
        " and torch.is_autocast_enabled(device_type):",
        " and False:",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "F5 make_fx's proxy mode takes the kernel path",
        "mn_triton/ops.py",
        "_TorchDispatchModeKey.FAKE, torch._C._TorchDispatchModeKey.PROXY)",
        "_TorchDispatchModeKey.FAKE,)",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "F6 the input itself not checked for a wrapper subclass (a fake tensor outside its mode)",
        "mn_triton/ops.py",
        "    for t in args:  # (a loop",
        "    for t in args[1:]:  # (a loop",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "F7 an ensemble's stacked estimates take _foreach_lerp_ under vmap",
        "reference/_base.py",
        "        if _vmapped(running_mean) or _vmapped(mode_mean):\n",
        "        if False:\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "F8 vmap inside an ensemble's vmap updates each model's estimates from every call",
        "reference/_base.py",
        "    return _vmapped(buffer) and level(buffer) >= level(x)\n",
        "    return _vmapped(buffer)\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "F9 a batched dy takes the kernels' backward",
        "mn_triton/ops.py",
        "        or functorch.is_batchedtensor(dy)\n"
        "        or functorch.is_legacy_batchedtensor(dy)\n",
        "",
        "tests/test_double_backward.py",
    ),
    Mutant(
        "F10 the gate's pruning and weight-norm hooks not run",
        "reference/_base.py",
        "        if gate._forward_pre_hooks or gate._forward_hooks:",
        "        if False:",
        "tests/test_ecosystem.py",
    ),
    # --- module state: running estimates, conversion, SWA ---
    Mutant(
        "S4 cumulative average as 1/(t+1)",
        "reference/_base.py",
        "            return 1.0 / (self.num_batches_tracked.to(weight_dtype) + 1)\n",
        "            return 1.0 / (self.num_batches_tracked.to(weight_dtype) + 2)\n",
        "tests/test_mode_norm.py tests/test_reference.py",
    ),
    Mutant(
        "S9 eval without running estimates uses them anyway",
        "reference/_base.py",
        "        return self.training or self.running_mean is None\n",
        "        return self.training\n",
        "tests/test_mode_norm.py tests/test_reference.py",
    ),
    Mutant(
        "S10 reset_running_stats keeps the batch count",
        "reference/_base.py",
        "            self.running_mean_sq.fill_(1)\n            self.num_batches_tracked.zero_()\n",
        "            self.running_mean_sq.fill_(1)\n",
        "tests/test_mode_norm.py tests/test_reference.py",
    ),
    Mutant(
        "S1 convert takes running_mean_sq without the mean's square",
        "mn_triton/convert.py",
        "sq = torch.addcmul(bn.running_var.to(mean.dtype), mean, mean)",
        "sq = bn.running_var.to(mean.dtype) + mean",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "S2 convert drops num_batches_tracked",
        "mn_triton/convert.py",
        "            out.num_batches_tracked.copy_(bn.num_batches_tracked)\n",
        "",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "S11 conversion swaps a norm used at two places twice, into two layers",
        "mn_triton/convert.py",
        "        if id(m) not in done:\n",
        "        if True:\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "S12 reset_parameters assumes a bias wherever there is a weight",
        "reference/_base.py",
        "        if self.bias is not None:\n            nn.init.zeros_(self.bias)\n",
        "        if self.weight is not None:\n            nn.init.zeros_(self.bias)\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "S3 update_bn leaves the momentum changed",
        "mn_triton/swa.py",
        "            norm.momentum = momentum\n",
        "            pass\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "M31 MN mix blocks of any number of samples again (miscompiled on an H200)",
        "mn_triton/kernels/mix.py",
        "    block_n = max(1, min(next_pow2(n), MN_BLOCK_N, tile // (k_pad * block_c)))\n",
        "    block_n = max(1, min(next_pow2(n), tile // (k_pad * block_c)))\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "M32 captured custom-op calls do not split the mix's samples",
        "mn_triton/ops.py",
        "        with backend.as_captured():\n            return impl(*args)\n",
        "        return impl(*args)\n",
        "tests/test_compile.py",
    ),
    Mutant(
        "M33 no split run ahead: a capture would load kernels (CUDA refuses)",
        "mn_triton/ops.py",
        "            impl(*args)  # loads the kernels a capture of this call will launch\n",
        "            pass\n",
        "tests/test_compile.py",
    ),
    Mutant(
        "M34 the training backward computes the batch statistics again",
        "mn_triton/ops.py",
        "        running_mean = running_mean_sq = None\n    else:  # eval",
        "        running_mean = running_mean_sq = mode_stats = None\n    else:  # eval",
        "tests/test_kernels.py",
    ),
    Mutant(
        "M35 the forward kernel keeps no batch statistics (the backward reads unwritten ones)",
        "mn_triton/kernels/mix.py",
        "        if STATS_OUT is not None:\n",
        "        if False:\n",
        "tests/test_kernels.py tests/test_mode_norm.py",
    ),
    Mutant(
        "M36 the backward computes the gates again",
        "mn_triton/ops.py",
        "stats=mode_stats,\n            gates=gates,\n",
        "stats=mode_stats,\n            gates=None,\n",
        "tests/test_kernels.py",
    ),
    Mutant(
        "M37 the forward kernel keeps no gates (the backward reads unwritten ones)",
        "mn_triton/kernels/mix.py",
        "            if tl.program_id(0) == 0:\n                nk_ok = row_ok",
        "            if tl.program_id(0) == -1:\n                nk_ok = row_ok",
        "tests/test_kernels.py tests/test_mode_norm.py",
    ),
    Mutant(
        "M38 captured calls form the gates in every program, as eager ones",
        "mn_triton/kernels/mix.py",
        "    min_elements = 0 if _as_captured.get() else GATES_KERNEL_MIN_ELEMENTS\n",
        "    min_elements = GATES_KERNEL_MIN_ELEMENTS\n",
        "tests/test_compile.py",
    ),
    Mutant(
        "M39 compiled MGN layers on rows of one element keep their passes",
        "mn_triton/ops.py",
        "        points = backend.point_rows(args[0], args[1])\n        return mode_group_norm_f",
        "        points = False\n        return mode_group_norm_f",
        "tests/test_compile.py",
    ),
    Mutant(
        "M40 the backward op's run ahead keys on the statistics before taking empty ones as "
        "absent (a capture would launch kernels not loaded)",
        "mn_triton/ops.py",
        "    args = _absent_as_none(args, first=2)\n"
        "    return _with_capture_choices(_mode_norm_backward_impl,",
        "    return _with_capture_choices(_mode_norm_op_backward,",
        "tests/test_compile.py",
    ),
    Mutant(
        "M41 the gate shares summed first keep only the first channel block's",
        "mn_triton/kernels/mix.py",
        "        return partial.sum(0, keepdim=True), 1",
        "        return partial[:1], 1",
        "tests/test_kernels.py::test_mode_norm_gate_shares_summed_first_from_the_threshold",
    ),
    Mutant(
        "M42 the gate shares summed first, and read as if still apart",
        "mn_triton/kernels/mix.py",
        "        return partial.sum(0, keepdim=True), 1",
        "        return partial.sum(0, keepdim=True), programs",
        "tests/test_kernels.py::test_mode_norm_gate_shares_summed_first_from_the_threshold",
    ),
    Mutant(
        "M43 MGN's blocks of channels × modes at MIX_TILE again (255 registers and spills)",
        "mn_triton/kernels/mix.py",
        "    return k_pad, max(1, min(next_pow2(c), min(MIX_TILE, MGN_TILE) // k_pad))",
        "    return k_pad, max(1, min(next_pow2(c), MIX_TILE // k_pad))",
        "tests/test_kernels.py::test_mode_group_norm_blocks_stay_within_mgn_tile",
    ),
    # --- kernels recorded into torch.compile's graphs (ops.TRACE_KERNELS) ---
    Mutant(
        "R1 traced op bodies run their kernels instead of recording them",
        "mn_triton/kernels/layout.py",
        "    if not _RECORDING.get():\n        return kernel[grid]\n",
        "    if True:\n        return kernel[grid]\n",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R2 graphs traced for CUDA graphs keep the eager choices",
        "mn_triton/ops.py",
        "backend.as_captured() if config.triton.cudagraphs else",
        "backend.as_captured() if False else",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R3 symbolic sizes traced into the kernels' host code",
        "mn_triton/ops.py",
        "    if not all(isinstance(size, int) for size in x.shape):\n        return False\n",
        "",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R4 torch.export's decomposition records the kernels",
        "mn_triton/ops.py",
        "    return not custom_triton_ops_decomposition_disabled()",
        "    return True",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R5 the interpreter's kernels traced for recording",
        "mn_triton/ops.py",
        "    if not asked or backend.INTERPRETING or not backend.uses_kernels(x):",
        "    if not asked or not backend.uses_kernels(x):",
        "tests/test_compile.py",
    ),
    Mutant(
        "R6 the switch read when the op runs, not handed to it when dynamo traces the layer",
        "mn_triton/ops.py",
        "backend.point_rows(x, gate_weight), TRACE_KERNELS)\n",
        "backend.point_rows(x, gate_weight))\n",
        "tests/test_compile.py",
    ),
    # --- the capture and trace audit's gaps (each closed by a test) ---
    Mutant(
        "R7 any call on a CUDA tensor chooses as captured, whether its stream is or not",
        "mn_triton/ops.py",
        "    return x.is_cuda and torch.cuda.is_current_stream_capturing()\n",
        "    return x.is_cuda\n",
        "tests/test_compile.py::test_captured_means_a_cuda_tensor_on_a_stream_being_captured",
    ),
    Mutant(
        "R8 calls captured into CUDA graphs never told so (they keep the eager choices)",
        "mn_triton/ops.py",
        "    return x.is_cuda and torch.cuda.is_current_stream_capturing()\n",
        "    return False\n",
        "tests/test_compile.py::test_captured_means_a_cuda_tensor_on_a_stream_being_captured",
    ),
    Mutant(
        "R9 the run ahead's signature without K (another K's kernels loaded under capture)",
        "mn_triton/ops.py",
        "    return (*x.shape[:2], gate_weight.shape[0], x.device,",
        "    return (*x.shape[:2], x.device,",
        "tests/test_compile.py::test_calls_with_kernels_of_their_own_are_run_ahead_too",
    ),
    Mutant(
        "R10 the run ahead's signature without N (the splits)",
        "mn_triton/ops.py",
        "    return (*x.shape[:2], gate_weight.shape[0], x.device,",
        "    return (x.shape[1], gate_weight.shape[0], x.device,",
        "tests/test_compile.py::test_calls_with_kernels_of_their_own_are_run_ahead_too",
    ),
    Mutant(
        "R11 the run ahead's signature without C (the channel blocks)",
        "mn_triton/ops.py",
        "    return (*x.shape[:2], gate_weight.shape[0], x.device,",
        "    return (x.shape[0], gate_weight.shape[0], x.device,",
        "tests/test_compile.py::test_calls_with_kernels_of_their_own_are_run_ahead_too",
    ),
    Mutant(
        "R12 the run ahead's signature without the flags (rows of one element)",
        "mn_triton/ops.py",
        "    return arg if isinstance(arg, bool) else arg is None\n",
        "    return arg is None\n",
        "tests/test_compile.py::test_calls_with_kernels_of_their_own_are_run_ahead_too",
    ),
    Mutant(
        "R13 the backward op keeps the eager choices when captured (no split, no run ahead)",
        "mn_triton/ops.py",
        "    return _with_capture_choices(_mode_norm_backward_impl, args, args[1], args[7])",
        "    return _mode_norm_backward_impl(*args)",
        "tests/test_compile.py::test_captured_ops_split_the_samples_and_load_those_kernels_ahead",
    ),
    Mutant(
        "R14 the backward op's run ahead keyed on the gates (N, K) as if the gate weight (K)",
        "mn_triton/ops.py",
        "_with_capture_choices(_mode_norm_backward_impl, args, args[1], args[7])",
        "_with_capture_choices(_mode_norm_backward_impl, args, args[1], args[6])",
        "tests/test_compile.py::test_calls_with_kernels_of_their_own_are_run_ahead_too",
    ),
    Mutant(
        "R15 the torch ops run the first call of each signature twice (no kernels to load)",
        "mn_triton/ops.py",
        "    if not backend.uses_kernels(x):\n        return impl(*args)\n    if _capturing(x):",
        "    if _capturing(x):",
        "tests/test_compile.py::test_the_first_call_of_a_signature_runs_ahead_on_the_kernels_only",
    ),
    Mutant(
        "R16 the kernels recorded where the layer did not ask (switch off)",
        "mn_triton/ops.py",
        "    if not asked or backend.INTERPRETING or not backend.uses_kernels(x):",
        "    if backend.INTERPRETING or not backend.uses_kernels(x):",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R17 recorded launches pass the compile option as a kernel argument",
        "mn_triton/kernels/layout.py",
        "        recorded(*args, **kwargs)\n",
        "        recorded(*args, enable_fp_fusion=enable_fp_fusion, **kwargs)\n",
        "tests/test_trace_probe.py",
    ),
    Mutant(
        "R18 TRACE_KERNELS on by default",
        "mn_triton/ops.py",
        'os.environ.get("MN_TRITON_TRACE_KERNELS", "0") == "1"',
        'os.environ.get("MN_TRITON_TRACE_KERNELS", "1") == "1"',
        "tests/test_compile.py::test_kernels_are_recorded_only_where_the_environment_asks",
    ),
    # --- benchmarks: bytes model and report ---
    Mutant(
        "S5 bytes model with 4 backward passes",
        "benchmarks/grid.py",
        'MIN_PASSES = {"forward": 3, "eval": 3, "backward": 5, "full": 8}',
        'MIN_PASSES = {"forward": 3, "eval": 3, "backward": 4, "full": 8}',
        REPORT_TESTS,
    ),
    Mutant(
        "S6 percentiles off by one sample",
        "benchmarks/measure.py",
        "    pos = q * (len(sorted_values) - 1)\n",
        "    pos = q * len(sorted_values) * 0.999\n",
        REPORT_TESTS,
    ),
    Mutant(
        "S7 speedup over the compiled reference inverted",
        "benchmarks/report_goals.py",
        'vs_compiled.assign(value=1 / vs_compiled["ratio"])',
        'vs_compiled.assign(value=vs_compiled["ratio"])',
        REPORT_TESTS,
    ),
    Mutant(
        "S8 memory ratio against the total peak",
        "benchmarks/report_train.py",
        'mem_ratio=merged["peak_mem_mb"] / merged["peak_mem_mb_bn"],',
        'mem_ratio=merged["peak_mem_total_mb"] / merged["peak_mem_mb_bn"],',
        REPORT_TESTS,
    ),
    Mutant(
        "S13 a run's known defect not shown under its caption",
        "benchmarks/report_text.py",
        '    if "run_note" not in df:\n        return ""\n',
        '    if True:\n        return ""\n',
        REPORT_TESTS,
    ),
    Mutant(
        "S14 gpu_run.sh runs a stage whose limit is 0 (timeout 0: no limit)",
        "benchmarks/gpu_run.sh",
        '    if [ "$limit" -le 0 ]; then  # `timeout 0`',
        '    if [ "$limit" -lt 0 ]; then  # `timeout 0`',
        "tests/test_gpu_run.py",
    ),
    Mutant(
        "S15 CUDA-graph cases captured without the uncaptured warm-up",
        "benchmarks/layers.py",
        "        for i in range(max(GRAPH_WARMUP_CALLS, count)):\n            call(i)\n",
        "        pass\n",
        REPORT_TESTS,
    ),
    Mutant(
        "S16 a call paired with a graph replay",
        "benchmarks/report_goals.py",
        'on = [*KEY, "run", "_replay"]  # never across runs',
        'on = [*KEY, "run"]  # never across runs',
        REPORT_TESTS,
    ),
    Mutant(
        "S17 gpu_run.sh traced: the opaque steps with the kernels traced too",
        "benchmarks/gpu_run.sh",
        "MN_REPORT_DATA=reports/raw MN_TRITON_TRACE_KERNELS=0",
        "MN_REPORT_DATA=reports/raw MN_TRITON_TRACE_KERNELS=1",
        "tests/test_gpu_run.py",
    ),
    # --- from the mutation audit of the benchmark harness and report numbers (2026-12-06):
    # its real gaps (94 mutants of measure, grid, layers, records, report_data/goals/train) ---
    Mutant(
        "B1 the bytes model at float32's element size whatever the dtype",
        "benchmarks/grid.py",
        "    return passes * numel * element_size\n",
        "    return passes * numel * 4\n",
        "tests/test_report_values.py::test_bytes_model_and_bandwidth_from_the_median",
    ),
    Mutant(
        "B2 a case's row counts bytes at float32's 4 per element (16-bit gbps doubled)",
        "benchmarks/layers.py",
        "    itemsize = DTYPES[case.dtype].itemsize\n    return records",
        "    itemsize = 4\n    return records",
        "tests/test_bench_harness.py::test_case_rows_count_bytes_at_the_cases_own_element_size",
    ),
    Mutant(
        "B3 a case's latest row picked by its timestamp's text",
        "benchmarks/report_data.py",
        'sort_values("_when", kind="stable", na_position="first")',
        'sort_values("timestamp", kind="stable", na_position="first")',
        "tests/test_report_values.py::test_the_latest_row_of_a_case_is_the_latest_in_time_not_in_text",
    ),
    Mutant(
        "B4 a row with an unreadable timestamp counts as a case's latest",
        "benchmarks/report_data.py",
        'sort_values("_when", kind="stable", na_position="first")',
        'sort_values("_when", kind="stable", na_position="last")',
        "tests/test_report_values.py::test_the_latest_row_of_a_case_is_the_latest_in_time_not_in_text",
    ),
    Mutant(
        "B5 a device's latest run is the one started last, not the one whose rows are newest",
        "benchmarks/report_data.py",
        '.agg(["min", "max"]).sort_values("max")',
        '.agg(["min", "max"]).sort_values("min")',
        "tests/test_report_values.py::test_run_group_gathers_the_parts_of_the_latest_run",
    ),
    Mutant(
        "B6 parts exactly PART_GAP apart not joined",
        "benchmarks/report_data.py",
        "    return bool(started - ended <= PART_GAP)",
        "    return bool(started - ended < PART_GAP)",
        "tests/test_report_values.py::test_run_group_gathers_the_parts_of_the_latest_run",
    ),
    Mutant(
        "B7 devices in the alphabet's order (cpu before a GPU named in lower case)",
        "benchmarks/report_data.py",
        'key=lambda d: (d == "cpu", d)',
        "key=lambda d: d",
        "tests/test_report_values.py::test_latest_run_per_device_and_cpu_last",
    ),
    Mutant(
        "B8 a goal model's step at another K counts as its goal step measured",
        "benchmarks/report_train.py",
        '(ours["exec"] == exec_mode) & (ours["K"] == k)).any()',
        '(ours["exec"] == exec_mode)).any()',
        "tests/test_report_values.py::test_a_goal_step_measured_at_another_k_alone_is_still_named_as_not_measured",
    ),
    # --- from the mutation audit of the torch-op path (2026-12-06): its five real gaps ---
    Mutant(
        "T3 MN σ² formed around P, the mean's rounded part, not μ (torch ops)",
        "mn_triton/mix.py",
        "spread = raw.sub_(residual.unsqueeze(1)).square_()",
        "spread = raw.square_()",
        "tests/test_mode_norm.py",
    ),
    Mutant(
        "T4 MGN logits keep their common part in ℓ (torch ops)",
        "mn_triton/mix.py",
        "offset = (a - a.amax(dim=1, keepdim=True)).unsqueeze(-1)",
        "offset = a.unsqueeze(-1)",
        "tests/test_mode_group_norm.py",
    ),
    Mutant(
        "T5 MGN under torch.func with the default eps",
        "mn_triton/functional.py",
        "            float(eps),\n        ).to(input.dtype)",
        "            1e-5,\n        ).to(input.dtype)",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "C1 convert takes an integer buffer's dtype for a norm without tensors",
        "mn_triton/convert.py",
        "return next((t for t in tensors if t.is_floating_point()), None)",
        "return next((t for t in tensors), None)",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "C2 update_bn restores the modes without the model's own train()",
        "mn_triton/swa.py",
        "        model.train(modes[model])  # as torch's",
        "        pass  # as torch's",
        "tests/test_ecosystem.py",
    ),
    # --- from the mutation audit of ops.py and the modules' logic (2026-12-06) ---
    Mutant(
        "U1 a new ModeGroupNorm's weight and bias left uninitialised",
        "reference/_base.py",
        "affine, 1, device, dtype, bias=bias)\n        self.reset_parameters()\n",
        "affine, 1, device, dtype, bias=bias)\n",
        "tests/test_mode_group_norm.py",
    ),
    Mutant(
        "U2 steps not counted where the running estimates were set to None",
        "reference/_base.py",
        "self.track_running_stats and self.num_batches_tracked is not None:\n",
        "self.track_running_stats and self.running_mean is not None:\n",
        "tests/test_mode_norm.py",
    ),
    Mutant(
        "U3 a gate's other forward pre-hooks skipped without a warning",
        "reference/_base.py",
        "            else:\n                skipped = True\n",
        "            else:\n                pass\n",
        "tests/test_ecosystem.py",
    ),
    Mutant(
        "U4 the backward ops' fake dx empty for an empty input without its gradient",
        "mn_triton/ops.py",
        "if input_grad or x.numel() == 0 else",
        "if input_grad else",
        "tests/test_compile.py",
    ),
    # --- from the mutation audit of the dispatch and layout code (backend.py, kernels/layout.py,
    # kernels/addressing.py; 2026-12-06): its real gaps, each closed by a test ---
    Mutant(
        "D1 CUDA tensors on the 'auto' backend run on torch ops",
        "mn_triton/backend.py",
        "    if x.is_cuda:\n        return True\n",
        '    if x.is_cuda and _backend == "triton":\n        return True\n',
        "tests/test_kernels.py::test_cuda_tensors_take_the_kernels_unless_the_torch_backend_is_asked",
    ),
    Mutant(
        "D2 64-bit indices judged by the row's length, not by where its last split ends",
        "mn_triton/kernels/layout.py",
        "        split_len * num_splits + plan.block_len,",
        "        plan.length + plan.block_len,",
        "tests/test_kernels.py::test_64_bit_indices_where_the_last_split_ends_past_2_pow_31",
    ),
    Mutant(
        "D3 the mix kernels refuse K = MAX_MODES, the largest K they take",
        "mn_triton/backend.py",
        "gate_weight.shape[0] <= _mix_kernels.MAX_MODES",
        "gate_weight.shape[0] < _mix_kernels.MAX_MODES",
        "tests/test_kernels.py::test_triton_backend_runs_every_kernel",
    ),
    Mutant(
        "D4 torch-op y in the strides arithmetic gives, not x's",
        "mn_triton/backend.py",
        "    if value.dtype == like.dtype and value.stride() == like.stride():\n"
        "        return value\n",
        "    if value.dtype == like.dtype:\n        return value\n",
        "tests/test_mode_norm.py::test_output_is_laid_out_as_the_input",
    ),
    # --- from the mutation audit of kernels/mix.py's newer code (2026-12-06) ---
    Mutant(
        "K1 samples split: as many splits as first aimed at, some of them empty",
        "mn_triton/kernels/mix.py",
        "    return cdiv(n, rows), rows\n",
        "    return splits, rows\n",
        "tests/test_kernels.py::test_mix_splits_each_hold_samples",
    ),
    Mutant(
        "K2 gates kernel sums the logits in chunks of BLOCK_C, not the mix kernels' CHUNK_C",
        "mn_triton/kernels/mix.py",
        "HAS_GATE_BIAS=gate_bias is not None, BLOCK_N=block_n, K_PAD=k_pad, CHUNK_C=chunk_c,",
        "HAS_GATE_BIAS=gate_bias is not None, BLOCK_N=block_n, K_PAD=k_pad, CHUNK_C=block_c,",
        "tests/test_kernels.py::test_gates_kernel_sums_the_logits_in_the_mix_kernels_chunks",
    ),
    Mutant(
        "K3 samples split: a split's row of partial results at an int32 offset",
        "mn_triton/kernels/mix.py",
        "    return tl.program_id(1).to(tl.int64) * SPLIT_STRIDE\n",
        "    return tl.program_id(1) * SPLIT_STRIDE\n",
        "tests/test_kernels.py::test_split_offsets_pass_2_pow_31",
    ),
    Mutant(
        "K4 a channel block's g ⊙ ∂L/∂g shares at an int32 row (programs · N)",
        "mn_triton/kernels/mix.py",
        "            nk = _row_offsets(pid.to(tl.int64) * N + rows, modes, K)\n",
        "            nk = _row_offsets(pid * N + rows, modes, K)\n",
        "tests/test_kernels.py::test_mix_row_offsets_pass_2_pow_31",
    ),
    Mutant(
        "K5 merge kernel's σ² without the spread term of processes below tiny",
        "mn_triton/kernels/mix.py",
        "gap_r * (2.0 * (held_r - mass_r) * (center_r + residual_r) + mass_r * gap_r)",
        "gap_r * (mass_r * gap_r)",
        "tests/test_sync.py::test_merge_kernel_where_every_process_holds_a_mode_below_tiny",
    ),
    Mutant(
        "K6 running estimates updated in the kernel where only the mean is dense",
        "mn_triton/kernels/mix.py",
        "    fused_update = update and running_mean.is_contiguous() and "
        "running_mean_sq.is_contiguous()\n",
        "    fused_update = update and running_mean.is_contiguous()\n",
        "tests/test_mode_norm.py::test_strided_running_estimates_are_updated_too",
    ),
    Mutant(
        "K7 running estimates updated in the kernel where only ⟨x²⟩ is dense",
        "mn_triton/kernels/mix.py",
        "    fused_update = update and running_mean.is_contiguous() and "
        "running_mean_sq.is_contiguous()\n",
        "    fused_update = update and running_mean_sq.is_contiguous()\n",
        "tests/test_mode_norm.py::test_strided_running_estimates_are_updated_too",
    ),
    Mutant(
        "K8 σ² around a mode's pivot not clamped at 0 (rounds below it)",
        "mn_triton/kernels/mix.py",
        "    return residual, _at_least(var, 0.0)\n",
        "    return residual, var\n",
        "tests/test_kernels.py::test_mode_variance_rounded_below_zero_is_clamped",
    ),
    # --- from the mutation audit of the end-to-end harness (2026-12-06): its real gaps ---
    Mutant(
        "E1 ResNet blocks' second conv with a bias (not He et al.'s 0.27 M net)",
        "benchmarks/models.py",
        "self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)",
        "self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=True)",
        "tests/test_bench_harness.py::test_resnet_parameter_counts_are_he_et_als_plus_the_projections",
    ),
    Mutant(
        "E2 ResNet's stem without its ReLU",
        "benchmarks/models.py",
        "x = self.act(self.norm(self.conv(x)))",
        "x = self.norm(self.conv(x))",
        "tests/test_bench_harness.py::test_resnet_forward_is_stem_relu_blocks_average_pool_head",
    ),
    Mutant(
        "E3 ResNet's head on global max pooling, not average",
        "benchmarks/models.py",
        "F.adaptive_avg_pool2d(x, 1)",
        "F.adaptive_max_pool2d(x, 1)",
        "tests/test_bench_harness.py::test_resnet_forward_is_stem_relu_blocks_average_pool_head",
    ),
    Mutant(
        "E4 ResNet's blocks ignore the activation asked for (test_e2e's SiLU)",
        "benchmarks/models.py",
        "stages.append(BasicBlock(in_planes, planes, stride, norm, activation))",
        "stages.append(BasicBlock(in_planes, planes, stride, norm))",
        "tests/test_bench_harness.py::test_every_layer_of_a_net_takes_the_activation_asked_for",
    ),
    Mutant(
        "E5 LeNet's head without its bias",
        "benchmarks/models.py",
        "self.head = nn.Linear(f2, num_classes)",
        "self.head = nn.Linear(f2, num_classes, bias=False)",
        "tests/test_bench_harness.py::test_lenet_parameter_count_is_lenet5s_with_four_norm_layers",
    ),
    Mutant(
        "E6 a compiled training step runs eagerly",
        "benchmarks/train_step.py",
        "        loss_fn = torch.compile(loss_fn)\n",
        "        pass\n",
        "tests/test_bench_harness.py::test_step_compiles_model_and_loss_as_its_exec_mode_says",
    ),
    Mutant(
        "E7 a CUDA-graph training step compiled without mode=reduce-overhead",
        "benchmarks/train_step.py",
        'loss_fn = torch.compile(loss_fn, mode="reduce-overhead")',
        "loss_fn = torch.compile(loss_fn)",
        "tests/test_bench_harness.py::test_step_compiles_model_and_loss_as_its_exec_mode_says",
    ),
    Mutant(
        "E8 CUDA-graph steps not marked as new iterations",
        "benchmarks/train_step.py",
        'new_graph_step = exec_mode == "cudagraph"',
        "new_graph_step = False",
        "tests/test_bench_harness.py::test_step_compiles_model_and_loss_as_its_exec_mode_says",
    ),
    Mutant(
        "E9 real data's labels not shuffled with their images",
        "benchmarks/train_step.py",
        "labels[pick[:wanted]].split(settings.batch)",
        "labels[:wanted].split(settings.batch)",
        "tests/test_bench_harness.py::test_load_batches_keeps_each_label_with_its_image_and_standardises",
    ),
    Mutant(
        "E10 real data not standardised",
        "benchmarks/train_step.py",
        "    images = (images - mean) / images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)\n",
        "",
        "tests/test_bench_harness.py::test_load_batches_keeps_each_label_with_its_image_and_standardises",
    ),
    Mutant(
        "E11 setup_s taken before the first step's device work ends",
        "benchmarks/train_step.py",
        "        torch.cuda.synchronize(device)\n    setup_s = time.perf_counter() - started\n",
        "        pass\n    setup_s = time.perf_counter() - started\n",
        "tests/test_bench_harness.py::test_measure_variant_times_the_first_step_to_its_end_on_cuda",
    ),
    Mutant(
        "E12 mn_triton rows say torch_ops even where the kernels run",
        "benchmarks/train_step.py",
        'if provider == "triton" and not mn_backend.uses_kernels(torch.empty(0, device=device)):',
        'if provider == "triton":',
        "tests/test_bench_harness.py::test_provider_says_triton_only_where_its_kernels_run",
    ),
    Mutant(
        "E13 variants planned in --execs' order, not eager first",
        "benchmarks/train_step.py",
        'order = [e for e in ("eager", "compiled", "cudagraph") if e in execs]',
        "order = list(execs)",
        "tests/test_bench_harness.py::test_plan_runs_eager_first_whatever_order_the_execs_are_given_in",
    ),
    Mutant(
        "E14 compile guesses from the fastest compile seen",
        "benchmarks/train_step.py",
        "min(max(ratios, default=1.0), 3.0)",
        "min(min(ratios, default=1.0), 3.0)",
        "tests/test_bench_harness.py::test_compile_guesses_follow_the_slowest_compile_seen",
    ),
    Mutant(
        "E15 a group's guess from its last variant, not its slowest",
        "benchmarks/train_step.py",
        "seen[key] = max(took, seen.get(key, 0.0))",
        "seen[key] = took",
        "tests/test_bench_harness.py::test_budget_counts_the_time_spent_and_a_groups_slowest_variant",
    ),
    Mutant(
        "E16 the budget ignores the time already spent",
        "benchmarks/train_step.py",
        "if dropped or time.perf_counter() - start + needed > max_seconds:",
        "if dropped or needed > max_seconds:",
        "tests/test_bench_harness.py::test_budget_counts_the_time_spent_and_a_groups_slowest_variant",
    ),
    Mutant(
        "E17 the log's overhead against eager BatchNorm whatever the exec mode",
        "benchmarks/train_step.py",
        'base = {(r["model"], r["exec"]): r["ms_p50"]',
        'base = {(r["model"], "eager"): r["ms_p50"]',
        "tests/test_bench_harness.py::test_overhead_lines_take_batchnorm_of_the_rows_own_exec_mode",
    ),
    Mutant(
        "E18 --quick on CUDA runs compiled and CUDA-graph steps too",
        "benchmarks/train_step.py",
        '    if args.quick or device.type != "cuda":\n        return ["eager"]',
        '    if device.type != "cuda":\n        return ["eager"]',
        "tests/test_bench_harness.py::test_cli_execs_and_time_cap_per_variant",
    ),
    Mutant(
        "E19 --execs cudagraph accepted on a CPU",
        "benchmarks/train_step.py",
        'if bad or ("cudagraph" in execs and device.type != "cuda"):',
        "if bad:",
        "tests/test_bench_harness.py::test_cli_execs_and_time_cap_per_variant",
    ),
    Mutant(
        "E20 a full run caps each variant's timed steps at 10 s",
        "benchmarks/train_step.py",
        "max_seconds_per_variant=10.0 if quick else 120.0,",
        "max_seconds_per_variant=10.0,",
        "tests/test_bench_harness.py::test_cli_execs_and_time_cap_per_variant",
    ),
    Mutant(
        "E21 train_step exits 0 after a variant failed",
        "benchmarks/train_step.py",
        "    return 1 if result.failed else 0\n\n\nif __name__",
        "    return 0\n\n\nif __name__",
        "tests/test_bench_harness.py::test_main_fails_when_a_variant_failed",
    ),
    Mutant(
        "E22 dynamo not reset between compiled variants",
        "benchmarks/train_step.py",
        '    if variant.exec != "eager":\n        torch._dynamo.reset()\n',
        "",
        "tests/test_bench_harness.py::test_release_resets_dynamo_after_a_compiled_variant",
    ),
    Mutant(
        "E23 step_profile profiles a freshly built step, not the timed one",
        "benchmarks/step_profile.py",
        "        lambda i: step(*batches[i % len(batches)]), profile_count",
        "        lambda i: train_step.build_variant(variant, settings, device)(\n"
        "            *batches[i % len(batches)]), profile_count",
        "tests/test_step_profile.py::test_profile_variant_profiles_the_step_it_timed",
    ),
    Mutant(
        "E24 step_profile times 50 steps on a GPU, not 20",
        "benchmarks/step_profile.py",
        "steps=args.steps or (5 if quick else 20),",
        "steps=args.steps or (5 if quick else 50),",
        "tests/test_step_profile.py::test_cli_on_a_gpu_times_20_steps_after_10_warm_up_at_batch_128",
    ),
    Mutant(
        "E25 the profiler stops before the profiled steps' device work ends",
        "benchmarks/step_profile.py",
        '                run_step(i)\n            if device.type == "cuda":\n'
        "                torch.cuda.synchronize(device)\n",
        "                run_step(i)\n",
        "tests/test_step_profile.py::test_profile_window_holds_the_profiled_steps_device_work",
    ),
    Mutant(
        "E26 host_overhead leaves TRACE_KERNELS as the last timing set it",
        "benchmarks/host_overhead.py",
        "        ops.TRACE_KERNELS = saved\n",
        "",
        "tests/test_benchmarks.py::test_host_overhead_compiles_each_way_afresh",
    ),
    Mutant(
        "E27 warm_kernels warms the steps at batch 32, not the benchmark's 128",
        "benchmarks/warm_kernels.py",
        "TRAIN_BATCH = 128",
        "TRAIN_BATCH = 32",
        "tests/test_gpu_run.py::test_kernel_warm_up_steps_take_the_benchmarks_batch",
    ),
    Mutant(
        "E28 split_timing's no split / split ratio upside down",
        "benchmarks/split_timing.py",
        "{times['no split'] / times['split']:16.2f}",
        "{times['split'] / times['no split']:16.2f}",
        "tests/test_benchmarks.py::test_split_timing_prints_each_ratio_the_right_way_up",
    ),
    Mutant(
        "E29 split_timing's steps add into the last step's gradients",
        "benchmarks/split_timing.py",
        "            leaf.grad = None\n        layer(x).backward(dy)\n",
        "            pass\n        layer(x).backward(dy)\n",
        "tests/test_benchmarks.py::test_split_timing_steps_start_from_no_gradients",
    ),
    # --- from the mutation audit of the memory checks (tests/memcheck.py, tests/poison.py,
    # 2026-12-06): the gaps of their own tests ---
    Mutant(
        "W1 memcheck: an element need only start inside its tensor, not end there",
        "tests/memcheck.py",
        "(addresses + size <= end)",
        "(addresses < end)",
        "tests/test_memcheck.py::test_an_element_must_fit_whole_inside_its_tensor",
    ),
    Mutant(
        "W2 memcheck: every access's elements counted as 1 byte wide",
        "tests/memcheck.py",
        "size = ptrs.get_element_ty().primitive_bitwidth // 8",
        "size = 1",
        "tests/test_memcheck.py::test_an_element_must_fit_whole_inside_its_tensor",
    ),
    Mutant(
        "W3 memcheck: a program's id is its grid x alone (races along y and z unseen)",
        "tests/memcheck.py",
        "_program = (x * self.grid_dim[1] + y) * self.grid_dim[2] + z",
        "_program = x",
        "tests/test_memcheck.py::test_programs_differing_along_any_grid_axis_race",
    ),
    Mutant(
        "W4 memcheck: a program's id ignores its grid z",
        "tests/memcheck.py",
        "_program = (x * self.grid_dim[1] + y) * self.grid_dim[2] + z",
        "_program = x * self.grid_dim[1] + y",
        "tests/test_memcheck.py::test_programs_differing_along_any_grid_axis_race",
    ),
    Mutant(
        "W5 memcheck: a program's id adds y and z (programs (0, 1, 0) and (0, 0, 1) one)",
        "tests/memcheck.py",
        "_program = (x * self.grid_dim[1] + y) * self.grid_dim[2] + z",
        "_program = x * self.grid_dim[1] + y + z",
        "tests/test_memcheck.py::test_programs_differing_along_any_grid_axis_race",
    ),
    Mutant(
        "W6 memcheck: stores sorted by program first (a shared element of two blocks unseen)",
        "tests/memcheck.py",
        "order = np.lexsort((writers, stored))",
        "order = np.lexsort((stored, writers))",
        "tests/test_memcheck.py::test_overlapping_blocks_of_two_programs_race",
    ),
    Mutant(
        "W7 memcheck: stores left in launch order (a shared element of two blocks unseen)",
        "tests/memcheck.py",
        "order = np.lexsort((writers, stored))",
        "order = np.arange(stored.size)",
        "tests/test_memcheck.py::test_overlapping_blocks_of_two_programs_race",
    ),
    Mutant(
        "W8 memcheck: a stored element's writer taken from the unsorted, repeated list",
        "tests/memcheck.py",
        "    writers = writers[first]\n",
        "    writers = writers[: stored.size]\n",
        "tests/test_memcheck.py::test_shared_reads_and_a_programs_own_stores_and_reloads_pass",
    ),
    Mutant(
        "W9 memcheck: a load races where the nearest store is another program's, at any address",
        "tests/memcheck.py",
        "crossed = (stored[at] == loaded) & (writers[at] != readers)",
        "crossed = writers[at] != readers",
        "tests/test_memcheck.py::test_shared_reads_and_a_programs_own_stores_and_reloads_pass",
    ),
    Mutant(
        "W10 memcheck: listeners never called",
        "tests/memcheck.py",
        "                listener(self.fn.__name__, grid, _accesses)",
        "                pass",
        "tests/test_memcheck.py::test_listeners_see_each_launchs_name_grid_and_accesses",
    ),
    Mutant(
        "W11 memcheck: listeners get no grid",
        "tests/memcheck.py",
        "grid = tuple(self.grid) if isinstance(self.grid, (tuple, list)) else ()",
        "grid = ()",
        "tests/test_memcheck.py::test_listeners_see_each_launchs_name_grid_and_accesses",
    ),
    Mutant(
        "W12 memcheck: tensors passed by keyword are no arguments",
        "tests/memcheck.py",
        "_tensors([args_hst, kwargs_hst])",
        "_tensors(args_hst)",
        "tests/test_memcheck.py::test_tensors_passed_by_keyword_are_arguments",
    ),
    Mutant(
        "W13 memcheck: dicts of arguments not walked",
        "tests/memcheck.py",
        "    if isinstance(args, dict):\n        return _tensors(list(args.values()))\n",
        "",
        "tests/test_memcheck.py::test_tensors_passed_by_keyword_are_arguments",
    ),
    Mutant(
        "W14 memcheck: extents of earlier launches kept",
        "tests/memcheck.py",
        "_extents[:] = [tensor_extent(t)",
        "_extents[len(_extents):] = [tensor_extent(t)",
        "tests/test_memcheck.py::test_the_extents_are_the_launchs_own",
    ),
    Mutant(
        "W15 memcheck: tensors in a tuple argument are no arguments",
        "tests/memcheck.py",
        "isinstance(args, (list, tuple))",
        "isinstance(args, list)",
        "tests/test_memcheck.py::test_tensors_in_a_tuple_argument_are_arguments",
    ),
    Mutant(
        "W16 poison: any module whose name starts with mn_triton poisoned",
        "tests/poison.py",
        'name.split(".")[0] in OURS',
        "name.startswith(OURS)",
        "tests/test_poison.py::test_mn_tritons_float_allocations_are_nan_and_nobody_elses_are_touched",
    ),
    Mutant(
        "W17 poison: only float32 and float64 poisoned (half widths not)",
        "tests/poison.py",
        "t.is_floating_point()",
        "t.dtype in (torch.float32, torch.float64)",
        "tests/test_poison.py::test_mn_tritons_float_allocations_are_nan_and_nobody_elses_are_touched",
    ),
    Mutant(
        "W18 poison: allocations poisoned in code dynamo traces",
        "tests/poison.py",
        "            not torch.compiler.is_compiling()\n            and ",
        "            ",
        "tests/test_poison.py::test_code_that_dynamo_traces_is_left_alone",
    ),
    # --- from the mutation audit of reference/ (2026-12-06) ---
    Mutant(
        "G4 eval reads float32 estimates in float32 for float64 input (μ² rounds)",
        "reference/functional.py",
        "            mean = running_mean[k].to(dtype)\n",
        "            mean = running_mean[k]\n",
        "tests/test_reference.py::test_float64_input_reads_float32_estimates_in_float64",
    ),
    Mutant(
        "G5 reference mode_norm's default momentum 0.2",
        "reference/functional.py",
        "    momentum: float | Tensor = 0.1,\n",
        "    momentum: float | Tensor = 0.2,\n",
        "tests/test_errors.py::test_functional_forms_have_the_same_signatures",
    ),
    Mutant(
        "G6 reference mode_norm trains by default",
        "reference/functional.py",
        "    training: bool = False,\n",
        "    training: bool = True,\n",
        "tests/test_errors.py::test_functional_forms_have_the_same_signatures",
    ),
    Mutant(
        "G7 reference mode_group_norm's default eps 1e-3",
        "reference/functional.py",
        '    eps: float = 1e-5,\n) -> Tensor:\n    """Mode Group',
        '    eps: float = 1e-3,\n) -> Tensor:\n    """Mode Group',
        "tests/test_errors.py::test_functional_forms_have_the_same_signatures",
    ),
    Mutant(
        "G8 reference MGN statistics in the input's 16-bit dtype",
        "reference/functional.py",
        "    dtype = stat_dtype(input.dtype)\n"
        "    x = input.to(dtype)\n    n_modes = gate_weight.shape[0]\n    per_channel",
        "    dtype = input.dtype\n"
        "    x = input.to(dtype)\n    n_modes = gate_weight.shape[0]\n    per_channel",
        "tests/test_reference.py::test_half_input_at_a_large_offset_takes_float32_statistics",
    ),
    Mutant(
        "G9 reference's __all__ leaves out ModeGroupNorm3d",
        "reference/__init__.py",
        '    "ModeGroupNorm3d",\n]',
        "]",
        "tests/test_reference.py::test_exports_every_layer_mn_triton_exports",
    ),
    Mutant(
        "G10 estimates with a stride-0 dim of size 1 refused as shared",
        "reference/_base.py",
        "if any(stride == 0 and size > 1 for",
        "if any(stride == 0 and size >= 1 for",
        "tests/test_errors.py::test_estimates_with_a_stride_0_dim_of_size_1_are_trained",
    ),
    Mutant(
        "G11 a layer keeps eps as given (a numpy scalar, a tensor), not as a float",
        "reference/_base.py",
        "        self.eps = float(eps)\n",
        "        self.eps = eps\n",
        "tests/test_errors.py::test_constructor_takes_numbers_of_any_kind",
    ),
    Mutant(
        "G12 eval without running estimates leaves the one-value refusal to the functional form "
        "(its message names mode_norm, not the layer)",
        "reference/_base.py",
        "        if use_batch_stats:\n",
        "        if self.training:\n",
        "tests/test_errors.py::test_one_value_per_channel_without_running_stats_even_in_eval",
    ),
    # --- the pass kernels' audit (kernels/moments.py, kernels/apply.py) ---
    Mutant(
        "V1 row_moments asks for 64-bit indices by the row's length, not where its last split ends",
        "mn_triton/kernels/moments.py",
        "        INDEX_64=needs_64_bit_indices(plan, split_len, num_splits),\n"
        "        num_warps=plan.num_warps,\n"
        "        enable_fp_fusion=FP_FUSION,\n"
        "    )  # fmt: skip\n"
        "    mean, var",
        "        INDEX_64=needs_64_bit_indices(plan),\n"
        "        num_warps=plan.num_warps,\n"
        "        enable_fp_fusion=FP_FUSION,\n"
        "    )  # fmt: skip\n"
        "    mean, var",
        "tests/test_kernels.py::test_index_counts_beyond_2_pow_31",
    ),
    Mutant(
        "V2 row_grad_sums asks for 64-bit indices by the row's length, not where its last split "
        "ends",
        "mn_triton/kernels/moments.py",
        "        INDEX_64=needs_64_bit_indices(plan, split_len, num_splits),\n"
        "        num_warps=plan.num_warps,\n"
        "        enable_fp_fusion=FP_FUSION,\n"
        "    )  # fmt: skip\n"
        "    return _merge",
        "        INDEX_64=needs_64_bit_indices(plan),\n"
        "        num_warps=plan.num_warps,\n"
        "        enable_fp_fusion=FP_FUSION,\n"
        "    )  # fmt: skip\n"
        "    return _merge",
        "tests/test_kernels.py::test_index_counts_beyond_2_pow_31",
    ),
    Mutant(
        "V3 row_affine indexes a strided bias as if dense",
        "mn_triton/kernels/apply.py",
        "shift, x_scale, bias = shift.contiguous(), x_scale.contiguous(), bias.contiguous()",
        "shift, x_scale, bias = shift.contiguous(), x_scale.contiguous(), bias",
        "tests/test_kernels.py::test_row_affine_takes_strided_coefficients",
    ),
    Mutant(
        "V4 the rows' shift is their first value again (kernels)",
        "mn_triton/kernels/moments.py",
        "        shift = tl.maximum(low, tl.minimum(high, last))",
        "        shift = first",
        "tests/test_mode_norm.py::test_an_outlying_value_where_the_shift_is_taken_costs_no_digits",
    ),
    Mutant(
        "V5 the rows' shift is their first value again (torch ops)",
        "mn_triton/backend.py",
        "        torch.minimum(first, middle), torch.minimum(torch.maximum(first, middle), last)",
        "        first, first",
        "tests/test_mode_norm.py::test_an_outlying_value_where_the_shift_is_taken_costs_no_digits",
    ),
    Mutant(
        "V6 the rows' shift reads the middle value one position off (kernels)",
        "mn_triton/kernels/moments.py",
        "    positions = tl.where(probe == 0, length // 2, length - 1)",
        "    positions = tl.where(probe == 0, length // 2 + 1, length - 1)",
        "tests/test_kernels.py",
    ),
    Mutant(
        "V7 MN's mode pivots summed relative to sample 0's shift again (torch ops)",
        "mn_triton/mix.py",
        "    center = weights.T @ (shift + mean_dev)  #",
        "    center = shift[:1] * _coverage(mass).unsqueeze(1)"
        " + weights.T @ ((shift - shift[:1]) + mean_dev)  #",
        "tests/test_mode_norm.py::test_a_mode_far_from_sample_0_keeps_its_digits",
    ),
    Mutant(
        "V8 MN's mode pivots summed relative to sample 0's shift again (kernels)",
        "mn_triton/kernels/mix.py",
        "        b_mean = tl.sum(g[:, :, None] * m[:, None, :], axis=0)"
        " / _nonzero(b_mass)[:, None]",
        "        first = tl.load(SHIFT + cols, mask=col_ok, other=0.0)[None, :]\n"
        "        b_mean = first + tl.sum(g[:, :, None] * (m - first)[:, None, :], axis=0)"
        " / _nonzero(b_mass)[:, None]",
        "tests/test_mode_norm.py::test_a_mode_far_from_sample_0_keeps_its_digits",
    ),
    Mutant(
        "V9 MGN's pivot is the shift nearest the mean of the shifts again (torch ops)",
        "mn_triton/mix.py",
        "    size = shift.abs()",
        "    size = (shift - shift.mean(dim=1, keepdim=True)).abs_()",
        "tests/test_mode_group_norm.py::test_channels_in_two_far_clusters_keep_their_digits",
    ),
    Mutant(
        "V10 MGN's pivot is the shift farthest from 0 (kernels)",
        "mn_triton/kernels/mix.py",
        "        size = tl.abs(s)",
        "        size = -tl.abs(s)",
        "tests/test_mode_group_norm.py::test_channels_in_two_far_clusters_keep_their_digits",
    ),
    Mutant(
        "V11 rows of one element: dx's terms summed over the modes first again (torch ops)",
        "mn_triton/mix.py",
        "        if length == 1:  # x − m = 0",
        "        if length == 0:  # x − m = 0",
        "tests/test_mode_norm.py::test_modes_one_feature_sample_holds_alone_keep_its_gradient",
    ),
    Mutant(
        "V12 rows of one element: dx's terms summed over the modes first again (kernels)",
        "mn_triton/kernels/mix.py",
        "            if ONE_ELEMENT:  # x − m = 0",
        "            if ONE_ELEMENT and False:  # x − m = 0",
        "tests/test_mode_norm.py::test_modes_one_feature_sample_holds_alone_keep_its_gradient",
    ),
    Mutant(
        "V13 rows of one element: the kernels' own terms add w·Σ g·db instead of subtracting",
        "mn_triton/kernels/mix.py",
        "    own = tl.fma(-w[:, :, None], g_db[None, :, :], g[:, :, None] * db[:, None, :])",
        "    own = tl.fma(w[:, :, None], g_db[None, :, :], g[:, :, None] * db[:, None, :])",
        "tests/test_mode_norm.py::test_modes_one_feature_sample_holds_alone_keep_its_gradient",
    ),
    # --- from the mutation audit of the tests' yardstick (tests/helpers.py, conftest;
    # 2026-12-06) ---
    Mutant(
        "H1 rel_err relative to the result's norm, not the reference's",
        "tests/helpers.py",
        "    denom = expected.norm().item()\n",
        "    denom = actual.norm().item()\n",
        "tests/test_helpers.py::test_rel_err_on_known_values",
    ),
    Mutant(
        "H2 rel_err compares magnitudes (a wrong sign passes)",
        "tests/helpers.py",
        "    diff = (actual - expected).norm().item()",
        "    diff = (actual.abs() - expected.abs()).norm().item()",
        "tests/test_helpers.py::test_rel_err_on_known_values",
    ),
    Mutant(
        "H3 rel_err in float32 (float64 results round to the same value: 1e-10 cannot fail)",
        "tests/helpers.py",
        "    actual, expected = actual.double().cpu(), expected.double().cpu()",
        "    actual, expected = actual.float().cpu(), expected.float().cpu()",
        "tests/test_helpers.py::test_rel_err_on_known_values",
    ),
    Mutant(
        "H4 rel_err 0 against a reference of 0 (anything passes there)",
        "tests/helpers.py",
        "    return diff / denom if denom > 0 else diff",
        "    return diff / denom if denom > 0 else 0.0",
        "tests/test_helpers.py::test_rel_err_on_known_values",
    ),
    Mutant(
        "H5 rel_err drops NaN and inf",
        "tests/helpers.py",
        "    diff = (actual - expected).norm().item()",
        "    diff = (actual - expected).nan_to_num().norm().item()",
        "tests/test_helpers.py::test_rel_err_on_known_values",
    ),
    Mutant(
        "H6 assert_close passes NaN",
        "tests/helpers.py",
        "    assert err <= tol, f",
        "    assert not err > tol, f",
        "tests/test_helpers.py::test_assert_close_fails_beyond_its_tolerance_and_on_any_nan_or_shape",
    ),
    Mutant(
        "H7 assert_close compares sizes, not shapes (broadcasting then hides a wrong shape)",
        "tests/helpers.py",
        '    assert actual.shape == expected.shape, f"{what}: shape',
        '    assert actual.numel() == expected.numel(), f"{what}: shape',
        "tests/test_helpers.py::test_assert_close_fails_beyond_its_tolerance_and_on_any_nan_or_shape",
    ),
    Mutant(
        "H8 assert_close 10× loose",
        "tests/helpers.py",
        "    assert err <= tol, f",
        "    assert err <= 10 * tol, f",
        "tests/test_helpers.py::test_assert_close_fails_beyond_its_tolerance_and_on_any_nan_or_shape",
    ),
    Mutant(
        "H9 float16's tolerance 10× SPEC §5's",
        "tests/helpers.py",
        "    torch.float16: 2e-3,",
        "    torch.float16: 2e-2,",
        "tests/test_helpers.py::test_tolerances_are_spec_5s",
    ),
    Mutant(
        "H10 float64's tolerance 1e-6",
        "tests/helpers.py",
        "    torch.float64: 1e-10,",
        "    torch.float64: 1e-6,",
        "tests/test_helpers.py::test_tolerances_are_spec_5s",
    ),
    Mutant(
        "H11 bfloat16's tolerance 4 ulps over SPEC §5's",
        "tests/helpers.py",
        "1e-2 + (BF16_ULP if INTERPRETING else 0.0)",
        "1e-2 + 4 * BF16_ULP",
        "tests/test_helpers.py::test_tolerances_are_spec_5s",
    ),
    Mutant(
        "H12 embed's view at offset 0",
        "tests/helpers.py",
        "slice(p, p + s) for s, p",
        "slice(0, s) for s, p",
        "tests/test_helpers.py::test_embed_is_an_offset_strided_view_of_the_same_values",
    ),
    Mutant(
        "H13 batch_transposed transposes the last two dims (non-contiguous, samples not fastest)",
        "tests/helpers.py",
        "    return t.transpose(0, 1).contiguous().transpose(0, 1)",
        "    return t.transpose(-1, -2).contiguous().transpose(-1, -2)",
        "tests/test_helpers.py::test_batch_transposed_puts_samples_fastest",
    ),
    Mutant(
        "H14 tiny_tiles sets nothing (small shapes then take one tile, one program)",
        "tests/helpers.py",
        "        setattr(module, name, tiny)\n",
        "        pass\n",
        "tests/test_helpers.py::test_tiny_tiles_sets_its_sizes_and_puts_them_back",
    ),
    Mutant(
        "H15 tiny_tiles leaves MN's mix kernels unsplit over samples",
        "tests/helpers.py",
        "(16, 8, 0, 4), strict=True",
        "(16, 8, 0, 4096), strict=True",
        "tests/test_helpers.py::test_tiny_tiles_sets_its_sizes_and_puts_them_back",
    ),
    Mutant(
        "H16 tiny_tiles never computes the gates once (the gates kernel's threshold left high)",
        "tests/helpers.py",
        "(16, 8, 0, 4), strict=True",
        "(16, 8, 1 << 30, 4), strict=True",
        "tests/test_helpers.py::test_tiny_tiles_sets_its_sizes_and_puts_them_back",
    ),
    Mutant(
        "H17 tiny_tiles does not put the sizes back",
        "tests/helpers.py",
        "        for module, name, value in zip(modules, names, saved, strict=True):\n"
        "            setattr(module, name, value)\n",
        "        pass\n",
        "tests/test_helpers.py::test_tiny_tiles_sets_its_sizes_and_puts_them_back",
    ),
    Mutant(
        "H18 randomize leaves the affine weight at 1",
        "tests/helpers.py",
        "            module.weight.normal_(1.0, 0.5)\n",
        "            module.weight.fill_(1.0)\n",
        "tests/test_helpers.py::test_randomize_draws_every_parameter_and_estimate",
    ),
    Mutant(
        "H19 randomize leaves the running means at 0",
        "tests/helpers.py",
        "            module.running_mean.normal_(0.0, 1.0)\n",
        "            module.running_mean.zero_()\n",
        "tests/test_helpers.py::test_randomize_draws_every_parameter_and_estimate",
    ),
    Mutant(
        "H20 randomize ignores gate_scale (gates nearly uniform)",
        "tests/helpers.py",
        "        module.gate.weight.normal_(0.0, gate_scale)\n",
        "        module.gate.weight.normal_(0.0, 1e-3)\n",
        "tests/test_helpers.py::test_randomize_draws_every_parameter_and_estimate",
    ),
    Mutant(
        "H21 randomize leaves the affine bias at 0",
        "tests/helpers.py",
        "            module.bias.normal_(0.0, 0.5)\n",
        "            pass\n",
        "tests/test_helpers.py::test_randomize_draws_every_parameter_and_estimate",
    ),
    Mutant(
        "H22 forward_backward adds to the gradients of an earlier call",
        "tests/helpers.py",
        "    module.zero_grad(set_to_none=True)\n",
        "",
        "tests/test_helpers.py::test_forward_backward_gives_every_gradient_for_dy_afresh",
    ),
    Mutant(
        "H23 OracleError.within passes NaN",
        "tests/helpers.py",
        "        if not self.err <= self.bound:",
        "        if self.err > self.bound:",
        "tests/test_helpers.py::test_oracle_errors_judge_nan_and_capped_gate_bounds",
    ),
    Mutant(
        "H24 gate gradients that should vanish bounded by 1e-2 of their scale",
        "tests/helpers.py",
        '            errors.append(OracleError(f"grad of {name} (should vanish)", size, 1e-5))',
        '            errors.append(OracleError(f"grad of {name} (should vanish)", size, 1e-2))',
        "tests/test_helpers.py::test_the_oracle_flags_gate_gradients_that_should_vanish",
    ),
    Mutant(
        "H25 the oracle never checks the running estimates",
        "tests/helpers.py",
        '    if getattr(module, "running_mean", None) is not None:\n        for name in',
        '    if getattr(module, "running_means", None) is not None:\n        for name in',
        "tests/test_helpers.py::test_the_oracle_flags_each_quantity_off_by_10_tolerances",
    ),
    Mutant(
        "H26 check_against_oracle checks the output only",
        "tests/helpers.py",
        "    for e in oracle_errors(module, x, gates_matter):\n        assert e.within(), str(e)",
        "    for e in oracle_errors(module, x, gates_matter)[:1]:\n"
        "        assert e.within(), str(e)",
        "tests/test_helpers.py::test_the_oracle_flags_each_quantity_off_by_10_tolerances",
    ),
    Mutant(
        "H27 check_equals_native compares our gradients with themselves",
        "tests/helpers.py",
        '        assert_close(grads1[name], grads2[name], tol, f"grad of {name}")',
        '        assert_close(grads1[name], grads1[name], tol, f"grad of {name}")',
        "tests/test_helpers.py::test_check_equals_native_flags_each_quantity",
    ),
    Mutant(
        "H28 check_equals_native skips the input gradient",
        "tests/helpers.py",
        '    for name in ("input", "weight", "bias"):',
        '    for name in ("weight", "bias"):',
        "tests/test_helpers.py::test_check_equals_native_flags_each_quantity",
    ),
    Mutant(
        "H29 assert_same_point_results allows 1000 roundings of dx",
        "tests/helpers.py",
        "            tol = 2 * torch.finfo(b.dtype).eps * max(dx_terms)",
        "            tol = 2e3 * torch.finfo(b.dtype).eps * max(dx_terms)",
        "tests/test_helpers.py::test_assert_same_point_results_allows_one_rounding_of_dx_only",
    ),
    Mutant(
        "H30 assert_same_point_results: close, not the same bits",
        "tests/helpers.py",
        "a is b or torch.equal(a, b)",
        "a is b or torch.allclose(a, b, equal_nan=True)",
        "tests/test_helpers.py::test_assert_same_point_results_allows_one_rounding_of_dx_only",
    ),
    Mutant(
        "H31 assert_same_point_results: results left over unchecked",
        "tests/helpers.py",
        "    for i, (a, b) in enumerate(zip(skipped, full, strict=True)):",
        "    for i, (a, b) in enumerate(zip(skipped, full)):",
        "tests/test_helpers.py::test_assert_same_point_results_allows_one_rounding_of_dx_only",
    ),
    Mutant(
        "H32 conftest: no test seeds its draws",
        "tests/conftest.py",
        "    torch.manual_seed(seed)\n",
        "",
        "tests/test_helpers.py::test_each_test_draws_from_its_own_seed",
    ),
    Mutant(
        "H33 conftest: MN_TEST_SEED redraws nothing",
        "tests/conftest.py",
        ' ^ int(os.environ.get("MN_TEST_SEED", "0"))',
        "",
        "tests/test_helpers.py::test_fixtures_redraw_and_refuse_a_backend_left_behind",
    ),
    Mutant(
        "H34 conftest: every test draws the same data",
        "tests/conftest.py",
        "    seed = zlib.crc32(request.node.nodeid.encode()) ^ int",
        "    seed = 0 ^ int",
        "tests/test_helpers.py::test_each_test_draws_from_its_own_seed",
    ),
    Mutant(
        "H35 conftest: a backend left behind passes",
        "tests/conftest.py",
        '    if left != "auto":',
        "    if False:",
        "tests/test_helpers.py::test_fixtures_redraw_and_refuse_a_backend_left_behind",
    ),
    Mutant(
        "H36 conftest: the tiny_tiles fixture sets nothing",
        "tests/conftest.py",
        "    with helpers.tiny_tiles():\n        yield",
        "    yield",
        "tests/test_helpers.py::test_the_tiny_tiles_fixture_sets_them",
    ),
    # --- from the mutation audit of the evidence tools (fuzz, fuzz_sync, compile_check,
    # mix_traffic; 2026-12-06) ---
    Mutant(
        "J1 fuzz: a NaN error's excess is NaN, left out of the table of worst errors",
        "tools/fuzz.py",
        '    if e.err != e.err:\n        return float("inf")\n',
        "",
        "tests/test_fuzz.py::test_run_counts_labels_and_replays_the_draw_that_was_over",
    ),
    Mutant(
        "J2 fuzz: a draw with an error OVER and one ill-conditioned counted ill-conditioned",
        "tools/fuzz.py",
        'for v in ("OVER", "ill-conditioned", "gate tail") if v in verdicts',
        'for v in ("ill-conditioned", "OVER", "gate tail") if v in verdicts',
        "tests/test_fuzz.py::test_run_counts_labels_and_replays_the_draw_that_was_over",
    ),
    Mutant(
        "J3 fuzz: exit status 0 whatever was over",
        "tools/fuzz.py",
        "sys.exit(1 if run(args) else 0)",
        "sys.exit(0 if run(args) is None else 0)",
        "tests/test_fuzz.py::test_the_exit_status_says_whether_a_draw_was_over",
    ),
    Mutant(
        "J4 fuzz: --seed ignored (draw i is seed i)",
        "tools/fuzz.py",
        "d = draw(args.seed + i)",
        "d = draw(i)",
        "tests/test_fuzz.py::test_run_counts_labels_and_replays_the_draw_that_was_over",
    ),
    Mutant(
        "J5 fuzz: the replay command names the run's first seed, not the draw's",
        "tools/fuzz.py",
        "--seed {d.seed} --draws 1",
        "--seed {args.seed} --draws 1",
        "tests/test_fuzz.py::test_run_counts_labels_and_replays_the_draw_that_was_over",
    ),
    Mutant(
        "J6 fuzz: the table of worst errors names the run's first seed",
        "tools/fuzz.py",
        "worst[e.what] = (excess(e), d.seed)",
        "worst[e.what] = (excess(e), args.seed)",
        "tests/test_fuzz.py::test_run_counts_labels_and_replays_the_draw_that_was_over",
    ),
    Mutant(
        "J7 fuzz: channels_last drawn for 3-d inputs only",
        "tools/fuzz.py",
        '["channels_last"] * (len(shape) >= 4)',
        '["channels_last"] * (len(shape) >= 5)',
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J8 fuzz: offsets of 1e4 never drawn",
        "tools/fuzz.py",
        '((1e4,) if dtype == "float32" else ())',
        '(() if dtype == "float32" else ())',
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J9 fuzz: bfloat16 never drawn",
        "tools/fuzz.py",
        'DTYPES = ("float32",) * 6 + ("float16", "bfloat16")',
        'DTYPES = ("float32",) * 6 + ("float16", "float16")',
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J10 fuzz: K = 16 never drawn",
        "tools/fuzz.py",
        "num_modes=rng.choice((1, 2, 2, 3, 4, 8, 16))",
        "num_modes=rng.choice((1, 2, 2, 3, 4, 8, 8))",
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J11 fuzz: wide features (C > 9) never drawn",
        "tools/fuzz.py",
        "rng.randint(1, 9 if rng.random() < 0.85 else 40)",
        "rng.randint(1, 9 if rng.random() < 0.85 else 9)",
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J12 fuzz: momentum=None never drawn",
        "tools/fuzz.py",
        "momentum=rng.choice((0.1, 0.1, 0.5, None))",
        "momentum=rng.choice((0.1, 0.1, 0.5, 0.5))",
        "tests/test_fuzz.py::test_draws_reach_the_hard_cases",
    ),
    Mutant(
        "J13 fuzz: tiny tiles drawn but never used on the kernels",
        "tools/fuzz.py",
        'if d.tiny_tiles and backend == "triton"',
        'if d.tiny_tiles and backend == "torch"',
        "tests/test_fuzz.py::test_check_runs_the_draw_as_drawn",
    ),
    Mutant(
        "J14 fuzz: the outlier row drawn but not built",
        "tools/fuzz.py",
        "    if d.outlier_gap:\n        _add_outlier(layer, x, d.outlier_gap)",
        "    if False:\n        _add_outlier(layer, x, d.outlier_gap)",
        "tests/test_fuzz.py::test_build_makes_the_layer_and_data_drawn",
    ),
    Mutant(
        "J15 fuzz: the offset drawn but not added",
        "tools/fuzz.py",
        "x = torch.randn(d.shape, dtype=torch.float64) * 2 + d.offset",
        "x = torch.randn(d.shape, dtype=torch.float64) * 2",
        "tests/test_fuzz.py::test_build_makes_the_layer_and_data_drawn",
    ),
    Mutant(
        "J16 fuzz: the drawn eps not passed to the layer",
        "tools/fuzz.py",
        '"affine": d.affine, "eps": d.eps}',
        '"affine": d.affine}',
        "tests/test_fuzz.py::test_build_makes_the_layer_and_data_drawn",
    ),
    Mutant(
        "J17 fuzz: the drawn momentum and track_running_stats not passed to the layer",
        "tools/fuzz.py",
        "        kwargs.update(momentum=d.momentum, track_running_stats=d.track_running_stats)\n",
        "        pass\n",
        "tests/test_fuzz.py::test_build_makes_the_layer_and_data_drawn",
    ),
    Mutant(
        "J18 fuzz: the drawn gate scale not passed to randomize",
        "tools/fuzz.py",
        "layer = randomize(layer, gate_scale=d.gate_scale)",
        "layer = randomize(layer)",
        "tests/test_fuzz.py::test_build_makes_the_layer_and_data_drawn",
    ),
    Mutant(
        "J19 fuzz: --only dead keeps every draw",
        "tools/fuzz.py",
        '    "dead": lambda d: d.dead,',
        '    "dead": lambda d: True,',
        "tests/test_fuzz.py::test_only_keeps_its_subset",
    ),
    Mutant(
        "J20 fuzz_sync: a NaN error is not OVER",
        "tools/fuzz_sync.py",
        " or err != err:",
        ":",
        "tests/test_fuzz.py::test_sync_fuzzer_judges_every_quantity_and_nan",
    ),
    Mutant(
        "J21 fuzz_sync: running_mean_sq not compared",
        "tools/fuzz_sync.py",
        'QUANTITIES = ("output", "grad of input", "running_mean", "running_mean_sq")',
        'QUANTITIES = ("output", "grad of input", "running_mean")',
        "tests/test_fuzz.py::test_sync_fuzzer_judges_every_quantity_and_nan",
    ),
    Mutant(
        "J22 fuzz_sync: exit status 0 whatever was over",
        "tools/fuzz_sync.py",
        "sys.exit(1 if run(args) else 0)",
        "sys.exit(0 if run(args) is None else 0)",
        "tests/test_fuzz.py::test_the_exit_status_says_whether_a_draw_was_over",
    ),
    Mutant(
        "J23 fuzz_sync: the replay command names the run's first seed",
        "tools/fuzz_sync.py",
        '                out(f"    {_replay(d, args.backend)}")',
        '                out(f"    {_replay(draws[0], args.backend)}")',
        "tests/test_fuzz.py::test_sync_fuzzer_judges_every_quantity_and_nan",
    ),
    Mutant(
        "J24 fuzz_sync: outliers never drawn",
        "tools/fuzz_sync.py",
        "outlier=rng.choice((0.0, 0.0, 10.0, -100.0, 1000.0))",
        "outlier=rng.choice((0.0, 0.0))",
        "tests/test_fuzz.py::test_sync_draws_reach_their_cases_and_build_them",
    ),
    Mutant(
        "J25 fuzz_sync: channels_last drawn but not applied",
        "tools/fuzz_sync.py",
        "        x = x.contiguous(memory_format=torch.channels_last)\n",
        "        pass\n",
        "tests/test_fuzz.py::test_sync_draws_reach_their_cases_and_build_them",
    ),
    Mutant(
        "J26 fuzz_sync: offsets of 1e3 and 1e4 never drawn",
        "tools/fuzz_sync.py",
        "offsets = (0.0, 3.0, 1e3, 1e4) if dtype",
        "offsets = (0.0, 3.0) if dtype",
        "tests/test_fuzz.py::test_sync_draws_reach_their_cases_and_build_them",
    ),
    Mutant(
        "J27 compile_check: spills read from LOCAL alone (ptxas spills into the stack frame: "
        "STACK)",
        "tools/compile_check.py",
        'usage.get("STACK", 0) + usage.get("LOCAL", 0)',
        'usage.get("LOCAL", 0)',
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J28 compile_check: --no-spills ignored",
        "tools/compile_check.py",
        "return 1 if recorder.failures or (args.no_spills and spilled) else 0",
        "return 1 if recorder.failures else 0",
        "tests/test_gpu_compile.py::test_spills_fail_with_no_spills_and_failures_always",
    ),
    Mutant(
        "J29 compile_check: exit status 0 with failures",
        "tools/compile_check.py",
        "return 1 if recorder.failures or (args.no_spills and spilled) else 0",
        "return 1 if args.no_spills and spilled else 0",
        "tests/test_gpu_compile.py::test_spills_fail_with_no_spills_and_failures_always",
    ),
    Mutant(
        "J30 compile_check: a compile error is no failure",
        "tools/compile_check.py",
        "                    recorder.failures.append(Failure(fn.fn.__name__, recorder.case, "
        "str(error)))\n                    return None",
        "                    return None",
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J31 compile_check: an error in the host code is no failure",
        "tools/compile_check.py",
        '            recorder.failures.append(Failure("(host code)", label, repr(error)))',
        "            pass",
        "tests/test_gpu_compile.py::test_spills_fail_with_no_spills_and_failures_always",
    ),
    Mutant(
        "J32 compile_check: tensors on another device than meta accepted",
        "tools/compile_check.py",
        "                if devices != {DEVICE}:",
        "                if not devices:",
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J33 compile_check: launches CUDA would refuse not checked",
        "tools/compile_check.py",
        "        if limits:\n",
        "        if False:\n",
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J34 compile_check: exactly 65536 registers per block refused",
        "tools/compile_check.py",
        "if registers * num_warps * 32 > MAX_REGISTERS_PER_BLOCK",
        "if registers * num_warps * 32 >= MAX_REGISTERS_PER_BLOCK",
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J35 compile_check: the --quick sweep empty",
        "tools/compile_check.py",
        '    if quick:\n        return [\n            (f"{kind} {label}", case)',
        '    if quick:\n        return [] and [\n            (f"{kind} {label}", case)',
        "tests/test_gpu_compile.py::test_the_sweeps_make_the_calls_they_name",
    ),
    Mutant(
        "J36 compile_check: the quick sweep without offsets past 2^31",
        "tools/compile_check.py",
        '            ("offsets past 2^31", _beyond_2_pow_31),\n'
        '            ("SyncModeNorm mix", _sync_mix_case),\n        ]',
        '            ("SyncModeNorm mix", _sync_mix_case),\n        ]',
        "tests/test_gpu_compile.py::test_the_sweeps_make_the_calls_they_name",
    ),
    Mutant(
        "J37 compile_check: the layout cases' channels_last not applied",
        "tools/compile_check.py",
        "            x = x.to(memory_format=torch.channels_last)\n",
        "",
        "tests/test_gpu_compile.py::test_the_sweeps_make_the_calls_they_name",
    ),
    Mutant(
        "J38 compile_check: the JSON report's failures always empty",
        "tools/compile_check.py",
        '"failures": [asdict(f) for f in recorder.failures],',
        '"failures": [],',
        "tests/test_gpu_compile.py::test_spills_fail_with_no_spills_and_failures_always",
    ),
    Mutant(
        "J39 compile_check: loads counted without their vector width",
        "tools/compile_check.py",
        "f\"{vector or ''}b{bits}\"",
        'f"b{bits}"',
        "tests/test_gpu_compile.py::test_resources_and_loads_are_read_from_the_compiler_output",
    ),
    Mutant(
        "J40 compile_check: registers read from a key cuobjdump does not print",
        "tools/compile_check.py",
        'usage.get("REG", -1)',
        'usage.get("REGS", -1)',
        "tests/test_gpu_compile.py::test_the_recorder_notes_resources_and_every_kind_of_failure",
    ),
    Mutant(
        "J41 mix_traffic: a launch's programs counted along the grid's first axis only",
        "tools/mix_traffic.py",
        "launch = Launch(kernel, int(np.prod(grid)))",
        "launch = Launch(kernel, int(grid[0]))",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J42 mix_traffic: --gates inline and kernel swapped",
        "tools/mix_traffic.py",
        'mix.GATES_KERNEL_MIN_ELEMENTS = 2**62 if args.gates == "inline" else 0',
        'mix.GATES_KERNEL_MIN_ELEMENTS = 0 if args.gates == "inline" else 2**62',
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J43 mix_traffic: --split off leaves the captured calls' splits",
        "tools/mix_traffic.py",
        "mix.SPLIT_MIN_ROWS = mix.GRAPH_SPLIT_MIN_ROWS = 2**62",
        "mix.SPLIT_MIN_ROWS = 2**62",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J44 mix_traffic: the Σ row's busiest the largest, not the sum",
        "tools/mix_traffic.py",
        "busiest = sum(launch.busiest for launch in launches)",
        "busiest = max(launch.busiest for launch in launches)",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J45 mix_traffic: the minimum 5·|x| forward and 3·|x| backward",
        "tools/mix_traffic.py",
        'passes = (3 if direction == "fwd" else 5) * x_bytes',
        'passes = (5 if direction == "fwd" else 3) * x_bytes',
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J46 mix_traffic: --captured ignored",
        "tools/mix_traffic.py",
        "with mix.as_captured() if args.captured else contextlib.nullcontext():",
        "with contextlib.nullcontext():",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J47 mix_traffic: --points off ignored",
        "tools/mix_traffic.py",
        "        backend.POINT_ROWS = False\n",
        "        pass\n",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J48 mix_traffic: the --layer Σ row's total sums the busiest programs",
        "tools/mix_traffic.py",
        "total = sum(launch.total for launch in launches)",
        "total = sum(launch.busiest for launch in launches)",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J49 mix_traffic: |x| counted in elements, not bytes",
        "tools/mix_traffic.py",
        "x_bytes = n * c * length * 4",
        "x_bytes = n * c * length",
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J50 mix_traffic: --gate-shares apart and summed swapped",
        "tools/mix_traffic.py",
        'mix.GATE_PARTIALS_SUM_MIN = 2**62 if args.gate_shares == "apart" else 0',
        'mix.GATE_PARTIALS_SUM_MIN = 0 if args.gate_shares == "apart" else 2**62',
        "tests/test_mix_traffic.py::test_the_command_line_sets_what_it_says_and_adds_up_the_launches",
    ),
    Mutant(
        "J51 compile_check: a case's layer call compiles no backward (other cases' calls still "
        "compile every backward kernel: the slow test's kernel names do not change)",
        "tools/compile_check.py",
        "    y.backward(torch.randn_like(y))  # a dense dy",
        "    pass  # a dense dy",
        "tests/test_gpu_compile.py::test_a_case_compiles_training_forward_and_backward_and_eval",
    ),
    # --- from the mutation audit of benchmarks/gpu_run.sh (2026-12-06) ---
    Mutant(
        "X1 gpu_run.sh: MN_RUN_ID not exported (each process takes its own run id)",
        "benchmarks/gpu_run.sh",
        "export MN_RUN_ID=$RUN_ID",
        "MN_RUN_ID=$RUN_ID",
        "tests/test_gpu_run.py::test_every_stage_sees_the_run_id_the_commit_and_the_real_kernels",
    ),
    Mutant(
        "X2 gpu_run.sh: processes get the given MN_RUN_ID, not the part's (-partN lost)",
        "benchmarks/gpu_run.sh",
        "export MN_RUN_ID=$RUN_ID",
        "export MN_RUN_ID=${MN_RUN_ID:-$RUN_ID}",
        "tests/test_gpu_run.py::test_stages_and_their_arguments",
    ),
    Mutant(
        "X3 gpu_run.sh: TRITON_INTERPRET left set (the benchmarks run the interpreter)",
        "benchmarks/gpu_run.sh",
        "unset TRITON_INTERPRET\n",
        "",
        "tests/test_gpu_run.py::test_every_stage_sees_the_run_id_the_commit_and_the_real_kernels",
    ),
    Mutant(
        "X4 gpu_run.sh: PYTHONUNBUFFERED not exported (a timed-out stage loses its output)",
        "benchmarks/gpu_run.sh",
        "export PYTHONUNBUFFERED=1",
        "PYTHONUNBUFFERED=1",
        "tests/test_gpu_run.py::test_every_stage_sees_the_run_id_the_commit_and_the_real_kernels",
    ),
    Mutant(
        "X5 gpu_run.sh: PYTHONPATH not exported (the repository not importable)",
        "benchmarks/gpu_run.sh",
        'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"',
        'PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"',
        "tests/test_gpu_run.py::test_every_stage_sees_the_run_id_the_commit_and_the_real_kernels",
    ),
    Mutant(
        "X6 gpu_run.sh: a stage cut at its limit (124) not marked TIMED OUT",
        "benchmarks/gpu_run.sh",
        'if [ "$LAST_RC" = 124 ] || [ "$LAST_RC" = 137 ]; then',
        'if [ "$LAST_RC" = 125 ] || [ "$LAST_RC" = 137 ]; then',
        "tests/test_gpu_run.py::test_a_stage_that_times_out_is_named_and_the_run_goes_on",
    ),
    Mutant(
        "X7 gpu_run.sh: a timed-out stage not counted as failed (exit 0)",
        "benchmarks/gpu_run.sh",
        '[ "$LAST_RC" = 0 ] || FAILED_STAGES+=("$name")',
        '[ "$LAST_RC" = 0 ] || [ "$LAST_RC" = 124 ] || FAILED_STAGES+=("$name")',
        "tests/test_gpu_run.py::test_a_stage_that_times_out_is_named_and_the_run_goes_on",
    ),
    Mutant(
        "X8 gpu_run.sh: a preflight that timed out does not stop the run",
        "benchmarks/gpu_run.sh",
        'if [ "$LAST_RC" != 0 ]; then\n    echo "== preflight failed',
        'if [ "$LAST_RC" = 1 ]; then\n    echo "== preflight failed',
        "tests/test_gpu_run.py::test_a_failed_preflight_stops_the_run",
    ),
    Mutant(
        "X9 gpu_run.sh: stderr not in the log (tracebacks lost from $OUT)",
        "benchmarks/gpu_run.sh",
        'exec > >(tee -a "$LOG") 2>&1',
        'exec > >(tee -a "$LOG")',
        "tests/test_gpu_run.py::test_a_failed_stage_lets_the_others_run_and_sets_the_exit_status",
    ),
    Mutant(
        "X10 gpu_run.sh all: WARM_WAIT_S 45 (the call over its 555 s)",
        "benchmarks/gpu_run.sh",
        "all) limits=(90 50 180 120 25 25 20 15 0)",
        "all) limits=(90 50 180 120 25 25 20 45 0)",
        "tests/test_gpu_run.py::test_stages_and_their_arguments",
    ),
    Mutant(
        "X11 gpu_run.sh 1: WARM_WAIT_S 30 (the part over its 315 s)",
        "benchmarks/gpu_run.sh",
        "1) limits=(70 0 90 60 0 20 25 15 0)",
        "1) limits=(70 0 90 60 0 20 25 30 0)",
        "tests/test_gpu_run.py::test_stages_and_their_arguments",
    ),
    Mutant(
        "X12 gpu_run.sh 1: the layer grid's limit 100 (the part over 315 s with the warm-up wait)",
        "benchmarks/gpu_run.sh",
        "1) limits=(70 0 90 60 0 20 25 15 0)",
        "1) limits=(70 0 100 60 0 20 25 15 0)",
        "tests/test_gpu_run.py::test_stages_and_their_arguments",
    ),
    Mutant(
        "X13 gpu_run.sh traced: OPAQUE_TRAIN_S 60 (the part over 310 s with the warm-up wait)",
        "benchmarks/gpu_run.sh",
        "traced) limits=(65 0 0 75 80 0 0 5 50)",
        "traced) limits=(65 0 0 75 80 0 0 5 60)",
        "tests/test_gpu_run.py::test_part_traced_measures_the_switch_both_ways",
    ),
    Mutant(
        "X14 gpu_run.sh traced: the opaque steps' --max-seconds its whole limit",
        "benchmarks/gpu_run.sh",
        '--max-seconds "$((OPAQUE_TRAIN_S - 20))"',
        '--max-seconds "$((OPAQUE_TRAIN_S))"',
        "tests/test_gpu_run.py::test_part_traced_measures_the_switch_both_ways",
    ),
    Mutant(
        "X15 gpu_run.sh: the kernel warm-up's deadline 10x the tests' limit + WARM_WAIT_S",
        "benchmarks/gpu_run.sh",
        'timeout -k 5 "$((beside + WARM_WAIT_S))" nice',
        'timeout -k 5 "$((beside + WARM_WAIT_S * 10))" nice',
        "tests/test_gpu_run.py::test_the_warm_ups_run_beside_the_tests_and_end_by_their_deadline",
    ),
    Mutant(
        "X16 gpu_run.sh: the layer grid does not wait for the kernel warm-up",
        "benchmarks/gpu_run.sh",
        '    wait "$WARM_PID" || rc=$?\n',
        "    rc=0\n",
        "tests/test_gpu_run.py::test_the_warm_ups_run_beside_the_tests_and_end_by_their_deadline",
    ),
    Mutant(
        "X17 gpu_run.sh: the layer grid does not wait for the compile warm-up (GPU shared)",
        "benchmarks/gpu_run.sh",
        "    warm_kernels_wait\n    compile_warm_wait\n    before=$(cache_entries)",
        "    warm_kernels_wait\n    before=$(cache_entries)",
        "tests/test_gpu_run.py::test_the_warm_ups_run_beside_the_tests_and_end_by_their_deadline",
    ),
    Mutant(
        "X18 gpu_run.sh 2: the compile warm-up's limit from GPU_TESTS_S (0 in part 2)",
        "benchmarks/gpu_run.sh",
        'compile_warm_start "$((SLOW_TESTS_S + WARM_WAIT_S))" compiled,cudagraph',
        'compile_warm_start "$((GPU_TESTS_S + WARM_WAIT_S))" compiled,cudagraph',
        "tests/test_gpu_run.py::test_the_warm_ups_run_beside_the_tests_and_end_by_their_deadline",
    ),
    Mutant(
        "X19 gpu_run.sh: the failed stages named after the last save (the log in $OUT lacks it)",
        "benchmarks/gpu_run.sh",
        "    # (before the last save, so that the log copied into $OUT says it too)\n"
        '    echo "== stages that failed or timed out: ${FAILED_STAGES[*]}"\n'
        "fi\n"
        "save\n",
        "fi\n"
        "save\n"
        '[ "${#FAILED_STAGES[@]}" -gt 0 ] && '
        'echo "== stages that failed or timed out: ${FAILED_STAGES[*]}"\n',
        "tests/test_gpu_run.py::test_a_failed_stage_lets_the_others_run_and_sets_the_exit_status",
    ),
    # --- from the mutation audit of the measurement harness (2026-12-06, evening) ---
    # (measure.py, records.py, conftest.py, layers.py, grid.py: 48 mutants tried; each of
    # these survived the tests before it, and one test now catches it)
    Mutant(
        "N1 the median of an even count as its upper middle sample",
        "benchmarks/measure.py",
        "        statistics.median(times),\n",
        "        times[len(times) // 2],\n",
        "tests/test_bench_harness.py::test_time_fn_medians_and_percentiles_of_an_even_count_of_skewed_samples",
    ),
    Mutant(
        "N2 the host's issue time as a mean (one slow issue moves it)",
        "benchmarks/measure.py",
        "statistics.median(host) if host",
        "statistics.mean(host) if host",
        "tests/test_bench_harness.py::test_time_fn_medians_and_percentiles_of_an_even_count_of_skewed_samples",
    ),
    Mutant(
        "N3 the flush's device time as a mean",
        "benchmarks/measure.py",
        "statistics.median(flushes) if flushes",
        "statistics.mean(flushes) if flushes",
        "tests/test_bench_harness.py::test_time_fn_medians_and_percentiles_of_an_even_count_of_skewed_samples",
    ),
    Mutant(
        "N4 the L2 flush buffer a quarter of L2_FLUSH_BYTES (int8, not int32)",
        "benchmarks/measure.py",
        "torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32",
        "torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int8",
        "tests/test_bench_harness.py::test_the_l2_flush_buffer_holds_l2_flush_bytes",
    ),
    Mutant(
        "N5 rows stamped with a naive local time (no offset)",
        "benchmarks/measure.py",
        "datetime.datetime.now(datetime.UTC).isoformat",
        "datetime.datetime.now().isoformat",
        "tests/test_bench_harness.py::test_rows_are_stamped_in_utc_with_the_offset_written",
    ),
    Mutant(
        "N6 the peak taken above what the timed calls left, not what warm-up left",
        "benchmarks/measure.py",
        "peak, peak_total = (highest - base) / 2**20",
        "peak, peak_total = (highest - torch.cuda.memory_allocated(device)) / 2**20",
        "tests/test_bench_harness.py::test_time_fn_on_cuda_counts_what_the_timed_calls_keep_in_the_peak",
    ),
    Mutant(
        "N7 a row's peak memory never written",
        "benchmarks/records.py",
        '"" if timing.peak_mem_mb is None else timing.peak_mem_mb',
        '""',
        "tests/test_bench_harness.py::test_case_rows_carry_the_shape_times_and_peak_in_their_columns",
    ),
    Mutant(
        "N8 H and W swapped in a row (the grid's maps are all square: only a test's are not)",
        "benchmarks/records.py",
        "    n, c, h, w = shape\n",
        "    n, c, w, h = shape\n",
        "tests/test_bench_harness.py::test_case_rows_carry_the_shape_times_and_peak_in_their_columns",
    ),
    Mutant(
        "N9 the forward mode never rotates its inputs (the first set stays in L2)",
        "benchmarks/layers.py",
        '            run(inputs[i % count][0])\n\n    elif case.mode == "full"',
        '            run(inputs[0][0])\n\n    elif case.mode == "full"',
        "tests/test_bench_harness.py::test_timed_call_rotates_through_every_input_set",
    ),
    Mutant(
        "N10 the eval mode never rotates its inputs",
        "benchmarks/layers.py",
        "                run(inputs[i % count][0])\n",
        "                run(inputs[0][0])\n",
        "tests/test_bench_harness.py::test_timed_call_rotates_through_every_input_set",
    ),
    Mutant(
        "N11 a case built with one input set (no rotation)",
        "benchmarks/layers.py",
        "    count = measure.rotation_count(input_bytes(case), max_sets=max_sets)\n",
        "    count = 1\n",
        "tests/test_bench_harness.py::test_measure_case_rotates_its_input_sets_and_times_with_the_settings",
    ),
    Mutant(
        "N12 a CUDA-graph case captures settings.max_sets graphs (64 on a GPU)",
        "benchmarks/layers.py",
        "min(settings.max_sets, GRAPH_SETS) if graphed",
        "settings.max_sets if graphed",
        "tests/test_bench_harness.py::test_a_graph_case_captures_few_input_sets_and_reports_the_captures_peak",
    ),
    Mutant(
        "N13 measure_case passes repetitions as warm-up and warm-up as repetitions",
        "benchmarks/layers.py",
        "settings.warmup, settings.reps, settings.max_seconds",
        "settings.reps, settings.warmup, settings.max_seconds",
        "tests/test_bench_harness.py::test_measure_case_rotates_its_input_sets_and_times_with_the_settings",
    ),
    Mutant(
        "N14 a compiled reference shared across dtypes (bfloat16 timed on float32's module)",
        "benchmarks/layers.py",
        "key = (case.op, case.dtype, case.layout",
        "key = (case.op, case.layout",
        "tests/test_bench_harness.py::test_compiled_references_are_cached_per_point_and_the_oldest_evicted",
    ),
    Mutant(
        "N15 the compile cache evicts the module it just compiled",
        "benchmarks/layers.py",
        "_compiled.popitem(last=False)",
        "_compiled.popitem()",
        "tests/test_bench_harness.py::test_compiled_references_are_cached_per_point_and_the_oldest_evicted",
    ),
    Mutant(
        "N16 torch_ops runs under auto (the Triton kernels on a GPU)",
        "benchmarks/layers.py",
        'BACKENDS = {"triton": "auto", "torch_ops": "torch"}',
        'BACKENDS = {"triton": "auto", "torch_ops": "auto"}',
        "tests/test_bench_harness.py::test_each_provider_runs_under_its_own_backend",
    ),
    Mutant(
        "N17 a graph case's peak counts the uncaptured warm-up",
        "benchmarks/layers.py",
        "    torch.cuda.synchronize(device)\n    torch.cuda.reset_peak_memory_stats(device)\n"
        "    base",
        "    torch.cuda.synchronize(device)\n    base",
        "tests/test_bench_harness.py::test_graph_replays_peak_is_the_captures_not_the_warm_ups",
    ),
    Mutant(
        "N18 no setup call before timing (setup_s without compile and JIT)",
        "benchmarks/layers.py",
        "    call(0)\n    synchronize(device)\n",
        "    synchronize(device)\n",
        "tests/test_bench_harness.py::test_measure_case_rotates_its_input_sets_and_times_with_the_settings",
    ),
    Mutant(
        "N19 a graph case reports the replays' peak (nothing) and a total peak",
        "benchmarks/layers.py",
        "        timing = replace(timing, peak_mem_mb=graph_peak_mb, peak_total_mb=None)\n",
        "        pass\n",
        "tests/test_bench_harness.py::test_a_graph_case_captures_few_input_sets_and_reports_the_captures_peak",
    ),
    Mutant(
        "N20 --grid ignored (the suite runs auto's grid)",
        "benchmarks/conftest.py",
        'return grid.cases(config.getoption("grid"), device.type == "cuda", compile_)',
        'return grid.cases("auto", device.type == "cuda", compile_)',
        "tests/test_benchmarks.py::test_the_suite_takes_its_grid_device_and_compile_options",
    ),
    Mutant(
        "N21 a loaded CPU's warning left out of the header",
        "benchmarks/conftest.py",
        "    if warning := measure.cpu_load_warning(device):\n        lines.append(warning)\n",
        "",
        "tests/test_benchmarks.py::test_the_suite_takes_its_grid_device_and_compile_options",
    ),
    Mutant(
        "N22 dy all zeros (zeros taken as data)",
        "benchmarks/layers.py",
        "        dy = torch.randn_like(x) if case.mode",
        "        dy = torch.zeros_like(x) if case.mode",
        "tests/test_bench_harness.py::test_make_inputs_are_normal_data_never_zeros",
    ),
    Mutant(
        "N23 percentiles from the rounded index (extrapolated on uneven samples)",
        "benchmarks/measure.py",
        "    lo = int(pos)\n",
        "    lo = round(pos)\n",
        "tests/test_bench_harness.py::test_percentiles_interpolate_between_the_neighbouring_samples",
    ),
    Mutant(
        "N24 the LayerNorm baseline normalises over H and W only",
        "benchmarks/layers.py",
        "module = nn.LayerNorm((c, h, w))",
        "module = nn.LayerNorm((h, w))",
        "tests/test_bench_harness.py::test_make_module_builds_each_baseline_as_a_net_holds_it",
    ),
    Mutant(
        "N25 the InstanceNorm baseline without its affine weights (less work than MN's)",
        "benchmarks/layers.py",
        "module = nn.InstanceNorm2d(c, affine=True)",
        "module = nn.InstanceNorm2d(c)",
        "tests/test_bench_harness.py::test_make_module_builds_each_baseline_as_a_net_holds_it",
    ),
    Mutant(
        "N26 the reference providers time mn_triton's layers",
        "benchmarks/layers.py",
        'package = reference if case.provider.startswith("reference") else mn_triton',
        "package = mn_triton",
        "tests/test_bench_harness.py::test_make_module_builds_each_baseline_as_a_net_holds_it",
    ),
    Mutant(
        "N27 every MN/MGN case built with 2 modes whatever its K",
        "benchmarks/layers.py",
        "        module = layer(c, num_modes=case.k)\n",
        "        module = layer(c, num_modes=2)\n",
        "tests/test_bench_harness.py::test_make_module_builds_each_baseline_as_a_net_holds_it",
    ),
    Mutant(
        "N28 an unknown grid's name taken as the full grid",
        "benchmarks/grid.py",
        '        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")',
        '        return "full"',
        "tests/test_benchmarks.py::test_the_suite_takes_its_grid_device_and_compile_options",
    ),
    # --- from the mutation audit of the report and its figures (2026-12-06, evening) ---
    Mutant(
        "Z1 time_vs_k on a linear time axis",
        "benchmarks/figures.py",
        '            ylabel="ms (median, p20-p80)",\n'
        '            yscale="log",\n'
        "            title=f\"{name}: {_point_label(rows, '')}\",",
        '            ylabel="ms (median, p20-p80)",\n'
        "            title=f\"{name}: {_point_label(rows, '')}\",",
        "tests/test_figures.py::test_times_sizes_and_ratios_are_drawn_on_log_axes",
    ),
    Mutant(
        "Z2 time_vs_batch on a linear N axis",
        "benchmarks/figures.py",
        '            ylabel="ms (median, p20-p80)",\n'
        '            xscale="log",\n'
        '            yscale="log",\n'
        '            title=f"{name} K=2',
        '            ylabel="ms (median, p20-p80)",\n'
        '            yscale="log",\n'
        '            title=f"{name} K=2',
        "tests/test_figures.py::test_times_sizes_and_ratios_are_drawn_on_log_axes",
    ),
    Mutant(
        "Z3 bandwidth figure on a linear size axis",
        "benchmarks/figures.py",
        '    ax.set_xscale("log")  # before the goal',
        "    pass  # before the goal",
        "tests/test_figures.py::test_times_sizes_and_ratios_are_drawn_on_log_axes",
    ),
    Mutant(
        "Z4 memory figure on a linear ratio axis",
        "benchmarks/figures.py",
        '            xscale="log",\n'
        '            yscale="log",\n'
        '            xlabel="tensor size, MiB (the input x)",',
        '            xscale="log",\n            xlabel="tensor size, MiB (the input x)",',
        "tests/test_figures.py::test_times_sizes_and_ratios_are_drawn_on_log_axes",
    ),
    Mutant(
        "Z5 time_vs_k mixes graph replays into the calls",
        "benchmarks/figures.py",
        "    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):\n"
        '        full = where(calls(df), mode="full")\n'
        "        rows = _densest(",
        "    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):\n"
        '        full = where(df, mode="full")\n'
        "        rows = _densest(",
        "tests/test_figures.py::test_time_vs_k_draws_calls_not_graph_replays",
    ),
    Mutant(
        "Z6 error bars p20/p80 swapped",
        "benchmarks/figures.py",
        'err = [at["ms_p50"] - at["ms_p20"], at["ms_p80"] - at["ms_p50"]]',
        'err = [at["ms_p80"] - at["ms_p50"], at["ms_p50"] - at["ms_p20"]]',
        "tests/test_figures.py::test_time_error_bars_run_from_p20_to_p80",
    ),
    Mutant(
        "Z7 densest sweep by tensor size before K count",
        "benchmarks/figures.py",
        'best = counts.sort_values(["_n", "_bytes", "_rank"]).iloc[-1]',
        'best = counts.sort_values(["_bytes", "_n", "_rank"]).iloc[-1]',
        "tests/test_figures.py::test_the_k_sweep_is_the_point_with_the_most_k_values_then_the_later_part",
    ),
    Mutant(
        "Z8 densest ties go to the earlier part",
        "benchmarks/figures.py",
        'best = counts.sort_values(["_n", "_bytes", "_rank"]).iloc[-1]',
        'best = counts.sort_values(["_n", "_bytes", "_rank"], ascending=[True,'
        " True, False]).iloc[-1]",
        "tests/test_figures.py::test_the_k_sweep_is_the_point_with_the_most_k_values_then_the_later_part",
    ),
    Mutant(
        "Z9 bandwidth figure without the MGN series",
        "benchmarks/figures.py",
        '        ("mode_group_norm", me, f"MGN ({me})", mine, "x", False),\n',
        "",
        "tests/test_figures.py::test_bandwidth_figure_draws_mgn_beside_mn",
    ),
    Mutant(
        "Z10 bandwidth: BatchNorm series left out",
        "benchmarks/figures.py",
        '        ("batch_norm", "native", "BatchNorm2d: all modes, dtypes (bytes'
        ' counted as for MN; "\n'
        '         "eval: x read and y written once)", bn, ".", False),\n',
        "",
        "tests/test_figures.py::test_bandwidth_figure_draws_batchnorm_beside_ours",
    ),
    Mutant(
        "Z11 star of a part without copy bandwidth",
        "benchmarks/figures.py",
        '    rows = rows.dropna(subset=["_y"])  # no copy bandwidth in its part:'
        " no data, as the goal's\n",
        "",
        "tests/test_figures.py::test_bandwidth_figure_draws_a_goal_case_without_a_copy_bandwidth_as_no_star",
    ),
    Mutant(
        "Z12 speedup ratios over all parts",
        "benchmarks/figures.py",
        '    pairs = from_latest_part(pairs, ["C", "H", "W"])\n    ratios =',
        "    ratios =",
        "tests/test_figures.py::test_speedup_bars_take_the_later_part_whatever_the_rows_order",
    ),
    Mutant(
        "Z13 memory figure: cpu panels kept",
        "benchmarks/figures.py",
        'KEEP: dict[str, Callable[[pd.DataFrame], bool]] = {"memory": has_memory}',
        "KEEP: dict[str, Callable[[pd.DataFrame], bool]] = {}",
        "tests/test_figures.py::test_cpu_panels_are_titled_a_pipeline_check_and_left_out_of_memory",
    ),
    Mutant(
        "Z14 cpu row titled as a GPU",
        "benchmarks/figures.py",
        '    return "cpu: pipeline check, not GPU speed" if device == "cpu" else device',
        "    return device",
        "tests/test_figures.py::test_cpu_panels_are_titled_a_pipeline_check_and_left_out_of_memory",
    ),
    Mutant(
        "Z15 memory pairs across parts",
        "benchmarks/figures.py",
        '        on = ["N", "C", "H", "W", *_in_run(full)]  # dtype',
        '        on = ["N", "C", "H", "W"]  # dtype',
        "tests/test_figures.py::test_memory_pairs_each_case_with_the_baseline_of_its_own_part",
    ),
    Mutant(
        "Z16 train step figure xlim cuts the slowest bar",
        "benchmarks/figures.py",
        '    low, high = min(rows["ratio"].min(), 1.0), max(rows["ratio"].max(), TRAIN_GOAL)',
        '    low, high = min(rows["ratio"].min(), 1.0), TRAIN_GOAL',
        "tests/test_figures.py::test_train_step_axis_reaches_past_the_slowest_step",
    ),
    Mutant(
        "Z17 time_vs_batch gap note never shown",
        "benchmarks/figures.py",
        '            xlabel="batch size N" + (f"; {GAP_NOTE}" if gaps else ""),',
        '            xlabel="batch size N",',
        "tests/test_figures.py::test_a_batch_sweep_with_a_break_says_what_it_means",
    ),
    Mutant(
        "Z18 a figure silently not written",
        "benchmarks/figures.py",
        "    for name in CAPTIONS:\n        paths.append",
        "    for name in list(CAPTIONS)[:-1]:\n        paths.append",
        "tests/test_benchmarks.py::test_report_on_fixture",
    ),
    Mutant(
        "Z19 a run group's cases without a row counted over the group",
        "benchmarks/report_text.py",
        '    if "run" in df and df["run"].nunique() > 1:\n'
        "        return sum(cases_without_row(part) for _, part in"
        ' df.groupby("run", sort=False))\n',
        "",
        "tests/test_report_values.py::test_a_run_groups_cases_without_a_row_are_counted_per_part "
        "tests/test_report_values.py::test_both_goal_tables_hear_of_the_planned_cases_without_a_row",
    ),
    Mutant(
        "Z20 replay share of copy bandwidth rounded up",
        "benchmarks/report_layers.py",
        'fmt(r["gbps"] / r["copy_gbps"], at_most=False, percent=True)',
        'fmt(r["gbps"] / r["copy_gbps"], at_most=True, percent=True)',
        "tests/test_report_values.py::test_replay_lines_pair_within_a_part_take_the_later_and_round_against_us",
    ),
    Mutant(
        "Z21 replay against eager call from another part",
        "benchmarks/report_layers.py",
        '    on = [*MY_CASE, "K", "run"]\n    mine = graphs',
        '    on = [*MY_CASE, "K"]\n    mine = graphs',
        "tests/test_report_values.py::test_replay_lines_pair_within_a_part_take_the_later_and_round_against_us",
    ),
    Mutant(
        "Z22 replay rows: a case of two parts twice",
        "benchmarks/report_layers.py",
        '    merged = from_latest_part(merged, [*MY_CASE, "K"])\n    if merged.empty:',
        "    if merged.empty:",
        "tests/test_report_values.py::test_replay_lines_pair_within_a_part_take_the_later_and_round_against_us",
    ),
    Mutant(
        "Z23 cpu section heading without its caveat",
        "benchmarks/report_layers.py",
        '    lines = [f"### {device}" + ("" if judged else " (pipeline check, not'
        ' GPU speed)"), ""]\n'
        '    lines += [run_caption(rows), ""]\n'
        "    df, graphs",
        '    lines = [f"### {device}", ""]\n    lines += [run_caption(rows), ""]\n    df, graphs',
        "tests/test_report_values.py::test_a_cpu_layer_section_says_it_is_no_gpu_speed",
    ),
    Mutant(
        "Z24 cpu layer note left out",
        "benchmarks/report_layers.py",
        '    if not judged:\n        lines += [CPU_NOTE, ""]',
        '    if False:\n        lines += [CPU_NOTE, ""]',
        "tests/test_report_values.py::test_a_cpu_layer_section_says_it_is_no_gpu_speed",
    ),
    Mutant(
        "Z25 comparison worst rounded in our favour",
        "benchmarks/report_goals.py",
        'fmt(ratios.max()), f"`{describe(worst)}`',
        'fmt(ratios.max(), False), f"`{describe(worst)}`',
        "tests/test_report_values.py::test_comparison_lines_round_the_median_and_worst_ratio_up",
    ),
    Mutant(
        "Z26 comparison median rounded in our favour",
        "benchmarks/report_goals.py",
        "fmt(ratios.median()),\n",
        "fmt(ratios.median(), False),\n",
        "tests/test_report_values.py::test_comparison_lines_round_the_median_and_worst_ratio_up",
    ),
    Mutant(
        "Z27 bandwidth goal rows from every part",
        "benchmarks/report_goals.py",
        '    mn = big_k2_full(from_latest_part(where(df, op="mode_norm",'
        ' provider=me), [*MY_CASE, "K"]))',
        '    mn = big_k2_full(where(df, op="mode_norm", provider=me))',
        "tests/test_report_values.py::test_the_bandwidth_goal_counts_a_case_of_two_parts_once_from_the_later",
    ),
    Mutant(
        "Z28 caption parts in file order",
        "benchmarks/report_text.py",
        '    runs = df.sort_values("part_rank", kind="stable") if "part_rank" in df else df',
        "    runs = df",
        "tests/test_report_values.py::test_a_caption_lists_a_groups_parts_in_their_order_whatever_the_rows_order",
    ),
    Mutant(
        "Z29 figures drawn from every run, not the latest",
        "benchmarks/report.py",
        '    layer_runs = latest_runs(df[df["op"] != "train_step"])\n    train_runs',
        '    layer_runs = {d: g for d, g in df[df["op"] !='
        ' "train_step"].groupby("device")}\n'
        "    train_runs",
        "tests/test_report_values.py::test_the_figures_get_each_devices_latest_run_group_only",
    ),
    Mutant(
        "Z30 a dirty measured tree not said",
        "benchmarks/report_glance.py",
        '    if tag == "dirty":\n',
        '    if tag == "clean":\n',
        "tests/test_report_values.py::test_measured_at_says_dirty_also_for_a_commit_this_checkout_does_not_know",
    ),
    Mutant(
        "Z31 profile extra rows against another run's BatchNorm",
        "benchmarks/report_train.py",
        '    on = ["run", "model", "exec"]  # each profile',
        '    on = ["model", "exec"]  # each profile',
        "tests/test_report_values.py::test_profile_extras_are_against_batchnorm_of_the_same_run",
    ),
    Mutant(
        "Z32 a mistyped data folder beside a profiles/ folder rendered as an empty report",
        "benchmarks/report.py",
        "    if not args.data.is_dir() and args.profiles is None:",
        "    if not args.data.is_dir() and not (args.data.parent / 'profiles').is_dir():",
        "tests/test_report_values.py::test_nothing_to_render_is_refused_before_anything_is_written",
    ),
    Mutant(
        "Z33 a data folder of no usable rows rendered over the report",
        "benchmarks/report.py",
        "    if df.empty and profiles.empty:",
        "    if False:",
        "tests/test_report_values.py::test_nothing_to_render_is_refused_before_anything_is_written",
    ),
    Mutant(
        "Z34 an --out that is a file not refused",
        "benchmarks/report.py",
        "    if args.out.exists() and not args.out.is_dir():",
        "    if False:",
        "tests/test_report_values.py::test_nothing_to_render_is_refused_before_anything_is_written",
    ),
    Mutant(
        "Z35 a CSV that is not UTF-8 text stops the report",
        "benchmarks/report_data.py",
        "    except UnicodeDecodeError as error:",
        "    except KeyError as error:",
        "tests/test_report_values.py::test_a_file_that_is_not_utf8_text_is_skipped_with_a_warning",
    ),
    # --- GPU-only test code, run on the CPU by tests/test_gpu_bodies.py (2026-12-06) ---
    Mutant(
        "Q3 test_gpu's mix check reads a MixGrads field by a name it no longer has",
        "tests/test_gpu.py",
        "    fields = mix.MixGrads._fields  #",
        '    fields = ("dy_scale", "x_scale", "bias", "gate_weight", "gate_bias", "weight",'
        ' "bias_param")  #',
        "tests/test_gpu_bodies.py",
    ),
    # --- from the mutation audit of the layer API (2026-12-06, evening) ---
    Mutant(
        "U5 convert_to_mode_norm defaults to one mode",
        "mn_triton/convert.py",
        "    module: nn.Module, num_modes: int = 2, group_norm: bool = False\n) -> nn.Module:\n",
        "    module: nn.Module, num_modes: int = 1, group_norm: bool = False\n) -> nn.Module:\n",
        "tests/test_ecosystem.py::test_convert_defaults_to_two_modes_and_leaves_group_norm_alone",
    ),
    Mutant(
        "U6 mn_triton's __all__ leaves out update_bn",
        "mn_triton/__init__.py",
        '    "update_bn",\n',
        "",
        "tests/test_reference.py::test_mn_triton_exports_its_public_names",
    ),
    Mutant(
        "U7 the 1d variants refuse (N, C) input, which BatchNorm1d takes",
        "reference/_base.py",
        '    "1d": ((2, 3),',
        '    "1d": ((3,),',
        "tests/test_errors.py::test_rank_variants_take_the_ranks_batch_norm_takes",
    ),
    Mutant(
        "U8 num_batches_tracked made on the default device, not the device= given",
        "reference/_base.py",
        "torch.tensor(0, dtype=torch.long, device=device)",
        "torch.tensor(0, dtype=torch.long)",
        "tests/test_mode_norm.py::test_device_argument_places_every_tensor",
    ),
    Mutant(
        "U9 update_bn gives a training model train(False), its flags then set back by hand",
        "mn_triton/swa.py",
        "        model.train(modes[model])  #",
        "        model.train(False)  #",
        "tests/test_ecosystem.py::test_update_bn_restores_the_models_mode_through_its_own_train",
    ),
    Mutant(
        "U10 a meta layer's placeholder count loaded in place of a missing num_batches_tracked",
        "reference/_base.py",
        '            real = own is not None and own.device.type != "meta"',
        "            real = own is not None",
        "tests/test_mode_norm.py::test_a_meta_layer_loading_a_plain_state_dict_gets_a_real_step_count",
    ),
    Mutant(
        "U11 update_bn runs its pass over a model without norms",
        "mn_triton/swa.py",
        "    if not norms:\n        return\n",
        "",
        "tests/test_ecosystem.py::test_update_bn_without_norms_leaves_the_model_and_loader_alone",
    ),
    Mutant(
        "U12 the channel check passes an input whose last dim has the channel count (NHWC)",
        "reference/_base.py",
        "    if x.size(1) != num_features:",
        "    if x.size(1) != num_features and x.size(-1) != num_features:",
        "tests/test_errors.py::test_channel_count_mismatch",
    ),
    Mutant(
        "U13 a training call refused by its checks counts its step anyway",
        "mn_triton/modules.py",
        "        y = functional.mode_norm(input, **self._functional_args(input))\n"
        "        self._count_step()",
        "        args = self._functional_args(input)\n"
        "        self._count_step()\n"
        "        y = functional.mode_norm(input, **args)",
        "tests/test_mode_norm.py::test_a_refused_call_counts_no_step",
    ),
    Mutant(
        "U14 SyncModeNorm counts its step before its checks",
        "mn_triton/sync.py",
        "        self._check_input(input)\n        x, gate_weight",
        "        self._count_step()\n        self._check_input(input)\n        x, gate_weight",
        "tests/test_sync.py::test_synchronising_checks_what_is_set_after_construction",
    ),
    Mutant(
        "U15 eval running estimates that require grad left without their gradients",
        "mn_triton/functional.py",
        "    return running_mean.requires_grad or running_mean_sq.requires_grad\n",
        "    return False\n",
        "tests/test_mode_norm.py::test_running_estimates_that_require_grad_get_their_gradients_in_eval",
    ),
    # --- from the numerical audit (2026-12-07): the reference formulas' paths, MGN's pivot ---
    Mutant(
        "U16 create_graph, torch.func and forward-mode AD take the reference formulas in float32",
        "mn_triton/ops.py",
        "    return formula(x.to(torch.float64), *args, **kwargs)",
        "    return formula(x, *args, **kwargs)",
        "tests/test_double_backward.py::test_paths_through_the_reference_formulas_keep_the_bound_at_a_large_offset",
    ),
    Mutant(
        "U17 MN under torch.func returns float64 for float32 inputs",
        "mn_triton/functional.py",
        "momentum, float(eps),\n        ).to(input.dtype)",
        "momentum, float(eps),\n        )",
        "tests/test_double_backward.py::test_paths_through_the_reference_formulas_keep_the_bound_at_a_large_offset",
    ),
    Mutant(
        "U18 MGN's pivot is channel 0's shift again (torch ops)",
        "mn_triton/mix.py",
        "    pivot = _mgn_pivots(shift)  # (N, 1)",
        "    pivot = shift[:, :1]  # (N, 1)",
        "tests/test_mode_group_norm.py::test_an_outlying_first_channel_is_no_pivot",
    ),
    Mutant(
        "U19 MGN's pivot is channel 0's shift again (kernels)",
        "mn_triton/kernels/mix.py",
        "        pivot = tl.where(block_least < least, value, pivot)",
        "        pivot = first",
        "tests/test_mode_group_norm.py::test_an_outlying_first_channel_is_no_pivot",
    ),
    Mutant(
        "U20 MGN's pivot may be a padded lane past C (kernels)",
        "mn_triton/kernels/mix.py",
        "size = tl.where(c_ok & (size == size), size,",
        "size = tl.where(size == size, size,",
        "tests/test_kernels.py::test_mgn_pivots_are_the_shifts_nearest_0_in_both_mixes",
    ),
    Mutant(
        "U21 MGN's pivot may be a NaN shift (kernels)",
        "mn_triton/kernels/mix.py",
        "size = tl.where(c_ok & (size == size), size,",
        "size = tl.where(c_ok, size,",
        "tests/test_kernels.py::test_mgn_pivots_are_the_shifts_nearest_0_in_both_mixes",
    ),
    Mutant(
        "U22 MGN's pivot may be a NaN shift (torch ops)",
        "mn_triton/mix.py",
        "    size.masked_fill_(size.isnan(), math.inf)",
        "    pass",
        "tests/test_kernels.py::test_mgn_pivots_are_the_shifts_nearest_0_in_both_mixes",
    ),
    Mutant(
        "U23 MGN's pivot is the last of equals across blocks (kernels)",
        "mn_triton/kernels/mix.py",
        "        pivot = tl.where(block_least < least, value, pivot)",
        "        pivot = tl.where(block_least <= least, value, pivot)",
        "tests/test_kernels.py::test_mgn_pivots_are_the_shifts_nearest_0_in_both_mixes",
    ),
    Mutant(
        "U24 convert assigns a pruned norm's plain-tensor weight as a parameter (TypeError)",
        "mn_triton/convert.py",
        "    if value is not None and not isinstance(value, nn.Parameter):",
        "    if False:",
        "tests/test_ecosystem.py::test_convert_names_a_pruned_weight_and_what_to_do",
    ),
    # --- from the mutation audit of the GPU-only benchmark scripts (host_overhead.py,
    # warm_kernels.py, split_timing.py; 2026-12-06): their GPU side, faked on the CPU ---
    Mutant(
        "I1 host_overhead's rounds on a GPU stop the clock before the device is done",
        "benchmarks/host_overhead.py",
        "        if x.is_cuda:\n            torch.cuda.synchronize()\n",
        "",
        "tests/test_benchmarks.py::test_host_overhead_rounds_on_a_gpu_end_when_its_work_is_done",
    ),
    Mutant(
        "I2 host_overhead times the torch-op path on a GPU machine by default",
        "benchmarks/host_overhead.py",
        'p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")',
        'p.add_argument("--device", default="cpu")',
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I3 host_overhead --compile-only runs under the interpreter",
        "benchmarks/host_overhead.py",
        '        if backend.INTERPRETING:\n            p.error("--compile-only needs',
        '        if False:\n            p.error("--compile-only needs',
        "tests/test_benchmarks.py::test_host_overhead_refuses_options_it_cannot_honour",
    ),
    Mutant(
        "I4 host_overhead takes --skip-launch-path without --compile-only",
        "benchmarks/host_overhead.py",
        "    elif args.skip_launch_path:\n        p.error",
        "    elif False:\n        p.error",
        "tests/test_benchmarks.py::test_host_overhead_refuses_options_it_cannot_honour",
    ),
    Mutant(
        "I5 host_overhead --compiled never times the kernels traced",
        "benchmarks/host_overhead.py",
        'traced_too = args.device.startswith("cuda") and not args.compile_only',
        "traced_too = False",
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I6 host_overhead times the traced way on --device cuda only, not cuda:0",
        "benchmarks/host_overhead.py",
        'traced_too = args.device.startswith("cuda")',
        'traced_too = args.device == "cuda"',
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I7 host_overhead's 'needs CUDA' note printed on a GPU",
        "benchmarks/host_overhead.py",
        "    if not traced_too:\n        print(",
        "    if traced_too:\n        print(",
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I8 host_overhead compiles with graph breaks allowed (part of a layer compiled)",
        "benchmarks/host_overhead.py",
        "torch.compile(layer, fullgraph=True)",
        "torch.compile(layer)",
        "tests/test_benchmarks.py::test_host_overhead_compiles_each_way_afresh",
    ),
    Mutant(
        "I9 host_overhead times our layers at K = 3 under the label K=2",
        "benchmarks/host_overhead.py",
        "(8, num_modes=2)",
        "(8, num_modes=3)",
        "tests/test_benchmarks.py::test_host_overhead_layers_are_what_their_labels_say",
    ),
    Mutant(
        "I10 host_overhead's COMPILED_SHAPE (the warm-up's) not the maps that --compiled times",
        "benchmarks/host_overhead.py",
        'COMPILED_SHAPE = COMPILED_INPUTS["maps"]',
        'COMPILED_SHAPE = COMPILED_INPUTS["features"]',
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I11 host_overhead's eager layers left on the CPU beside a GPU input",
        "benchmarks/host_overhead.py",
        "_per_call_us(layer.to(args.device), x, args.calls)",
        "_per_call_us(layer, x, args.calls)",
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I12 host_overhead's compiled layers left on the CPU beside a GPU input",
        "benchmarks/host_overhead.py",
        "        layer = layer.to(device)\n",
        "",
        "tests/test_benchmarks.py::test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way",
    ),
    Mutant(
        "I13 warm_kernels --grid none asks the grid for its cases",
        "benchmarks/warm_kernels.py",
        "cases = [] if grid_name == NO_GRID else grid.cases(",
        "cases = grid.cases(",
        "tests/test_gpu_run.py::test_kernel_warm_up_of_grid_none_is_the_steps_and_host_overhead_only",
    ),
    Mutant(
        "I14 warm_kernels' eager step without its backward",
        "benchmarks/warm_kernels.py",
        "    F.cross_entropy(model(x), y).backward()",
        "    F.cross_entropy(model(x), y)",
        "tests/test_gpu_run.py::test_kernel_warm_up_steps_run_forward_and_backward_of_the_models_layers",
    ),
    Mutant(
        "I15 warm_kernels runs a compiled-step unit as an eager step",
        "benchmarks/warm_kernels.py",
        "            _compiled_step(*unit[:2])",
        "            _training_step(*unit[:2])",
        "tests/test_gpu_run.py::test_kernel_warm_up_units_run_their_own_calls_and_report_failures",
    ),
    Mutant(
        "I16 warm_kernels labels a compiled step as an eager one",
        "benchmarks/warm_kernels.py",
        '(" (compiled)" if len(unit) == 3 else "")',
        '""',
        "tests/test_gpu_run.py::test_kernel_warm_up_units_run_their_own_calls_and_report_failures",
    ),
    Mutant(
        "I17 warm_kernels swallows a unit's error",
        "benchmarks/warm_kernels.py",
        '        error = f"{type(exc).__name__}: {exc}"',
        '        error = ""',
        "tests/test_gpu_run.py::test_kernel_warm_up_units_run_their_own_calls_and_report_failures",
    ),
    Mutant(
        "I18 warm_kernels' workers compile for sm_90 whatever --arch",
        "benchmarks/warm_kernels.py",
        "    compile_instead_of_launch(arch)\n",
        "    compile_instead_of_launch()\n",
        "tests/test_gpu_run.py::test_kernel_warm_up_workers_compile_for_the_gpu_and_split_rows_as_it_does",
    ),
    Mutant(
        "I19 warm_kernels' workers split rows as a GPU of 132 multiprocessors, whatever it has",
        "benchmarks/warm_kernels.py",
        "layout.PROGRAMS_PER_SM * multiprocessors",
        "layout.PROGRAMS_PER_SM * 132",
        "tests/test_gpu_run.py::test_kernel_warm_up_workers_compile_for_the_gpu_and_split_rows_as_it_does",
    ),
    Mutant(
        "I20 warm_kernels' workers split rows as a CPU (one program)",
        "benchmarks/warm_kernels.py",
        "    layout.CPU_TARGET_PROGRAMS = layout.PROGRAMS_PER_SM * multiprocessors\n",
        "",
        "tests/test_gpu_run.py::test_kernel_warm_up_workers_compile_for_the_gpu_and_split_rows_as_it_does",
    ),
    Mutant(
        "I21 warm_kernels' architecture drops the minor version",
        "benchmarks/warm_kernels.py",
        "10 * properties.major + properties.minor",
        "10 * properties.major",
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I22 warm_kernels counts no failure in its last line",
        "benchmarks/warm_kernels.py",
        "            failed += bool(error)\n",
        "",
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I23 warm_kernels forks its workers after asking CUDA for the capability",
        "benchmarks/warm_kernels.py",
        'multiprocessing.get_context("spawn")',
        'multiprocessing.get_context("fork")',
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I24 warm_kernels' workers without the compile-only initializer",
        "benchmarks/warm_kernels.py",
        "args.jobs, mp_context=context, initializer=_init_worker, initargs=(arch, sms)",
        "args.jobs, mp_context=context",
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I25 warm_kernels warms a model named '' when --models is empty",
        "benchmarks/warm_kernels.py",
        '    models = [m for m in args.models.split(",") if m]',
        '    models = args.models.split(",")',
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I26 warm_kernels refuses --grid full (part all's)",
        "benchmarks/warm_kernels.py",
        "choices=(*grid.GRIDS[1:], NO_GRID)",
        "choices=(*grid.GRIDS[2:], NO_GRID)",
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I27 warm_kernels compiles host_overhead's compiled calls on the features, not the maps",
        "benchmarks/warm_kernels.py",
        "                if dim == host_overhead.COMPILED_SHAPE[0]:",
        "                if dim != host_overhead.COMPILED_SHAPE[0]:",
        "tests/test_gpu_run.py::test_kernel_warm_up_of_host_overhead_is_its_layers_and_compiled_maps",
    ),
    Mutant(
        "I28 warm_kernels runs BatchNorm through host_overhead's Triton calls",
        "benchmarks/warm_kernels.py",
        '            if name.startswith("mn_triton"):\n                layer.to(META)',
        "            if True:\n                layer.to(META)",
        "tests/test_gpu_run.py::test_kernel_warm_up_of_host_overhead_is_its_layers_and_compiled_maps",
    ),
    Mutant(
        "I29 warm_kernels' compiled-step inputs keep their autograd history",
        "benchmarks/warm_kernels.py",
        "    with torch.no_grad():\n        model(torch.randn(TRAIN_BATCH",
        "    if True:\n        model(torch.randn(TRAIN_BATCH",
        "tests/test_gpu_run.py::test_kernel_warm_up_steps_run_forward_and_backward_of_the_models_layers",
    ),
    Mutant(
        "I30 warm_kernels exits 1 when a unit failed (gpu_run.sh: a warm-up that failed)",
        "benchmarks/warm_kernels.py",
        '(they compile when launched)")\n    return 0',
        '(they compile when launched)")\n    return 1 if failed else 0',
        "tests/test_gpu_run.py::test_kernel_warm_up_main_on_a_gpu",
    ),
    Mutant(
        "I31 split_timing's splits column at K = 2 whatever the row's K",
        "benchmarks/split_timing.py",
        "    block_n, block_c, _, _ = mix._mn_blocks(n, c, k)",
        "    block_n, block_c, _, _ = mix._mn_blocks(n, c, 2)",
        "tests/test_benchmarks.py::test_split_timing_splits_column_is_the_kernels_split_at_each_k",
    ),
    Mutant(
        "I32 split_timing's step time the 20th percentile, not the median",
        "benchmarks/split_timing.py",
        "args.warmup, args.reps).ms_p50",
        "args.warmup, args.reps).ms_p20",
        "tests/test_benchmarks.py::test_split_timing_step_is_the_median_of_its_timed_calls_on_its_device",
    ),
    Mutant(
        "I33 split_timing's BatchNorm2d for (N, C, L) input",
        "benchmarks/split_timing.py",
        "    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d,",
        "    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm2d,",
        "tests/test_benchmarks.py::test_split_timing_batch_norm_takes_each_rank_of_input",
    ),
    Mutant(
        "I34 split_timing's defaults replace the options given",
        "benchmarks/split_timing.py",
        "        if getattr(args, name) is None:\n",
        "        if True:\n",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I35 split_timing without the Triton backend",
        "benchmarks/split_timing.py",
        '    mn_triton.set_backend("triton")\n',
        "",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I36 split_timing leaves SPLIT_MIN_ROWS as its last row set it",
        "benchmarks/split_timing.py",
        "        mix.SPLIT_MIN_ROWS = saved\n",
        "        pass\n",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I37 split_timing's BatchNorm left on the CPU",
        "benchmarks/split_timing.py",
        "            bn = _batch_norm(shape).to(args.device)",
        "            bn = _batch_norm(shape)",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I38 split_timing's ModeNorm left on the CPU",
        "benchmarks/split_timing.py",
        "                layer = mn_triton.ModeNorm(shape[1], num_modes=k).to(args.device)",
        "                layer = mn_triton.ModeNorm(shape[1], num_modes=k)",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I39 split_timing times ModeNorm at K = 2 whatever --k",
        "benchmarks/split_timing.py",
        "mn_triton.ModeNorm(shape[1], num_modes=k)",
        "mn_triton.ModeNorm(shape[1], num_modes=2)",
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I40 split_timing takes --device cuda:0 for a CPU",
        "benchmarks/split_timing.py",
        '    if torch.device(args.device).type != "cuda":',
        '    if args.device != "cuda":',
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I41 split_timing defaults to the CPU on a GPU machine",
        "benchmarks/split_timing.py",
        'parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")',
        'parser.add_argument("--device", default="cpu")',
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I42 split_timing times 5 calls, not 50, on a GPU",
        "benchmarks/split_timing.py",
        '"warmup": 10, "reps": 50}',
        '"warmup": 10, "reps": 5}',
        "tests/test_benchmarks.py::test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device",
    ),
    Mutant(
        "I43 warm_kernels takes an H200's 132 multiprocessors on any GPU (an H100 PCIe has 114)",
        "benchmarks/warm_kernels.py",
        "sms = properties.multi_processor_count if sms is None else sms",
        "sms = 132 if sms is None else sms",
        "tests/test_gpu_run.py::test_kernel_warm_up_target_is_as_given_else_the_gpus_else_an_h200s",
    ),
    Mutant(
        "I44 a warm-up test leaves TRITON_INTERPRET at compile_check's 0 for the tests after it",
        "tests/test_gpu_run.py",
        'monkeypatch.setenv("TRITON_INTERPRET", os.environ["TRITON_INTERPRET"])',
        "None",
        "tests/test_gpu_run.py::test_kernel_warm_up_workers_compile_for_the_gpu_and_split_rows_as_it_does",
    ),
    # --- gpu_diagnose and split_experiment audit (GPU-only tools, faked on the CPU) ---
    Mutant(
        "I45 gpu_diagnose's errors absolute, not relative",
        "tools/gpu_diagnose.py",
        "    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()",
        "    return (a - b).norm().item()",
        "tests/test_benchmarks.py::test_gpu_diagnose_comparisons_show_a_wrong_kernel_result",
    ),
    Mutant(
        "I46 gpu_diagnose compares the forward's scale with itself",
        "tools/gpu_diagnose.py",
        "scale {rel(ks, coeffs.scale):.1e}",
        "scale {rel(ks, ks):.1e}",
        "tests/test_benchmarks.py::test_gpu_diagnose_comparisons_show_a_wrong_kernel_result",
    ),
    Mutant(
        "I47 gpu_diagnose's moments error the shift's alone",
        "tools/gpu_diagnose.py",
        "    e_mom = max(rel(a, b) for a, b in zip(kstats, stats, strict=True))",
        "    e_mom = rel(kstats[0], stats[0])",
        "tests/test_benchmarks.py::test_gpu_diagnose_comparisons_show_a_wrong_kernel_result",
    ),
    Mutant(
        "I48 gpu_diagnose's gates against half the gates (an error of 1, printed e+00)",
        "tools/gpu_diagnose.py",
        " gates {rel(kg, gates):.1e}",
        " gates {rel(kg, gates / 2):.1e}",
        "tests/test_benchmarks.py::test_gpu_diagnose_comparisons_run_on_the_interpreter",
    ),
    Mutant(
        "I49 gpu_diagnose compares the backward's reference with itself",
        "tools/gpu_diagnose.py",
        "zip(ref._fields, got, ref, strict=True)",
        "zip(ref._fields, ref, ref, strict=True)",
        "tests/test_benchmarks.py::test_gpu_diagnose_comparisons_show_a_wrong_kernel_result",
    ),
    Mutant(
        "I50 gpu_diagnose's variants leave out the backward",
        "tools/gpu_diagnose.py",
        "                    compare_backward(n, c, length, k, training, label)\n",
        "",
        "tests/test_benchmarks.py::test_gpu_diagnose_variants_launch_every_kernel_they_change_then_put_it_back",
    ),
    Mutant(
        "I51 gpu_diagnose's own gates launch fused under 'no fp fusion'",
        "tools/gpu_diagnose.py",
        "CHUNK_C=cc, enable_fp_fusion=kmix.FP_FUSION,",
        "CHUNK_C=cc, enable_fp_fusion=True,",
        "tests/test_benchmarks.py::test_gpu_diagnose_variants_launch_every_kernel_they_change_then_put_it_back",
    ),
    Mutant(
        "I52 gpu_diagnose's variants leave fp fusion off after 'no fp fusion'",
        "tools/gpu_diagnose.py",
        "        kmix.FP_FUSION, kmix.MN_BLOCK_N = saved\n",
        "        kmix.MN_BLOCK_N = saved[1]\n",
        "tests/test_benchmarks.py::test_gpu_diagnose_variants_launch_every_kernel_they_change_then_put_it_back",
    ),
    Mutant(
        "I53 gpu_diagnose's warp variants force no warp count",
        "tools/gpu_diagnose.py",
        '**{**kw, "num_warps": self.warps})',
        "**kw)",
        "tests/test_benchmarks.py::test_gpu_diagnose_variants_launch_every_kernel_they_change_then_put_it_back",
    ),
    Mutant(
        "I54 gpu_diagnose's host timings add into the last call's gradients",
        "tools/gpu_diagnose.py",
        "            leaf.grad = None\n",
        "            pass\n",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_timings_run_each_backward_from_no_gradients",
    ),
    Mutant(
        "I55 gpu_diagnose's BatchNorm step clears the input's gradient alone",
        "tools/gpu_diagnose.py",
        "bn_step = _from_no_grads([xg, *bn.parameters()],",
        "bn_step = _from_no_grads([xg],",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_timings_run_each_backward_from_no_gradients",
    ),
    Mutant(
        "I56 gpu_diagnose's host time the fastest round, not the median",
        "tools/gpu_diagnose.py",
        "    return sorted(times)[len(times) // 2]",
        "    return min(times)",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_time_is_the_median_round_per_call_its_work_done",
    ),
    Mutant(
        "I57 gpu_diagnose's rounds stop their clock without waiting for the work",
        "tools/gpu_diagnose.py",
        "            fn()\n        torch.cuda.synchronize()\n        times.append(",
        "            fn()\n        times.append(",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_time_is_the_median_round_per_call_its_work_done",
    ),
    Mutant(
        "I58 gpu_diagnose's host time per round, not per call",
        "tools/gpu_diagnose.py",
        "        times.append((time.perf_counter() - t0) / calls * 1e6)",
        "        times.append((time.perf_counter() - t0) * 1e6)",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_time_is_the_median_round_per_call_its_work_done",
    ),
    Mutant(
        "I59 gpu_diagnose --host-probe goes on to the host-only stages and comparisons",
        "tools/gpu_diagnose.py",
        "        host_probe()\n        return\n",
        "        host_probe()\n",
        "tests/test_benchmarks.py::test_gpu_diagnose_options_choose_what_runs",
    ),
    Mutant(
        "I60 gpu_diagnose runs the variants despite --no-variants",
        "tools/gpu_diagnose.py",
        "    if not a.no_variants:",
        "    if True:",
        "tests/test_benchmarks.py::test_gpu_diagnose_options_choose_what_runs",
    ),
    Mutant(
        "I61 gpu_diagnose profiles without --profile",
        "tools/gpu_diagnose.py",
        "    if a.profile:",
        "    if True:",
        "tests/test_benchmarks.py::test_gpu_diagnose_options_choose_what_runs",
    ),
    Mutant(
        "I62 gpu_diagnose's float64 comparison in float32",
        "tools/gpu_diagnose.py",
        'compare_forward(16, 24, 143, 3, False, "float64", torch.float64)',
        'compare_forward(16, 24, 143, 3, False, "float64")',
        "tests/test_benchmarks.py::test_gpu_diagnose_options_choose_what_runs",
    ),
    Mutant(
        "I63 gpu_diagnose --host-only without the per-stage times",
        "tools/gpu_diagnose.py",
        "        host_stages()\n        profile()\n",
        "        profile()\n",
        "tests/test_benchmarks.py::test_gpu_diagnose_options_choose_what_runs",
    ),
    Mutant(
        "I64 gpu_diagnose takes --host-only with --host-probe (and drops --host-only)",
        "tools/gpu_diagnose.py",
        "    host = ap.add_mutually_exclusive_group()\n",
        "    host = ap\n",
        "tests/test_benchmarks.py::test_gpu_diagnose_host_only_and_host_probe_exclude_each_other",
    ),
    Mutant(
        "I65 split_experiment leaves captured calls' rule (GRAPH_SPLIT_MIN_ROWS) as it was",
        "tools/split_experiment.py",
        "mix.SPLIT_MIN_ROWS = mix.GRAPH_SPLIT_MIN_ROWS = int(sys.argv[1])",
        "mix.SPLIT_MIN_ROWS = int(sys.argv[1])",
        "tests/test_benchmarks.py::test_split_experiment_runs_train_step_with_eager_and_captured_calls_split",
    ),
    Mutant(
        "I66 split_experiment hands its own first argument on to train_step.py",
        "tools/split_experiment.py",
        "sys.argv = [script, *sys.argv[2:]]",
        "sys.argv = [script, *sys.argv[1:]]",
        "tests/test_benchmarks.py::test_split_experiment_runs_train_step_with_eager_and_captured_calls_split",
    ),
    Mutant(
        "I67 split_experiment runs train_step.py as a module, its main not run",
        "tools/split_experiment.py",
        'runpy.run_path(script, run_name="__main__")',
        'runpy.run_path(script, run_name="train_step")',
        "tests/test_benchmarks.py::test_split_experiment_runs_train_step_with_eager_and_captured_calls_split",
    ),
    Mutant(
        "I68 split_experiment takes '²' (str.isdigit) for a count and meets int()'s traceback",
        "tools/split_experiment.py",
        "not (sys.argv[1].isascii() and sys.argv[1].isdigit())",
        "not sys.argv[1].isdigit()",
        "tests/test_benchmarks.py::test_split_experiment_refuses_anything_but_a_count_first",
    ),
    Mutant(
        "I69 split_experiment's --help an error (status 1)",
        "tools/split_experiment.py",
        "    sys.exit(0)\n",
        "    sys.exit(1)\n",
        "tests/test_benchmarks.py::test_split_experiment_help_is_not_an_error",
    ),
    Mutant(
        "I70 split_experiment leaves AOTAutograd's cache on (graphs traced under other rules)",
        "tools/split_experiment.py",
        "torch._functorch.config.enable_autograd_cache = False\n",
        "\n",
        "tests/test_benchmarks.py::test_split_experiment_runs_train_step_with_eager_and_captured_calls_split",
    ),
    # --- the trace probe audit (tools/trace_probe.py's checks, and what they catch) ---
    Mutant(
        "O1 trace_probe: traced launches always the same as eager ones",
        "tools/trace_probe.py",
        "    return len(traced) == len(eager) and all(",
        "    return True or all(",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O2 trace_probe: launches compared without their grids",
        "tools/trace_probe.py",
        "t[:2] == e[:2] and all(",
        "t[0] == e[0] and all(",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O3 trace_probe: launches compared without their compile-time choices",
        "tools/trace_probe.py",
        'all(t[2].get(k, "absent") == v for k, v in e[2].items())',
        "True",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O4 trace_probe: a launch more or less than eager calls make goes unseen",
        "tools/trace_probe.py",
        "    return len(traced) == len(eager) and all(\n"
        '        t[:2] == e[:2] and all(t[2].get(k, "absent") == v for k, v in e[2].items())\n'
        "        for t, e in zip(traced, eager, strict=True)\n",
        "    return all(\n"
        '        t[:2] == e[:2] and all(t[2].get(k, "absent") == v for k, v in e[2].items())\n'
        "        for t, e in zip(traced, eager, strict=False)\n",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O5 trace_probe: inputs taken as written not reported",
        "tools/trace_probe.py",
        "        inputs = sorted(set(written) - KERNEL_OUTPUTS[kernel])",
        "        inputs = []",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O6 trace_probe: compile options among a recorded launch's arguments not reported",
        "tools/trace_probe.py",
        '        others = sorted(set(arguments) - parameters(kernel) - {"num_warps"})',
        "        others = []",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O7 trace_probe: exit status 0 whatever it finds",
        "tools/trace_probe.py",
        "    return 1 if problems else 0",
        "    return 0",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    Mutant(
        "O8 trace_probe: KERNEL_OUTPUTS takes an input for an output (its copy unreported)",
        "tools/trace_probe.py",
        '"_row_moments_kernel": {"SHIFT", "MEAN", "VAR"},',
        '"_row_moments_kernel": {"SHIFT", "MEAN", "VAR", "X"},',
        "tests/test_trace_probe.py::test_kernel_outputs_are_what_the_traced_launches_write",
    ),
    Mutant(
        "O9 trace_probe: the arguments inductor takes as written not read from the graph",
        "tools/trace_probe.py",
        'found.append((launch, list(node.kwargs.get("tensors_to_clone", []))))',
        "found.append((launch, []))",
        "tests/test_trace_probe.py::test_kernel_outputs_are_what_the_traced_launches_write",
    ),
    Mutant(
        "O10 trace_probe: launches recorded with the switch off not reported",
        "tools/trace_probe.py",
        "    return [] if (whole, recorded) == (2, 0) else",
        "    return [] if True else",
        "tests/test_trace_probe.py::test_probe_reports_launches_recorded_where_none_may_be",
    ),
    Mutant(
        "O11 trace_probe: float64 launches recorded with float32 floats not reported",
        "tools/trace_probe.py",
        "        if (whole, recorded > 0) != ((0, True) if fp64_floats else (2, False)):",
        "        if False:",
        "tests/test_trace_probe.py::test_probe_reports_launches_recorded_where_none_may_be",
    ),
    Mutant(
        "O12 trace_probe: launches recorded by torch.export not reported",
        "tools/trace_probe.py",
        "return [] if kept and not recorded else",
        "return [] if True else",
        "tests/test_trace_probe.py::test_probe_reports_launches_recorded_where_none_may_be",
    ),
    Mutant(
        "O13 trace_probe: the as-captured training case traced and called as eager ones",
        "tools/trace_probe.py",
        '("MN training, as captured", "ModeNorm2d", (32, 40, 3, 3), True, True, False)',
        '("MN training, as captured", "ModeNorm2d", (32, 40, 3, 3), True, False, False)',
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O14 trace_probe: no case splits rows across programs (as GPU calls with long rows do)",
        "tools/trace_probe.py",
        "        layout.CPU_TARGET_PROGRAMS = layout.PROGRAMS_PER_SM * H100_SMS",
        "        layout.CPU_TARGET_PROGRAMS = saved",
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O15 the split rows' merge launched, not recorded, when traced",
        "mn_triton/kernels/moments.py",
        "launch(_merge_splits_kernel, (cdiv(rows, block_rows),))(",
        "_merge_splits_kernel[(cdiv(rows, block_rows),)](",
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O16 recorded launches pass the compile option as a kernel argument",
        "mn_triton/kernels/layout.py",
        "        recorded(*args, **kwargs)",
        "        recorded(*args, enable_fp_fusion=enable_fp_fusion, **kwargs)",
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O17 the apply kernel stores into an input (inductor then copies it before each launch)",
        "mn_triton/kernels/apply.py",
        "    tl.store(out_ptr, out.to(OUT.dtype.element_ty), mask=mask)\n",
        "    tl.store(out_ptr, out.to(OUT.dtype.element_ty), mask=mask)\n"
        "    tl.store(SHIFT + rows, shift, mask=row_ok)\n",
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O18 recorded launches on their grid's first axis only",
        "mn_triton/kernels/layout.py",
        "    recorded = wrap_triton(kernel)[grid]",
        "    recorded = wrap_triton(kernel)[grid[:1]]",
        "tests/test_trace_probe.py::test_traced_graphs_launch_as_eager_calls_and_copy_no_input",
    ),
    Mutant(
        "O19 trace_probe: eager launches noted without their numbers (sizes, strides, eps)",
        "tools/trace_probe.py",
        "_grid3(grid), {**numbers, **options}))",
        "_grid3(grid), options))",
        "tests/test_trace_probe.py::test_probe_checks_report_each_mismatch",
    ),
    # --- from the fresh-eyes review of the public layers (2026-12-07) ---
    Mutant(
        "Q4 SyncModeNorm's synchronising path leaves weight and bias unchecked",
        "mn_triton/sync.py",
        "            self.running_mean_sq if updated else None, weight, bias, True, self.eps,\n",
        "            self.running_mean_sq if updated else None, None, None, True, self.eps,\n",
        "tests/test_sync.py::test_synchronising_checks_the_parameters_as_mode_norm",
    ),
    # --- stop 51 (2026-12-07): eval's unused r³, compile_check --compare ---
    Mutant(
        "Q5 the MN backward kernel forms ∂L/∂σ² in eval too (r³ overflows for a dead channel)",
        "mn_triton/kernels/mix.py",
        "    if TRAINING:  # (in eval μ and σ² are constants;",
        "    if True:  # (in eval μ and σ² are constants;",
        "tests/test_kernels.py::test_eval_of_a_dead_channel_with_tiny_eps_forms_no_overflow",
    ),
    Mutant(
        "J52 compile_check: PTX digests keep the source positions (every edit is a change)",
        "tools/compile_check.py",
        '    return hashlib.sha256("\\n".join(lines).encode()).hexdigest()[:16]',
        "    return hashlib.sha256(ptx.encode()).hexdigest()[:16]",
        "tests/test_gpu_compile.py::test_ptx_digests_leave_out_source_positions_and_compare_names_changes",
    ),
    Mutant(
        "J53 compile_check: --compare misses specialisations that are gone",
        "tools/compile_check.py",
        '        + [f"gone: {k}" for k in before.keys() - now.keys()]\n',
        "",
        "tests/test_gpu_compile.py::test_ptx_digests_leave_out_source_positions_and_compare_names_changes",
    ),
    Mutant(
        "J54 compile_check: --compare keeps one of a case's specialisations of a kernel",
        "tools/compile_check.py",
        '            found.setdefault(name, []).append(c["ptx_digest"])',
        '            found[name] = [c["ptx_digest"]]',
        "tests/test_gpu_compile.py::test_ptx_digests_leave_out_source_positions_and_compare_names_changes",
    ),
    Mutant(
        "J55 compile_check: --compare takes a file without digests (all would differ)",
        "tools/compile_check.py",
        '    if not all("ptx_digest" in c for c in compiled):',
        "    if False:",
        "tests/test_gpu_compile.py::test_ptx_digests_leave_out_source_positions_and_compare_names_changes",
    ),
    # --- from the audit of tools/ (2026-12-07): refusals, replays, raised draws ---
    Mutant(
        "J56 fuzz_sync: the replay command leaves out the backend (replays torch's)",
        "tools/fuzz_sync.py",
        "--seed {d.seed} --backend {backend} -v",
        "--seed {d.seed} -v",
        "tests/test_fuzz.py::test_sync_fuzzer_judges_every_quantity_and_nan",
    ),
    Mutant(
        "J57 fuzz: a draw that raises is skipped without a count",
        "tools/fuzz.py",
        "            raised += 1\n",
        "",
        "tests/test_fuzz.py::test_a_draw_that_raises_is_named_counted_and_the_run_goes_on",
    ),
    Mutant(
        "J58 fuzz: a draw that raises stops the run (no draw named)",
        "tools/fuzz.py",
        "        except Exception as exc:",
        "        except ArithmeticError as exc:",
        "tests/test_fuzz.py::test_a_draw_that_raises_is_named_counted_and_the_run_goes_on",
    ),
    Mutant(
        "J59 fuzz, fuzz_sync: --draws 0 passes as an empty run",
        "tools/fuzz.py",
        "    if args.draws < 1:",
        "    if args.draws < 0:",
        "tests/test_fuzz.py",
    ),
    Mutant(
        "J60 fuzz, fuzz_sync: a negative seed is taken (random.Random redraws its absolute value)",
        "tools/fuzz.py",
        "    if not 0 <= args.seed < MAX_SEED:",
        "    if not args.seed < MAX_SEED:",
        "tests/test_fuzz.py",
    ),
    Mutant(
        "J61 fuzz: --seconds alone still stops at 200 draws",
        "tools/fuzz.py",
        '        args.draws = MAX_SEED if getattr(args, "seconds", 0) else default_draws',
        "        args.draws = default_draws",
        "tests/test_fuzz.py::test_seconds_alone_draw_until_the_time_is_up",
    ),
    Mutant(
        "J62 fuzz_sync: a process that raises does not name its draw",
        "tools/fuzz_sync.py",
        "raised on {d}; {_replay(d, backend)}",
        "raised",
        "tests/test_fuzz.py::test_sync_fuzzer_names_the_draw_a_process_raised_on",
    ),
    Mutant(
        "J63 fuzz_sync: its counts go unchecked",
        "tools/fuzz_sync.py",
        "    check_counts(p, args, default_draws=300)\n",
        "    args.draws = args.draws or 300\n",
        "tests/test_fuzz.py::test_sync_fuzzer_refuses_counts_that_check_nothing",
    ),
    Mutant(
        "J64 mutants: --timeout 0 taken (every mutant 'caught' by its timeout)",
        "tools/mutants.py",
        "    if not args.timeout\x20> 0:",  # (\x20: this line is not its own target)
        "    if args.timeout < 0:",
        "tests/test_mutants.py::test_unknown_ids_and_a_timeout_of_nothing_are_refused",
    ),
    Mutant(
        "J65 mutants: unknown ids beside known ones dropped without a word",
        "tools/mutants.py",
        "    unknown = [i for i in asked\x20if i not in known]",  # (likewise)
        "    unknown = [] if set(asked) & known else asked",
        "tests/test_mutants.py::test_unknown_ids_and_a_timeout_of_nothing_are_refused",
    ),
    Mutant(
        "J66 compile_check: any --arch taken (LLVM aborts on some, after the sweep began)",
        "tools/compile_check.py",
        "default=90, choices=ARCHS,",
        "default=90,",
        "tests/test_gpu_compile.py::test_an_arch_llvm_aborts_on_and_a_json_nowhere_are_refused_first",
    ),
    Mutant(
        "J67 compile_check: --json into a missing folder found only after the sweep",
        "tools/compile_check.py",
        "    if args.json and (args.json.is_dir() or not args.json.parent.is_dir()):",
        "    if args.json and args.json.is_dir():",
        "tests/test_gpu_compile.py::test_an_arch_llvm_aborts_on_and_a_json_nowhere_are_refused_first",
    ),
    Mutant(
        "J68 mix_traffic: a shape of zeros counted",
        "tools/mix_traffic.py",
        "        if min(n, c, length) < 1 or (args.layer and n * length < 2):",
        "        if args.layer and n * length < 2:",
        "tests/test_mix_traffic.py",
    ),
    Mutant(
        "J69 mix_traffic: --k 0 counted",
        "tools/mix_traffic.py",
        "    if min(args.k) < 1:",
        "    if min(args.k) < 0:",
        "tests/test_mix_traffic.py::test_shapes_and_modes_that_count_nothing_are_refused",
    ),
    Mutant(
        "J70 setup.sh: TORCH_SPEC ignored where a torch is there",
        "tools/setup.sh",
        'if [ -n "${TORCH_SPEC:-}" ]; then',
        'if [ -n "${TORCH_SPEC:-}" ] && ! python -c "import torch" 2>/dev/null; then',
        "tests/test_setup_sh.py",
    ),
    Mutant(
        "J71 setup.sh: installs without pinning the torch there",
        "tools/setup.sh",
        'python -m pip install -q -e ".[bench,dev]" "torch==$torch_version"',
        'python -m pip install -q -e ".[bench,dev]"',
        "tests/test_setup_sh.py",
    ),
    Mutant(
        "J72 setup.sh: .venv's python not put first on PATH (activate's folder instead)",
        "tools/setup.sh",
        'export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"',
        'export VIRTUAL_ENV="$PWD/.venv"',
        "tests/test_setup_sh.py",
    ),
    Mutant(
        "J73 setup.sh: sourced into an interactive shell, it runs (set -e stays there)",
        "tools/setup.sh",
        "*i*) # sourced",
        "*NEVER*) # sourced",
        "tests/test_setup_sh.py",
    ),
    Mutant(
        "J74 fuzz: -v (as a replay runs) prints no traceback of a draw that raised",
        "tools/fuzz.py",
        "            if args.verbose:  # (as the replay runs) the traceback too",
        "            if False:",
        "tests/test_fuzz.py::test_a_draw_that_raises_is_named_counted_and_the_run_goes_on",
    ),
    Mutant(
        "Y17 spawned test processes print no stacks at their deadline (SIGUSR1 just kills them)",
        "tests/processes.py",
        "    faulthandler.register(signal.SIGUSR1, all_threads=True)\n",
        "",
        "tests/test_processes.py",
    ),
    Mutant(
        "Y18 the tests' gloo groups wait on a missing peer for torch's default 30 minutes",
        "tests/processes.py",
        "        timeout=PROCESS_GROUP_TIMEOUT,\n",
        "",
        "tests/test_processes.py",
    ),
]


def target_count(mutant: Mutant, root: Path = ROOT) -> int:
    """How often the mutant's target text occurs in its file (it must be exactly once)."""
    return (root / mutant.file).read_text().count(mutant.old)


def scratch_copy(dest: Path) -> None:
    """The working tree without .git, virtual environments and caches."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", ".pytest_cache", ".ruff_cache", ".benchmarks", "reports"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)


def run_mutant(mutant: Mutant, copy: Path, timeout_s: float) -> tuple[bool, str]:
    """Apply the mutant in the copy, run its tests (stop at the first failure), restore.
    Returns (caught, the line that says why)."""
    path = copy / mutant.file
    source = path.read_text()
    path.write_text(source.replace(mutant.old, mutant.new))
    # The copy first on the path: an editable install would otherwise import ROOT's package.
    env = {**os.environ, "PYTHONPATH": str(copy)}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            command + mutant.tests.split(),
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return True, f"tests did not finish in {timeout_s:.0f} s (a hang counts as caught)"
    finally:
        path.write_text(source)
    lines = done.stdout.splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = lines[-1] if lines else ""
    if done.returncode == 0:
        return False, summary
    if done.returncode < 0 or not (failed or summary):
        return True, f"the test process crashed (status {done.returncode})"
    return True, (failed[0] if failed else summary)[:160]


def mutant_id(m: Mutant) -> str:
    return m.name.split()[0]


def select(ids: list[str]) -> list[Mutant]:
    """The mutants of these ids, exactly: Y1 is not Y10–Y16."""
    return [m for m in MUTANTS if mutant_id(m) in ids]


def select_from(first: str) -> list[Mutant]:
    """The mutants from this id on, in list order (empty for an unknown id)."""
    ids = [mutant_id(m) for m in MUTANTS]
    return MUTANTS[ids.index(first) :] if first in ids else []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="ID", help="those mutants, by id (exactly)")
    p.add_argument("--from", dest="first", metavar="ID", help="the mutants from this one on")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per mutant's tests")
    args = p.parse_args()
    if args.only and args.first:
        p.error("--only and --from exclude each other")
    if not args.timeout > 0:  # (a timeout counts as caught: 0 s would pass every mutant)
        p.error(f"--timeout must be a positive number of seconds, not {args.timeout}")
    known = {mutant_id(m) for m in MUTANTS}
    asked = args.only or ([args.first] if args.first else [])
    unknown = [i for i in asked if i not in known]
    chosen = select(args.only) if args.only else select_from(args.first) if args.first else MUTANTS
    if args.list or unknown:
        for m in MUTANTS:
            print(f"{m.name}  [{m.file}; expect {m.expect}]")
        if unknown:  # after the list, to choose from
            print(f"no mutant has the id {', '.join(unknown)} (ids above)", file=sys.stderr)
        return 2 if unknown else 0
    stale = [m.name for m in chosen if target_count(m) != 1]
    if stale:
        print("target text not found exactly once (update the mutant):", *stale, sep="\n  ")
        return 1
    unexpected = []
    with tempfile.TemporaryDirectory(prefix="mn-mutants-") as scratch:
        copy = Path(scratch) / "tree"
        scratch_copy(copy)
        for i, m in enumerate(chosen, 1):
            start = time.perf_counter()
            caught, detail = run_mutant(m, copy, args.timeout)
            outcome = "caught" if caught else "survived"
            as_expected = caught == (m.expect == "caught")
            mark = "ok" if as_expected else "UNEXPECTED"
            seconds = time.perf_counter() - start
            print(f"[{i}/{len(chosen)}] {mark:10s} {outcome:8s} {m.name} ({seconds:.0f} s)")
            print(f"    {detail}" + (f"\n    expected to survive: {m.why}" if m.why else ""))
            sys.stdout.flush()
            if not as_expected:
                unexpected.append(m.name)
    print(f"{len(chosen)} mutants, {len(unexpected)} with an unexpected outcome")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
