"""The real kernels on a CUDA device (skipped elsewhere). Run on a GPU machine with

    TRITON_INTERPRET=0 python -m pytest tests -m gpu

(benchmarks/gpu_run.sh does). Accuracy against the float64 oracle, torch.compile and CUDA
graphs without host synchronisation, and tensors of more than 2³¹ elements.
"""

import copy

import pytest
import torch
import torch.distributed as dist
from test_double_backward import _penalty_grads
from test_kernels import check_mgn_pivots
from test_sync import _process_group_of_one, check_group_of_one_matches_mode_norm
from torch import nn
from torch._dynamo.utils import counters

import mn_triton
from helpers import (
    GATE_SLACK,
    TOLERANCE,
    assert_close,
    check_against_oracle,
    forward_backward,
    randomize,
    reference_twin,
    rel_err,
)
from mn_triton import backend as mn_backend
from mn_triton import ops

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = "cuda"


def _on_gpu(layer: nn.Module) -> nn.Module:
    return layer.to(CUDA)


def _input(shape, dtype=torch.float32, channels_last=False, offset=1.0):
    x = torch.randn(shape, device=CUDA) * 2 + offset
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x.to(dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_matches_oracle(layer, channels_last, dtype, training):
    module = _on_gpu(randomize(getattr(mn_triton, layer)(24, num_modes=3))).train(training)
    x = _input((16, 24, 13, 11), dtype, channels_last)
    _oracle_on_cpu(module, x)


def _oracle_on_cpu(module: nn.Module, x: torch.Tensor) -> None:
    """check_against_oracle with the oracle's data on the CPU (it allocates K·|x|)."""
    dy = torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
    twin = reference_twin(module.cpu()).double()
    module.to(CUDA)
    module.zero_grad()
    xg = x.detach().requires_grad_()
    y = module(xg)
    y.backward(dy.to(CUDA))
    xc = x.detach().cpu().double().requires_grad_()
    y_ref = twin(xc)
    y_ref.backward(dy.double())
    tol = TOLERANCE[x.dtype]
    assert_close(y.cpu(), y_ref, tol, "output")
    assert_close(xg.grad.cpu(), xc.grad, tol, "grad of input")
    for name, p in module.named_parameters():
        if "gate" not in name:  # gate gradients: see helpers.check_against_oracle
            assert_close(p.grad.cpu(), dict(twin.named_parameters())[name].grad, tol, name)


@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_float64_end_to_end(layer):
    """float64 to 1e-10, running estimates included: eps, momentum and 1/L must reach the
    compiled kernels as float64 (a plain Python float argument would be float32)."""
    module = randomize(getattr(mn_triton, layer)(24, num_modes=3, dtype=torch.float64))
    twin = reference_twin(module)
    module = _on_gpu(module)
    x = _input((16, 24, 13, 11), torch.float64)
    _oracle_on_cpu(module, x)
    twin(x.cpu())
    for name, buffer in twin.named_buffers():
        assert_close(module.get_buffer(name).cpu(), buffer, 1e-10, name)


# (32, 3): a 2-D input. Not (2, 3): two samples of one value per row give statistics so badly
# conditioned that dx misses float64 by more than 1e-5 in ~40 % of draws, on every path.
# (8192, 24) and (4096, 64): many samples of few features, split into blocks by MN's mix
# kernels (kernels/mix.SPLIT_MIN_ROWS), with one channel block and with two; (8192, 512):
# 16 channel blocks, whose shares of the backward's gate sums are summed first
# (kernels/mix.GATE_PARTIALS_SUM_MIN).
@pytest.mark.parametrize(
    "shape",
    [(256, 64, 8, 8), (4, 64, 56, 56), (128, 512, 7, 7), (32, 3), (8192, 24), (4096, 64),
     (8192, 512)],
)  # fmt: skip
def test_layer_shapes(shape):
    module = _on_gpu(randomize(mn_triton.ModeNorm(shape[1], num_modes=2)))
    _oracle_on_cpu(module, _input(shape))


def test_large_offset():
    module = _on_gpu(randomize(mn_triton.ModeNorm2d(16, num_modes=2), gate_scale=1e-4))
    _oracle_on_cpu(module, _input((32, 16, 20, 20), offset=1e4))


# (N, C, L, K): every block shape [BLOCK_N, K_PAD, BLOCK_C] that kernels/mix._mn_blocks gives
# at K ≤ 8 and 16 or 32 channel blocks, whose blocks of ≥ 16 samples once compiled wrong
# ([8, 2, 32] at (256, 64), [4, 4, 32], [2, 8, 32], [4, 8, 16], [8, 1, 32], [8, 2, 16],
# [8, 4, 16], [8, 1, 16]; [8, 1, 8] beside them), the shared-gates kernel (512 channels), and
# samples split (8192 × 24).
GPU_MIX_CASES = [
    (16, 24, 143, 3), (256, 64, 64, 2), (128, 512, 49, 2), (64, 8, 16, 1), (128, 16, 64, 8),
    (128, 120, 1, 6), (8192, 24, 1, 2), (128, 64, 16, 1), (32, 16, 400, 2), (64, 16, 16, 4),
    (128, 16, 16, 1),
]  # fmt: skip


def _mix_case(n: int, c: int, length: int, k: int) -> tuple[tuple, dict]:
    x = torch.randn(n, c, length, device=CUDA) * 2 + 1
    stats = mn_triton.backend._row_moments_torch(x, torch.float32)
    dy = torch.randn_like(x)
    sums = mn_triton.backend._row_grad_sums_torch(x, dy, stats[0])
    p = {"gw": torch.randn(k, c), "gb": torch.randn(k), "w": torch.randn(c) * 0.5 + 1,
         "b": torch.randn(c) * 0.5, "rm": torch.randn(k, c)}  # fmt: skip
    p["rms"] = p["rm"] ** 2 + torch.rand(k, c) + 0.5
    return (*stats, *sums), {key: v.to(CUDA) for key, v in p.items()}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("n, c, length, k", GPU_MIX_CASES)
def test_mode_norm_mix_kernels_match_the_torch_mix(n, c, length, k, training):
    """The compiled MN mix kernels against the torch-op mix evaluated in float64, on the
    same float32 row statistics: forward coefficients and mode statistics, backward
    coefficients and parameter gradients, the backward computing the statistics and gates
    again and taking those the forward kept (as the layers do). (The interpreter runs the
    same check, tests/test_kernels.py; a compiler can still get a kernel wrong.)"""
    from mn_triton import mix
    from mn_triton.kernels import mix as kernels

    (shift, md, var, sum_dy, sum_dy_xs), p = _mix_case(n, c, length, k)
    p64 = {key: v.double() for key, v in p.items()}

    def forward_args(stats, q):
        return (*stats, q["gw"], q["gb"], q["w"], q["b"], q["rm"].clone(), q["rms"].clone(),
                training, 1e-5)  # fmt: skip

    def backward_args(stats, q):
        return (*stats[3:], length, *stats[:3], q["gw"], q["gb"], q["w"], q["rm"], q["rms"],
                training, 1e-5)  # fmt: skip

    stats = (shift, md, var, sum_dy, sum_dy_xs)
    stats64 = tuple(t.double() for t in stats)
    coeffs, mode_stats = mix.mode_norm_forward(*forward_args(stats64[:3], p64))
    scale, bias, mode_mean, mode_var = kernels.mode_norm_forward(*forward_args(stats[:3], p))
    expected = (coeffs.scale, coeffs.bias, mode_stats.absolute_mean(), mode_stats.var)
    outputs = (scale, bias, mode_mean, mode_var)
    for what, g, w in zip(
        ("scale", "bias", "mode mean", "mode var"), outputs, expected, strict=True
    ):
        assert_close(g.cpu(), w.cpu(), 1e-5, what)
    kept, gates = torch.empty(k + 3 * k * c, device=CUDA), torch.empty(n, k, device=CUDA)
    kernels.mode_norm_forward(*forward_args(stats[:3], p), stats_out=kept, gates_out=gates)
    want = mix.mode_norm_backward(*backward_args(stats64, p64))
    recomputed = kernels.mode_norm_backward(*backward_args(stats, p))
    given = kernels.mode_norm_backward(
        *backward_args(stats, p), stats=kept if training else None, gates=gates
    )
    float32 = mix.mode_norm_backward(*backward_args(stats, p))  # the torch-op mix's own rounding
    names = ("dy_scale", "x_scale", "bias", "gate weight", "gate bias", "weight", "bias param")
    fields = mix.MixGrads._fields  # (dy_scale, x_scale, row_bias, …, bias_param), in order
    checks = [
        (f"{what} ({how})", field, g)
        for how, got in (("recomputed", recomputed), ("kept", given))
        for what, field, g in zip(names, fields, got, strict=True)
    ]
    for what, field, g in checks:
        w = getattr(want, field)
        if k == 1 and (what.startswith("gate") or (what.startswith("bias (") and not training)):
            # One mode: the gates are 1 whatever the gate computes, so these are sums of
            # terms that cancel exactly: float32 leaves rounding, float64 leaves ~0.
            bound = 1e-6 * (want.dy_scale.abs().max() * sum_dy.abs().max()).item()
            assert g.abs().max().item() <= bound, (
                f"{what}: {g.abs().max().item():.2e} > {bound:.2e}"
            )
            continue
        # float32 against float64, where a block computed wrong misses by more than 0.5: as in
        # helpers.oracle_errors, within 1e-4 or GATE_SLACK× the float32 torch-op mix's own
        # error, whichever is larger. The row bias of dx (a difference of gate terms) and the
        # gate gradients cancel: 2.1e-5 seen on an H200 at (16, 24) K = 3 eval, 1.7e-4 in the
        # interpreter at (32, 16) K = 2 eval, 3.5e-4 for the gate weight there in training.
        bound = max(1e-4, GATE_SLACK * rel_err(getattr(float32, field), w))
        assert_close(g.cpu(), w.cpu(), bound, what)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mgn_pivots_match_the_torch_mix(dtype):
    """The compiled _mgn_pivot chooses as mix._mgn_pivots, the first of equals within a
    block included (the interpreter's argmin takes the first whatever tie_break_left says)."""
    check_mgn_pivots(CUDA, dtype)


@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_full_oracle_check_small(layer):
    """Every gradient, gate parameters included, and the running estimates."""
    module = _on_gpu(randomize(getattr(mn_triton, layer)(5, num_modes=3)))
    check_against_oracle(module, _input((4, 5, 3, 3)))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("layer", ["ModeNorm1d", "ModeGroupNorm1d"])
def test_rows_of_one_element(layer, training):
    """(N, C) float32 features, such as LeNet's fully connected layers: the path without
    passes over x (backend.POINT_ROWS; the mix kernels with no mean deviations, variances or
    coefficients of x − s, dx as one torch op), compiled and run, against float64, every
    gradient and the running estimates; 120 channels: four channel blocks of the MN mix."""
    module = _on_gpu(randomize(getattr(mn_triton, layer)(120, num_modes=6))).train(training)
    x = _input((64, 120))
    assert mn_backend.point_rows(x, module.gate.weight)
    check_against_oracle(module, x)


@pytest.mark.parametrize("kind", ["float16", "bfloat16", "transposed"])
@pytest.mark.parametrize("layer", ["ModeNorm1d", "ModeGroupNorm1d"])
def test_16_bit_and_transposed_rows_of_one_element(layer, kind):
    """16-bit and transposed (N, C) features take the same path on float32 copies of x and
    dy (backend.as_rows), y and dx cast back (rows_like): compiled and run, against float64
    within their dtype's tolerance, y laid out as x."""
    module = _on_gpu(randomize(getattr(mn_triton, layer)(120, num_modes=6)))
    x = _input((64, 120))
    x = x.t().contiguous().t() if kind == "transposed" else x.to(getattr(torch, kind))
    assert mn_backend.point_rows(x, module.gate.weight)
    assert module(x).stride() == x.stride()
    _oracle_on_cpu(module, x)


@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_hundreds_of_modes(layer):
    """K = 300 (K_PAD = 512): the mix kernels far past the paper's K, compiled."""
    module = _on_gpu(randomize(getattr(mn_triton, layer)(5, num_modes=300)))
    check_against_oracle(module, _input((3, 5, 2, 2)))


@pytest.mark.skipif(not dist.is_nccl_available(), reason="needs NCCL")
@pytest.mark.parametrize("gates", ["inline", "computed_once", "computed_once_samples_split"])
def test_synchronising_path_in_a_group_of_one(gates, monkeypatch):
    """SyncModeNorm's own kernels (statistics, merge, the forward from given statistics, the
    backward in two launches around the all_reduce) compiled and run, over NCCL; also with
    the gates computed once and passed along (C = 40: two channel blocks), and with the
    samples split into blocks as well."""
    from mn_triton.kernels import mix as kernel_mix

    if gates != "inline":
        monkeypatch.setattr(kernel_mix, "GATES_KERNEL_MIN_ELEMENTS", 0)
    if gates == "computed_once_samples_split":
        monkeypatch.setattr(kernel_mix, "SPLIT_MIN_ROWS", 2)
        monkeypatch.setattr(kernel_mix, "GATE_PARTIALS_SUM_MIN", 0)
    check_group_of_one_matches_mode_norm(CUDA, "nccl")


@pytest.mark.skipif(not dist.is_nccl_available(), reason="needs NCCL")
def test_synchronising_layer_as_mode_norm(monkeypatch):
    """SyncModeNorm's own forward over NCCL (a group of one, taken as synchronising), as
    ModeNorm2d on the same data: output, gradients and buffers over two steps. The test
    above calls the Function; this runs the layer's part on CUDA too: the running estimates'
    update weighted on the device by whether any process held a sample (a CUDA bool times
    the momentum, a tensor lerp_ weight), and inputs without elements, whose kernels get
    zero-size tensors (null pointers) and leave the estimates as ModeNorm does. One test and
    one process group for the three inputs: each group's NCCL set-up costs GPU-session time."""
    monkeypatch.setattr(mn_triton.SyncModeNorm, "_synchronising", lambda self: self.training)
    with _process_group_of_one("nccl"):
        for what, shape in (("batch", (6, 40, 4, 3)), ("no samples", (0, 40, 4, 3)),
                            ("no positions", (2, 40, 0, 3))):  # fmt: skip
            single = _on_gpu(randomize(mn_triton.ModeNorm2d(40, num_modes=3)))
            sync = _on_gpu(mn_triton.SyncModeNorm(40, num_modes=3))
            sync.load_state_dict(single.state_dict())
            for step in range(2):
                x = torch.randn(shape, device=CUDA) * 2 + 3
                dy = torch.randn_like(x)
                y, grads = forward_backward(single, x, dy)
                y_sync, grads_sync = forward_backward(sync, x, dy)
                at = f"{what}, step {step}"
                assert_close(y_sync, y, 1e-6, f"{at}: output")
                assert grads_sync.keys() == grads.keys()
                for name, grad in grads.items():
                    assert_close(grads_sync[name], grad, 1e-5, f"{at}: grad of {name}")
                for name, value in single.state_dict().items():
                    got = sync.state_dict()[name].double()
                    assert_close(got, value.double(), 1e-5, f"{at}: {name}")


@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_second_order_gradients(layer):
    """A gradient penalty (backward with create_graph=True) on CUDA against the float64
    reference on the CPU: tests/test_double_backward.py's check, with the real kernels."""
    module = randomize(getattr(mn_triton, layer)(5, num_modes=2), gate_scale=2.0)
    oracle = reference_twin(module)
    x = torch.randn(6, 5, 3, 3) * 1.5 + torch.randn(6, 5, 1, 1)
    grads = _penalty_grads(_on_gpu(module), x.to(CUDA))
    expected = _penalty_grads(oracle, x.double())
    for what, g in grads.items():
        assert_close(g.cpu(), expected[what], 1e-3, f"second-order grad of {what}")


@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_no_host_synchronisation(layer):
    module = _on_gpu(getattr(mn_triton, layer)(32, num_modes=2))
    x = _input((8, 32, 16, 16)).requires_grad_()
    module(x).sum().backward()  # warm-up: compile the kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        module(x).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("layer", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_layer_on_a_device_that_is_not_the_current_one(layer):
    """A model on cuda:1 while cuda:0 is current (no torch.cuda.set_device): the launches
    go to cuda:1 and compute what the same layer computes on cuda:0."""
    torch.cuda.set_device(0)
    module = randomize(getattr(mn_triton, layer)(8, num_modes=2))
    x = torch.randn(4, 8, 5, 5) * 2 + 1
    results = []
    for device in ("cuda:0", "cuda:1"):
        twin = copy.deepcopy(module).to(device)
        x_dev = x.to(device).requires_grad_()
        y = twin(x_dev)
        y.square().sum().backward()
        results.append([t.cpu() for t in (y, x_dev.grad, *[p.grad for p in twin.parameters()])])
    for got, expected in zip(results[1], results[0], strict=True):
        assert_close(got, expected, 1e-6)


@pytest.mark.slow
def test_long_channels_last_rows():
    """More than 65535 tiles of 16 positions per row (channels_last, 128 channels): CUDA
    limits a grid's second and third axes to 65535 programs, so the kernels use one axis."""
    c, h, w = 128, 1040, 1040
    x = _input((1, c, h, w), torch.float16, channels_last=True)
    layer, bn = _on_gpu(mn_triton.ModeNorm2d(c, num_modes=1)), _on_gpu(nn.BatchNorm2d(c))
    assert_close(layer(x).float(), bn(x).float(), TOLERANCE[torch.float16], "K=1 vs BatchNorm2d")


@pytest.mark.slow
def test_more_than_2_pow_31_elements():
    """64-bit offsets for real: N·C·L > 2³¹ in float16 (about 4.3 GB per tensor)."""
    free, _ = torch.cuda.mem_get_info()
    if free < 40 * 2**30:
        pytest.skip("needs ~40 GiB of free GPU memory")
    n, c, h, w = 33, 64, 1024, 1024  # 2.21e9 elements
    x = torch.randn(n, c, h, w, device=CUDA, dtype=torch.float16).requires_grad_()
    layer = _on_gpu(mn_triton.ModeNorm2d(c, num_modes=1))
    bn = _on_gpu(nn.BatchNorm2d(c))
    y = layer(x)
    with torch.no_grad():
        y_bn = bn(x)
        err = ((y.float() - y_bn.float()).norm() / y_bn.float().norm()).item()
    assert err <= TOLERANCE[torch.float16], f"K=1 vs BatchNorm2d: {err:.2e}"
    del y_bn
    # The last samples (offsets past 2³¹) against the formula evaluated on them directly.
    var, mean = torch.var_mean(x.detach(), dim=(0, 2, 3), correction=0)  # fp32 accumulation
    tail = x.detach()[-2:].float()
    expected = (tail - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
    assert_close(y.detach()[-2:].float(), expected, TOLERANCE[torch.float16], "last samples")
    y.backward(y.detach())  # the gradient of ½‖y‖²: non-trivial, and no extra memory
    assert torch.isfinite(x.grad[-2:]).all()
    assert x.grad[-1].float().abs().sum() > 0


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_a_cuda_graph_of_eager_calls_replays_them(training):
    """torch.cuda.graph around eager ModeNorm2d calls (forward and backward), captured after
    a warm-up, replays what eager calls compute on new data: eager calls keep their blocks
    under capture (no kernel is first loaded there, which CUDA would refuse)."""
    module = _on_gpu(randomize(mn_triton.ModeNorm2d(16, num_modes=2), gate_scale=2.0))
    module.train(training)
    twin = copy.deepcopy(module)
    static_x = torch.randn(64, 16, 5, 5, device=CUDA, requires_grad=True)
    static_dy = torch.randn_like(static_x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            module(static_x).backward(static_dy)
    torch.cuda.current_stream().wait_stream(side)
    module.zero_grad(set_to_none=True)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = module(static_x)
        static_y.backward(static_dy)
    x = torch.randn(64, 16, 5, 5, device=CUDA) * 2 + 1
    dy = torch.randn_like(x)
    with torch.no_grad():
        static_x.copy_(x)
        static_dy.copy_(dy)
    graph.replay()
    x_e = x.clone().requires_grad_()
    y_e = twin(x_e)
    y_e.backward(dy)
    assert_close(static_y, y_e, 1e-6, "output")
    assert_close(static_x.grad, x_e.grad, 1e-5, "grad of input")
    grads = torch.cat([p.grad.flatten() for p in module.parameters()])
    grads_e = torch.cat([p.grad.flatten() for p in twin.parameters()])
    assert_close(grads, grads_e, 1e-5, "parameter gradients")


# Last of the slow tests: each mode compiles for tens of seconds, so a stage that runs out of
# time (benchmarks/gpu_run.sh) loses these rather than the quick ones above.
# The traced cases (new, not run on a GPU yet) come last: [opaque-*] first.
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("traced", [False, True], ids=["opaque", "traced"])
def test_compiled_and_cuda_graphs_match_eager(mode, traced, monkeypatch):
    """Compiled, and captured into CUDA graphs, a small network computes what it does
    eagerly; a batch of 32 is split in the captured MN mix (kernels/mix.GRAPH_SPLIT_MIN_ROWS),
    and its 40 channels (2 channel blocks) have their gates computed once there
    (kernels/mix.as_captured): kernels the uncaptured warm-up must have loaded
    (mn_triton/ops.py). Its head's (N, C) features are rows of one element, which skip their
    passes (backend.POINT_ROWS), compiled too. Traced (ops.TRACE_KERNELS): inductor launches
    the kernels from its own code (tools/trace_probe.py checks the graphs without a GPU), so
    once compiled, the calls run none of the op bodies' Python (counted at
    backend.on_device_of, which every body enters); opaque, every compiled call that is not a
    graph replay runs it."""
    monkeypatch.setattr(ops, "TRACE_KERNELS", traced)
    bodies_run = []
    entered = mn_backend.on_device_of
    monkeypatch.setattr(mn_backend, "on_device_of", lambda t: bodies_run.append(1) or entered(t))
    torch._dynamo.reset()
    counters.clear()
    net = nn.Sequential(
        nn.Conv2d(3, 40, 3, padding=1, bias=False),
        mn_triton.ModeNorm2d(40, num_modes=2),
        nn.ReLU(),
        nn.Conv2d(40, 16, 3, padding=1, bias=False),
        mn_triton.ModeGroupNorm2d(16, num_modes=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 24, bias=False),
        mn_triton.ModeNorm1d(24, num_modes=2),
        nn.ReLU(),
        nn.Linear(24, 12, bias=False),
        mn_triton.ModeGroupNorm1d(12, num_modes=2),
    ).to(CUDA)
    twin = copy.deepcopy(net)
    compiled = torch.compile(twin, fullgraph=True, mode=mode)
    for _ in range(3):  # CUDA graphs record on the second call and replay afterwards
        # Fresh gradients every step: with CUDA graphs an accumulated .grad would live in
        # the graph's output memory, which the next replay overwrites.
        net.zero_grad(set_to_none=True)
        twin.zero_grad(set_to_none=True)
        torch.compiler.cudagraph_mark_step_begin()
        x = torch.randn(32, 3, 16, 16, device=CUDA)
        out_e = net(x)
        out_e.square().mean().backward()
        bodies_run.clear()  # count the compiled forward and backward only
        out_c = compiled(x)
        out_c.square().mean().backward()
        assert_close(out_c, out_e, 1e-5, "output")
        grads_e = torch.cat([p.grad.flatten() for p in net.parameters()])
        grads_c = torch.cat([p.grad.flatten() for p in twin.parameters()])
        assert_close(grads_c, grads_e, 1e-4, "gradients")
    # The last step's compiled forward and backward, long compiled by then. (Replayed from
    # CUDA graphs, neither way runs Python: only the default mode tells them apart.)
    if mode == "default":
        assert (len(bodies_run) == 0) == traced, len(bodies_run)
    else:  # captured and replayed, so the captured choices above were what ran
        assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])
        assert len(bodies_run) == 0, f"{len(bodies_run)} op bodies ran: no replay"
    for name, buffer in net.named_buffers():  # running estimates updated alike
        assert_close(dict(twin.named_buffers())[name].float(), buffer.float(), 1e-5, name)


@pytest.mark.slow
def test_traced_float64_layer_keeps_float64_accuracy(monkeypatch):
    """ops.TRACE_KERNELS on a float64 layer. Inductor launches the recorded kernels with a
    signature of its own, which types their Python float arguments (eps, 1/L) float64 only
    where its _use_fp64_for_unbacked_floats is on: there the launches are recorded, elsewhere
    the ops stay whole (ops._records_kernels). Either way the compiled layer keeps float64's
    accuracy: a float32 1/L would put ~1e-8 into dx."""
    monkeypatch.setattr(ops, "TRACE_KERNELS", True)
    bodies_run = []
    entered = mn_backend.on_device_of
    monkeypatch.setattr(mn_backend, "on_device_of", lambda t: bodies_run.append(1) or entered(t))
    torch._dynamo.reset()
    layer = randomize(mn_triton.ModeNorm2d(24, num_modes=3)).to(CUDA, torch.float64)
    twin = copy.deepcopy(layer)
    compiled = torch.compile(twin, fullgraph=True)
    for _ in range(2):
        x = torch.randn(16, 24, 7, 7, device=CUDA, dtype=torch.float64) * 3 + 5
        dy = torch.randn_like(x)
        x_e, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_e = layer(x_e)
        y_e.backward(dy)
        bodies_run.clear()  # count the compiled forward and backward only
        y_c = compiled(x_c)
        y_c.backward(dy)
        assert_close(y_c, y_e, 1e-12, "output")
        assert_close(x_c.grad, x_e.grad, 1e-11, "grad of input")
    recorded = ops._inductor_passes_floats_as_fp64()
    assert (len(bodies_run) == 0) == recorded, (len(bodies_run), recorded)
