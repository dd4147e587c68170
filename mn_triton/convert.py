"""convert_to_mode_norm: swap a model's BatchNorm (and optionally GroupNorm) layers for MN/MGN."""

from __future__ import annotations

import torch
from torch import nn

from .modules import (
    ModeGroupNorm,
    ModeNorm,
    ModeNorm1d,
    ModeNorm2d,
    ModeNorm3d,
)

_MODE_NORM_FOR = {
    nn.BatchNorm1d: ModeNorm1d,
    nn.BatchNorm2d: ModeNorm2d,
    nn.BatchNorm3d: ModeNorm3d,
}


def _mode_norm_like(bn: nn.modules.batchnorm._BatchNorm, num_modes: int) -> nn.Module:
    if isinstance(bn, nn.SyncBatchNorm):
        from .sync import SyncModeNorm

        cls, extra = SyncModeNorm, {"process_group": bn.process_group}
    else:
        cls = next((m for b, m in _MODE_NORM_FOR.items() if isinstance(bn, b)), ModeNorm)
        extra = {}
    like = bn.weight if bn.affine else bn.running_mean
    factory = {} if like is None else {"device": like.device, "dtype": like.dtype}
    out = cls(bn.num_features, num_modes, bn.eps, bn.momentum, bn.affine,
              bn.track_running_stats, **extra, **factory)  # fmt: skip
    with torch.no_grad():
        if bn.affine:
            out.weight.copy_(bn.weight)
            out.bias.copy_(bn.bias)
        if bn.track_running_stats:
            # Every mode starts from BatchNorm's estimates: ⟨x⟩ = mean, ⟨x²⟩ = var + mean².
            out.running_mean.copy_(bn.running_mean.expand_as(out.running_mean))
            sq = bn.running_var + bn.running_mean**2
            out.running_mean_sq.copy_(sq.expand_as(out.running_mean_sq))
            out.num_batches_tracked.copy_(bn.num_batches_tracked)
    return out


def _mode_group_norm_like(gn: nn.GroupNorm, num_modes: int) -> nn.Module:
    like = gn.weight
    factory = {} if like is None else {"device": like.device, "dtype": like.dtype}
    out = ModeGroupNorm(gn.num_channels, num_modes, gn.eps, gn.affine, **factory)
    if gn.affine:
        with torch.no_grad():
            out.weight.copy_(gn.weight)
            out.bias.copy_(gn.bias)
    return out


def convert_to_mode_norm(
    module: nn.Module, num_modes: int = 2, group_norm: bool = False
) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d in `module` by the matching ModeNorm1d/2d/3d.

    Like `nn.SyncBatchNorm.convert_sync_batchnorm`: works on nested models, keeps affine
    weights, eps, momentum, `track_running_stats`, device, dtype and training mode, and
    returns the converted module (a new one if `module` itself is a BatchNorm). Running
    estimates start, for every mode, from BatchNorm's. SyncBatchNorm becomes SyncModeNorm.
    With `group_norm=True`, every GroupNorm becomes a ModeGroupNorm (its groups give way to
    `num_modes` modes; affine weights are kept). Gates start freshly initialised.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        output = _mode_norm_like(module, num_modes)
    elif group_norm and isinstance(module, nn.GroupNorm):
        output = _mode_group_norm_like(module, num_modes)
    else:
        output = module
    if output is not module:
        output.train(module.training)
    for name, child in module.named_children():
        output.add_module(name, convert_to_mode_norm(child, num_modes, group_norm))
    return output
