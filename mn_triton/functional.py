"""Functional Mode Normalization and Mode Group Normalization (the fast path).

Same signatures as `reference.functional`, and the same argument checks (shared), made
before any kernel runs; the work happens in `mn_triton.ops` (an autograd.Function for
eager calls; custom ops while torch.compile, torch.jit.trace or make_fx traces, and for
wrapper tensor subclasses, which run them on the tensors they wrap).

Inside torch.func transforms (grad, vjp, jacrev, vmap, ...), and for inputs carrying
forward-mode tangents (torch.autograd.forward_ad), neither of which can see through the
kernels' autograd.Function, the layers compute with the reference formulas instead, in
float64 (ops.reference_in_float64: in float32 they cancel at a large offset): the same
function, at about the eager reference's speed. Like BatchNorm's, training with running estimates
then fails on their in-place update (torch.func refuses it); evaluate, or switch the
estimates off (`track_running_stats=False`), as torch.func's documentation advises for
BatchNorm.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad

from reference import functional as reference_functional
from reference._base import (
    check_functional_momentum,
    check_mode_group_norm_call,
    check_mode_norm_call,
)

from . import backend, ops


def _needs_reference_formulas(*tensors: Tensor | None) -> bool:
    """Whether a torch.func transform (grad, vmap, ...) is tracing this call, or forward-mode
    AD is to carry a tangent through it: both need formulas autograd can see into."""
    if torch._C._are_functorch_transforms_active():
        return True
    if forward_ad._current_level < 0:  # no dual level is open: the usual case, cheaply
        return False
    return any(t is not None and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def mode_norm(
    input: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    running_mean: Tensor | None = None,
    running_mean_sq: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | Tensor = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Mode Normalization (SPEC §1) of `input` of shape (N, C, *S).

    `training=True` normalises with the batch's gate-weighted statistics and, if running
    estimates are given, updates them in place with weight `momentum`; `training=False`
    normalises with the running estimates (which must be given). Gates are always computed
    from each sample's own channel means.
    """
    fn = "mode_norm"
    check_mode_norm_call(
        input, gate_weight, gate_bias, running_mean, running_mean_sq, weight, bias, training,
        eps, fn,
    )  # fmt: skip
    momentum = _check_momentum(momentum, input, fn)
    if training:
        _check_not_negated(running_mean, running_mean_sq, fn)
    else:  # only read
        running_mean, running_mean_sq = backend.resolved(running_mean, running_mean_sq)
    input, gate_weight, gate_bias, weight, bias = backend.resolved(
        input, gate_weight, gate_bias, weight, bias
    )
    if _needs_reference_formulas(input, gate_weight, gate_bias, weight, bias) or (
        _differentiates_estimates(training, running_mean, running_mean_sq)
    ):
        return ops.reference_in_float64(
            reference_functional.mode_norm, input, gate_weight, gate_bias, running_mean,
            running_mean_sq, weight, bias, training, momentum, float(eps),
        ).to(input.dtype)  # fmt: skip
    # In training the op also updates the running estimates, in place.
    y, *_ = ops.mode_norm(
        input, gate_weight, gate_bias, weight, bias, running_mean, running_mean_sq,
        training, float(eps), momentum=momentum,
    )  # fmt: skip
    return y


def _differentiates_estimates(
    training: bool, running_mean: Tensor | None, running_mean_sq: Tensor | None
) -> bool:
    """Whether autograd is to differentiate the running estimates: in eval the output depends
    on them, and where they require grad (statistics learned as parameters, say) the
    reference's formulas give them their gradients, which the ops do not (F.batch_norm
    refuses such estimates; training only updates them, under no_grad)."""
    if training or running_mean is None or not torch.is_grad_enabled():
        return False
    return running_mean.requires_grad or running_mean_sq.requires_grad


def _check_not_negated(running_mean: Tensor | None, running_mean_sq: Tensor | None, fn: str):
    """Training writes the running estimates in place, so a lazily negated view of them
    (whose memory holds −t, see backend.resolved) cannot be resolved into a copy: refuse it.
    (F.batch_norm drops its update into such a view silently.)"""
    if torch.compiler.is_compiling():  # dynamo cannot trace is_neg
        return
    for name, t in (("running_mean", running_mean), ("running_mean_sq", running_mean_sq)):
        if t is not None and t.is_neg():
            raise ValueError(
                f"{fn}: {name} is a lazily negated view (Tensor.is_neg()); the running "
                f"estimates are updated in place, so pass a tensor of their own "
                f"({name}.resolve_neg())"
            )


def _check_momentum(momentum: float | Tensor, x: Tensor, fn: str) -> float | Tensor:
    """A number as a float; a tensor (momentum=None's 1/num_batches_tracked) stays one, on
    x's device, so that the kernels read it without a host synchronisation: 0-d, float64 if
    it is float64 (for float64 running estimates), float32 otherwise."""
    check_functional_momentum(momentum, fn)
    if not isinstance(momentum, Tensor):
        return float(momentum)
    dtype = torch.float64 if momentum.dtype == torch.float64 else torch.float32
    return momentum.to(x.device, dtype).reshape(())


def mode_group_norm(
    input: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Mode Group Normalization (SPEC §2) of `input` of shape (N, C, *S).

    Statistics are per sample, so training and evaluation compute the same function.
    """
    check_mode_group_norm_call(input, gate_weight, gate_bias, weight, bias, eps)
    input, gate_weight, gate_bias, weight, bias = backend.resolved(
        input, gate_weight, gate_bias, weight, bias
    )
    if _needs_reference_formulas(input, gate_weight, gate_bias, weight, bias):
        return ops.reference_in_float64(
            reference_functional.mode_group_norm, input, gate_weight, gate_bias, weight, bias,
            float(eps),
        ).to(input.dtype)  # fmt: skip
    y, *_ = ops.mode_group_norm(input, gate_weight, gate_bias, weight, bias, float(eps))
    return y


__all__ = ["mode_norm", "mode_group_norm"]
