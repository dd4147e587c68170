"""Bad input gets a clear Python exception before any kernel runs (issue 2 §4)."""

import inspect

import numpy as np
import pytest
import torch
from torch import nn

import mn_triton
import reference
from helpers import assert_close, negated_view
from mn_triton import functional as F

PACKAGES = [mn_triton, reference]


@pytest.fixture(params=PACKAGES, ids=["mn_triton", "reference"])
def pkg(request):
    return request.param


@pytest.mark.parametrize(
    "cls, shape",
    [
        ("ModeNorm2d", (2, 3, 4)),
        ("ModeNorm2d", (2, 3, 4, 4, 4)),
        ("ModeNorm1d", (2, 3, 4, 4)),
        ("ModeNorm3d", (2, 3, 4, 4)),
        ("ModeNorm", (3,)),
        ("ModeGroupNorm2d", (2, 3)),
        ("ModeGroupNorm1d", (2, 3, 4, 4)),
    ],
)
def test_wrong_rank(pkg, cls, shape):
    with pytest.raises(ValueError, match=r"expected .*D input \(got \d+D input\)"):
        getattr(pkg, cls)(3)(torch.randn(shape))


@pytest.mark.parametrize("kind", ["ModeNorm", "ModeGroupNorm"])
def test_rank_variants_take_the_ranks_batch_norm_takes(pkg, kind):
    """The other side of test_wrong_rank: each variant takes every rank its BatchNorm takes
    (1d: (N, C) and (N, C, L)), and the plain layer any rank from 2 to 5."""
    for suffix, shapes in [
        ("1d", [(2, 3), (2, 3, 4)]),
        ("2d", [(2, 3, 4, 4)]),
        ("3d", [(2, 3, 2, 2, 2)]),
        ("", [(2, 3), (2, 3, 4), (2, 3, 4, 4), (2, 3, 2, 2, 2)]),
    ]:
        layer = getattr(pkg, kind + suffix)(3)
        for shape in shapes:
            assert layer(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (2, 5, 5, 4)], ids=["nchw", "nhwc"])
def test_channel_count_mismatch(pkg, cls, shape):
    """Channels are dim 1: an (N, H, W, C) tensor, its last dim the channel count, is
    refused as well, by the layer's own message (without affine weights nothing else
    would refuse it: MGN's gate takes one feature)."""
    for affine in (True, False):
        with pytest.raises(ValueError, match=r"expected 4 channels"):
            getattr(pkg, cls)(4, affine=affine)(torch.randn(shape))


# Float8 and complex types are refused as well: no accuracy contract covers them (SPEC §5),
# and BatchNorm refuses them too.
NOT_COVERED = [torch.int64, torch.bool, torch.uint8, torch.float8_e4m3fn, torch.float8_e5m2,
               torch.complex64]  # fmt: skip


@pytest.mark.parametrize("dtype", NOT_COVERED)
@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_input_of_a_dtype_not_covered(pkg, cls, dtype):
    message = rf"floating-point input \(float16, bfloat16, float32, float64\), got dtype {dtype}"
    with pytest.raises(TypeError, match=message):
        getattr(pkg, cls)(3)(torch.zeros(2, 3, 4, 4).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.int32])
def test_parameters_of_a_dtype_not_covered(pkg, dtype):
    x, gate_weight, gate_bias = torch.randn(4, 3, 2, 2), torch.randn(2, 3), torch.randn(2)
    with pytest.raises(TypeError, match=rf"gate_weight must be floating point .*got {dtype}"):
        pkg.functional.mode_norm(x, gate_weight.to(dtype), gate_bias, training=True)
    if not dtype.is_floating_point:
        return  # a Parameter cannot hold integers
    layer = pkg.ModeNorm2d(3, num_modes=2)
    layer.weight.data = layer.weight.data.to(dtype)
    with pytest.raises(TypeError, match=rf"weight must be floating point .*got {dtype}"):
        layer(x)


NOT_DENSE = {
    "sparse_coo": (lambda x: x.to_sparse(), "layout torch.sparse_coo"),
    "sparse_csr": (lambda x: x.flatten(1).to_sparse_csr(), "layout torch.sparse_csr"),
    "mkldnn": (lambda x: x.to_mkldnn(), "layout torch._mkldnn"),
    "nested": (lambda x: torch.nested.nested_tensor(list(x)), "a nested tensor"),
}


@pytest.mark.filterwarnings("ignore:.*(beta state|prototype stage):UserWarning")
@pytest.mark.parametrize("kind", NOT_DENSE)
@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d", "ModeNorm1d"])
def test_input_that_is_not_dense(pkg, cls, kind):
    """Sparse, MKL-DNN and nested inputs are named as such, not met by torch's errors from
    inside (a missing kernel, a reshape): in the layers and in the functional forms."""
    convert, named = NOT_DENSE[kind]
    x = convert(torch.randn(2, 3, 4, 4) if cls.endswith("2d") else torch.randn(2, 3))
    message = rf"expected a dense \(strided\) input, got {named}"
    with pytest.raises(TypeError, match=message):
        getattr(pkg, cls)(3)(x)
    with pytest.raises(TypeError, match=message):
        pkg.functional.mode_norm(x, torch.randn(2, 3), torch.randn(2), training=True)
    with pytest.raises(TypeError, match=message):
        pkg.functional.mode_group_norm(x, torch.randn(2, 1), torch.randn(2))


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1)])
def test_one_value_per_channel_in_training(pkg, shape):
    layer = pkg.ModeNorm(3)
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        layer(torch.randn(shape))
    layer.eval()
    assert layer(torch.randn(shape)).shape == shape  # eval uses running estimates


def test_one_value_per_channel_without_running_stats_even_in_eval(pkg):
    """Refused by the layer, named in the message, as in training."""
    layer = pkg.ModeNorm(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="ModeNorm: expected more than 1 value per channel"):
        layer(torch.randn(1, 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_features": 0}, "num_features"),
        ({"num_features": 2.5}, "num_features"),
        ({"num_modes": 0}, "num_modes"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-5}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"eps": None}, "eps must be > 0, got None"),
        ({"eps": "1e-5"}, "eps must be > 0, got '1e-5'"),
        ({"eps": np.array([1e-5])}, "eps must be a single number"),
        ({"eps": torch.tensor([1e-5, 1e-5])}, "eps must be a single number"),
        ({"momentum": 1.5}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"momentum": float("nan")}, "momentum"),
        ({"momentum": "0.1"}, "momentum must be a number in \\[0, 1\\] or None, got '0.1'"),
    ],
)
def test_constructor_arguments(pkg, kwargs, message):
    args = {"num_features": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        pkg.ModeNorm2d(**args)
    if "momentum" not in kwargs:
        with pytest.raises(ValueError, match=message):
            pkg.ModeGroupNorm2d(**args)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.int64, torch.complex64])
@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_constructor_dtype_not_covered(pkg, cls, dtype):
    """Refused by name, not met by torch's init errors (uniform_ has no float8 kernel)."""
    message = rf"dtype must be one of float16, bfloat16, float32, float64 \(or None\), got {dtype}"
    with pytest.raises(TypeError, match=message):
        getattr(pkg, cls)(4, dtype=dtype)


def test_constructor_takes_numbers_of_any_kind(pkg):
    """eps and momentum as numpy scalars or 0-d tensors, as BatchNorm takes them."""
    layer = pkg.ModeNorm2d(4, eps=np.float32(1e-3), momentum=torch.tensor(0.2))
    assert layer.eps == pytest.approx(1e-3) and float(layer.momentum) == pytest.approx(0.2)
    # eps is kept as a Python float, as the forwards pass it (not a tensor to read each call).
    assert (
        type(layer.eps) is float
        and type(pkg.ModeGroupNorm2d(4, eps=torch.tensor(0.5)).eps) is float
    )


def test_torch_jit_script_says_what_to_use_instead(pkg):
    """torch.jit.script cannot compile the layers: it says so, naming the alternatives."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), pkg.ModeNorm2d(4), pkg.ModeGroupNorm2d(4))
    with pytest.raises(RuntimeError, match="cannot compile ModeNorm2d; use torch.jit.trace"):
        torch.jit.script(model)


@pytest.mark.parametrize("saved_k, k", [(3, 2), (2, 3)])
@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_loading_state_dict_with_another_k(pkg, cls, saved_k, k):
    saved = getattr(mn_triton, cls)(4, num_modes=saved_k).state_dict()
    layer = getattr(pkg, cls)(4, num_modes=k)
    with pytest.raises(
        RuntimeError, match=f"saved with num_modes={saved_k}, but this layer has num_modes={k}"
    ):
        layer.load_state_dict(saved)


def test_loading_a_batch_norm_checkpoint_says_to_convert(pkg):
    """A BatchNorm model's checkpoint loaded into the converted model fails (the estimates
    are (C,), not (K, C)): the error says how to start from it. The way it names works."""
    bn_model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    with torch.no_grad():
        bn_model[1].running_mean.uniform_()
    checkpoint = bn_model.state_dict()
    mn_model = nn.Sequential(nn.Conv2d(3, 4, 1), pkg.ModeNorm2d(4))
    with pytest.raises(RuntimeError, match=r"ModeNorm2d at '1\.': the state_dict has a "
                       "running_var and no gate.weight, as a BatchNorm's; .* load it into "
                       "the model with its BatchNorms, then convert them with "
                       "mn_triton.convert_to_mode_norm"):  # fmt: skip
        mn_model.load_state_dict(checkpoint)
    bn_model.load_state_dict(checkpoint)
    converted = mn_triton.convert_to_mode_norm(bn_model)
    assert torch.equal(converted[1].running_mean, checkpoint["1.running_mean"].expand(2, 4))
    # A GroupNorm's state loads into ModeGroupNorm with strict=False (fresh gates), unasked.
    keys = pkg.ModeGroupNorm2d(4).load_state_dict(nn.GroupNorm(2, 4).state_dict(), strict=False)
    assert keys.missing_keys == ["gate.weight", "gate.bias"]


def test_functional_forms_have_the_same_signatures():
    """reference.functional is public too: its forms take mn_triton's arguments, with the
    same defaults (F.batch_norm's: training=False, momentum=0.1, eps=1e-5). A default that
    drifted (the reference training by default, say) changed no result the tests compare:
    they pass every argument."""
    for name in ("mode_norm", "mode_group_norm"):
        ours, theirs = getattr(reference.functional, name), getattr(F, name)
        assert inspect.signature(ours) == inspect.signature(theirs), name
    defaults = {"training": False, "momentum": 0.1, "eps": 1e-5}
    params = inspect.signature(reference.functional.mode_norm).parameters
    assert {key: params[key].default for key in defaults} == defaults
    assert inspect.signature(reference.functional.mode_group_norm).parameters["eps"].default == 1e-5


@pytest.mark.parametrize("F", [F, reference.functional], ids=["mn_triton", "reference"])
def test_estimates_with_a_stride_0_dim_of_size_1_are_trained(F):
    """Stride 0 shares memory only along a dim of more than one element: K = 1 estimates
    that are one row of an expanded (K', C) view (stride 0 along their dim of size 1) have
    one element each, are taken, and are trained in place (the refusal of an expanded view
    is for shared elements only)."""
    f64 = torch.float64
    x = torch.randn(4, 3, 2, 2, dtype=f64) * 2 + 1
    mean, mean_sq = torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64)
    gw, gb = torch.randn(1, 3, dtype=f64), torch.randn(1, dtype=f64)
    rows = mean.expand(2, 3)[:1], mean_sq.expand(2, 3)[:1]
    assert rows[0].stride() == rows[1].stride() == (0, 1)
    F.mode_norm(x, gw, gb, *rows, training=True, momentum=1.0)
    # K = 1: every gate is 1, so the mode's statistics are the batch's, as BatchNorm's.
    batch_mean, batch_var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    assert_close(mean, batch_mean, 1e-12, "running mean")
    assert_close(mean_sq, batch_var + batch_mean**2, 1e-12, "running mean sq")


@pytest.mark.parametrize("F", [F, reference.functional], ids=["mn_triton", "reference"])
def test_functional_argument_checks(F):
    """Both packages' functional forms refuse the same bad arguments, with the same messages
    (reference.functional is public too, with the same signatures)."""
    x = torch.randn(4, 3, 2, 2)
    gw, gb = torch.randn(2, 3), torch.randn(2)
    with pytest.raises(ValueError, match="gate_weight must have shape"):
        F.mode_norm(x, torch.randn(2, 4), gb, training=True)
    with pytest.raises(ValueError, match="gate_bias must have shape"):
        F.mode_norm(x, gw, torch.randn(3), training=True)
    with pytest.raises(ValueError, match="weight must have shape"):
        F.mode_norm(x, gw, gb, weight=torch.ones(4), training=True)
    with pytest.raises(ValueError, match="training=False needs running_mean"):
        F.mode_norm(x, gw, gb, training=False)
    with pytest.raises(ValueError, match="running_mean must have shape"):
        F.mode_norm(x, gw, gb, torch.zeros(3), torch.ones(3), training=False)
    with pytest.raises(ValueError, match="both running_mean and running_mean_sq"):
        F.mode_norm(x, gw, gb, torch.zeros(2, 3), None, training=True)
    with pytest.raises(TypeError, match="floating point"):
        F.mode_norm(x, gw.long(), gb, training=True)
    with pytest.raises(ValueError, match="eps must be > 0"):
        F.mode_norm(x, gw, gb, training=True, eps=0.0)
    with pytest.raises(ValueError, match=r"shape \(N, C, \*S\)"):
        F.mode_norm(torch.randn(3), gw, gb, training=True)
    with pytest.raises(ValueError, match="gate_weight must have shape"):
        F.mode_group_norm(x, gw, gb)
    with pytest.raises(ValueError, match="is on meta but the input is on cpu"):
        F.mode_group_norm(x, torch.randn(2, 1, device="meta"), gb)
    for eps in (0.0, -1e-5, float("nan")):
        with pytest.raises(ValueError, match="eps must be > 0"):
            F.mode_group_norm(x, torch.randn(2, 1), gb, eps=eps)
    with pytest.raises(TypeError, match="floating-point input"):
        F.mode_norm(x.long(), gw, gb, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.mode_norm(torch.randn(1, 3), gw, gb, training=True)
    with pytest.raises(TypeError, match="must have one dtype, got torch.float32 and torch.float64"):
        F.mode_norm(x, gw, gb, torch.zeros(2, 3), torch.ones(2, 3).double(), training=True)
    shared = torch.zeros(1, 3).expand(2, 3)  # every mode's estimate in one memory
    with pytest.raises(ValueError, match="running_mean has elements sharing memory"):
        F.mode_norm(x, gw, gb, shared, torch.ones(2, 3), training=True)
    F.mode_norm(x, gw, gb, shared, torch.ones(1, 3).expand(2, 3), training=False)  # read only
    one = torch.ones(2, 3)
    with pytest.raises(ValueError, match="must be two tensors"):
        F.mode_norm(x, gw, gb, one, one, training=True)
    stats = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="one-element tensor"):
        F.mode_norm(x, gw, gb, *stats, training=True, momentum=torch.tensor([0.0, 0.5, 1.0]))


def test_momentum_tensor_must_hold_one_value():
    """momentum=None's factor 1/num_batches_tracked travels as a tensor; any other tensor
    must hold exactly one value, and reaches the kernels as a 0-d tensor on x's device."""
    x = torch.randn(4, 3, 2, 2)
    gw, gb = torch.randn(2, 3), torch.randn(2)
    for bad in (torch.tensor([]), torch.tensor([0.1, 0.2])):
        with pytest.raises(ValueError, match="one-element tensor"):
            F.mode_norm(x, gw, gb, torch.zeros(2, 3), torch.ones(2, 3), training=True, momentum=bad)
    for given, dtype in ((torch.float16, torch.float32), (torch.float64, torch.float64)):
        checked = F._check_momentum(torch.tensor([[0.25]], dtype=given), x, "mode_norm")
        assert checked.shape == () and checked.dtype == dtype and checked.item() == 0.25
    assert F._check_momentum(1, x, "mode_norm") == 1.0
    buffers = [(torch.zeros(2, 3), torch.ones(2, 3)) for _ in range(2)]
    for momentum, (rm, rms) in zip((0.25, torch.tensor([0.25])), buffers, strict=True):
        F.mode_norm(x, gw, gb, rm, rms, training=True, momentum=momentum)
    assert torch.equal(buffers[0][0], buffers[1][0]) and torch.equal(buffers[0][1], buffers[1][1])


def test_no_kernel_runs_before_checks(monkeypatch):
    """Argument errors surface before anything reaches the custom ops."""
    from mn_triton import ops

    def boom(*args, **kwargs):
        raise AssertionError("an op ran before the arguments were checked")

    monkeypatch.setattr(ops, "mode_norm", boom)
    monkeypatch.setattr(ops, "mode_group_norm", boom)
    with pytest.raises(ValueError):
        mn_triton.ModeNorm2d(4)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError):
        mn_triton.ModeGroupNorm2d(4)(torch.randn(2, 3, 4, 4))


def test_triton_backend_on_cpu_without_interpreter_is_refused(monkeypatch):
    from mn_triton import backend

    monkeypatch.setattr(backend, "INTERPRETING", False)
    with mn_triton.use_backend("triton"), pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        mn_triton.ModeNorm2d(3)(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="backend must be one of"):
        mn_triton.set_backend("cuda")


@pytest.mark.parametrize("fn", [F.mode_norm, reference.functional.mode_norm],
                         ids=["mn_triton", "reference"])  # fmt: skip
def test_functional_momentum_none_names_the_argument(fn):
    """momentum=None (a cumulative average) needs the step count only the modules keep."""
    x, gw, gb = torch.randn(4, 3, 2, 2), torch.randn(2, 3), torch.randn(2)
    rm, rms = torch.zeros(2, 3), torch.ones(2, 3)
    for bad in (None, "0.1"):
        with pytest.raises(TypeError, match="momentum must be a number or a one-element tensor"):
            fn(x, gw, gb, rm, rms, training=True, momentum=bad)
    assert torch.equal(rm, torch.zeros(2, 3))  # refused before anything ran


@pytest.mark.parametrize("fn", [F.mode_norm, reference.functional.mode_norm],
                         ids=["mn_triton", "reference"])  # fmt: skip
def test_functional_momentum_outside_0_1_and_a_training_flag_not_bool(fn):
    """The functional forms refuse a numeric momentum outside [0, 1] (NaN made every running
    estimate NaN), and so the modules do one set after construction; and, as F.batch_norm,
    a `training` that is not a bool ("False", a string, trained). Nothing runs first."""
    x, gw, gb = torch.randn(4, 3, 2, 2), torch.randn(2, 3), torch.randn(2)
    rm, rms = torch.zeros(2, 3), torch.ones(2, 3)
    for bad in (float("nan"), -1.0, 1.5):
        with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
            fn(x, gw, gb, rm, rms, training=True, momentum=bad)
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="training must be a bool"):
            fn(x, gw, gb, rm, rms, training=bad, momentum=0.1)
    assert torch.equal(rm, torch.zeros(2, 3)) and torch.equal(rms, torch.ones(2, 3))
    layer = (mn_triton if fn is F.mode_norm else reference).ModeNorm2d(3)
    layer.momentum = float("nan")
    with pytest.raises(ValueError, match="momentum must be in"):
        layer(x)
    assert torch.equal(layer.running_mean, torch.zeros(2, 3))


@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_sizes_take_index_types_and_refuse_bool(pkg, cls):
    """As in torch.nn: numpy integers and other `__index__` types are sizes (stored as int);
    a bool is not."""
    layer = getattr(pkg, cls)(np.int64(5), num_modes=np.int32(3))
    assert type(layer.num_features) is int and type(layer.num_modes) is int
    assert tuple(layer.gate.weight.shape)[0] == 3 and tuple(layer.weight.shape) == (5,)
    assert getattr(pkg, cls)(torch.tensor(4)).num_features == 4
    for kwargs, name in (({"num_features": True}, "num_features"),
                         ({"num_features": 4, "num_modes": True}, "num_modes")):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name} must be a positive int, got the bool"):
            getattr(pkg, cls)(**kwargs)


@pytest.mark.parametrize("cls", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_lazily_negated_tensors_are_taken_at_their_values(cls, backend):
    """The kernels read raw memory: given a lazily negated x or dy they normalised −x (output
    off by up to 6), where the torch ops, the reference and BatchNorm see x."""
    layer = getattr(mn_triton, cls)(3)
    x, dy = negated_view((4, 3, 2, 2)), negated_view((4, 3, 2, 2))
    results = []
    for x_in, dy_in in ((x, dy), (x.resolve_neg(), dy.resolve_neg())):
        x_in = x_in.detach().requires_grad_()  # keeps the bit: a leaf view of the same memory
        assert x_in.is_neg() == (not results)
        y = layer(x_in)
        y.backward(dy_in)
        results.append((y, x_in.grad, layer.gate.weight.grad.clone()))
        layer.zero_grad()
    for negated, plain in zip(*results, strict=True):
        torch.testing.assert_close(negated, plain, rtol=0, atol=0)


def test_lazily_negated_running_estimates_are_refused_in_training_and_read_in_eval(backend):
    x = torch.randn(4, 3, 2, 2)
    gate_weight, gate_bias = torch.randn(2, 3), torch.randn(2)
    mean, mean_sq = negated_view((2, 3)), negated_view((2, 3)).abs() + 1.0
    with pytest.raises(ValueError, match=r"running_mean is a lazily negated view"):
        F.mode_norm(x, gate_weight, gate_bias, mean, mean_sq, training=True)
    y = F.mode_norm(x, gate_weight, gate_bias, mean, mean_sq, training=False)
    expected = F.mode_norm(x, gate_weight, gate_bias, mean.resolve_neg(), mean_sq, training=False)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
