"""Layer profiles: every case of the grid (grid.py) timed on the device and kept as a row.

Each case is timed by measure.time_fn (device time, warm-up, rotated inputs, percentiles),
appended to reports/data/layers-<device>-<run>.csv, and then run for a few rounds through
pytest-benchmark's `benchmark` fixture so that its flags (--benchmark-json, --benchmark-compare,
--benchmark-group-by) keep working; the device-time figures go into its extra_info.
"""

from __future__ import annotations

import itertools
from typing import Any

import layers
import pytest
import records
import torch
from grid import Case
from layers import BenchRun

# Row columns that also go into pytest-benchmark's extra_info (and so into its JSON).
EXTRA_INFO = ("ms_p20", "ms_p50", "ms_p80", "gbps", "copy_gbps", "bytes_min", "peak_mem_mb",
              "device", "reps", "setup_s")  # fmt: skip


def _record(case: Case, bench_run: BenchRun) -> tuple[layers.Measured, dict[str, Any]]:
    measured = layers.measure_case(case, bench_run.device, bench_run.settings)
    row = layers.make_case_row(
        case, measured, bench_run.copy_gbps, bench_run.device, bench_run.run_id,
        bench_run.cases_planned,
    )  # fmt: skip
    records.append_rows([row], bench_run.csv_name)  # per case: a run cut short keeps its rows
    return measured, row


def test_layer(case: Case, bench_run: BenchRun, benchmark: Any) -> None:
    benchmark.group = case.group
    try:
        with layers.backend_for(case):
            measured, row = _record(case, bench_run)
            counter = itertools.count()

            def synced_call() -> None:
                measured.call(next(counter))
                layers.synchronize(bench_run.device)

            benchmark.pedantic(synced_call, rounds=bench_run.settings.rounds, iterations=1)
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        pytest.skip(f"out of memory: {str(err).splitlines()[0]}")
    benchmark.extra_info.update({key: row[key] for key in EXTRA_INFO})
    print(f"{case.id}: p50 {row['ms_p50']:.4f} ms ({row['reps']} reps, setup {row['setup_s']} s)")
