"""SyncModeNorm over 2 gloo processes on 127.0.0.1 equals one process holding the whole batch."""

import contextlib
import copy
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import memcheck
import mn_triton
import poison
from helpers import (
    GATE_PARAMS,
    GATE_SLACK,
    TOLERANCE,
    AbsParametrization,
    assert_close,
    copies_per_three_level_call,
    forward_backward,
    modes_far_from_sample_0,
    negated_view,
    randomize,
    record_guarded_launches,
    reference_twin,
    rel_err,
    spy_launches,
    three_level_input,
)
from mn_triton.sync import _SyncModeNormFunction
from processes import init_group, run_processes

# Spawned workers import this module but not conftest: they set up its checks here.
memcheck.install()
poison.install()

WORLD = 2
SPLITS = {"even": (3, 3), "uneven": (4, 2), "one_empty": (6, 0), "first_empty": (0, 6),
          "all_empty": (0, 0)}  # fmt: skip


@contextlib.contextmanager
def _process_group_of_one(dist_backend: str = "gloo") -> Iterator[None]:
    """The default process group as this process alone, destroyed on leaving."""
    with tempfile.TemporaryDirectory(prefix="mn-group-") as folder:
        store = f"file://{folder}/store"
        dist.init_process_group(dist_backend, init_method=store, rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


@pytest.fixture
def group_of_one() -> Iterator[None]:
    """A gloo process group of this process alone, for the test's duration."""
    with _process_group_of_one():
        yield


@pytest.fixture
def synchronising(monkeypatch: pytest.MonkeyPatch) -> None:
    """SyncModeNorm layers take their synchronising path whenever they train (by itself a
    group of one falls back to ModeNorm, which would leave that path untested)."""
    monkeypatch.setattr(mn_triton.SyncModeNorm, "_synchronising", lambda self: self.training)


@pytest.fixture
def synchronising_group_of_one(synchronising: None, group_of_one: None) -> None:
    """The synchronising path through a process group of one."""
    assert mn_triton.SyncModeNorm(1)._synchronising() and dist.get_world_size() == 1


def _problem(layout: str, offset: float, channels: int):
    """The whole batch, upstream gradient and layer state, identical in every process."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(6, channels, 4, 3, generator=gen) * 2 + offset
    dy = torch.randn(x.shape, generator=gen)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    torch.manual_seed(99)
    state = randomize(mn_triton.ModeNorm2d(channels, num_modes=3, momentum=0.3)).state_dict()
    return x, dy, state


def _worker(rank, store, split, layout, offset, channels, backend, out_dir):
    os.environ.setdefault("TRITON_INTERPRET", "1")
    assert poison._installed and (memcheck._installed or not mn_triton.backend.INTERPRETING)
    init_group(rank, store, WORLD)
    try:
        mn_triton.set_backend(backend)
        if channels > 32:  # the mix kernels split the channels: share the gates between them
            from mn_triton.kernels import mix as kernel_mix

            kernel_mix.GATES_KERNEL_MIN_ELEMENTS = 0
            kernel_mix.SPLIT_MIN_ROWS = 2  # and split a process's samples into blocks
        x, dy, state = _problem(layout, offset, channels)
        start = sum(SPLITS[split][:rank])
        rows = slice(start, start + SPLITS[split][rank])
        layer = mn_triton.SyncModeNorm(channels, num_modes=3, momentum=0.3)
        layer.load_state_dict(state)
        results = {}
        for step in range(2):  # two steps: running estimates move twice
            x_local = x[rows].detach().clone().requires_grad_()
            layer.zero_grad()
            y = layer(x_local)
            (y * dy[rows]).sum().backward()
            grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
            for g in grads.values():
                dist.all_reduce(g)  # what DDP does (it then divides by the world size)
            results[step] = {"y": y.detach(), "dx": x_local.grad, "grads": grads}
        # Eval uses the running estimates: nothing to synchronise, each process on its own.
        results["eval"] = layer.eval()(x[rows]).detach()
        # Bad input is refused before any exchange (so no process is left waiting).
        with pytest.raises(ValueError, match=f"expected {channels} channels"):
            layer.train()(x[rows, :4])
        results["state"] = layer.state_dict()
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# The 1e4 offset with rank 0 empty: a process without samples (zeros for its statistics)
# must add nothing to the merge, even with the data far from zero. With no sample in any
# process, the running estimates stay as they are, as one process's empty batch leaves them
# (and BatchNorm's); the step is counted. 40 channels: the mix
# kernels' two channel blocks share the gates (kernels.mix.shared_gates) in both processes,
# and the process with 4 samples splits them into 2 blocks (kernels.mix.SPLIT_MIN_ROWS).
CASES = [("even", "nchw", 3.0, 5), ("uneven", "nchw", 3.0, 5), ("one_empty", "nchw", 3.0, 5),
         ("uneven", "channels_last", 3.0, 5), ("first_empty", "nchw", 1e4, 5),
         ("uneven", "nchw", 3.0, 40), ("all_empty", "nchw", 3.0, 5)]  # fmt: skip


@pytest.mark.parametrize("split, layout, offset, channels", CASES)
def test_two_processes_equal_one_process(split, layout, offset, channels, backend, tmp_path):
    run_processes(_worker, split, layout, offset, channels, backend, str(tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    x, dy, state = _problem(layout, offset, channels)
    x, dy = x[: sum(SPLITS[split])], dy[: sum(SPLITS[split])]  # the processes' samples
    single = mn_triton.ModeNorm2d(channels, num_modes=3, momentum=0.3)
    single.load_state_dict(state)
    for step in range(2):
        x_all = x.detach().clone().requires_grad_()
        single.zero_grad()
        y = single(x_all)
        (y * dy).sum().backward()
        got = [r[step] for r in ranks]
        assert_close(torch.cat([g["y"] for g in got]), y, 1e-5, f"step {step}: output")
        assert_close(torch.cat([g["dx"] for g in got]), x_all.grad, 1e-5, f"step {step}: dx")
        for name, p in single.named_parameters():
            for r in range(WORLD):  # every process holds the same reduced gradient
                tol = 1e-4 if "gate" in name else 1e-5  # gate gradients: ill-conditioned
                assert_close(got[r]["grads"][name], p.grad, tol, f"step {step}: grad {name}")
    for name, value in single.state_dict().items():
        for r in range(WORLD):
            assert_close(ranks[r]["state"][name].float(), value.float(), 1e-5, name)
    y_eval = single.eval()(x)
    assert_close(torch.cat([r["eval"] for r in ranks]), y_eval, 1e-5, "eval output")


def _far_modes_problem():
    """test_mode_norm's modes far from sample 0, with sample 0 moved 1000 further away; rank
    0 holds sample 0 alone, so the merge's common pivot is ~1000 from rank 1's modes."""
    layer, x, dy = modes_far_from_sample_0()
    x[0] -= 1000.0
    return layer, x, dy, 1


def _far_sample_problem():
    """A draw of an ad-hoc 2-process fuzzer (seed 1450), rounded to 4 decimals: sample 0, on
    rank 0 with two others, lies ~950 below the rest, and its value is the common pivot."""
    layer = mn_triton.ModeNorm(5, num_modes=3)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([
            [1.2847, 1.1234, -0.7879, -0.5813, -0.3054],
            [0.7471, 2.6870, 0.9893, 1.2879, 1.1521],
            [0.1109, 0.5698, 0.2683, -1.6911, -0.7656],
        ]))  # fmt: skip
        layer.gate.bias.copy_(torch.tensor([0.1682, -0.6842, 0.3893]))
        layer.weight.copy_(torch.tensor([0.9221, 1.8771, 1.6394, 2.3425, 1.2232]))
        layer.bias.copy_(torch.tensor([0.2329, -0.1623, -0.8390, -0.8704, 0.1907]))
    x = torch.tensor([[-944.4304, -943.4519, -950.9006, -947.2158, -946.3877],
                      [1.0488, 2.3755, 3.9902, 4.5075, 3.9453],
                      [2.7367, 0.2928, 5.6971, 0.8385, 0.8185],
                      [3.3893, 5.4338, 5.2520, 3.3136, 4.2320],
                      [5.1042, 4.6152, 4.9983, 5.1023, 2.9160]])  # fmt: skip
    dy = torch.tensor([[-0.3146, 0.5650, 0.6415, 0.1500, -1.8556],
                       [-0.1225, -0.4849, 0.1399, 1.0248, -0.0174],
                       [0.2348, 0.5221, -1.1544, 0.1163, 0.4454],
                       [-0.1885, -1.3939, 1.4506, 0.6159, -1.2944],
                       [0.4570, -2.1120, 0.8727, 1.3249, 0.5182]])  # fmt: skip
    return layer, x, dy, 3


def _shares_problem():
    """Another such draw (seed 20), rounded: a mode of rank 0's sample 2 that rank 1 barely
    touches. The processes' shares N_r / N sum to 1 only up to their roundings, and
    (1 − Σ_r u_r)·P put that into μ: output 2.9e-6, one process 8e-8."""
    layer = mn_triton.ModeNorm(2, num_modes=8)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([
            [-0.9200, 1.6250], [-0.3557, 3.1883], [-3.4728, 2.3360], [-1.5933, 4.0631],
            [5.4034, -5.3138], [-2.1675, 3.7286], [0.2408, 0.3228], [0.0906, -7.0803],
        ]))  # fmt: skip
        layer.gate.bias.copy_(
            torch.tensor([0.4157, -1.4030, -1.3601, 0.4331, -0.5220, 0.9226, 2.7507, 0.2705])
        )
        layer.weight.copy_(torch.tensor([0.9054, 1.4031]))
        layer.bias.copy_(torch.tensor([0.6192, -0.8814]))
    x = torch.tensor([[74.3628, 78.4311], [-2.3678, 0.8002], [1.7795, 0.3263],
                      [-1.6755, -0.4735], [-3.3253, -1.9210], [-2.1423, -5.4118]])  # fmt: skip
    dy = torch.tensor([[-1.6061, -1.5636], [0.5716, -0.8676], [0.5423, 0.7217],
                       [0.7107, 0.8872], [-1.4411, 1.0982], [-0.1774, 0.6608]])  # fmt: skip
    return layer, x, dy, 3


def _mass_below_tiny_problem():
    """Mode 1's gates are e^-90 for every sample: its gate mass, 6·e^-90 ≈ 5e-39, lies
    below float32 tiny on each rank and in all. Sample 0 is far from the rest."""
    layer = mn_triton.ModeNorm(3, num_modes=2)
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.copy_(torch.tensor([0.0, -90.0]))
    x = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(5)) + 1000.0
    x[0] -= 1000.0
    return layer, x, torch.randn(x.shape, generator=torch.Generator().manual_seed(6)), 3


PINNED = {
    "far_modes": _far_modes_problem,
    "far_sample": _far_sample_problem,
    "shares": _shares_problem,
    "mass_below_tiny": _mass_below_tiny_problem,
}


def _pinned_worker(rank, store, backend, case, out_dir):
    os.environ.setdefault("TRITON_INTERPRET", "1")
    init_group(rank, store, WORLD)
    try:
        mn_triton.set_backend(backend)
        single, x, dy, split = PINNED[case]()
        layer = mn_triton.SyncModeNorm(single.num_features, num_modes=single.num_modes)
        layer.load_state_dict(single.state_dict())
        rows = slice(0, split) if rank == 0 else slice(split, None)
        y, grads = forward_backward(layer, x[rows], dy[rows])
        result = {"y": y, "dx": grads["input"], "state": layer.state_dict()}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case", list(PINNED))
def test_merge_as_accurate_as_one_process_pinned(case, backend, tmp_path):
    """Cases where the merge lost accuracy that one process holding the batch keeps.
    - far_modes, far_sample: merged relative to the common per-channel pivot (one
      process's sample 0), μ carried the rounding of values as far from it as the data
      reach: output errors of 1.4e-5 and 1.6e-5, dx 3.0e-5 and 1.3e-5. Merged as per-mode
      pivots and rests: about 1e-7, as one process.
    - shares: Σ_r u_r taken as one quotient, exactly 1, not as the sum of the rounded
      shares (2.9e-6 → about 1e-7).
    - mass_below_tiny: a process's share of Σ g·m is max(N_r, tiny) / max(N, tiny), not
      N_r / N; with the latter the running estimates of a mode without gate mass were off
      by the mode's coverage (N / tiny) again.
    Checked against the float64 oracle, and against one process's own error on the data."""
    run_processes(_pinned_worker, backend, case, str(tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    single, x, dy, _ = PINNED[case]()
    oracle = reference_twin(single)
    y_ref, grads_ref = forward_backward(oracle, x.double(), dy.double())
    y_one, grads_one = forward_backward(single, x, dy)
    # Within 1e-6 of float64, or twice one process's own error where that is larger.
    dx = torch.cat([r["dx"] for r in ranks])
    for what, got, one, ref in [
        ("output", torch.cat([r["y"] for r in ranks]), y_one, y_ref),
        ("grad of input", dx, grads_one["input"], grads_ref["input"]),
        *[(f"{name} of rank {i}", r["state"][name], getattr(single, name), getattr(oracle, name))
          for name in ("running_mean", "running_mean_sq") for i, r in enumerate(ranks)],
    ]:  # fmt: skip
        assert_close(got.double(), ref, max(1e-6, 2 * rel_err(one.double(), ref)), what)


def test_falls_back_to_mode_norm_without_distributed(backend):
    assert not dist.is_initialized()
    layer = randomize(mn_triton.SyncModeNorm(4, num_modes=2))
    plain = mn_triton.ModeNorm(4, num_modes=2)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(3, 4, 2, 2)
    assert torch.equal(layer(x), plain(x))
    layer.eval(), plain.eval()
    assert torch.equal(layer(x), plain(x))


def test_synchronising_backward_refuses_create_graph(backend, group_of_one):
    """A synchronising SyncModeNorm is first-order only, like nn.SyncBatchNorm: a backward
    with create_graph=True raises instead of giving second derivatives that miss terms."""
    layer = randomize(mn_triton.SyncModeNorm(4, num_modes=2))
    x = torch.randn(3, 4, 2, 2, requires_grad=True)
    y, *_ = _SyncModeNormFunction.apply(
        x, layer.gate.weight, layer.gate.bias, layer.weight, layer.bias, layer.eps, None
    )
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [("eps", 0.0, ValueError), ("momentum", 1.5, ValueError), ("momentum", "0.1", TypeError)],
)
def test_synchronising_checks_what_is_set_after_construction(name, value, error, synchronising):
    """eps and momentum set after construction are checked as ModeNorm checks them, before
    the step is counted or anything exchanged (eps = 0 gave non-finite outputs, momentum 1.5
    estimates past the batch's, "0.1" a TypeError about indices after the exchange)."""
    layer = mn_triton.SyncModeNorm(3)
    setattr(layer, name, value)
    with pytest.raises(error, match=f"SyncModeNorm: .*{name}"):
        layer(torch.randn(4, 3, 2, 2))
    assert int(layer.num_batches_tracked) == 0
    plain = mn_triton.ModeNorm(3)
    setattr(plain, name, value)
    with pytest.raises(error, match=name):
        plain(torch.randn(4, 3, 2, 2))
    assert int(plain.num_batches_tracked) == 0


def test_compiled_synchronising_layer_equals_eager(backend, synchronising_group_of_one):
    """torch.compile of a model with a synchronising SyncModeNorm (a group of one, taken as
    synchronising): on torch ops dynamo traces it whole (fullgraph); on the kernels it runs
    eagerly behind a graph break (dynamo crashed inside the kernels' launch path). Outputs,
    gradients and running estimates as in eager calls."""
    torch._dynamo.reset()
    eager = nn.Sequential(nn.Identity(), randomize(mn_triton.SyncModeNorm(4, num_modes=2)))
    model = copy.deepcopy(eager)
    x, dy = torch.randn(3, 4, 3, 3), torch.randn(3, 4, 3, 3)
    fullgraph = backend == "torch"
    if not fullgraph:  # the kernels' call is left out of the graph, to run eagerly
        with pytest.raises(torch._dynamo.exc.Unsupported, match="_synchronise_eagerly"):
            torch.compile(copy.deepcopy(model), backend="aot_eager", fullgraph=True)(x)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=fullgraph)
    for _ in range(2):  # the second step from the compiled code's cache
        y, grads = forward_backward(eager, x, dy)
        y_compiled, grads_compiled = forward_backward(compiled, x, dy)
        assert_close(y_compiled, y, 1e-6, "output")
        for name, grad in grads.items():
            key = name if name == "input" else f"_orig_mod.{name}"
            assert_close(grads_compiled[key], grad, 1e-6, f"grad of {name}")
        for name, buffer in eager.named_buffers():
            assert torch.equal(dict(model.named_buffers())[name], buffer), name


def test_synchronising_refuses_wrapper_tensor_subclasses(synchronising):
    """A `__torch_dispatch__` subclass (DTensor, a logging tensor) cannot reach the
    synchronising kernels and collectives: refused by name before anything runs (ModeNorm
    runs such tensors through its custom ops)."""
    from torch.testing._internal.logging_tensor import LoggingTensor

    layer = mn_triton.SyncModeNorm(3)
    with pytest.raises(TypeError, match="SyncModeNorm: .*LoggingTensor"):
        layer(LoggingTensor(torch.randn(4, 3, 2, 2)))
    assert int(layer.num_batches_tracked) == 0
    layer.gate.bias = nn.Parameter(LoggingTensor(layer.gate.bias.detach().clone()))
    with pytest.raises(TypeError, match=r"\(got LoggingTensor\)"):  # named wherever it is
        layer(torch.randn(4, 3, 2, 2))


def test_convert_sync_modenorm_keeps_state():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        mn_triton.ModeNorm2d(4, num_modes=3),
        torch.nn.Sequential(torch.nn.ReLU(), mn_triton.ModeNorm1d(4)),
    ).double()
    randomize(model[1])
    model.eval()
    # The conversion replaces children in place: keep the state to compare with.
    expected = {key: value.clone() for key, value in model.state_dict().items()}
    converted = mn_triton.SyncModeNorm.convert_sync_modenorm(model, process_group=None)
    assert isinstance(converted[1], mn_triton.SyncModeNorm)
    assert isinstance(converted[2][1], mn_triton.SyncModeNorm)
    assert converted[1].num_modes == 3 and converted[1].gate.weight.dtype == torch.float64
    assert not converted[1].training
    assert set(converted.state_dict()) == set(expected)
    for key, value in expected.items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_convert_sync_modenorm_takes_over_parameters_and_buffers():
    """As convert_sync_batchnorm: the same tensors, not copies (the gate included), so an
    optimizer built before the conversion trains the converted layer."""
    layer = mn_triton.ModeNorm2d(4, num_modes=2)
    originals = dict(layer.named_parameters()) | dict(layer.named_buffers())
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    converted = mn_triton.SyncModeNorm.convert_sync_modenorm(layer)
    assert isinstance(converted, mn_triton.SyncModeNorm)
    tensors = dict(converted.named_parameters()) | dict(converted.named_buffers())
    assert tensors.keys() == originals.keys()
    assert all(tensors[key] is value for key, value in originals.items())
    before = {key: p.detach().clone() for key, p in converted.named_parameters()}
    converted(torch.randn(3, 4, 2, 2) + 1).square().sum().backward()
    optimizer.step()
    assert all(not torch.equal(p, before[key]) for key, p in converted.named_parameters())


def test_convert_sync_modenorm_keeps_a_parametrized_weight():
    """Before, the new layer kept its meta-device placeholder weight beside an idle
    `parametrizations` child, and failed at its first forward."""
    layer = randomize(mn_triton.ModeNorm2d(4))
    nn.utils.parametrize.register_parametrization(layer, "weight", AbsParametrization())
    x = torch.randn(3, 4, 2, 2)
    expected = layer(x)
    synced = mn_triton.SyncModeNorm.convert_sync_modenorm(nn.Sequential(layer))[0]
    assert isinstance(synced, mn_triton.SyncModeNorm)
    assert synced.parametrizations.weight.original is layer.parametrizations.weight.original
    assert "weight" not in synced.state_dict()
    torch.testing.assert_close(synced(x), expected, rtol=0, atol=0)


def test_convert_sync_modenorm_keeps_a_parametrization_holding_a_tensor():
    """A pruning mask (a buffer of the parametrization's own): registered anew on the new
    layer's meta-device placeholder, it raised a device mismatch."""
    from torch.ao.pruning import FakeSparsity

    layer = randomize(mn_triton.ModeNorm2d(4))
    mask = FakeSparsity(torch.tensor([1.0, 0.0, 1.0, 1.0]))
    nn.utils.parametrize.register_parametrization(layer, "weight", mask)
    x = torch.randn(3, 4, 2, 2)
    expected = layer(x)
    synced = mn_triton.SyncModeNorm.convert_sync_modenorm(nn.Sequential(layer))[0]
    assert synced.parametrizations.weight[0] is mask
    torch.testing.assert_close(synced(x), expected, rtol=0, atol=0)


def test_convert_sync_modenorm_passes_the_process_group():
    """The group given to the conversion reaches every SyncModeNorm (it is only stored
    until a distributed forward, so any handle does here)."""
    group = object()
    model = torch.nn.Sequential(mn_triton.ModeNorm2d(4), mn_triton.ModeNorm1d(4))
    converted = mn_triton.SyncModeNorm.convert_sync_modenorm(model, process_group=group)
    assert converted[0].process_group is group and converted[1].process_group is group


def test_convert_sync_modenorm_draws_no_random_numbers():
    """As convert_sync_batchnorm: after the same seed, a run that converts samples what one
    that does not samples (the new layers' own initialisation is replaced anyway)."""
    model = torch.nn.Sequential(mn_triton.ModeNorm2d(4), mn_triton.ModeNorm1d(4))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    converted = mn_triton.SyncModeNorm.convert_sync_modenorm(model)
    assert isinstance(converted[1], mn_triton.SyncModeNorm)
    assert torch.equal(torch.rand(3), expected)
    assert not any(t.is_meta for t in [*converted.parameters(), *converted.buffers()])


def test_convert_sync_modenorm_moves_sync_layers_to_the_new_group():
    """As convert_sync_batchnorm: a SyncModeNorm converted again synchronises over the group
    given now, with the same tensors."""
    old, new = object(), object()
    layer = mn_triton.SyncModeNorm(4, process_group=old)
    tensors = [*layer.parameters(), *layer.buffers()]
    converted = mn_triton.SyncModeNorm.convert_sync_modenorm(layer, process_group=new)
    assert converted.process_group is new
    now = [*converted.parameters(), *converted.buffers()]
    assert all(a is b for a, b in zip(now, tensors, strict=True))


# A tiny DDP training run: ResNet-20 (benchmarks/models.py, narrow) with SyncModeNorm over 2
# processes trains exactly like one process on the whole batch. SiLU and a small learning rate
# keep fp32 rounding from forking the runs (see tests/test_e2e.py).
DDP_STEPS, DDP_BATCH = 4, 8


def _resnet20():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import models
    import torch.nn.functional as F

    torch.manual_seed(7)
    return models.build_model("resnet20", "mn_triton", num_modes=2, width=0.25, activation=F.silu)


def _ddp_batches():
    gen = torch.Generator().manual_seed(11)
    return [
        (
            torch.randn(DDP_BATCH, 3, 8, 8, generator=gen),
            torch.randint(10, (DDP_BATCH,), generator=gen),
        )
        for _ in range(DDP_STEPS)
    ]


def _train(model, batches, rows=slice(None)):
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def _ddp_run(rank, backend, out_dir):
    mn_triton.set_backend(backend)
    model = mn_triton.SyncModeNorm.convert_sync_modenorm(_resnet20())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = DDP_BATCH // WORLD
    losses = _train(ddp, _ddp_batches(), slice(rank * half, (rank + 1) * half))
    global_losses = torch.stack(losses)
    dist.all_reduce(global_losses)  # each process's mean loss over its half
    torch.save({"losses": global_losses / WORLD, "state": model.state_dict()},
               Path(out_dir) / f"ddp{rank}.pt")  # fmt: skip


def _ddp_worker(rank, store, backend, out_dir):
    init_group(rank, store, WORLD)
    try:
        # In a function of its own, so that DDP (its reducer) is freed while the group still
        # exists: freed after destroy_process_group, it once (2026-12-07, a full local run)
        # hung a process there, its stack at the worker's return in native code, and the
        # test timed out; alone it passed.
        _ddp_run(rank, backend, out_dir)
    finally:
        dist.destroy_process_group()


def test_ddp_resnet20_with_sync_mode_norm_trains_like_one_process(backend, tmp_path):
    run_processes(_ddp_worker, backend, str(tmp_path), nprocs=WORLD)
    single = _resnet20()
    losses = torch.stack(_train(single, _ddp_batches()))
    for r in range(WORLD):
        got = torch.load(tmp_path / f"ddp{r}.pt")
        assert_close(got["losses"], losses, 1e-4, f"process {r}: loss per step")
        for name, value in single.state_dict().items():
            assert_close(got["state"][name].float(), value.float(), 1e-4, f"process {r}: {name}")


def test_synchronising_launches_go_to_the_device_of_the_input(monkeypatch, group_of_one):
    """As test_kernels' test of the layers: the synchronising Function's kernel launches run
    inside backend.on_device_of (Triton launches on the current device only), and the mix
    runs on the kernels too: the batch's statistics, their merge across the processes (a
    torch-op merge instead, on the kernels' path, passed every other test), then the
    coefficients from the merged ones; the backward's two passes around the all_reduce."""
    calls = record_guarded_launches(monkeypatch)
    layer = randomize(mn_triton.SyncModeNorm(4, num_modes=2))
    x = torch.randn(3, 4, 2, 2, requires_grad=True)
    with mn_triton.use_backend("triton"):
        y, *_ = _SyncModeNormFunction.apply(
            x, layer.gate.weight, layer.gate.bias, layer.weight, layer.bias, layer.eps, None
        )
        y.sum().backward()
    assert sorted({name for name, _ in calls}) == [
        "merge_mode_stats", "mode_norm_backward", "mode_norm_batch_stats", "mode_norm_forward",
        "row_affine", "row_grad_sums", "row_moments", "shared_gates",
    ]  # fmt: skip
    assert all(guarded for _, guarded in calls), calls


@pytest.mark.parametrize("processes, k, c", [(1, 1, 3), (2, 3, 5), (5, 7, 37)])
def test_merge_kernel_matches_torch_merge(processes, k, c, monkeypatch):
    """kernels.mix.merge_mode_stats against the torch-op merge, in float64 so that any
    difference beyond rounding is a bug: masses of all sizes, a process without samples
    (all zeros), modes with less gate mass than float32's tiny, far-off means. Small channel
    blocks make several programs share the modes."""
    from mn_triton import mix
    from mn_triton.kernels import mix as kernel_mix
    from mn_triton.sync import _merge_gathered

    monkeypatch.setattr(kernel_mix, "MIX_TILE", 16)
    f64 = torch.float64
    mass = torch.rand(processes, k, dtype=f64) * 10
    mass[:, 0] = torch.tensor([3e-40, 2.0, 0.0, 1e-39, 5.0])[:processes]  # below float32 tiny
    center = torch.randn(processes, k, c, dtype=f64) * 4 + 100.0
    residual = center * torch.randn(processes, k, c, dtype=f64) * 1e-7
    var = torch.rand(processes, k, c, dtype=f64) + 0.01
    parts = [mass, center.flatten(1), residual.flatten(1), var.flatten(1)]
    gathered = torch.cat(parts, dim=1)
    if processes > 2:
        gathered[1] = 0.0  # a process without samples sends zeros
    want = _merge_gathered(gathered, k, c)
    merged = mix.ModeStats.unpacked(kernel_mix.merge_mode_stats(gathered, k, c), k, c)
    mass, center, residual, var = merged.mass, merged.center, merged.residual, merged.var
    assert_close(mass, want.mass, 1e-15, "mass")
    assert_close(center, want.center, 1e-12, "center")
    assert_close(var, want.var, 1e-12, "var")
    # μ − P is tiny beside P and takes the rounding of Σ_r u_r (summed in another order by
    # torch where a mode's mass is below tiny): judged as part of μ.
    assert_close(center + residual, want.absolute_mean(), 1e-12, "mean")


def test_merge_kernel_where_every_process_holds_a_mode_below_tiny(monkeypatch):
    """A mode with less gate mass than float32's tiny in every process (one without samples),
    so in the whole batch too: its σ² takes the spread of the processes' means through
    Σ_{n∈r} g·(m − μ_r) = (held_r − N_r)·μ_r, 0 unless N_r < tiny, which dominates here
    (means 100 apart). The kernel's merge against the torch-op merge, in float64."""
    from mn_triton import mix
    from mn_triton.kernels import mix as kernel_mix
    from mn_triton.sync import _merge_gathered

    monkeypatch.setattr(kernel_mix, "MIX_TILE", 16)
    processes, k, c = 3, 2, 5
    f64 = torch.float64
    mass = torch.rand(processes, k, dtype=f64) * 10
    mass[:, 0] = torch.tensor([3e-40, 1e-39, 0.0])
    center = torch.randn(processes, k, c, dtype=f64) * 100
    residual = center * torch.randn(processes, k, c, dtype=f64) * 1e-7
    var = torch.rand(processes, k, c, dtype=f64) + 0.01
    gathered = torch.cat([mass, center.flatten(1), residual.flatten(1), var.flatten(1)], dim=1)
    want = _merge_gathered(gathered, k, c)
    got = mix.ModeStats.unpacked(kernel_mix.merge_mode_stats(gathered, k, c), k, c)
    assert_close(got.mass, want.mass, 1e-15, "mass")
    assert_close(got.center, want.center, 1e-12, "center")
    assert_close(got.var, want.var, 1e-12, "var")
    assert_close(got.center + got.residual, want.absolute_mean(), 1e-12, "mean")


class _SynchronisingFunction(torch.nn.Module):
    """A ModeNorm's parameters through the synchronising Function itself (a process group of
    one does not make SyncModeNorm synchronise, but the Function exchanges all the same)."""

    def __init__(self, layer: mn_triton.ModeNorm) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.layer
        y, *_ = _SyncModeNormFunction.apply(x, m.gate.weight, m.gate.bias, m.weight, m.bias,
                                            m.eps, None)  # fmt: skip
        return y


def check_group_of_one_matches_mode_norm(device: str, dist_backend: str) -> None:
    """In a process group of one, the synchronising path (statistics, all_gather, merge,
    the backward's two passes around the all_reduce) gives ModeNorm's output and gradients.
    Shared with tests/test_gpu.py (NCCL, the compiled kernels)."""
    with _process_group_of_one(dist_backend):
        for channels in (5, 40):  # one channel block (the gates fused) and two
            layer = randomize(mn_triton.ModeNorm2d(channels, num_modes=3)).to(device)
            x = torch.randn(6, channels, 4, 3, device=device) * 2 + 3
            dy = torch.randn_like(x)
            y, grads = forward_backward(layer, x, dy)
            y_sync, grads_sync = forward_backward(_SynchronisingFunction(layer), x, dy)
            assert_close(y_sync, y, 1e-6, f"C={channels}: output")
            for name, grad in grads.items():
                key = name if name == "input" else f"layer.{name}"
                assert_close(grads_sync[key], grad, 1e-5, f"C={channels}: grad of {name}")


def test_running_estimates_of_empty_and_nan_batches_as_one_process(
    backend, synchronising_group_of_one
):
    """Through the synchronising path (a process group of one, taken as synchronising): a
    batch without samples leaves the running estimates as they are, and NaN statistics reach
    them, as in ModeNorm (the update is weighted by whether any process held a sample,
    which a NaN weighted by 0 still reaches)."""
    for x in (torch.empty(0, 3, 2, 2), torch.full((4, 3, 2, 2), float("nan"))):
        state = randomize(mn_triton.ModeNorm2d(3)).state_dict()
        sync, single = mn_triton.SyncModeNorm(3), mn_triton.ModeNorm2d(3)
        sync.load_state_dict(state)
        single.load_state_dict(state)
        sync(x), single(x)
        for name, buffer in single.named_buffers():
            got = dict(sync.named_buffers())[name]
            torch.testing.assert_close(got, buffer, equal_nan=True, msg=name)


@pytest.mark.parametrize("gates", ["inline", "computed_once", "computed_once_samples_split"])
def test_group_of_one_matches_mode_norm(backend, gates, monkeypatch):
    """Also with MN's gates computed once (kernels.mix.GATES_KERNEL_MIN_ELEMENTS, here for
    C = 40): ModeNorm computes them in its forward and keeps them for its backward,
    SyncModeNorm once, for its statistics, forward and backward. And with the 6 samples split
    into 3 blocks (kernels.mix.SPLIT_MIN_ROWS), merged before the processes' merge."""
    from mn_triton.kernels import mix as kernel_mix

    launches = spy_launches(monkeypatch, kernel_mix, "_mn_gates_kernel")
    monkeypatch.setattr(kernel_mix, "GATES_KERNEL_MIN_ELEMENTS", 2**62 if gates == "inline" else 0)
    if gates == "computed_once_samples_split":
        monkeypatch.setattr(kernel_mix, "SPLIT_MIN_ROWS", 2)
    check_group_of_one_matches_mode_norm("cpu", "gloo")
    kernel_launches = backend == "triton" and gates != "inline"
    assert len(launches) == (1 + 1 if kernel_launches else 0)


def test_lazily_negated_input_and_gradient_as_their_values(backend, synchronising_group_of_one):
    """Through the synchronising path (a group of one): x and dy whose memory holds their
    negation (`z.conj().imag`) are taken at their values, as ModeNorm takes them (the kernels
    read raw memory)."""
    x, dy = negated_view((4, 3, 2, 2)), negated_view((4, 3, 2, 2))
    layer = mn_triton.SyncModeNorm(3)
    results = []
    for x_in, dy_in in ((x, dy), (x.resolve_neg(), dy.resolve_neg())):
        x_in = x_in.detach().requires_grad_()
        y = layer(x_in)
        y.backward(dy_in)
        results.append((y, x_in.grad))
    for negated, plain in zip(*results, strict=True):
        torch.testing.assert_close(negated, plain, rtol=0, atol=0)


@pytest.mark.parametrize("x_layout", ["sliced", "dense"])
def test_synchronising_reads_a_three_level_layout_from_one_copy(
    x_layout, synchronising_group_of_one
):
    """As ModeNorm's ops (tests/test_mode_norm.py, `..._copied_once_per_call`), through the
    synchronising path: x and dy that the kernels would need three strided spatial levels
    to read are copied once per call (x forward, x and dy backward), with the same bits as
    contiguous ones; y and dx laid out as torch.empty_like(x)."""
    x, dy = three_level_input(x_layout, "sliced")
    layer = randomize(mn_triton.SyncModeNorm(3, num_modes=2))
    assert copies_per_three_level_call(layer, x, dy) == (1, 2)


def test_convert_sync_modenorm_keeps_the_hyperparameters():
    """eps, momentum (None too), track_running_stats and affine carry over, as
    convert_sync_batchnorm keeps BatchNorm's."""
    layer = mn_triton.ModeNorm2d(4, num_modes=3, eps=1e-3, momentum=0.05)
    layer.track_running_stats = False  # switched off after construction: estimates kept
    out = mn_triton.SyncModeNorm.convert_sync_modenorm(layer)
    assert (out.eps, out.momentum, out.track_running_stats) == (1e-3, 0.05, False)
    none = mn_triton.SyncModeNorm.convert_sync_modenorm(mn_triton.ModeNorm2d(4, momentum=None))
    assert none.momentum is None
    plain = mn_triton.SyncModeNorm.convert_sync_modenorm(mn_triton.ModeNorm2d(4, affine=False))
    assert not plain.affine and plain.weight is None


def _frozen_worker(rank, store, out_dir):
    init_group(rank, store, WORLD)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 3, 2, 2) + 1
        layer = mn_triton.SyncModeNorm(3).requires_grad_(False)  # a frozen norm
        x_local = x[3 * rank : 3 * rank + 3].clone().requires_grad_()
        layer(x_local).sin().sum().backward()
        torch.save(x_local.grad, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_frozen_sync_mode_norm_passes_the_input_gradient(tmp_path):
    """A SyncModeNorm whose parameters are frozen still gives its input the gradient that one
    process's ModeNorm over the whole batch gives (two gloo processes)."""
    run_processes(_frozen_worker, str(tmp_path), nprocs=WORLD)
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert all(g is not None for g in got), "no input gradient through a frozen SyncModeNorm"
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 2, 2) + 1).requires_grad_()
    mn_triton.ModeNorm2d(3).requires_grad_(False)(x).sin().sum().backward()
    torch.testing.assert_close(torch.cat(got), x.grad, rtol=1e-5, atol=1e-6)


# SyncModeNorm where the tests above do not reach: 16-bit inputs (float32 parameters, as under
# autocast), a non-default ε, momentum=None (the cumulative average) and rows of one element,
# over two steps; every parameter gradient (summed over the processes, as DDP does) against the
# float64 oracle; also one mode over 5-D inputs and K = 70. name: (shape, K, dtype, eps,
# channels_last)
SYNC_ORACLE_CASES = {
    "bfloat16_channels_last": ((5, 4, 3, 2), 3, torch.bfloat16, 1.0, True),
    "float16_1d": ((5, 4, 6), 2, torch.float16, 0.5, False),
    "float32_rows_of_one": ((7, 5), 4, torch.float32, 1.0, False),
    "float32_5d_one_mode": ((5, 3, 2, 2, 3), 1, torch.float32, 0.1, False),
    "float32_many_modes": ((5, 3, 2), 70, torch.float32, 0.1, False),
}


def _sync_oracle_problem(case: str, step: int, seed: int):
    """The layer (one process's ModeNorm), the whole batch and dy of `case` at `step`, drawn
    from `seed` (the test's: every process draws the same)."""
    shape, k, dtype, eps, channels_last = SYNC_ORACLE_CASES[case]
    gen = torch.Generator().manual_seed(seed + step)
    x = torch.randn(shape, generator=gen) * 2 + 1
    dy = torch.randn(shape, generator=gen).to(dtype)
    x = x.to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    layer = randomize(mn_triton.ModeNorm(shape[1], num_modes=k, eps=eps, momentum=None))
    return layer, x, dy


def _sync_oracle_worker(rank, store, backend, seed, out_dir):
    init_group(rank, store, WORLD)
    try:
        mn_triton.set_backend(backend)
        results = {}
        for case in SYNC_ORACLE_CASES:
            single, _, _ = _sync_oracle_problem(case, 0, seed)
            layer = mn_triton.SyncModeNorm(
                single.num_features, num_modes=single.num_modes, eps=single.eps, momentum=None
            )
            layer.load_state_dict(single.state_dict())
            for step in range(2):
                _, x, dy = _sync_oracle_problem(case, step, seed)
                rows = slice(0, 3) if rank == 0 else slice(3, None)
                y, grads = forward_backward(layer, x[rows], dy[rows])
                for name, g in grads.items():
                    if name != "input":
                        dist.all_reduce(g)  # what DDP does (it then divides by the world size)
                buffers = {n: b.clone() for n, b in layer.named_buffers()}
                results[case, step] = {"output": y, **grads, **buffers}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_in_16_bit_with_eps_and_cumulative_average_against_float64(backend, tmp_path):
    """Output, dx, all four parameter gradients and the running estimates of SyncModeNorm
    over 2 processes, two steps, against the float64 oracle (SPEC §5): each within the
    dtype's tolerance (float32's for the float32 parameters and estimates), or 2× one
    process's own error on the data; gate gradients, ill-conditioned, as oracle_errors judges
    them (GATE_SLACK× a float32 evaluation's error). The other tests of the synchronising
    path keep ε = 1e-5, momentum = 0.1 or 0.3 and float32 inputs, and fuzz_sync checks no
    parameter gradient: a lost ε, a skipped cumulative update or parameter gradients rounded
    through the input's dtype there would pass them all."""
    seed = torch.initial_seed()  # the test's own (conftest._fresh_seed)
    run_processes(_sync_oracle_worker, backend, seed, str(tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for case in SYNC_ORACLE_CASES:
        single, _, _ = _sync_oracle_problem(case, 0, seed)
        oracle, low = reference_twin(single), reference_twin(single, torch.float32)
        for step in range(2):
            _, x, dy = _sync_oracle_problem(case, step, seed)
            runs = {}
            for key, module, xs, dys in [("one", single, x, dy),
                                         ("oracle", oracle, x.double(), dy.double()),
                                         ("float32", low, x.float(), dy.float())]:  # fmt: skip
                y, grads = forward_backward(module, xs, dys)
                runs[key] = {"output": y, **grads,
                             **{n: b.clone() for n, b in module.named_buffers()}}  # fmt: skip
            got = {name: torch.cat([r[case, step][name] for r in ranks])
                   for name in ("output", "input")}  # fmt: skip
            for name in runs["oracle"]:
                if name in ("output", "input"):
                    tol = TOLERANCE[x.dtype]
                else:
                    if name == "num_batches_tracked":
                        continue
                    tol = TOLERANCE[torch.float32]
                    for r in ranks:  # every process holds the same reduced gradient, estimates
                        assert_close(r[case, step][name].double(),
                                     ranks[0][case, step][name].double(), 0.0, name)  # fmt: skip
                    got[name] = ranks[0][case, step][name]
                ref = runs["oracle"][name]
                bound = max(tol, 2 * rel_err(runs["one"][name], ref))
                if name in GATE_PARAMS:
                    bound = max(bound, GATE_SLACK * rel_err(runs["float32"][name], ref))
                err = rel_err(got[name], ref)
                assert err <= bound, f"{case}, step {step}, {name}: {err:.2e} > {bound:.1e}"


def _subgroup_problem(pair: int):
    """Pair `pair`'s layer and whole batch (6 samples, 3 per process): each pair its own."""
    gen = torch.Generator().manual_seed(40 + pair)
    x = torch.randn(6, 3, 2, 2, generator=gen) * (1 + pair) + 3 * pair
    dy = torch.randn(x.shape, generator=gen)
    torch.manual_seed(pair)
    return randomize(mn_triton.ModeNorm2d(3, num_modes=2)), x, dy


def _subgroup_worker(rank, store, out_dir):
    init_group(rank, store, 4)
    try:
        mn_triton.set_backend("torch")  # the group travels the same way on the kernels
        groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every process makes both
        single, x, dy = _subgroup_problem(rank // 2)
        layer = mn_triton.SyncModeNorm(3, num_modes=2, process_group=groups[rank // 2])
        layer.load_state_dict(single.state_dict())
        rows = slice(3 * (rank % 2), 3 * (rank % 2) + 3)
        y, grads = forward_backward(layer, x[rows], dy[rows])
        result = {"y": y, "dx": grads["input"], "state": layer.state_dict()}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_statistics_span_the_process_group_only(tmp_path):
    """4 gloo processes in two groups of 2 (process_group), each pair with a batch of its
    own: each pair gives what one process holding the pair's batch gives. The other tests
    use the default group, where a world size, all_gather or all_reduce taken over the
    default group instead of process_group gives the same numbers."""
    run_processes(_subgroup_worker, str(tmp_path), nprocs=4)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(4)]
    for pair in range(2):
        single, x, dy = _subgroup_problem(pair)
        y, grads = forward_backward(single, x, dy)
        got = ranks[2 * pair : 2 * pair + 2]
        assert_close(torch.cat([r["y"] for r in got]), y, 1e-5, f"pair {pair}: output")
        assert_close(torch.cat([r["dx"] for r in got]), grads["input"], 1e-5, f"pair {pair}: dx")
        for name, value in single.state_dict().items():
            for r in got:
                assert_close(r["state"][name].float(), value.float(), 1e-5, f"pair {pair}: {name}")


@pytest.mark.parametrize(
    "options",
    [{"affine": False}, {"bias": False}, {"track_running_stats": False}],
    ids=["no_affine", "no_bias", "no_running_estimates"],
)
def test_synchronising_layer_without_optional_tensors_as_mode_norm(
    options, backend, synchronising_group_of_one
):
    """Through the synchronising path (a group of one, taken as synchronising): a layer
    without weight and bias, without bias, or without running estimates gives ModeNorm's
    output, gradients and buffers. The other tests of that path use all of them, where a
    gradient returned for an absent weight, or an update of absent estimates, passes."""
    single = randomize(mn_triton.ModeNorm2d(3, **options))
    sync = mn_triton.SyncModeNorm(3, **options)
    sync.load_state_dict(single.state_dict())
    x, dy = torch.randn(4, 3, 2, 2) + 1, torch.randn(4, 3, 2, 2)
    y, grads = forward_backward(single, x, dy)
    y_sync, grads_sync = forward_backward(sync, x, dy)
    assert_close(y_sync, y, 1e-6, "output")
    assert grads_sync.keys() == grads.keys()
    for name, grad in grads.items():
        assert_close(grads_sync[name], grad, 1e-5, f"grad of {name}")
    for name, value in single.state_dict().items():
        assert_close(sync.state_dict()[name].double(), value.double(), 1e-6, name)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4)], ids=["no_samples", "no_positions"])
def test_synchronising_input_without_elements_as_mode_norm(
    shape, backend, synchronising_group_of_one
):
    """Through the synchronising path (a group of one, taken as synchronising): an input
    without elements gives ModeNorm's zero parameter gradients and leaves the running
    estimates as ModeNorm (and BatchNorm) leaves them. Rows of no values (L = 0) once
    brought gate mass (zero statistics) into the merge, and the estimates moved toward 0;
    the backward divides by L (clamped at 1)."""
    single = randomize(mn_triton.ModeNorm2d(3))
    sync = mn_triton.SyncModeNorm(3)
    sync.load_state_dict(single.state_dict())
    x, dy = torch.randn(shape), torch.randn(shape)
    y, grads = forward_backward(single, x, dy)
    y_sync, grads_sync = forward_backward(sync, x, dy)
    assert y_sync.shape == y.shape and grads_sync["input"].shape == x.shape
    for name, grad in grads.items():
        assert torch.equal(grads_sync[name], grad), f"grad of {name}"
    for name, value in single.state_dict().items():
        assert torch.equal(sync.state_dict()[name], value), name


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("weight", torch.ones(5), r"weight must have shape \(4,\), got \(5,\)"),
        ("bias", torch.zeros(3), r"bias must have shape \(4,\), got \(3,\)"),
        ("gate.weight", torch.ones(2, 3), r"gate_weight must have shape \(2, 4\)"),
        ("gate.bias", torch.zeros(3), r"gate_bias must have shape \(2,\)"),
        ("weight", torch.ones(4, device="meta"), "weight is on meta but the input is on cpu"),
    ],
    ids=["weight", "bias", "gate_weight", "gate_bias", "weight_device"],
)
def test_synchronising_checks_the_parameters_as_mode_norm(
    name, value, match, backend, synchronising_group_of_one
):
    """A parameter of the wrong shape, or on another device than the input, is refused by
    name before anything runs or is exchanged, as ModeNorm refuses it (README: bad input
    raises before any kernel runs). The synchronising path once passed them on unchecked: on
    the kernels a bias one element short was read past its end (garbage, or an illegal access
    on a GPU) and a gate of the wrong width taken without complaint; a weight on another
    device failed deep inside (meta: "Cannot copy out of meta tensor")."""
    layer, plain = mn_triton.SyncModeNorm(4), mn_triton.ModeNorm(4)
    for module in (layer, plain):  # "gate.weight" is the gate's own "weight"
        owner, attr = (module.gate, name[5:]) if name.startswith("gate.") else (module, name)
        setattr(owner, attr, nn.Parameter(value))
    with pytest.raises(ValueError, match=f"SyncModeNorm: {match}"):
        layer(torch.randn(3, 4, 2, 2))
    assert int(layer.num_batches_tracked) == 0
    with pytest.raises(ValueError, match=match):
        plain(torch.randn(3, 4, 2, 2))
    assert int(plain.num_batches_tracked) == 0
