"""End-to-end training-step benchmark: Mode Normalization against BatchNorm (SPEC §6, issue 5).

One training step = zero_grad, forward, cross-entropy loss, backward, SGD step (lr 0.1,
momentum 0.9, weight decay 1e-4) on a batch of 128 images of 3×32×32, for the paper's LeNet
and the CIFAR ResNet-20/56 (benchmarks/models.py) with each normalization provider:

- native: nn.BatchNorm (cuDNN on GPUs), K left empty in the rows (as in the layer rows);
- triton: `mn_triton.ModeNorm` (the Triton kernels; on a CPU without TRITON_INTERPRET=1 the
  layer runs its torch-op path and the row says provider=torch_ops);
- reference: `reference.ModeNorm`, the eager paper-literal layer;

with K = 2 for the ResNets and K ∈ {2, 4, 6} for LeNet, executed eagerly, compiled
(`torch.compile` of model + loss), and on CUDA with CUDA graphs
(`torch.compile(mode="reduce-overhead")`). Compiling is the expensive part, so the compiled
variants are bounded: native and triton at the headline K of each model (K = 6 for LeNet,
the paper's "roughly 5%" figure; K = 2 for the ResNets), the reference only with
--compile-reference.

Timing is measure.time_fn's: warm-up steps (10; they include compilation), then the median of
50 timed steps (CUDA events on GPUs; fewer only where a variant's 120 s run out: the row's
`reps` says so, and the report then does not judge it), under PyTorch's default backend
settings (cuDNN autotuning off, TF32 convolutions on). Rows go to
reports/data/train_step-<run-id>.csv, one file per run (a run never appends to a file that
another run, or git, holds): SPEC §7's columns (N = the batch size actually used, K empty for
BatchNorm, bytes_min and copy_gbps empty) plus run_id, reps, setup_s (the first step: compile,
Triton JIT; the model is built before), images_per_s, peak_mem_total_mb (all memory allocated
at the peak of the timed steps but the timing's own L2-flush buffer; peak_mem_mb is time_fn's
peak above what was allocated after warm-up, i.e. a step's activations and temporaries; for
CUDA-graph steps, whose replays allocate nothing, both from the warm-up on, which records the
graphs; MiB, 2^20 bytes), width, run_size (quick | full) and notes (compiled: graph count and
skipped CUDA graphs).

    python benchmarks/train_step.py                 # full run (what the GPU script calls)
    python benchmarks/train_step.py --quick         # short, labelled run (default on a CPU)
    python benchmarks/train_step.py --warm-compile --models resnet56 --execs compiled \
        --norms mn_triton                           # fill the compile caches; no rows

--warm-compile runs each variant for one warm-up and one timed step and records nothing: it
fills inductor's and Triton's on-disk caches, so that a later timed run compiles from them
(a LeNet compile: 40 s cold, 5 s warm, on a CPU). benchmarks/gpu_run.sh runs one such process
per compiled variant, in parallel, before the timed stages.

Data: seeded synthetic images and labels by default; --data PATH reads real ones (see
`load_batches`).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Run as a script, only benchmarks/ is on sys.path; the layers live in the repository root.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import measure  # noqa: E402
import models  # noqa: E402
import records  # noqa: E402

from mn_triton import backend as mn_backend  # noqa: E402

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4
N_BATCHES = 4  # distinct batches cycled through, so the gates see varying data
LENET_KS = (2, 4, 6)
RESNET_KS = (2,)
HEADLINE_K = {"lenet": 6, "resnet20": 2, "resnet56": 2}  # the K the goals are judged at
PROVIDER_OF_KIND = {"batchnorm": "native", "mn_triton": "triton", "reference": "reference"}
# First guesses (seconds) of a compiled variant's warm-up on a GPU host, before one has been
# seen; used only by --max-seconds to avoid starting a compile that cannot finish in time.
COMPILE_GUESS_S = {"lenet": 25.0, "resnet20": 45.0, "resnet56": 90.0}
EAGER_GUESS_S = 5.0
COMPILE_GUESS_FLOOR = 0.1  # the least fraction of COMPILE_GUESS_S a compile is guessed at

StepFn = Callable[[Tensor, Tensor], Tensor]  # (images, labels) -> loss, one training step


@dataclass(frozen=True)
class Variant:
    model: str
    norm: str  # a models.NORM_KINDS entry
    k: int  # number of modes; 0 for BatchNorm
    exec: str  # eager | compiled | cudagraph

    def __str__(self) -> str:
        k = f" K={self.k}" if self.k else ""
        return f"{self.model} {self.exec} {self.norm}{k}"

    @property
    def slug(self) -> str:
        """A test id: lenet-eager-mn_triton-K6."""
        return f"{self.model}-{self.exec}-{self.norm}" + (f"-K{self.k}" if self.k else "")


@dataclass(frozen=True)
class Settings:
    batch: int = 128
    warmup: int = 10
    steps: int = 50
    image_size: int = 32
    width: float = 1.0
    seed: int = 0
    max_seconds_per_variant: float = 120.0  # time_fn's cap on the timed steps of one variant
    run_size: str = "full"  # "quick" rows are labelled so nobody reads them as the real run
    run_id: str = ""  # the report compares rows of one run only


# --------------------------------- the training step ---------------------------------


class ModelWithLoss(nn.Module):
    """Model and loss as one module, so torch.compile sees (and fuses) both."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.model(x), y)


def make_optimizer(model: nn.Module, lr: float = LR) -> torch.optim.Optimizer:
    """The benchmark's SGD (momentum 0.9, weight decay 1e-4); lr 0.1 unless a test says so."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def make_step(model: nn.Module, exec_mode: str = "eager", lr: float = LR) -> StepFn:
    """A function running one training step of `model` on (x, y) and returning the loss.

    With exec_mode="cudagraph" the returned loss lives in CUDA-graph memory that the next
    step overwrites: read it (or clone it) before the next call.
    """
    optimizer = make_optimizer(model, lr)
    loss_fn: nn.Module = ModelWithLoss(model)
    if exec_mode == "compiled":
        loss_fn = torch.compile(loss_fn)
    elif exec_mode == "cudagraph":
        loss_fn = torch.compile(loss_fn, mode="reduce-overhead")
    elif exec_mode != "eager":
        raise ValueError(f"exec_mode must be eager, compiled or cudagraph, got {exec_mode!r}")
    new_graph_step = exec_mode == "cudagraph"

    def step(x: Tensor, y: Tensor) -> Tensor:
        if new_graph_step:  # tell CUDA-graph trees that a new iteration starts
            torch.compiler.cudagraph_mark_step_begin()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        optimizer.step()
        return loss

    return step


# ------------------------------------- data ------------------------------------------


def synthetic_batches(
    num_classes: int, settings: Settings, device: torch.device
) -> list[tuple[Tensor, Tensor]]:
    """N_BATCHES seeded batches of standard-normal images and uniform labels."""
    gen = torch.Generator().manual_seed(settings.seed)
    shape = (settings.batch, 3, settings.image_size, settings.image_size)
    return [
        (
            torch.randn(shape, generator=gen).to(device),
            torch.randint(num_classes, (settings.batch,), generator=gen).to(device),
        )
        for _ in range(N_BATCHES)
    ]


def load_batches(
    path: Path, num_classes: int, settings: Settings, device: torch.device
) -> list[tuple[Tensor, Tensor]]:
    """N_BATCHES batches of real data from a file written with torch.save.

    `path` is a .pt file (or a folder holding train.pt) with a dict {"images": (M, C, S, S)
    uint8 or float tensor, C = 1 or 3 (grey images are repeated to 3 channels), S the image
    size (32), "labels": (M,) integer tensor in [0, num_classes)}. uint8 images are scaled to
    [0, 1]; all are standardised per channel. M must be at least N_BATCHES × batch; a seeded
    shuffle picks the samples. Prepare data once, e.g. pad MNIST to 32×32 and offset the
    labels of each data set to build the paper's 40-way multi-task set.
    """
    path = path / "train.pt" if path.is_dir() else path
    data = torch.load(path, map_location="cpu", weights_only=True)
    images, labels = data["images"], data["labels"].long()
    size = settings.image_size
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[2:] != (size, size):
        raise ValueError(f"{path}: images must be (M, 1 or 3, {size}, {size}), got {images.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{path}: labels must lie in [0, {num_classes})")
    wanted = N_BATCHES * settings.batch
    if images.shape[0] < wanted:
        raise ValueError(f"{path}: needs at least {wanted} samples, has {images.shape[0]}")
    pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(settings.seed))
    images = images[pick[:wanted]]
    images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    images = (images - mean) / images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    xs, ys = images.split(settings.batch), labels[pick[:wanted]].split(settings.batch)
    return [(x.contiguous().to(device), y.to(device)) for x, y in zip(xs, ys, strict=True)]


# ----------------------------------- measuring ---------------------------------------


class Progress:
    """A one-line text progress bar on stderr (redrawn at most 4×/s, only on a terminal)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.live or (now - self.last < 0.25 and done < self.total):
            return
        self.last = now
        filled = 20 * min(done, self.total) // max(self.total, 1)
        bar = "#" * filled + "." * (20 - filled)
        self.stream.write(f"\r  {self.label} [{bar}] {done}/{self.total} steps")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()


def provider_name(variant: Variant, device: torch.device) -> str:
    """The row's provider; mn_triton says torch_ops where its Triton kernels do not run."""
    provider = PROVIDER_OF_KIND[variant.norm]
    if provider == "triton" and not mn_backend.uses_kernels(torch.empty(0, device=device)):
        return "torch_ops"
    return provider


def _compile_counters() -> tuple[int, int]:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"], counters["inductor"]["cudagraph_skips"]


def build_variant(variant: Variant, settings: Settings, device: torch.device) -> StepFn:
    """`variant`'s model (seeded), optimizer and (compiled) step function."""
    torch.manual_seed(settings.seed)
    model = models.build_model(
        variant.model, variant.norm, max(variant.k, 1), settings.width,
        image_size=settings.image_size,
    ).to(device)  # fmt: skip
    return make_step(model, variant.exec)


def measure_variant(
    variant: Variant,
    settings: Settings,
    device: torch.device,
    batches: Sequence[tuple[Tensor, Tensor]],
    step: StepFn | None = None,
) -> dict[str, Any]:
    """Warm up and time `variant`'s steps (built here unless `step` is given); return its row."""
    step = step or build_variant(variant, settings, device)
    graphs0, skips0 = _compile_counters()
    progress = Progress(settings.warmup + settings.steps, str(variant))

    def run(i: int) -> None:
        progress.update(i)  # inside the timed region, but a no-op except ≤ 4 redraws a second
        step(*batches[i % len(batches)])

    started = time.perf_counter()
    run(0)  # the first step builds everything (compiles, Triton JIT): timed on its own
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    setup_s = time.perf_counter() - started
    # A CUDA-graph step's memory is allocated as its graphs are recorded, in warm-up (the
    # first step after compiling warms up, the next records); replays allocate nothing.
    timing = measure.time_fn(
        lambda i: run(i + 1), device, max(settings.warmup - 1, 0), settings.steps,
        settings.max_seconds_per_variant, peak_from_warmup=variant.exec == "cudagraph",
    )  # fmt: skip
    progress.close()
    graphs1, skips1 = _compile_counters()
    notes = ""
    if variant.exec != "eager":  # a graph break or a skipped CUDA graph changes what is timed
        notes = f"graphs={graphs1 - graphs0}; cudagraph_skips={skips1 - skips0}"
    if variant.exec == "cudagraph":
        notes += "; peak memory from warm-up on, which records the CUDA graphs"
    return make_row(variant, settings, device, timing, setup_s, notes)


def make_row(
    variant: Variant,
    settings: Settings,
    device: torch.device,
    timing: measure.Timing,
    setup_s: float,
    notes: str = "",
) -> dict[str, Any]:
    """SPEC §7's row (K empty for BatchNorm, as in the layer rows) plus this benchmark's extras."""
    size = settings.image_size
    total_peak = "" if timing.peak_total_mb is None else timing.peak_total_mb
    return records.make_row(
        op="train_step", provider=provider_name(variant, device), mode="train_step",
        dtype="float32", layout="nchw", shape=(settings.batch, 3, size, size),
        k=variant.k or "", timing=timing, bytes_min="", copy_gbps="", device=device,
        model=variant.model, exec=variant.exec, run_id=settings.run_id, reps=timing.reps,
        setup_s=round(setup_s, 3), images_per_s=settings.batch / (timing.ms_p50 * 1e-3),
        peak_mem_total_mb=total_peak, width=settings.width, run_size=settings.run_size,
        notes=notes,
    )  # fmt: skip


# ------------------------------------ the plan ---------------------------------------


def plan(
    model_names: Sequence[str],
    execs: Sequence[str],
    compile_reference: bool = False,
    all_k_compiled: bool = False,
) -> list[Variant]:
    """The variants to run, in order of priority for a time budget.

    Every eager variant first (cheap), then compiled ones, then CUDA graphs (the goals name
    eager and compiled; CUDA graphs apply "where they can"), each model by model, smallest
    first: a --max-seconds budget then drops the most expensive compiles (ResNet-56) and
    fills the remaining time with cheaper ones.
    """
    order = [e for e in ("eager", "compiled", "cudagraph") if e in execs]
    return [
        variant
        for exec_mode in order
        for name in model_names
        for variant in (
            _model_variants(name, "eager", True, True)
            if exec_mode == "eager"
            else _model_variants(name, exec_mode, compile_reference, all_k_compiled)
        )
    ]


def _model_variants(name: str, exec_mode: str, reference: bool, all_k: bool) -> list[Variant]:
    ks = (LENET_KS if name == "lenet" else RESNET_KS) if all_k else (HEADLINE_K[name],)
    norms = ("mn_triton", "reference") if reference else ("mn_triton",)
    variants = [Variant(name, "batchnorm", 0, exec_mode)]
    return variants + [Variant(name, norm, k, exec_mode) for norm in norms for k in ks]


def _needed_seconds(
    variants: Sequence[Variant], i: int, seen: dict[tuple[str, str], float]
) -> float:
    """A guess of the time variants[i] needs; for the first of its (model, exec) group, the
    whole group's, so that a BatchNorm row is not measured without the MN rows it is for.

    First guesses of compiles are scaled by how the compiles seen so far compared with theirs
    (within [0.1, 3]): hosts and warm caches differ a lot. (From compile caches that
    `--warm-compile` filled, a compiled ResNet-56 variant took 9–10 s on an H200's host
    against a cold guess of 90 s; a floor of 0.5 skipped it with 77 s of budget left.)
    """
    variant = variants[i]
    key = (variant.model, variant.exec)
    if key in seen:
        return seen[key]
    if variant.exec == "eager":
        guess = EAGER_GUESS_S
    else:
        ratios = [t / COMPILE_GUESS_S[m] for (m, e), t in seen.items() if e != "eager"]
        guess = COMPILE_GUESS_S[variant.model] * min(max(ratios, default=1.0), 3.0)
        guess = max(guess, COMPILE_GUESS_FLOOR * COMPILE_GUESS_S[variant.model])
    return guess * sum(1 for v in variants[i:] if (v.model, v.exec) == key)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class RunResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Variant] = field(default_factory=list)
    failed: list[Variant] = field(default_factory=list)


def run_all(
    variants: Sequence[Variant],
    settings: Settings,
    device: torch.device,
    data: Path | None = None,
    max_seconds: float = math.inf,
    sink: Callable[[dict[str, Any]], object] | None = None,
) -> RunResult:
    """Measure each variant, passing each row to `sink` as soon as it exists.

    A variant that would not fit in `max_seconds` (by the time its model and exec mode took
    before, or a first guess) is skipped; a variant that fails is logged and skipped, so one
    broken path (say, a CUDA-graph capture) costs its own rows only.
    """
    result = RunResult()
    seen: dict[tuple[str, str], float] = {}
    start = time.perf_counter()
    for i, variant in enumerate(variants):
        tag = f"[{i + 1}/{len(variants)}] {variant}"
        key = (variant.model, variant.exec)
        dropped = any((v.model, v.exec) == key for v in result.skipped)  # keep groups whole
        needed = _needed_seconds(variants, i, seen)
        if dropped or time.perf_counter() - start + needed > max_seconds:
            _log(f"{tag}: skipped (budget of {max_seconds:.0f} s)")
            result.skipped.append(variant)
            continue
        classes = models.NUM_CLASSES[variant.model]
        if data:
            batches = load_batches(data, classes, settings, device)
        else:
            batches = synthetic_batches(classes, settings, device)
        began = time.perf_counter()
        try:
            row = measure_variant(variant, settings, device, batches)
        except Exception:  # logged in full; the other variants still run
            _log(f"{tag}: FAILED\n{traceback.format_exc()}")
            result.failed.append(variant)
            continue
        finally:
            _release(variant)
        took = time.perf_counter() - began
        seen[key] = max(took, seen.get(key, 0.0))
        result.rows.append(row)
        if sink is not None:
            sink(row)
        _log(
            f"{tag}: p50 {row['ms_p50']:.2f} ms, {row['images_per_s']:.0f} img/s, "
            f"first step {row['setup_s']:.1f} s, {took:.1f} s in all "
            f"({time.perf_counter() - start:.0f} s elapsed)"
        )
    return result


def _release(variant: Variant) -> None:
    """Free one variant's model, compiled graphs and CUDA-graph pools before the next."""
    if variant.exec != "eager":
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def overhead_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each MN row's step time over BatchNorm's (same model, exec and batch), for the log."""
    base = {(r["model"], r["exec"]): r["ms_p50"] for r in rows if r["provider"] == "native"}
    lines = []
    for r in rows:
        ref = base.get((r["model"], r["exec"]))
        if r["provider"] != "native" and ref:
            ratio = r["ms_p50"] / ref
            lines.append(
                f"  {r['model']:9} {r['exec']:9} {r['provider']:10} K={r['K']}: "
                f"{ratio:.3f}× BatchNorm ({100 * (ratio - 1):+.1f}%)"
            )
    return lines


# -------------------------------------- CLI ------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="short labelled run: batch 32, 2 warm-up + 5 timed steps, eager only unless "
        "--execs says otherwise (the default without a GPU)",
    )
    p.add_argument(
        "--full", action="store_true", help="the full run even on a CPU (slow: many minutes)"
    )
    p.add_argument(
        "--models",
        default=",".join(models.MODELS),
        help="comma-separated subset of lenet,resnet20,resnet56",
    )
    p.add_argument(
        "--norms",
        default=",".join(models.NORM_KINDS),
        help="comma-separated subset of " + ",".join(models.NORM_KINDS),
    )
    p.add_argument(
        "--warm-compile",
        action="store_true",
        help="one warm-up and one timed step per variant, no rows: fills the compile caches",
    )
    p.add_argument(
        "--execs",
        default=None,
        help="comma-separated eager,compiled,cudagraph (default: all that apply "
        "on CUDA; eager on CPU and with --quick)",
    )
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50; quick 5)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 10; quick 2)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; quick 32)")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="real data: a .pt file or folder with train.pt (see load_batches)",
    )
    p.add_argument(
        "--compile-reference",
        action="store_true",
        help="also compile the reference layer (slow to build)",
    )
    p.add_argument(
        "--all-k-compiled", action="store_true", help="compile LeNet at every K, not only K=6"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=math.inf,
        help="skip variants that would not fit in this many seconds (guessed from those run "
        "so far); rows are written as they are measured",
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--out", default=None,
        help="CSV name in the data folder, reports/data/ unless $MN_REPORT_DATA says "
        "otherwise (default: train_step-<run id>, one file per run)",
    )  # fmt: skip
    p.add_argument(
        "--run-id",
        default=os.environ.get("MN_RUN_ID"),
        help="fills the run_id column (default: $MN_RUN_ID, else the UTC time)",
    )
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        batch=args.batch or (32 if quick else 128),
        warmup=args.warmup if args.warmup is not None else (2 if quick else 10),
        steps=args.steps or (5 if quick else 50),
        width=args.width,
        max_seconds_per_variant=10.0 if quick else 120.0,
        run_size="quick" if quick else "full",
        run_id=args.run_id or records.new_run_id(),
    )


def execs_from(args: argparse.Namespace, device: torch.device) -> list[str]:
    if args.execs:
        execs = args.execs.split(",")
        bad = set(execs) - records.EXECS
        if bad or ("cudagraph" in execs and device.type != "cuda"):
            raise SystemExit(f"--execs: unknown or not on {device.type}: {args.execs}")
        return execs
    if args.quick or device.type != "cuda":
        return ["eager"]
    return ["eager", "compiled", "cudagraph"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = args.models.split(",")
    if bad := set(names) - set(models.MODELS):
        raise SystemExit(f"--models: unknown {sorted(bad)}; choose from {models.MODELS}")
    norms = args.norms.split(",")
    if bad := set(norms) - set(models.NORM_KINDS):
        raise SystemExit(f"--norms: unknown {sorted(bad)}; choose from {models.NORM_KINDS}")
    if device.type != "cuda" and not args.full and not args.warm_compile:
        args.quick = True  # a CPU gets the short, labelled version unless asked otherwise
    if args.warm_compile:
        args.warmup, args.steps = 1, 1
    settings = settings_from(args)
    variants = plan(names, execs_from(args, device), args.compile_reference, args.all_k_compiled)
    variants = [v for v in variants if v.norm in norms]
    if args.warm_compile:
        _log(f"train_step --warm-compile: {len(variants)} variants, no rows recorded")
        result = run_all(variants, settings, device, args.data, args.max_seconds)
        return 1 if result.failed else 0
    _log(
        f"train_step: {len(variants)} variants on {measure.device_name(device)}, "
        f"batch {settings.batch}, {settings.warmup} warm-up + {settings.steps} timed steps"
        + (" — QUICK run, labelled run_size=quick" if args.quick else "")
        + ("; CPU times say nothing about GPU speed" if device.type == "cpu" else "")
    )
    if warning := measure.cpu_load_warning(device):
        _log(warning)
    name = args.out or f"train_step-{settings.run_id}"
    path = records.DATA_DIR / f"{name}.csv"
    # Rows are appended one by one, so an interrupted run keeps what it measured.
    result = run_all(
        variants, settings, device, args.data, args.max_seconds,
        sink=lambda row: records.append_rows([row], name),
    )  # fmt: skip
    _log("\n".join(["overhead over BatchNorm (median step time):", *overhead_lines(result.rows)]))
    _log(
        f"wrote {len(result.rows)} rows to {path}; skipped {len(result.skipped)}, "
        f"failed {len(result.failed)}: {', '.join(map(str, result.failed)) or '-'}"
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
