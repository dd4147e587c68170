"""Mode Normalization and Mode Group Normalization, written the way the paper writes them.

This is the yardstick: a loop over the K modes (Alg. 1, 2 and 3 of Deecke et al., 2019),
with gate-weighted means and centred variances, in plain eager PyTorch. It favours being
obviously right over being fast: every mode allocates tensors the size of the input.
Run in float64 it is the oracle the fast path is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import (
    MIN_MODE_MASS,
    check_functional_momentum,
    check_mode_group_norm_call,
    check_mode_norm_call,
    row_length,
    stat_dtype,
    update_running_stats,
    without_autocast,
)


def _spatial_dims(x: Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.dim()))


def _channel_means(x: Tensor) -> Tensor:
    """Each sample's per-channel mean, shape (N, C): what the gates look at. Rows without
    values (a spatial size of 0) have none; their gates weigh nothing (the output is empty),
    so they take 0 there, not NaN, which the gates' gradients would carry."""
    dims = _spatial_dims(x)
    if not dims:
        return x
    return x.mean(dim=dims) if row_length(x) else x.sum(dim=dims)


@without_autocast
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
    """Mode Normalization (SPEC §1). Alg. 1 when `training`, else Alg. 2."""
    check_mode_norm_call(
        input, gate_weight, gate_bias, running_mean, running_mean_sq, weight, bias, training, eps
    )
    check_functional_momentum(momentum, "mode_norm")
    dtype = stat_dtype(input.dtype)
    x = input.to(dtype)
    n_modes = gate_weight.shape[0]
    # Broadcast shapes: one gate value per sample, one statistic per channel.
    per_sample = (-1,) + (1,) * (x.dim() - 1)
    per_channel = (1, -1) + (1,) * (x.dim() - 2)
    reduce_dims = (0, *_spatial_dims(x))
    values_per_sample = max(row_length(x), 1)  # no values: the statistics are not used

    # Expert assignments g_nk = softmax(Ψ(x_n))_k, Ψ an affine map of the channel means.
    gate_b = None if gate_bias is None else gate_bias.to(dtype)
    gates = torch.softmax(F.linear(_channel_means(x), gate_weight.to(dtype), gate_b), dim=1)

    update = training and running_mean is not None and x.numel() > 0
    out = torch.zeros_like(x)
    for k in range(n_modes):
        g = gates[:, k].reshape(per_sample)
        if training:
            # N_k, and the number of elements it weighs: N_k · L per channel.
            mass = gates[:, k].sum().clamp_min(MIN_MODE_MASS) * values_per_sample
            mean = (g * x).sum(dim=reduce_dims) / mass
            var = (g * (x - mean.reshape(per_channel)) ** 2).sum(dim=reduce_dims) / mass
            if update:
                update_running_stats(running_mean[k], running_mean_sq[k], mean, var, momentum)
        else:
            mean = running_mean[k].to(dtype)
            var = (running_mean_sq[k].to(dtype) - mean * mean).clamp_min(0)
        x_hat = (x - mean.reshape(per_channel)) / torch.sqrt(var.reshape(per_channel) + eps)
        out = out + g * x_hat

    if weight is not None:
        out = out * weight.to(dtype).reshape(per_channel)
    if bias is not None:
        out = out + bias.to(dtype).reshape(per_channel)
    return out.to(input.dtype)


@without_autocast
def mode_group_norm(
    input: Tensor,
    gate_weight: Tensor,
    gate_bias: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Mode Group Normalization (SPEC §2, Alg. 3): per sample, channels are gated into modes."""
    check_mode_group_norm_call(input, gate_weight, gate_bias, weight, bias, eps)
    dtype = stat_dtype(input.dtype)
    x = input.to(dtype)
    n_modes = gate_weight.shape[0]
    per_channel = (1, -1) + (1,) * (x.dim() - 2)
    per_sample_channel = tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
    reduce_dims = tuple(range(1, x.dim()))  # channels and space, per sample
    values_per_channel = max(row_length(x), 1)  # no values: w is not used

    # Channel gates g_nck = softmax(Ψ(mean of channel c of sample n))_k, Ψ: R → R^K, kept as
    # ℓ = log g − b_k (see below).
    gate_b = None if gate_bias is None else gate_bias.to(dtype)
    means = _channel_means(x).unsqueeze(-1)
    slopes = gate_weight.to(dtype)[:, 0]
    logits = F.linear(means, gate_weight.to(dtype), gate_b)
    log_gates_less_bias = means * slopes - torch.logsumexp(logits, dim=-1, keepdim=True)

    out = torch.zeros_like(x)
    for k in range(n_modes):
        # Each channel's weight g / C_k with C_k = Σ_c g, per sample, as a softmax over the
        # channels of log g (less b_k, the same for every channel): the same numbers, without
        # forming C_k, which underflows where every channel shuns the mode (logit gaps past
        # ~87 in float32; a bias of −inf). Every mode enters the output (weight 1/K), so it
        # needs its statistics even then: with C_k clamped to a tiny number they came out ~0
        # and the output ~x/√ε.
        w = torch.softmax(log_gates_less_bias[..., k], dim=1).reshape(per_sample_channel)
        w = w / values_per_channel  # C_k · L elements per sample
        mean = (w * x).sum(dim=reduce_dims, keepdim=True)
        var = (w * (x - mean) ** 2).sum(dim=reduce_dims, keepdim=True)
        out = out + (x - mean) / torch.sqrt(var + eps)
    out = out / n_modes

    if weight is not None:
        out = out * weight.to(dtype).reshape(per_channel)
    if bias is not None:
        out = out + bias.to(dtype).reshape(per_channel)
    return out.to(input.dtype)
