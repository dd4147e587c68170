"""The three passes over x (row moments, row gradient sums, row affine), kernel by kernel.

Run through Triton's interpreter on CPU tensors and compared with float64 evaluations.
"""

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl

import mn_triton
from helpers import (
    TOLERANCE,
    assert_close,
    assert_same_point_results,
    check_against_oracle,
    randomize,
    record_dx_terms,
    record_guarded_launches,
    spy_launches,
    spy_row_passes,
    tiny_tiles,
)
from mn_triton.kernels import layout
from mn_triton.kernels.apply import row_affine
from mn_triton.kernels.mix import (
    _mgn_pivot,
    _own_samples,
    _row_offsets,
    _softmax_backward,
    _split_offset,
)
from mn_triton.kernels.moments import row_grad_sums, row_moments
from reference._base import stat_dtype


def _rows64(t: torch.Tensor) -> torch.Tensor:
    return t.double().reshape(t.shape[0], t.shape[1], -1)


def _shifts(rows: torch.Tensor, stat: torch.dtype = torch.float32) -> torch.Tensor:
    """Each row's shift, (N, C): the median of its values at 0, L // 2 and L − 1 (float64
    statistics: its first value)."""
    if stat == torch.float64:
        return rows[..., 0]
    length = rows.shape[-1]
    return rows[..., [0, length // 2, length - 1]].median(-1).values


def _data(*shape: int) -> torch.Tensor:
    """Values with an offset, drawn before any view is taken: arithmetic on a view would
    return a contiguous tensor and the kernels would never see the view's strides."""
    return torch.randn(*shape) * 3 + 1


LAYOUTS = {
    "nchw": lambda: _data(3, 5, 7, 6),
    "channels_last": lambda: _data(3, 5, 7, 6).to(memory_format=torch.channels_last),
    "two_level_slice": lambda: _data(3, 5, 8, 9)[:, :, 1:, :6],
    "three_level_slice": lambda: _data(2, 3, 4, 5, 6)[:, :, :, 1:, :-1],
    # dense, memory order (D, N, H, C, W): three levels as well, and empty_like keeps them,
    # so the kernels write a contiguous copy of the output that is then copied back
    "three_level_dense": lambda: _data(4, 2, 5, 3, 6).permute(1, 3, 0, 2, 4),
    "strided_channels": lambda: _data(4, 12, 5)[:, ::3],
    "2d": lambda: _data(9, 6),
    "expanded_rows": lambda: _data(1, 4, 1, 5).expand(3, 4, 6, 5),
    "single_element_rows": lambda: _data(4, 3, 1, 1),
    "samples_contiguous": lambda: _data(10, 6).t().unsqueeze(1),  # (N, 1, L), stride_n = 1
}
DENSE_LAYOUTS = {"nchw", "2d", "single_element_rows"}


def _layout(case: str) -> torch.Tensor:
    x = LAYOUTS[case]()
    assert x.is_contiguous() == (case in DENSE_LAYOUTS), f"{case}: not the intended layout"
    return x


@pytest.fixture(params=["default_tiles", "tiny_tiles"])
def tiles(request):
    with tiny_tiles() if request.param == "tiny_tiles" else contextlib.nullcontext():
        yield request.param


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_row_moments(case, tiles):
    x = _layout(case)
    shift, mean_dev, var = row_moments(x, torch.float32)
    assert shift.is_contiguous() and mean_dev.is_contiguous() and var.is_contiguous()
    rows = _rows64(x)
    assert torch.equal(shift.double(), _shifts(rows))
    assert_close(shift.double() + mean_dev.double(), rows.mean(-1), 1e-6, "mean")
    expected_var = rows.var(-1, correction=0)
    if expected_var.norm() == 0:  # rows of one element
        assert torch.equal(var, torch.zeros_like(var))
    else:
        assert_close(var, expected_var, 1e-6, "variance")


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_row_grad_sums_and_affine(case, tiles):
    x = _layout(case)
    dy = torch.randn(x.shape).to(memory_format=torch.channels_last) if x.dim() == 4 else None
    dy = torch.randn(x.shape) if dy is None else dy
    shift, _, _ = row_moments(x, torch.float32)
    sum_dy, sum_dy_xs = row_grad_sums(x, dy, shift)
    assert sum_dy.is_contiguous() and sum_dy_xs.is_contiguous()
    rows, dy_rows = _rows64(x), _rows64(dy)
    centred = rows - _shifts(rows).unsqueeze(-1)
    assert_close(sum_dy, dy_rows.sum(-1), 1e-6, "sum dy")
    assert_close(sum_dy_xs, (dy_rows * centred).sum(-1), 1e-6, "sum dy (x - s)")

    a, b, d = (torch.randn_like(shift) for _ in range(3))
    y = row_affine(x, shift, a, b)
    dx = row_affine(x, shift, a, b, dy, d)
    per_row = [t.double().unsqueeze(-1) for t in (a, b, d)]
    assert y.shape == x.shape and y.stride() == torch.empty_like(x).stride()
    assert_close(_rows64(y), centred * per_row[0] + per_row[1], 1e-6, "affine")
    assert_close(_rows64(dx), centred * per_row[0] + per_row[1] + dy_rows * per_row[2], 1e-6)


def test_row_affine_takes_strided_coefficients():
    """The per-row coefficients may be views ((N, C) transposed from (C, N)): row_affine
    makes each of them dense before the kernel indexes them flat as n·C + c."""
    x, dy = _data(3, 5, 7, 6), torch.randn(3, 5, 7, 6)
    shift, a, b, d = (torch.randn(5, 3).t() for _ in range(4))
    assert not any(t.is_contiguous() for t in (shift, a, b, d))
    dx = row_affine(x, shift, a, b, dy, d)
    per_row = [t.double().unsqueeze(-1) for t in (shift, a, b, d)]
    rows, dy_rows = _rows64(x), _rows64(dy)
    want = (rows - per_row[0]) * per_row[1] + per_row[2] + dy_rows * per_row[3]
    assert_close(_rows64(dx), want, 1e-6, "dx")
    y = row_affine(x, shift, a, b)
    assert_close(_rows64(y), (rows - per_row[0]) * per_row[1] + per_row[2], 1e-6, "y")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(dtype):
    """The three passes on each input dtype against float64. Drawn in float64, so that
    float64 inputs hold values float32 cannot (a pass rounding them would show); the
    gradient sums taken around a shift other than the rows' first values (any will do)."""
    x = (torch.randn(4, 6, 5, 7, dtype=torch.float64) * 2 + 3).to(dtype)
    dy = torch.randn(x.shape, dtype=torch.float64).to(dtype)
    stat = torch.float64 if dtype == torch.float64 else torch.float32
    shift, mean_dev, var = row_moments(x, stat)
    assert shift.dtype == mean_dev.dtype == var.dtype == stat
    rows = _rows64(x)
    tol = 1e-12 if dtype == torch.float64 else 1e-6  # statistics are float32 of exact inputs
    assert_close(shift.double() + mean_dev.double(), rows.mean(-1), tol, "mean")
    assert_close(var, rows.var(-1, correction=0), tol, "variance")
    other_shift = shift + torch.randn_like(shift)
    sum_dy, sum_dy_xs = row_grad_sums(x, dy, other_shift)
    assert sum_dy.dtype == sum_dy_xs.dtype == stat
    dy_rows = _rows64(dy)
    assert_close(sum_dy, dy_rows.sum(-1), tol, "sum dy")
    centred = rows - other_shift.double().unsqueeze(-1)
    assert_close(sum_dy_xs, (dy_rows * centred).sum(-1), tol, "sum dy (x - s)")
    y = row_affine(x, shift, torch.ones_like(shift), torch.zeros_like(shift))
    assert y.dtype == dtype
    assert torch.equal(shift.double(), _shifts(rows, stat))
    assert_close(_rows64(y), rows - _shifts(rows, stat).unsqueeze(-1), TOLERANCE[dtype], "affine")


def test_large_offset_and_outliers_keep_variance_accurate():
    """No E[x²] − E[x]²: a 1e4 offset, and rows whose first, middle or last value is a huge
    outlier (the median of the three is the shift: never the outlier, whose distance from
    the rest, were it the shift, every x − s would carry into the sums), and a row where two
    of them are, whose shift is then an outlier: still no E[x²] − E[x]²."""
    x = torch.randn(2, 3, 64, 64) + 1e4
    x[1, 2, 0, 0] = x[0, 1, 32, 0] = x[1, 0, -1, -1] = 1e6
    x[0, 2, 0, 0] = x[0, 2, 32, 0] = 1e6  # two of the three: this row's shift is an outlier
    shift, mean_dev, var = row_moments(x, torch.float32)
    rows = _rows64(x)
    assert shift[0, 2] == 1e6 and shift[:, :2].max() < 2e4 and shift[1].max() < 2e4
    assert_close(var, rows.var(-1, correction=0), 1e-6, "variance")
    assert_close(mean_dev.double(), rows.mean(-1) - shift.double(), 1e-6, "mean − shift")


def test_layout_planner_merges_what_it_can():
    plan, strides = layout.plan_rows(torch.empty(2, 3, 4, 5))
    assert (plan.length, plan.inner_size, strides[0].inner) == (20, 20, 1)
    x = torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last)
    plan, strides = layout.plan_rows(x)
    assert (plan.length, plan.inner_size, strides[0].c, strides[0].inner) == (20, 20, 1, 3)
    plan, strides = layout.plan_rows(torch.empty(2, 3, 8, 9)[:, :, 1:, :6])
    assert (plan.length, plan.inner_size, strides[0].outer, strides[0].inner) == (42, 6, 9, 1)
    assert plan.two_level
    # Tensors of one call merge only where all of them can.
    nchw, nhwc = (
        torch.empty(2, 3, 4, 5),
        torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last),
    )
    plan, _ = layout.plan_rows(nchw, nhwc)
    assert plan.length == 20
    assert layout.plan_rows(torch.empty(2, 3, 4, 5, 6)[:, :, :, 1:, :-1]) is None
    # Size-1 dims have no extent: their (arbitrary) strides must not split a level.
    plan, strides = layout.plan_rows(
        torch.empty(120).as_strided((2, 3, 4, 1, 5), (60, 20, 5, 999, 1))
    )
    assert (plan.length, plan.inner_size, strides[0].inner) == (20, 20, 1)


def test_tiles_follow_the_memory_order_of_rows():
    """A tile spans many rows and few positions only where neighbouring rows are
    neighbours in memory; otherwise as much of a row as fits."""

    def tile(x: torch.Tensor) -> tuple[int, int]:
        plan, _ = layout.plan_rows(x)
        return plan.block_rows, plan.block_len

    assert tile(torch.empty(512, 3, 64, 64)) == (2, 1024)  # NCHW: rows are runs
    # Short rows: 8×8 maps fill tiles of 64 positions exactly, 32 rows to a program.
    assert tile(torch.empty(64, 32, 8, 8)) == (32, 64)
    assert tile(torch.empty(512, 3, 64, 64).to(memory_format=torch.channels_last)) == (128, 16)
    storage = torch.empty(512 * 4096)
    # One channel: the rows are samples, here adjacent in memory (stride_n = 1) ...
    assert tile(storage.as_strided((512, 1, 4096), (1, 1, 512))) == (128, 16)
    # ... or not (stride_n = 2): then stride_c = 1 says nothing, as there is one channel.
    assert tile(storage.as_strided((256, 1, 4096), (2, 1, 512))) == (2, 1024)


def test_reduction_splits_cover_each_row_once(monkeypatch):
    monkeypatch.setattr(layout, "MAX_TILE", 16)
    monkeypatch.setattr(layout, "CPU_TARGET_PROGRAMS", 5)
    plan, _ = layout.plan_rows(torch.empty(1, 1, 100))
    split_len, num_splits = layout.reduction_split(plan, torch.device("cpu"))
    assert split_len % plan.block_len == 0
    assert (num_splits - 1) * split_len < plan.length <= num_splits * split_len


def test_64_bit_indices_where_the_last_split_ends_past_2_pow_31(monkeypatch):
    """One row just under 2³¹ positions (4 GiB of float16), split as across an H100's 132
    SMs (528 programs): splits are whole tiles, so the last one ends past 2³¹ although the
    row does not. The kernels form that end (start + split_len) as an index; in int32 it
    wraps negative and the last split reads nothing. The same row unsplit stays in int32."""
    monkeypatch.setattr(layout, "CPU_TARGET_PROGRAMS", 528)
    x = torch.empty(1, 1, 2**31 - 2000, dtype=torch.float16, device="meta")  # no memory
    plan, _ = layout.plan_rows(x)
    split_len, num_splits = layout.reduction_split(plan, torch.device("cpu"))
    assert plan.length + plan.block_len < 2**31 <= split_len * num_splits
    assert layout.needs_64_bit_indices(plan, split_len, num_splits)
    assert not layout.needs_64_bit_indices(plan)


# Offsets past 2³¹ elements: a strided view into a >4 GiB (virtual, mostly untouched)
# storage. With 32-bit offsets the kernels would read elsewhere or crash, so this runs in a
# subprocess and must print the errors it measured.
_INT64_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from mn_triton.kernels.apply import row_affine
    from mn_triton.kernels.moments import row_grad_sums, row_moments

    torch.manual_seed(0)
    storage = torch.empty(2**31 + 64, dtype=torch.float16)
    views = {
        "sample_offset": storage.as_strided((3, 2, 5), (2**30 + 8, 5, 1)),
        "position_offset": storage.as_strided((1, 2, 5), (10, 1, 2**29 + 3)),
        # A stride below 2³¹ that only passes it times the channel index.
        "channel_offset": storage.as_strided((1, 3, 5), (15, 2**30 + 8, 1)),
    }
    for name, x in views.items():
        x.copy_(torch.randn(x.shape) + 2)
        rows = x.double().reshape(x.shape[0], x.shape[1], -1)
        shift, mean_dev, var = row_moments(x, torch.float32)
        dy = torch.randn(x.shape).half()
        sum_dy, sum_dy_xs = row_grad_sums(x, dy, shift)
        one, zero = torch.ones_like(shift), torch.zeros_like(shift)
        out = row_affine(x, shift, one, zero, dy, one)
        length = rows.shape[-1]
        shifts = rows[..., [0, length // 2, length - 1]].median(-1).values
        expected = rows - shifts.unsqueeze(-1) + dy.double().reshape(rows.shape)
        errors = [
            (shift.double() - shifts).abs().max().item(),
            ((shift + mean_dev).double() - rows.mean(-1)).abs().max().item(),
            (var.double() - rows.var(-1, correction=0)).abs().max().item(),
            (sum_dy.double() - dy.double().reshape(rows.shape).sum(-1)).abs().max().item(),
            (out.double().reshape(rows.shape) - expected).abs().max().item(),
        ]
        print(name, max(errors))
    """
)


def test_offsets_beyond_2_pow_31():
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", _INT64_SCRIPT],
        capture_output=True, text=True, timeout=300, cwd=repo, env=env,
    )  # fmt: skip
    assert result.returncode == 0, f"kernels crashed on 64-bit offsets:\n{result.stderr[-2000:]}"
    errors = dict(line.split() for line in result.stdout.strip().splitlines())
    assert set(errors) == {"sample_offset", "position_offset", "channel_offset"}
    for name, err in errors.items():
        assert float(err) < 1e-2, f"{name}: max error {err}"  # float16 output rounding


@pytest.mark.parametrize("case", ["many_rows", "long_row", "split_end"])
def test_index_counts_beyond_2_pow_31(case):
    """N·C ≥ 2³¹ rows, one row of L ≥ 2³¹ positions split as on a GPU, and one row below 2³¹
    whose last split ends at 2³¹: the last programs of each pass (`wide_index_check.py` runs
    only those) compute their rows and positions exactly. With 32-bit indices they wrap: a
    crash, or the last rows' (or splits') statistics wrong."""
    script = Path(__file__).resolve().with_name("wide_index_check.py")
    repo = script.parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(script), case],
        capture_output=True, text=True, timeout=300, cwd=repo, env=env,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{case}: exit {result.returncode} (a crash is an access outside the tensors):\n"
        f"{result.stderr[-2000:]}"
    )
    if result.stdout.startswith("SKIP"):
        pytest.skip(result.stdout.strip())
    name, error = result.stdout.split()
    assert name == case
    assert float(error) < 5e-3, f"{case}: error {error}"  # float16 data and output


@triton.jit
def _mgn_pivot_kernel(SHIFT, OUT, C, CHUNK_C: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    tl.store(OUT + n, _mgn_pivot(SHIFT, n * C, C, CHUNK_C))


def check_mgn_pivots(device: str, dtype: torch.dtype) -> None:
    """MGN's pivot per sample: of its channels' shifts, the one nearest 0 (the first of
    equals, within a block of channels and across blocks; never a NaN); channel 0's where
    no magnitude is a number (every shift NaN); never a padded lane past C. The torch ops'
    mix (mix._mgn_pivots) and the kernels' (_mgn_pivot, 2 channels a block) alike."""
    from mn_triton import mix as torch_mix

    inf, nan = float("inf"), float("nan")
    rows = [  # (shifts, pivot)
        ([1e6, 0.3, 1.1, -0.5, 0.7], 0.3),  # an outlier at channel 0, the pivot once
        ([1e4, 1e4, 1e4, 1.5, -2.0], 1.5),  # most channels far: nearest their mean once
        ([5.0, 1.0, 3.0, -1.0, 4.0], 1.0),  # 1 and −1 equally near, blocks apart
        ([5.0, 3.0, -1.0, 1.0, 4.0], -1.0),  # the same within a block
        ([10.0, -10.0, 9.0, -9.0, 5.0], 5.0),  # a padded lane's 0 would be nearer
        ([-7.0, nan, 2.0, 3.0, 4.0], 2.0),  # a NaN is no magnitude
        ([nan, 1.0, 2.0, 3.0, 4.0], 1.0),
        ([inf, 1.0, 2.0, 3.0, 4.0], 1.0),
        ([-inf, nan, inf, nan, inf], -inf),  # no finite shift: the first non-NaN
        ([nan, nan, nan, nan, nan], nan),  # no magnitude at all: channel 0's
    ]
    shift = torch.tensor([r for r, _ in rows], dtype=dtype, device=device)
    expected = torch.tensor([p for _, p in rows], dtype=dtype, device=device)
    kernels = torch.empty(len(rows), dtype=dtype, device=device)
    _mgn_pivot_kernel[(len(rows),)](shift, kernels, shift.shape[1], CHUNK_C=2)
    exactly = {"rtol": 0, "atol": 0, "equal_nan": True}
    torch.testing.assert_close(kernels, expected, **exactly)
    torch.testing.assert_close(torch_mix._mgn_pivots(shift).flatten(), expected, **exactly)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf − inf, as meant
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mgn_pivots_are_the_shifts_nearest_0_in_both_mixes(dtype):
    """(check_mgn_pivots. The interpreter's argmin takes the first of equals whatever its
    tie_break_left says, so a block's first of equals is the compiler's to check:
    tests/test_gpu.py runs this on a GPU too.)"""
    check_mgn_pivots("cpu", dtype)


@triton.jit
def _row_offsets_kernel(OUT, first_row, width, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = first_row + tl.arange(0, BLOCK_N)  # int32, as the mix kernels' sample indices
    cols = tl.arange(0, BLOCK_C)
    local = tl.arange(0, BLOCK_N)[:, None] * BLOCK_C + cols[None, :]
    tl.store(OUT + local, _row_offsets(rows, cols, width))


def test_mix_row_offsets_pass_2_pow_31():
    """The mix kernels index their (N, C) statistics through `_row_offsets`; at N·C ≥ 2³¹
    (too big to run here) an int32 product would wrap. Rows around 2³¹ / width, checked
    exactly, and no other row product in the mix kernels' source."""
    width = 3 * 2**20 + 7
    first_row = 2**31 // width - 2
    out = torch.empty(4, 8, dtype=torch.int64)
    _row_offsets_kernel[(1,)](out, first_row, width, BLOCK_N=4, BLOCK_C=8)
    rows = torch.arange(first_row, first_row + 4, dtype=torch.int64)
    expected = rows[:, None] * width + torch.arange(8)[None, :]
    assert expected.max() >= 2**31 > expected.min()
    assert torch.equal(out, expected)
    source = (Path(__file__).resolve().parents[1] / "mn_triton/kernels/mix.py").read_text()
    assert "rows[:, None] *" not in source
    assert "N * K" not in source  # the step between channel blocks' (N, K) shares: in 64 bits
    assert "pid * N" not in source  # a channel block's first row of those shares: likewise


def test_mode_norm_blocks_stay_within_what_compiled_right_on_a_gpu():
    """The MN mix kernels' blocks (_mn_blocks): at most MN_BLOCK_N = 8 samples and MN_TILE
    elements (one sample and one channel past that K). Larger blocks, of ≥ 16 samples and
    ≥ 16 channels, compiled to wrong coefficients on an H200 (kernels/mix.MN_TILE); the
    interpreter cannot show that, so the rule itself is pinned here."""
    from mn_triton.kernels import mix as kernels

    for n in (1, 3, 8, 9, 16, 33, 128, 256, 8192, 2**20):
        for c in (1, 3, 8, 16, 24, 64, 512):
            for k in (1, 2, 3, 6, 8, 16, 300, 4096):
                block_n, block_c, k_pad, chunk_c = kernels._mn_blocks(n, c, k)
                case = (n, c, k, block_n, block_c, k_pad)
                assert 1 <= block_n <= 8, case
                assert block_n * k_pad * block_c <= max(512, k_pad), case
                assert not (block_n >= 16 and block_c >= 16), case
                assert block_n * k_pad * chunk_c <= max(512, k_pad), case


def test_mode_group_norm_blocks_stay_within_mgn_tile():
    """The MGN mix kernels' blocks of channels × modes (_mgn_blocks): at most MGN_TILE
    elements (one channel past that K), as many channels as fit. At MIX_TILE's 4096 (32
    elements per thread and temporary) the compiled backward kernel ran out of registers
    (sm_90: 255, spilling 224 bytes per thread at C = 512, K = 8; tools/compile_check.py);
    the interpreter cannot show that, so the rule itself is pinned here."""
    from mn_triton.kernels import mix as kernels

    assert kernels.MGN_TILE == 1024
    for c in (1, 3, 8, 16, 24, 64, 512, 2048):
        for k in (1, 2, 3, 6, 8, 16, 50, 300, 4096):
            k_pad, chunk_c = kernels._mgn_blocks(c, k)
            case = (c, k, k_pad, chunk_c)
            assert k_pad == triton.next_power_of_2(k) and chunk_c >= 1, case
            assert k_pad * chunk_c <= max(1024, k_pad), case
            assert chunk_c == min(triton.next_power_of_2(c), max(1, 1024 // k_pad)), case


@triton.jit
def _own_samples_kernel(OUT, N, ROWS_PER_SPLIT):
    start, stop = _own_samples(N, ROWS_PER_SPLIT)
    tl.store(OUT + 2 * tl.program_id(1), start)
    tl.store(OUT + 2 * tl.program_id(1) + 1, stop)


@pytest.mark.parametrize("n", [2**31 - 3, 2**31 + 5, 3 * 10**9])
def test_samples_split_past_2_pow_31(n):
    """The MN mix kernels' splits of the samples (_mn_splits), [start, stop) per split, for
    N around and past 2³¹ (too big to run here; a split's start + its length wraps in
    int32): consecutive, covering all N samples once."""
    from mn_triton.kernels import mix as kernels

    block_n, block_c, _, _ = kernels._mn_blocks(n, 1, 2)
    splits, rows = kernels._mn_splits(n, 1, block_n, block_c)
    assert splits == kernels.MIX_PROGRAMS
    out = torch.empty(splits, 2, dtype=torch.int64)
    _own_samples_kernel[(1, splits)](out, n, rows)
    starts = torch.arange(splits, dtype=torch.int64) * rows
    assert torch.equal(out[:, 0], starts)
    assert torch.equal(out[:, 1], (starts + rows).clamp(max=n))
    assert out[-1, 0] < n == out[-1, 1]


@triton.jit
def _split_offset_kernel(OUT, SPLIT_STRIDE):
    tl.store(OUT + tl.program_id(1), _split_offset(SPLIT_STRIDE))


def test_split_offsets_pass_2_pow_31():
    """Where the samples are split, each split writes its partial results (MN's backward:
    a row of 2C + 4·K·C + K elements) at split · SPLIT_STRIDE (_split_offset), past 2³¹
    where those rows are long (too big to run here): an int32 product would wrap."""
    stride = 2**31 // 3 + 5
    out = torch.empty(4, dtype=torch.int64)
    _split_offset_kernel[(1, 4)](out, stride)
    expected = torch.arange(4, dtype=torch.int64) * stride
    assert expected.max() >= 2**31
    assert torch.equal(out, expected)


@triton.jit
def _softmax_backward_kernel(G, G_DG, OUT, B, K, BLOCK_B: tl.constexpr, K_PAD: tl.constexpr):
    rows, modes = tl.arange(0, BLOCK_B), tl.arange(0, K_PAD)
    mask = (rows < B)[:, None] & (modes < K)[None, :]
    idx = rows[:, None] * K + modes[None, :]
    g = tl.load(G + idx, mask=mask, other=0.0)
    g_dg = tl.load(G_DG + idx, mask=mask, other=0.0)
    tl.store(OUT + idx, _softmax_backward(g, g_dg, K_PAD), mask=mask)


def _gate_rows(k: int) -> torch.Tensor:
    """Logits per row: spread, saturated (one gate within 1e-9 of 1, or 1e-3), a tie between
    the two largest gates, all equal, and one mode far below the rest."""
    spread = torch.randn(4, k, dtype=torch.float64) * 3
    saturated = torch.randn(2, k, dtype=torch.float64)
    saturated[0, k // 2] += 25.0
    saturated[1, -1] += 10.0
    tied = torch.randn(1, k, dtype=torch.float64)
    tied[0, :2] = tied.max() + 4.0
    low = torch.zeros(1, k, dtype=torch.float64)
    low[0, 0] = -30.0
    return torch.cat([spread, saturated, tied, torch.zeros(1, k, dtype=torch.float64), low])


@pytest.mark.parametrize("k", [1, 2, 3, 7, 64, 200])
def test_softmax_backward_keeps_each_term_precise(k):
    """The mix kernels' softmax backward, d_k = g_k∂g_k·Σ_{j≠k} g_j − g_k·Σ_{j≠k} g_j∂g_j in
    O(K) per row, against float64 on the same float32 inputs: each d_k within a few ε of its
    own terms' magnitudes, also when one gate saturates (where the usual g⊙∂g − g·Σ g∂g loses
    all of 1 − g_k: checked below to miss the same bound) and when two gates tie."""
    logits = _gate_rows(k)
    f64 = torch.float64
    grad = torch.randn(logits.shape, dtype=f64) * torch.logspace(-3, 3, k, dtype=f64)  # ∂L/∂g
    g = torch.softmax(logits, 1).float()
    g_dg = (g.double() * grad).float()
    out = torch.empty_like(g)
    b = g.shape[0]
    _softmax_backward_kernel[(1,)](g, g_dg, out, b, k, BLOCK_B=triton.next_power_of_2(b),
                                   K_PAD=triton.next_power_of_2(k))  # fmt: skip
    g64, g_dg64 = g.double(), g_dg.double()
    others = 1.0 - torch.eye(k, dtype=torch.float64)  # sums over j ≠ k, none formed as a difference
    others_g, abs_others = g64 @ others, g_dg64.abs() @ others
    exact = g_dg64 * others_g - g64 * (g_dg64 @ others)
    scale = g_dg64.abs() * others_g + g64 * abs_others
    eps = torch.finfo(torch.float32).eps
    assert torch.all((out.double() - exact).abs() <= 4 * eps * scale + 1e-40), (out, exact)
    usual = (g_dg - g * g_dg.sum(1, keepdim=True)).double()
    if k > 1:
        assert not torch.all((usual - exact).abs() <= 4 * eps * scale + 1e-40)


# The mix kernels against the torch-op mix (itself checked against the reference through
# the layers), in float64 so that any difference beyond rounding is a bug. Small tiles make
# every loop run several times: sample blocks, channel blocks and chunks, partial sums;
# K = 130 pads to more modes than the tile holds (blocks of one sample and one channel).
MIX_CASES = [(13, 37, 3), (1, 4, 1), (6, 9, 16), (40, 3, 2), (5, 6, 130)]


def _mix_inputs(n, c, k):
    f64 = torch.float64
    shift, mean_dev = torch.randn(n, c, dtype=f64) * 3 + 10, torch.randn(n, c, dtype=f64)
    var_rows = torch.rand(n, c, dtype=f64) + 0.1
    running_mean = torch.randn(k, c)
    running_sq = running_mean**2 + torch.rand(k, c) + 0.5
    sums = torch.randn(n, c, dtype=f64), torch.randn(n, c, dtype=f64)
    return shift, mean_dev, var_rows, running_mean, running_sq, sums


@pytest.mark.parametrize("gates", ["inline", "kernel", "split", "inline_split"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("n, c, k", MIX_CASES)
def test_mode_norm_mix_kernels_match_torch_mix(n, c, k, training, gates, monkeypatch):
    from mn_triton import mix
    from mn_triton.kernels import mix as kernels

    monkeypatch.setattr(kernels, "MIX_TILE", 128)
    # "kernel": every case whose channels span several programs reads shared gates; "split"
    # also splits the samples of every case with N ≥ 4 into splits of 2 or more, and the
    # backward's gates kernel reads the programs' shares of Σ_c g·∂L/∂g summed first.
    inline = gates.startswith("inline")
    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", 2**62 if inline else 0)
    if gates.endswith("split"):
        monkeypatch.setattr(kernels, "SPLIT_MIN_ROWS", 2)
        monkeypatch.setattr(kernels, "GATE_PARTIALS_SUM_MIN", 0)
    shift, mean_dev, var_rows, rm, rms, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    # Gate weights small enough that no gate saturates (a saturated gate's gradients are ~0
    # and their relative error is rounding noise).
    gw, gb, w, b = torch.randn(k, c) / (3 * c), torch.randn(k), torch.randn(c), torch.randn(c)
    args = (shift, mean_dev, var_rows, gw, gb, w, b, rm, rms, training, 1e-5)
    coeffs, stats = mix.mode_norm_forward(*args)
    expected = (coeffs.scale, coeffs.bias, stats.absolute_mean(), stats.var)
    for got, want in zip(kernels.mode_norm_forward(*args), expected, strict=True):
        assert_close(got, want, 1e-12)
    bwd_args = (sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw, gb, w, rm, rms, training)
    d_logits = []  # the torch mix's, whose sums over samples are the gate gradients
    softmax_backward = mix._softmax_backward

    def recorded(*a: torch.Tensor) -> torch.Tensor:
        d_logits.append(softmax_backward(*a))
        return d_logits[-1]

    monkeypatch.setattr(mix, "_softmax_backward", recorded)
    want = mix.mode_norm_backward(*bwd_args, 1e-5)
    got = kernels.mode_norm_backward(*bwd_args, 1e-5)
    # The gate gradients are sums over samples that may cancel (a seed drew |Σ| = 1e-4·Σ|·|
    # in eval): besides their own size, bound them by their terms' (1e-13: ~900 ulps).
    (d,) = d_logits
    terms = {"gate_bias": d.abs().sum(0), "gate_weight": d.abs().T @ (shift + mean_dev).abs()}
    for name, g in zip(mix.MixGrads._fields, got, strict=True):
        if name in terms:
            err, size = (g - getattr(want, name)).norm(), getattr(want, name).norm()
            assert err <= 1e-11 * size + 1e-13 * terms[name].norm(), name
        else:
            assert_close(g, getattr(want, name), 1e-11, name)


@pytest.mark.parametrize("split", [False, True], ids=["all_samples", "samples_split"])
@pytest.mark.parametrize("sync", [False, True], ids=["layer", "sync"])
def test_mode_norm_backward_fuses_the_gates_kernel_exactly(sync, split, monkeypatch):
    """Where one program holds every channel, the rows kernel does the gates kernel's work
    (one launch fewer): the same operations in the same order, so the same bits. Also for
    SyncModeNorm's two-launch backward around its all_reduce (given statistics), and with
    the 9 samples split in 3 (each split's gate gradients, summed alike)."""
    from mn_triton.kernels import mix as kernels

    if split:
        monkeypatch.setattr(kernels, "SPLIT_MIN_ROWS", 2)

    launched = spy_launches(monkeypatch, kernels, "_mn_mix_backward_gates_kernel")
    n, c, k = 9, 6, 3
    *rows, rm, rms, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    shift, mean_dev, var_rows, sum_dy, sum_dy_xs = (t.float() for t in (*rows, sum_dy, sum_dy_xs))
    gw, gb, w = torch.randn(k, c) / 2, torch.randn(k), torch.randn(c)
    args = (sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw, gb, w, rm, rms, True, 1e-5)
    extra = ()
    if sync:
        extra = (kernels.mode_norm_batch_stats(shift, mean_dev, var_rows, gw, gb), lambda t: t)
    fused = kernels.mode_norm_backward(*args, *extra)
    assert not launched
    monkeypatch.setattr(kernels, "FUSE_GATES", False)
    separate = kernels.mode_norm_backward(*args, *extra)
    assert len(launched) == 1
    for name, a, b in zip(("dy_scale", "x_scale", "bias", "d_gate_w", "d_gate_b", "d_weight",
                           "d_bias"), fused, separate, strict=True):  # fmt: skip
        assert torch.equal(a, b), name


@pytest.mark.parametrize("split", [False, True], ids=["all_samples", "samples_split"])
@pytest.mark.parametrize(
    "fused_mix, channels", [(True, 5), (True, 40), (False, 5)],
    ids=["mix_kernels", "gates_kernel", "torch_mix"],
)  # fmt: skip
def test_backward_takes_the_forward_batch_statistics_and_gates(
    fused_mix, channels, split, monkeypatch
):
    """A forward keeps the gates and, in training, the batch statistics it computed (the
    ops' `gates` and packed `mode_stats`), and the backward takes them instead of computing
    them again (two walks of its mix over the samples, and in each walk the gates from every
    channel's statistics; with the samples split, two launches more): its rows kernel runs
    with GIVEN_STATS and GATES_GIVEN, and neither is computed in it, by a kernel or by the
    torch-op mix. The gradients are those of computing them again, bit for bit (the same
    arithmetic on the same row statistics). 12 samples in 3 splits of 4, where split; 40
    channels make 2 channel blocks, whose gates the gates kernel computes once."""
    from mn_triton import backend
    from mn_triton import mix as torch_mix
    from mn_triton.kernels import mix as kernels

    if split:
        monkeypatch.setattr(kernels, "SPLIT_MIN_ROWS", 4)
    if channels > 32:
        monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(backend, "FUSED_MIX", fused_mix)
    given, computed = [], []
    rows_kernel = kernels._mn_mix_backward_rows_kernel

    class RowsKernelSpy:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                given.append((kwargs["GIVEN_STATS"], kwargs["GATES_GIVEN"]))
                return rows_kernel[grid](*args, **kwargs)

            return launch

    monkeypatch.setattr(kernels, "_mn_mix_backward_rows_kernel", RowsKernelSpy())
    launched = {name: spy_launches(monkeypatch, kernels, name)
                for name in ("_mn_batch_stats_kernel", "_mn_gates_kernel")}  # fmt: skip
    for name in ("batch_mode_stats", "mode_norm_gates"):
        torch_op = getattr(torch_mix, name)
        monkeypatch.setattr(  # (bound now: a lambda's default argument)
            torch_mix, name, lambda *a, _op=torch_op, _name=name: computed.append(_name) or _op(*a)
        )

    def gradients(training: bool) -> list[torch.Tensor]:
        layer = randomize(mn_triton.ModeNorm2d(channels, num_modes=3)).train(training)
        x = (torch.randn(12, channels, 3, 3) * 3 + 1).requires_grad_()
        y = layer(x)
        del given[:], computed[:], launched["_mn_batch_stats_kernel"][:]  # the backward's
        del launched["_mn_gates_kernel"][:]
        y.backward(torch.randn_like(y))
        return [x.grad, *(p.grad for p in layer.parameters())]

    with mn_triton.use_backend("triton"):
        kept, again = [], []
        for training in (True, False):
            torch.manual_seed(0)
            kept += gradients(training)
            assert not computed and not any(launched.values())
            rows_launches = 2 if split and training else 1
            assert given == ([(training, True)] * rows_launches if fused_mix else [])
        # Computed again, as before the forward kept them:
        mix_backward = backend.mode_norm_mix_backward
        monkeypatch.setattr(
            backend, "mode_norm_mix_backward", lambda x, *a, stats, gates: mix_backward(x, *a)
        )
        for training in (True, False):
            torch.manual_seed(0)
            again += gradients(training)
            if not fused_mix:
                assert "mode_norm_gates" in computed
                assert ("batch_mode_stats" in computed) == training
            elif split and training:  # by the splits' kernel, then given to the rows kernel
                assert launched["_mn_batch_stats_kernel"] and given[0][0]
            else:
                assert not given[0][0]  # (eval takes the running estimates)
            if fused_mix:  # the gates: in each walk, or by the gates kernel, then given
                assert given[0][1] == bool(launched["_mn_gates_kernel"]) == (channels > 32)
    for a, b in zip(kept, again, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("split", [False, True], ids=["all_samples", "samples_split"])
@pytest.mark.parametrize(
    "training, sync", [(True, False), (False, False), (True, True)], ids=["train", "eval", "sync"]
)
def test_mode_norm_gates_computed_once_give_the_same_bits(training, sync, split, monkeypatch):
    """Where several programs share the channels, one kernel may compute the gates for all of
    them (GATES_KERNEL_MIN_ELEMENTS): the same sums in the same order as each program's own,
    so the same bits, forward, backward, and SyncModeNorm's statistics and split backward.
    (3 channel blocks; 42 samples are 11 blocks of the mix kernels' 4 and 11 programs of the
    gates kernel's 4, the last of each partly masked; or 2 splits, of 24 and 18 samples.)"""
    from mn_triton.kernels import mix as kernels

    if split:
        monkeypatch.setattr(kernels, "SPLIT_MIN_ROWS", 20)

    launched = spy_launches(monkeypatch, kernels, "_mn_gates_kernel")
    n, c, k = 42, 70, 3
    assert kernels._mn_blocks(n, c, k)[:2] == (4, 32)
    *rows, rm, rms, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    shift, mean_dev, var_rows, sum_dy, sum_dy_xs = (t.float() for t in (*rows, sum_dy, sum_dy_xs))
    gw, gb, w, b = torch.randn(k, c) / 4, torch.randn(k), torch.randn(c), torch.randn(c)

    def run():
        stats = kernels.mode_norm_batch_stats(shift, mean_dev, var_rows, gw, gb) if sync else None
        extra = (stats, lambda t: t) if sync else ()
        fwd = kernels.mode_norm_forward(shift, mean_dev, var_rows, gw, gb, w, b, rm.clone(),
                                        rms.clone(), training, 1e-5, stats=stats)  # fmt: skip
        bwd = kernels.mode_norm_backward(sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw,
                                         gb, w, rm, rms, training, 1e-5, *extra)  # fmt: skip
        return (*([] if stats is None else [stats]), *fwd, *bwd)

    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", n * c + 1)
    inline = run()
    assert not launched
    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", n * c)
    shared = run()
    assert launched == [(11,)] * (3 if sync else 2)  # each entry point computes them once
    for i, (a, b) in enumerate(zip(inline, shared, strict=True)):
        assert torch.equal(a, b), i


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_mode_norm_gate_shares_summed_first_from_the_threshold(training, monkeypatch):
    """Where several programs share the channels, the MN backward's gates kernel either sums
    every program's share of Σ_c g·∂L/∂g itself, in each of its programs, or reads them
    summed first, from (P − 1)·N·K ≥ GATE_PARTIALS_SUM_MIN on (P programs): the same
    gradients up to rounding, either side of the threshold."""
    from mn_triton.kernels import mix as kernels

    kernel, shares = kernels._mn_mix_backward_gates_kernel, []

    class Spy:  # records the shares of the sums each launch reads
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                shares.append((args[5].shape[0], args[14]))
                return kernel[grid](*args, **kwargs)

            return launch

    monkeypatch.setattr(kernels, "_mn_mix_backward_gates_kernel", Spy())
    n, c, k = 10, 70, 3
    assert kernels._mn_blocks(n, c, k)[1] == 32  # 3 programs share the channels
    shift, mean_dev, var_rows, rm, rms, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    gw, gb, w = torch.randn(k, c) / (3 * c), torch.randn(k), torch.randn(c)
    args = (sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw, gb, w, rm, rms, training, 1e-5)
    monkeypatch.setattr(kernels, "GATE_PARTIALS_SUM_MIN", (3 - 1) * n * k + 1)
    apart = kernels.mode_norm_backward(*args)
    monkeypatch.setattr(kernels, "GATE_PARTIALS_SUM_MIN", (3 - 1) * n * k)
    summed = kernels.mode_norm_backward(*args)
    assert shares == [(3, 3), (1, 1)]
    for name, a, b in zip(kernels.MixGrads._fields, apart, summed, strict=True):
        if a is not None:
            assert_close(b, a, 1e-12, name)


def test_given_gates_are_checked_and_cast(monkeypatch):
    """The entry points' `gates=` (SyncModeNorm passes shared_gates' result along): gates of
    the wrong shape are refused before any launch; gates in another dtype are cast to the
    statistics' (in a kernel, float64 gates would turn float32 accumulators into float64
    inside their loops, which the interpreter runs and the GPU compiler rejects)."""
    from mn_triton.kernels import mix as kernels

    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", 0)
    n, c, k = 20, 40, 2
    *rows, rm, rms, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    shift, mean_dev, var_rows, sum_dy, sum_dy_xs = (t.float() for t in (*rows, sum_dy, sum_dy_xs))
    gw, gb, w, b = torch.randn(k, c) / 4, torch.randn(k), torch.randn(c), torch.randn(c)
    gates = kernels.shared_gates(shift, mean_dev, gw, gb)
    assert gates is not None and gates.dtype == torch.float32

    def both(given):
        fwd = kernels.mode_norm_forward(shift, mean_dev, var_rows, gw, gb, w, b, rm, rms, True,
                                        1e-5, gates=given)  # fmt: skip
        bwd = kernels.mode_norm_backward(sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw,
                                         gb, w, rm, rms, True, 1e-5, gates=given)  # fmt: skip
        return (*fwd, *bwd)

    for a, b_ in zip(both(gates), both(gates.double()), strict=True):
        assert torch.equal(a, b_)
    launched = spy_launches(monkeypatch, kernels, "_mn_mix_forward_kernel", launch=False)
    for wrong in (gates[:-1], gates[:, :1], gates.T):
        with pytest.raises(ValueError, match=r"gates of shape .*, expected \(N, K\)"):
            kernels.mode_norm_forward(shift, mean_dev, var_rows, gw, gb, w, b, rm, rms, True,
                                      1e-5, gates=wrong)  # fmt: skip
        with pytest.raises(ValueError, match="gates of shape"):
            kernels.mode_norm_batch_stats(shift, mean_dev, var_rows, gw, gb, gates=wrong)
    assert not launched


def test_gates_kernel_runs_where_several_programs_walk_many_statistics(monkeypatch):
    """The rule on the layer shapes it is meant for (K = 2, BLOCK_C = 32): a batch of 128
    at 128 channels or more shares the gates; 64 channels (N·C = 8192) and one program's
    worth of channels, however many samples, compute them inline."""
    from mn_triton.kernels import mix as kernels

    launched = spy_launches(monkeypatch, kernels, "_mn_gates_kernel", launch=False)
    gw = torch.zeros(2, 1)
    for n, c, shared in [(128, 128, True), (128, 512, True), (256, 64, True), (128, 64, False),
                         (4096, 32, False), (1, 4096, False)]:  # fmt: skip
        launched.clear()
        stats = torch.zeros(n, c)
        gates = kernels.shared_gates(stats, stats, gw.expand(2, c), None)
        assert (gates is not None) == shared == bool(launched), (n, c)
        if shared:
            # One program per block of the mix kernels' samples (8 here, kernels.MN_BLOCK_N).
            assert gates.shape == (n, 2) and launched == [(triton.cdiv(n, 8),)]


def test_mix_splits_samples_where_few_programs_walk_many(monkeypatch):
    """The rule (K = 2, BLOCK_C = 32, BLOCK_N = 8): a batch under 2048 samples is never
    split; a BatchNorm1d-like batch of many samples and few channels is, into splits of at
    least SPLIT_MIN_ROWS, until about MIX_PROGRAMS programs run. A split training forward
    launches the splits' statistics, their merge, then the forward kernel, each over the
    splits (the merge over channels only)."""
    from mn_triton.kernels import mix as kernels

    for (n, c), want in [((128, 512), (1, 128)), ((2047, 16), (1, 2047)),
                         ((2048, 16), (2, 1024)), ((4096, 256), (4, 1024)),
                         ((65536, 64), (64, 1024)), ((10**6, 64), (128, 7816)),
                         ((3000, 4096), (2, 1504))]:  # fmt: skip
        block_n, block_c, _, _ = kernels._mn_blocks(n, c, 2)
        splits, rows = kernels._mn_splits(n, c, block_n, block_c)
        assert (splits, rows) == want, (n, c)
        assert rows >= n or (rows % block_n == 0 and (splits - 1) * rows < n <= splits * rows)
    names = ("_mn_batch_stats_kernel", "_mn_merge_stats_kernel", "_mn_mix_forward_kernel")
    launched = {name: spy_launches(monkeypatch, kernels, name, launch=False) for name in names}
    stats, gw = torch.zeros(4096, 64), torch.zeros(2, 64)
    kernels.mode_norm_forward(stats, stats, stats, gw, None, None, None, None, None, True, 1e-5)
    assert launched == {"_mn_batch_stats_kernel": [(2, 4)], "_mn_merge_stats_kernel": [(2,)],
                        "_mn_mix_forward_kernel": [(2, 4)]}  # fmt: skip


def test_mix_splits_each_hold_samples(monkeypatch):
    """Every split of the samples (_mn_splits) holds at least one: the count is of the splits
    of `rows` samples that N needs, not the one first aimed at, which can be more where
    `rows` is rounded up (13 samples aimed at 6 splits are 5 splits of 3). An empty split
    would walk nothing, in programs of every launch, and its massless statistics would
    enter the merge, clamped to tiny."""
    from mn_triton.kernels import mix as kernels

    monkeypatch.setattr(kernels, "SPLIT_MIN_ROWS", 2)
    for c, k in [(3, 2), (37, 3), (9, 16)]:
        for n in range(4, 60):
            block_n, block_c, _, _ = kernels._mn_blocks(n, c, k)
            splits, rows = kernels._mn_splits(n, c, block_n, block_c)
            assert splits > 1 and (splits - 1) * rows < n <= splits * rows, (n, c, k)


def test_gates_kernel_sums_the_logits_in_the_mix_kernels_chunks(monkeypatch):
    """The gates kernel sums each logit over the mix kernels' chunks of channels (CHUNK_C),
    as each of their programs would, so the gates computed once are the inline ones, bit for
    bit. Where few samples leave the block short of MN_BLOCK_N, CHUNK_C passes BLOCK_C: here
    2 samples, 40 channels in chunks of 64 (blocks of 32 channels), in float32."""
    from mn_triton.kernels import mix as kernels

    n, c, k = 2, 40, 3
    block_n, block_c, _, chunk_c = kernels._mn_blocks(n, c, k)
    assert (block_n, block_c, chunk_c) == (2, 32, 64)
    *rows, rm, rms, _ = _mix_inputs(n, c, k)
    shift, mean_dev, var_rows = (t.float() for t in rows)
    gw, gb = torch.randn(k, c) / 4, torch.randn(k)
    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", 2**62)
    inline = torch.full((n, k), float("nan"))
    kernels.mode_norm_forward(shift, mean_dev, var_rows, gw, gb, None, None, rm, rms, True,
                              1e-5, gates_out=inline)  # fmt: skip
    monkeypatch.setattr(kernels, "GATES_KERNEL_MIN_ELEMENTS", 0)
    shared = kernels.shared_gates(shift, mean_dev, gw, gb)
    assert shared is not None
    assert torch.equal(shared, inline)


@pytest.mark.parametrize("n, c, k", MIX_CASES)
def test_mode_group_norm_mix_kernels_match_torch_mix(n, c, k, monkeypatch):
    from mn_triton import mix
    from mn_triton.kernels import mix as kernels

    monkeypatch.setattr(kernels, "MIX_TILE", 128)
    shift, mean_dev, var_rows, _, _, (sum_dy, sum_dy_xs) = _mix_inputs(n, c, k)
    gw, gb, w, b = torch.randn(k, 1) / 10, torch.randn(k), torch.randn(c), torch.randn(c)
    args = (shift, mean_dev, var_rows, gw, gb, w, b, 1e-5)
    coeffs = mix.mode_group_norm_forward(*args)
    scale, bias = kernels.mode_group_norm_forward(*args)
    assert_close(scale, coeffs.scale, 1e-12, "scale")
    assert_close(bias, coeffs.bias, 1e-12, "bias")
    bwd_args = (sum_dy, sum_dy_xs, 7, shift, mean_dev, var_rows, gw, gb, w, 1e-5)
    want = mix.mode_group_norm_backward(*bwd_args)
    got = kernels.mode_group_norm_backward(*bwd_args)
    for name, g in zip(mix.MixGrads._fields, got, strict=True):
        assert_close(g, getattr(want, name), 1e-11, name)


@pytest.mark.parametrize("k", ["MAX_MODES", "MAX_MODES + 1"])
@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_triton_backend_runs_every_kernel(layer, k, monkeypatch):
    """Layer-level tests compare results only, which the torch-op path gives as well: here
    a training step with the 'triton' backend must go through each kernel entry point, and
    through no torch-op twin. Up to the K the mix kernels take (that K included) the mix
    runs on them; beyond it, the mix alone runs in torch ops (the passes over x stay on the
    kernels)."""
    import mn_triton
    from mn_triton import backend
    from mn_triton import mix as torch_mix
    from mn_triton.kernels import apply, moments
    from mn_triton.kernels import mix as kernel_mix

    mix_module = "kernels.mix" if k == "MAX_MODES" else "mix"
    monkeypatch.setattr(kernel_mix, "MAX_MODES", 3)
    k = 3 if k == "MAX_MODES" else kernel_mix.MAX_MODES + 1

    prefix = "mode_norm" if layer == "ModeNorm2d" else "mode_group_norm"
    calls: list[str] = []

    def spy(module, name: str) -> None:
        original = getattr(module, name)
        tag = f"{module.__name__}.{name}"

        def wrapper(*args, **kwargs):
            calls.append(tag)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in [(moments, "row_moments"), (moments, "row_grad_sums"),
                         (apply, "row_affine"), (kernel_mix, f"{prefix}_forward"),
                         (kernel_mix, f"{prefix}_backward"), (torch_mix, f"{prefix}_forward"),
                         (torch_mix, f"{prefix}_backward")]:  # fmt: skip
        spy(module, name)
    for name in ("_row_moments_torch", "_row_grad_sums_torch", "_row_affine_torch"):
        spy(backend, name)
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    with mn_triton.use_backend("triton"):
        getattr(mn_triton, layer)(4, num_modes=k)(x).sum().backward()
    assert sorted(set(calls)) == sorted(
        ["mn_triton.kernels.moments.row_moments", "mn_triton.kernels.moments.row_grad_sums",
         "mn_triton.kernels.apply.row_affine", f"mn_triton.{mix_module}.{prefix}_forward",
         f"mn_triton.{mix_module}.{prefix}_backward"]
    ), calls  # fmt: skip


@pytest.mark.parametrize("interpreting", [True, False], ids=["interpreter", "compiled_triton"])
def test_cuda_tensors_take_the_kernels_unless_the_torch_backend_is_asked(interpreting, monkeypatch):
    """With Triton installed, CUDA tensors run the kernels on 'auto' and 'triton', whether or
    not the interpreter is on (it serves CPU tensors only), and torch ops on 'torch'. Every
    GPU speed-up rests on this choice, and the CPU tests see CPU tensors alone."""
    import types

    from mn_triton import backend

    monkeypatch.setattr(backend, "INTERPRETING", interpreting)
    cuda_like = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda", 0))
    taken = {}
    for name in ("auto", "triton", "torch"):
        with mn_triton.use_backend(name):
            taken[name] = backend.uses_kernels(cuda_like)
    assert taken == {"auto": True, "triton": True, "torch": False}


def test_launches_go_to_the_device_of_the_input(monkeypatch):
    """Triton launches on the current CUDA device. backend.on_device_of makes the input's
    device current for a block when it is not (a model on cuda:1 without set_device), and
    every kernel entry point of a layer's forward and backward runs inside such a block."""
    import types

    import mn_triton
    from mn_triton import backend

    switched = []
    monkeypatch.setattr(
        torch.cuda, "device", lambda d: switched.append(d) or contextlib.nullcontext()
    )
    on_cuda_1 = types.SimpleNamespace(
        is_cuda=True, get_device=lambda: 1, device=torch.device("cuda", 1)
    )
    for current, expected in ((0, [torch.device("cuda", 1)]), (1, [])):
        switched.clear()
        monkeypatch.setattr(torch.cuda, "current_device", lambda current=current: current)
        with backend.on_device_of(on_cuda_1):
            pass
        assert switched == expected
    with backend.on_device_of(torch.zeros(1)):
        assert switched == []

    calls = record_guarded_launches(monkeypatch)
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    with mn_triton.use_backend("triton"):
        for layer in (mn_triton.ModeNorm2d(4), mn_triton.ModeGroupNorm2d(4)):
            layer(x).sum().backward()
            layer.eval()(x)
    assert calls and [name for name, guarded in calls if not guarded] == []


def test_nan_running_estimates_stay_nan_in_eval():
    """A NaN in ⟨x²⟩ (e.g. after a batch whose variance overflowed) gives NaN where the torch
    ops and the reference give NaN: the kernels' clamp of σ² at 0 must not read max(NaN, 0)
    as 0 (IEEE maxNum, tl.maximum's default), which would normalise by 1/√ε instead."""
    torch.manual_seed(0)
    layer = mn_triton.ModeNorm2d(3, num_modes=2).eval()
    layer.running_mean_sq[0, 1] = float("nan")
    x = torch.randn(4, 3, 2, 2)
    with torch.no_grad(), mn_triton.use_backend("torch"):
        expected = layer(x)
    with torch.no_grad(), mn_triton.use_backend("triton"):
        got = layer(x)
    assert expected[:, 1].isnan().all() and not expected[:, [0, 2]].isnan().any()
    assert torch.equal(got.isnan(), expected.isnan())
    torch.testing.assert_close(got.nan_to_num(), expected.nan_to_num())


@pytest.mark.parametrize("eps", [1e-30, 1e-50])
def test_tiny_eps_keeps_padded_modes_and_channels_out(eps):
    """ε > 0 is all the layers ask. Padded modes and channels of the MN mix kernels (K = 3 in
    blocks of 4, C = 5 in blocks of 8) have σ² = 0, so 1/√(σ² + ε) overflows there for a tiny
    ε (1e-50 is 0 in float32), or its cube does in the backward (1e-30): the kernels must keep
    those lanes out of every row's coefficients, as the torch ops have none."""
    torch.manual_seed(0)
    layer = randomize(mn_triton.ModeNorm2d(5, num_modes=3, eps=eps))
    x = torch.randn(4, 5, 2, 2) * 2 + 1
    dy = torch.randn_like(x)
    results = []
    for backend in ("torch", "triton"):
        xb = x.clone().requires_grad_()
        layer.zero_grad()
        with mn_triton.use_backend(backend):
            y = layer(xb)
            y.backward(dy)
        results.append((y, xb.grad, layer.gate.weight.grad))
    (y, dx, dgate), (y_k, dx_k, dgate_k) = results
    assert y.isfinite().all() and dx.isfinite().all() and dgate.isfinite().all()
    assert_close(y_k, y, 1e-5, "output")
    assert_close(dx_k, dx, 1e-4, "dx")
    assert dgate_k.isfinite().all()


def test_mode_variance_rounded_below_zero_is_clamped():
    """σ²_k, expanded around the mode's pivot (_around_mode_pivot), may round below 0 where
    the rows barely differ (their spread far below ε of their deviation from the pivot):
    clamped at 0, as the torch-op mix clamps it, or 1/√(σ² + ε) is NaN for a tiny ε. MN in
    float64: 64 channels of 4 samples whose means differ only in mean deviations of 1e-30,
    and those by ~1e-16 of themselves."""
    from mn_triton.kernels import mix as kernels

    torch.manual_seed(0)
    n, c, k = 4, 64, 1
    shift = torch.ones(n, c, dtype=torch.float64)
    mean_dev = 1e-30 * (1 + 1e-16 * torch.randn(n, c, dtype=torch.float64))
    var_rows = torch.zeros_like(shift)
    gw = torch.zeros(k, c, dtype=torch.float64)
    scale, _, _, var = kernels.mode_norm_forward(
        shift, mean_dev, var_rows, gw, None, None, None, None, None, True, 1e-300
    )
    assert (var >= 0).all()
    assert scale.isfinite().all()


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(
    "layer_class, num_modes", [(mn_triton.ModeNorm2d, 1), (mn_triton.ModeNorm2d, 2),
                               (mn_triton.ModeGroupNorm2d, 2)]
)  # fmt: skip
def test_a_constant_channel_with_tiny_eps_keeps_gradients_finite(layer_class, num_modes, backend):
    """A dead channel (all zeros: σ² = 0) with ε = 1e-30: r = 1/√ε is finite, but r³ is
    not, and ∂L/∂r is exactly 0 there; σ²'s gradient formed as r³ first was inf·0 = NaN, which
    the gates' backward carried into every gradient (BatchNorm's stay finite). MGN: one
    sample constant over its channels."""
    torch.manual_seed(0)
    layer = randomize(layer_class(3, num_modes=num_modes, eps=1e-30))
    x = torch.randn(4, 3, 3, 3)
    if layer_class is mn_triton.ModeNorm2d:
        x[:, 1] = 0.0
    else:
        x[2] = 0.0
    with mn_triton.use_backend(backend):
        check_against_oracle(layer, x)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_eval_of_a_dead_channel_with_tiny_eps_forms_no_overflow(backend):
    """Eval with running estimates of variance 0 where the channel is constant (0, its
    running mean 0.5) and ε = 1e-30: r = 1e15 is finite and so is every gradient, but
    ∂L/∂r·r³, which eval does not need (μ and σ² are constants there), overflows. The MN
    backward kernel formed it anyway (inf, then inf·0 = NaN, both unused): none of that may
    be computed, so NumPy's errors are raised here (the interpreter runs the kernels in it)."""
    import numpy as np

    torch.manual_seed(0)
    layer = randomize(mn_triton.ModeNorm2d(3, num_modes=2, eps=1e-30)).eval()
    layer.running_mean[:, 1] = 0.5
    layer.running_mean_sq[:, 1] = 0.25
    x = torch.randn(4, 3, 3, 3)
    x[:, 1] = 0.0
    with mn_triton.use_backend(backend), np.errstate(over="raise", invalid="raise"):
        check_against_oracle(layer, x)


# Rows of one element (L = 1) are their own statistics (backend.POINT_ROWS): cases of the
# layers on such inputs. (37, 70) at K = 3: three channel blocks of MN's mix, its gates
# computed once; (9, 6, 1): one block, the gates kernel fused; MGN a program per sample.
# Channels-last (N, C, 1, 1) maps are dense rows too, with other strides for y to keep.
# Transposed batches and 16-bit ones are not: s is a float32 copy of x there (as_rows).
POINT_CASES = {
    "mn_2d": (mn_triton.ModeNorm1d, (37, 70), torch.float32, torch.contiguous_format),
    "mn_3d_float64": (mn_triton.ModeNorm1d, (9, 6, 1), torch.float64, torch.contiguous_format),
    "mn_4d_channels_last": (mn_triton.ModeNorm2d, (5, 6, 1, 1), torch.float32,
                            torch.channels_last),
    "mgn_2d": (mn_triton.ModeGroupNorm1d, (37, 70), torch.float32, torch.contiguous_format),
    "mgn_4d": (mn_triton.ModeGroupNorm2d, (5, 6, 1, 1), torch.float32, torch.contiguous_format),
    "mn_one_channel": (mn_triton.ModeNorm1d, (7, 1), torch.float32, torch.contiguous_format),
    "mn_2d_transposed": (mn_triton.ModeNorm1d, (37, 70), torch.float32, "transposed"),
    "mgn_2d_transposed": (mn_triton.ModeGroupNorm1d, (9, 6), torch.float32, "transposed"),
}  # fmt: skip
# 16-bit rows of one element, against the same rows in float32 (see their test).
POINT_CASES_16_BIT = {
    "mn_2d_float16": (mn_triton.ModeNorm1d, (37, 70), torch.float16, torch.contiguous_format),
    "mgn_2d_bfloat16": (mn_triton.ModeGroupNorm1d, (9, 6), torch.bfloat16,
                        torch.contiguous_format),
    "mn_4d_bfloat16_channels_last": (mn_triton.ModeNorm2d, (5, 6, 1, 1), torch.bfloat16,
                                     torch.channels_last),
}  # fmt: skip
# dy as autograd may hand it over: dense, expanded from a sum (stride 0), transposed.
DY_KINDS = {
    "dense": lambda shape, dtype: torch.randn(shape, dtype=dtype),
    "expanded": lambda shape, dtype: torch.randn((), dtype=dtype).expand(shape),
    "transposed": lambda shape, dtype: torch.randn(shape[::-1], dtype=dtype).t(),
}


def _point_rows_step(case: str, training: bool, in_place: bool = False, dy: str = "dense",
                     backward_backend: str = "triton",
                     as_dtype: torch.dtype | None = None):  # fmt: skip
    """A layer step on one-element rows: (y, whether y has x's strides, dx, parameter
    gradients, buffers). `as_dtype`: x and dy drawn in the case's dtype, then given to the
    layer in this one (whose parameters stay float32 either way)."""
    from helpers import randomize

    cls, shape, dtype, memory_format = {**POINT_CASES, **POINT_CASES_16_BIT}[case]
    torch.manual_seed(0)
    layer = randomize(cls(shape[1], num_modes=3)).to(stat_dtype(dtype)).train(training)
    # (Not .contiguous(memory_format=…): a (5, 6, 1, 1) batch counts as channels-last as
    # it is, strides and all.)
    if memory_format == "transposed":
        x = torch.empty(shape[::-1], dtype=dtype).t()
    else:
        x = torch.empty(shape, dtype=dtype, memory_format=memory_format)
    x = x.copy_(_data(*shape) * 2)
    grad_y = DY_KINDS[dy](shape, dtype)
    if as_dtype is not None:
        x, grad_y = torch.empty_like(x, dtype=as_dtype).copy_(x), grad_y.to(as_dtype)
    x.requires_grad_()
    with mn_triton.use_backend("triton"):
        y = layer(x)
        out = y.detach().clone()
        if in_place:  # autograd refuses in-place changes to a view a custom Function returns
            y = torch.relu_(y)
    with mn_triton.use_backend(backward_backend):
        y.backward(grad_y)
    grads = [p.grad for p in layer.parameters()]
    return out, y.stride() == x.stride(), x.grad, *grads, *layer.buffers()


def _spy_x_minus_s_coefficients(monkeypatch) -> list[tuple[str, bool]]:
    """Record, for each launch of the four mix kernels, (kernel, whether it was given room
    for the per-row coefficient that multiplies x − s: the forward's SCALE, the backward's
    X_SCALE), then launch it."""
    from mn_triton.kernels import mix as kernel_mix

    given = []

    def spy(name: str, arg: str) -> object:
        kernel = getattr(kernel_mix, name)
        index = kernel.arg_names.index(arg)

        class Spy:
            def __getitem__(self, grid):
                def run(*args, **kwargs):
                    given.append((name, args[index] is not None))
                    return kernel[grid](*args, **kwargs)

                return run

        return Spy()

    for name, arg in [("_mn_mix_forward_kernel", "SCALE"), ("_mgn_mix_forward_kernel", "SCALE"),
                      ("_mn_mix_backward_rows_kernel", "X_SCALE"),
                      ("_mgn_mix_backward_kernel", "X_SCALE")]:  # fmt: skip
        monkeypatch.setattr(kernel_mix, name, spy(name, arg))
    return given


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", POINT_CASES)
def test_one_element_rows_skip_their_passes_with_the_same_bits(case, training, monkeypatch):
    """On rows of one element, eager layer calls launch no moments, gradient-sums or apply
    pass (x is its own s, dy its own Σ dy; md = v = Σ dy·(x − s) = 0 are not read; dx is
    bias + dy·dy_scale, a torch op), and give the same bits as with those passes: outputs,
    dx, parameter gradients and the running estimates. The mix kernels store no coefficient
    of x − s there (the forward's scale, the backward's x_scale), which nothing would read.
    (The layer oracle tests check these cases against float64 too.)"""
    from mn_triton import backend

    passes = spy_row_passes(monkeypatch)
    dx_terms = record_dx_terms(monkeypatch)
    coefficients = _spy_x_minus_s_coefficients(monkeypatch)
    skipped = _point_rows_step(case, training)
    assert [len(grids) for grids in passes] == [0, 0, 0]
    assert len(coefficients) == 2 and not any(given for _, given in coefficients), coefficients
    coefficients.clear()
    monkeypatch.setattr(backend, "POINT_ROWS", False)
    full = _point_rows_step(case, training)
    assert [len(grids) for grids in passes] == [1, 1, 2]
    assert len(coefficients) == 2 and all(given for _, given in coefficients), coefficients
    assert skipped[1] and full[1], "y is not laid out as x"
    assert_same_point_results(skipped, full, dx_index=2, dx_terms=dx_terms)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", POINT_CASES_16_BIT)
def test_16_bit_one_element_rows_skip_their_passes_as_float32_rows(case, training, monkeypatch):
    """16-bit rows of one element take the path too, on float32 copies of x and dy (s and
    Σ dy: one torch op each instead of a Triton pass): every result is the float32 path's
    on the same values (x and dy converted exactly), y and dx rounded to x's dtype once,
    bit for bit (the float32 path is held to the passes above). Against the passes
    themselves only up to a rounding of y and dx: the interpreter's 16-bit stores truncate
    where torch's casts round (on a GPU both round)."""
    from mn_triton import backend

    passes = spy_row_passes(monkeypatch)
    dtype = POINT_CASES_16_BIT[case][2]
    half = _point_rows_step(case, training)
    assert [len(grids) for grids in passes] == [0, 0, 0]
    assert half[1], "y is not laid out as x"
    assert half[0].dtype == half[2].dtype == dtype
    single = _point_rows_step(case, training, as_dtype=torch.float32)
    assert [len(grids) for grids in passes] == [0, 0, 0]
    rounded = [single[0].to(dtype), single[1], single[2].to(dtype), *single[3:]]
    for i, (a, b) in enumerate(zip(half, rounded, strict=True)):
        assert a is b or torch.equal(a, b), f"result {i} differs"
    monkeypatch.setattr(backend, "POINT_ROWS", False)
    full = _point_rows_step(case, training)
    assert [len(grids) for grids in passes] == [1, 1, 2]
    for i in (0, 2):  # y and dx within a rounding (truncated or not) of their largest value
        ulp = 2 * torch.finfo(dtype).eps * full[i].float().abs().max()
        assert (half[i].float() - full[i].float()).abs().max() <= ulp, f"result {i}"
    for i, (a, b) in enumerate(zip(half[3:], full[3:], strict=True)):
        assert torch.equal(a, b), f"parameter gradient or buffer {i} differs"


@pytest.mark.parametrize("dy", ["expanded", "transposed"])
@pytest.mark.parametrize("case", ["mn_2d", "mgn_2d", "mn_one_channel"])
def test_one_element_rows_take_any_dy_with_the_same_bits(case, dy, monkeypatch):
    """dy need not be dense rows: as_rows copies it where it is not (one channel: C = 1)."""
    from mn_triton import backend

    dx_terms = record_dx_terms(monkeypatch)
    skipped = _point_rows_step(case, True, dy=dy)
    monkeypatch.setattr(backend, "POINT_ROWS", False)
    full = _point_rows_step(case, True, dy=dy)
    assert_same_point_results(skipped, full, dx_index=2, dx_terms=dx_terms)


@pytest.mark.parametrize("case", ["mn_2d", "mgn_2d"])
def test_one_element_rows_backward_on_the_torch_ops(case, monkeypatch):
    """A forward on the kernels saves no row statistics for rows of one element; a backward
    run under another backend (the torch-op mix) takes zeros for them, as the passes would
    have given."""
    from mn_triton import backend

    dx_terms = record_dx_terms(monkeypatch)
    mixed = _point_rows_step(case, True, backward_backend="torch")
    monkeypatch.setattr(backend, "POINT_ROWS", False)
    full = _point_rows_step(case, True, backward_backend="torch")
    assert_same_point_results(mixed, full, dx_index=2, dx_terms=dx_terms)


def test_one_element_rows_take_in_place_ops_after_the_layer(monkeypatch):
    """y on the one-element-row path holds the mix's per-row bias: as memory of its own, not
    a view, which autograd would refuse to let `relu_` change in place."""
    from mn_triton import backend

    dx_terms = record_dx_terms(monkeypatch)
    for case in ("mn_2d", "mgn_2d"):
        skipped = _point_rows_step(case, True, in_place=True)
        monkeypatch.setattr(backend, "POINT_ROWS", False)
        full = _point_rows_step(case, True, in_place=True)
        monkeypatch.setattr(backend, "POINT_ROWS", True)
        assert_same_point_results(skipped, full, 2, dx_terms, what=f"{case}: ")


def test_one_element_rows_path_wherever_the_mix_kernels_run(monkeypatch):
    """The path needs rows of one element and the mix kernels, in any dtype and layout (s is
    x, or a float32 copy of it): longer rows, the torch ops, the torch-op mix and K beyond
    the mix kernels keep the passes."""
    from mn_triton import backend
    from mn_triton.kernels import mix

    gw = torch.randn(3, 4)
    takes = {
        "float32_2d": torch.randn(5, 4),
        "float64_3d": torch.randn(5, 4, 1, dtype=torch.float64),
        "float32_4d": torch.randn(5, 4, 1, 1),
        "float16": torch.randn(5, 4, dtype=torch.float16),
        "bfloat16": torch.randn(5, 4, 1, 1, dtype=torch.bfloat16),
        "transposed": torch.randn(4, 5).t(),
        "strided": torch.randn(5, 8)[:, ::2],
    }
    keeps = {
        "rows_of_two": torch.randn(5, 4, 2),
        "rows_of_none": torch.randn(5, 4, 0),
    }
    assert {k: backend.point_rows(x, gw) for k, x in takes.items()} == dict.fromkeys(takes, True)
    assert {k: backend.point_rows(x, gw) for k, x in keeps.items()} == dict.fromkeys(keeps, False)
    x = takes["float32_2d"]
    with mn_triton.use_backend("torch"):
        assert not backend.point_rows(x, gw)
    monkeypatch.setattr(mix, "MAX_MODES", 2)
    assert not backend.point_rows(x, gw)
    monkeypatch.setattr(mix, "MAX_MODES", 4096)
    monkeypatch.setattr(backend, "FUSED_MIX", False)
    assert not backend.point_rows(x, gw)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("cls", [mn_triton.ModeNorm2d, mn_triton.ModeGroupNorm2d])
def test_an_input_without_gradient_skips_the_dx_pass(cls, compiled, backend, monkeypatch):
    """A norm on the input data, or after a frozen trunk: the backward leaves out dx's pass
    over x and dy (3·|x| of its 5), as BatchNorm's does, and the parameters' gradients are
    those of a backward that computes dx, bit for bit."""
    from mn_triton import backend as mn_backend

    layer = randomize(cls(5, num_modes=2))
    x, dy = torch.randn(4, 5, 3, 3), torch.randn(4, 5, 3, 3)
    dx_passes = []  # the apply pass's backward form takes dy and its scale too
    apply = mn_backend.row_affine
    monkeypatch.setattr(
        mn_backend,
        "row_affine",
        lambda *args, **kwargs: dx_passes.append(len(args) > 4) or apply(*args, **kwargs),
    )
    run = torch.compile(layer, backend="aot_eager", fullgraph=True) if compiled else layer
    grads = []
    for needs_grad in (True, False):
        dx_passes.clear()
        x_in = x.clone().requires_grad_(needs_grad)
        run(x_in).backward(dy)
        # (compiled MN on the kernels runs a new signature's body twice: ops._with_capture_choices)
        assert (True in dx_passes) == needs_grad
        assert (x_in.grad is not None) == needs_grad
        grads.append({name: p.grad.clone() for name, p in layer.named_parameters()})
        layer.zero_grad()
    for name, grad in grads[0].items():
        assert torch.equal(grads[1][name], grad), name
