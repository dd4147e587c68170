"""convert_to_mode_norm, mixed precision (torch.autocast + GradScaler), torch.func,
forward-mode AD, torch.jit.trace, torch.fx, make_fx and fake tensors, activation
checkpointing and torch.export."""

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.autograd import forward_ad
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.checkpoint import checkpoint

import mn_triton
import reference
from helpers import AbsParametrization, assert_close, randomize, reference_twin, rel_err

REPO = Path(__file__).resolve().parents[1]


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 6, 1), nn.GroupNorm(2, 6), nn.BatchNorm2d(6, affine=False)),
        nn.Flatten(2),
        nn.BatchNorm1d(6, momentum=None),
        nn.Flatten(1),
        nn.Linear(6 * 25, 8),
        nn.BatchNorm1d(8, eps=1e-3),
    )


def _trained(model: nn.Module) -> nn.Module:
    """Non-default BatchNorm state: a few training steps' running estimates and weights."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, 5, 5) * 2 + 1)
    return model


def test_convert_replaces_every_batch_norm_in_nested_models():
    model = _trained(_model()).eval()
    converted = mn_triton.convert_to_mode_norm(model, num_modes=3)
    kinds = [type(m) for m in converted.modules()]
    assert nn.BatchNorm2d not in kinds and nn.BatchNorm1d not in kinds
    assert isinstance(converted[1], mn_triton.ModeNorm2d)
    assert isinstance(converted[3][2], mn_triton.ModeNorm2d) and not converted[3][2].affine
    assert isinstance(converted[5], mn_triton.ModeNorm1d) and converted[5].momentum is None
    # momentum=None averages over every step so far: BatchNorm's count carries over.
    assert converted[5].num_batches_tracked.item() == model[5].num_batches_tracked.item() == 3
    assert converted[8].eps == 1e-3 and converted[1].num_modes == 3
    assert isinstance(converted[3][1], nn.GroupNorm)  # group_norm=False leaves GroupNorm
    assert not converted[1].training


def test_converted_model_evaluates_like_the_batch_norm_model():
    """Every mode starts from BatchNorm's running estimates, so eval output is unchanged."""
    model = _trained(_model()).eval()
    x = torch.randn(4, 3, 5, 5)
    expected = model(x)
    converted = mn_triton.convert_to_mode_norm(model, num_modes=2)
    assert_close(converted(x), expected, 1e-5, "eval output after conversion")


def test_convert_keeps_weights_device_dtype_and_mode():
    bn = nn.BatchNorm2d(5, momentum=0.2).double().train()
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
    out = mn_triton.convert_to_mode_norm(bn, num_modes=4)
    assert out is not bn and isinstance(out, mn_triton.ModeNorm2d)
    assert out.training and out.momentum == 0.2
    assert out.weight.dtype == torch.float64 and out.gate.weight.dtype == torch.float64
    assert torch.equal(out.weight, bn.weight) and torch.equal(out.bias, bn.bias)
    assert tuple(out.running_mean.shape) == (4, 5)


def test_convert_defaults_to_two_modes_and_leaves_group_norm_alone():
    """SPEC §4: `convert_to_mode_norm(module, num_modes=2, group_norm=False)`. Called with
    the module alone, every BatchNorm becomes a layer of two modes and GroupNorm stays (every
    other call in these tests names num_modes, and so none noticed another default)."""
    model = nn.Sequential(nn.BatchNorm2d(4), nn.GroupNorm(2, 4))
    out = mn_triton.convert_to_mode_norm(model)
    assert isinstance(out[0], mn_triton.ModeNorm2d) and out[0].num_modes == 2
    assert tuple(out[0].gate.weight.shape) == (2, 4) and tuple(out[0].running_mean.shape) == (2, 4)
    assert type(out[1]) is nn.GroupNorm
    converted = mn_triton.convert_to_mode_norm(nn.GroupNorm(2, 4), group_norm=True)
    assert isinstance(converted, mn_triton.ModeGroupNorm) and converted.num_modes == 2


def test_convert_group_norm_and_sync_batch_norm():
    model = nn.Sequential(nn.GroupNorm(3, 6, eps=1e-3), nn.SyncBatchNorm(6))
    gn = model[0]  # the conversion replaces children in place
    with torch.no_grad():
        gn.weight.normal_()
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    assert isinstance(out[0], mn_triton.ModeGroupNorm)
    assert torch.equal(out[0].weight, gn.weight) and out[0].num_modes == 2
    assert out[0].eps == 1e-3
    assert isinstance(out[1], mn_triton.SyncModeNorm)


def test_convert_keeps_what_the_norms_leave_out():
    """BatchNorm without running estimates gives ModeNorm without them, GroupNorm without
    affine weights gives ModeGroupNorm without them: neither gains state it did not have."""
    model = nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False),
                          nn.GroupNorm(2, 4, affine=False))  # fmt: skip
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    assert isinstance(out[0], mn_triton.ModeNorm2d) and not out[0].track_running_stats
    assert out[0].running_mean is None and out[0].num_batches_tracked is None
    assert isinstance(out[1], mn_triton.ModeGroupNorm) and not out[1].affine
    assert out[1].weight is None and out[1].bias is None
    assert set(out.state_dict()) == {
        "0.weight", "0.bias", "0.gate.weight", "0.gate.bias", "1.gate.weight", "1.gate.bias"
    }  # fmt: skip


def test_convert_keeps_the_estimates_of_a_batch_norm_that_stopped_tracking():
    """`bn.track_running_stats = False` after training (frozen statistics while fine-tuning):
    BatchNorm keeps its estimates, no longer updates them, and evaluates with them. The new
    layer keeps them too, with the flag off: it evaluates as BatchNorm did, and training
    leaves the estimates and the count alone. (It used to be built without estimates, and
    evaluate on batch statistics.)"""
    bn = nn.BatchNorm2d(4)
    for _ in range(20):
        bn(torch.randn(8, 4, 3, 3) * 2 + 3)
    bn.track_running_stats = False
    x = torch.randn(8, 4, 3, 3) * 2 + 3
    expected = bn.eval()(x)
    out = mn_triton.convert_to_mode_norm(bn, num_modes=2)
    assert not out.track_running_stats
    assert set(out.state_dict()) >= {"running_mean", "running_mean_sq", "num_batches_tracked"}
    assert_close(out(x), expected, 1e-5, "eval with BatchNorm's estimates")
    before = [t.clone() for t in (out.running_mean, out.running_mean_sq, out.num_batches_tracked)]
    out.train()(x)
    after = (out.running_mean, out.running_mean_sq, out.num_batches_tracked)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_convert_keeps_a_dropped_step_count():
    """A BatchNorm whose num_batches_tracked was set to None (it trains uncounted) gives a
    ModeNorm without it, which trains too; a BatchNorm's count carries over."""
    dropped, counted = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
    dropped.num_batches_tracked = None
    counted.num_batches_tracked.fill_(7)
    out = mn_triton.convert_to_mode_norm(nn.Sequential(dropped, counted), num_modes=2)
    assert out[0].num_batches_tracked is None and out[1].num_batches_tracked.item() == 7
    out(torch.randn(3, 4, 2, 2))
    assert out[0].num_batches_tracked is None and out[1].num_batches_tracked.item() == 8


def test_convert_keeps_group_norm_bias_and_sync_process_group():
    """Both affine parameters of a GroupNorm carry over, and a SyncBatchNorm's process
    group goes to its SyncModeNorm (it is only stored until a distributed forward)."""
    group = object()
    gn = nn.GroupNorm(3, 6)
    with torch.no_grad():
        gn.weight.normal_()
        gn.bias.normal_()
    model = nn.Sequential(gn, nn.SyncBatchNorm(6, process_group=group))
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    assert out[0] is not gn  # a new layer (the Sequential itself is changed in place)
    assert torch.equal(out[0].weight, gn.weight) and torch.equal(out[0].bias, gn.bias)
    assert isinstance(out[1], mn_triton.SyncModeNorm) and out[1].process_group is group


@pytest.mark.parametrize("sync", [False, True], ids=["batch_norm", "sync_batch_norm"])
def test_convert_hands_over_the_affine_parameters_themselves(sync):
    """As convert_sync_batchnorm does: the same Parameter objects, so a frozen norm stays
    frozen and an optimizer built before the conversion keeps training the new layers."""
    norm = nn.SyncBatchNorm(4) if sync else nn.BatchNorm2d(4)
    gn, frozen = nn.GroupNorm(2, 4), nn.BatchNorm2d(4)
    frozen.requires_grad_(False)
    model = nn.Sequential(norm, gn, frozen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {name: p for name, p in model.named_parameters()}
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    for layer, old in zip(out, (norm, gn, frozen), strict=True):
        assert layer is not old and layer.weight is old.weight and layer.bias is old.bias
    assert not out[2].weight.requires_grad and not out[2].bias.requires_grad
    out[0](torch.randn(4, 4, 3, 3) + 2).square().sum().backward()
    opt.step()
    assert not torch.equal(before["0.weight"], torch.ones(4))  # the optimizer reached it
    assert out[0].weight is before["0.weight"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_convert_16_bit_batch_norm_forms_mean_sq_in_float32(dtype):
    """⟨x²⟩ = running_var + running_mean² in float32: for a mean of 300 it is ~9e4, past
    float16's largest value; the new layer's estimates are float32 (ModeNormBase._apply)."""
    bn = nn.BatchNorm2d(3).to(dtype).eval()
    with torch.no_grad():
        bn.running_mean.fill_(300.0)
        bn.running_var.fill_(1.5)
    out = mn_triton.convert_to_mode_norm(bn, num_modes=2)
    assert out.weight.dtype == out.gate.weight.dtype == dtype
    assert out.running_mean_sq.dtype == torch.float32
    assert torch.equal(out.running_mean_sq, torch.full((2, 3), 300.0**2 + 1.5))
    x = (torch.randn(4, 3, 2, 2) + 300).to(dtype)
    assert_close(out(x).float(), bn(x).float(), 1e-2, "converted 16-bit eval")


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_bias_false_gives_a_scale_without_a_shift(package, backend):
    """As BatchNorm2d(bias=False) and GroupNorm(bias=False): a weight, no bias; the layer
    resets, repr says so, state moves between the packages, and the output is the layer's
    with a zero bias."""
    for cls in (package.ModeNorm2d, package.ModeGroupNorm2d):
        layer = cls(5, num_modes=3, bias=False)
        assert layer.bias is None and layer.weight is not None
        assert "bias" not in dict(layer.named_parameters())
        layer.reset_parameters()  # once fell over the missing bias
        assert "affine=True, bias=False" in repr(layer)
        randomize(layer)
        with_bias = getattr(mn_triton, cls.__name__)(5, num_modes=3)
        with_bias.load_state_dict(layer.state_dict() | {"bias": torch.zeros(5)})
        x = torch.randn(4, 5, 3, 3) + 1
        assert_close(layer(x), with_bias(x), 1e-6, f"{cls.__name__}(bias=False)")
    assert "bias" not in package.ModeNorm2d(5, affine=False).extra_repr()


def test_convert_keeps_a_missing_bias():
    """BatchNorm2d(bias=False) and GroupNorm(bias=False) become layers without a bias, which
    reset (e.g. after `to_empty` on a meta-device model) and convert to SyncModeNorm
    without gaining one."""
    model = nn.Sequential(nn.BatchNorm2d(4), nn.GroupNorm(2, 4))
    for norm in model:  # what `bias=False` builds (a keyword since torch 2.12 or so)
        norm.register_parameter("bias", None)
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    for layer in out:
        assert layer.bias is None and layer.weight is not None
        layer.reset_parameters()
    synced = mn_triton.SyncModeNorm.convert_sync_modenorm(out)
    assert isinstance(synced[0], mn_triton.SyncModeNorm) and synced[0].bias is None
    assert set(synced.state_dict()) == {
        "0.weight", "0.running_mean", "0.running_mean_sq", "0.num_batches_tracked",
        "0.gate.weight", "0.gate.bias", "1.weight", "1.gate.weight", "1.gate.bias",
    }  # fmt: skip


def test_convert_keeps_qconfig():
    """Quantisation settings stay with the converted norm, as convert_sync_batchnorm keeps
    them; for convert_sync_modenorm too."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model[1].qconfig = qconfig = object()
    out = mn_triton.convert_to_mode_norm(model)
    assert isinstance(out[1], mn_triton.ModeNorm2d) and out[1].qconfig is qconfig
    assert not hasattr(out[0], "qconfig")
    synced = mn_triton.SyncModeNorm.convert_sync_modenorm(out)
    assert synced[1].qconfig is qconfig


def test_convert_turns_a_shared_norm_into_one_shared_layer():
    """A BatchNorm used at two places (named_children lists it once) becomes one ModeNorm
    used at both, for convert_to_mode_norm and convert_sync_modenorm alike: none stays a
    BatchNorm sharing its parameters with the new layer."""
    bn = nn.BatchNorm2d(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), bn, nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 1), bn))
    out = mn_triton.convert_to_mode_norm(model)
    assert isinstance(out[1], mn_triton.ModeNorm2d) and out[3][1] is out[1]
    synced = mn_triton.SyncModeNorm.convert_sync_modenorm(out)
    assert isinstance(synced[1], mn_triton.SyncModeNorm) and synced[3][1] is synced[1]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_convert_batch_norm_whose_estimates_were_dropped(momentum):
    """`bn.running_mean = bn.running_var = None` (batch statistics in eval too, a known
    BatchNorm idiom): the new layer has no estimates either, and uses batch statistics."""
    bn = nn.BatchNorm2d(4, momentum=momentum)
    bn.running_mean = bn.running_var = None
    out = mn_triton.convert_to_mode_norm(bn).eval()
    assert out.running_mean is None and out.running_mean_sq is None
    x = torch.randn(6, 4, 3, 3) * 3 + 2
    assert_close(out(x), out.train()(x), 1e-6, "eval on batch statistics")
    assert out.num_batches_tracked.item() == 1  # counted, as BatchNorm counts


def test_convert_norm_without_tensors_takes_the_models_device_and_dtype():
    """A BatchNorm with neither affine weights nor running estimates has no dtype of its
    own: the new layer takes the model's (here float64), not torch's default."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1),
                          nn.BatchNorm2d(4, affine=False, track_running_stats=False),
                          nn.GroupNorm(2, 4, affine=False)).double()  # fmt: skip
    out = mn_triton.convert_to_mode_norm(model, num_modes=2, group_norm=True)
    assert out[1].gate.weight.dtype == out[2].gate.weight.dtype == torch.float64
    assert out(torch.randn(2, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64
    alone = mn_triton.convert_to_mode_norm(
        nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    )
    assert alone.gate.weight.dtype == torch.get_default_dtype()  # nothing to go by


def test_convert_norm_without_tensors_skips_the_models_integer_tensors():
    """The dtype a norm without tensors takes is that of the model's first floating-point
    tensor: an integer buffer ahead of it (a step count here) is none."""
    counter = nn.Module()
    counter.register_buffer("steps", torch.zeros((), dtype=torch.long))
    model = nn.Sequential(counter, nn.BatchNorm1d(4, affine=False, track_running_stats=False),
                          nn.BatchNorm1d(4, affine=False).double())  # fmt: skip
    out = mn_triton.convert_to_mode_norm(model)
    assert out[1].gate.weight.dtype == out[2].gate.weight.dtype == torch.float64
    assert out[1](torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64


def test_convert_refuses_an_uninitialised_lazy_batch_norm():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.LazyBatchNorm2d())
    with pytest.raises(ValueError, match="LazyBatchNorm2d .* run one forward pass"):
        mn_triton.convert_to_mode_norm(model)
    model(torch.randn(2, 3, 2, 2))  # now a BatchNorm2d with num_features=4
    assert isinstance(mn_triton.convert_to_mode_norm(model)[1], mn_triton.ModeNorm2d)


def test_convert_names_the_norm_it_cannot_convert():
    """torch allows BatchNorm(eps=0); MN refuses ε = 0, and says where in the model."""
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3, eps=0)))
    with pytest.raises(
        ValueError, match=r"eps must be > 0, got 0 \(at submodule '1\.1', a BatchNorm2d\)"
    ):
        mn_triton.convert_to_mode_norm(model)


@pytest.mark.parametrize("norm", [nn.BatchNorm2d(4), nn.GroupNorm(2, 4)], ids=["bn", "gn"])
def test_convert_keeps_a_parametrized_weight(norm):
    """The parametrization moves with its original Parameter (which an optimizer built before
    keeps training); before, assigning the computed weight to a Parameter slot raised a
    TypeError that did not say why."""
    nn.utils.parametrize.register_parametrization(norm, "weight", AbsParametrization())
    original = norm.parametrizations.weight.original
    with torch.no_grad():
        original.uniform_(-1, 1)
    model = mn_triton.convert_to_mode_norm(nn.Sequential(nn.Conv2d(3, 4, 1), norm), group_norm=True)
    layer = model[1]
    assert nn.utils.parametrize.is_parametrized(layer, "weight")
    assert layer.parametrizations.weight.original is original
    assert torch.equal(layer.weight, original.abs())
    assert (
        "parametrizations.weight.original" in layer.state_dict()
        and "weight" not in layer.state_dict()
    )
    model(torch.randn(2, 3, 2, 2)).sum().backward()
    assert original.grad is not None


@pytest.mark.parametrize("norm", [nn.BatchNorm2d(4), nn.GroupNorm(2, 4)], ids=["bn", "gn"])
def test_convert_names_a_pruned_weight_and_what_to_do(norm):
    """torch.nn.utils.prune leaves `weight` a plain tensor that a forward pre-hook recomputes:
    converting raised a TypeError (cannot assign as parameter) that named no submodule."""
    nn.utils.prune.l1_unstructured(norm, "weight", amount=0.5)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), norm)
    with pytest.raises(ValueError, match=r"weight is a plain tensor, not a Parameter.*prune") as e:
        mn_triton.convert_to_mode_norm(model, group_norm=True)
    assert "prune.remove(module, 'weight')" in str(e.value) and "submodule '1'" in str(e.value)
    nn.utils.prune.remove(norm, "weight")  # as it says: then it converts
    layer = mn_triton.convert_to_mode_norm(model, group_norm=True)[1]
    assert isinstance(layer.weight, nn.Parameter) and int((layer.weight == 0).sum()) == 2
    with pytest.warns(FutureWarning):  # the hook-based weight_norm: its own remover named
        nn.utils.weight_norm(norm)
    with pytest.raises(ValueError, match=r"weight_norm or spectral_norm: remove_weight_norm"):
        mn_triton.convert_to_mode_norm(nn.Sequential(norm), group_norm=True)


class _Scaled(nn.Module):
    """A parametrization with state, which its right_inverse sets."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.scale

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        self.scale.copy_(weight.abs().max())
        return weight / self.scale


def test_convert_moves_a_parametrization_with_its_state():
    """The parametrization moves as it is: registered anew on the new layer, its
    right_inverse ran on that layer's fresh weight of ones and reset its scale, for the old
    norm too (they share it)."""
    norm = nn.BatchNorm2d(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([4.0, 2.0, -1.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.5, -2.0, 1.0, 0.0]))
    nn.utils.parametrize.register_parametrization(norm, "bias", _Scaled())
    nn.utils.parametrize.register_parametrization(norm, "weight", _Scaled())
    bias = norm.bias.detach().clone()
    layer = mn_triton.convert_to_mode_norm(nn.Sequential(norm))[0]
    assert torch.equal(layer.weight, torch.tensor([4.0, 2.0, -1.0, 3.0]))
    assert torch.equal(layer.bias, bias)
    assert layer.parametrizations.weight is norm.parametrizations.weight


def test_compiled_fullgraph_with_other_gate_hooks():
    """A forward hook on every nn.Linear (an activation logger, say) reaches the gate: it does
    not run, and the layer says so in eager; compiled with fullgraph=True the warning is left
    out (dynamo cannot trace warnings.warn, and refused the whole graph)."""
    layer = mn_triton.ModeNorm2d(4)
    layer.gate.register_forward_hook(lambda *args: None)
    x = torch.randn(3, 4, 2, 2)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("norm", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_autocast_training_with_grad_scaler(dtype, norm, backend):
    """Half inputs in, half outputs out; statistics, parameters and gradients in float32."""
    torch.manual_seed(0)
    layer = getattr(mn_triton, norm)(4, num_modes=2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layer, nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 16, 3))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    seen = []
    layer.register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    x, target = torch.randn(16, 3, 4, 4), torch.randint(0, 3, (16,))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            loss = nn.functional.cross_entropy(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert seen[0] == (dtype, dtype)
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    assert all(torch.isfinite(p.grad).all() and p.grad.dtype == torch.float32
               for p in layer.parameters())  # fmt: skip
    if hasattr(layer, "running_mean"):
        assert layer.running_mean.dtype == torch.float32
        assert torch.isfinite(layer.running_mean).all()
    assert losses[-1] < losses[0]


AUTOCAST_LAYERS = {
    "mn": lambda: mn_triton.ModeNorm2d(4, num_modes=3),
    "mn_k1": lambda: mn_triton.ModeNorm2d(4, num_modes=1),
    "mgn": lambda: mn_triton.ModeGroupNorm2d(4, num_modes=3),
    "sync_mn": lambda: mn_triton.SyncModeNorm(4, num_modes=3),  # one process
    "reference_mn": lambda: reference.ModeNorm2d(4, num_modes=3),
    "reference_mgn": lambda: reference.ModeGroupNorm2d(4, num_modes=3),
}


@pytest.mark.parametrize("case", list(AUTOCAST_LAYERS))
def test_autocast_leaves_the_statistics_in_float32(case, backend):
    """Inside torch.autocast a layer computes what it computes outside (BatchNorm does too):
    the gates' logits and the sums over samples or modes are matrix products, which autocast
    would run in bfloat16 (~1e-3 off; K = 1 no longer BatchNorm). For float32 and bfloat16
    inputs, in training (running estimates and gradients too) and eval."""
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        layer = randomize(AUTOCAST_LAYERS[case]())
        data, runs = (torch.randn(6, 4, 3, 3) * 3 + 20).to(dtype), []
        for autocast in (False, True):
            net = copy.deepcopy(layer)
            x = data.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                y_train = net(x)
                y_eval = net.eval()(x)
            # Backward outside autocast, as torch recommends (its ops would be autocast too).
            grads = torch.autograd.grad(y_train.float().sin().sum(), [x, *net.parameters()])
            runs.append((y_train, y_eval, *grads, *net.buffers()))
        for got, expected in zip(*runs[::-1], strict=True):
            assert got.dtype == expected.dtype
            assert_close(got.float(), expected.float(), 1e-6, f"{dtype}: autocast vs not")


@pytest.fixture
def reference_calls(monkeypatch):
    """The calls the layers make to the reference formulas (reference.functional), listed."""
    calls = []
    for name in ("mode_norm", "mode_group_norm"):
        original = getattr(mn_triton.functional.reference_functional, name)
        monkeypatch.setattr(
            mn_triton.functional.reference_functional, name,
            lambda *a, _f=original, **k: calls.append(_f) or _f(*a, **k),
        )  # fmt: skip
    return calls


TORCH_FUNC_LAYERS = {  # layers and modes torch.func can differentiate (no in-place updates)
    "mn_eval": (lambda: mn_triton.ModeNorm2d(3), False),
    "mn_train_untracked": (lambda: mn_triton.ModeNorm2d(3, track_running_stats=False), True),
    "mgn_train": (lambda: mn_triton.ModeGroupNorm2d(3), True),
    # eps ≠ 1e-5: the reference formulas must be handed the layer's eps
    "mn_eval_eps": (lambda: mn_triton.ModeNorm2d(3, eps=0.5), False),
    "mgn_train_eps": (lambda: mn_triton.ModeGroupNorm2d(3, eps=0.5), True),
}


@pytest.mark.parametrize("case", list(TORCH_FUNC_LAYERS))
def test_torch_func_grad_uses_the_reference_formulas(case, backend, reference_calls):
    """torch.func transforms cannot trace the kernels' autograd.Function: inside them the layers
    compute with the reference formulas (and only there); gradients match the float64 oracle."""
    make, training = TORCH_FUNC_LAYERS[case]
    layer = randomize(make(), gate_scale=2.0).train(training)
    x = torch.randn(4, 3, 2, 3) * 1.5 + torch.randn(4, 3, 1, 1)
    layer(x)
    assert reference_calls == []  # outside torch.func: the kernels (or torch ops)
    params = {name: p.detach() for name, p in layer.named_parameters()}

    def loss(params: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, params, (x,)).sin().sum()

    grads = torch.func.grad(loss, argnums=(0, 1))(params, x)
    assert len(reference_calls) == 1
    oracle = reference_twin(layer)
    xd = x.double().requires_grad_()
    expected = torch.autograd.grad(oracle(xd).sin().sum(), [xd, *oracle.parameters()])
    assert_close(grads[1], expected[0], 1e-5, "grad of input")
    for (name, g), g_ref in zip(grads[0].items(), expected[1:], strict=True):
        assert_close(g, g_ref, 1e-4, f"grad of {name}")  # gates: see check_against_oracle


def test_torch_func_per_sample_gradients_with_mode_group_norm(backend):
    """vmap over grad: per-sample gradients (as differential privacy needs), which MGN allows
    since it normalises each sample on its own."""
    layer = randomize(mn_triton.ModeGroupNorm2d(3, dtype=torch.float64), gate_scale=2.0)
    params = {name: p.detach() for name, p in layer.named_parameters()}
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64) * 2 + 1

    def loss(params: dict, sample: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, params, (sample[None],)).sin().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x)
    # In float64: on one sample the gate gradients are too ill-conditioned to compare two
    # float32 evaluations closely; here only the per-sample wiring is in question.
    for i in range(len(x)):
        grads = torch.autograd.grad(layer(x[i : i + 1]).sin().sum(), list(layer.parameters()))
        for (name, g), expected in zip(per_sample.items(), grads, strict=True):
            assert_close(g[i], expected, 1e-10, f"sample {i}: grad of {name}")


def test_torch_func_training_with_running_estimates_fails_as_for_batch_norm():
    x = torch.randn(4, 3, 2, 2)
    for layer in (nn.BatchNorm2d(3), mn_triton.ModeNorm2d(3)):
        params = {name: p.detach() for name, p in layer.named_parameters()}

        def loss(params: dict, layer: nn.Module = layer) -> torch.Tensor:
            return torch.func.functional_call(layer, params, (x,)).sum()

        with pytest.raises(RuntimeError, match="in-place"):
            torch.func.grad(loss)(params)


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_vmap_in_training_with_running_estimates_says_what_to_do(package):
    """As for BatchNorm: vmap cannot update the estimates in place from every vmapped call.
    The layer says so and what to do (once torch's own message named `_foreach_lerp_`'s
    missing batching rule); eval mode and track_running_stats=False work."""
    x = torch.randn(5, 3, 4, 2, 2)
    layer = package.ModeNorm2d(4)
    with pytest.raises(RuntimeError, match="ModeNorm2d: torch.vmap .* track_running_stats=False"):
        torch.vmap(layer)(x)
    assert layer.num_batches_tracked.item() == 0  # refused before counting the step
    expected = torch.stack([layer.eval()(xi) for xi in x])
    assert_close(torch.vmap(layer)(x), expected, 1e-6, "vmap in eval")
    free = package.ModeNorm2d(4, track_running_stats=False)
    assert_close(torch.vmap(free)(x), torch.stack([free(xi) for xi in x]), 1e-6, "vmap, no stats")


@pytest.mark.parametrize("package", [mn_triton, reference])
@pytest.mark.parametrize("momentum", [0.3, None])
@pytest.mark.parametrize("x_dim", [None, 0])
def test_torch_func_ensemble_trains_each_model_with_its_own_estimates(package, momentum, x_dim):
    """torch.func's model ensembling (stack_module_state + functional_call + vmap), as
    BatchNorm allows it: in training each model normalises with its own gates and updates
    its own running estimates, whether the models share one input batch or get one each."""
    models = [randomize(package.ModeNorm2d(4, momentum=momentum), gate_scale=2.0) for _ in range(3)]
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def call(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(base, (params, buffers), (x,))

    x = torch.randn(3, 5, 4, 3, 3) * 2 + 1
    ensemble = torch.func.vmap(call, in_dims=(0, 0, x_dim))
    for step in range(2):  # twice: the second step reads the first one's counts
        xs = x[0] if x_dim is None else x
        out = ensemble(params, buffers, xs)
        for i, model in enumerate(models):
            expected = model(xs if x_dim is None else xs[i])
            assert_close(out[i], expected, 1e-5, f"step {step}, model {i}: output")
            for name, buffer in model.named_buffers():
                if buffer.is_floating_point():
                    assert_close(buffers[name][i], buffer, 1e-5, f"model {i}: {name}")
                else:
                    assert torch.equal(buffers[name][i], buffer), name


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_vmap_over_gates_alone_in_training_says_what_to_do(package):
    """Gates batched, running estimates not: every call would update the one set in place."""
    layer = package.ModeNorm2d(4)
    params = {name: torch.stack([p.detach()] * 3) for name, p in layer.named_parameters()}

    def call(params: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, params, (x,))

    with pytest.raises(RuntimeError, match="ModeNorm2d: torch.vmap .*stack_module_state"):
        torch.func.vmap(call, in_dims=(0, None))(params, torch.randn(5, 4, 3, 3))
    assert layer.num_batches_tracked.item() == 0


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_vmap_inside_an_ensemble_in_training_says_what_to_do(package):
    """An inner vmap over inputs within an ensemble's vmap: each model's one set of
    estimates would take every inner call's update."""
    models = [package.ModeNorm2d(4) for _ in range(2)]
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def per_model(params: dict, buffers: dict, xs: torch.Tensor) -> torch.Tensor:
        call = lambda x: torch.func.functional_call(base, (params, buffers), (x,))  # noqa: E731
        return torch.func.vmap(call)(xs)

    with pytest.raises(RuntimeError, match="ModeNorm2d: torch.vmap .*stack_module_state"):
        torch.func.vmap(per_model, in_dims=(0, 0, None))(
            params, buffers, torch.randn(3, 5, 4, 2, 2)
        )
    assert buffers["num_batches_tracked"].tolist() == [0, 0]


def _prune(gate: nn.Linear):
    torch.nn.utils.prune.l1_unstructured(gate, "weight", amount=0.5)
    return lambda: gate.weight_orig * gate.weight_mask


def _weight_norm(gate: nn.Linear):
    with warnings.catch_warnings():  # deprecated for the parametrization, still in use
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(gate)
    return lambda: torch._weight_norm(gate.weight_v, gate.weight_g, 0)


def _spectral_norm(gate: nn.Linear):
    torch.nn.utils.spectral_norm(gate)
    # The weight over its largest singular value, as estimated by the latest power iteration.
    return lambda: gate.weight_orig / (gate.weight_u @ gate.weight_orig @ gate.weight_v)


def _parametrized_weight_norm(gate: nn.Linear):
    torch.nn.utils.parametrizations.weight_norm(gate)
    original = gate.parametrizations.weight
    return lambda: torch._weight_norm(original.original1, original.original0, 0)


GATE_REWRITES = {
    "prune": _prune,
    "weight_norm": _weight_norm,
    "spectral_norm": _spectral_norm,
    "parametrized_weight_norm": _parametrized_weight_norm,
}


@pytest.mark.parametrize("package", [mn_triton, reference])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
@pytest.mark.parametrize("rewrite", list(GATE_REWRITES))
def test_gate_weight_rewrites_apply_at_every_step(package, name, rewrite):
    """Pruning, weight_norm and spectral_norm applied to the gate (as a loop over a model's
    nn.Linear modules applies them): every training step normalises with the weight they
    compute from the parameters as trained so far, and trains those parameters. (The layer
    does not call its gate, so it runs their hooks itself.)"""
    layer = randomize(getattr(package, name)(4), gate_scale=2.0)
    plain = copy.deepcopy(layer)
    gate_weight = GATE_REWRITES[rewrite](layer.gate)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for step in range(3):
        x = torch.randn(5, 4, 3, 3) * 2 + 1
        y = layer(x)
        with torch.no_grad():
            plain.gate.weight.copy_(gate_weight())
            trained = dict(layer.named_parameters())
            for what, p in plain.named_parameters():
                if what != "gate.weight":
                    p.copy_(trained[what])
            expected = plain(x)
        assert_close(y, expected, 1e-5, f"step {step}: output")
        optimizer.zero_grad()
        y.sin().sum().backward()
        assert all(p.grad is not None for p in layer.gate.parameters())
        optimizer.step()
    for what, buffer in plain.named_buffers():
        assert torch.allclose(dict(layer.named_buffers())[what], buffer), what


@pytest.mark.parametrize("hook", ["forward", "forward_pre"])
@pytest.mark.parametrize("layer_class", ["ModeNorm2d", "ModeGroupNorm2d"])
@pytest.mark.parametrize("package", [mn_triton, reference])
def test_other_gate_hooks_are_said_not_to_run(package, layer_class, hook):
    """Forward hooks on the gate, and forward pre-hooks that are not weight hooks (pruning,
    weight_norm, spectral_norm), do not run: the layer says so."""
    layer = getattr(package, layer_class)(4)
    calls = []
    getattr(layer.gate, f"register_{hook}_hook")(lambda *args: calls.append(args))
    with pytest.warns(UserWarning, match=f"{layer_class}: forward hooks on its gate do not run"):
        layer(torch.randn(3, 4, 2, 2))
    assert calls == []


class _DoubledLinear(nn.Linear):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(input)


@pytest.mark.parametrize("package", [mn_triton, reference])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_a_gate_with_its_own_forward_is_refused(package, name):
    """A gate whose forward is not nn.Linear's (a fake-quantising Linear put in by hand or by a
    custom module mapping
    its weight) would be bypassed: refused, with what to do."""
    layer = getattr(package, name)(4)
    layer.gate = _DoubledLinear(layer.gate.in_features, layer.gate.out_features)
    with pytest.raises(TypeError, match=f"{name}.gate must be an nn.Linear.*_DoubledLinear"):
        layer(torch.randn(3, 4, 2, 2))


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_dynamic_quantisation_of_linear_layers_leaves_the_gates_alone(package):
    """`quantize_dynamic(model, {nn.Linear})` swaps layers of exactly that type: the gates,
    of classes of their own, stay, and the norms compute as before. (MGN's gate was a plain
    nn.Linear: swapped for a quantised one, it made the next forward fail.)"""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), package.ModeNorm2d(4), package.ModeGroupNorm2d(4), nn.Flatten(),
        nn.Linear(36, 2),
    ).eval()  # fmt: skip
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert type(quantized[4]) is not nn.Linear  # the head was quantised
    x = torch.randn(2, 3, 3, 3)
    for i in (1, 2):
        assert type(quantized[i].gate) is type(model[i].gate)  # (quantize_dynamic copies)
    features = quantized[:3](x)
    torch.testing.assert_close(features, model[:3](x), rtol=0, atol=0)
    assert quantized(x).shape == (2, 2)


@pytest.mark.parametrize("package", [mn_triton, reference])
def test_quantization_aware_training_leaves_the_gates_alone(package):
    """prepare_qat swaps modules by exact type too: the gates stay, and the layers train."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), package.ModeNorm2d(4), package.ModeGroupNorm2d(4))
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("fbgemm")
    prepared = torch.ao.quantization.prepare_qat(model.train())
    assert type(prepared[0]) is not nn.Conv2d  # the convolution now fake-quantises
    for i in (1, 2):
        assert type(prepared[i].gate) is type(model[i].gate)
    prepared(torch.randn(2, 3, 5, 5)).sum().backward()
    assert prepared[1].gate.weight.grad is not None


def test_a_refused_gate_is_named_with_its_module():
    """A quantised gate's class is also called `Linear`: the error names it in full."""
    layer = mn_triton.ModeGroupNorm2d(4)
    layer.gate = torch.ao.nn.quantized.dynamic.Linear(1, 2)
    with pytest.raises(TypeError, match=r"got torch\.ao\.nn\.quantized\.dynamic\..*Linear"):
        layer(torch.randn(3, 4, 2, 2))


def _wrapped(kind: str, t: torch.Tensor) -> torch.Tensor:
    """`t` inside a wrapper subclass (`__torch_dispatch__`): a pair of tensors, or a logger."""
    from torch.testing._internal.logging_tensor import LoggingTensor
    from torch.testing._internal.two_tensor import TwoTensor

    return TwoTensor(t, t.clone()) if kind == "pair" else LoggingTensor(t)


def _unwrapped(t: torch.Tensor) -> torch.Tensor:
    return getattr(t, "a", getattr(t, "elem", t))


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("kind", ["pair", "logging"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_wrapper_tensor_subclasses(name, training, kind, where, backend):
    """An input or parameter in a `__torch_dispatch__` subclass (DTensor, logging and debug
    tensors) reaches the layer's ops as one call each, which the subclass runs on the tensors
    it wraps, as BatchNorm's aten op: the same results and gradients as plain tensors. The
    kernels cannot read such a tensor's storage: they failed inside Triton's launcher."""
    layer = randomize(getattr(mn_triton, name)(3)).train(training)
    twin = copy.deepcopy(layer)
    x = torch.randn(4, 3, 2, 2) * 2 + 1
    if where == "weight":
        layer.weight = nn.Parameter(_wrapped(kind, layer.weight.detach().clone()))
        y = layer(x.requires_grad_())
    else:
        y = layer(_wrapped(kind, x.clone()).requires_grad_())
    assert type(y) is not torch.Tensor
    expected = twin(x.detach().requires_grad_())
    assert_close(_unwrapped(y), expected, 1e-6, "output")
    y.sum().backward()
    expected.sum().backward()
    assert_close(_unwrapped(layer.bias.grad), twin.bias.grad, 1e-6, "bias grad")
    if training and name == "ModeNorm2d" and kind == "logging":
        # (A pair runs each op twice, so it updates plain running estimates twice: as it
        # does BatchNorm's.)
        assert_close(layer.running_mean, twin.running_mean, 1e-6, "running mean")


FORWARD_AD_LAYERS = {
    "mn_train": (lambda: mn_triton.ModeNorm2d(3), True),
    "mn_eval": (lambda: mn_triton.ModeNorm2d(3), False),
    "mgn": (lambda: mn_triton.ModeGroupNorm2d(3), True),
}


@pytest.mark.parametrize("case", list(FORWARD_AD_LAYERS))
def test_forward_mode_ad(case, backend, reference_calls):
    """Forward-mode AD (torch.autograd.forward_ad) cannot see into the kernels' autograd
    function either: inputs carrying tangents take the reference formulas, whose tangents equal
    the float64 oracle's Jacobian-vector product; running estimates are updated exactly as
    without tangents, and get none. Without tangents, even inside a dual level, the kernels run."""
    make, training = FORWARD_AD_LAYERS[case]
    layer = randomize(make(), gate_scale=2.0).train(training)
    twin = copy.deepcopy(layer)
    oracle = reference_twin(layer)
    x = torch.randn(4, 3, 2, 3) * 1.5 + torch.randn(4, 3, 1, 1)
    dx, dweight = torch.randn_like(x), torch.randn(3)
    params = dict(layer.named_parameters())
    with forward_ad.dual_level():
        twin(x)  # no tangents: the kernels (or torch ops)
        assert reference_calls == []
        dual_params = {**params, "weight": forward_ad.make_dual(params["weight"], dweight)}
        y = torch.func.functional_call(layer, dual_params, (forward_ad.make_dual(x, dx),))
        y, tangent = forward_ad.unpack_dual(y)
        for name, buffer in layer.named_buffers():
            assert forward_ad.unpack_dual(buffer).tangent is None, name
    assert len(reference_calls) == 1

    def oracle_fn(xd: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(oracle, {"weight": weight}, (xd,), strict=False)

    xd, wd = x.double(), params["weight"].detach().double()
    expected_y, expected_tangent = torch.autograd.functional.jvp(
        oracle_fn, (xd, wd), (dx.double(), dweight.double())
    )
    assert_close(y, expected_y, 1e-5, "output")
    assert_close(tangent, expected_tangent, 1e-5, "tangent")
    for (name, buffer), expected in zip(layer.named_buffers(), twin.buffers(), strict=True):
        assert_close(buffer, expected, 1e-6, name)


TRACE_LAYERS = {
    "mn_train": lambda: mn_triton.ModeNorm2d(3).train(),
    "mn_cumulative": lambda: mn_triton.ModeNorm2d(3, momentum=None).train(),
    "mn_eval": lambda: mn_triton.ModeNorm2d(3).eval(),
    "mgn": lambda: mn_triton.ModeGroupNorm2d(3),
}


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the argument checks' ifs
@pytest.mark.parametrize("case", list(TRACE_LAYERS))
def test_jit_trace(case, backend):
    """torch.jit.trace records the custom op, one call per layer (it cannot see Triton launches,
    and the Function's inner torch ops would update running estimates twice): the traced
    layer computes what the layer does, outputs, gradients and running estimates, step after
    step, on other shapes too."""
    layer = randomize(TRACE_LAYERS[case](), gate_scale=2.0)
    x = torch.randn(4, 3, 2, 3) * 1.5 + torch.randn(4, 3, 1, 1)
    traced = torch.jit.trace(copy.deepcopy(layer), x, check_trace=False)
    assert "mn_triton::mode" in str(traced.inlined_graph)
    traced.load_state_dict(layer.state_dict())  # tracing ran the layer once
    for step, (n, h, w) in enumerate([(4, 2, 3), (6, 3, 1)]):
        x = (torch.randn(n, 3, h, w) * 1.5 + torch.randn(n, 3, 1, 1)).requires_grad_()
        results = []
        for module in (layer, traced):
            y = module(x)
            grads = torch.autograd.grad(y.sin().sum(), [x, *module.parameters()])
            results.append((y, *grads, *module.buffers()))
        # Not bit for bit: compiled or traced, the running estimates are updated by torch ops
        # after the op rather than inside the mix kernel.
        for got, expected in zip(results[1], results[0], strict=True):
            assert_close(got, expected, 1e-6, f"step {step}")


def _small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        randomize(mn_triton.ModeNorm2d(4, num_modes=2)),
        nn.ReLU(),
        randomize(mn_triton.ModeGroupNorm2d(4, num_modes=2)),
    )


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_activation_checkpointing(use_reentrant, backend):
    """torch.utils.checkpoint runs the forward again in the backward: the gradients are those
    of a plain call, and the running estimates see the batch twice, as BatchNorm's do."""
    net = _small_net()
    plain = copy.deepcopy(net)
    x = torch.randn(3, 3, 6, 6, requires_grad=True)
    checkpoint(net, x, use_reentrant=use_reentrant).sum().backward()
    x_plain = x.detach().clone().requires_grad_()
    plain(x_plain).sum().backward()
    assert_close(x.grad, x_plain.grad, 1e-6, "grad of input")
    for (name, p), p_plain in zip(net.named_parameters(), plain.parameters(), strict=True):
        assert_close(p.grad, p_plain.grad, 1e-6, f"grad of {name}")
    bn = nn.BatchNorm2d(4)
    x_bn = torch.randn(3, 4, 4, 4, requires_grad=True)
    checkpoint(bn, x_bn, use_reentrant=use_reentrant).sum().backward()
    assert int(bn.num_batches_tracked) == 2  # once in the forward, once recomputing it
    assert int(net[1].num_batches_tracked) == int(bn.num_batches_tracked)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_torch_export(training, backend):
    """torch.export traces the layers' custom ops (their fake kernels give the shapes); the
    exported program computes what the eager layers do, running estimates included."""
    net = _small_net().train(training)
    x = torch.randn(3, 3, 6, 6)
    exported = torch.export.export(copy.deepcopy(net), (x,)).module()
    ops = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert {
        "mn_triton.mode_norm_forward.default",
        "mn_triton.mode_group_norm_forward.default",
    } <= ops
    assert_close(exported(x), net(x), 1e-6, "output")
    buffers = dict(exported.named_buffers())
    for name, buffer in net.named_buffers():
        assert_close(buffers[name].float(), buffer.float(), 1e-6, name)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_make_fx_records_the_custom_ops(training, backend):
    """make_fx, on real and on fake tensors, records each layer as its custom op (as
    torch.export does) rather than launching kernels it cannot see or that cannot run on
    tensors without data; the graph computes what the layers do, running estimates too."""
    net = _small_net().train(training)
    x = torch.randn(3, 3, 6, 6)

    def step(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(net, state, (x,))

    def state() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    for mode in ("real", "fake"):
        graph = make_fx(step, tracing_mode=mode)(state(), x)
        ops = {str(node.target) for node in graph.graph.nodes if node.op == "call_function"}
        assert {
            "mn_triton.mode_norm_forward.default",
            "mn_triton.mode_group_norm_forward.default",
        } <= ops, mode
        traced_state, eager_state = state(), state()
        assert_close(graph(traced_state, x), step(eager_state, x), 1e-6, f"output ({mode})")
        for name, buffer in eager_state.items():
            assert_close(traced_state[name].float(), buffer.float(), 1e-6, f"{name} ({mode})")


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_layers_run_on_fake_tensors(training, backend):
    """Under FakeTensorMode (FX shape propagation, memory and FLOP estimators) a model's
    forward and backward give fake tensors of the right shapes, as with BatchNorm."""
    net = _small_net().train(training)
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(3, 3, 6, 6, requires_grad=True)
        y = net(x)
        y.sum().backward()
    assert isinstance(y, FakeTensor) and y.shape == (3, 4, 4, 4)
    assert isinstance(x.grad, FakeTensor) and x.grad.shape == x.shape
    graph_module = torch.fx.symbolic_trace(_small_net().train(training))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        ShapeProp(graph_module, fake_mode=mode).propagate(mode.from_tensor(torch.randn(2, 3, 5, 5)))
    shapes = [node.meta["tensor_meta"].shape for node in graph_module.graph.nodes
              if node.op == "call_module"]  # fmt: skip
    assert shapes == [(2, 4, 3, 3)] * 4
    # A fake tensor outside its mode (FX passes hand them around so) takes the same path.
    assert isinstance(net(mode.from_tensor(torch.randn(2, 3, 5, 5))), FakeTensor)


FX_LAYERS = {
    "mn": lambda: mn_triton.ModeNorm2d(4, momentum=None),  # a cumulative average: step count
    "mgn": lambda: mn_triton.ModeGroupNorm2d(4),
    "sync_mn": lambda: mn_triton.SyncModeNorm(4),  # one process: ModeNorm's forward
    "reference_mn": lambda: reference.ModeNorm2d(4),
    "reference_mgn": lambda: reference.ModeGroupNorm2d(4),
}


@pytest.mark.parametrize("case", list(FX_LAYERS))
def test_fx_symbolic_trace_records_the_layer_as_one_call(case, backend):
    """torch.fx.symbolic_trace (feature extractors, FX quantisation) records each layer as
    one call_module node, as it records torch.nn's norms; the traced model then computes
    what the model does, step after step, running estimates and input checks included."""
    layer = randomize(FX_LAYERS[case]())
    net = nn.Sequential(nn.Conv2d(3, 4, 3), layer, nn.ReLU())
    graph_module = torch.fx.symbolic_trace(copy.deepcopy(net))
    calls = [node.target for node in graph_module.graph.nodes if node.op == "call_module"]
    assert calls == ["0", "1", "2"]
    for step in range(2):
        x = torch.randn(5, 3, 6, 6) * 2 + step
        assert_close(graph_module(x), net(x), 1e-6, f"output, step {step}")
        for (name, buffer), traced in zip(net.named_buffers(), graph_module.buffers(), strict=True):
            assert torch.equal(traced, buffer), f"{name}, step {step}"
    with pytest.raises(ValueError, match="expected 4 channels"):
        torch.fx.symbolic_trace(nn.Sequential(layer))(torch.randn(2, 3, 4, 4))
    with pytest.raises(TypeError, match="not the layer alone"):
        torch.fx.symbolic_trace(layer)


def _batch_mode_moments(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """⟨x⟩_k and ⟨x²⟩_k = Σ_n g_nk·mean(x_n^p) / Σ_n g_nk (SPEC §1), in float64: (2, K, C)."""
    rows = x.double().flatten(2)
    means = rows.mean(-1)  # (N, C)
    gates = torch.softmax(means @ layer.gate.weight.double().T + layer.gate.bias.double(), 1)
    return torch.stack([gates.T @ rows.pow(p).mean(-1) / gates.sum(0)[:, None] for p in (1, 2)])


@pytest.mark.parametrize("package", ["mn_triton", "reference"])
def test_update_bn_recomputes_mode_norm_running_estimates(package, backend):
    """SWA: torch.optim.swa_utils.update_bn only sees _BatchNorm layers. mn_triton.update_bn
    restarts ModeNorm's running estimates too and makes them the batches' average, updates
    BatchNorm as torch's does, and restores momenta and the model's mode."""
    layer = randomize((mn_triton if package == "mn_triton" else reference).ModeNorm2d(4))
    layer.momentum = 0.3
    model = nn.Sequential(nn.Conv2d(3, 4, 3), layer, nn.ReLU(), nn.Conv2d(4, 5, 1))
    model.append(nn.BatchNorm2d(5)).eval()
    loader = [(torch.randn(n, 3, 6, 6) * 2 + 1, torch.zeros(n)) for n in (4, 7, 5)]
    twin = copy.deepcopy(model)
    layer_inputs = []
    layer.register_forward_hook(lambda m, args, out: layer_inputs.append(args[0].detach()))
    mn_triton.update_bn(loader, model)

    torch.optim.swa_utils.update_bn(loader, twin)
    assert torch.equal(model[4].running_mean, twin[4].running_mean)
    assert torch.equal(model[4].running_var, twin[4].running_var)
    assert int(layer.num_batches_tracked) == len(loader)
    expected = torch.stack([_batch_mode_moments(layer, x) for x in layer_inputs]).mean(0)
    assert_close(layer.running_mean, expected[0], 1e-6, "running mean")
    assert_close(layer.running_mean_sq, expected[1], 1e-6, "running mean of squares")
    # torch's neither restarts ModeNorm's estimates nor averages: its momentum blends them.
    assert rel_err(twin[1].running_mean, expected[0]) > 1e-2
    assert layer.momentum == 0.3 and model[4].momentum == 0.1 and not model.training


def test_update_bn_restores_every_modules_mode():
    """A norm kept in eval inside a training model (frozen statistics) is in eval again after
    the pass, and the others in training: each module's mode is restored, not only the
    model's (torch's update_bn puts the frozen norm in training)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), mn_triton.ModeNorm2d(4), nn.BatchNorm2d(4))
    model.train()[1].eval()
    mn_triton.update_bn([torch.randn(4, 3, 2, 2)], model)
    assert [m.training for m in model] == [True, False, True] and model.training
    assert int(model[1].num_batches_tracked) == 1  # updated in the pass, as torch's does


NO_TRITON_SCRIPT = """
import sys, types, warnings
sys.modules["triton"] = None  # as where Triton has no wheels (macOS, Windows)
import torch
import mn_triton
import reference
from mn_triton import backend

assert not backend.HAS_TRITON
torch.manual_seed(0)
x = torch.randn(4, 6, 5, 5, dtype=torch.float64)
for ours, theirs in [
    (mn_triton.ModeNorm2d(6, 3), reference.ModeNorm2d(6, 3)),
    (mn_triton.ModeGroupNorm2d(6, 3), reference.ModeGroupNorm2d(6, 3)),
]:
    ours.double(), theirs.double().load_state_dict(ours.state_dict())
    outs = []
    for layer in (ours, theirs):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        y.backward(torch.cos(y))
        outs.append((y, xi.grad))
    for a, b in zip(*outs):
        assert (a - b).norm() <= 1e-10 * b.norm(), type(ours).__name__
with warnings.catch_warnings():
    warnings.simplefilter("error")  # CPU tensors run on torch ops without a word
    mn_triton.ModeNorm2d(6, 3).double()(x)
cuda_like = types.SimpleNamespace(is_cuda=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")  # once is the module's doing, not the filter's
    for _ in range(3):
        assert backend.uses_kernels(cuda_like) is False
assert [str(w.message) for w in caught] == [backend.NO_TRITON_WARNING]
assert backend.NO_TRITON_WARNING == (
    "mn_triton: Triton is not installed, so CUDA tensors run on torch ops (correct, but slower "
    "than the kernels); install triton, or select the 'torch' backend to say so."
)
mn_triton.set_backend("triton")
try:
    mn_triton.ModeNorm2d(6, 3).double()(x)
except RuntimeError as error:
    assert "Triton is not installed, so the 'triton' backend cannot run" in str(error), error
else:
    raise AssertionError("the 'triton' backend ran without Triton")
print("ok")
"""


def test_layers_work_on_torch_ops_where_triton_is_not_installed():
    """Without Triton (no wheels for macOS or Windows) mn_triton imports, its layers match
    the reference on torch ops, CUDA tensors warn that they run on torch ops, and the
    'triton' backend refuses with a clear error. In a process of its own: this one has
    Triton imported already."""
    result = subprocess.run(
        [sys.executable, "-c", NO_TRITON_SCRIPT],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-4000:]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_update_bn_restores_the_models_mode_through_its_own_train(training):
    """The model's mode comes back through its own `train` (which may do more than set the
    flags, as here where it keeps a record), with the mode it had, as torch's update_bn
    restores it; then each module's flag as it was. A model in training gets train(True)
    again, not train(False) with the flags set back by hand afterwards (a `train` override
    may do more than set flags: freeze some norms, say)."""

    class Recording(nn.Sequential):
        def train(self, mode: bool = True) -> nn.Module:
            self.calls = [*getattr(self, "calls", []), mode]
            return super().train(mode)

    model = Recording(nn.Conv2d(3, 4, 1), mn_triton.ModeNorm2d(4)).train(training)
    model.calls = []
    mn_triton.update_bn([torch.randn(4, 3, 2, 2)], model)
    assert model.calls == [True, training]
    assert model.training == training and model[1].training == training


def test_update_bn_without_norms_leaves_the_model_and_loader_alone():
    """A model without BatchNorm or ModeNorm layers: nothing to recompute, so, as torch's,
    no pass over the loader (which may be long) and no call of the model at all."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), mn_triton.ModeGroupNorm2d(4)).eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))

    def loader():
        yield torch.randn(4, 3, 2, 2)
        raise AssertionError("the loader was read")

    mn_triton.update_bn(loader(), model)
    assert calls == [] and not model.training


def test_update_bn_restarts_a_trained_layers_count():
    """A trained layer's num_batches_tracked is large: update_bn restarts it (and the
    estimates), or momentum=None's 1/t would barely move the stale estimates."""
    layer = mn_triton.ModeNorm2d(4)
    with torch.no_grad():
        layer.num_batches_tracked.fill_(1000)
        layer.running_mean.fill_(5.0)
    mn_triton.update_bn([torch.randn(6, 4, 3, 3) for _ in range(3)], nn.Sequential(layer))
    assert int(layer.num_batches_tracked) == 3
    assert layer.running_mean.abs().max() < 1.0  # the batches' (about 0), not the old 5


def test_update_bn_moves_batches_to_the_device():
    """`device`: where the batches go, for a model on another device than the loader."""
    model = nn.Sequential(mn_triton.ModeNorm2d(4)).to("meta")
    mn_triton.update_bn([torch.randn(6, 4, 3, 3)], model, device="meta")
    assert model[0].num_batches_tracked.device.type == "meta"


def test_update_bn_restores_momenta_and_modes_when_the_pass_fails():
    """A loader or model that raises mid-pass (a bad batch, out of memory, Ctrl-C) leaves
    every layer's momentum and every module's mode as they were."""
    layer = mn_triton.ModeNorm2d(4, momentum=0.3)
    model = nn.Sequential(layer).eval()

    def loader():
        yield torch.randn(6, 4, 3, 3)
        raise KeyError("bad batch")

    with pytest.raises(KeyError):
        mn_triton.update_bn(loader(), model)
    assert layer.momentum == 0.3 and not model.training and not layer.training


def test_convert_affine_free_batch_norm_keeps_its_own_dtype():
    """A BatchNorm without affine weights takes its dtype and device from its estimates,
    not from the model's first tensor."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, affine=False).double())
    out = mn_triton.convert_to_mode_norm(model, num_modes=2)
    assert out[1].running_mean.dtype == out[1].gate.weight.dtype == torch.float64


def test_an_empty_batch_through_the_custom_ops_leaves_the_estimates_alone():
    """An empty training batch on the custom-op path (a wrapper subclass here; torch.compile
    takes the same path) leaves the running estimates as they are, as the eager path and
    BatchNorm do; the step is counted."""
    from torch.testing._internal.logging_tensor import LoggingTensor

    layer = mn_triton.ModeNorm2d(3)
    layer(LoggingTensor(torch.randn(0, 3, 2, 2)))
    assert torch.equal(layer.running_mean, torch.zeros(2, 3))
    assert torch.equal(layer.running_mean_sq, torch.ones(2, 3))
    assert int(layer.num_batches_tracked) == 1
