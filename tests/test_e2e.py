"""End to end: the benchmark's networks train the same with mn_triton and with the reference.

Under tests/conftest.py (TRITON_INTERPRET=1) mn_triton's kernels run in Triton's
interpreter, so the nets here are narrow and the images small: the point is the arithmetic,
not the speed. Also: every model builds and trains with every norm kind, and the training
benchmark's CLI writes SPEC §7 rows.
"""

from __future__ import annotations

import csv
import functools
import io
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mn_triton
import reference
from helpers import run_benchmark_script

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = str(REPO / "benchmarks")  # the models and the benchmark live there
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import models  # noqa: E402
import records  # noqa: E402
import train_step  # noqa: E402

STEPS = 20
SMALL = {"lenet": 16, "resnet20": 8, "resnet56": 8}  # image sizes that keep the tests fast


def _batches(count: int, batch: int, size: int, classes: int) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(1234)
    return [
        (torch.randn(batch, 3, size, size, generator=gen), torch.randint(classes, (batch,)))
        for _ in range(count)
    ]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def test_resnet20_trains_identically_with_mn_triton_and_reference():
    """20 SGD steps (momentum 0.9) from the same weights: the same loss at every step.

    Two choices keep this a test of the layers rather than of chaos. SiLU instead of ReLU:
    with ReLU, a rounding difference of 1e-7 now and then flips a ReLU's derivative and forks
    the run (loss jumps of 1e-3 to 1e-1, in either implementation against a float64 run, on
    about a third of the seeds tried). lr 0.02 instead of 0.1: at 0.1 this tiny net on random
    labels amplifies fp32 rounding to ~7e-5 by step 20, too close to the bound. With both,
    the worst of 20 seeds differed by 2.4e-6.
    """
    build = functools.partial(
        models.build_model, "resnet20", num_modes=2, width=0.25, activation=F.silu
    )
    reference_net, fast_net = build("reference"), build("mn_triton")
    for net, package in ((reference_net, reference), (fast_net, mn_triton)):
        # Each net holds its own package's layers: otherwise this compares a path with itself.
        norms = [m for m in net.modules() if "Norm" in type(m).__name__]
        assert len(norms) == 21
        assert all(type(m) in (package.ModeNorm1d, package.ModeNorm2d) for m in norms)
        assert all(m.num_modes == 2 for m in norms)
    fast_net.load_state_dict(reference_net.state_dict())  # same parameter and buffer names
    batches = _batches(STEPS, batch=8, size=8, classes=10)

    losses = {}
    for name, net in (("reference", reference_net), ("mn_triton", fast_net)):
        step = train_step.make_step(net, lr=0.02)
        losses[name] = [step(x, y).item() for x, y in batches]

    for i, (ref, fast) in enumerate(zip(losses["reference"], losses["mn_triton"], strict=True)):
        assert abs(fast - ref) <= 1e-4 * abs(ref), f"step {i}: {fast} vs reference {ref}"
    # The weights and running estimates after training agree as well.
    ref_state, fast_state = reference_net.state_dict(), fast_net.state_dict()
    for key, value in ref_state.items():
        if value.is_floating_point():
            assert _rel(fast_state[key], value) <= 1e-4, key


@pytest.mark.parametrize("kind", models.NORM_KINDS)
@pytest.mark.parametrize("name", models.MODELS)
def test_each_model_trains_one_step(name, kind):
    size, classes, batch = SMALL[name], models.NUM_CLASSES[name], 4
    net = models.build_model(name, kind, num_modes=2, width=0.25, image_size=size)
    x, y = _batches(1, batch, size, classes)[0]
    assert net(x).shape == (batch, classes)
    before = [p.detach().clone() for p in net.parameters()]
    loss = train_step.make_step(net)(x, y)
    assert torch.isfinite(loss)
    changed = [not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True)]
    assert all(changed), "every parameter takes an SGD step (weight decay moves even zero grads)"


def test_norm_layers_sit_where_batchnorm_would():
    """ResNet-20 (option B) has 19 + 2 projection norms; LeNet 2 conv + 2 fc norms."""
    counts = {}
    for name in ("lenet", "resnet20", "resnet56"):
        net = models.build_model(name, "mn_triton", num_modes=6)
        layers = [m for m in net.modules() if type(m).__name__.startswith("ModeNorm")]
        assert all(m.num_modes == 6 for m in layers)
        counts[name] = len(layers)
    assert counts == {"lenet": 4, "resnet20": 21, "resnet56": 57}
    params = sum(p.numel() for p in models.build_model("resnet20").parameters())
    assert 0.26e6 < params < 0.28e6  # He et al.: 0.27M


def test_make_norm_rejects_unknown_kind():
    with pytest.raises(ValueError, match="norm kind"):
        models.make_norm("layernorm", 8)
    with pytest.raises(ValueError, match="model"):
        models.build_model("vgg")


def test_plan_bounds_the_compiled_variants():
    variants = train_step.plan(models.MODELS, ["eager", "compiled"])
    eager = [v for v in variants if v.exec == "eager"]
    compiled = [v for v in variants if v.exec == "compiled"]
    assert {(v.norm, v.k) for v in eager if v.model == "lenet"} == {
        ("batchnorm", 0),
        *((kind, k) for kind in ("mn_triton", "reference") for k in (2, 4, 6)),
    }
    assert {(v.model, v.norm, v.k) for v in compiled} == {
        ("lenet", "batchnorm", 0), ("lenet", "mn_triton", 6),
        ("resnet20", "batchnorm", 0), ("resnet20", "mn_triton", 2),
        ("resnet56", "batchnorm", 0), ("resnet56", "mn_triton", 2),
    }  # fmt: skip
    assert variants.index(compiled[0]) > variants.index(eager[-1])  # cheap ones first


def test_budget_skips_whole_groups_and_failures_cost_only_their_rows(monkeypatch):
    """A (model, exec) group is run whole or not at all; a failing variant is logged, skipped."""

    def fake_measure(variant, settings, device, batches):
        if variant.norm == "reference":
            raise RuntimeError("capture failed")
        return {"ms_p50": 1.0, "images_per_s": 1.0, "setup_s": 0.0, "variant": variant}

    monkeypatch.setattr(train_step, "measure_variant", fake_measure)
    settings = train_step.Settings(batch=4)
    # Compiled ResNet-20 (3 × a 45 s guess) does not fit in 80 s; compiled LeNet (3 × 25 s) does.
    variants = train_step.plan(["resnet20", "lenet"], ["compiled"], compile_reference=True)
    result = train_step.run_all(variants, settings, torch.device("cpu"), max_seconds=80)
    assert [r["variant"] for r in result.rows] == [
        v for v in variants if v.model == "lenet" and v.norm != "reference"
    ]
    assert result.failed == [v for v in variants if v.model == "lenet" and v.norm == "reference"]
    assert result.skipped == [v for v in variants if v.model == "resnet20"]
    nothing = train_step.run_all(variants, settings, torch.device("cpu"), max_seconds=0)
    assert nothing.rows == [] and nothing.skipped == variants


def test_load_batches_reads_grey_uint8_images(tmp_path):
    settings = train_step.Settings(batch=4)
    count = train_step.N_BATCHES * settings.batch + 3
    images = torch.randint(0, 256, (count, 1, 32, 32), dtype=torch.uint8)
    torch.save({"images": images, "labels": torch.randint(40, (count,))}, tmp_path / "train.pt")
    batches = train_step.load_batches(tmp_path, 40, settings, torch.device("cpu"))
    assert len(batches) == train_step.N_BATCHES
    x, y = batches[0]
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    with pytest.raises(ValueError, match="labels"):
        train_step.load_batches(tmp_path, 10, settings, torch.device("cpu"))


def test_cli_quick_run_writes_spec_rows(tmp_path):
    args = ["--quick", "--models", "lenet", "--batch", "8", "--warmup", "1", "--steps", "2"]
    done = run_benchmark_script("train_step.py", args, tmp_path, "e2e-smoke")
    assert done.returncode == 0, done.stderr
    assert "QUICK" in done.stderr
    with (tmp_path / "train_step-e2e-smoke.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7  # BatchNorm, and mn_triton and reference at K = 2, 4, 6
    for row in rows:
        assert set(records.COLUMNS) <= set(row)
        assert (row["op"], row["mode"], row["model"], row["exec"]) == (
            "train_step", "train_step", "lenet", "eager",
        )  # fmt: skip
        assert row["device"] == "cpu" and row["run_size"] == "quick"
        assert row["run_id"] == "e2e-smoke"
        assert (row["N"], row["C"], row["H"], row["W"]) == ("8", "3", "32", "32")
        assert float(row["ms_p50"]) > 0 and float(row["images_per_s"]) > 0
    providers = {(row["provider"], row["K"]) for row in rows}
    assert providers == {
        ("native", ""),
        *((p, str(k)) for p in ("torch_ops", "reference") for k in (2, 4, 6)),
    }


def test_progress_bar_draws_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen, log = Terminal(), io.StringIO()
    for stream in (screen, log):
        bar = train_step.Progress(10, "lenet eager", stream)
        for i in range(11):
            bar.update(i)
        bar.close()
    assert "[####################] 10/10 steps" in screen.getvalue()
    assert log.getvalue() == ""
