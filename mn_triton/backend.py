"""Which implementation runs the passes over x: the Triton kernels or plain torch ops.

Both compute the same three primitives of SPEC §3 (row moments, row gradient sums, the
row-affine apply) and the mix between them (`mix.py` in torch ops, `kernels/mix.py` in
Triton). CUDA tensors use the kernels. CPU
tensors use torch ops, or the kernels through Triton's interpreter when TRITON_INTERPRET=1
was set before `mn_triton` was imported.

Where Triton is not installed (it has no wheels for macOS or Windows), everything runs on
torch ops: the layers work, only slower on CUDA tensors (which warn once), and asking for
the 'triton' backend raises.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor

from reference._base import row_length, update_running_stats

from . import mix as _mix

# Only a missing Triton turns the kernels off: with Triton present, an error in the kernel
# modules must surface, not quietly put every layer on the slow path.
HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    from .kernels import apply as _apply_kernels
    from .kernels import layout as _layout
    from .kernels import mix as _mix_kernels
    from .kernels import moments as _moment_kernels

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
# With the kernels, run the mix as Triton kernels too (2–3 launches for MN, more where the
# gates kernel runs or the samples are split, instead of ~100 small torch ops). False keeps
# the torch-op mix between the Triton passes: a switch for measuring what the fusion buys
# (benchmarks/NOTES.md).
FUSED_MIX = True
# Rows of one element (L = 1: ModeNorm1d and ModeGroupNorm1d on (N, C) features) are their
# own statistics: s = x, x − s = 0, v = 0, and backward Σ dy = dy, Σ dy·(x − s) = 0. Where
# the mix runs as Triton kernels, layer calls (eager or compiled) on such rows skip the
# passes that would compute them (a moments pass writing three (N, C) statistics, 3·|x| in
# float32; a gradient-sums pass): x and dy serve as s and Σ dy (as_rows: views where they
# are dense (N, C) rows in the statistics' dtype, such as a float32 batch; else float32
# copies, one torch op each, which move less than the passes and cost the host less than a
# Triton launch), the mix kernels take the zero statistics as absent (None: nothing read),
# and y = (x − s)·scale + bias is the mix's per-row bias (no apply pass; rows_like casts it
# for 16-bit x); backward, dx = bias + dy·dy_scale, one torch op in place on the mix
# backward's per-row bias (ops._dx; no apply pass either). A switch for tests, which
# compare both ways.
POINT_ROWS = True
_BACKENDS = ("auto", "triton", "torch")
_backend = "auto"


def set_backend(name: str) -> None:
    """'auto' (default), 'triton' (always the kernels) or 'torch' (always torch ops), for
    the whole process (switch it between layer calls, not while other threads run them)."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {name!r}")
    _backend = name


def get_backend() -> str:
    return _backend


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another backend, e.g. `with use_backend('torch'): ...`. The setting
    is process-wide, as `torch.backends` flags are: blocks in concurrent threads overlap."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


# Without Triton: the warning for CUDA tensors on 'auto', the error on 'triton'.
NO_TRITON = (
    "mn_triton: Triton is not installed, so {what}; install triton, or select the 'torch' "
    "backend{why}."
)
NO_TRITON_WARNING = NO_TRITON.format(
    what="CUDA tensors run on torch ops (correct, but slower than the kernels)", why=" to say so"
)
NO_TRITON_ERROR = NO_TRITON.format(
    what="the 'triton' backend cannot run", why=" (torch ops: correct, but slower than the kernels)"
)


def uses_kernels(x: Tensor) -> bool:
    if _backend == "torch":
        return False
    if not HAS_TRITON:
        return _without_triton(x)
    if x.is_cuda:
        return True
    if _backend == "triton" and not INTERPRETING:
        raise RuntimeError(
            "mn_triton: the 'triton' backend on CPU tensors needs Triton's interpreter; set "
            "TRITON_INTERPRET=1 before importing mn_triton, or use the 'torch' backend."
        )
    return INTERPRETING and x.device.type == "cpu"


_warned_no_triton = False


def _without_triton(x: Tensor) -> bool:
    """Torch ops for every tensor: 'auto' warns once per process for CUDA tensors (not at
    each of a layer call's primitives), 'triton' refuses."""
    global _warned_no_triton
    if _backend == "triton":
        raise RuntimeError(NO_TRITON_ERROR)
    if x.is_cuda and not _warned_no_triton:
        _warned_no_triton = True
        warnings.warn(NO_TRITON_WARNING, RuntimeWarning, stacklevel=4)
    return False


def as_captured() -> contextlib.AbstractContextManager:
    """A block whose MN mix kernels choose as calls captured into a CUDA graph do (splits of
    the samples, gates computed once: kernels/mix.as_captured); without Triton, a block that
    changes nothing."""
    if not HAS_TRITON:
        return contextlib.nullcontext()
    return _mix_kernels.as_captured()


def recording_launches() -> contextlib.AbstractContextManager:
    """A block whose kernel launches are recorded into the graph being traced rather than run
    (kernels/layout.recording_launches; ops.TRACE_KERNELS); without Triton, nothing to
    record."""
    if not HAS_TRITON:
        return contextlib.nullcontext()
    return _layout.recording_launches()


def on_device_of(t: Tensor) -> contextlib.AbstractContextManager:
    """A block whose launches go to `t`'s CUDA device: Triton launches on the current device
    (and its current stream), and a model on another one (`model.to("cuda:1")` without
    `torch.cuda.set_device(1)`) would have its kernels refused by Triton ("cannot be
    accessed from Triton") or run where its tensors are not."""
    if t.is_cuda and t.get_device() != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def resolved(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """The tensors with a lazy negation applied (`Tensor.is_neg()`, e.g. `z.conj().imag`):
    such a tensor's memory holds −t, which torch's ops read through but the kernels, given
    the raw pointer, do not. Free (each tensor itself) when the bit is clear, which is always
    but for such views. Compiled code leaves it to the dispatcher, which resolves such inputs
    of the custom ops (and dynamo cannot trace `is_neg`)."""
    if torch.compiler.is_compiling():
        return tensors
    return tuple(t.resolve_neg() if t is not None and t.is_neg() else t for t in tensors)


# ------------------------------ torch-op versions -------------------------------------


# The torch-op passes make one temporary of x's size each, x − s (`_minus_shift`), and work
# in place on it: on CPU every fresh tensor of that size costs about as much as the
# arithmetic on it.


def _rows(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_row(t: Tensor, ndim: int) -> Tensor:
    return t.reshape(t.shape + (1,) * (ndim - 2))


def _minus_shift(t: Tensor, shift: Tensor) -> Tensor:
    """t − s per row (t: (N, C, L) rows or x's own shape), in the statistics' dtype: a new
    tensor, for the caller to change in place."""
    s = _per_row(shift, t.dim())
    converted = t.to(shift.dtype)
    return converted - s if converted is t else converted.sub_(s)


def _row_shift_torch(rows: Tensor, dtype: torch.dtype) -> Tensor:
    """The median of each row's values at positions 0, L // 2 and L − 1 (for float64
    statistics, the first), in x's dtype (why: kernels/moments._row_shift, which takes the
    same one)."""
    length = rows.shape[-1]
    if dtype == torch.float64:
        return rows[:, :, 0]
    first, middle, last = rows[:, :, 0], rows[:, :, length // 2], rows[:, :, length - 1]
    return torch.maximum(
        torch.minimum(first, middle), torch.minimum(torch.maximum(first, middle), last)
    )


def _row_moments_torch(x: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    rows = _rows(x)
    shift = _row_shift_torch(rows, dtype)
    shift = shift.to(dtype, memory_format=torch.contiguous_format, copy=True)
    dev = _minus_shift(rows, shift)
    mean_dev = dev.mean(dim=-1)
    # Two passes over the deviations, centred and squared in place: on CPU 3-20x faster than
    # Tensor.var, whose Welford loop runs element by element, and within about a rounding.
    var = dev.sub_(mean_dev.unsqueeze(-1)).square_().mean(dim=-1)
    return shift, mean_dev, var


def _row_grad_sums_torch(x: Tensor, dy: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    dy_rows = _rows(dy)
    sum_dy = dy_rows.sum(dim=-1, dtype=shift.dtype)
    return sum_dy, _minus_shift(_rows(x), shift).mul_(dy_rows).sum(dim=-1)


def _row_affine_torch(x, shift, x_scale, bias, dy=None, dy_scale=None, like=None) -> Tensor:  # noqa: ANN001
    nd = x.dim()
    value = _minus_shift(x, shift)
    value.mul_(_per_row(x_scale, nd)).add_(_per_row(bias, nd))
    if dy is not None:
        value.addcmul_(dy, _per_row(dy_scale, nd))  # in the statistics' dtype
    like = x if like is None else like
    if value.dtype == like.dtype and value.stride() == like.stride():
        return value
    return torch.empty_like(like).copy_(value)


# ------------------------------------ dispatch ---------------------------------------


def row_moments(x: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row (n, c) shift s (the median of x[n, c, 0], the middle and the last value;
    float64 statistics: x[n, c, 0]), mean of x − s, biased variance; each (N, C).

    Like the other primitives, needs an input with at least one element.
    """
    if uses_kernels(x):
        return _moment_kernels.row_moments(x, dtype)
    return _row_moments_torch(x, dtype)


def row_grad_sums(x: Tensor, dy: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row Σ dy and Σ dy·(x − s); each (N, C)."""
    if uses_kernels(x):
        return _moment_kernels.row_grad_sums(x, dy, shift)
    return _row_grad_sums_torch(x, dy, shift)


def row_affine(
    x: Tensor,
    shift: Tensor,
    x_scale: Tensor,
    bias: Tensor,
    dy: Tensor | None = None,
    dy_scale: Tensor | None = None,
    like: Tensor | None = None,
) -> Tensor:
    """(x − s)·x_scale + bias [+ dy·dy_scale] per row, in x's dtype and the layout of
    `torch.empty_like(like)` (`like`: x by default; the op's input where x is the
    `addressable` copy of it)."""
    if uses_kernels(x):
        return _apply_kernels.row_affine(x, shift, x_scale, bias, dy, dy_scale, like)
    return _row_affine_torch(x, shift, x_scale, bias, dy, dy_scale, like)


def addressable(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Same-shaped tensors as an op call's passes read them: themselves, or, on the kernels,
    contiguous copies where their layouts need three spatial levels together (a 3-D input
    sliced in two spatial dims: layout.plan_rows). Copied once per op call here, rather than
    by each pass over them (`layout.plan_rows_or_copy`): for a sliced x, forward 5·|x| of
    traffic instead of 7, backward 7 instead of 9 (benchmarks/NOTES.md, 2026-12-07)."""
    x = tensors[0]
    if x.dim() <= 4 or x.numel() == 0 or not uses_kernels(x):  # ≤ 2 spatial dims: 2 levels
        return tensors
    if _layout.plan_rows(*tensors) is not None:
        return tensors
    return tuple(t.contiguous() for t in tensors)


def _fused_mix(x: Tensor, gate_weight: Tensor) -> bool:
    """The mix as Triton kernels: on the kernel path, for K the mix kernels take."""
    return FUSED_MIX and uses_kernels(x) and gate_weight.shape[0] <= _mix_kernels.MAX_MODES


def point_rows(x: Tensor, gate_weight: Tensor) -> bool:
    """Whether a layer call takes the one-element-row path (see POINT_ROWS): x holds one
    element per row (in any dtype and layout) and the mix runs as Triton kernels."""
    return POINT_ROWS and row_length(x) == 1 and _fused_mix(x, gate_weight)


def as_rows(t: Tensor, dtype: torch.dtype) -> Tensor:
    """A tensor of one element per row as dense (N, C) rows in `dtype`: a view where it is
    one already (a dense float32 batch), else a copy (16-bit or strided rows)."""
    return t.reshape(t.shape[0], t.shape[1]).to(dtype).contiguous()


def rows_like(rows: Tensor, x: Tensor) -> Tensor:
    """Dense (N, C) rows as a tensor like `x`, which holds one element per row: x's shape,
    dtype and strides; `rows`' memory where they match, else a copy.

    Not as a view of `rows`: autograd refuses in-place changes (`relu_`) to a view that a
    custom Function returns. `detach()` gives the same memory without view tracking."""
    y = rows.view(x.shape)
    if y.dtype == x.dtype and y.stride() == x.stride():
        return y.detach()
    return torch.empty_like(x).copy_(y)


def mode_norm_mix_forward(
    x: Tensor,
    *args,  # noqa: ANN002
    momentum: float | Tensor | None = None,
    stats_out: Tensor | None = None,
    gates_out: Tensor | None = None,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
    """(scale, bias) per row and (μ, σ²) per mode: `mix.mode_norm_forward`'s arguments.
    On rows of one element (no mean deviations), the kernels leave the scale out: None.

    With a `momentum`, training also updates the running estimates in place (on the kernels,
    inside the mix kernel: no launches of its own). With `stats_out` (K + 3·K·C elements),
    training also writes the batch statistics there, packed (mix.ModeStats.packed), and with
    `gates_out` (N, K) the gates, for the backward (`mode_norm_mix_backward`'s `stats` and
    `gates`).
    """
    if _fused_mix(x, gate_weight=args[3]):
        return _mix_kernels.mode_norm_forward(
            *args, momentum=momentum, stats_out=stats_out, gates_out=gates_out
        )
    coeffs, stats = _mix.mode_norm_forward(*args, gates_out=gates_out)
    mode_mean = stats.absolute_mean()
    *_, running_mean, running_mean_sq, training, _ = args
    if training and momentum is not None and running_mean is not None:
        update_running_stats(running_mean, running_mean_sq, mode_mean, stats.var, momentum)
    if training and stats_out is not None:
        stats_out.copy_(stats.packed())
    return coeffs.scale, coeffs.bias, mode_mean, stats.var


def _zeros_where_absent(args: tuple) -> tuple:
    """The backward mix's arguments (Σ dy, Σ dy·(x − s), L, s, md, v, …) for the torch-op
    mix, which needs every statistic: zeros for those a forward on rows of one element left
    out (None, see POINT_ROWS), where the backward runs on another path than the forward
    (under `use_backend('torch')`, say)."""
    zeros = torch.zeros_like(args[0])
    return tuple(zeros if i in (1, 4, 5) and t is None else t for i, t in enumerate(args))


def mode_norm_mix_backward(
    x: Tensor,
    *args,  # noqa: ANN002
    stats: Tensor | None = None,
    gates: Tensor | None = None,
) -> _mix.MixGrads:
    """`mix.mode_norm_backward`, on the kernels or in torch ops; given `stats` (training: the
    batch statistics the forward packed into its `stats_out`) and `gates` (its `gates_out`),
    without computing them again."""
    gate_weight = args[6]
    if _fused_mix(x, gate_weight):
        return _mix_kernels.mode_norm_backward(*args, stats=stats, gates=gates)
    given = None if stats is None else _mix.ModeStats.unpacked(stats, *gate_weight.shape)
    return _mix.mode_norm_backward(*_zeros_where_absent(args), stats=given, gates=gates)


def mode_group_norm_mix_forward(x: Tensor, *args) -> tuple[Tensor | None, Tensor]:  # noqa: ANN002
    """(scale, bias) per row: `mix.mode_group_norm_forward`'s arguments (the scale None
    as for MN)."""
    if _fused_mix(x, gate_weight=args[3]):
        return _mix_kernels.mode_group_norm_forward(*args)
    coeffs = _mix.mode_group_norm_forward(*args)
    return coeffs.scale, coeffs.bias


def mode_group_norm_mix_backward(x: Tensor, *args) -> _mix.MixGrads:  # noqa: ANN002
    """`mix.mode_group_norm_backward`, on the kernels or in torch ops."""
    if _fused_mix(x, gate_weight=args[6]):
        return _mix_kernels.mode_group_norm_backward(*args)
    return _mix.mode_group_norm_backward(*_zeros_where_absent(args))
