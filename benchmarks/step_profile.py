"""Where a training step's time goes (issue 5): a few profiled steps per variant.

    python benchmarks/step_profile.py                      # eager, every model
    python benchmarks/step_profile.py --execs eager,compiled --models resnet20

For BatchNorm and mn_triton at the headline K of each model (K = 6 for LeNet, 2 for the
ResNets), the training step of benchmarks/train_step.py is built, warmed up and timed as
there (median of CUDA-event timings), then a few more steps run under torch.profiler, so
the counts below and the step time come from one process. CUDA graphs are left out: they
replay without the host by construction. Per step, from torch.profiler's events:

- `kernels`, `kernel_ms`: device kernels launched and their summed device time (memory copies
  and sets are counted apart, as `copies`);
- `norm_kernels`, `norm_kernel_ms`: the part of those in normalization kernels: mn_triton's
  Triton kernels, or kernels named after batch norm (cuDNN's, ATen's, inductor's fused ones).
  The few torch ops our layers launch count as other kernels: on rows of one element (LeNet's
  fully connected layers) dx is one ATen `addcmul_`, and some paths update the running
  estimates or sum partials with torch ops, so the norm share is a lower bound for MN;
- `aten_ops`: operators the dispatcher recorded on the host, nested ones included;
- `gpu_busy` = kernel_ms / step_ms, with step_ms the timed median (the profiled steps run
  slower). Near 1 the step is bound by the device. Well below 1 the GPU waits for the host
  (Python, dispatch, launches). Then what a layer costs is its host time, not its kernels.

Rows go to reports/profiles/step_profile-<run id>.csv (one per variant) and the slowest kernels
of each variant to reports/profiles/step_kernels-<run id>.csv, files of this run alone (a run
never appends to a file that another run, or git, holds); report.py summarises them. Nothing goes
to reports/data/: these step times are not the benchmark's rows. On a CPU the run is short
(batch 32) and finds no device events: its rows only check the pipeline.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import triton
from torch.autograd import DeviceType

# Run as a script, only benchmarks/ is on sys.path; the layers live in the repository root.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import measure  # noqa: E402
import models  # noqa: E402
import records  # noqa: E402
import train_step  # noqa: E402

from mn_triton.kernels import apply, mix, moments  # noqa: E402

PROFILE_DIR = records.DATA_DIR.parent / "profiles"
TOP_KERNELS = 12  # kernels kept per variant in step_kernels-*.csv, slowest first
KERNEL_NAME_CHARS = 120  # cuDNN's templated names run to hundreds of characters
BATCH_NORM_MARKS = ("batch_norm", "batchnorm", "bn_fw", "bn_bw")

PROFILE_COLUMNS = (
    "run_id", "device", "torch", "triton", "git_sha", "timestamp", "model", "exec",
    "provider", "K", "batch", "step_ms", "profiled_steps", "kernels", "kernel_ms",
    "norm_kernels", "norm_kernel_ms", "copies", "aten_ops", "gpu_busy",
)  # fmt: skip
KERNEL_COLUMNS = (
    "run_id", "device", "model", "exec", "provider", "K", "rank", "kernel", "norm",
    "calls", "ms",
)  # fmt: skip


def _launched_kernel_names() -> frozenset[str]:
    """The names of mn_triton's launched Triton kernels (not the helpers they inline)."""
    return frozenset(
        name
        for module in (moments, mix, apply)
        for name, obj in vars(module).items()
        # KernelInterface: a JITFunction, or under TRITON_INTERPRET=1 an InterpretedFunction
        if isinstance(obj, triton.runtime.jit.KernelInterface) and name.endswith("_kernel")
    )


MN_TRITON_KERNELS = _launched_kernel_names()


def is_norm_kernel(name: str) -> bool:
    """Whether a device kernel belongs to a normalization layer, judged by its name."""
    lowered = name.lower()
    return name in MN_TRITON_KERNELS or any(mark in lowered for mark in BATCH_NORM_MARKS)


@dataclass(frozen=True)
class KernelStat:
    name: str
    calls: float  # per step
    ms: float  # device time per step
    norm: bool


@dataclass(frozen=True)
class StepProfile:
    """Per-step averages over the profiled steps."""

    steps: int
    kernels: float
    kernel_ms: float
    norm_kernels: float
    norm_kernel_ms: float
    copies: float
    aten_ops: float
    top: tuple[KernelStat, ...]  # slowest first


def summarize(events: Iterable[Any], steps: int) -> StepProfile:
    """Per-step counts from profiler events (objects with `name`, `device_type` and
    `time_range.elapsed_us()`, as torch.profiler's FunctionEvents have)."""
    per_kernel: dict[str, list[float]] = {}  # name -> [calls, µs]
    copies = aten_ops = 0
    for event in events:
        if getattr(event, "is_user_annotation", False):
            # A `record_function` label's span on the device (the optimizer's step: every
            # kernel of it is counted already), not a kernel; torch's own tables skip these.
            continue
        if event.device_type == DeviceType.CPU:
            aten_ops += event.name.startswith("aten::")
        elif event.name.startswith(("Memcpy", "Memset")):
            copies += 1
        else:
            stat = per_kernel.setdefault(event.name, [0, 0.0])
            stat[0] += 1
            stat[1] += event.time_range.elapsed_us()
    stats = [
        KernelStat(name, calls / steps, us / 1e3 / steps, is_norm_kernel(name))
        for name, (calls, us) in per_kernel.items()
    ]
    norm = [s for s in stats if s.norm]
    return StepProfile(
        steps=steps,
        kernels=sum(s.calls for s in stats),
        kernel_ms=sum(s.ms for s in stats),
        norm_kernels=sum(s.calls for s in norm),
        norm_kernel_ms=sum(s.ms for s in norm),
        copies=copies / steps,
        aten_ops=aten_ops / steps,
        top=tuple(sorted(stats, key=lambda s: -s.ms)[:TOP_KERNELS]),
    )


def profile_steps(
    run_step: Callable[[int], object],
    steps: int,
    device: torch.device,
    trace_path: Path | None = None,
) -> StepProfile:
    """Run `run_step(i)` for i < steps under torch.profiler (the caller has warmed it up)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize(device)  # earlier work must not land in the window
    with warnings.catch_warnings():  # torch 2.11 warns about profiler cycles we do not use
        warnings.simplefilter("ignore", UserWarning)
        with torch.profiler.profile(activities=activities) as prof:
            for i in range(steps):
                run_step(i)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    if trace_path is not None:
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace_path))
    return summarize(prof.events(), steps)


def rows_for(row: Mapping[str, Any], profile: StepProfile) -> tuple[dict, list[dict]]:
    """The step_profile row and the step_kernels rows of one training-step row."""
    step_ms = float(row["ms_p50"])
    has_kernels = profile.kernels > 0  # none on a CPU: leave the device columns empty
    summary = {
        **{key: row[key] for key in ("run_id", "device", "torch", "triton", "git_sha")},
        "timestamp": row["timestamp"], "model": row["model"], "exec": row["exec"],
        "provider": row["provider"], "K": row["K"], "batch": row["N"], "step_ms": step_ms,
        "profiled_steps": profile.steps,
        "kernels": profile.kernels if has_kernels else "",
        "kernel_ms": profile.kernel_ms if has_kernels else "",
        "norm_kernels": profile.norm_kernels if has_kernels else "",
        "norm_kernel_ms": profile.norm_kernel_ms if has_kernels else "",
        "copies": profile.copies if has_kernels else "",
        "aten_ops": profile.aten_ops,
        "gpu_busy": profile.kernel_ms / step_ms if has_kernels else "",
    }  # fmt: skip
    kernels = [
        {
            "run_id": row["run_id"],
            "device": row["device"],
            "model": row["model"],
            "exec": row["exec"],
            "provider": row["provider"],
            "K": row["K"],
            "rank": rank,
            "kernel": stat.name[:KERNEL_NAME_CHARS],
            "norm": int(stat.norm),
            "calls": stat.calls,
            "ms": stat.ms,
        }
        for rank, stat in enumerate(profile.top, start=1)
    ]
    return summary, kernels


def run_file(kind: str, run_id: str, folder: Path | None = None) -> Path:
    """`<kind>-<run id>.csv` in `folder` (default PROFILE_DIR): each run writes its own files."""
    return (folder or PROFILE_DIR) / f"{kind}-{run_id}.csv"


def append(row: Mapping[str, Any], profile: StepProfile, folder: Path | None = None) -> Path:
    """Append one variant's profile to this run's step_profile and step_kernels files in
    `folder`; returns the step_profile file."""
    summary, kernels = rows_for(row, profile)
    path = run_file("step_profile", row["run_id"], folder)
    records.append_csv(path, [summary], list(PROFILE_COLUMNS))
    records.append_csv(run_file("step_kernels", row["run_id"], folder), kernels,
                       list(KERNEL_COLUMNS))  # fmt: skip
    return path


# ---------------------------------------- CLI ------------------------------------------


def profiled_variants(model_names: Sequence[str], execs: Sequence[str]) -> list[train_step.Variant]:
    """train_step's plan, kept to BatchNorm and mn_triton at the headline K: pairs, each
    BatchNorm first."""
    headline = train_step.HEADLINE_K
    return [
        v
        for v in train_step.plan(model_names, execs)
        if v.norm == "batchnorm" or (v.norm == "mn_triton" and v.k == headline[v.model])
    ]


def profile_variant(
    variant: train_step.Variant,
    settings: train_step.Settings,
    device: torch.device,
    profile_count: int,
    trace_dir: Path | None = None,
) -> tuple[dict[str, Any], StepProfile]:
    """Build, warm up and time `variant` (train_step's way), then profile a few more steps."""
    classes = models.NUM_CLASSES[variant.model]
    batches = train_step.synthetic_batches(classes, settings, device)
    step = train_step.build_variant(variant, settings, device)
    row = train_step.measure_variant(variant, settings, device, batches, step)
    trace = trace_dir / f"{settings.run_id}-{variant.slug}.json" if trace_dir else None
    profile = profile_steps(
        lambda i: step(*batches[i % len(batches)]), profile_count, device, trace
    )
    return row, profile


def run(
    variants: Sequence[train_step.Variant],
    settings: train_step.Settings,
    device: torch.device,
    profile_count: int,
    max_seconds: float = math.inf,
    trace_dir: Path | None = None,
    folder: Path | None = None,
) -> int:
    """Profile each variant, appending its rows at once; returns the number that failed.

    A (model, exec) pair is not started once the time spent plus the slowest pair so far
    would pass `max_seconds`.
    """
    started, slowest, failed = time.perf_counter(), 0.0, 0
    pair_started = started
    for i, variant in enumerate(variants):
        if variant.norm == "batchnorm":  # a pair starts
            pair_started = time.perf_counter()
            if pair_started - started + slowest > max_seconds:
                _log(f"stopping: the next pair would pass the budget of {max_seconds:.0f} s")
                break
        tag = f"[{i + 1}/{len(variants)}] {variant}"
        try:
            row, profile = profile_variant(variant, settings, device, profile_count, trace_dir)
        except Exception:  # logged in full; the other variants still run
            _log(f"{tag}: FAILED\n{traceback.format_exc()}")
            failed += 1
            continue
        finally:
            train_step._release(variant)
        append(row, profile, folder)
        _log(f"{tag}: step {row['ms_p50']:.2f} ms; per step {describe(profile, row['ms_p50'])}")
        slowest = max(slowest, time.perf_counter() - pair_started)
    return failed


def describe(profile: StepProfile, step_ms: float) -> str:
    """One log line's worth of a profile."""
    text = f"{profile.aten_ops:.0f} aten ops"
    if not profile.kernels:
        return text + ", no device kernels"
    return (
        f"{profile.kernels:.0f} kernels ({profile.norm_kernels:.0f} norm), "
        f"{profile.kernel_ms:.3f} ms of kernels (GPU busy {profile.kernel_ms / step_ms:.0%}), "
        + text
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(models.MODELS), help="comma-separated subset")
    p.add_argument(
        "--execs", default="eager", help="comma-separated eager,compiled (default eager)"
    )
    p.add_argument("--profile-steps", type=int, default=3, help="steps profiled (default 3)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20; CPU 5)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 10; CPU 2)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; CPU 32)")
    p.add_argument(
        "--max-seconds", type=float, default=math.inf,
        help="start no (model, exec) pair that would not fit in this many seconds",
    )  # fmt: skip
    p.add_argument(
        "--trace-dir", type=Path, default=None,
        help="also write each profile as a Chrome trace (chrome://tracing, Perfetto) here",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--run-id", default=os.environ.get("MN_RUN_ID"),
        help="fills the run_id column (default: $MN_RUN_ID, else the UTC time)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if bad := set(args.models.split(",")) - set(models.MODELS):
        p.error(f"--models: unknown {sorted(bad)}; choose from {models.MODELS}")
    if bad := set(args.execs.split(",")) - {"eager", "compiled"}:
        p.error(f"--execs: unknown {sorted(bad)}; choose from eager, compiled")
    for name in ("profile_steps", "steps", "batch"):
        if (value := getattr(args, name)) is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    quick = device.type != "cuda"
    settings = train_step.Settings(
        batch=args.batch or (32 if quick else 128),
        warmup=args.warmup if args.warmup is not None else (2 if quick else 10),
        steps=args.steps or (5 if quick else 20),
        max_seconds_per_variant=10.0 if quick else 30.0,
        run_size="quick" if quick else "full",
        run_id=args.run_id or records.new_run_id(),
    )
    variants = profiled_variants(args.models.split(","), args.execs.split(","))
    _log(
        f"step_profile: {len(variants)} variants on {measure.device_name(device)}, "
        f"batch {settings.batch}, {args.profile_steps} profiled steps each"
        + ("; a CPU has no device kernels: a pipeline check" if quick else "")
    )
    failed = run(variants, settings, device, args.profile_steps, args.max_seconds, args.trace_dir)
    _log(f"wrote profiles to {PROFILE_DIR}; failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
