"""pytest-benchmark view of the training-step benchmark (the code of benchmarks/train_step.py).

    pytest benchmarks/test_train_step.py --benchmark-only

pytest-benchmark's own timing is host wall time around whole steps (synchronised on CUDA);
the device-side measurement — the SPEC §7 row that train_step.py writes, median of CUDA-event
timings after warm-up, peak memory, images/s — goes into `benchmark.extra_info`. No CSV rows
are written here: `python benchmarks/train_step.py` is what feeds reports/data/.

On CUDA: every eager variant at batch 128 (compiled ones are left to the CLI, whose budget
logic bounds their build time). On CPU: LeNet only, batch 32, few steps — a pipeline check
that says nothing about GPU speed.
"""

from __future__ import annotations

import models
import pytest
import torch
import train_step

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
if CUDA:
    SETTINGS = train_step.Settings(run_id="pytest")
    VARIANTS = train_step.plan(models.MODELS, ["eager"])
else:
    SETTINGS = train_step.Settings(batch=32, warmup=2, steps=5, run_size="quick", run_id="pytest")
    VARIANTS = [v for v in train_step.plan(["lenet"], ["eager"]) if v.k in (0, 6)]


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.slug for v in VARIANTS])
def test_train_step(benchmark, variant: train_step.Variant) -> None:
    classes = models.NUM_CLASSES[variant.model]
    batches = train_step.synthetic_batches(classes, SETTINGS, DEVICE)
    step = train_step.build_variant(variant, SETTINGS, DEVICE)
    row = train_step.measure_variant(variant, SETTINGS, DEVICE, batches, step)  # warms up too
    benchmark.extra_info.update(row)
    benchmark.group = f"train_step {variant.model} {variant.exec}"

    def one_step() -> None:
        step(*batches[0])
        if CUDA:
            torch.cuda.synchronize(DEVICE)

    benchmark.pedantic(one_step, rounds=SETTINGS.steps, iterations=1, warmup_rounds=1)
    assert row["ms_p50"] > 0 and row["reps"] >= min(SETTINGS.steps, 5)
