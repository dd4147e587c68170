"""The benchmark harness itself: the nets' shapes and wiring, the training step, the timing
helpers and the layer cases (benchmarks/models.py, train_step.py, measure.py, layers.py).

These are the parts a benchmark row silently depends on: a wrong stride, a missing ReLU, a
reference net built from mn_triton's layers or an off-by-one in the warm-up count would
still give plausible numbers. Everything runs on tiny inputs on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mn_triton
import reference

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = str(REPO / "benchmarks")  # the harness modules live there
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import layers  # noqa: E402
import measure  # noqa: E402
import models  # noqa: E402
import train_step  # noqa: E402
from grid import Case  # noqa: E402

CPU = torch.device("cpu")
L2 = measure.L2_FLUSH_BYTES


def _bn():
    return models.norm_factory("batchnorm")


def _timing(ms_p50=4.0, reps=7):
    return measure.Timing(ms_p50 / 2, ms_p50, ms_p50 * 2, None, reps)


def _case(**fields):
    base = dict(
        op="batch_norm", provider="native", mode="full", dtype="float32", layout="nchw",
        n=2, c=3, h=4, w=4, k=None,
    )  # fmt: skip
    return Case(**{**base, **fields})


# ------------------------------------ models.py ----------------------------------------


def test_lenet_has_lenet5_layer_sizes_and_a_40_way_head():
    """LeNet-5's 6/16 conv channels, 120/84 hidden units, 16·5·5 = 400 flat features and the
    paper's 4 × 10 classes."""
    assert models.NUM_CLASSES["lenet"] == 40
    for net in (models.build_model("lenet"), models.LeNet(_bn())):
        shapes = {
            name: tuple(getattr(net, name).weight.shape)
            for name in ("conv1", "conv2", "fc1", "fc2", "head")
        }
        assert shapes == {
            "conv1": (6, 3, 5, 5),
            "conv2": (16, 6, 5, 5),
            "fc1": (120, 400),
            "fc2": (84, 120),
            "head": (40, 84),
        }


def test_lenet_forward_is_conv_norm_relu_pool_then_fc_norm_relu():
    """A hand-written forward: a ReLU follows every norm layer (a dropped one changes the
    output)."""
    net = models.build_model("lenet")
    x = torch.randn(4, 3, 32, 32)
    h = F.max_pool2d(F.relu(net.norm1(net.conv1(x))), 2)
    h = F.max_pool2d(F.relu(net.norm2(net.conv2(h))), 2)
    h = F.relu(net.norm3(net.fc1(h.flatten(1))))
    h = F.relu(net.norm4(net.fc2(h)))
    torch.testing.assert_close(net(x), net.head(h))


def test_lenet_fc_inputs_are_non_negative():
    """The inputs of fc2 and the head come out of a ReLU."""
    net = models.build_model("lenet")
    seen = {}
    for name in ("fc2", "head"):
        getattr(net, name).register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, args[0])
        )
    net(torch.randn(4, 3, 32, 32))
    assert all((seen[name] >= 0).all() for name in ("fc2", "head"))
    assert all((seen[name] == 0).any() for name in ("fc2", "head"))  # the ReLUs do clip


def test_resnet_stages_halve_the_maps_and_double_the_channels():
    """ResNet-20 on 32×32: stage 1 keeps 16×32×32, stages 2 and 3 start with stride 2."""
    net = models.build_model("resnet20")
    shapes = []
    for block in net.blocks:
        block.register_forward_hook(lambda m, args, out: shapes.append(tuple(out.shape[1:])))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert shapes == [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3


@pytest.mark.parametrize("in_planes, planes, stride", [(4, 8, 2), (8, 8, 1)])
def test_basic_block_is_relu_of_residual_plus_shortcut(in_planes, planes, stride):
    """out = relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x)); the shortcut is a
    projection (1×1 conv, stride, norm) where the shape changes, the identity elsewhere."""
    block = models.BasicBlock(in_planes, planes, stride, _bn())
    if stride == 1 and in_planes == planes:
        assert isinstance(block.shortcut, nn.Identity)
    else:
        conv = block.shortcut[0]
        assert (conv.kernel_size, conv.stride) == ((1, 1), (stride, stride))
    x = torch.randn(2, in_planes, 6, 6)
    out = block.norm2(block.conv2(F.relu(block.norm1(block.conv1(x)))))
    torch.testing.assert_close(block(x), F.relu(out + block.shortcut(x)))


def test_make_norm_builds_each_kinds_own_class():
    """The exact class per kind and dim: a "reference" that built mn_triton's layers would
    make tests/test_e2e.py compare mn_triton with itself."""
    expected = {
        ("batchnorm", 1): nn.BatchNorm1d,
        ("batchnorm", 2): nn.BatchNorm2d,
        ("mn_triton", 1): mn_triton.ModeNorm1d,
        ("mn_triton", 2): mn_triton.ModeNorm2d,
        ("reference", 1): reference.ModeNorm1d,
        ("reference", 2): reference.ModeNorm2d,
    }
    for (kind, dim), cls in expected.items():
        layer = models.make_norm(kind, 5, dim, num_modes=3)
        assert type(layer) is cls, (kind, dim)
        assert layer.num_features == 5
        if kind != "batchnorm":
            assert layer.num_modes == 3
    assert models.norm_factory("reference", 4)(6, 1).num_modes == 4


def test_resnet_convs_use_he_init_fan_out():
    """kaiming_normal_(mode="fan_out", nonlinearity="relu"): std √(2 / fan_out), which for
    the convs that widen (fan_out = 2·fan_in) is far from fan_in's and PyTorch's default."""
    torch.manual_seed(0)
    net = models.build_model("resnet20")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 21
    for conv in convs:
        out_c, in_c, kh, kw = conv.weight.shape
        fan_in, fan_out = in_c * kh * kw, out_c * kh * kw
        std = conv.weight.std().item()
        assert std == pytest.approx(math.sqrt(2 / fan_out), rel=0.15)
        if conv is not net.conv:  # the stem's 3 → 16 is close to the default either way
            assert std > 1.5 / math.sqrt(3 * fan_in)  # PyTorch's default: U(±1/√fan_in)
    widening = net.blocks[3].conv1.weight  # 16 → 32 channels, 3×3
    assert widening.std().item() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.1)


def test_resnet_forward_is_stem_relu_blocks_average_pool_head():
    """A hand-written forward of the whole net: ReLU after the stem's norm, the blocks, global
    average pooling (not max) and the linear head."""
    net = models.build_model("resnet20", width=0.25)
    x = torch.randn(2, 3, 16, 16)
    h = net.blocks(F.relu(net.norm(net.conv(x))))
    torch.testing.assert_close(net(x), net.head(h.mean(dim=(2, 3))))


def test_resnet_parameter_counts_are_he_et_als_plus_the_projections():
    """With BatchNorm: He et al.'s option-A ResNet-20 and ResNet-56 (0.27 M, 0.85 M; convs
    without biases, as before any norm layer) plus the two option-B projections (1×1 conv
    and norm: 16·32 + 32·64 weights and 2·(32 + 64) affine parameters)."""
    projections = 16 * 32 + 32 * 64 + 2 * (32 + 64)
    for name, option_a in (("resnet20", 269_722), ("resnet56", 853_018)):
        net = models.build_model(name)
        assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d)), name
        assert sum(p.numel() for p in net.parameters()) == option_a + projections, name


def test_every_layer_of_a_net_takes_the_activation_asked_for():
    """tests/test_e2e.py trains with SiLU (ReLU's kinks fork two equal fp32 runs): every block
    must use it, not only the stem."""
    for name in models.MODELS:
        net = models.build_model(name, width=0.25, image_size=16, activation=F.silu)
        acts = [m.act for m in net.modules() if hasattr(m, "act")]
        assert acts and all(act is F.silu for act in acts), name


def test_lenet_parameter_count_is_lenet5s_with_four_norm_layers():
    """conv 3→6 and 6→16 (5×5, with biases), fc 400→120→84→40 (with biases) and 2·(6 + 16 +
    120 + 84) BatchNorm affine parameters."""
    weights = (3 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84)
    head = 84 * 40 + 40
    norms = 2 * (6 + 16 + 120 + 84)
    net = models.build_model("lenet")
    assert sum(p.numel() for p in net.parameters()) == weights + head + norms


# ---------------------------------- train_step.py --------------------------------------


def test_optimizer_is_the_benchmarks_sgd():
    opt = train_step.make_optimizer(nn.Linear(2, 2))
    assert type(opt) is torch.optim.SGD
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)
    assert train_step.make_optimizer(nn.Linear(2, 2), lr=0.03).param_groups[0]["lr"] == 0.03


def test_step_takes_an_sgd_step_at_the_given_lr():
    """The first step (empty momentum buffer): p ← p − lr·(∇loss + 1e-4·p)."""
    model = nn.Linear(3, 4)
    x, y = torch.randn(5, 3), torch.randint(4, (5,))
    before = [p.detach().clone() for p in model.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    loss = train_step.make_step(model, lr=0.5)(x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(nn.functional.linear(x, *before), y))
    for p, p0, g in zip(model.parameters(), before, grads, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.5 * (g + 1e-4 * p0))


def test_step_zeroes_grads_each_step():
    """Two steps at lr 0 on one batch: .grad is one fresh gradient, not the sum of two."""
    model = nn.Linear(3, 4)
    x, y = torch.randn(5, 3), torch.randint(4, (5,))
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    step = train_step.make_step(model, lr=0.0)
    step(x, y)
    step(x, y)
    for p, g in zip(model.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_cli_settings_full_quick_and_overrides():
    def settings(*argv):
        s = train_step.settings_from(train_step.parse_args(list(argv)))
        return s.batch, s.warmup, s.steps, s.run_size

    assert settings("--full") == (128, 10, 50, "full")
    assert settings() == (128, 10, 50, "full")
    assert settings("--quick") == (32, 2, 5, "quick")
    overridden = settings("--quick", "--batch", "7", "--warmup", "0", "--steps", "3")
    assert overridden == (7, 0, 3, "quick")
    assert settings("--full", "--warmup", "0") == (128, 0, 50, "full")
    assert settings("--warmup", "4", "--steps", "9", "--batch", "16") == (16, 4, 9, "full")


@pytest.mark.parametrize("exec_mode", ["eager", "cudagraph"])
def test_measure_variant_runs_warmup_plus_steps_in_batch_order(exec_mode, monkeypatch):
    """Step 0 is timed on its own (setup), then warmup − 1 more warm-up steps and the timed
    steps: warmup + steps calls in all, cycling through the batches from the first. A
    CUDA-graph step's peak memory counts the warm-up, where its graphs are recorded."""
    calls, time_fn_args = [], []
    real_time_fn = measure.time_fn

    def spy(fn, device, warmup, reps, max_seconds, peak_from_warmup):
        time_fn_args.append((warmup, reps, peak_from_warmup))
        return real_time_fn(fn, device, warmup, reps, max_seconds, peak_from_warmup)

    monkeypatch.setattr(measure, "time_fn", spy)
    batches = [(torch.full((1,), float(i)), torch.zeros(1)) for i in range(train_step.N_BATCHES)]
    settings = train_step.Settings(batch=2, warmup=3, steps=4, max_seconds_per_variant=1e9)
    variant = train_step.Variant("lenet", "batchnorm", 0, exec_mode)

    def step(x, y):
        calls.append(int(x.item()))
        sum(range(100))  # a step that takes measurable time
        return x

    row = train_step.measure_variant(variant, settings, CPU, batches, step=step)
    assert time_fn_args == [(2, 4, exec_mode == "cudagraph")]
    assert calls == [0, 1, 2, 3, 0, 1, 2]
    assert row["reps"] == 4


def test_synthetic_batches_are_seeded():
    classes = 3
    settings = train_step.Settings(batch=64, image_size=8, seed=5)

    def draw(s):
        return train_step.synthetic_batches(classes, s, CPU)

    first = draw(settings)
    torch.manual_seed(123)  # the global RNG plays no part
    again = draw(settings)
    other = draw(train_step.Settings(batch=64, image_size=8, seed=6))
    assert len(first) == train_step.N_BATCHES
    for (x, y), (x2, y2), (x3, _) in zip(first, again, other, strict=True):
        assert x.shape == (64, 3, 8, 8) and x.dtype == torch.float32
        assert y.shape == (64,) and y.dtype == torch.int64
        assert y.min() == 0 and y.max() == classes - 1
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert not torch.equal(x, x3)
    assert not torch.equal(first[0][0], first[1][0])  # distinct batches


def test_make_row_images_per_s_and_columns():
    settings = train_step.Settings(batch=32, run_id="r1", run_size="quick", width=0.5)
    variant = train_step.Variant("lenet", "batchnorm", 0, "eager")
    row = train_step.make_row(variant, settings, CPU, _timing(4.0, reps=7), 1.23456)
    assert row["images_per_s"] == pytest.approx(8000.0)
    assert (row["N"], row["C"], row["H"], row["W"], row["K"]) == (32, 3, 32, 32, "")
    assert (row["reps"], row["setup_s"], row["run_id"], row["run_size"]) == (
        7, 1.235, "r1", "quick",
    )  # fmt: skip
    assert (row["provider"], row["exec"], row["model"], row["width"]) == (
        "native", "eager", "lenet", 0.5,
    )  # fmt: skip


def test_make_row_keeps_exec_and_notes_of_compiled_variants():
    settings = train_step.Settings(batch=8)
    for exec_mode in ("compiled", "cudagraph"):
        variant = train_step.Variant("resnet20", "reference", 2, exec_mode)
        row = train_step.make_row(variant, settings, CPU, _timing(), 0.0, notes="graphs=1")
        assert (row["exec"], row["model"], row["K"]) == (exec_mode, "resnet20", 2)
        assert row["notes"] == "graphs=1"


def test_overhead_lines_pair_mn_rows_with_batchnorm_of_same_model_and_exec():
    def row(model, exec_mode, provider, k, ms):
        return {"model": model, "exec": exec_mode, "provider": provider, "K": k, "ms_p50": ms}

    rows = [
        row("lenet", "eager", "native", "", 2.0),
        row("lenet", "eager", "triton", 6, 3.0),
        row("lenet", "compiled", "triton", 6, 9.0),  # no compiled BatchNorm row
        row("resnet20", "eager", "reference", 2, 5.0),  # no ResNet BatchNorm row
    ]
    lines = train_step.overhead_lines(rows)
    assert len(lines) == 1
    assert "lenet" in lines[0] and "triton" in lines[0] and "K=6" in lines[0]
    assert "1.500× BatchNorm (+50.0%)" in lines[0]


@pytest.mark.parametrize("full", [False, True])
def test_main_on_a_cpu_forces_quick_unless_full(monkeypatch, tmp_path, capsys, full):
    seen = {}

    def fake_run_all(variants, settings, device, data=None, max_seconds=math.inf, sink=None):
        seen.update(variants=variants, settings=settings, device=device)
        return train_step.RunResult()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_step, "run_all", fake_run_all)
    monkeypatch.setattr(train_step.records, "DATA_DIR", tmp_path)
    argv = ["--models", "lenet"] + (["--full"] if full else [])
    assert train_step.main(argv) == 0
    settings = seen["settings"]
    assert seen["device"].type == "cpu"
    assert {v.exec for v in seen["variants"]} == {"eager"}
    if full:
        assert (settings.batch, settings.run_size) == (128, "full")
        assert "QUICK" not in capsys.readouterr().err
    else:
        assert (settings.batch, settings.warmup, settings.steps) == (32, 2, 5)
        assert settings.run_size == "quick"
        assert "QUICK" in capsys.readouterr().err


def test_each_run_writes_its_own_training_step_file(monkeypatch, tmp_path):
    """Rows go to train_step-<run id>.csv: a run never appends to a file another run (or a
    commit) holds, so unpacking two GPU parts' archives cannot lose one part's rows."""

    def fake_run_all(variants, settings, device, data=None, max_seconds=math.inf, sink=None):
        variant = train_step.Variant("lenet", "batchnorm", 0, "eager")
        sink(train_step.make_row(variant, settings, device, _timing(), 0.1))
        return train_step.RunResult()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_step, "run_all", fake_run_all)
    monkeypatch.setattr(train_step.records, "DATA_DIR", tmp_path)
    for run_id in ("x-part1", "x-part2"):
        assert train_step.main(["--models", "lenet", "--run-id", run_id]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["train_step-x-part1.csv", "train_step-x-part2.csv"]
    assert train_step.main(["--models", "lenet", "--run-id", "y", "--out", "mine"]) == 0
    assert (tmp_path / "mine.csv").is_file()


def test_compile_guesses_follow_the_compiles_seen_down_to_a_tenth():
    """From warm compile caches a compile takes a fraction of its cold guess: later guesses
    scale by the slowest ratio seen (LeNet's 5 s of 25 s: 0.2), not below COMPILE_GUESS_FLOOR,
    so a ResNet-56 pair is guessed at 36 s rather than 90 s."""
    v = train_step.Variant
    variants = [v("lenet", "batchnorm", 0, "compiled"), v("lenet", "mn_triton", 6, "compiled"),
                v("resnet56", "batchnorm", 0, "compiled"),
                v("resnet56", "mn_triton", 2, "compiled")]  # fmt: skip
    cold = train_step.COMPILE_GUESS_S
    assert train_step._needed_seconds(variants, 0, {}) == 2 * cold["lenet"]
    seen = {("lenet", "compiled"): 5.0}
    pair = train_step._needed_seconds(variants, 2, seen)
    assert pair == pytest.approx(2 * 0.2 * cold["resnet56"])
    seen = {("lenet", "compiled"): 0.5}  # a ratio of 0.02: held at the floor
    floor = train_step.COMPILE_GUESS_FLOOR
    assert train_step._needed_seconds(variants, 3, seen) == pytest.approx(floor * cold["resnet56"])


def test_warm_compile_runs_one_step_per_variant_and_records_nothing(monkeypatch, tmp_path):
    """--warm-compile only fills the compile caches: one warm-up and one timed step per
    variant of the chosen norms, its rows handed to no sink, no CSV written."""
    seen = {}

    def fake_run_all(variants, settings, device, data=None, max_seconds=math.inf, sink=None):
        seen.update(variants=variants, settings=settings, sink=sink)
        return train_step.RunResult()

    monkeypatch.setattr(train_step, "run_all", fake_run_all)
    monkeypatch.setattr(train_step.records, "DATA_DIR", tmp_path)
    argv = ["--warm-compile", "--models", "resnet20", "--execs", "compiled", "--norms",
            "mn_triton", "--device", "cpu"]  # fmt: skip
    assert train_step.main(argv) == 0
    assert [str(v) for v in seen["variants"]] == ["resnet20 compiled mn_triton K=2"]
    assert (seen["settings"].warmup, seen["settings"].steps) == (1, 1)
    assert seen["settings"].run_size == "full"  # the timed run's batch: the same compile
    assert seen["sink"] is None and not list(tmp_path.iterdir())


def test_norms_choose_the_variants_and_unknown_ones_are_refused(monkeypatch, tmp_path):
    seen = {}

    def fake_run_all(variants, settings, device, data=None, max_seconds=math.inf, sink=None):
        seen["variants"] = variants
        return train_step.RunResult()

    monkeypatch.setattr(train_step, "run_all", fake_run_all)
    monkeypatch.setattr(train_step.records, "DATA_DIR", tmp_path)
    argv = ["--models", "lenet", "--norms", "batchnorm,reference", "--device", "cpu"]
    assert train_step.main(argv) == 0
    assert {v.norm for v in seen["variants"]} == {"batchnorm", "reference"}
    with pytest.raises(SystemExit, match="--norms: unknown"):
        train_step.main(["--norms", "batchnorm,groupnorm", "--device", "cpu"])


@pytest.mark.parametrize("exec_mode", ["eager", "compiled", "cudagraph"])
def test_step_compiles_model_and_loss_as_its_exec_mode_says(exec_mode, monkeypatch):
    """compiled: torch.compile of model + loss; cudagraph: the same with
    mode="reduce-overhead", each step marked as a new CUDA-graph iteration; eager: neither."""
    compiled, marks = [], []

    def fake_compile(module, **kwargs):
        compiled.append((module, kwargs))
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    model = nn.Linear(3, 4)
    step = train_step.make_step(model, exec_mode)
    x, y = torch.randn(5, 3), torch.randint(4, (5,))
    step(x, y)
    step(x, y)
    if exec_mode == "eager":
        assert compiled == []
    else:
        ((module, kwargs),) = compiled
        assert isinstance(module, train_step.ModelWithLoss) and module.model is model
        assert kwargs == ({"mode": "reduce-overhead"} if exec_mode == "cudagraph" else {})
    assert len(marks) == (2 if exec_mode == "cudagraph" else 0)


def test_measure_variant_times_the_first_step_to_its_end_on_cuda(monkeypatch):
    """setup_s (compile, Triton JIT) waits for the first step's device work; the warm-up
    and timed steps come after it. Without a GPU: CUDA's calls replaced by a log."""
    log = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))

    def fake_time_fn(fn, device, warmup, reps, max_seconds, peak_from_warmup):
        log.append("time_fn")
        return _timing()

    monkeypatch.setattr(measure, "time_fn", fake_time_fn)
    monkeypatch.setattr(train_step, "make_row", lambda *args, **kwargs: {})
    variant = train_step.Variant("lenet", "batchnorm", 0, "eager")
    batches = [(torch.zeros(1), torch.zeros(1))]
    settings = train_step.Settings(warmup=3, steps=4)
    cuda = torch.device("cuda")
    train_step.measure_variant(
        variant, settings, cuda, batches, step=lambda x, y: log.append("step")
    )
    assert log == ["step", "sync", "time_fn"]


def test_provider_says_triton_only_where_its_kernels_run(monkeypatch):
    variant = train_step.Variant("lenet", "mn_triton", 6, "eager")
    for runs, provider in ((True, "triton"), (False, "torch_ops")):
        monkeypatch.setattr(train_step.mn_backend, "uses_kernels", lambda x, runs=runs: runs)
        assert train_step.provider_name(variant, CPU) == provider
    reference = train_step.Variant("lenet", "reference", 6, "eager")
    assert train_step.provider_name(reference, CPU) == "reference"


def test_plan_runs_eager_first_whatever_order_the_execs_are_given_in():
    variants = train_step.plan(["lenet"], ["cudagraph", "compiled", "eager"])
    execs = [v.exec for v in variants]
    assert execs == sorted(execs, key=["eager", "compiled", "cudagraph"].index)
    assert set(execs) == {"eager", "compiled", "cudagraph"}


def test_cli_execs_and_time_cap_per_variant():
    """--quick is eager only even on CUDA; CUDA graphs are refused on a CPU; a full run
    gives each variant's timed steps 120 s, a quick one 10 s."""

    def execs(argv, device):
        return train_step.execs_from(train_step.parse_args(argv), torch.device(device))

    assert execs([], "cuda") == ["eager", "compiled", "cudagraph"]
    assert execs(["--quick"], "cuda") == ["eager"]
    assert execs([], "cpu") == ["eager"]
    assert execs(["--execs", "eager,cudagraph"], "cuda") == ["eager", "cudagraph"]
    with pytest.raises(SystemExit, match="cudagraph"):
        execs(["--execs", "eager,cudagraph"], "cpu")
    caps = {
        quick: train_step.settings_from(train_step.parse_args(quick)).max_seconds_per_variant
        for quick in ((), ("--quick",))
    }
    assert caps == {(): 120.0, ("--quick",): 10.0}


def test_compile_guesses_follow_the_slowest_compile_seen():
    """With several compiles seen, a new one is guessed at the slowest ratio to its first
    guess (the budget must not start a compile that cannot finish)."""
    v = train_step.Variant
    variants = [
        v("resnet56", "batchnorm", 0, "compiled"),
        v("resnet56", "mn_triton", 2, "compiled"),
    ]
    seen = {("lenet", "compiled"): 5.0, ("resnet20", "compiled"): 27.0}  # 0.2 and 0.6
    guess = train_step._needed_seconds(variants, 0, seen)
    assert guess == pytest.approx(2 * 0.6 * train_step.COMPILE_GUESS_S["resnet56"])


def test_budget_counts_the_time_spent_and_a_groups_slowest_variant(monkeypatch):
    """A variant starts only if the time spent so far plus its guess fits; within a group the
    guess is the slowest variant of it seen so far (a fake clock: each variant takes its
    given seconds)."""
    clock = [0.0]
    took = {"batchnorm": 10.0, "mn_triton": 1.0, "reference": 1.0}

    def fake_measure(variant, settings, device, batches):
        clock[0] += took[variant.norm]
        return {"ms_p50": 1.0, "images_per_s": 1.0, "setup_s": 0.0, "variant": variant}

    monkeypatch.setattr(train_step, "measure_variant", fake_measure)
    monkeypatch.setattr(train_step, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    v = train_step.Variant
    group = [v("lenet", "batchnorm", 0, "eager"), v("lenet", "mn_triton", 6, "eager"),
             v("lenet", "reference", 6, "eager")]  # fmt: skip
    settings = train_step.Settings(batch=2, image_size=16)
    # 10 s, then 1 s (10 + 10 ≤ 20); the third is guessed at the slowest, 10 s: 21 > 20.
    result = train_step.run_all(group, settings, CPU, max_seconds=20)
    assert [r["variant"] for r in result.rows] == group[:2] and result.skipped == group[2:]
    # After a 12 s LeNet group, ResNet-20's (2 × 5 s guessed) no longer fits in 20 s.
    clock[0], took["mn_triton"] = 0.0, 2.0
    pairs = [group[0], group[1], v("resnet20", "batchnorm", 0, "eager"),
             v("resnet20", "mn_triton", 2, "eager")]  # fmt: skip
    result = train_step.run_all(pairs, settings, CPU, max_seconds=20)
    assert [r["variant"] for r in result.rows] == pairs[:2] and result.skipped == pairs[2:]


def test_main_fails_when_a_variant_failed(monkeypatch, tmp_path):
    """gpu_run.sh reads the exit status: a failed variant is not a clean run."""

    def fake_run_all(variants, settings, device, data=None, max_seconds=math.inf, sink=None):
        return train_step.RunResult(failed=[variants[0]])

    monkeypatch.setattr(train_step, "run_all", fake_run_all)
    monkeypatch.setattr(train_step.records, "DATA_DIR", tmp_path)
    assert train_step.main(["--models", "lenet", "--device", "cpu"]) == 1


@pytest.mark.parametrize("exec_mode", ["eager", "compiled"])
def test_release_resets_dynamo_after_a_compiled_variant(exec_mode, monkeypatch):
    """Every variant compiles a new ModelWithLoss whose forward is the same code: without a
    reset, dynamo's recompile limit would make later variants run eagerly."""
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    train_step._release(train_step.Variant("lenet", "mn_triton", 6, exec_mode))
    assert len(resets) == (exec_mode != "eager")


def test_overhead_lines_take_batchnorm_of_the_rows_own_exec_mode():
    def row(exec_mode, provider, ms):
        return {"model": "lenet", "exec": exec_mode, "provider": provider, "K": 6, "ms_p50": ms}

    rows = [row("eager", "native", 2.0), row("compiled", "native", 4.0),
            row("eager", "triton", 3.0), row("compiled", "triton", 5.0)]  # fmt: skip
    lines = train_step.overhead_lines(rows)
    assert "eager" in lines[0] and "1.500× BatchNorm" in lines[0]
    assert "compiled" in lines[1] and "1.250× BatchNorm" in lines[1]


def test_load_batches_keeps_each_label_with_its_image_and_standardises(tmp_path):
    """The seeded shuffle moves labels with their images (each image here is a constant that
    grows with its label), and the images come out standardised per channel."""
    settings = train_step.Settings(batch=8)
    count = train_step.N_BATCHES * settings.batch + 5
    labels = torch.randint(40, (count,))
    images = (labels * 6).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).clone()
    images[:, 1] += 3  # channels differ
    torch.save({"images": images, "labels": labels}, tmp_path / "data.pt")
    batches = train_step.load_batches(tmp_path / "data.pt", 40, settings, CPU)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert not torch.equal(y, labels[: len(y)])  # shuffled
    pixel = x[:, 0, 0, 0]
    assert torch.equal(torch.sign(pixel[:, None] - pixel[None, :]),
                       torch.sign(y[:, None] - y[None, :]).float())  # fmt: skip
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)


# ------------------------------------ measure.py ---------------------------------------


def _recorder(seen):
    def fn(i):
        seen.append(i)
        sum(range(100))  # measurable time

    return fn


def test_time_fn_runs_warmup_then_timed_indices():
    seen = []
    timing = measure.time_fn(_recorder(seen), CPU, warmup=3, reps=6, max_seconds=1e9)
    assert seen == list(range(9))
    assert timing.reps == 6
    assert 0 < timing.ms_p20 <= timing.ms_p50 <= timing.ms_p80
    assert timing.peak_mem_mb is None


def test_time_fn_takes_at_least_five_reps_when_out_of_time():
    seen = []
    timing = measure.time_fn(_recorder(seen), CPU, warmup=2, reps=20, max_seconds=0)
    assert timing.reps == 5
    assert seen == list(range(7))


class _Clock:
    """measure's `time` module on a CPU: a clock that only the timed function moves."""

    def __init__(self) -> None:
        self.now = 0.0  # seconds

    def perf_counter(self) -> float:
        return self.now


def test_time_fn_refuses_a_repetition_that_took_no_time(monkeypatch):
    """A zero is never reported as a time: one repetition of 0 s fails the whole timing."""
    clock = _Clock()
    monkeypatch.setattr(measure, "time", clock)

    def fn(i):
        clock.now += 0.0 if i == 4 else 1e-3  # the third timed repetition (after 2 warm-up)

    with pytest.raises(RuntimeError, match="non-positive timing"):
        measure.time_fn(fn, CPU, warmup=2, reps=6, max_seconds=1e9)
    fn_ok = lambda i: setattr(clock, "now", clock.now + 1e-3)  # noqa: E731
    assert measure.time_fn(fn_ok, CPU, warmup=2, reps=6).ms_p50 == pytest.approx(1.0)


class _FakeCuda:
    """torch.cuda's timing and memory calls on a CPU: events read a clock that only the timed
    function moves, and the allocator's peak holds until reset_peak_memory_stats."""

    MIB = 2**20

    def __init__(self) -> None:
        self.now_ms, self.allocated, self.peak, self.log = 0.0, 1100 * self.MIB, 0, []
        fake = self

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                assert enable_timing
                self.at = None

            def record(self) -> None:
                self.at = fake.now_ms
                fake.log.append("record")

            def synchronize(self) -> None:
                pass

            def elapsed_time(self, stop: Event) -> float:
                return stop.at - self.at

        self.Event = Event

    def run(self, ms: float, temporary_mib: float) -> None:
        """A call that takes `ms` on the device and allocates a temporary."""
        self.now_ms += ms
        self.peak = max(self.peak, self.allocated + temporary_mib * self.MIB)
        self.log.append("call")

    def synchronize(self, device: object = None) -> None:
        pass

    def reset_peak_memory_stats(self, device: object = None) -> None:
        self.peak = self.allocated
        self.log.append("reset")

    def memory_allocated(self, device: object = None) -> int:
        return self.allocated

    def max_memory_allocated(self, device: object = None) -> int:
        return self.peak

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("Event", "synchronize", "reset_peak_memory_stats", "memory_allocated",
                     "max_memory_allocated"):  # fmt: skip
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        flush = type("Flush", (), {"zero_": lambda _: self.log.append("flush")})()
        monkeypatch.setattr(measure, "_l2_flush_buffer", lambda device: flush)


def test_time_fn_on_cuda_times_events_after_a_flush_and_resets_the_peak(monkeypatch):
    """The CUDA path, with torch.cuda faked on the CPU: warm-up calls are neither timed nor
    counted in the peak (a 1000 MiB warm-up temporary must not show), each timed call sits
    between two events after an L2 flush, and the peak is measured above what warm-up left."""
    fake = _FakeCuda()
    fake.patch(monkeypatch)
    times = [5.0, 1.0, 4.0, 2.0, 3.0]

    def fn(i):
        if i < 3:
            fake.run(100.0, temporary_mib=1000)  # warm-up: compiles, caches
        else:
            fake.run(times[i - 3], temporary_mib=10)

    timing = measure.time_fn(fn, torch.device("cuda"), warmup=3, reps=5, max_seconds=1e9)
    assert (timing.ms_p20, timing.ms_p50, timing.ms_p80) == pytest.approx((1.8, 3.0, 4.2))
    assert timing.peak_mem_mb == pytest.approx(10.0)
    # All that was allocated at the peak (here 1100 MiB, the flush's 256 MiB among it), less
    # the flush's buffer, which is not the timed calls'.
    assert timing.peak_total_mb == pytest.approx(1110.0 - measure.L2_FLUSH_BYTES / 2**20)
    timed = ["record", "flush", "record", "call", "record"]  # before, flush, start, fn, stop
    assert fake.log == ["call"] * 3 + ["reset"] + timed * 5
    zero = lambda i: fake.run(0.0 if i == 5 else 1.0, temporary_mib=0)  # noqa: E731
    with pytest.raises(RuntimeError, match="non-positive timing"):
        measure.time_fn(zero, torch.device("cuda"), warmup=3, reps=5, max_seconds=1e9)


def test_time_fn_on_cuda_can_count_the_warmup_in_the_peak(monkeypatch):
    """With peak_from_warmup (CUDA-graph steps, recorded in warm-up, replayed without
    allocating), the peak is taken from before the warm-up calls: their 1000 MiB show."""
    fake = _FakeCuda()
    fake.patch(monkeypatch)

    def fn(i):
        fake.run(1.0, temporary_mib=1000 if i == 1 else 0)  # the recording: the step's memory

    timing = measure.time_fn(fn, torch.device("cuda"), 3, 5, 1e9, peak_from_warmup=True)
    assert timing.peak_mem_mb == pytest.approx(1000.0)
    assert fake.log[:4] == ["reset", "call", "call", "call"]
    assert measure.time_fn(fn, torch.device("cuda"), 3, 5, 1e9).peak_mem_mb == 0.0


def test_time_fn_on_cuda_records_the_hosts_issue_time_without_the_wait(monkeypatch):
    """host_ms_p50 is the median time fn takes on the host (issuing), not the flush before it
    nor the wait for the stop event after it; flush_ms_p50 is the flush's device time."""
    fake = _FakeCuda()
    fake.patch(monkeypatch)
    host = {"s": 0.0}
    monkeypatch.setattr(measure.time, "perf_counter", lambda: host["s"])
    issue_ms = [0.5, 0.1, 0.3, 0.2, 0.4]

    def fn(i):
        host["s"] += (issue_ms[i - 3] if i >= 3 else 9.0) / 1e3
        fake.run(2.0, temporary_mib=0)

    def waits():  # the host blocks until the device is done: 50 ms that are not issue time
        host["s"] += 0.05

    def flushes():  # 0.07 ms of device time; the host's queueing of it is not issue time
        fake.now_ms += 0.07
        waits()

    monkeypatch.setattr(fake.Event, "synchronize", lambda self: waits())
    flush = type("Flush", (), {"zero_": lambda _: flushes()})()
    monkeypatch.setattr(measure, "_l2_flush_buffer", lambda device: flush)
    timing = measure.time_fn(fn, torch.device("cuda"), warmup=3, reps=5, max_seconds=1e9)
    assert timing.host_ms_p50 == pytest.approx(0.3) and timing.ms_p50 == pytest.approx(2.0)
    assert timing.flush_ms_p50 == pytest.approx(0.07)  # the head start, on the device clock
    assert measure.time_fn(fn, CPU, warmup=3, reps=5, max_seconds=1e9).host_ms_p50 is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_time_fn_on_a_gpu_times_device_work_and_measures_the_peak():
    """On a real GPU: a spin of more cycles takes longer, percentiles are ordered, and a
    64 MiB temporary shows as a peak of 64 MiB (the flush buffer and warm-up excluded)."""
    cuda = torch.device("cuda")
    # A spin lasts a number of cycles: its time falls as an idle GPU's clock rises, so the
    # long spin goes first (were the clock still rising, the short one only gets shorter).
    long = measure.time_fn(lambda i: torch.cuda._sleep(4_000_000), cuda, warmup=2, reps=10)
    short = measure.time_fn(lambda i: torch.cuda._sleep(1_000_000), cuda, warmup=2, reps=10)
    assert 0 < short.ms_p20 <= short.ms_p50 <= short.ms_p80
    assert long.ms_p50 > 2 * short.ms_p50  # the events time the device's work
    assert 0 < long.host_ms_p50 < 0.5 * long.ms_p50  # issuing one spin is quick
    assert 0 < long.flush_ms_p50 < 10  # zeroing 256 MiB: well under a millisecond on an H100
    mib = 64
    alloc = lambda i: torch.empty(mib * 2**20, dtype=torch.uint8, device=cuda)  # noqa: E731
    timing = measure.time_fn(alloc, cuda, warmup=2, reps=5)
    assert mib <= timing.peak_mem_mb <= mib + 2
    assert mib <= timing.peak_total_mb < timing.peak_mem_mb + torch.cuda.memory_allocated() / 2**20


def test_rotation_count_is_clamped_ceil_division():
    assert measure.rotation_count(L2) == 1
    assert measure.rotation_count(L2 - 1) == 2
    assert L2 % (L2 // 3) != 0 and measure.rotation_count(L2 // 3) == 4
    assert measure.rotation_count(L2 // 4) == 4
    assert measure.rotation_count(2 * L2) == 1
    assert measure.rotation_count(0) == 1
    assert measure.rotation_count(-5) == 1
    assert measure.rotation_count(1) == 64
    assert measure.rotation_count(1, max_sets=5) == 5
    assert measure.rotation_count(1, max_sets=0) == 1
    assert measure.rotation_count(L2 // 3, max_sets=3) == 3


def test_copy_bandwidth_counts_bytes_read_and_written(monkeypatch):
    calls = []

    def fake_time_fn(fn, device, warmup=10, reps=50, max_seconds=5.0):
        fn(0)
        calls.append((warmup, reps))
        return _timing(2.5)

    monkeypatch.setattr(measure, "time_fn", fake_time_fn)
    n = 64 * 2**20 // 4
    gbps = measure.copy_bandwidth_gbps.__wrapped__("cpu")
    assert gbps == pytest.approx(2 * n * 4 / (2.5e-3) / 1e9)
    assert calls == [(5, 30)]


def test_copy_bandwidth_warms_a_gpu_up_first(monkeypatch):
    """~0.1 s of copies before the timed ones, so the GPU's clocks have risen: the lent
    machine idles at a few hundred MHz, and a low ceiling would flatter every fraction."""
    calls = []

    def fake_time_fn(fn, device, warmup=10, reps=50, max_seconds=5.0):
        calls.append((device.type, warmup, reps))
        return _timing(0.25)

    monkeypatch.setattr(measure, "time_fn", fake_time_fn)
    empty = torch.empty
    monkeypatch.setattr(measure.torch, "empty", lambda n, dtype, device: empty(0, dtype=dtype))
    measure.copy_bandwidth_gbps.__wrapped__("cuda")
    assert calls == [("cuda", 400, 30)]


def test_time_fn_medians_and_percentiles_of_an_even_count_of_skewed_samples(monkeypatch):
    """Four timed calls of 1, 10, 2 and 3 ms: the median is the mean of the middle two
    (2.5 ms, not the upper one), p20 and p80 are interpolated at 0.2 and 0.8; on CUDA the
    host's issue time and the flush's device time are medians too, so one slow issue (a
    garbage collection, 5 ms) does not move them."""
    clock = _Clock()
    monkeypatch.setattr(measure, "time", clock)
    cpu_ms = [1.0, 10.0, 2.0, 3.0]
    fn = lambda i: setattr(clock, "now", clock.now + (cpu_ms[i - 1] if i else 7.0) / 1e3)  # noqa: E731
    timing = measure.time_fn(fn, CPU, warmup=1, reps=4, max_seconds=1e9)
    assert (timing.ms_p20, timing.ms_p50, timing.ms_p80) == pytest.approx((1.6, 2.5, 5.8))

    fake = _FakeCuda()
    fake.patch(monkeypatch)
    issue_ms, flush_ms = [0.1, 5.0, 0.2, 0.1], [0.07, 0.07, 3.0, 0.09]
    rep = {"i": 0}

    def flushes():
        fake.now_ms += flush_ms[rep["i"]]

    def fn_cuda(i):
        clock.now += (issue_ms[i - 1] if i else 9.0) / 1e3
        fake.run(cpu_ms[i - 1] if i else 7.0, temporary_mib=0)
        rep["i"] = i % 4  # the next repetition's flush

    flush = type("Flush", (), {"zero_": lambda _: flushes()})()
    monkeypatch.setattr(measure, "_l2_flush_buffer", lambda device: flush)
    timing = measure.time_fn(fn_cuda, torch.device("cuda"), warmup=1, reps=4, max_seconds=1e9)
    assert (timing.ms_p20, timing.ms_p50, timing.ms_p80) == pytest.approx((1.6, 2.5, 5.8))
    assert timing.host_ms_p50 == pytest.approx(0.15)
    assert timing.flush_ms_p50 == pytest.approx(0.08)


def test_time_fn_on_cuda_counts_what_the_timed_calls_keep_in_the_peak(monkeypatch):
    """The peak is taken above what warm-up left allocated, not above what the timed calls
    left: calls that keep 2 MiB each (a growing cache) show it, 5 calls and 4 MiB of
    temporaries on top."""
    fake = _FakeCuda()
    fake.patch(monkeypatch)

    def fn(i):
        fake.run(1.0, temporary_mib=4)
        if i >= 2:
            fake.allocated += 2 * fake.MIB  # kept after the call

    timing = measure.time_fn(fn, torch.device("cuda"), warmup=2, reps=5, max_seconds=1e9)
    assert timing.peak_mem_mb == pytest.approx(4 * 2 + 4)  # the last call: 8 kept, 4 temporary


def test_percentiles_interpolate_between_the_neighbouring_samples():
    """On unevenly spaced samples (where a rounded index would extrapolate from the wrong
    pair: p20 of these at 0.4 ms, below every sample)."""
    samples = [1.0, 2.0, 10.0, 11.0, 30.0]
    assert measure._percentile(samples, 0.2) == pytest.approx(1.8)
    assert measure._percentile(samples, 0.8) == pytest.approx(14.8)
    assert measure._percentile(samples, 0.5) == 10.0
    assert measure._percentile([4.0], 0.8) == 4.0


def test_the_l2_flush_buffer_holds_l2_flush_bytes():
    """The flush zeroes all 256 MiB (the L2 evicted), and peak_total_mb subtracts exactly
    that much: a smaller buffer would leave the L2 warm and the total peak low."""
    measure._l2_flush_buffer.cache_clear()
    try:
        buffer = measure._l2_flush_buffer(CPU)
        assert buffer.numel() * buffer.element_size() == L2
        assert measure._l2_flush_buffer(CPU) is buffer  # allocated once
    finally:
        measure._l2_flush_buffer.cache_clear()


def test_rows_are_stamped_in_utc_with_the_offset_written():
    """Timestamps carry their offset (+00:00): the report orders rows in time across
    machines, and a naive local time would read as another hour's."""
    import datetime

    stamp = datetime.datetime.fromisoformat(measure.environment("cpu")["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs(stamp - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=5)


# ------------------------------------ layers.py ----------------------------------------


@pytest.mark.parametrize("mode", ["full", "backward"])
def test_timed_call_takes_grads_of_x_and_every_parameter(monkeypatch, mode):
    case = _case(mode=mode)
    module = layers.make_module(case, CPU)
    inputs = layers.make_inputs(case, CPU, 2)
    grads = []
    real_grad = torch.autograd.grad

    def spy(outputs, wrt, grad_outputs=None, **kwargs):
        grads.append((wrt, grad_outputs, kwargs))
        return real_grad(outputs, wrt, grad_outputs, **kwargs)

    call = layers.timed_call(case, module, module, inputs)
    monkeypatch.setattr(torch.autograd, "grad", spy)
    call(1)
    assert len(grads) == 1
    wrt, grad_outputs, kwargs = grads[0]
    x, dy = inputs[1]
    expected = (x, module.weight, module.bias)
    assert len(wrt) == 3 and all(a is b for a, b in zip(wrt, expected, strict=True))
    assert grad_outputs is dy
    assert kwargs.get("retain_graph", False) == (mode == "backward")
    if mode == "backward":
        call(1)  # the retained graph's backward runs again
        assert len(grads) == 2


def test_timed_call_eval_runs_in_eval_mode_without_grad():
    case = _case(mode="eval")
    module = layers.make_module(case, CPU)
    outputs = []
    module.register_forward_hook(lambda m, args, out: outputs.append((m.training, out)))
    call = layers.timed_call(case, module, module, layers.make_inputs(case, CPU, 2))
    assert module.training is False
    call(0)
    training, out = outputs[0]
    assert training is False
    assert out.grad_fn is None and not out.requires_grad


def test_timed_call_forward_records_autograd_in_training_mode():
    case = _case(mode="forward")
    module = layers.make_module(case, CPU)
    outputs = []
    module.register_forward_hook(lambda m, args, out: outputs.append((m.training, out)))
    layers.timed_call(case, module, module, layers.make_inputs(case, CPU, 2))(0)
    training, out = outputs[0]
    assert training is True and out.grad_fn is not None


@pytest.mark.parametrize("mode", ["forward", "backward", "full", "eval"])
def test_make_inputs_layout_dy_and_requires_grad(mode):
    for layout in ("nhwc", "nchw"):
        case = _case(mode=mode, layout=layout, dtype="bfloat16")
        sets = layers.make_inputs(case, CPU, 3)
        assert len(sets) == 3
        for x, dy in sets:
            assert x.shape == (2, 3, 4, 4) and x.dtype == torch.bfloat16
            if layout == "nhwc":
                assert x.is_contiguous(memory_format=torch.channels_last)
                assert not x.is_contiguous()
            else:
                assert x.is_contiguous()
            assert x.requires_grad == (mode != "eval")
            if mode in ("backward", "full"):
                assert dy is not x and not torch.equal(dy, x.detach())
                assert dy.shape == x.shape and dy.stride() == x.stride()
            else:
                assert dy is x
        assert not torch.equal(sets[0][0], sets[1][0])  # independent sets


def test_make_inputs_are_normal_data_never_zeros():
    """x and dy are N(0, 1) draws: a zero dy (or x) would let a kernel's arithmetic, and
    the memory system's compression on some GPUs, look cheaper than on real data."""
    for mode in ("forward", "backward", "full", "eval"):
        case = _case(mode=mode, n=4, c=8, h=8, w=8)
        for x, dy in layers.make_inputs(case, CPU, 2):
            for t in (x.detach(), dy.detach()):
                assert torch.count_nonzero(t) == t.numel(), mode
                assert 0.7 < t.float().std() < 1.3 and abs(t.float().mean()) < 0.2, mode


def test_make_module_builds_each_baseline_as_a_net_holds_it():
    """LayerNorm over (C, H, W), InstanceNorm2d with its affine weights (as MN has: a baseline
    without them would do less work), BatchNorm2d over C; MN and MGN from mn_triton for our
    providers and from the reference for the reference providers, with K modes."""
    ln = layers.make_module(_case(op="layer_norm", h=5, w=6), CPU)
    assert type(ln) is nn.LayerNorm and tuple(ln.normalized_shape) == (3, 5, 6)
    inorm = layers.make_module(_case(op="instance_norm"), CPU)
    assert type(inorm) is nn.InstanceNorm2d and inorm.affine and inorm.weight.shape == (3,)
    bn = layers.make_module(_case(op="batch_norm"), CPU)
    assert type(bn) is nn.BatchNorm2d and bn.num_features == 3
    for op, name in (("mode_norm", "ModeNorm2d"), ("mode_group_norm", "ModeGroupNorm2d")):
        for provider in ("triton", "torch_ops", "reference", "reference_compiled"):
            module = layers.make_module(_case(op=op, provider=provider, k=3, c=6), CPU)
            package = reference if provider.startswith("reference") else mn_triton
            assert type(module) is getattr(package, name), (op, provider)
            assert module.num_modes == 3


def test_make_module_keeps_batch_norms_weights_float32_for_16_bit_data():
    """As AMP runs it and cuDNN wants it: 16-bit data, float32 weights and statistics
    (16-bit weights would time ATen's own kernel instead of cuDNN's); MN's layers and the
    other norms take the case's dtype."""
    for dtype in ("bfloat16", "float16"):
        bn = layers.make_module(_case(dtype=dtype), CPU)
        assert {t.dtype for t in [*bn.parameters(), bn.running_mean]} == {torch.float32}
        x = layers.make_inputs(_case(dtype=dtype), CPU, 1)[0][0]
        assert bn(x).dtype == layers.DTYPES[dtype]
        mn = layers.make_module(_case(op="mode_norm", provider="triton", k=2, dtype=dtype), CPU)
        assert mn.weight.dtype == layers.DTYPES[dtype]


def test_make_module_group_norm_dtype_and_device():
    case = _case(op="group_norm", k=2, c=4, dtype="bfloat16")
    module = layers.make_module(case, CPU)
    assert type(module) is nn.GroupNorm
    assert (module.num_groups, module.num_channels) == (2, 4)
    assert all(p.dtype == torch.bfloat16 for p in module.parameters())
    meta = layers.make_module(case, torch.device("meta"))
    assert all(p.device.type == "meta" for p in meta.parameters())
    fp32 = layers.make_module(_case(op="group_norm", k=4, c=8), CPU)
    assert (fp32.num_groups, fp32.num_channels, fp32.weight.dtype) == (4, 8, torch.float32)


@pytest.mark.parametrize(
    "op, provider, mode, exec_mode, passes",
    [
        ("mode_norm", "reference_compiled", "full", "compiled", 8),
        ("mode_norm", "reference", "full", "eager", 8),
        ("mode_norm", "torch_ops", "eval", "eager", 3),
        ("batch_norm", "native", "eval", "eager", 2),  # running statistics: read x, write y
        ("batch_norm", "native", "forward", "eager", 3),
        ("group_norm", "native", "eval", "eager", 3),
        ("mode_norm", "triton", "full", "cudagraph", 8),
        ("batch_norm", "native", "full", "cudagraph", 8),
    ],
)
def test_case_rows_carry_exec_and_the_ops_bytes_model(op, provider, mode, exec_mode, passes):
    graphed = "cudagraph" if exec_mode == "cudagraph" else "eager"
    case = _case(op=op, provider=provider, mode=mode, k=2 if op == "mode_norm" else None,
                 exec=graphed)  # fmt: skip
    measured = layers.Measured(_timing(), 0.5, lambda i: None)
    row = layers.make_case_row(case, measured, 10.0, CPU, "r1", cases_planned=7)
    assert row["exec"] == exec_mode and row["cases_planned"] == 7
    assert row["bytes_min"] == passes * case.numel * 4


@pytest.mark.parametrize("dtype, itemsize", [("bfloat16", 2), ("float16", 2), ("float32", 4)])
def test_case_rows_count_bytes_at_the_cases_own_element_size(dtype, itemsize):
    """A 16-bit case moves 2 bytes per element: counted at float32's 4, its gbps and its
    share of the copy bandwidth would read twice what it achieved."""
    case = _case(op="mode_norm", provider="torch_ops", dtype=dtype, k=2)
    measured = layers.Measured(_timing(), 0.5, lambda i: None)
    row = layers.make_case_row(case, measured, 10.0, CPU, "r1")
    assert row["bytes_min"] == 8 * case.numel * itemsize
    assert row["gbps"] == pytest.approx(row["bytes_min"] / 4e-3 / 1e9)  # the median's 4 ms


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph on a CPU: `torch.cuda.graph(g)` records the calls
    made inside it, and a replay makes them again."""

    log: list = []
    made: list = []

    def __init__(self) -> None:
        self.calls: list = []
        self.shared_pool = None
        _FakeGraph.made.append(self)

    def pool(self) -> object:
        return ("pool of", id(self))

    def replay(self) -> None:
        for call in self.calls:
            _FakeGraph.log.append(("replay", call))


def _patch_fake_capture(monkeypatch, fake_capture) -> None:
    """torch.cuda's graph capture as `fake_capture` (a context manager taking the graph),
    with _FakeGraph and a side stream that needs no device."""
    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: stream)


def test_graph_replays_warm_up_uncaptured_then_capture_each_input_set(monkeypatch):
    """CUDA-graph cases: every input set's call runs uncaptured first (at least 3 calls: CUDA
    refuses to load a kernel while capturing), then one graph per set, all sharing the first
    graph's memory pool; a replay of i replays the graph of set i mod count, and the peak is
    the captures'."""
    log, capturing = [], []
    _FakeGraph.log, _FakeGraph.made = log, []

    @contextlib.contextmanager
    def fake_capture(graph, pool=None):
        graph.shared_pool = pool
        capturing.append(graph)
        yield
        capturing.pop()

    def call(i):
        if capturing:
            capturing[-1].calls.append(i)
            log.append(("captured", i))
        else:
            log.append(("run", i))

    _patch_fake_capture(monkeypatch, fake_capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 5 * 2**20)
    replay, peak_mb = layers.graph_replays(call, 2, torch.device("cuda"))
    assert log == [("run", 0), ("run", 1), ("run", 2), ("captured", 0), ("captured", 1)]
    assert peak_mb == 4.0
    first, second = _FakeGraph.made
    assert first.shared_pool is None and second.shared_pool == first.pool()
    log.clear()
    for i in range(3):
        replay(i)
    assert log == [("replay", 0), ("replay", 1), ("replay", 0)]


def test_a_graph_case_needs_a_cuda_device():
    case = _case(op="batch_norm", exec="cudagraph")
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        layers.measure_case(case, CPU, layers.settings_for(CPU))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("op", ["mode_norm", "batch_norm"])
def test_a_graph_case_on_a_gpu_times_replays_of_the_whole_call(op):
    """On a real GPU: our layer (its eager calls captured) and BatchNorm, replayed from CUDA
    graphs: ordered percentiles, less to issue per call than the eager call, and the captured
    call's memory as the peak."""
    cuda = torch.device("cuda")
    case = _case(op=op, provider="triton" if op == "mode_norm" else "native", n=8, c=16,
                 h=16, w=16, k=2 if op == "mode_norm" else None, exec="cudagraph")  # fmt: skip
    settings = layers.Settings(warmup=2, reps=10, max_seconds=1.0, max_sets=4, rounds=1)
    with layers.backend_for(case):
        measured = layers.measure_case(case, cuda, settings)
        eager = layers.measure_case(replace(case, exec="eager"), cuda, settings)
    timing = measured.timing
    assert 0 < timing.ms_p20 <= timing.ms_p50 <= timing.ms_p80
    assert timing.host_ms_p50 < eager.timing.host_ms_p50  # one replay: little to issue
    assert timing.peak_mem_mb > 0 and timing.peak_total_mb is None


def test_input_bytes_counts_dy_in_the_backward_modes():
    """x only for forward and eval; x and dy for backward and full (2·3·4·5 elements)."""
    for mode, factor in (("forward", 1), ("eval", 1), ("backward", 2), ("full", 2)):
        assert layers.input_bytes(_case(mode=mode, h=5)) == 120 * 4 * factor
        assert layers.input_bytes(_case(mode=mode, h=5, dtype="bfloat16")) == 120 * 2 * factor


def test_git_sha_is_dirty_for_code_changes_not_for_reports(monkeypatch, tmp_path):
    """Rows written earlier in the same run (reports/) must not mark later rows "-dirty"."""
    monkeypatch.delenv("MN_GIT_SHA", raising=False)
    monkeypatch.setattr(measure, "REPO", tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "rows.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    try:
        measure.git_sha.cache_clear()
        (tmp_path / "reports" / "rows.csv").write_text("a\nb\n")
        assert measure.git_sha() == head
        measure.git_sha.cache_clear()
        (tmp_path / "code.py").write_text("x = 2\n")
        assert measure.git_sha() == head + "-dirty"
    finally:
        measure.git_sha.cache_clear()


def test_git_sha_from_the_environment_where_there_is_no_git(monkeypatch):
    """A lent GPU machine gets the working tree without .git: MN_GIT_SHA names the commit
    there; without it and without git the rows say "unknown" rather than failing."""
    measure.git_sha.cache_clear()
    monkeypatch.setenv("MN_GIT_SHA", "abc123def456")
    assert measure.environment("cpu")["git_sha"] == "abc123def456"
    measure.git_sha.cache_clear()
    monkeypatch.delenv("MN_GIT_SHA")
    monkeypatch.setattr(measure, "REPO", Path("/"))  # no repository there
    assert measure.git_sha() == "unknown"
    measure.git_sha.cache_clear()


def test_cpu_timings_under_load_are_warned_about(monkeypatch):
    """A loaded CPU makes timings taken one after another incomparable: said before timing."""
    monkeypatch.setattr(measure.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(measure.os, "getloadavg", lambda: (4.5, 3.0, 2.0))
    assert "load average 4.5 on 2 cores" in measure.cpu_load_warning("cpu")
    assert measure.cpu_load_warning("cuda") is None
    monkeypatch.setattr(measure.os, "getloadavg", lambda: (1.5, 3.0, 2.0))
    assert measure.cpu_load_warning("cpu") is None


@pytest.mark.parametrize("mode", ["forward", "eval", "full"])
def test_timed_call_rotates_through_every_input_set(mode):
    """Repetition i reads input set i mod count in every mode: a call that kept reading the
    first set would find it in the L2 cache and time a cache, not the memory."""
    case = _case(mode=mode)
    module = layers.make_module(case, CPU)
    inputs = layers.make_inputs(case, CPU, 3)
    seen = []
    module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    call = layers.timed_call(case, module, module, inputs)
    for i in range(7):
        call(i)
    assert len(seen) == 7
    assert all(x is inputs[i % 3][0] for i, x in enumerate(seen))


def _spy_measure_case(monkeypatch, case, settings, device=CPU):
    """measure_case with time_fn, make_inputs and the timed call spied on: what it built and
    how it timed it."""
    spy = {"counts": [], "calls": [], "time_fn": None}
    real_inputs, real_timed_call = layers.make_inputs, layers.timed_call

    def make_inputs(case, device, count):
        spy["counts"].append(count)
        return real_inputs(case, CPU, count)

    def timed_call(case, module, run, inputs):
        inner = real_timed_call(case, module, run, inputs)
        return lambda i: spy["calls"].append(i) or inner(i)

    def time_fn(fn, device, warmup, reps, max_seconds):
        spy["time_fn"] = (warmup, reps, max_seconds, list(spy["calls"]))
        return measure.Timing(1.0, 2.0, 3.0, 99.0, reps, peak_total_mb=500.0)

    monkeypatch.setattr(layers, "make_inputs", make_inputs)
    monkeypatch.setattr(layers, "timed_call", timed_call)
    monkeypatch.setattr(measure, "time_fn", time_fn)
    return spy


def test_measure_case_rotates_its_input_sets_and_times_with_the_settings(monkeypatch):
    """A case builds as many input sets as rotation_count asks (within settings.max_sets),
    calls once before timing (the setup: compiles, JIT), and hands time_fn the settings'
    warm-up, repetitions and time limit, in that order."""
    case = _case(mode="full")
    settings = layers.Settings(warmup=3, reps=11, max_seconds=0.25, max_sets=5, rounds=1)
    spy = _spy_measure_case(monkeypatch, case, settings)
    measured = layers.measure_case(case, CPU, settings)
    assert spy["counts"] == [measure.rotation_count(layers.input_bytes(case), max_sets=5)] == [5]
    assert spy["time_fn"] == (3, 11, 0.25, [0])  # one setup call before the timing
    assert measured.timing.reps == 11 and measured.setup_s >= 0


def test_a_graph_case_captures_few_input_sets_and_reports_the_captures_peak(monkeypatch):
    """CUDA-graph cases (faked on the CPU): at most GRAPH_SETS input sets, one graph each,
    whatever settings.max_sets allows; their peak memory is the captures' (replays allocate
    nothing), and no total peak is claimed."""
    case = _case(op="batch_norm", exec="cudagraph")
    settings = layers.Settings(warmup=2, reps=5, max_seconds=1.0, max_sets=64, rounds=1)
    spy = _spy_measure_case(monkeypatch, case, settings)
    captured = []

    def graph_replays(call, count, device):
        captured.append(count)
        return call, 12.5

    monkeypatch.setattr(layers, "graph_replays", graph_replays)
    monkeypatch.setattr(layers, "make_module", lambda case, device: nn.BatchNorm2d(case.c))
    monkeypatch.setattr(layers, "synchronize", lambda device: None)
    measured = layers.measure_case(case, torch.device("cuda"), settings)
    assert spy["counts"] == captured == [layers.GRAPH_SETS]
    assert measured.timing.peak_mem_mb == 12.5 and measured.timing.peak_total_mb is None
    assert measured.timing.ms_p50 == 2.0


def test_case_rows_carry_the_shape_times_and_peak_in_their_columns():
    """N, C, H, W each in its own column (H != W here: the grid's maps are all square), the
    three percentiles where they belong, and the measured peak memory."""
    case = _case(op="mode_norm", provider="torch_ops", k=2, n=2, c=3, h=5, w=7)
    timing = measure.Timing(1.5, 2.0, 3.5, 42.25, 9)
    row = layers.make_case_row(case, layers.Measured(timing, 0.5, lambda i: None), 10.0, CPU, "r")
    assert [row[k] for k in ("N", "C", "H", "W", "K")] == [2, 3, 5, 7, 2]
    assert [row[k] for k in ("ms_p20", "ms_p50", "ms_p80", "peak_mem_mb")] == [1.5, 2.0, 3.5, 42.25]
    assert row["reps"] == 9 and row["setup_s"] == 0.5


def test_compiled_references_are_cached_per_point_and_the_oldest_evicted(monkeypatch):
    """One compile per point (op, dtype, layout, shape, K), shared by its modes; another
    dtype is another module; past COMPILED_CACHE_SIZE points the oldest goes, not the
    newest."""
    monkeypatch.setattr(torch, "compile", lambda module, dynamic: ("compiled", module))
    monkeypatch.setattr(layers, "_compiled", layers.OrderedDict())
    case = _case(op="mode_norm", provider="reference_compiled", k=2)
    module, run = layers.compiled_module(case, CPU)
    assert run == ("compiled", module)
    assert layers.compiled_module(replace(case, mode="forward"), CPU)[0] is module
    bf16, _ = layers.compiled_module(replace(case, dtype="bfloat16"), CPU)
    assert bf16 is not module and bf16.weight.dtype == torch.bfloat16
    for n in range(3, 3 + layers.COMPILED_CACHE_SIZE):
        layers.compiled_module(replace(case, n=n), CPU)
    newest = replace(case, n=2 + layers.COMPILED_CACHE_SIZE)
    assert len(layers._compiled) == layers.COMPILED_CACHE_SIZE
    assert layers.compiled_module(newest, CPU)[0] is layers.compiled_module(newest, CPU)[0]
    assert layers.compiled_module(case, CPU)[0] is not module  # evicted, compiled again


def test_each_provider_runs_under_its_own_backend():
    """torch_ops times mn_triton's torch-op path (on a GPU too), triton its kernels (auto),
    and the reference and native providers leave mn_triton's setting alone."""
    seen = {}
    with mn_triton.use_backend("triton"):
        for provider in ("triton", "torch_ops", "reference", "native"):
            with layers.backend_for(_case(op="mode_norm", provider=provider, k=2)):
                seen[provider] = mn_triton.get_backend()
    assert seen == {"triton": "auto", "torch_ops": "torch", "reference": "triton",
                    "native": "triton"}  # fmt: skip


def test_graph_replays_peak_is_the_captures_not_the_warm_ups(monkeypatch):
    """The uncaptured warm-up's temporaries (500 MiB here) are not the captured call's: the
    peak is reset after them and counts the captures (3 MiB) alone."""
    fake = _FakeCuda()
    fake.patch(monkeypatch)
    capturing = []

    @contextlib.contextmanager
    def fake_capture(graph, pool=None):
        capturing.append(graph)
        yield
        capturing.pop()

    def call(i):
        fake.run(0.1, temporary_mib=3 if capturing else 500)

    _patch_fake_capture(monkeypatch, fake_capture)
    _, peak_mb = layers.graph_replays(call, 2, torch.device("cuda"))
    assert peak_mb == pytest.approx(3.0)
