"""mn_triton.ModeGroupNorm* against the float64 oracle (the reference in float64), SPEC §2, §5."""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

import mn_triton
import reference
from helpers import (
    GATE_PARAMS,
    assert_close,
    batch_transposed,
    check_against_oracle,
    check_equals_native,
    embed,
    fast_layer,
    forward_backward,
    oracle_errors,
    randomize,
    reference_twin,
    spatially_permuted,
)
from test_mode_norm import _input, materialize_parent_first

LAYOUTS = {
    "nchw": ("ModeGroupNorm2d", (4, 5, 3, 3), 3, lambda t: t),
    "channels_last": (
        "ModeGroupNorm2d",
        (3, 6, 4, 5),
        2,
        lambda t: t.to(memory_format=torch.channels_last),
    ),
    "sliced_view": ("ModeGroupNorm2d", (3, 4, 6, 5), 2, lambda t: embed(t, (1, 2, 1, 0))),
    # H and W both sliced: rows are read through two strided levels (l // W, l % W).
    "sliced_in_h_and_w": ("ModeGroupNorm2d", (3, 4, 6, 5), 2, lambda t: embed(t, (1, 2, 1, 1))),
    "batch_channel_transposed": ("ModeGroupNorm1d", (5, 4, 6), 2, batch_transposed),
    "2d_input": ("ModeGroupNorm1d", (7, 6), 2, lambda t: t),
    "3d_input_odd_length": ("ModeGroupNorm1d", (3, 7, 11), 3, lambda t: t),
    "5d_input": ("ModeGroupNorm3d", (2, 3, 3, 4, 5), 2, lambda t: t),
    "5d_doubly_sliced": (
        "ModeGroupNorm3d",
        (2, 3, 3, 4, 5),
        2,
        lambda t: embed(t, (0, 0, 1, 2, 1)),
    ),
    "5d_dense_three_levels": ("ModeGroupNorm3d", (2, 3, 3, 4, 5), 2, spatially_permuted),
    "single_sample": ("ModeGroupNorm", (1, 5, 4, 4), 2, lambda t: t),
    "k1": ("ModeGroupNorm2d", (4, 3, 2, 3), 1, lambda t: t),
    "many_modes": ("ModeGroupNorm2d", (3, 5, 2, 2), 16, lambda t: t),
    # More modes than values per mode, K not a power of 2: K_PAD = 64 lanes, 14 of them padding.
    "huge_k": ("ModeGroupNorm2d", (3, 5, 2, 2), 50, lambda t: t),
    # Hundreds of modes, most with next to no gate mass: K_PAD = 512, 212 lanes of padding.
    "hundreds_of_modes": ("ModeGroupNorm2d", (3, 5, 2, 2), 300, lambda t: t),
}


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_matches_oracle_across_layouts(case, backend):
    name, shape, k, layout = LAYOUTS[case]
    layer = randomize(fast_layer(name, shape[1], num_modes=k))
    check_against_oracle(layer, _input(shape, layout))


@pytest.mark.parametrize("path,draws", [("torch", 150), ("triton", 50)])
def test_gate_gradients_over_many_draws(path, draws):
    """MGN's gate gradients (a 5-D layout) over many draws, on the torch ops and on the
    kernels: every one within its bound, and typically well inside float32's own error: the
    backward takes the rounding of μ and σ² out of g ⊙ ∂L/∂g, whose sum over channels is 0
    (mix.mode_group_norm_backward, kernels/mix._mgn_mix_backward_kernel). Without that, ours
    came out at a median 0.7× a float32 evaluation's error (0.25× with it), and
    MN_TEST_SEED=777 drew a gate bias gradient at 1.5× its bound."""
    name, shape, k, layout = LAYOUTS["5d_input"]
    ratios = []
    with mn_triton.use_backend(path):
        for _ in range(draws):
            layer = randomize(fast_layer(name, shape[1], num_modes=k))
            for e in oracle_errors(layer, _input(shape, layout)):
                assert e.within(), str(e)
                if e.what.removeprefix("grad of ") in GATE_PARAMS:
                    ratios.append(e.err / e.float32_err if e.float32_err > 0 else 0.0)
    median = sorted(ratios)[len(ratios) // 2]
    assert median < 0.5, f"gate gradients at a median {median:.2f}× float32's error"


@pytest.mark.parametrize("gate_bias", [True, False], ids=["gate_bias", "no_gate_bias"])
def test_eps_and_a_gate_without_bias_against_float64(gate_bias, backend):
    """ε = 1, plain in the output against variances of ~1–4 (every other test keeps the
    default 1e-5), and a gate without a bias (the kernels' HAS_GATE_BIAS=False branch): the
    functional form against the reference's in float64, and the layer against the oracle."""
    torch.manual_seed(0)
    c, k = 6, 3
    x = torch.randn(4, c, 3, 3) * 2 + 1
    gw, gb = torch.randn(k, 1), torch.randn(k) if gate_bias else None
    w, b, dy = torch.randn(c) * 0.5 + 1, torch.randn(c) * 0.5, torch.randn_like(x)

    def run(mode_group_norm, dtype: torch.dtype) -> list[torch.Tensor]:
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, w, b)]
        y = mode_group_norm(leaves[0], gw.to(dtype), None if gb is None else gb.to(dtype),
                            leaves[1], leaves[2], 1.0)  # fmt: skip
        y.backward(dy.to(dtype))
        return [y, *(t.grad for t in leaves)]

    names = ["output", "grad of input", "grad of weight", "grad of bias"]
    ours = run(mn_triton.functional.mode_group_norm, torch.float32)
    oracle = run(reference.functional.mode_group_norm, torch.float64)
    for name, got, want in zip(names, ours, oracle, strict=True):
        assert_close(got, want, 1e-5, name)
    check_against_oracle(randomize(mn_triton.ModeGroupNorm2d(c, num_modes=k, eps=1.0)), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_matches_oracle_across_dtypes(dtype, backend):
    params_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    layer = randomize(mn_triton.ModeGroupNorm2d(6, num_modes=3, dtype=params_dtype))
    check_against_oracle(layer, _input((4, 6, 5, 3), dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_whole_layer_in_16_bit(dtype, backend):
    """`layer.to(dtype)`, as with `model.half()`: statistics still in float32."""
    layer = randomize(mn_triton.ModeGroupNorm2d(6, num_modes=3)).to(dtype)
    check_against_oracle(layer, _input((3, 6, 5, 3), dtype=dtype))
    assert all(p.grad.dtype == dtype for p in layer.parameters())


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (2, 3, 40)], ids=["long_rows", "1d"])
def test_multi_tile_and_split_reductions(shape, tiny_tiles):
    with mn_triton.use_backend("triton"):
        check_against_oracle(randomize(mn_triton.ModeGroupNorm(shape[1], 3)), _input(shape))


def test_training_and_eval_compute_the_same_function(backend):
    layer = randomize(mn_triton.ModeGroupNorm2d(5, num_modes=3))
    x = _input((3, 5, 4, 4))
    y_train = layer.train()(x)
    y_eval = layer.eval()(x)
    assert torch.equal(y_train, y_eval)
    assert not any(name.startswith("running") for name, _ in layer.named_buffers())


def test_large_common_offset(backend):
    layer = randomize(mn_triton.ModeGroupNorm2d(5, num_modes=2), gate_scale=1e-4)
    check_against_oracle(layer, _input((4, 5, 6, 6), offset=1e4, scale=1.0))


def test_large_common_offset_with_steep_gates(backend):
    """1e5 + randn with gate slopes of order 1: the logits w_k·m + b_k are ~1e5. Their part
    common to the modes, max_k A_k, must leave the softmax over channels before ℓ is formed
    (mix._mgn_gates_and_weights): an ℓ of size 1e5 carries float32 rounding of ~4e-3, which
    moved the weights, the output and dx by 4e-5 to 4e-4 (~2e-7 with it taken out)."""
    layer = randomize(mn_triton.ModeGroupNorm2d(6, num_modes=3), gate_scale=1.0)
    check_against_oracle(layer, _input((6, 6, 5, 5), offset=1e5, scale=1.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_k1_equals_group_norm_with_one_group(dtype, backend):
    layer = randomize(mn_triton.ModeGroupNorm2d(6, num_modes=1, dtype=dtype))
    gn = nn.GroupNorm(1, 6, dtype=dtype)
    check_equals_native(layer, gn, _input((3, 6, 4, 5), dtype=dtype, offset=2.0))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_gradcheck_float64(layout, backend):
    layer = randomize(mn_triton.ModeGroupNorm2d(4, num_modes=3, dtype=torch.float64))
    x = torch.randn(2, 4, 2, 3, dtype=torch.float64) * 1.5 + 0.5
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    params = [layer.gate.weight, layer.gate.bias, layer.weight, layer.bias]
    inputs = [t.detach().clone().requires_grad_() for t in [x, *params]]

    def fn(x, gw, gb, w, b):
        return mn_triton.functional.mode_group_norm(x, gw, gb, w, b, eps=1e-5)

    # The formulas are checked in full on the torch path; the kernels (slow to interpret)
    # against random projections of the Jacobian (fast_mode), which any wrong entry fails.
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=backend == "triton")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf − inf
@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_sample_leaves_other_samples_alone(bad, backend):
    """Statistics are per sample: a NaN/inf in sample 1 must not reach samples 0 and 2."""
    layer = randomize(mn_triton.ModeGroupNorm2d(4, num_modes=2))
    x = _input((3, 4, 5, 5))
    clean = layer(x)
    x_bad = x.clone()
    x_bad[1, 2, 3, 1] = bad
    x_bad = x_bad.requires_grad_()
    y = layer(x_bad)
    assert torch.equal(y[0], clean[0]) and torch.equal(y[2], clean[2])
    assert not torch.isfinite(y[1]).all()
    dy = torch.randn_like(y)
    dy[1] = 0.0
    y.backward(dy)
    x_ok = x.clone().requires_grad_()
    layer(x_ok).backward(dy)
    assert torch.equal(x_bad.grad[0], x_ok.grad[0]) and torch.equal(x_bad.grad[2], x_ok.grad[2])


def test_mode_without_gate_mass_keeps_its_statistics(backend):
    """Mode 1 gets g = exp(-1e5) = 0 from every channel, in float32 and float64 alike. Its
    weights g / C_k are still defined (each channel's share of the mode), and the mode still
    enters the output, with weight 1/K: its statistics are those of the channels it would
    weigh, not 0 (with C_k clamped to a tiny number they were, and the mode's term was
    x/√ε, ~300× the rest). The split of the logits keeps the bias of -1e5 out of the
    weights' rounding, so the usual bounds hold."""
    layer = randomize(mn_triton.ModeGroupNorm2d(4, num_modes=3))
    with torch.no_grad():
        layer.gate.bias[1] = -1e5
    x = _input((3, 4, 3, 3)).requires_grad_()
    y = layer(x)
    y.backward(torch.randn_like(y))
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    assert y.abs().max() < 20  # no x/√ε term
    check_against_oracle(layer, _input((3, 4, 3, 3)))


@pytest.mark.parametrize("offset", [90.0, 200.0, 1000.0])
def test_mode_every_channel_shuns_is_smooth_and_differentiable(backend, offset):
    """Gate slopes (1, 0): at channel means ~offset, mode 1's gates are exp(-offset) in
    every channel, its mass C_1 = Σ_c g below float32's tiny from ~90 on (0 from ~104).
    Once C_1 was clamped to tiny there: μ_1 and σ²_1 came out ~0 and the output ~x/√ε/2
    (3e4 at 200), with a jump where C_1 crossed tiny (dx 28 % off float64 at 90), and the
    reference formulas, which create_graph=True and torch.func differentiate, gave NaN input
    gradients (inf·0 through the clamp). Now outputs and gradients hold the usual bounds,
    and those paths give finite gradients that agree with the plain backward."""
    layer = mn_triton.ModeGroupNorm2d(4)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([[1.0], [0.0]]))
        layer.gate.bias.zero_()
    x = _input((2, 4, 3, 3), offset=offset, scale=1.0)
    check_against_oracle(layer, x)
    x = x.requires_grad_()
    y = layer(x)
    assert y.abs().max() < 10
    (plain,) = torch.autograd.grad(y.sum(), x)
    (graph,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    params = dict(layer.named_parameters())
    func = torch.func.grad(lambda x: torch.func.functional_call(layer, params, (x,)).sum())(
        x.detach()
    )
    for what, grad in (("create_graph", graph), ("torch.func", func)):
        assert torch.isfinite(grad).all(), what
        # The reference formulas in float32 take log g, which carries the rounding of
        # logits as large as the offset (seen: 3e-4 at 1000).
        assert_close(grad, plain, max(1e-4, 1e-6 * offset), what)


@pytest.mark.parametrize(
    "bias",
    [[0.1, -float("inf"), 0.2], [1e4, 1e4 + 0.5, 1e4 - 0.7], [-3e4, -3e4, -3e4]],
    ids=["minus_inf", "large", "large_equal"],
)
def test_gate_biases_far_from_zero_or_infinite(bias, backend):
    """A mode with a bias of −inf, which every channel shuns outright: its weights are the
    limit, finite on every path (the reference formulas, which are the oracle and the path
    of create_graph=True and torch.func, once gave NaN: a softmax over channels of −inf).
    Biases of ±1e4 with a common part, which the softmax ignores: taken out first, its
    rounding (ulp(1e4) ≈ 1e-3 in float32) stays out of the weights (output 2e-5 off before)."""
    layer = randomize(mn_triton.ModeGroupNorm2d(6, num_modes=3))
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([[0.8], [-0.6], [0.3]]))
        layer.gate.bias.copy_(torch.tensor(bias))
    check_against_oracle(layer, _input((3, 6, 2, 2), offset=0.0, scale=1.0))


def test_saturated_gates(backend):
    """Mode 0's gate near 1 in every channel (a bias gap of 16). Each mode's weights are
    normalised over the channels, so the gate bias barely moves the output: its gradient is
    ~1e-8 here (float64), below float32's rounding of the terms it sums, and is judged like
    every gate gradient (within GATE_SLACK× the float32 reference's error). Output, input and
    gate-weight gradients stay as accurate as anywhere."""
    layer = randomize(mn_triton.ModeGroupNorm2d(4, num_modes=3))
    with torch.no_grad():
        layer.gate.weight.mul_(0.1)
        layer.gate.bias.copy_(torch.tensor([16.0, 0.0, -2.0]))
    x = _input((6, 4, 3, 3))
    check_against_oracle(layer, x)
    dy = torch.randn(6, 4, 3, 3)
    _, grads = forward_backward(layer, x, dy)
    _, grads_ref = forward_backward(reference_twin(layer), x.double(), dy.double())
    assert_close(grads["gate.weight"], grads_ref["gate.weight"], 1e-4, "grad of gate.weight")


def test_mode_dominated_by_one_channel(backend):
    """Features (L = 1) where one channel per sample lies far below the others and a strongly
    negative gate weight gives it mode 0 nearly alone: μ_0 ≈ that channel's value, σ²_0 tiny,
    so σ²'s gradient is huge and m − μ_0 is all rounding. The backward must keep the exactly-
    zero derivative of σ² in μ (which cancels μ's rounding, as autograd's chain does); without
    it, dx was off by up to 1e-2 in some samples. 100 samples: each is its own problem."""
    layer = randomize(mn_triton.ModeGroupNorm1d(5, num_modes=2))
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([[-4.0], [0.2]]))
    x = torch.randn(100, 5) * 2
    x[:, 1] = x.min(dim=1).values - 4.0 - torch.rand(100)
    check_against_oracle(layer, x)
    # Sample by sample too: a few bad samples barely move the error over the whole batch.
    dy = torch.randn(x.shape)
    _, grads = forward_backward(layer, x, dy)
    _, grads_ref = forward_backward(reference_twin(layer), x.double(), dy.double())
    dx, dx_ref = grads["input"].double(), grads_ref["input"]
    per_sample = (dx - dx_ref).norm(dim=1) / dx_ref.norm(dim=1)
    assert per_sample.max() <= 1e-4, f"worst sample's dx: relative error {per_sample.max():.1e}"


def test_mode_dominated_by_one_channel_pinned(backend):
    """One draw of the case above that lost 1% of dx (3 samples; rounded to 4 decimals)."""
    layer = mn_triton.ModeGroupNorm1d(5, num_modes=2)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([[-4.0], [0.2]]))
        layer.gate.bias.copy_(torch.tensor([0.2894, -0.6576]))
        layer.weight.copy_(torch.tensor([1.4773, 1.7283, 1.5713, 1.166, -0.5347]))
        layer.bias.copy_(torch.tensor([-0.1857, -0.0151, -0.5317, 0.0198, -1.1637]))
    x = torch.tensor([[-3.0219, -9.3105, 0.8954, -3.4558, -5.1206],
                      [0.5632, -6.2458, 4.2096, -1.9621, -0.6803],
                      [0.8336, -6.1827, 3.0007, -1.5731, -0.3219]])  # fmt: skip
    dy = torch.tensor([[0.1804, -0.817, -1.0725, 0.5292, 0.0812],
                       [-0.9474, -0.2609, -0.5338, 0.7162, -0.2575],
                       [-1.0958, -0.0749, 0.1045, -0.5765, -2.221]])  # fmt: skip
    _, grads = forward_backward(layer, x, dy)
    _, grads_ref = forward_backward(reference_twin(layer), x.double(), dy.double())
    assert_close(grads["input"], grads_ref["input"], 1e-5, "grad of input")


def test_mode_far_from_the_pivot_pinned(backend):
    """Sample 1: channel 0 lies far out (mode 0 nearly its alone), channels 1 and 2 a hair
    apart in mode 1. Formed from m − pivot (the pivot then being channel 0's value, 13
    away), their m − μ_1 carried 9× their own rounding, and dx lost 1.3e-5; each mode's
    deviations now come from a pivot of its own (and the sample's pivot is no longer
    channel 0's: mix._mgn_pivots). (tools/fuzz.py draw 112205, rounded to 4 decimals.)"""
    layer = mn_triton.ModeGroupNorm1d(4, num_modes=2)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([[-3.2021], [0.001]]))
        layer.gate.bias.copy_(torch.tensor([-0.282, 1.746]))
        layer.weight.copy_(torch.tensor([1.2507, 0.9967, 1.2141, 1.0155]))
        layer.bias.copy_(torch.tensor([-0.0485, -0.1994, -0.5545, -1.0032]))
    x = torch.tensor([[-13.4175, 1.4746, -1.8613, -0.9274],
                      [-11.4847, 1.4606, 1.4715, -3.1849],
                      [-9.3468, -3.3703, -0.5297, 6.0485],
                      [-7.9345, -0.8657, 0.5748, 2.3051]])  # fmt: skip
    dy = torch.tensor([[-0.3113, -0.713, -0.7291, -0.2992],
                       [-0.2529, -0.3602, 0.9394, 1.1614],
                       [-0.1706, 0.0149, -0.0476, 0.548],
                       [-1.2491, 0.3195, 0.5945, 1.0562]])  # fmt: skip
    y, grads = forward_backward(layer, x, dy)
    y_ref, grads_ref = forward_backward(reference_twin(layer), x.double(), dy.double())
    # A float32 evaluation of the reference loses ~1e-6 of the output and 1.4e-6 of dx here;
    # our paths 1.8e-6 and 3.3e-6: the weights of mode 1 come from logits ~35 apart, and
    # float32 rounds those at ~2e-6 whichever way they are formed (6e-8 and 2e-7 before the
    # biases' common part was taken out first: a different rounding, not a better one; over
    # 3000 random MGN draws both ways give the same error distribution).
    assert_close(y, y_ref, 4e-6, "output")
    assert_close(grads["input"], grads_ref["input"], 4e-6, "grad of input")


@pytest.mark.parametrize("shape", [(2, 5, 16), (4, 5)], ids=["rows", "features"])
def test_an_outlying_first_channel_is_no_pivot(backend, shape):
    """Channel 0's first value lies 1e6 from the rest: as each sample's pivot (its shift,
    the pivot before), every other channel's m − p rounded at 1e6's ulp, which reached their
    gates: dx off by 3e-2, where a float32 evaluation of the reference loses 2e-7. The pivot
    is now the shift nearest 0 of a sample's shifts (mix._mgn_pivots and
    kernels/mix._mgn_pivot: test_kernels.py), with the other channels here; any gates."""
    torch.manual_seed(3)
    layer = randomize(mn_triton.ModeGroupNorm1d(5, num_modes=3), gate_scale=3.0)
    x = torch.randn(shape)
    x[(slice(None), 0) + (0,) * (len(shape) - 2)] = 1e6  # the outlier: channel 0's shift
    check_against_oracle(layer, x)
    if len(shape) == 3:  # the same values in the middle of channel 0: never a pivot
        check_against_oracle(layer, x.roll(5, dims=2))


@pytest.mark.parametrize(("far", "spread"), [(1e4, 1.0), (1e6, 0.01)])
@pytest.mark.parametrize("shape", [(3, 6, 16), (4, 6)], ids=["rows", "features"])
def test_channels_in_two_far_clusters_keep_their_digits(backend, shape, far, spread):
    """Four channels at 1e4, two near 0, every sample (or 1e6 and 0.01 apart). As the pivot,
    the shift nearest the mean of the shifts lay with the far four, and the near channels'
    m − p rounded at 1e4's ulp, into their gates, the soft ones (the far channels' logits
    lie ~1e4 apart): y off by 1e-5 to 2e-3 and dx up to 2.5e-4, both paths, where a
    float32 evaluation of the reference loses ~1e-7. The pivot is now the shift nearest 0
    (mix._mgn_pivots), with the near two."""
    layer = randomize(mn_triton.ModeGroupNorm1d(6, num_modes=3), gate_scale=3.0)
    x = torch.randn(shape) * spread
    x[:, :4] += far
    check_against_oracle(layer, x)


def test_affine_false(backend):
    layer = randomize(mn_triton.ModeGroupNorm2d(4, num_modes=2, affine=False))
    check_against_oracle(layer, _input((3, 4, 3, 3)))


def test_state_dict_moves_between_reference_and_fast_path(backend):
    fast = randomize(mn_triton.ModeGroupNorm2d(5, num_modes=3))
    ref = reference.ModeGroupNorm2d(5, num_modes=3)
    assert set(fast.state_dict()) == set(ref.state_dict()) == {
        "weight", "bias", "gate.weight", "gate.bias"
    }  # fmt: skip
    ref.load_state_dict(fast.state_dict())
    fast2 = mn_triton.ModeGroupNorm2d(5, num_modes=3)
    fast2.load_state_dict(ref.state_dict())
    x = _input((4, 5, 3, 3))
    assert_close(fast2(x), ref(x), 1e-5, "output after the round trip")


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4)])
def test_empty_input(shape, backend):
    layer, gn = mn_triton.ModeGroupNorm2d(3), nn.GroupNorm(1, 3)
    x1, x2 = torch.randn(shape, requires_grad=True), torch.randn(shape, requires_grad=True)
    y1, y2 = layer(x1), gn(x2)
    assert y1.shape == y2.shape == shape
    y1.sum().backward()
    y2.sum().backward()
    assert torch.equal(layer.bias.grad, gn.bias.grad)
    # GroupNorm's weight gradient is 0/0 = NaN when L = 0; nothing was scaled, so ours is 0.
    assert torch.equal(layer.weight.grad, torch.zeros(3))


@pytest.mark.parametrize("pkg", [mn_triton, reference], ids=["mn_triton", "reference"])
def test_deferred_initialisation(pkg):
    """Parent-first `reset_parameters` after `to_empty`, as FSDP runs it: the gate keeps
    nn.Linear's default init (SPEC §2; fan-in 1, so weight and bias in [-1, 1])."""
    with torch.device("meta"):
        layer = pkg.ModeGroupNorm2d(6, num_modes=8)
    materialize_parent_first(nn.Sequential(layer))
    for t in (layer.gate.weight, layer.gate.bias):
        assert torch.isfinite(t).all() and (t.abs() <= 1).all() and t.std() > 0.1
    assert torch.equal(layer.weight, torch.ones(6)) and torch.equal(layer.bias, torch.zeros(6))
    assert type(layer.gate).reset_parameters is nn.Linear.reset_parameters


@pytest.mark.parametrize("pkg", [mn_triton, reference], ids=["mn_triton", "reference"])
def test_initialisation(pkg):
    """A new layer's affine map is the identity (weight 1, bias 0), as GroupNorm's; the
    gate keeps nn.Linear's init (SPEC §2)."""
    layer = pkg.ModeGroupNorm2d(6, num_modes=3)
    assert torch.equal(layer.weight, torch.ones(6)) and torch.equal(layer.bias, torch.zeros(6))
    for t in (layer.gate.weight, layer.gate.bias):
        assert torch.isfinite(t).all() and (t.abs() <= 1).all()


def test_repr():
    layer = mn_triton.ModeGroupNorm2d(8, num_modes=4)
    assert repr(layer).startswith("ModeGroupNorm2d(\n  8, num_modes=4, eps=1e-05, affine=True")
    assert tuple(layer.gate.weight.shape) == (4, 1)


def test_more_modes_than_the_mix_kernels_take(backend, monkeypatch):
    """Past kernels.mix.MAX_MODES the mix runs in torch ops between the kernel passes over x:
    the two paths must meet on the same statistics (here with the limit lowered to 4)."""
    from mn_triton.kernels import mix as kernel_mix

    monkeypatch.setattr(kernel_mix, "MAX_MODES", 4)
    layer = randomize(fast_layer("ModeGroupNorm2d", 5, num_modes=6))
    check_against_oracle(layer, _input((3, 5, 2, 3)))
