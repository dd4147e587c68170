"""torch.compile and the custom ops: fake implementations, autograd, no graph breaks."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import mn_triton
from helpers import (
    assert_close,
    assert_same_point_results,
    randomize,
    record_dx_terms,
    spy_launches,
    spy_row_passes,
)
from mn_triton import ops


def _mode_norm_args(training: bool, dtype=torch.float32):
    n, c, k = 3, 4, 2
    x = torch.randn(n, c, 3, 3, dtype=dtype).requires_grad_()
    gw = torch.randn(k, c).requires_grad_()
    gb = torch.randn(k).requires_grad_()
    w, b = torch.randn(c).requires_grad_(), torch.randn(c).requires_grad_()
    rm, rms = torch.randn(k, c), torch.rand(k, c) + 2
    running = (None, None) if training else (rm, rms)
    return (x, gw, gb, w, b, *running, training, 1e-5)


def _mode_group_norm_args(dtype=torch.float32):
    n, c, k = 3, 4, 2
    x = torch.randn(n, c, 3, 3, dtype=dtype).requires_grad_()
    gw, gb = torch.randn(k, 1).requires_grad_(), torch.randn(k).requires_grad_()
    return (x, gw, gb, torch.randn(c).requires_grad_(), torch.randn(c).requires_grad_(), 1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_opcheck_mode_norm(training, backend):
    torch.library.opcheck(ops.mode_norm_forward, _mode_norm_args(training))
    x, gw, gb, w, b, rm, rms, _, eps = _mode_norm_args(training)
    y, shift, mean_dev, var, _, _, mode_stats, gates = ops.mode_norm_forward(
        x, gw, gb, w, b, rm, rms, training, eps
    )
    # With the forward's batch statistics (training) and gates, and without (computed again).
    for saved in [(mode_stats if training else None, gates), (None, None)]:
        args = (torch.randn_like(y), x.detach(), shift, mean_dev, var, *saved, gw.detach(),
                gb.detach(), w.detach(), rm, rms, training, eps)  # fmt: skip
        torch.library.opcheck(ops.mode_norm_backward, args)
    # Without x's gradient (input_grad, record_kernels): an empty dx, as the fake one.
    torch.library.opcheck(ops.mode_norm_backward, (*args, False, False))
    assert ops.mode_norm_backward(*args, False, False)[0].shape == (0,)


def test_opcheck_mode_group_norm(backend):
    args = _mode_group_norm_args()
    torch.library.opcheck(ops.mode_group_norm_forward, args)
    x, gw, gb, w, b, eps = args
    y, shift, mean_dev, var = ops.mode_group_norm_forward(*args)
    bwd_args = (torch.randn_like(y), x.detach(), shift, mean_dev, var, gw.detach(), gb.detach(),
                w.detach(), eps)  # fmt: skip
    torch.library.opcheck(ops.mode_group_norm_backward, bwd_args)
    torch.library.opcheck(ops.mode_group_norm_backward, (*bwd_args, False, False))
    assert ops.mode_group_norm_backward(*bwd_args, False, False)[0].shape == (0,)


@pytest.mark.parametrize("input_grad", [True, False])
def test_opcheck_on_an_empty_input(input_grad, backend):
    """An input without elements: the backward ops return dx as x's (empty) shape whether
    or not x needs a gradient, and their fake implementations say the same."""
    x, gw, gb, w, b, *_, eps = _mode_norm_args(True)
    x = torch.randn(0, 4, 3, 3)
    y, *stats = ops.mode_norm_forward(x, gw, gb, w, b, None, None, True, eps)
    args = (torch.randn_like(y), x, *stats[:5], gw.detach(), gb.detach(), w.detach(), None,
            None, True, eps, input_grad, False)  # fmt: skip
    torch.library.opcheck(ops.mode_norm_backward, args)
    gw, gb = torch.randn(2, 1), torch.randn(2)
    y, *rows = ops.mode_group_norm_forward(x, gw, gb, w, b, eps)
    args = (torch.randn_like(y), x, *rows, gw, gb, w.detach(), eps, input_grad, False)
    torch.library.opcheck(ops.mode_group_norm_backward, args)


def test_opcheck_channels_last_and_half(backend):
    args = list(_mode_norm_args(True, torch.float16))
    args[0] = args[0].detach().to(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(ops.mode_norm_forward, tuple(args))
    # The fake implementations must give float32 statistics for half inputs, as the ops do.
    torch.library.opcheck(ops.mode_group_norm_forward, _mode_group_norm_args(torch.float16))


@pytest.mark.parametrize("training", [True, False])
def test_opcheck_on_rows_of_one_element(training, backend):
    """With `points` (the layer's backend.point_rows: rows of one element, their own
    statistics), the forward ops return their row statistics empty, as their fake
    implementations say, on either backend (on the torch ops the op computes them and still
    returns them empty), and the backward ops take those empty statistics as absent."""
    x, gw, gb, w, b, rm, rms, _, eps = _mode_norm_args(training)
    x = torch.randn(5, 4, requires_grad=True)
    args = (x, gw, gb, w, b, rm, rms, training, eps, True)
    torch.library.opcheck(ops.mode_norm_forward, args)
    y, *rows, _, _, mode_stats, gates = ops.mode_norm_forward(*args)
    assert [tuple(t.shape) for t in rows] == [(0,)] * 3
    bwd_args = (torch.randn_like(y), x.detach(), *rows, mode_stats if training else None, gates,
                gw.detach(), gb.detach(), w.detach(), rm, rms, training, eps)  # fmt: skip
    torch.library.opcheck(ops.mode_norm_backward, bwd_args)
    mgn_args = (x, *_mode_group_norm_args()[1:], True)
    torch.library.opcheck(ops.mode_group_norm_forward, mgn_args)
    y, *rows = ops.mode_group_norm_forward(*mgn_args)
    assert [tuple(t.shape) for t in rows] == [(0,)] * 3
    gw, gb, w = (t.detach() for t in mgn_args[1:4])
    torch.library.opcheck(
        ops.mode_group_norm_backward, (torch.randn_like(y), x.detach(), *rows, gw, gb, w, eps)
    )


def _compiled_step(compiled: nn.Module, layer: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """A compiled training step's output, dx, parameter gradients and buffers."""
    x = x.clone().requires_grad_()
    y = compiled(x)
    y.backward(torch.randn_like(y, generator=torch.Generator().manual_seed(1)))
    grads = [p.grad for p in layer.parameters()]
    layer.zero_grad(set_to_none=True)
    return [y.detach(), x.grad, *grads, *(b.clone() for b in layer.buffers())]


def _compiled_layer(norm: str, channels: int) -> tuple[nn.Module, dict, nn.Module]:
    """A randomized layer of K = 3, its state to start each step from, and the layer compiled
    whole (aot_eager: the custom ops run as eager ones do), dynamo's caches reset first."""
    torch._dynamo.reset()
    layer = randomize(getattr(mn_triton, norm)(channels, num_modes=3))
    start = {k: v.clone() for k, v in layer.state_dict().items()}
    return layer, start, torch.compile(layer, fullgraph=True, backend="aot_eager")


@pytest.mark.parametrize("norm", ["ModeNorm1d", "ModeGroupNorm1d"])
def test_compiled_one_element_rows_skip_their_passes_with_the_same_bits(norm, monkeypatch):
    """Compiled layers on rows of one element skip the moments, gradient-sums and forward
    apply passes, as eager ones do (tests/test_kernels.py): the layer hands the op `points`
    as traced, the op returns its row statistics empty and its backward takes x instead.
    The same bits as with the passes (POINT_ROWS off); dynamo guards on the switch, so
    turning it off recompiles."""
    from mn_triton import backend as mn_backend

    passes = spy_row_passes(monkeypatch)
    layer, start, compiled = _compiled_layer(norm, 70)
    x = torch.randn(37, 70) * 2 + 1
    # MN's ops run their first call of each signature twice (once as captured, for CUDA
    # graphs: ops._with_capture_choices), MGN's once.
    runs = 2 if norm == "ModeNorm1d" else 1
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    dx_terms = record_dx_terms(monkeypatch)
    skipped = _compiled_step(compiled, layer, x)
    assert [len(grids) for grids in passes] == [0, 0, 0]
    monkeypatch.setattr(mn_backend, "POINT_ROWS", False)
    layer.load_state_dict(start)
    full = _compiled_step(compiled, layer, x)
    assert [len(grids) for grids in passes] == [runs, runs, 2 * runs]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 2
    assert_same_point_results(skipped, full, dx_index=1, dx_terms=dx_terms)


@pytest.mark.parametrize("norm", ["ModeNorm1d", "ModeGroupNorm1d"])
def test_compiled_16_bit_and_transposed_one_element_rows_as_eager(norm, monkeypatch):
    """Rows of one element that are 16-bit or not dense take the path too (s a float32 copy
    of x): compiled as eager without the passes, bit for bit but for MN's running estimates
    (updated by other ops when compiled). (The ops' outputs against their fake
    implementations: test_opcheck_on_transposed_rows_of_one_element.)"""
    passes = spy_row_passes(monkeypatch)
    layer, start, compiled = _compiled_layer(norm, 6)
    data = torch.randn(9, 6) * 2 + 1
    for x in (data.to(torch.bfloat16), data.t().contiguous().t(), data.half()):
        layer.load_state_dict(start)
        eager = _compiled_step(layer, layer, x)
        layer.load_state_dict(start)
        traced = _compiled_step(compiled, layer, x)
        assert eager[0].dtype == x.dtype and eager[0].stride() == x.stride()
        what = f"{x.dtype}, strides {x.stride()}"
        for i, (a, b) in enumerate(zip(traced[:6], eager[:6], strict=True)):
            assert torch.equal(a, b), f"{what}: result {i} differs"
        # (Compiled, MN's running estimates are updated by ops after the mix: roundings.)
        for a, b in zip(traced[6:], eager[6:], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=0, msg=f"{what}: buffers")
    assert [len(grids) for grids in passes] == [0, 0, 0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("norm", ["ModeNorm1d", "ModeGroupNorm1d"])
def test_opcheck_on_transposed_rows_of_one_element(norm, dtype, backend):
    """The ops on rows of one element that are not dense, 16-bit or not (s and Σ dy float32
    copies of x and dy; y and dx = row_bias + dy·dy_scale cast back by backend.rows_like):
    y and dx laid out as x, as their fake implementations say. A dense dx passes eager and
    aot_eager steps (autograd takes any strides), but inductor asserts each op output's
    strides: a compiled training step on transposed features would fail."""
    x = torch.randn(4, 5).t().to(dtype).requires_grad_()  # 4 channels
    if norm == "ModeNorm1d":
        _, gw, gb, w, b, rm, rms, training, eps = _mode_norm_args(True)
        forward = (x, gw, gb, w, b, rm, rms, training, eps, True)
        torch.library.opcheck(ops.mode_norm_forward, forward)
        y, *rows, _, _, mode_stats, gates = ops.mode_norm_forward(*forward)
        op = ops.mode_norm_backward
        args = (torch.randn_like(y), x.detach(), *rows, mode_stats, gates, gw.detach(), gb.detach(),
                w.detach(), rm, rms, training, eps)  # fmt: skip
    else:
        _, gw, gb, w, b, eps = _mode_group_norm_args()
        forward = (x, gw, gb, w, b, eps, True)
        torch.library.opcheck(ops.mode_group_norm_forward, forward)
        y, *rows = ops.mode_group_norm_forward(*forward)
        op = ops.mode_group_norm_backward
        args = (torch.randn_like(y), x.detach(), *rows, gw.detach(), gb.detach(), w.detach(),
                eps)  # fmt: skip
    assert [tuple(t.shape) for t in rows] == [(0,)] * 3
    assert y.dtype == dtype and y.stride() == x.stride()
    dx = op(*args)[0]
    assert dx.dtype == dtype and dx.stride() == x.stride()
    torch.library.opcheck(op, args)


def test_compiled_one_element_rows_with_dynamic_batch_sizes(monkeypatch):
    """Symbolic batch sizes keep the one-element-row path (a 2-D input's rows hold one
    element whatever its sizes): one graph for every batch, results as eager."""
    from mn_triton.kernels import moments

    moment_passes = spy_launches(monkeypatch, moments, "_row_moments_kernel")
    torch._dynamo.reset()
    eager = randomize(mn_triton.ModeNorm1d(6, num_modes=2))
    twin = mn_triton.ModeNorm1d(6, num_modes=2)
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, dynamic=True, fullgraph=True, backend="aot_eager")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for n in (5, 9, 13):
        x = torch.randn(n, 6)
        x_e, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_e, y_c = eager(x_e), compiled(x_c)
        assert_close(y_c, y_e, 1e-6, f"output at N={n}")
        y_e.square().sum().backward()
        y_c.square().sum().backward()
        assert_close(x_c.grad, x_e.grad, 1e-5, f"grad of input at N={n}")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 1
    assert moment_passes == []


class _Net(nn.Module):
    def __init__(self, norm: nn.Module, c: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1, bias=False)  # as before BatchNorm
        self.norm = norm
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.parametrize("norm", ["ModeNorm2d", "ModeGroupNorm2d"])
@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_compiled_model_matches_eager(norm, compile_backend, backend):
    torch._dynamo.reset()
    eager = _Net(randomize(getattr(mn_triton, norm)(4, num_modes=3)))
    compiled_net = _Net(getattr(mn_triton, norm)(4, num_modes=3))
    compiled_net.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_net, fullgraph=True, backend=compile_backend)
    for step in range(2):  # training steps (running estimates move), then eval
        x = torch.randn(6, 3, 5, 5)
        out_e, out_c = eager(x), compiled(x)
        assert_close(out_c, out_e, 1e-5, f"step {step} output")
        out_e.square().sum().backward()
        out_c.square().sum().backward()
        # Gate gradients are ill-conditioned (they can nearly cancel), so inductor's other
        # rounding in the conv shows in them; they are held to the scale of all gradients.
        all_e = torch.cat([p.grad.flatten() for p in eager.parameters()])
        all_c = torch.cat([p.grad.flatten() for p in compiled_net.parameters()])
        assert_close(all_c, all_e, 1e-4, "all gradients")
        pairs = zip(eager.named_parameters(), compiled_net.parameters(), strict=True)
        for (name, p_e), p_c in pairs:
            if "gate" not in name:
                assert_close(p_c.grad, p_e.grad, 1e-4, f"grad of {name}")
    for name, buf in eager.named_buffers():
        assert_close(dict(compiled_net.named_buffers())[name], buf, 1e-5, name)
    eager.eval(), compiled_net.eval()
    x = torch.randn(2, 3, 5, 5)
    assert_close(compiled(x), eager(x), 1e-5, "eval output")


@pytest.mark.parametrize("norm", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_kernels_not_recorded_where_they_cannot_be(norm, backend, monkeypatch):
    """ops.TRACE_KERNELS asks torch.compile to record the kernels' launches into its graph
    (tools/trace_probe.py checks that path, which needs real JIT functions). Where there are
    none to record, Triton's interpreter here or the torch-op path, the ops stay whole and a
    compiled layer computes what it does eagerly."""
    monkeypatch.setattr(ops, "TRACE_KERNELS", True)
    torch._dynamo.reset()
    eager = randomize(getattr(mn_triton, norm)(4, num_modes=2))
    twin = getattr(mn_triton, norm)(4, num_modes=2)
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, fullgraph=True, backend="aot_eager")
    x = torch.randn(5, 4, 3, 3)
    out_e, out_c = eager(x), compiled(x)
    assert_close(out_c, out_e, 1e-5, "output")
    out_e.square().sum().backward()
    out_c.square().sum().backward()
    for (name, p_e), p_c in zip(eager.named_parameters(), twin.parameters(), strict=True):
        assert_close(p_c.grad, p_e.grad, 1e-4, f"grad of {name}")


@pytest.mark.parametrize("norm", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_the_switch_to_record_kernels_is_part_of_the_compiled_graph(norm, backend, monkeypatch):
    """The layers hand ops.TRACE_KERNELS to the forward op (record_kernels) as it stands when
    dynamo traces them: switching it recompiles (dynamo guards on it), and the graphs differ,
    so torch.compile's caches (AOTAutograd's is keyed by dynamo's graph) never give a graph
    compiled one way to the other. Switched back, the first graph is used again."""
    graphs = []

    def recorder(gm, example_inputs):
        calls = [n for n in gm.graph.nodes if "mn_triton" in str(n.target)]
        graphs.append([(str(n.target), n.args[-1]) for n in calls])
        return gm.forward

    torch._dynamo.reset()
    layer = getattr(mn_triton, norm)(4, num_modes=2)
    compiled = torch.compile(layer, fullgraph=True, backend=recorder)
    op = f"mn_triton.{'mode_norm' if norm == 'ModeNorm2d' else 'mode_group_norm'}_forward.default"
    for switch in (False, True, False):
        monkeypatch.setattr(ops, "TRACE_KERNELS", switch)
        compiled(torch.randn(5, 4, 3, 3))
    assert graphs == [[(op, False)], [(op, True)]]


@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_kernels_are_recorded_only_where_the_environment_asks(setting):
    """ops.TRACE_KERNELS starts off (opt-in until measured on a GPU), on where
    MN_TRITON_TRACE_KERNELS=1 (benchmarks/gpu_run.sh's traced part sets it)."""
    env = {k: v for k, v in os.environ.items() if k != "MN_TRITON_TRACE_KERNELS"}
    if setting is not None:
        env["MN_TRITON_TRACE_KERNELS"] = setting
    code = "from mn_triton import ops; print(ops.TRACE_KERNELS)"
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(setting == "1")]


def test_momentum_none_compiles_without_graph_break(backend):
    torch._dynamo.reset()
    layer = mn_triton.ModeNorm2d(3, momentum=None)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    for _ in range(3):
        compiled(torch.randn(4, 3, 2, 2))
    assert layer.num_batches_tracked.item() == 3


@pytest.mark.parametrize("momentum", [0.3, None])
def test_compiled_running_estimates_use_the_layers_momentum(momentum, backend):
    """Compiled, the running update is a few torch ops after the custom op; it must use the
    layer's momentum (or 1/num_batches_tracked for None), as the eager path does."""
    torch._dynamo.reset()
    eager = randomize(mn_triton.ModeNorm2d(3, num_modes=2, momentum=momentum))
    compiled_layer = mn_triton.ModeNorm2d(3, num_modes=2, momentum=momentum)
    compiled_layer.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_layer, fullgraph=True, backend="aot_eager")
    for _ in range(3):
        x = torch.randn(5, 3, 2, 2) * 2 + 1
        eager(x), compiled(x)
    for name, buf in eager.named_buffers():
        assert_close(compiled_layer.get_buffer(name), buf, 1e-6, name)


@pytest.mark.parametrize("training", [True, False])
def test_eager_function_and_custom_op_agree(training, backend):
    """Eager calls skip the dispatcher through an autograd.Function running the same code."""
    for wrapper, op, args in (
        (ops.mode_norm, ops.mode_norm_forward, _mode_norm_args(training)),
        (ops.mode_group_norm, ops.mode_group_norm_forward, _mode_group_norm_args()),
    ):
        tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        dy = torch.randn_like(args[0])
        results = []
        for fn in (wrapper, op):
            y = fn(*args)[0]
            results.append((y, torch.autograd.grad(y, tensors, dy)))
        (y1, g1), (y2, g2) = results
        assert torch.equal(y1, y2)
        assert all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))


def _mn_op_results(args: tuple, dy: torch.Tensor, points: bool = False) -> list[torch.Tensor]:
    """The MN forward op's outputs, then its backward op's (dx, parameter gradients)."""
    x, gw, gb, w, b, rm, rms, training, eps = args
    outs = ops.mode_norm_forward(*args, points)
    y, shift, mean_dev, var = outs[:4]
    saved = outs[6] if training else None
    grads = ops.mode_norm_backward(dy, x, shift, mean_dev, var, saved, outs[7], gw, gb, w, rm,
                                   rms, training, eps)  # fmt: skip
    return [*outs, *grads]


@pytest.mark.parametrize("training", [True, False])
def test_captured_ops_split_the_samples_and_load_those_kernels_ahead(training, monkeypatch):
    """Captured into a CUDA graph (stood in for here: ops._capturing), the MN ops split a
    batch from kernels/mix.GRAPH_SPLIT_MIN_ROWS samples (32: 2 splits of 16), and compute
    what they compute unsplit. A capture may not load kernels, so the first uncaptured call
    of each signature also runs split, once, its results dropped: what it returns is the
    plain call's, bit for bit; its second call runs plain only. The backward op alike (its
    rows kernel: two launches split in training, one in eval)."""
    from helpers import spy_launches
    from mn_triton.kernels import mix as kernels

    with mn_triton.use_backend("triton"):
        n, c, k = 32, 6, 2
        module = randomize(mn_triton.ModeNorm2d(c, num_modes=k), gate_scale=2.0)
        x = torch.randn(n, c, 3, 3) * 2 + torch.randn(n, c, 1, 1)
        running = (None, None) if training else (module.running_mean, module.running_mean_sq)
        args = (x, module.gate.weight.detach(), module.gate.bias.detach(),
                module.weight.detach(), module.bias.detach(), *running, training, 1e-5)  # fmt: skip
        dy = torch.randn_like(x)
        monkeypatch.setattr(ops, "_signatures_run_as_captured", set())
        launches = spy_launches(monkeypatch, kernels, "_mn_mix_forward_kernel")
        backward = spy_launches(monkeypatch, kernels, "_mn_mix_backward_rows_kernel")
        split_backward = [(1, 2)] * (2 if training else 1)
        plain = _mn_op_results(args, dy)
        assert launches == [(1, 2), (1, 1)]  # the split run ahead, then the plain call
        assert backward == [*split_backward, (1, 1)]
        again = _mn_op_results(args, dy)
        assert launches[2:] == [(1, 1)]
        assert backward[len(split_backward) + 1 :] == [(1, 1)]
        backward.clear()
        for got, want in zip(again, plain, strict=True):
            assert torch.equal(got, want)
        monkeypatch.setattr(ops, "_capturing", lambda t: True)
        captured = _mn_op_results(args, dy)
        assert launches[3:] == [(1, 2)]
        assert backward == split_backward
        names = ["y", "shift", "mean_dev", "var", "mode mean", "mode var", "mode stats", "gates",
                 "dx"]  # fmt: skip
        for name, got, want in zip(names, captured, plain, strict=False):
            if want.numel():  # (eval has no batch statistics)
                assert_close(got, want, 1e-5, name)
        # Gate gradients are ill-conditioned (they can nearly cancel): held to the scale of
        # all parameter gradients, as in test_compiled_model_matches_eager.
        assert_close(
            torch.cat([g.flatten() for g in captured[9:]]),
            torch.cat([g.flatten() for g in plain[9:]]),
            1e-4,
            "parameter gradients",
        )
        for name, got, want in zip(("weight", "bias"), captured[11:], plain[11:], strict=True):
            assert_close(got, want, 1e-4, f"grad of {name}")


@pytest.mark.parametrize(
    "differs",
    ["gate weight dtype", "gate weight alignment", "weight dtype", "samples", "channels",
     "modes", "rows of one element"],
)  # fmt: skip
def test_calls_with_kernels_of_their_own_are_run_ahead_too(differs, monkeypatch):
    """The run ahead is keyed by what Triton compiles the mix kernels for. A call that differs
    from the first in its gate weight's or affine weight's dtype, in whether its gate weight
    starts at a multiple of 16 bytes (a view into a flat buffer), in N, C or K (the blocks
    and splits), or in taking rows of one element (no row statistics: the `points` flag),
    gets kernels of its own, so its first call also runs ahead as captured, forward and
    backward: a capture could not load them."""
    from helpers import spy_launches
    from mn_triton.kernels import mix as kernels

    def split(grids: list) -> list[bool]:
        return [grid[1] > 1 for grid in grids]

    with mn_triton.use_backend("triton"):
        # (N, C, K) of the second call where they differ
        n, c, k = {"samples": (48, 6, 2), "channels": (32, 40, 2), "modes": (32, 6, 3)}.get(
            differs, (32, 6, 2)
        )
        module = randomize(mn_triton.ModeNorm2d(6, num_modes=2), gate_scale=2.0)
        other = randomize(mn_triton.ModeNorm2d(c, num_modes=k), gate_scale=2.0)
        x = torch.randn(32, 6, 3, 3)
        gw, gb, w, b = (p.detach() for p in (module.gate.weight, module.gate.bias,
                                              module.weight, module.bias))  # fmt: skip
        monkeypatch.setattr(ops, "_signatures_run_as_captured", set())
        forward = spy_launches(monkeypatch, kernels, "_mn_mix_forward_kernel")
        backward = spy_launches(monkeypatch, kernels, "_mn_mix_backward_rows_kernel")
        _mn_op_results((x, gw, gb, w, b, None, None, True, 1e-5), torch.randn_like(x))
        # 32 samples: split in 2 as captured (the backward's rows kernel in two passes)
        assert split(forward) == [True, False] and split(backward) == [True, True, False]
        points = differs == "rows of one element"
        if differs == "gate weight dtype":
            gw = gw.double()
        elif differs == "gate weight alignment":
            flat = torch.empty(gw.numel() + 1)
            gw = flat[1:].view_as(gw).copy_(gw)
            assert gw.data_ptr() % 16 != 0
        elif differs == "weight dtype":
            w = w.double()
        elif points:
            x = x[:, :, 0, 0].contiguous()  # the same N and C, rows of one element
        else:
            gw, gb, w, b = (p.detach() for p in (other.gate.weight, other.gate.bias,
                                                  other.weight, other.bias))  # fmt: skip
            x = torch.randn(n, c, 3, 3)
        forward.clear()
        backward.clear()
        args = (x, gw, gb, w, b, None, None, True, 1e-5)
        _mn_op_results(args, torch.randn_like(x), points)
        assert split(forward) == [True, False] and split(backward) == [True, True, False]


def test_captured_means_a_cuda_tensor_on_a_stream_being_captured(monkeypatch):
    """ops._capturing, which the tests above stand in for: a call chooses as captured where
    its input is a CUDA tensor and the current stream is being captured, not otherwise."""
    cuda_tensor = types.SimpleNamespace(is_cuda=True)  # (a CUDA tensor as far as it asks)
    for capturing in (False, True):
        monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda c=capturing: c)
        assert ops._capturing(cuda_tensor) is capturing
        assert ops._capturing(torch.empty(1)) is False


def test_the_first_call_of_a_signature_runs_ahead_on_the_kernels_only(backend, monkeypatch):
    """The run ahead loads the kernels a captured call would launch; the torch ops have no
    captured choices, so there each op call runs its body once, first call or not."""
    bodies = []
    for name in ("_mode_norm_op_forward", "_mode_norm_backward_impl"):
        body = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, b=body, n=name: bodies.append(n) or b(*a))
    monkeypatch.setattr(ops, "_signatures_run_as_captured", set())
    args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in _mode_norm_args(True))
    runs = 2 if backend == "triton" else 1
    for _ in range(2):
        bodies.clear()
        _mn_op_results(args, torch.randn_like(args[0]))
        assert bodies == ["_mode_norm_op_forward"] * runs + ["_mode_norm_backward_impl"] * runs
        runs = 1


def test_eager_calls_never_split_small_batches_even_when_captured(monkeypatch):
    """The autograd.Function path (eager calls, and torch.cuda.graph captures of eager code,
    which launch what their warm-up launched) keeps SPLIT_MIN_ROWS."""
    from helpers import spy_launches
    from mn_triton.kernels import mix as kernels

    with mn_triton.use_backend("triton"):
        monkeypatch.setattr(ops, "_capturing", lambda t: True)
        launches = spy_launches(monkeypatch, kernels, "_mn_mix_forward_kernel")
        layer = mn_triton.ModeNorm2d(6, num_modes=2)
        layer(torch.randn(32, 6, 3, 3, requires_grad=True)).sum().backward()
        assert launches == [(1, 1)]


def test_captured_ops_compute_the_gates_once_where_programs_share_the_channels(monkeypatch):
    """Captured (stood in for: ops._capturing), the MN ops compute the gates once wherever
    several mix programs share the channels, however few statistics (here 8 × 40, below
    GATES_KERNEL_MIN_ELEMENTS, in 2 channel blocks): in the forward, whose gates the backward
    then takes; the first uncaptured call ran that ahead too. Eager calls form them in each
    program. The gates kernel sums as each program does: the same bits either way."""
    from helpers import spy_launches
    from mn_triton.kernels import mix as kernels

    with mn_triton.use_backend("triton"):
        n, c, k = 8, 40, 2
        assert kernels._mn_blocks(n, c, k)[1] == 32 and n * c < kernels.GATES_KERNEL_MIN_ELEMENTS
        module = randomize(mn_triton.ModeNorm2d(c, num_modes=k))
        x = torch.randn(n, c, 2, 2)
        args = (x, module.gate.weight.detach(), module.gate.bias.detach(),
                module.weight.detach(), module.bias.detach(), None, None, True, 1e-5)  # fmt: skip
        dy = torch.randn_like(x)
        monkeypatch.setattr(ops, "_signatures_run_as_captured", set())
        launches = spy_launches(monkeypatch, kernels, "_mn_gates_kernel")
        plain = _mn_op_results(args, dy)
        assert launches == [(n // 8,)]  # the run ahead, as captured; the plain call: none
        monkeypatch.setattr(ops, "_capturing", lambda t: True)
        captured = _mn_op_results(args, dy)
        assert launches[1:] == [(n // 8,)]  # the forward's; the backward takes its gates
        for got, want in zip(captured, plain, strict=True):
            assert torch.equal(got, want)
        monkeypatch.setattr(ops, "_capturing", lambda t: False)
        layer = mn_triton.ModeNorm2d(c, num_modes=k)
        layer(torch.randn(n, c, 2, 2, requires_grad=True)).sum().backward()
        assert launches[2:] == []  # eager: the Function path, gates in each program


def test_compiled_double_backward_is_refused_not_wrong(backend):
    """Eager layers support create_graph=True (tests/test_double_backward.py); compiled ones
    cannot (torch.compile refuses double backward), and say so instead of returning wrong
    second derivatives. So does the custom op called directly."""
    torch._dynamo.reset()
    layer = mn_triton.ModeNorm2d(3)
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager")
    with pytest.raises(RuntimeError, match="double backward"):
        (g,) = torch.autograd.grad(compiled(x).square().sum(), x, create_graph=True)
        g.sum().backward()
    args = _mode_norm_args(True)
    (g,) = torch.autograd.grad(
        ops.mode_norm_forward(*args)[0].square().sum(), args[0], create_graph=True
    )
    with pytest.raises(RuntimeError, match="no autograd formula"):
        g.sum().backward()


@pytest.mark.parametrize("norm", ["ModeNorm2d", "ModeGroupNorm2d"])
def test_dynamic_shapes_compile_once(norm, backend):
    """torch.compile(dynamic=True): the fake kernels take symbolic sizes, so batch size and
    spatial size change without a recompile, and every result is the eager one."""
    torch._dynamo.reset()
    eager = randomize(getattr(mn_triton, norm)(4, num_modes=2))
    twin = getattr(mn_triton, norm)(4, num_modes=2)
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, dynamic=True, fullgraph=True)
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for n, h, w in [(2, 5, 3), (3, 7, 7), (5, 4, 6)]:
        x = torch.randn(n, 4, h, w)
        x_e, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_e, y_c = eager(x_e), compiled(x_c)
        assert_close(y_c, y_e, 1e-6, f"output at {(n, h, w)}")
        dy = torch.randn_like(y_e)
        y_e.backward(dy)
        y_c.backward(dy)
        assert_close(x_c.grad, x_e.grad, 1e-6, f"grad of input at {(n, h, w)}")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames == 1
    for name, buf in eager.named_buffers():
        assert_close(dict(twin.named_buffers())[name], buf, 1e-6, name)
