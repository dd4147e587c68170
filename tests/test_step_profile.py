"""benchmarks/step_profile.py: per-step counts from profiler events, its rows, its CLI on a CPU,
and the report's section on where a training step's time goes."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from test_gpu_compile import _kernel_names
from torch.autograd import DeviceType
from triton.runtime.interpreter import InterpretedFunction

import mn_triton
from helpers import run_benchmark_script

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = str(REPO / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import report  # noqa: E402
import report_data  # noqa: E402
import report_train  # noqa: E402
import step_profile  # noqa: E402
import train_step  # noqa: E402


def _event(
    name: str, us: float = 0.0, device: bool = True, annotation: bool = False
) -> SimpleNamespace:
    """A stand-in for torch.profiler's FunctionEvent: name, device type, duration, and
    whether it is a `record_function` label rather than a kernel."""
    return SimpleNamespace(
        name=name,
        device_type=DeviceType.CUDA if device else DeviceType.CPU,
        time_range=SimpleNamespace(elapsed_us=lambda: us),
        is_user_annotation=annotation,
    )


BN_KERNEL = "void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1>(...)"
EVENTS = [
    _event("aten::conv2d", device=False),
    _event("aten::empty", device=False),
    _event("cuLaunchKernelEx", device=False),  # a host event, not an aten op
    _event("_row_moments_kernel", 10.0),
    _event("_row_moments_kernel", 12.0),
    _event(BN_KERNEL, 5.0),
    _event("void at::native::vectorized_elementwise_kernel<4, ...>", 30.0),
    _event("Memcpy DtoD (Device -> Device)", 3.0),
    _event("Memset (Device)", 1.0),
    # The optimizer step's label, as Kineto reports its span on the GPU: not a kernel.
    _event("Optimizer.step#SGD.step", 40.0, annotation=True),
]


def test_summarize_counts_per_step_and_tells_norm_kernels_apart():
    profile = step_profile.summarize(EVENTS, steps=2)
    assert profile.steps == 2
    assert profile.kernels == 2.0  # 4 kernels over 2 steps; copies and sets apart
    assert profile.kernel_ms == pytest.approx((10 + 12 + 5 + 30) / 1e3 / 2)
    assert profile.norm_kernels == 1.5  # ours twice, cuDNN's batch norm once
    assert profile.norm_kernel_ms == pytest.approx((10 + 12 + 5) / 1e3 / 2)
    assert profile.copies == 1.0
    assert profile.aten_ops == 1.0
    top = [(k.name, k.calls, k.norm) for k in profile.top]
    assert top == [
        ("void at::native::vectorized_elementwise_kernel<4, ...>", 0.5, False),
        ("_row_moments_kernel", 1.0, True),
        (BN_KERNEL, 0.5, True),
    ]


def test_top_kernels_are_bounded():
    events = [_event(f"kernel_{i}", float(i)) for i in range(step_profile.TOP_KERNELS + 5)]
    top = step_profile.summarize(events, steps=1).top
    assert len(top) == step_profile.TOP_KERNELS and top[0].name == f"kernel_{len(events) - 1}"


def test_norm_kernels_are_ours_or_named_after_batch_norm():
    assert _kernel_names() == step_profile.MN_TRITON_KERNELS
    for name in step_profile.MN_TRITON_KERNELS:
        assert step_profile.is_norm_kernel(name)
    for name in (BN_KERNEL, "triton_per_fused__native_batch_norm_legit_functional_0",
                 "void at::native::batch_norm_collect_statistics_kernel<...>"):  # fmt: skip
        assert step_profile.is_norm_kernel(name)
    for name in ("void at::native::vectorized_elementwise_kernel<4, ...>", "sm90_xmma_conv"):
        assert not step_profile.is_norm_kernel(name)


def test_every_kernel_a_layer_launches_is_counted_as_a_norm_kernel(monkeypatch):
    launched = set()
    run = InterpretedFunction.run

    def recording_run(self, *args, **kwargs):
        launched.add(self.fn.__name__)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(InterpretedFunction, "run", recording_run)
    x = torch.randn(4, 6, 5, 5, requires_grad=True)
    with mn_triton.use_backend("triton"):
        for layer in (mn_triton.ModeNorm2d(6), mn_triton.ModeGroupNorm2d(6)):
            layer(x).square().sum().backward()
    assert {"_row_moments_kernel", "_row_affine_kernel", "_mn_mix_forward_kernel"} <= launched
    assert launched <= step_profile.MN_TRITON_KERNELS


def _row(device: str = "NVIDIA H200", ms: float = 10.0) -> dict:
    return {
        "run_id": "r1", "device": device, "torch": "2.11", "triton": "3.6", "git_sha": "abc",
        "timestamp": "2026-12-02T00:00:00+00:00", "model": "resnet20", "exec": "eager",
        "provider": "triton", "K": 2, "N": 128, "ms_p50": ms,
    }  # fmt: skip


def test_rows_carry_gpu_busy_and_leave_device_columns_empty_without_kernels(tmp_path):
    gpu = step_profile.summarize(EVENTS, steps=2)
    summary, kernels = step_profile.rows_for(_row(ms=0.1), gpu)
    assert summary["gpu_busy"] == pytest.approx(gpu.kernel_ms / 0.1)
    assert summary["batch"] == 128 and summary["step_ms"] == 0.1
    assert [k["rank"] for k in kernels] == [1, 2, 3] and kernels[1]["norm"] == 1
    cpu = step_profile.summarize(EVENTS[:3], steps=1)
    summary, kernels = step_profile.rows_for(_row("cpu"), cpu)
    assert kernels == [] and summary["aten_ops"] == 2.0
    assert all(summary[c] == "" for c in ("kernels", "kernel_ms", "gpu_busy", "copies"))
    step_profile.append(_row(), gpu, tmp_path)
    step_profile.append(_row(), gpu, tmp_path)  # appends below one header
    with (tmp_path / "step_profile-r1.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and list(rows[0]) == list(step_profile.PROFILE_COLUMNS)
    with (tmp_path / "step_kernels-r1.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 6


def test_each_run_writes_its_own_files_and_the_report_reads_them_all(tmp_path):
    """step_profile-<run id>.csv and step_kernels-<run id>.csv per run, never a shared file
    (two GPU parts' archives then cannot overwrite each other's rows); the report reads every
    run's file and the step_profile.csv that runs appended to before."""
    gpu = step_profile.summarize(EVENTS, steps=2)
    for run_id in ("a-part1", "b-part2"):
        step_profile.append({**_row(), "run_id": run_id}, gpu, tmp_path)
    summary, _ = step_profile.rows_for({**_row(), "run_id": "old"}, gpu)
    with (tmp_path / "step_profile.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(step_profile.PROFILE_COLUMNS))
        writer.writeheader()
        writer.writerow(summary)
    (tmp_path / "step_profile-empty.csv").touch()  # a writer killed before its first row
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_kernels-a-part1.csv", "step_kernels-b-part2.csv", "step_profile-a-part1.csv",
        "step_profile-b-part2.csv", "step_profile-empty.csv", "step_profile.csv",
    ]  # fmt: skip
    profiles = report_data.load_profiles(tmp_path)
    assert sorted(profiles["run"]) == ["a-part1", "b-part2", "old"]
    assert profiles["kernels"].notna().all()


def test_profiled_variants_pair_batchnorm_with_mn_at_the_headline_k():
    variants = step_profile.profiled_variants(["lenet", "resnet56"], ["eager", "compiled"])
    assert [(v.exec, v.model, v.norm, v.k) for v in variants] == [
        ("eager", "lenet", "batchnorm", 0), ("eager", "lenet", "mn_triton", 6),
        ("eager", "resnet56", "batchnorm", 0), ("eager", "resnet56", "mn_triton", 2),
        ("compiled", "lenet", "batchnorm", 0), ("compiled", "lenet", "mn_triton", 6),
        ("compiled", "resnet56", "batchnorm", 0), ("compiled", "resnet56", "mn_triton", 2),
    ]  # fmt: skip


def test_run_keeps_going_after_a_failure_and_respects_the_budget(monkeypatch, tmp_path):
    def fake(variant, settings, device, count, trace_dir):
        if variant.model == "lenet" and variant.norm == "mn_triton":
            raise RuntimeError("broken")
        return _row("cpu"), step_profile.summarize(EVENTS[:2], steps=count)

    monkeypatch.setattr(step_profile, "profile_variant", fake)
    variants = step_profile.profiled_variants(["lenet", "resnet20"], ["eager"])
    settings = train_step.Settings(batch=4)
    cpu = torch.device("cpu")
    assert step_profile.run(variants, settings, cpu, 1, folder=tmp_path) == 1
    with (tmp_path / "step_profile-r1.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert step_profile.run(variants, settings, cpu, 1, max_seconds=0, folder=tmp_path / "b") == 0
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("argv", [["--execs", "cudagraph"], ["--models", "vgg"],
                                  ["--profile-steps", "0"], ["--batch", "0"]])  # fmt: skip
def test_cli_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit):
        step_profile.parse_args(argv)


def test_cli_on_a_cpu_writes_profiles_that_the_report_shows(tmp_path):
    args = ["--models", "lenet", "--batch", "8", "--warmup", "1", "--steps", "2",
            "--profile-steps", "1"]  # fmt: skip
    done = run_benchmark_script("step_profile.py", args, tmp_path / "data", "profile-smoke")
    assert done.returncode == 0, done.stderr
    assert "pipeline check" in done.stderr
    with (tmp_path / "profiles" / "step_profile-profile-smoke.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["provider"], r["K"]) for r in rows] == [("native", ""), ("torch_ops", "6")]
    for r in rows:
        assert r["device"] == "cpu" and r["run_id"] == "profile-smoke" and r["batch"] == "8"
        assert float(r["step_ms"]) > 0 and float(r["aten_ops"]) > 0 and r["kernels"] == ""
    assert not (tmp_path / "data").exists()  # no benchmark rows: those are train_step.py's
    args = ["--data", str(tmp_path / "data"), "--profiles", str(tmp_path / "profiles")]
    assert report.main([*args, "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "README.md").read_text()
    assert "## Where a training step's time goes" in text
    assert "### cpu (pipeline check, no device kernels)" in text
    assert "| lenet | eager | torch_ops | 6 |" in text


def _profiles(exec_mode: str = "eager", **mn: float) -> pd.DataFrame:
    base = {"run_id": "r1", "device": "NVIDIA H200", "git_sha": "abc", "profiled_steps": "3",
            "timestamp": "t", "model": "resnet20", "exec": exec_mode, "batch": 128,
            "copies": 0}  # fmt: skip
    bn = {**base, "provider": "native", "K": float("nan"), "step_ms": 10.0, "kernel_ms": 8.0,
          "gpu_busy": 0.8, "kernels": 200, "norm_kernels": 38, "norm_kernel_ms": 1.0,
          "aten_ops": 1500}  # fmt: skip
    ours = {**bn, "provider": "triton", "K": 2.0, **mn}
    return pd.DataFrame([bn, ours]).assign(run=lambda d: d["run_id"])


def test_report_shows_what_mn_adds_per_step_over_batchnorm():
    df = _profiles(step_ms=14.0, kernel_ms=8.5, gpu_busy=8.5 / 14, kernels=333,
                   norm_kernel_ms=1.4, aten_ops=2100)  # fmt: skip
    compiled = _profiles("compiled", step_ms=10.5, kernel_ms=8.25)
    text = "\n".join(report_train.profile_lines("NVIDIA H200", pd.concat([df, compiled])))
    assert "| resnet20 | eager | triton | 2 | 14.000 | 8.500 | 61% | 333 |" in text
    assert "What triton adds per step over BatchNorm:" in text
    # 4 ms more per step, of which 0.5 ms kernels (0.4 ms in norm kernels): 12 % of it
    assert "| resnet20 | eager | 2 | +4.000 | +0.500 | +0.400 | +133 | +600 | 12% |" in text
    assert "| resnet20 | compiled | 2 | +0.500 | +0.250 | +0.000 | +0 | +0 | 50% |" in text
    assert text.count("| resnet20 | compiled | 2 |") == 1  # each mode against its own BN
    faster = "\n".join(report_train.profile_lines("NVIDIA H200", _profiles(step_ms=9.0)))
    assert "| +-1.000 |" not in faster and "| -1.000 | +0.000 |" in faster
    assert faster.rstrip().endswith("| – |")  # no share of a step time that did not grow


def test_report_without_profiles_has_no_profile_section(tmp_path):
    profiles = report_data.load_profiles(tmp_path)
    assert profiles.empty
    assert "Where a training step" not in report.render(
        report_data.load(tmp_path), 0, "d", profiles
    )


def test_a_runs_note_shows_under_its_profiles(tmp_path):
    """reports/run_notes.csv (beside profiles/) is shown under the profiled run's caption."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    step_profile.append({**_row(), "run_id": "r1"}, step_profile.summarize(EVENTS, steps=2), folder)
    (tmp_path / report_data.RUN_NOTES).write_text(
        "run,note\nr1,measured a build with a known bug\n"
    )
    profiles = report_data.load_profiles(folder)
    text = "\n".join(report_train.profile_lines("NVIDIA H200", profiles))
    assert "**Known about run `r1`:** measured a build with a known bug" in text


def test_profile_variant_profiles_the_step_it_timed(monkeypatch):
    """The profiled steps are more steps of the model that was built, warmed up and timed,
    not of a fresh one (whose first step would compile and allocate inside the window)."""
    built, profiled = [], []

    def build(variant, settings, device):
        built.append(variant)
        return lambda x, y: profiled.append(len(built))

    monkeypatch.setattr(train_step, "build_variant", build)
    monkeypatch.setattr(train_step, "measure_variant", lambda *args: {"ms_p50": 1.0})

    def profile_steps(run_step, steps, device, trace_path=None):
        for i in range(steps):
            run_step(i)
        return "profile"

    monkeypatch.setattr(step_profile, "profile_steps", profile_steps)
    variant = train_step.Variant("lenet", "mn_triton", 6, "eager")
    settings = train_step.Settings(batch=2, image_size=16)
    row, profile = step_profile.profile_variant(variant, settings, torch.device("cpu"), 3)
    assert (row, profile) == ({"ms_p50": 1.0}, "profile")
    assert built == [variant] and profiled == [1, 1, 1]


def test_profile_window_holds_the_profiled_steps_device_work(monkeypatch):
    """On CUDA the device is synchronised before the profiler starts (earlier work stays
    out) and before it stops (the steps' kernels are in). CUDA's calls replaced by a log."""
    log = []

    class Profiler:
        def __enter__(self):
            log.append("start")
            return self

        def __exit__(self, *exc):
            log.append("stop")

        def events(self):
            return []

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    monkeypatch.setattr(torch.profiler, "profile", lambda activities: Profiler())
    step_profile.profile_steps(lambda i: log.append("step"), 2, torch.device("cuda"))
    assert log == ["sync", "start", "step", "step", "sync", "stop"]


def test_cli_on_a_gpu_times_20_steps_after_10_warm_up_at_batch_128(monkeypatch):
    seen = {}

    def fake_run(variants, settings, device, profile_count, max_seconds, trace_dir):
        seen.update(settings=settings, profile_count=profile_count)
        return 0

    monkeypatch.setattr(step_profile, "run", fake_run)
    monkeypatch.setattr(step_profile.measure, "device_name", lambda device: "a GPU")
    assert step_profile.main(["--device", "cuda", "--models", "lenet"]) == 0
    s = seen["settings"]
    assert (s.batch, s.warmup, s.steps, s.run_size, seen["profile_count"]) == (
        128, 10, 20, "full", 3,
    )  # fmt: skip
