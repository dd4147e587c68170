"""The yardstick itself: `reference` against SPEC §1–2 written out element by element."""

import math

import pytest
import torch
from torch import nn

import mn_triton
import reference
from helpers import TOLERANCE, assert_close, randomize, reference_twin


def _softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _brute_force_mode_norm(x, gw, gb, alpha, beta, eps, running=None):
    """SPEC §1, steps 1–4, one scalar at a time (running=(mean, mean_sq) for eval)."""
    n_, c_, l_ = len(x), len(x[0]), len(x[0][0])
    k_ = len(gw)
    m = [[sum(x[n][c]) / l_ for c in range(c_)] for n in range(n_)]
    v = [[sum((e - m[n][c]) ** 2 for e in x[n][c]) / l_ for c in range(c_)] for n in range(n_)]
    g = [_softmax([sum(gw[k][c] * m[n][c] for c in range(c_)) + gb[k] for k in range(k_)])
         for n in range(n_)]  # fmt: skip
    mu, var = [[0.0] * c_ for _ in range(k_)], [[0.0] * c_ for _ in range(k_)]
    for k in range(k_):
        for c in range(c_):
            if running is None:
                mass = sum(g[n][k] for n in range(n_))
                mu[k][c] = sum(g[n][k] * m[n][c] for n in range(n_)) / mass
                var[k][c] = sum(g[n][k] * (v[n][c] + (m[n][c] - mu[k][c]) ** 2)
                                for n in range(n_)) / mass  # fmt: skip
            else:
                mu[k][c] = running[0][k][c]
                var[k][c] = max(running[1][k][c] - mu[k][c] ** 2, 0.0)
    y = [[[alpha[c] * sum(g[n][k] * (e - mu[k][c]) / math.sqrt(var[k][c] + eps)
                          for k in range(k_)) + beta[c] for e in x[n][c]]
          for c in range(c_)] for n in range(n_)]  # fmt: skip
    f64 = torch.float64
    return torch.tensor(y, dtype=f64), torch.tensor(mu, dtype=f64), torch.tensor(var, dtype=f64)


def _brute_force_mode_group_norm(x, gw, gb, alpha, beta, eps):
    """SPEC §2, steps 1–4, one scalar at a time."""
    n_, c_, l_ = len(x), len(x[0]), len(x[0][0])
    k_ = len(gw)
    y = []
    for n in range(n_):
        m = [sum(x[n][c]) / l_ for c in range(c_)]
        v = [sum((e - m[c]) ** 2 for e in x[n][c]) / l_ for c in range(c_)]
        g = [_softmax([gw[k][0] * m[c] + gb[k] for k in range(k_)]) for c in range(c_)]
        mu, var = [], []
        for k in range(k_):
            mass = sum(g[c][k] for c in range(c_))
            mu.append(sum(g[c][k] * m[c] for c in range(c_)) / mass)
            var.append(sum(g[c][k] * (v[c] + (m[c] - mu[k]) ** 2) for c in range(c_)) / mass)
        y.append([[alpha[c] * sum((e - mu[k]) / math.sqrt(var[k] + eps) for k in range(k_))
                   / k_ + beta[c] for e in x[n][c]] for c in range(c_)])  # fmt: skip
    return torch.tensor(y, dtype=torch.float64)


def _params(layer):
    return [t.detach().double().tolist() for t in (layer.gate.weight, layer.gate.bias,
                                                   layer.weight, layer.bias)]  # fmt: skip


# eps = 1: against row variances of ~1–4, a wrong ε (1e-5, say) is plain in the output.
@pytest.mark.parametrize("eps", [1e-5, 1.0])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_mode_norm_matches_spec_formulas(training, eps):
    layer = reference.ModeNorm1d(3, num_modes=2, eps=eps, momentum=0.25).double()
    layer = randomize(layer)
    layer.train(training)
    old_mean, old_sq = layer.running_mean.clone(), layer.running_mean_sq.clone()
    x = torch.randn(4, 3, 5, dtype=torch.float64) * 2 + 1
    running = None if training else (old_mean.tolist(), old_sq.tolist())
    y, mu, var = _brute_force_mode_norm(x.tolist(), *_params(layer), layer.eps, running)
    assert_close(layer(x), y, 1e-12, "output")
    if training:  # running ← (1 − λ)·running + λ·batch, for ⟨x⟩ and ⟨x²⟩ = σ² + μ²
        assert_close(layer.running_mean, 0.75 * old_mean + 0.25 * mu, 1e-12, "running mean")
        expected_sq = 0.75 * old_sq + 0.25 * (var + mu**2)
        assert_close(layer.running_mean_sq, expected_sq, 1e-12, "running mean sq")


@pytest.mark.parametrize("eps", [1e-5, 1.0])
def test_mode_group_norm_matches_spec_formulas(eps):
    layer = randomize(reference.ModeGroupNorm1d(4, num_modes=3, eps=eps).double())
    x = torch.randn(2, 4, 5, dtype=torch.float64) * 2 + 1
    y = _brute_force_mode_group_norm(x.tolist(), *_params(layer), layer.eps)
    assert_close(layer(x), y, 1e-12, "output")


@pytest.mark.parametrize("k", [1, 3])
def test_collapsed_gates_give_batch_norm(k):
    """K = 1, or gates that ignore the input (uniform), is BatchNorm in training."""
    layer = reference.ModeNorm2d(4, num_modes=k).double()
    with torch.no_grad():
        layer.gate.weight.zero_()
    bn = nn.BatchNorm2d(4).double()
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64) * 3 - 2
    assert_close(layer(x), bn(x), 1e-12, "training output")


def test_mode_group_norm_k1_is_group_norm():
    layer = reference.ModeGroupNorm2d(6, num_modes=1).double()
    gn = nn.GroupNorm(1, 6).double()
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64) + 5
    assert_close(layer(x), gn(x), 1e-12, "output")


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_bounds_are_accepted(momentum):
    """λ = 0 keeps the running estimates and λ = 1 replaces them by the batch's, as in
    nn.BatchNorm: both ends of [0, 1] are valid, and the step is counted either way."""
    layer = randomize(reference.ModeNorm1d(3, num_modes=2, momentum=momentum).double())
    old_mean, old_sq = layer.running_mean.clone(), layer.running_mean_sq.clone()
    x = torch.randn(4, 3, 5, dtype=torch.float64) * 2 + 1
    _, mu, var = _brute_force_mode_norm(x.tolist(), *_params(layer), layer.eps)
    layer(x)
    assert layer.num_batches_tracked.item() == 1
    want_mean, want_sq = (old_mean, old_sq) if momentum == 0.0 else (mu, var + mu**2)
    assert_close(layer.running_mean, want_mean, 1e-12, "running mean")
    assert_close(layer.running_mean_sq, want_sq, 1e-12, "running mean sq")


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 3, 0)], ids=["no_samples", "no_positions"])
def test_empty_batch_leaves_running_estimates_alone(shape):
    """An empty batch has nothing to average: the step is counted, as BatchNorm counts it,
    but ⟨x⟩ and ⟨x²⟩ keep their values instead of becoming 0/0 = NaN."""
    layer = randomize(reference.ModeNorm1d(3, num_modes=2).double())
    old_mean, old_sq = layer.running_mean.clone(), layer.running_mean_sq.clone()
    assert layer(torch.randn(shape, dtype=torch.float64)).shape == shape
    assert layer.num_batches_tracked.item() == 1
    assert torch.equal(layer.running_mean, old_mean)
    assert torch.equal(layer.running_mean_sq, old_sq)


@pytest.mark.parametrize("package", [reference, mn_triton], ids=["reference", "mn_triton"])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_rows_without_values_give_zero_gradients(name, package):
    """Spatial size 0: no value reaches the output, so every gradient is 0, as BatchNorm's.
    The reference's gates once took the mean of no values (NaN), which the gates' gradients
    carried into the parameters (one optimizer step then made them NaN)."""
    layer = getattr(package, name)(3)
    x = torch.randn(2, 3, 0, 4, requires_grad=True)
    layer(x).sum().backward()
    for pname, param in layer.named_parameters():
        assert torch.equal(param.grad, torch.zeros_like(param)), pname


@pytest.mark.parametrize("package", [reference, mn_triton], ids=["reference", "mn_triton"])
def test_functional_forms_take_inputs_without_channels(package):
    """(N, 0, *S), as F.batch_norm and F.group_norm take it (the modules refuse 0 features);
    the reference once indexed the first channel for the row length."""
    x = torch.randn(4, 0, 2, 2)
    y = package.functional.mode_norm(x, torch.randn(2, 0), torch.randn(2), training=True)
    assert y.shape == x.shape
    assert package.functional.mode_group_norm(x, torch.randn(2, 1), torch.randn(2)).shape == x.shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_half_input_gives_output_in_the_input_dtype(name, dtype):
    """Statistics are computed in float32, but the output has the input's dtype (SPEC,
    notation), as on the fast path the reference is compared with."""
    layer = randomize(getattr(reference, name)(4, num_modes=2))
    x = (torch.randn(3, 4, 3, 3) * 2 + 1).to(dtype)
    expected = reference_twin(layer)(x.double())
    y = layer(x)
    assert y.dtype == dtype
    assert_close(y, expected, TOLERANCE[dtype], "output")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_layer_keeps_running_estimates_in_float32(dtype):
    """The reference shares the fast layers' rule (ModeNormBase._apply): a 16-bit layer
    keeps ⟨x⟩ and ⟨x²⟩ in float32, so eval at mean 300σ neither overflows nor cancels (its
    output as a float64 evaluation of the same layer on the same x: bfloat16 rounds x + 300
    to multiples of 2, whose spread is not 1), and 16-bit training updates float32
    estimates."""
    layer = reference.ModeNorm2d(3, num_modes=2, momentum=None)
    for _ in range(3):
        layer(torch.randn(8, 3, 4, 4) + 300)
    layer.to(dtype)
    assert layer.running_mean.dtype == layer.running_mean_sq.dtype == torch.float32
    x = (torch.randn(8, 3, 4, 4) + 300).to(dtype)
    layer(x)  # one more step, in 16 bits
    assert torch.isfinite(layer.running_mean_sq).all()
    y = layer.eval()(x)
    y64 = reference_twin(layer).eval()(x.double())
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert_close(y.double(), y64, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_half_input_at_a_large_offset_takes_float32_statistics(name, dtype):
    """16-bit input, statistics in float32 (SPEC, notation): at a mean of 300σ, sums and
    centred squares in 16 bits are far off a float64 evaluation of the same x (bfloat16
    rounds x + 300 to multiples of 2, whose spread is not 1: compared on the same x)."""
    layer = randomize(getattr(reference, name)(4, num_modes=2))
    x = (torch.randn(4, 4, 3, 3) + 300).to(dtype)
    expected = reference_twin(layer)(x.double())
    y = layer(x)
    assert y.dtype == dtype
    assert_close(y, expected, TOLERANCE[dtype], "output")


def test_float64_input_reads_float32_estimates_in_float64():
    """Statistics in float64 for float64 input (SPEC, notation), from a float32 layer's
    estimates too: eval's σ² = ⟨x²⟩ − μ² cancels at μ = 1000σ, where μ² in float32 is
    ~0.06 off (1.5 % of the output), and in float64 exact for float32 μ."""
    layer = randomize(reference.ModeNorm1d(3, num_modes=2)).eval()
    with torch.no_grad():
        layer.running_mean.add_(1000)
        spread = torch.rand_like(layer.running_mean, dtype=torch.float64) + 0.5
        layer.running_mean_sq.copy_(layer.running_mean.double() ** 2 + spread)
    x = torch.randn(4, 3, 5, dtype=torch.float64) + 1000
    assert_close(layer(x), reference_twin(layer)(x), 1e-12, "output")


def test_exports_every_layer_mn_triton_exports():
    """SPEC §4: both packages export the same classes; `from reference import *` gets each
    (a layer left out of __all__ imported by name still, and no test noticed)."""
    layers = {name for name in mn_triton.__all__ if name.startswith("Mode")}
    assert set(reference.__all__) == layers | {"functional"}
    namespace: dict = {}
    exec("from reference import *", namespace)
    for name in layers:
        assert namespace[name] is getattr(reference, name)
        assert namespace[name].__name__ == name


def test_mn_triton_exports_its_public_names():
    """SPEC §4's public names are in `mn_triton.__all__`, so `from mn_triton import *` gets
    them all (the test above only compares the layers with the reference's)."""
    public = {
        "ModeNorm", "ModeNorm1d", "ModeNorm2d", "ModeNorm3d",
        "ModeGroupNorm", "ModeGroupNorm1d", "ModeGroupNorm2d", "ModeGroupNorm3d",
        "SyncModeNorm", "convert_to_mode_norm", "update_bn", "functional",
        "get_backend", "set_backend", "use_backend",
    }  # fmt: skip
    assert set(mn_triton.__all__) == public
    namespace: dict = {}
    exec("from mn_triton import *", namespace)
    for name in public:
        assert namespace[name] is getattr(mn_triton, name)
