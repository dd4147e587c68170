"""How the benchmarks measure: device time, peak memory, copy bandwidth, minimal bytes.

Used by every benchmark (layer profiles and end-to-end training steps) so that all rows in
`reports/data/` are measured the same way (SPEC §6):

- GPU: CUDA events around each repetition, after warm-up; medians and 20/80 percentiles.
  Before each repetition a 256 MiB buffer is zeroed on the device (as Triton's `do_bench`
  does): it evicts the L2 cache, and while the GPU is busy with it the host queues the timed
  call's launches, so the events time the device's work rather than the gaps between
  launches (unless the host is slower than the device even then, as for the eager
  reference at small shapes: then that is the cost). Callers also pass several input sets
  and the repetitions cycle through them. Zeros are never reported as data: a timing that
  is not positive raises.
- GPU, host side: the host's time to issue each timed call (Python, dispatch, launches;
  `host_ms_p50`) and the device time of the flush before it (`flush_ms_p50`), the head
  start the host has. Where the issue time beyond that head start comes near the event
  time, the device waited for the host, and the time says more about the host than about
  the kernels (the report flags such rows: figures.host_bound).
- CPU: `time.perf_counter` around each repetition (rows say device=cpu and do not speak
  about GPU speed).
"""

from __future__ import annotations

import datetime
import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import triton

REPO = Path(__file__).resolve().parents[1]
L2_FLUSH_BYTES = 256 * 2**20  # rotate through at least this much data per repetition cycle


@dataclass(frozen=True)
class Timing:
    ms_p20: float
    ms_p50: float
    ms_p80: float
    peak_mem_mb: float | None  # None where it is not measured (CPU)
    reps: int
    host_ms_p50: float | None = None  # median time to issue a timed call (GPU only)
    flush_ms_p50: float | None = None  # median device time of the L2 flush before it (GPU)
    # Everything allocated at the peak of the timed calls, less the L2 flush's buffer (GPU).
    peak_total_mb: float | None = None


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def rotation_count(bytes_per_call: int, max_sets: int = 64) -> int:
    """How many distinct input sets to cycle through so caches cannot hold them all."""
    if bytes_per_call <= 0:
        return 1
    return max(1, min(max_sets, -(-L2_FLUSH_BYTES // bytes_per_call)))


def time_fn(
    fn: Callable[[int], object],
    device: torch.device,
    warmup: int = 10,
    reps: int = 50,
    max_seconds: float = 5.0,
    peak_from_warmup: bool = False,
) -> Timing:
    """Time `fn(i)` (i = repetition index, to pick the input set) on `device`.

    Stops early (but after at least 5 timed repetitions) once `max_seconds` of timing have
    been spent, so that slow cases (the eager reference on large shapes) stay affordable.
    The peak memory is that of the timed calls, above what warm-up left allocated; with
    `peak_from_warmup`, of the warm-up calls too, above what was allocated before them: for
    steps replayed from CUDA graphs, whose memory is allocated when the graphs are recorded
    (in warm-up) and whose replays allocate nothing.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        flush = _l2_flush_buffer(device)
        if peak_from_warmup:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
    for i in range(warmup):
        fn(i)
    if cuda:
        torch.cuda.synchronize(device)
        if not peak_from_warmup:
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
    times: list[float] = []
    host: list[float] = []  # time to issue each timed call (GPU)
    flushes: list[float] = []  # device time of the flush before it (GPU)
    started = time.perf_counter()
    for i in range(reps):
        if cuda:
            before, start, stop = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            before.record()
            flush.zero_()  # not synchronised: the timed launches queue up behind it
            start.record()
            issued = time.perf_counter()
            fn(warmup + i)
            host.append((time.perf_counter() - issued) * 1e3)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
            flushes.append(before.elapsed_time(start))
        else:
            t0 = time.perf_counter()
            fn(warmup + i)
            times.append((time.perf_counter() - t0) * 1e3)
        if i >= 4 and time.perf_counter() - started > max_seconds:
            break
    if min(times) <= 0.0:
        raise RuntimeError(f"non-positive timing {min(times)} ms: refusing to record it")
    times.sort()
    peak = peak_total = None
    if cuda:
        highest = torch.cuda.max_memory_allocated(device)
        peak, peak_total = (highest - base) / 2**20, (highest - L2_FLUSH_BYTES) / 2**20
    return Timing(
        _percentile(times, 0.2),
        statistics.median(times),
        _percentile(times, 0.8),
        peak,
        len(times),
        statistics.median(host) if host else None,
        statistics.median(flushes) if flushes else None,
        peak_total,
    )


@functools.lru_cache(maxsize=4)
def _l2_flush_buffer(device: torch.device) -> torch.Tensor:
    """L2_FLUSH_BYTES of device memory, allocated once (so it never counts as a peak)."""
    return torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)


@functools.lru_cache(maxsize=4)
def copy_bandwidth_gbps(device: str) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second), GB/s.

    The physical ceiling the kernels are judged against; measured once per run and device.
    On CPU it is a memcpy-like `copy_`, useful only to exercise the pipeline.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n = (512 * 2**20 if cuda else 64 * 2**20) // 4
    src = torch.empty(n, dtype=torch.float32, device=dev).normal_()
    dst = torch.empty_like(src)
    # On a GPU, ~0.1–0.2 s of copies first (~0.25–0.5 ms each): an idle GPU's clocks take a
    # while to rise, and a ceiling measured low would flatter every fraction of it.
    timing = time_fn(lambda i: dst.copy_(src), dev, warmup=400 if cuda else 5, reps=30)
    return 2 * src.numel() * src.element_size() / (timing.ms_p50 * 1e-3) / 1e9


def cpu_load_warning(device: torch.device | str) -> str | None:
    """A warning where CPU timings are about to be taken on a machine that other processes
    already load (a 1-minute load average above its cores): threads then stall, and the
    ratios between variants timed one after another say nothing (a review saw BatchNorm's
    LeNet step at 612 ms against its usual 7 ms). None on a GPU, or an idle CPU."""
    if torch.device(device).type != "cpu" or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores:
        return None
    return (
        f"WARNING: load average {load:.1f} on {cores} cores before timing: other processes "
        "share this CPU, so its timings, and the ratios between them, are unreliable"
    )


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """HEAD's short hash, with "-dirty" when tracked files outside reports/ differ from it
    (a run's own rows and figures change nothing measured); $MN_GIT_SHA where set (a lent GPU
    machine receives the working tree without its .git)."""
    if given := os.environ.get("MN_GIT_SHA"):
        return given
    try:
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports")
        return _git("rev-parse", "--short=12", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(device: torch.device | str) -> dict[str, str]:
    """The columns every row carries about where and when it was measured."""
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "git_sha": git_sha(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
