"""The pass kernels on index counts past 2³¹, run by `test_kernels.py` in a subprocess.

    python tests/wide_index_check.py [many_rows] [long_row] [split_end]   # "<case> <error>"

N·C ≥ 2³¹ rows, one row of L ≥ 2³¹ positions, or a shorter row whose last split ends at
2³¹ (split_end) cannot be computed on this machine, but
their *last* programs can: Triton's interpreter is made to run only the last two programs
of each launch, over tensors of several GiB that are allocated and never touched except
where those programs read. With 32-bit row or position indices those programs would wrap,
address memory 2³² elements before the tensors (a crash, or values there) and leave the
last rows unwritten. Every load and store is also checked to stay inside its tensor
(`memcheck.py`).

The interpreter's grid loop (`GridExecutor.__call__`) is replaced here, following Triton
3.9's own; where this Triton's interpreter is built differently the script prints
"SKIP <why>" and the test skips.
"""

from __future__ import annotations

import inspect
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch
import triton.runtime.interpreter as interpreter

LAST_PROGRAMS = 2


def _last_programs(grid: tuple[int, int, int], count: int) -> list[tuple[int, int, int]]:
    """The last `count` program ids in the interpreter's own order (x outer, z inner)."""
    total = grid[0] * grid[1] * grid[2]
    ids = []
    for flat in range(max(0, total - count), total):
        x, rest = divmod(flat, grid[1] * grid[2])
        y, z = divmod(rest, grid[2])
        ids.append((x, y, z))
    return ids


def _run_last_programs(self, *args_dev, **kwargs):
    argspec = inspect.getfullargspec(self.fn)
    kwargs = {k: v for k, v in kwargs.items() if k in argspec.args or k in argspec.kwonlyargs}
    # On CPU the interpreter's "host copies" share the tensors' storages, so nothing needs
    # copying back (the copy would also touch every page of the GiB-sized tensors).
    args_hst, kwargs_hst = self._init_args_hst(args_dev, kwargs)
    patch_scope = interpreter._patch_lang(self.fn)
    try:
        args = inspect.getcallargs(self.fn, *args_hst, **kwargs_hst)
        args = {
            name: arg if name in self.constexprs else interpreter._implicit_cvt(arg)
            for name, arg in args.items()
        }
        grid = self.grid(args) if callable(self.grid) else self.grid
        grid = tuple(grid) + (1,) * (3 - len(grid))
        interpreter.interpreter_builder.set_grid_dim(*grid)
        for x, y, z in _last_programs(grid, LAST_PROGRAMS):
            interpreter.interpreter_builder.set_grid_idx(x, y, z)
            self.fn(**args)
    finally:
        patch_scope.restore()


def _install() -> str | None:
    """Patch the interpreter; the reason it cannot be patched, if so."""
    needed = ("GridExecutor", "_patch_lang", "_implicit_cvt", "interpreter_builder")
    missing = [name for name in needed if not hasattr(interpreter, name)]
    if not missing and not hasattr(interpreter.GridExecutor, "_init_args_hst"):
        missing.append("GridExecutor._init_args_hst")
    if missing:
        return "this Triton's interpreter has no " + ", ".join(missing)
    interpreter.GridExecutor.__call__ = _run_last_programs
    return None


def _error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return (got.double() - expected).abs().max().item()


def many_rows() -> float:
    """N·C = 2³¹ + 1002 rows of 2 positions: the last programs hold the last rows."""
    from mn_triton.kernels.apply import row_affine
    from mn_triton.kernels.moments import row_grad_sums, row_moments

    n, c = (2**31 + 1002) // 3, 3
    x = torch.empty(n, c, 2, dtype=torch.float16)  # 8 GiB, untouched but for its tail
    dy = torch.empty_like(x)
    tail = 64  # samples; more than the last two programs hold
    x[-tail:] = torch.randn(tail, c, 2, dtype=torch.float16) + 3
    dy[-tail:] = torch.randn(tail, c, 2, dtype=torch.float16)
    rows, grads = x[-tail:].double(), dy[-tail:].double()
    shift, mean_dev, var = row_moments(x, torch.float32)
    sum_dy, sum_dy_xs = row_grad_sums(x, dy, shift)
    out = row_affine(x, shift, var, mean_dev, dy, sum_dy)
    # Only the last programs ran: compare the rows the last one certainly holds.
    last = 16
    s = shift[-last:].double()
    pairs = {  # name: (computed, float64 value)
        "shift": (shift[-last:], rows[-last:, :, 1]),  # the median of (x₀, x₁, x₁)
        "mean": (mean_dev[-last:], rows[-last:].mean(-1) - s),
        "var": (var[-last:], rows[-last:].var(-1, correction=0)),
        "sum_dy": (sum_dy[-last:], grads[-last:].sum(-1)),
        "sum_dy_xs": (sum_dy_xs[-last:], (grads[-last:] * (rows[-last:] - s[..., None])).sum(-1)),
        "out": (
            out[-last:],
            (rows[-last:] - s[..., None]) * var[-last:].double()[..., None]
            + mean_dev[-last:].double()[..., None]
            + grads[-last:] * sum_dy[-last:].double()[..., None],
        ),
    }
    return max(_error(got, want) / max(want.abs().max().item(), 1) for got, want in pairs.values())


def _long_row(length: int) -> tuple:
    """One float16 row of `length` positions (4 GiB near 2³¹), split as across 2¹⁶ programs,
    untouched but for the tail its last split reads: (x, dy, plan, split_len, num_splits)."""
    from mn_triton.kernels import layout

    x = torch.empty(1, 1, length, dtype=torch.float16)
    dy = torch.empty_like(x)
    plan, _ = layout.plan_rows(x)
    layout.CPU_TARGET_PROGRAMS = 2**16
    split_len, num_splits = layout.reduction_split(plan, x.device)
    tail = length - (num_splits - 1) * split_len + 2 * plan.block_len
    x[..., -tail:] = torch.randn(tail, dtype=torch.float16) + 3
    dy[..., -tail:] = torch.randn(tail, dtype=torch.float16)
    return x, dy, plan, split_len, num_splits


def _last_split_errors(x: torch.Tensor, dy: torch.Tensor, plan, start: int) -> list[float]:
    """The moments and gradient sums of the row's last split (from `start`) against float64,
    as relative errors: the per-split partial results, unmerged, since only the last
    programs ran."""
    from mn_triton.kernels import moments

    merge = moments._merge_splits
    moments._merge_splits = lambda a, b, *args, **kwargs: (a, b)
    try:
        _, mean_dev, var = moments.row_moments(x, torch.float32)
        sum_dy, sum_dy_xs = moments.row_grad_sums(x, dy, torch.full((1, 1), 3.0))
    finally:
        moments._merge_splits = merge
    last = x[0, 0, start:].double()
    grads = dy[0, 0, start:].double()
    # The row's shift, the median of its values at 0, L // 2 and L − 1: the first two in
    # untouched memory (whatever they are), the last in the tail.
    split_shift = x[0, 0, [0, x.shape[-1] // 2, -1]].double().median()
    size = last.abs().max().item()
    return [
        _error(mean_dev[0, -1], last.mean() - split_shift) / size,
        _error(var[0, -1], last.var(correction=0)) / size**2,
        _error(sum_dy[0, -1], grads.sum()) / grads.abs().sum().item(),
        _error(sum_dy_xs[0, -1], (grads * (last - 3.0)).sum())
        / (grads * (last - 3.0)).abs().sum().item(),
    ]


def long_row() -> float:
    """One row of 2³¹ + 3000 positions split across 2¹⁶ programs' worth of partial results
    (as a GPU would split it): the last split starts below 2³¹ and ends past it."""
    from mn_triton.kernels import layout, moments
    from mn_triton.kernels.apply import row_affine

    length = 2**31 + 3000
    x, dy, plan, split_len, num_splits = _long_row(length)
    start = (num_splits - 1) * split_len
    assert start < 2**31 < start + split_len, (split_len, num_splits)
    errors = _last_split_errors(x, dy, plan, start)
    # The merge of partial results weighs the last split by its own length; with splits of
    # 2²⁰ positions the others' total, split_len · (splits − 1), is 2³¹ itself.
    split_len, num_splits = 2**20, layout.cdiv(length, 2**20)
    only_last = torch.zeros(1, num_splits)
    only_last[0, -1] = 1.0
    merged_mean, _ = moments._merge_splits(
        only_last, torch.zeros(1, num_splits), plan, split_len, num_splits, True
    )
    share = (length - (num_splits - 1) * split_len) / length
    errors.append(abs(merged_mean.item() / share - 1.0))
    one = torch.ones(1, 1)
    out = row_affine(x, torch.full((1, 1), 3.0), one, one, dy, one)
    computed = plan.block_len  # the last two programs' tiles hold at least this much
    want = x[0, 0, -computed:].double() - 2.0 + dy[0, 0, -computed:].double()
    errors.append(_error(out[0, 0, -computed:], want) / want.abs().max().item())
    return max(errors)


def split_end() -> float:
    """One row of 2³¹ − 2000 positions (below 2³¹ with its last tile) split into 2¹⁶ splits
    of 2¹⁵ positions: the last split starts below 2³¹ and its end, start + split_len, is 2³¹
    itself. Only `needs_64_bit_indices(plan, split_len, num_splits)` sees it; the row alone
    asks for no 64-bit indices, and in int32 the end wraps and the last split reads nothing."""
    from mn_triton.kernels import layout

    length = 2**31 - 2000
    x, dy, plan, split_len, num_splits = _long_row(length)
    start = (num_splits - 1) * split_len
    assert start < length < 2**31 <= start + split_len, (split_len, num_splits)
    assert not layout.needs_64_bit_indices(plan)
    return max(_last_split_errors(x, dy, plan, start))


CASES = {"many_rows": many_rows, "long_row": long_row, "split_end": split_end}

if __name__ == "__main__":
    reason = _install()
    if reason:
        print("SKIP", reason)
        sys.exit(0)
    import memcheck  # beside this file: the last programs stay inside their tensors too

    memcheck.install()
    for name in sys.argv[1:] or CASES:
        torch.manual_seed(0)
        print(name, CASES[name](), flush=True)
