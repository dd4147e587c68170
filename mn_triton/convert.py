"""convert_to_mode_norm: swap a model's BatchNorm (and optionally GroupNorm) layers for MN/MGN."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.utils import parametrize

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


def _factory(own: Tensor | None, fallback: Tensor | None) -> dict[str, object]:
    """device and dtype for the new layer: its predecessor's, else those of the enclosing
    model (a BatchNorm without tensors has none), else torch's defaults."""
    like = own if own is not None else fallback
    return {} if like is None else {"device": like.device, "dtype": like.dtype}


def _first_floating_tensor(module: nn.Module) -> Tensor | None:
    tensors = itertools.chain(module.parameters(), module.buffers())
    return next((t for t in tensors if t.is_floating_point()), None)


def _take_affine(out: nn.Module, norm: nn.Module) -> None:
    """Hand over the affine Parameters themselves, as convert_sync_batchnorm does: they keep
    requires_grad, and an optimizer built before the conversion keeps training them (not the
    new gates). A parametrized one (torch.nn.utils.parametrize) keeps its parametrization,
    over the same original Parameter."""
    if norm.affine:
        for name in ("weight", "bias"):
            take_parameter(out, norm, name)


def take_parameter(out: nn.Module, old: nn.Module, name: str) -> None:
    """`old`'s parameter `name` (a Parameter, None, or a parametrization and its original)
    as `out`'s. A parametrization moves as it is, its ParametrizationList (originals and
    state) itself: registering it anew on `out` would run it on `out`'s placeholder (a meta
    tensor for SyncModeNorm, which a parametrization holding a tensor of its own refuses) and
    call its right_inverse there, which may reset its state."""
    if parametrize.is_parametrized(old, name):
        parametrize.register_parametrization(out, name, nn.Identity(), unsafe=True)
        out.parametrizations[name] = old.parametrizations[name]
        return
    value = getattr(old, name)
    if value is not None and not isinstance(value, nn.Parameter):
        # (assigned as a parameter, it raised a TypeError that named no submodule)
        raise ValueError(
            f"{name} is a plain tensor, not a Parameter: a forward pre-hook recomputes it "
            f"(torch.nn.utils.prune: prune.remove(module, {name!r}) first; the hook-based "
            "weight_norm or spectral_norm: remove_weight_norm or remove_spectral_norm), or use "
            "torch.nn.utils.parametrize, whose parametrizations move with the conversion"
        )
    setattr(out, name, value)


def _mode_norm_like(
    bn: nn.modules.batchnorm._BatchNorm, num_modes: int, fallback: Tensor | None
) -> nn.Module:
    if isinstance(bn, nn.SyncBatchNorm):
        from .sync import SyncModeNorm

        cls, extra = SyncModeNorm, {"process_group": bn.process_group}
    else:
        cls = next((m for b, m in _MODE_NORM_FOR.items() if isinstance(bn, b)), ModeNorm)
        extra = {}
    factory = _factory(bn.weight if bn.affine else bn.running_mean, fallback)
    # Estimates kept where BatchNorm has them, also where its track_running_stats was turned
    # off after construction (it then no longer updates them but evaluates with them).
    tracked = bn.track_running_stats or bn.running_mean is not None
    out = cls(bn.num_features, num_modes, bn.eps, bn.momentum, bn.affine, tracked, **extra,
              **factory, bias=bn.bias is not None)  # fmt: skip
    out.track_running_stats = bn.track_running_stats
    _take_affine(out, bn)
    if tracked and bn.running_mean is None:
        # BatchNorm's estimates set to None (batch statistics in eval too): likewise.
        out.running_mean = out.running_mean_sq = None
    elif tracked:
        with torch.no_grad():
            # Every mode starts from BatchNorm's estimates: ⟨x⟩ = mean, ⟨x²⟩ = var + mean²,
            # formed in the new buffers' dtype (float32 for a 16-bit BatchNorm: mean² of a
            # float16 BatchNorm can overflow float16).
            mean = bn.running_mean.to(out.running_mean_sq.dtype)
            sq = torch.addcmul(bn.running_var.to(mean.dtype), mean, mean)
            out.running_mean.copy_(mean.expand_as(out.running_mean))
            out.running_mean_sq.copy_(sq.expand_as(out.running_mean_sq))
    if tracked and bn.num_batches_tracked is None:
        out.num_batches_tracked = None  # the count dropped, as BatchNorm allows: likewise
    elif tracked:
        with torch.no_grad():
            out.num_batches_tracked.copy_(bn.num_batches_tracked)
    return out


def _mode_group_norm_like(gn: nn.GroupNorm, num_modes: int, fallback: Tensor | None) -> nn.Module:
    factory = _factory(gn.weight, fallback)
    out = ModeGroupNorm(gn.num_channels, num_modes, gn.eps, gn.affine, **factory,
                        bias=gn.bias is not None)  # fmt: skip
    _take_affine(out, gn)
    return out


def convert_to_mode_norm(
    module: nn.Module, num_modes: int = 2, group_norm: bool = False
) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d in `module` by the matching ModeNorm1d/2d/3d.

    Like `nn.SyncBatchNorm.convert_sync_batchnorm`: works on nested models, takes over the
    affine weight and bias Parameters themselves (with their `requires_grad`; an optimizer
    built before keeps training them, but not the gates, which are new Parameters: build the
    optimizer after converting; `bias=False` stays without), keeps eps, momentum,
    `track_running_stats`, device, dtype and training mode, and returns the converted module
    (a new one if `module` itself is a BatchNorm). A norm used at several places becomes one
    layer used at all of them. Running estimates start, for every mode, from BatchNorm's.
    SyncBatchNorm becomes SyncModeNorm. With `group_norm=True`, every GroupNorm becomes a
    ModeGroupNorm (its groups give way to `num_modes` modes; affine weights are kept; it
    takes inputs of 0 to 3 spatial dimensions, where GroupNorm takes any). Gates start
    freshly initialised. A norm without parameters or running estimates gets
    the device and dtype of `module`'s first floating-point parameter (or buffer; torch's
    defaults if it has none). Lazy norms must have seen a forward pass first.
    """
    fallback = _first_floating_tensor(module)
    return replace_modules(module, lambda m: _converted(m, num_modes, group_norm, fallback))


def replace_modules(module: nn.Module, swap: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """`module` and each of its submodules passed through `swap` (which returns its
    replacement, or the module itself), from the top down; the replacements take the
    originals' children. A module used at several places is swapped once, and its
    replacement used at all of them (`named_children` would list it once only). A
    replacement takes over its original's `qconfig` (quantisation settings)."""
    done: dict[int, nn.Module] = {}

    def walk(m: nn.Module, path: str) -> nn.Module:
        if id(m) not in done:
            done[id(m)] = out = _swapped(swap, m, path)
            if out is not m and hasattr(m, "qconfig"):  # as convert_sync_batchnorm
                out.qconfig = m.qconfig
            for name, child in m._modules.items():
                if name == "parametrizations" and out is not m and parametrize.is_parametrized(out):
                    continue  # the swap took them over (take_parameter), as its own
                if child is not None:
                    out.add_module(name, walk(child, f"{path}.{name}" if path else name))
        return done[id(m)]

    return walk(module, "")


def _swapped(swap: Callable[[nn.Module], nn.Module], m: nn.Module, path: str) -> nn.Module:
    """swap(m), its refusals (a BatchNorm with eps=0, which torch allows, say) naming the
    submodule: in a large model the message alone would not say which."""
    try:
        return swap(m)
    except ValueError as error:
        where = f"submodule {path!r}" if path else "the module itself"
        raise ValueError(f"{error} (at {where}, a {type(m).__name__})") from error


def _converted(
    module: nn.Module, num_modes: int, group_norm: bool, fallback: Tensor | None
) -> nn.Module:
    """The MN/MGN layer for one norm (its children aside), or `module` itself."""
    is_batch_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
    if is_batch_norm and isinstance(module, LazyModuleMixin):
        raise ValueError(
            f"convert_to_mode_norm: {type(module).__name__} does not know its num_features "
            "yet; run one forward pass through the model before converting it"
        )
    if is_batch_norm:
        output = _mode_norm_like(module, num_modes, fallback)
    elif group_norm and isinstance(module, nn.GroupNorm):
        output = _mode_group_norm_like(module, num_modes, fallback)
    else:
        return module
    output.train(module.training)
    return output
