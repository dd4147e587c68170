"""The layers' autograd ops: one forward and one backward op per layer.

Each forward runs moments → mix → apply; each backward runs the reduction over (x, dy) →
mix backward → the dx pass. Each exists in two wrappers around the same implementation:

- `torch.library.custom_op`s with fake (meta) implementations and registered autograd, so
  that torch.compile traces the layers whole (fullgraph, CUDA graphs);
- a plain `torch.autograd.Function` for eager calls: the custom-op dispatcher costs ~60 µs
  of host time per layer call (forward + backward), which a small network pays per layer on
  every step.

`mode_norm` and `mode_group_norm` pick the custom op while torch.compile, torch.jit.trace or
make_fx traces, on fake tensors and on wrapper subclasses (`_via_custom_ops`), the Function
otherwise. The forwards also return the
per-row statistics (saved for the backward, which recomputes the small mix from them) and,
for MN, the mode statistics: mean and variance for the running estimates, and in training
the batch statistics packed for the backward, which takes them and the forward's gates
rather than computing them again. Those extra outputs carry no gradient. On rows of one
element (backend.point_rows) both skip the passes that compute row statistics (x is its
own, or a float32 copy of it for 16-bit or strided x): the Function returns None for them,
the custom ops (which the layer tells, as traced, with their `points` argument) empty
tensors; the backward takes them from x again, and its dx is one torch op instead of the
dx pass (`_dx`).
Captured into CUDA graphs, the MN custom ops split the mix's samples across more programs
and compute its gates once (`_with_capture_choices`), since a replay pays the GPU's
time and no host time per launch. With TRACE_KERNELS (opt-in), torch.compile traces the
custom ops' bodies and records their kernel launches, for inductor to launch itself.

No `from __future__ import annotations` here: `custom_op` reads the annotations.
"""

import contextlib
import os
from collections.abc import Callable

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensor, FunctionalTensorMode

from reference import functional as reference_functional
from reference._base import autocast_off, row_length, stat_dtype, update_running_stats

from . import backend
from .mix import MixGrads, ModeStats


def _stats_like(x: Tensor, *shape: int) -> Tensor:
    return x.new_empty(shape, dtype=stat_dtype(x.dtype))


def _mode_stats_like(x: Tensor, k: int, training: bool) -> Tensor:
    """Room for MN's packed batch statistics, K + 3·K·C elements (mix.ModeStats.packed);
    empty in eval, which has none."""
    return _stats_like(x, ModeStats.packed_size(k, x.shape[1]) if training else 0)


# The dispatch modes under which tensors carry no data or calls are recorded.
_SYMBOLIC_MODES = (torch._C._TorchDispatchModeKey.FAKE, torch._C._TorchDispatchModeKey.PROXY)


def _tracing() -> bool:
    """Whether this call is recorded, or runs on tensors without data: torch.compile,
    torch.jit.trace, make_fx (a proxy mode) and FakeTensorMode (shape propagation, memory
    estimators). All of them need the custom ops, which they record as one call each and
    which have fake implementations. (A tracer would record the Function's inner torch ops
    as well as the Function, and so update running estimates twice; it cannot see Triton
    launches at all; and kernels cannot run on fake tensors.) A fake tensor outside its mode
    is a wrapper subclass, which `wraps_tensors` sends the same way. Other dispatch modes
    (op recorders, FLOP counters) see the eager call as it runs."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or any(torch._C._get_dispatch_mode(key) is not None for key in _SYMBOLIC_MODES)
    )


_PLAIN_TENSOR_TYPES = (Tensor, torch.nn.Parameter)


def _via_custom_ops(args: tuple) -> bool:
    """Whether a layer call goes through the custom ops rather than the eager Function: while
    tracing (`_tracing`), and where a tensor argument is a wrapper subclass (one with
    `__torch_dispatch__`: DTensor, logging or debugging tensors, two-tensor pairs, a fake
    tensor outside its mode), whose storage a kernel cannot read. Its `__torch_dispatch__`
    then sees each op as one call and runs it on the plain tensors it wraps, as it does for
    BatchNorm's aten op. (A subclass with `__torch_function__` alone is a plain tensor
    underneath: the Function takes it.)"""
    return _tracing() or wraps_tensors(args)


def wraps_tensors(args: tuple) -> bool:
    """Whether a tensor among `args` is a wrapper subclass (`__torch_dispatch__`)."""
    python_key = torch._C.DispatchKey.Python
    for t in args:  # (a loop, not any(...): this runs on every eager call)
        wrapped = type(t) not in _PLAIN_TENSOR_TYPES and isinstance(t, Tensor)
        if wrapped and torch._C._dispatch_keys(t).has(python_key):
            return True
    return False


# --------------------------------- Mode Normalization ---------------------------------


def _mode_norm_forward(
    x: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    points: bool = False,
    record_kernels: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns (y, row shift, row mean − shift, row variance, mode mean, mode variance, mode
    statistics, gates). The mode statistics: in training the batch's (N_k, P_k, μ_k − P_k,
    σ²_k), packed (mix.ModeStats.packed); in eval, empty. The backward takes them and the
    gates, (N, K), instead of computing them again (two of its mix's walks over the samples,
    and in each walk the gates from every channel's statistics). `points`: the layer's
    backend.point_rows (rows of one element, their own statistics): the three row
    statistics are then empty, `_absent_rows`. `record_kernels`: see TRACE_KERNELS (it
    changes nothing here)."""
    args = (x, gate_weight, gate_bias, weight, bias, running_mean, running_mean_sq, training, eps)
    return _with_capture_choices(_mode_norm_op_forward, (*args, points), x, gate_weight)


def _mode_norm_op_forward(*args):  # noqa: ANN002
    """The forward op's body (`_mode_norm_forward`'s arguments up to `points`): the row
    statistics it leaves out on rows of one element as empty tensors (an op returns tensors,
    never None)."""
    *args, points = args
    outputs = _mode_norm_forward_updating(*args, points=_points_taken(points, args[0], args[1]))
    return _absent_rows(outputs, args[0], points)


def _mode_norm_forward_updating(
    x, gate_weight, gate_bias, weight, bias, running_mean, running_mean_sq, training, eps,  # noqa: ANN001
    momentum: float | Tensor | None = None, points: bool = False,
):  # fmt: skip
    """`_mode_norm_forward`; in training with a `momentum`, it also updates the running
    estimates in place (inside the mix kernel, without launches of its own, where it runs as
    kernels and the estimates are contiguous; else by torch ops after it). With `points`
    (rows of one element, backend.point_rows), the row statistics are x
    itself and the three statistics outputs None."""
    if x.numel() == 0:  # nothing to normalise; statistics are zeros (and go unused)
        return _empty_forward(x, gate_weight.shape[0], training)
    with backend.on_device_of(x), autocast_off(x):
        (x_in,) = backend.addressable(x)  # what both passes read
        shift, mean_dev, var_rows = _row_statistics(x_in, points)
        mode_stats = _mode_stats_like(x, gate_weight.shape[0], training)
        gates = _stats_like(x, x.shape[0], gate_weight.shape[0])
        scale, row_bias, mode_mean, mode_var = backend.mode_norm_mix_forward(
            x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias,
            running_mean, running_mean_sq, training, eps, momentum=momentum,
            stats_out=mode_stats, gates_out=gates,
        )  # fmt: skip
        y = _apply(x_in, shift, scale, row_bias, points, like=x)
    if points:
        return y, None, None, None, mode_mean, mode_var, mode_stats, gates
    return y, shift, mean_dev, var_rows, mode_mean, mode_var, mode_stats, gates


mode_norm_forward = torch.library.custom_op(
    "mn_triton::mode_norm_forward", _mode_norm_forward, mutates_args=()
)


@mode_norm_forward.register_fake
def _(x, gate_weight, gate_bias, weight, bias, running_mean, running_mean_sq, training, eps,  # noqa: ANN001
      points: bool = False, record_kernels: bool = False):  # fmt: skip
    n, c, k = x.shape[0], x.shape[1], gate_weight.shape[0]
    rows = [_stats_like(x, *_row_stats_shape(x, points)) for _ in range(3)]
    modes = [_stats_like(x, k, c), _stats_like(x, k, c), _mode_stats_like(x, k, training)]
    return (torch.empty_like(x), *rows, *modes, _stats_like(x, n, k))


def _mode_norm_backward_impl(
    dy: Tensor,
    x: Tensor,
    shift: Tensor | None,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    mode_stats: Tensor | None,
    gates: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    running_mean: Tensor | None,
    running_mean_sq: Tensor | None,
    training: bool,
    eps: float,
    input_grad: bool = True,
    record_kernels: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns (dx, d gate weight, d gate bias, d weight, d bias); parameter gradients in the
    statistics dtype (the autograd wrapper casts them to each parameter's dtype). Without
    row statistics (None: the forward took rows of one element as their own), from x.
    `mode_stats` (training) are the forward's packed batch statistics and `gates` its gates;
    None: computed again. Without `input_grad` (x needs no gradient), dx is an empty tensor
    and its pass is left out (see _dx). `record_kernels`: see TRACE_KERNELS (it changes
    nothing here; the ops' last argument, which _record_kernels_of takes off)."""
    if x.numel() == 0:
        return _empty_backward(x, gate_weight)
    with backend.on_device_of(x), autocast_off(x):
        points = shift is None
        x_in, dy_in = backend.addressable(x, dy)  # what both passes read
        shift, sum_dy, sum_dy_xs = _row_grad_sums(x_in, dy_in, shift)
        grads = backend.mode_norm_mix_backward(
            x, sum_dy, sum_dy_xs, row_length(x), shift, mean_dev, var_rows, gate_weight,
            gate_bias, weight, running_mean, running_mean_sq, training, eps, stats=mode_stats,
            gates=gates,
        )  # fmt: skip
        dx = _dx(x, shift, grads, dy_in, input_grad, sum_dy if points else None, x_in=x_in)
    return dx, grads.gate_weight, grads.gate_bias, grads.weight, grads.bias_param


def _dx(
    x: Tensor,
    shift: Tensor,
    grads: MixGrads,
    dy: Tensor,
    input_grad: bool,
    dy_rows: Tensor | None,
    *,
    x_in: Tensor,
) -> Tensor:
    """The input's gradient, one pass over x and dy (3·|x| of the backward's 5; `x_in` and
    `dy` as that pass reads them, backend.addressable; dx is laid out as x), or, where x
    needs none (a norm on the input data, a frozen trunk before it), an empty tensor without
    that pass, as BatchNorm's backward leaves its input's out (a custom op returns tensors,
    never None: the autograd formula gives None for it).

    `dy_rows`: dy as (N, C) rows where the forward took rows of one element as their own
    statistics (s = x). There x − s = 0, so dx = row_bias + dy·dy_scale per element: one
    torch op on the mix's fresh `row_bias`, in place, instead of a Triton pass that also
    reads x twice and x_scale (4 accesses of x's size instead of 7, and a torch launch costs
    the host less than Triton's launch path)."""
    if not input_grad:
        return x.new_empty(0)
    if dy_rows is not None:
        return backend.rows_like(grads.row_bias.addcmul_(dy_rows, grads.dy_scale), x)
    return backend.row_affine(
        x_in, shift, grads.x_scale, grads.row_bias, dy, grads.dy_scale, like=x
    )


def _mode_norm_op_backward(*args):  # noqa: ANN002
    """The backward op's body: `_mode_norm_backward_impl`, given the forward op's empty row
    statistics as absent (None)."""
    return _mode_norm_backward_impl(*_absent_as_none(args, first=2))


def _mode_norm_backward(*args):  # noqa: ANN002
    """The backward op: its body (`_mode_norm_backward_impl`'s arguments: x second,
    gate_weight eighth), its mix choosing for CUDA graphs where captured. (Absent statistics
    as None before the mix's signature is taken: they change which kernels it compiles.)"""
    args = _absent_as_none(args, first=2)
    return _with_capture_choices(_mode_norm_backward_impl, args, args[1], args[7])


mode_norm_backward = torch.library.custom_op(
    "mn_triton::mode_norm_backward",
    _mode_norm_backward,
    mutates_args=(),
    schema=torch.library.infer_schema(_mode_norm_backward_impl, mutates_args=()),
)


@mode_norm_backward.register_fake
def _(dy, x, shift, mean_dev, var_rows, mode_stats, gates, gate_weight, *args):  # noqa: ANN001, ANN002
    input_grad = args[6] if len(args) > 6 else True  # after gate_bias … eps
    return (_fake_dx(x, input_grad), *_fake_param_grads(x, gate_weight))


def _fake_dx(x: Tensor, input_grad: bool) -> Tensor:
    return torch.empty_like(x) if input_grad or x.numel() == 0 else x.new_empty(0)


def _mode_norm_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    x, gate_weight, gate_bias, weight, _, running_mean, running_mean_sq, training, eps = inputs[:9]
    _, shift, mean_dev, var_rows, _, _, mode_stats, gates = output
    if training:  # running estimates are updated in place after this op; never save them
        running_mean = running_mean_sq = None
    else:  # eval normalises with the running estimates: no batch statistics
        mode_stats = None
    ctx.save_for_backward(
        x, shift, mean_dev, var_rows, mode_stats, gates, gate_weight, gate_bias, weight,
        running_mean, running_mean_sq,
    )  # fmt: skip
    ctx.training, ctx.eps = training, eps
    ctx.record_kernels = _record_kernels_input(inputs, 10)
    ctx.param_dtypes = _dtypes(gate_weight, gate_bias, weight, inputs[4])
    ctx.mark_non_differentiable(*(t for t in output[1:] if t is not None))
    # Those outputs' gradients are unused: do not fill zeros for them (a launch each).
    ctx.set_materialize_grads(False)


def _record_kernels_input(inputs: tuple, index: int) -> bool:
    """The forward op's `record_kernels` (its last input), for the backward op; False for
    eager calls, whose inputs end before it."""
    return len(inputs) > index and inputs[index] is True


def _mode_norm_grads(backward_op):  # noqa: ANN001
    """The autograd backward, given the backward op to call (custom op, or its code)."""

    def backward(ctx, dy, *_unused):  # noqa: ANN001, ANN002
        if dy is None:  # no gradient reached y (grads are not materialised as zeros)
            return (None,) * 11
        (dy,) = backend.resolved(dy)
        x, shift, mean_dev, var_rows, mode_stats, gates, gate_weight, gate_bias, weight, *rest = (
            ctx.saved_tensors
        )
        input_grad = ctx.needs_input_grad[0]
        dx, *param_grads = backward_op(
            dy, x, shift, mean_dev, var_rows, mode_stats, gates, gate_weight, gate_bias, weight,
            *rest, ctx.training, ctx.eps, input_grad, ctx.record_kernels,
        )  # fmt: skip
        return dx if input_grad else None, *_cast(param_grads, ctx.param_dtypes), *(None,) * 6

    return backward


mode_norm_forward.register_autograd(
    _mode_norm_grads(mode_norm_backward), setup_context=_mode_norm_setup_context
)


class _ModeNormFunction(torch.autograd.Function):
    """The same forward and backward for eager calls, without the dispatcher.

    `forward` takes `ctx` itself rather than defining `setup_context`: with a separate
    `setup_context`, `Function.apply` binds the arguments through `inspect.signature` on
    every call (~10 µs of host time).
    """

    @staticmethod
    def forward(ctx, *args):  # noqa: ANN001, ANN002, ANN205
        points = backend.point_rows(args[0], args[1])
        outputs = _mode_norm_forward_updating(*args, points=points)
        _mode_norm_setup_context(ctx, args[:-1], outputs)
        return outputs

    @staticmethod
    def backward(ctx, dy, *unused):  # noqa: ANN001, ANN002, ANN205
        if _needs_torch_backward(dy):  # create_graph=True or batched grads: see below
            return *_mode_norm_differentiable_backward(ctx, dy), None, None, None, None, None
        # The op's gradients, for its 11 inputs; the Function's 10 end with momentum in the
        # place of the op's `points` (None either way).
        return _mode_norm_eager_backward(ctx, dy, *unused)[:10]


_mode_norm_eager_backward = _mode_norm_grads(_mode_norm_backward_impl)


def mode_norm(*args, momentum: float | Tensor | None = None) -> tuple[Tensor | None, ...]:  # noqa: ANN002
    """`mode_norm_forward`'s arguments and results; differentiable.

    In training with a `momentum`, the running estimates are updated in place (a custom op
    may not both mutate and have an autograd formula, so when compiling the update is a few
    torch ops after the op, which inductor fuses).
    """
    if _via_custom_ops(args):
        x, gate_weight, gate_bias, weight, bias, running_mean, running_mean_sq, training, eps = args
        if training:
            args = (x, gate_weight, gate_bias, weight, bias, None, None, training, eps)
        outputs = mode_norm_forward(*args, backend.point_rows(x, gate_weight), TRACE_KERNELS)
        if training and momentum is not None and running_mean is not None and x.numel() > 0:
            update_running_stats(running_mean, running_mean_sq, *outputs[4:6], momentum)
        return outputs
    return _ModeNormFunction.apply(*args, momentum)


# The MN ops captured into CUDA graphs (torch.compile's "reduce-overhead") split the mix's
# samples from 2·kernels/mix.GRAPH_SPLIT_MIN_ROWS on, and compute the gates once wherever
# several mix programs share the channels (kernels/mix.as_captured): a replay pays nothing
# per launch, and both shorten the mix kernels' walks over the samples, which then bound
# the GPU's time. CUDA refuses to load a kernel while a stream is captured, so every kernel
# a capture launches must have run before: torch.compile runs each graph uncaptured first
# (its warm-up), and there the first call of each signature runs once more, as captured, its
# results dropped. Both op bodies are pure (under torch.compile the running estimates are
# updated after the op), so that extra call changes nothing. Eager calls keep the eager
# choices: the host bounds them, and a capture of eager code (torch.cuda.graph) launches
# what its warm-up launched.
_signatures_run_as_captured: set[tuple] = set()


def _capturing(x: Tensor) -> bool:
    """Whether x's stream is being captured into a CUDA graph."""
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def _mix_signature(args: tuple, x: Tensor, gate_weight: Tensor) -> tuple:
    """What decides which mix kernels a call compiles: sizes, device, the flags, which
    optional tensors are given, and each given tensor's dtype and whether its address is a
    multiple of 16, on both of which Triton specialises a kernel (the mix kernels read the
    parameters and running estimates as given, and x and dy too where rows are one element;
    the statistics they read are fresh, aligned allocations)."""
    return (*x.shape[:2], gate_weight.shape[0], x.device, *map(_specialised_as, args))


def _specialised_as(arg: object) -> object:
    """An op argument, as far as it decides which kernels Triton compiles for a call."""
    if isinstance(arg, Tensor):
        return arg.dtype, arg.data_ptr() % 16 == 0
    return arg if isinstance(arg, bool) else arg is None


def _with_capture_choices(impl: Callable, args: tuple, x: Tensor, gate_weight: Tensor):
    """`impl(*args)`, an MN op's body (x and gate_weight among the args), its mix choosing
    for CUDA graphs where captured (backend.as_captured)."""
    if not backend.uses_kernels(x):
        return impl(*args)
    if _capturing(x):
        with backend.as_captured():
            return impl(*args)
    signature = _mix_signature(args, x, gate_weight)
    if signature not in _signatures_run_as_captured:
        with backend.as_captured():
            impl(*args)  # loads the kernels a capture of this call will launch
        _signatures_run_as_captured.add(signature)
    return impl(*args)


# ------------------------------ Mode Group Normalization ------------------------------


def _mode_group_norm_forward(
    x: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
    points: bool = False,
    record_kernels: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns (y, row shift, row mean − shift, row variance); `points` and `record_kernels`
    as for MN (`_mode_norm_forward`)."""
    return _mode_group_norm_op_forward(x, gate_weight, gate_bias, weight, bias, eps, points)


def _mode_group_norm_op_forward(*args):  # noqa: ANN002
    """The forward op's body, as `_mode_norm_op_forward`."""
    *args, points = args
    outputs = _mode_group_norm_forward_impl(*args, points=_points_taken(points, args[0], args[1]))
    return _absent_rows(outputs, args[0], points)


def _mode_group_norm_forward_impl(
    x, gate_weight, gate_bias, weight, bias, eps, points: bool = False,  # noqa: ANN001
):  # fmt: skip
    """`_mode_group_norm_forward`; with `points` (rows of one element,
    backend.point_rows), the row statistics are x itself and their outputs None."""
    if x.numel() == 0:
        return _empty_forward(x)
    with backend.on_device_of(x), autocast_off(x):
        (x_in,) = backend.addressable(x)  # what both passes read
        shift, mean_dev, var_rows = _row_statistics(x_in, points)
        scale, row_bias = backend.mode_group_norm_mix_forward(
            x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, eps
        )
        y = _apply(x_in, shift, scale, row_bias, points, like=x)
    if points:
        return y, None, None, None
    return y, shift, mean_dev, var_rows


mode_group_norm_forward = torch.library.custom_op(
    "mn_triton::mode_group_norm_forward", _mode_group_norm_forward, mutates_args=()
)


@mode_group_norm_forward.register_fake
def _(x, gate_weight, gate_bias, weight, bias, eps, points=False, record_kernels=False):  # noqa: ANN001
    return (torch.empty_like(x), *[_stats_like(x, *_row_stats_shape(x, points)) for _ in range(3)])


def _mode_group_norm_backward_impl(
    dy: Tensor,
    x: Tensor,
    shift: Tensor | None,
    mean_dev: Tensor | None,
    var_rows: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None,
    eps: float,
    input_grad: bool = True,
    record_kernels: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """As `_mode_norm_backward_impl`, for MGN."""
    if x.numel() == 0:
        return _empty_backward(x, gate_weight)
    with backend.on_device_of(x), autocast_off(x):
        points = shift is None
        x_in, dy_in = backend.addressable(x, dy)  # what both passes read
        shift, sum_dy, sum_dy_xs = _row_grad_sums(x_in, dy_in, shift)
        grads = backend.mode_group_norm_mix_backward(
            x, sum_dy, sum_dy_xs, row_length(x), shift, mean_dev, var_rows, gate_weight,
            gate_bias, weight, eps,
        )  # fmt: skip
        dx = _dx(x, shift, grads, dy_in, input_grad, sum_dy if points else None, x_in=x_in)
    return dx, grads.gate_weight, grads.gate_bias, grads.weight, grads.bias_param


def _mode_group_norm_op_backward(*args):  # noqa: ANN002
    """The backward op's body, as `_mode_norm_op_backward`."""
    return _mode_group_norm_backward_impl(*_absent_as_none(args, first=2))


mode_group_norm_backward = torch.library.custom_op(
    "mn_triton::mode_group_norm_backward",
    _mode_group_norm_op_backward,
    mutates_args=(),
    schema=torch.library.infer_schema(_mode_group_norm_backward_impl, mutates_args=()),
)


@mode_group_norm_backward.register_fake
def _(dy, x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, eps, input_grad=True,  # noqa: ANN001
      record_kernels: bool = False):  # fmt: skip
    return (_fake_dx(x, input_grad), *_fake_param_grads(x, gate_weight))


def _mode_group_norm_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    x, gate_weight, gate_bias, weight, _, eps = inputs[:6]
    _, shift, mean_dev, var_rows = output
    ctx.save_for_backward(x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight)
    ctx.eps = eps
    ctx.record_kernels = _record_kernels_input(inputs, 7)
    ctx.param_dtypes = _dtypes(gate_weight, gate_bias, weight, inputs[4])
    ctx.mark_non_differentiable(*(t for t in output[1:] if t is not None))
    # Those outputs' gradients are unused: do not fill zeros for them (a launch each).
    ctx.set_materialize_grads(False)


def _mode_group_norm_grads(backward_op):  # noqa: ANN001
    """The autograd backward, given the backward op to call (custom op, or its code)."""

    def backward(ctx, dy, *_unused):  # noqa: ANN001, ANN002
        if dy is None:  # no gradient reached y (grads are not materialised as zeros)
            return (None,) * 8
        (dy,) = backend.resolved(dy)
        x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight = ctx.saved_tensors
        input_grad = ctx.needs_input_grad[0]
        dx, *param_grads = backward_op(
            dy, x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, ctx.eps,
            input_grad, ctx.record_kernels,
        )  # fmt: skip
        return dx if input_grad else None, *_cast(param_grads, ctx.param_dtypes), None, None, None

    return backward


mode_group_norm_forward.register_autograd(
    _mode_group_norm_grads(mode_group_norm_backward),
    setup_context=_mode_group_norm_setup_context,
)


# --------------------------- kernels visible to inductor ------------------------------
# Under torch.compile the custom ops above are opaque: every call of a compiled graph runs
# their Python bodies (planning, allocations, Triton's launch path), ~0.8 ms of host time per
# MN layer forward+backward on the lent H200s, which left compiled training steps as
# host-bound as eager ones (benchmarks/E2E.md). With TRACE_KERNELS, AOTAutograd traces the
# bodies instead, as for a torch.library.triton_op: each launch is recorded
# (kernels/layout.recording_launches), and inductor compiles those kernels and launches them
# from the code it generates, beside the allocations and the few torch ops between them.
# CUDA tensors of static sizes only (the host code plans from sizes: symbolic ones keep the
# opaque op), and never for torch.export, which keeps the ops whole. Captured into CUDA
# graphs (inductor's cudagraphs, mode="reduce-overhead"), MN's mix chooses as captured calls
# do when the graph is traced: no run ahead is needed, since inductor's warm-up runs the
# kernels before it captures them. Off by default until measured on a GPU
# (benchmarks/NOTES.md); `MN_TRITON_TRACE_KERNELS=1` or `ops.TRACE_KERNELS = True` turns it
# on. `tools/trace_probe.py` shows what the traced graphs launch, without a GPU.
# The layers pass the switch into each forward op call as it stands when dynamo traces them
# (`record_kernels`, the ops' last argument, handed on to the backward op): dynamo then guards
# on it, so switching recompiles, and the two ways make different graphs, so torch.compile's
# on-disk caches never hand one way's compiled graph to the other (AOTAutograd's cache is
# keyed by the graph as dynamo records it, before the ops' bodies are traced). That key
# also leaves out what the bodies launch: a graph cached with the switch on keeps the
# launches of the mn_triton and settings it was traced with (README: torch.compile).
TRACE_KERNELS = os.environ.get("MN_TRITON_TRACE_KERNELS", "0") == "1"


def _records_kernels(x: Tensor, types: tuple[type, ...], asked: bool) -> bool:
    """Whether this traced call records the op body's kernel launches: `asked` (the op's
    record_kernels, TRACE_KERNELS when the layer was traced), real kernels (CUDA tensors; the
    interpreter's cannot be recorded), static sizes, no other tensor subclass (it sees the op
    whole), not for torch.export."""
    if not asked or backend.INTERPRETING or not backend.uses_kernels(x):
        return False
    if not all(isinstance(size, int) for size in x.shape):
        return False
    if not all(issubclass(t, (FakeTensor, FunctionalTensor)) or t is Tensor for t in types):
        return False
    if x.dtype == torch.float64 and not _inductor_passes_floats_as_fp64():
        return False
    from torch.export._trace import custom_triton_ops_decomposition_disabled

    return not custom_triton_ops_decomposition_disabled()


def _inductor_passes_floats_as_fp64() -> bool:
    """Whether inductor launches recorded kernels with their Python float arguments (eps,
    1/L) as float64, as the kernels declare them; with them as float32 (where a user turns
    this setting off) float64 layers would lose their accuracy (SPEC §5), so those keep the
    op opaque."""
    from torch._inductor import config

    return getattr(config, "_use_fp64_for_unbacked_floats", False)


def _as_graphed_if_captured() -> contextlib.AbstractContextManager:
    """MN's captured choices (backend.as_captured; MGN has none) where inductor will capture
    the graph being traced into CUDA graphs."""
    from torch._inductor import config

    return backend.as_captured() if config.triton.cudagraphs else contextlib.nullcontext()


def _in_schema_order(func, args: tuple, kwargs: dict) -> list:  # noqa: ANN001
    """An op call's arguments, positional or by name, in its schema's order, with the
    defaults of those left out."""
    names = [a.name for a in func._schema.arguments]
    given = dict(zip(names[: len(args)], args, strict=True)) | kwargs
    return [given.get(a.name, a.default_value) for a in func._schema.arguments]


def _record_kernels_of(op, body: Callable, x_index: int) -> None:  # noqa: ANN001
    """Where the call asks for it and it applies (`_records_kernels`), AOTAutograd traces `op`
    as `body(*args)` with its launches recorded (what torch.library.triton_op registers);
    elsewhere `op` stays whole. The op's last argument, record_kernels, is not the body's."""

    def decompose(mode, func, types, args, kwargs):  # noqa: ANN001
        *args, asked = _in_schema_order(func, args, kwargs)
        if not _records_kernels(args[x_index], types, asked):
            return mode.__torch_dispatch__(func, types, (*args, asked), {})
        with mode, backend.recording_launches(), _as_graphed_if_captured():
            return body(*args)

    op.register_torch_dispatch(FunctionalTensorMode, decompose)


_record_kernels_of(mode_norm_forward, _mode_norm_op_forward, x_index=0)
_record_kernels_of(mode_norm_backward, _mode_norm_op_backward, x_index=1)
_record_kernels_of(mode_group_norm_forward, _mode_group_norm_op_forward, x_index=0)
_record_kernels_of(mode_group_norm_backward, _mode_group_norm_op_backward, x_index=1)


class _ModeGroupNormFunction(torch.autograd.Function):
    """As `_ModeNormFunction`: the same forward and backward for eager calls."""

    @staticmethod
    def forward(ctx, *args):  # noqa: ANN001, ANN002, ANN205
        points = backend.point_rows(args[0], args[1])
        outputs = _mode_group_norm_forward_impl(*args, points=points)
        _mode_group_norm_setup_context(ctx, args, outputs)
        return outputs

    @staticmethod
    def backward(ctx, dy, *unused):  # noqa: ANN001, ANN002, ANN205
        if _needs_torch_backward(dy):  # create_graph=True or batched grads: see below
            return *_mode_group_norm_differentiable_backward(ctx, dy), None
        # The op's gradients, less those of its `points` and `record_kernels`, not inputs here.
        return _mode_group_norm_eager_backward(ctx, dy, *unused)[:6]


_mode_group_norm_eager_backward = _mode_group_norm_grads(_mode_group_norm_backward_impl)


def mode_group_norm(*args) -> tuple[Tensor | None, ...]:  # noqa: ANN002
    """`mode_group_norm_forward`'s arguments and results; differentiable."""
    if _via_custom_ops(args):
        points = backend.point_rows(args[0], args[1])
        return mode_group_norm_forward(*args, points, TRACE_KERNELS)
    return _ModeGroupNormFunction.apply(*args)


# ------------------------- backward with create_graph=True ---------------------------
# The kernels' backward is not itself differentiable. Where autograd asks for a backward it
# can differentiate again (create_graph=True: gradient penalties, MAML's second-order
# gradients), the eager layers differentiate the reference formulas (reference.functional,
# in float64: reference_in_float64) at the saved inputs instead: the same function, so the
# same gradients up to rounding, at the reference's speed and twice its memory (float64
# tensors the size of x per mode), for those calls only. The
# running estimates are not touched again. Under torch.compile, which does not support double
# backward, the custom ops keep the kernels' backward. Batched gradients (a vmapped dy, as
# autograd.functional.jacobian(vectorize=True) and grad(is_grads_batched=True) pass) take the
# same path: a kernel cannot read a batched tensor's storage, and vmap batches torch ops.


def reference_in_float64(
    formula: Callable[..., Tensor], x: Tensor, *args: object, **kwargs: object
) -> Tensor:
    """`formula` (reference.functional's mode_norm or mode_group_norm) at x in float64; the
    result in float64, differentiable to any order back to x's dtype.

    The paper's formulas, evaluated in float32, cancel at a large offset (SPEC §5's 1e4 +
    randn): a training mean is a plain gate-weighted sum of x, and eval's σ² is ⟨x²⟩ − ⟨x⟩²
    (dx off by up to 5e-4 there, against 1e-5). In float64 they keep float32 data to
    ~1e-12, as the kernels keep them to an ulp. Float64 doubles these calls' temporaries,
    which are rare calls, at the reference's speed anyway."""
    return formula(x.to(torch.float64), *args, **kwargs)


def _needs_torch_backward(dy: Tensor | None) -> bool:
    if dy is None:
        return False
    functorch = torch._C._functorch
    return (
        torch.is_grad_enabled()
        or functorch.is_batchedtensor(dy)
        or functorch.is_legacy_batchedtensor(dy)
    )


def _mode_norm_differentiable_backward(ctx, dy: Tensor) -> list[Tensor | None]:  # noqa: ANN001
    x, *_, gate_weight, gate_bias, weight, rm, rms = ctx.saved_tensors

    def forward(x: Tensor, gate_weight: Tensor, gate_bias: Tensor | None, weight: Tensor | None):
        return reference_in_float64(
            reference_functional.mode_norm, x, gate_weight, gate_bias, rm, rms, weight, None,
            training=ctx.training, eps=ctx.eps,
        )  # fmt: skip

    return _differentiable_grads(ctx, dy, forward, (x, gate_weight, gate_bias, weight))


def _mode_group_norm_differentiable_backward(ctx, dy: Tensor) -> list[Tensor | None]:  # noqa: ANN001
    x, *_, gate_weight, gate_bias, weight = ctx.saved_tensors

    def forward(x: Tensor, gate_weight: Tensor, gate_bias: Tensor | None, weight: Tensor | None):
        return reference_in_float64(
            reference_functional.mode_group_norm, x, gate_weight, gate_bias, weight, None,
            eps=ctx.eps,
        )  # fmt: skip

    return _differentiable_grads(ctx, dy, forward, (x, gate_weight, gate_bias, weight))


def _differentiable_grads(
    ctx,  # noqa: ANN001
    dy: Tensor,
    forward: Callable[..., Tensor],
    inputs: tuple[Tensor | None, ...],
) -> list[Tensor | None]:
    """(dx, d gate weight, d gate bias, d weight, d bias) as a graph autograd can
    differentiate: `forward(*inputs)` (the layer without its bias) differentiated against dy.
    None where no gradient is asked for."""
    needed = ctx.needs_input_grad[:5]
    wanted = [i for i, t in enumerate(inputs) if needed[i] and t is not None]
    grads: list[Tensor | None] = [None] * 5
    if wanted:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            y = forward(*inputs)
        found = torch.autograd.grad(
            y, [inputs[i] for i in wanted], dy.to(y.dtype), create_graph=create_graph,
            allow_unused=True,
        )  # fmt: skip
        for i, g in zip(wanted, found, strict=True):
            grads[i] = torch.zeros_like(inputs[i]) if g is None else g
    if needed[4]:  # the bias adds dy's sum per channel
        dims = [d for d in range(dy.dim()) if d != 1]
        grads[4] = dy.to(stat_dtype(dy.dtype)).sum(dims).to(ctx.param_dtypes[3])
    return grads


# ------------------------------------- helpers ---------------------------------------


def _row_statistics(x: Tensor, points: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(s, md, v) per row from the moments pass; with `points` (one element per row, see
    backend.POINT_ROWS), s = x itself and md = v = None (zeros the kernels do not read)."""
    if points:
        return backend.as_rows(x, stat_dtype(x.dtype)), None, None
    return backend.row_moments(x, stat_dtype(x.dtype))


def _apply(
    x: Tensor, shift: Tensor, scale: Tensor | None, row_bias: Tensor, points: bool, like: Tensor
) -> Tensor:
    """y = (x − s)·scale + bias, laid out as `like` (the op's input, of which x may be a
    copy: backend.addressable); with `points` x − s = 0, so y is the per-row bias (and the
    mix kernels give no scale)."""
    if points:
        return backend.rows_like(row_bias, like)
    return backend.row_affine(x, shift, scale, row_bias, like=like)


def _points_taken(points: bool, x: Tensor, gate_weight: Tensor) -> bool:
    """Whether an op call asked for the one-element-row path (`points`, which the layer
    decided from backend.point_rows as it was traced) takes it: where backend.point_rows
    still says so. If not (the backend changed since: the torch-op mix needs every
    statistic), the op computes them, and still returns them empty, as its fake promised;
    its backward computes them again from x, which is right for one-element rows whatever
    their layout and dtype."""
    return points and backend.point_rows(x, gate_weight)


def _row_stats_shape(x: Tensor, points: bool) -> tuple[int, ...]:
    """The shape of each row statistic a forward op returns: (N, C), or (0,) on the
    one-element-row path (`points`), where x holds them itself."""
    return (0,) if points else (x.shape[0], x.shape[1])


def _absent_rows(outputs: tuple, x: Tensor, points: bool) -> tuple:
    """A forward's outputs with its three row statistics (1 to 3) as the op returns them:
    empty where `points` asked for the one-element-row path (whether the body took it, None,
    or computed them, or x has no elements), so that the output shapes are the fake
    implementation's."""
    if not points:
        return outputs
    return (outputs[0], *(_stats_like(x, 0) for _ in range(3)), *outputs[4:])


def _absent_as_none(args: tuple, first: int) -> tuple:
    """A backward op's arguments with the forward's three row statistics, from index `first`
    on, as None where they are empty: the forward took rows of one element as their own
    (`_absent_rows`). An input without elements has (N, C) statistics, empty or not, and
    returns before reading them."""
    stats = args[first : first + 3]
    if all(t is not None and t.dim() == 1 and t.shape[0] == 0 for t in stats):
        stats = (None, None, None)
    return (*args[:first], *stats, *args[first + 3 :])


def _row_grad_sums(
    x: Tensor, dy: Tensor, shift: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(s, Σ dy, Σ dy·(x − s)) per row; without a saved `shift` (the forward took rows of one
    element as their own statistics), s = x, Σ dy = dy and Σ dy·(x − s) = None (zeros)."""
    if shift is None:
        dtype = stat_dtype(x.dtype)
        return backend.as_rows(x, dtype), backend.as_rows(dy, dtype), None
    return shift, *backend.row_grad_sums(x, dy, shift)


def _dtypes(*params: Tensor | None) -> tuple[torch.dtype | None, ...]:
    return tuple(None if p is None else p.dtype for p in params)


def _cast(grads, dtypes):  # noqa: ANN001
    """Each gradient in its parameter's dtype; None for parameters that are absent."""
    return [None if dt is None else g.to(dt) for g, dt in zip(grads, dtypes, strict=True)]


def _empty_forward(x: Tensor, n_modes: int | None = None, training: bool = False):
    """Outputs for an input without elements (an empty batch, or L = 0), as zeros; MN's
    (`n_modes` given) with its mode statistics and gates."""
    n, c = x.shape[0], x.shape[1]
    rows = [_stats_like(x, n, c).zero_() for _ in range(3)]
    modes = []
    if n_modes is not None:
        modes = [_stats_like(x, n_modes, c).zero_() for _ in range(2)]
        modes.append(_mode_stats_like(x, n_modes, training).zero_())
        modes.append(_stats_like(x, n, n_modes).zero_())  # gates
    return (torch.empty_like(x), *rows, *modes)


def _empty_backward(x: Tensor, gate_weight: Tensor):
    """Gradients for an input without elements: dx is empty, parameter gradients are 0."""
    return (torch.empty_like(x), *(g.zero_() for g in _fake_param_grads(x, gate_weight)))


def _fake_param_grads(x: Tensor, gate_weight: Tensor):
    k, c = gate_weight.shape[0], x.shape[1]
    return (
        _stats_like(x, k, gate_weight.shape[1]),
        _stats_like(x, k),
        _stats_like(x, c),
        _stats_like(x, c),
    )
