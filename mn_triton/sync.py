"""SyncModeNorm: ModeNorm whose batch statistics span every process of a torch.distributed group.

MN's batch statistics are gate-weighted sums per (mode, channel), so they combine across
processes exactly (SPEC §4). Forward: each process computes its own (N_k, μ_k, σ²_k) and
one `all_gather` brings every process's triple (μ_k as a pivot of the mode's own and the
rest) to all; they are merged the way SyncBatchNorm merges Welford triples (Chan et al.),
with M2_k = N_k·σ²_k.
Backward: the three per-(k, c) sums over the batch that the input gradient needs go
through one `all_reduce`. Parameter gradients stay local: DDP reduces them, as it does
SyncBatchNorm's. The result is the same output, input gradient and running estimates as
one process holding the whole batch.

The distributed engine is torch.distributed (NCCL on GPUs, gloo on CPUs); nothing here
talks to the network itself.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from reference._base import (
    MIN_MODE_MASS,
    autocast_off,
    check_functional_momentum,
    check_mode_norm_call,
    fx_leaf,
    row_length,
    stat_dtype,
    update_running_stats,
)

from . import backend, mix, ops
from .convert import replace_modules, take_parameter
from .modules import ModeNorm

if backend.HAS_TRITON:  # used only where backend.uses_kernels
    from .kernels import mix as _mix_kernels

# all_gather_into_tensor by its newer name where torch has it (2.13 warns on the old one; 2.11
# has only the old one)
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def _world_size(group: Any) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def _merge_across_processes(
    local: Tensor, k: int, c: int, group: Any, on_kernels: bool = False
) -> mix.ModeStats:
    """All processes' (N_k, μ_k, M2_k) merged into the statistics of the whole batch;
    `local` is this process's, packed (`mix.ModeStats.packed`). `on_kernels`: the merge below
    as one kernel (kernels.mix.merge_mode_stats), where the layer's mix runs on the kernels.

    Each μ_k travels as its process's pair (P_r, μ_r − P_r) of a pivot of the mode's own and
    the rest (mix.ModeStats), and the merged μ is formed the same way: P = Σ_r u_r·P_r
    (μ up to rounding) and μ − P = Σ_r u_r·((P_r − P) + (μ_r − P_r)) − (1 − Σ_r u_r)·P. So μ
    keeps the precision one process holding the whole batch gives it; merged relative to
    one pivot per channel (say the first process's sample 0), it would carry the rounding of
    values as far from that pivot as the data reach. A process without samples sends zeros
    and a share of 0: it adds nothing, wherever the data lie.

    A process's share u_r is not N_r / N but max(N_r, tiny) / max(N, tiny): each process
    divides its sums by max(N_r, tiny) (batch_mode_stats), so that is what gives back
    Σ_n g·m / max(N, tiny), as one process computes it, also for modes whose gate mass lies
    below float32 tiny.
    """
    gathered = local.new_empty(_world_size(group) * local.numel())  # flat: gloo wants it so
    _all_gather_single(gathered, local, group=group)
    gathered = gathered.view(-1, local.numel())
    if on_kernels:
        return mix.ModeStats.unpacked(_mix_kernels.merge_mode_stats(gathered, k, c), k, c)
    return _merge_gathered(gathered, k, c)


def _merge_gathered(gathered: Tensor, k: int, c: int) -> mix.ModeStats:
    """The merge in torch ops: `gathered` holds one packed row per process."""
    mass_r, *per_mode = gathered.split([k, k * c, k * c, k * c], dim=1)
    center_r, residual_r, var_r = (t.view(-1, k, c) for t in per_mode)
    total = mass_r.sum(dim=0)
    held_r = mass_r.clamp_min(MIN_MODE_MASS).unsqueeze(2)  # Σ_{n∈r} g·m = held_r·μ_r
    m2_r = var_r * held_r  # Σ_{n∈r} g·(v + (m − μ_r)²)
    share_r = held_r / total.clamp_min(MIN_MODE_MASS).unsqueeze(1)
    # Σ_r u_r as one quotient: exactly 1 whenever every N_r ≥ tiny (the shares' own sum
    # is 1 only up to their roundings, and (1 − Σ_r u_r)·P would put that into μ).
    coverage = held_r.sum(dim=0) / total.clamp_min(MIN_MODE_MASS).unsqueeze(1)
    center = (share_r * center_r).sum(dim=0)
    dev_r = (center_r - center) + residual_r  # μ_r − P
    residual = (share_r * dev_r).sum(dim=0) - (1.0 - coverage) * center
    # Σ_{n∈r} g·(v + (m − μ)²) = M2_r + (μ_r − μ)·(2·Σ_{n∈r} g·(m − μ_r) + N_r·(μ_r − μ)),
    # where Σ_{n∈r} g·(m − μ_r) = (held_r − N_r)·μ_r: 0 unless N_r < tiny. σ² = M2 / max(N, tiny).
    gap_r = dev_r - residual  # μ_r − μ
    mass_r = mass_r.unsqueeze(2)
    spread_r = gap_r * (2.0 * (held_r - mass_r) * (center_r + residual_r) + mass_r * gap_r)
    var = (m2_r + spread_r).sum(dim=0) / total.clamp_min(MIN_MODE_MASS).unsqueeze(1)
    return mix.ModeStats(center, residual, var, total)


def _all_reduce_sum(t: Tensor, group: Any) -> Tensor:
    t = t.contiguous()
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


def _on_mix_kernels(x: Tensor, gate_weight: Tensor) -> bool:
    """The mix on the kernels: where the layer's is, and this process holds samples (one
    without takes the torch ops, which exchange the same buffers)."""
    return backend._fused_mix(x, gate_weight) and x.numel() > 0


def _mix_forward(
    x: Tensor, shift: Tensor, mean_dev: Tensor, var_rows: Tensor, gate_weight: Tensor,
    gate_bias: Tensor | None, weight: Tensor | None, bias: Tensor | None, eps: float,
    group: Any,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:  # fmt: skip
    """(scale, bias) per row from the statistics of the whole batch, those statistics
    (packed: mix.ModeStats.packed), and the gates where the mix kernels computed them once
    (kernels.mix.shared_gates), for the backward to reuse."""
    k, c = gate_weight.shape[0], shift.shape[1]
    # The merge, which every process must compute alike, follows the layer alone.
    fused = backend._fused_mix(x, gate_weight)
    merge = functools.partial(_merge_across_processes, k=k, c=c, group=group, on_kernels=fused)
    if not (fused and x.numel() > 0):  # as _on_mix_kernels
        coeffs, stats = mix.mode_norm_forward(
            shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, None, None,
            training=True, eps=eps, merge_stats=lambda s: merge(s.packed()),
        )  # fmt: skip
        return coeffs.scale, coeffs.bias, stats.packed(), None
    local = shift.new_empty(mix.ModeStats.packed_size(k, c))
    gates = _mix_kernels.shared_gates(shift, mean_dev, gate_weight, gate_bias)
    _mix_kernels.mode_norm_batch_stats(
        shift, mean_dev, var_rows, gate_weight, gate_bias, local, gates=gates
    )
    stats = merge(local).packed()
    scale, row_bias, _, _ = _mix_kernels.mode_norm_forward(
        shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, None, None,
        training=True, eps=eps, stats=stats, gates=gates,
    )  # fmt: skip
    return scale, row_bias, stats, gates


def _local_rows(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    if x.numel() == 0:  # no samples here, or rows of no values (L = 0), which add no gate
        # mass either (as in ModeNorm): no rows; the process still takes part in the exchange
        zeros = x.new_zeros((0, x.shape[1]), dtype=stat_dtype(x.dtype))
        return zeros, zeros.clone(), zeros.clone()
    return backend.row_moments(x, stat_dtype(x.dtype))


class _SyncModeNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gate_weight, gate_bias, weight, bias, eps, group):  # noqa: ANN001, ANN205
        with backend.on_device_of(x), autocast_off(x):  # x's device; float32 statistics
            (x_in,) = backend.addressable(x)  # what both passes read
            shift, mean_dev, var_rows = _local_rows(x_in)
            scale, row_bias, stats, gates = _mix_forward(
                x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, eps, group
            )
            y = backend.row_affine(x_in, shift, scale, row_bias, like=x) if x.numel() else x.clone()
            ctx.save_for_backward(
                x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, gates, stats
            )  # fmt: skip
            ctx.eps, ctx.group = eps, group
            merged = mix.ModeStats.unpacked(stats, gate_weight.shape[0], shift.shape[1])
            mode_mean, mode_var = merged.absolute_mean(), merged.var
            # Whether any process held a sample (the gates' mass sums to the global count):
            # known on the device only, so the running update is weighted by it.
            sampled = merged.mass.sum() > 0
            ctx.mark_non_differentiable(mode_mean, mode_var, sampled)
        return y, mode_mean, mode_var, sampled

    @staticmethod
    @once_differentiable  # first-order only, as nn.SyncBatchNorm: refuse create_graph=True
    def backward(ctx, dy, _d_mean, _d_var, _d_sampled):  # noqa: ANN001, ANN205
        x, shift, mean_dev, var_rows, gate_weight, gate_bias, weight, bias, gates, stats = (
            ctx.saved_tensors
        )
        (dy,) = backend.resolved(dy)
        with backend.on_device_of(x), autocast_off(x):
            x_in, dy_in = backend.addressable(x, dy)  # what both passes read
            if x.numel():
                sum_dy, sum_dy_xs = backend.row_grad_sums(x_in, dy_in, shift)
            else:
                sum_dy, sum_dy_xs = torch.zeros_like(shift), torch.zeros_like(shift)
            length = max(row_length(x), 1)
            args = (sum_dy, sum_dy_xs, length, shift, mean_dev, var_rows, gate_weight,
                    gate_bias, weight, None, None, True, ctx.eps)  # fmt: skip
            sum_over_batch = functools.partial(_all_reduce_sum, group=ctx.group)
            if _on_mix_kernels(x, gate_weight):
                grads = _mix_kernels.mode_norm_backward(*args, stats, sum_over_batch, gates=gates)
            else:
                merged = mix.ModeStats.unpacked(stats, gate_weight.shape[0], shift.shape[1])
                grads = mix.mode_norm_backward(*args, merged, sum_over_batch)
            dx = None
            if ctx.needs_input_grad[0]:
                dx = (
                    backend.row_affine(
                        x_in, shift, grads.x_scale, grads.row_bias, dy_in, grads.dy_scale, like=x
                    )
                    if x.numel()
                    else torch.zeros_like(x)
                )
        return (
            dx,
            grads.gate_weight.to(gate_weight.dtype),
            None if gate_bias is None else grads.gate_bias.to(gate_bias.dtype),
            None if weight is None else grads.weight.to(weight.dtype),
            None if bias is None else grads.bias_param.to(bias.dtype),
            None,
            None,
        )


@torch.compiler.disable
def _synchronise_eagerly(*args: Any) -> tuple[Tensor, ...]:
    """_SyncModeNormFunction on the kernels, run eagerly under torch.compile: dynamo would
    trace into the Function's forward and reach the kernels' launches, which it cannot (a
    graph break around it instead). On torch ops it traces the Function whole."""
    return _SyncModeNormFunction.apply(*args)


def _subclass_names(*tensors: Tensor | None) -> str:
    names = {type(t).__name__ for t in tensors if t is not None and type(t) is not Tensor}
    return ", ".join(sorted(names - {"Parameter"}))


class SyncModeNorm(ModeNorm):
    """ModeNorm with batch statistics over all processes of `process_group` (SPEC §4).

    Like `nn.SyncBatchNorm`: synchronises in training when torch.distributed is initialised
    with more than one process, and otherwise (eval, or a single process) is a ModeNorm.
    Accepts inputs of shape (N, C, *S). Each process may hold any number of samples,
    including none; the check for more than one value per channel then applies to the
    local batch only when not synchronising.
    """

    def __init__(
        self,
        num_features: int,
        num_modes: int = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, num_modes, eps, momentum, affine, track_running_stats, device, dtype,
            bias=bias,
        )  # fmt: skip
        self.process_group = process_group

    def _synchronising(self) -> bool:
        return self.training and _world_size(self.process_group) > 1

    @fx_leaf
    def forward(self, input: Tensor) -> Tensor:
        if not self._synchronising():
            return super().forward(input)
        self._check_input(input)
        x, gate_weight, gate_bias, weight, bias = backend.resolved(
            input, *self._gate_parameters(), self.weight, self.bias
        )
        tensors = (x, gate_weight, gate_bias, weight, bias)
        if ops.wraps_tensors(tensors):
            raise TypeError(
                "SyncModeNorm: synchronising takes plain tensors, not a tensor subclass with "
                f"__torch_dispatch__ (got {_subclass_names(*tensors)}), "
                "whose storage its kernels and collectives cannot read"
            )
        # ModeNorm's per-call checks (of the parameters and estimates too: shapes, dtypes,
        # devices; and of what may be set after construction), before anything is exchanged;
        # the local batch may hold one value per channel
        updated = self.track_running_stats
        check_mode_norm_call(
            x, gate_weight, gate_bias, self.running_mean if updated else None,
            self.running_mean_sq if updated else None, weight, bias, True, self.eps,
            "SyncModeNorm", check_batch=False,
        )  # fmt: skip
        if self.momentum is not None:
            check_functional_momentum(self.momentum, "SyncModeNorm")
        momentum = self._step_weight()
        apply = _synchronise_eagerly if backend.uses_kernels(x) else _SyncModeNormFunction.apply
        y, mode_mean, mode_var, sampled = apply(
            x, gate_weight, gate_bias, weight, bias, self.eps, self.process_group
        )
        if momentum is not None:
            # A batch empty in every process leaves the estimates as they are, as an empty
            # batch does in one process (and in BatchNorm); the step is counted all the same.
            momentum = sampled.to(self.running_mean.dtype) * momentum
            update_running_stats(
                self.running_mean, self.running_mean_sq, mode_mean, mode_var, momentum
            )
        self._count_step()  # after the call, as ModeNorm's: a refused call counts no step
        return y

    @classmethod
    def convert_sync_modenorm(cls, module: nn.Module, process_group: Any = None) -> nn.Module:
        """Replace every mn_triton ModeNorm (any rank variant, SyncModeNorm included) in
        `module` by a SyncModeNorm over `process_group`. (The reference's layers are left as
        they are: they have no synchronising form.)

        As in `nn.SyncBatchNorm.convert_sync_batchnorm`, the new layer takes over the old
        one's parameters and buffers themselves (an optimizer built before the conversion
        keeps training them; absent ones, such as `bias=False`'s, stay absent) and its
        training mode, and the conversion draws no random numbers. A layer used at several
        places becomes one SyncModeNorm used there.
        """
        return replace_modules(module, lambda m: cls._synced(m, process_group))

    @classmethod
    def _synced(cls, module: nn.Module, process_group: Any) -> nn.Module:
        """The SyncModeNorm for one ModeNorm (its children aside), or `module` itself."""
        if not isinstance(module, ModeNorm):
            return module
        # Built on the meta device, its initialisation draws no random numbers (a seeded
        # run converts and then samples as one that did not) and allocates nothing: every
        # tensor of it is replaced by the original's below.
        output = cls(
            module.num_features, module.num_modes, module.eps, module.momentum,
            module.affine, module.track_running_stats, process_group,
            device="meta", dtype=module.gate.weight.dtype, bias=module.bias is not None,
        )  # fmt: skip
        # weight and bias (parametrized ones with their parametrizations), running estimates
        # and count, None where absent (the gate is a child, which replace_modules hands over)
        for name in ("weight", "bias"):
            take_parameter(output, module, name)
        for name, value in module._buffers.items():
            setattr(output, name, value)
        output.train(module.training)
        return output
