"""Benchmark rows: SPEC §7's long-format CSV files under `reports/data/`.

One row per measurement. Every benchmark builds rows with `make_row` (which fills the
environment columns and checks names) and appends them with `append_rows`; the report
reads every CSV file in the folder.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from measure import REPO, Timing, environment

DATA_DIR = Path(os.environ.get("MN_REPORT_DATA", REPO / "reports" / "data"))

COLUMNS = (
    "op", "provider", "mode", "dtype", "layout", "N", "C", "H", "W", "K", "model", "exec",
    "ms_p20", "ms_p50", "ms_p80", "bytes_min", "gbps", "copy_gbps", "peak_mem_mb",
    "device", "torch", "triton", "git_sha", "timestamp",
)  # fmt: skip

OPS = {"mode_norm", "mode_group_norm", "batch_norm", "group_norm", "instance_norm",
       "layer_norm", "train_step"}  # fmt: skip
PROVIDERS = {"triton", "torch_ops", "reference", "reference_compiled", "native"}
MODES = {"forward", "backward", "full", "eval", "train_step"}
EXECS = {"eager", "compiled", "cudagraph"}
# A run's id: its start in UTC, as tools/bench.sh and benchmarks/gpu_run.sh form it too
# (`date -u +%Y%m%dT%H%M%SZ`), unless MN_RUN_ID or --run-id names it.
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"


def new_run_id() -> str:
    """A run id for a run that starts now."""
    return datetime.datetime.now(datetime.UTC).strftime(RUN_ID_FORMAT)


def make_row(
    *,
    op: str,
    provider: str,
    mode: str,
    dtype: str,
    layout: str,
    shape: tuple[int, int, int, int],
    k: int | str,
    timing: Timing,
    bytes_min: int | str,
    copy_gbps: float | str,
    device: Any,
    model: str = "",
    exec: str = "eager",
    **extra: Any,
) -> dict[str, Any]:
    """A row with SPEC §7's columns; `gbps` is derived from bytes_min and the median time."""
    if op not in OPS or provider not in PROVIDERS or mode not in MODES or exec not in EXECS:
        raise ValueError(f"unknown op/provider/mode/exec: {op}/{provider}/{mode}/{exec}")
    n, c, h, w = shape
    gbps = bytes_min / (timing.ms_p50 * 1e-3) / 1e9 if isinstance(bytes_min, int) else ""
    row = {
        "op": op, "provider": provider, "mode": mode, "dtype": dtype, "layout": layout,
        "N": n, "C": c, "H": h, "W": w, "K": k, "model": model, "exec": exec,
        "ms_p20": timing.ms_p20, "ms_p50": timing.ms_p50, "ms_p80": timing.ms_p80,
        "bytes_min": bytes_min, "gbps": gbps, "copy_gbps": copy_gbps,
        "peak_mem_mb": "" if timing.peak_mem_mb is None else timing.peak_mem_mb,
        **environment(device),
    }  # fmt: skip
    # the host's time to issue the call and its head start (GPU rows; see figures.host_bound)
    row["host_ms_p50"] = "" if timing.host_ms_p50 is None else timing.host_ms_p50
    row["flush_ms_p50"] = "" if timing.flush_ms_p50 is None else timing.flush_ms_p50
    row.update(extra)
    return row


def append_rows(rows: Iterable[Mapping[str, Any]], name: str) -> Path:
    """Append rows to reports/data/<name>.csv (header written when the file is new).

    Extra keys beyond COLUMNS become extra columns, in first-seen order; a file's header is
    fixed by its first write, so one file should hold one kind of benchmark.
    """
    rows = list(rows)
    path = DATA_DIR / f"{name}.csv"
    for i, row in enumerate(rows):  # every row, before anything is written
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row {i} lacks SPEC §7 columns: {missing}")
    extras = [k for k in rows[0] if k not in COLUMNS] if rows else []
    append_csv(path, rows, [*COLUMNS, *extras])
    return path


def append_csv(path: Path, rows: list[Mapping[str, Any]], header: list[str]) -> None:
    """Append rows to a CSV file; a new file gets `header`, an existing one keeps its own
    (keys outside it are dropped).

    The rows (and a new file's header) go out in one write of whole lines, so a writer killed
    by a time limit leaves whole rows behind, not half of one; and a line left unfinished by
    an earlier writer is ended first, so no row is glued onto it (report_data.load drops it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    new = not path.exists() or path.stat().st_size == 0
    text = io.StringIO()
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f))
        if not _ends_with_newline(path):
            text.write("\n")
    writer = csv.DictWriter(text, fieldnames=header, extrasaction="ignore")
    if new:
        writer.writeheader()
    writer.writerows(rows)
    _append_once(path, text.getvalue().encode())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _append_once(path: Path, data: bytes) -> None:
    """One O_APPEND write, looping only if the kernel takes part of it. Unbuffered: once it
    returns, the rows are the kernel's and survive the process being killed (no fsync: that
    guards against a power cut, at milliseconds per row of the device's time)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
