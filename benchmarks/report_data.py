"""The report's rows: every CSV of a data folder read, rows that cannot be placed or judged
dropped (with a warning), run notes attached, one row kept per case and run; each device's
latest run group picked out; and the step profiles' rows (benchmarks/step_profile.py).
Needs neither torch nor triton."""

from __future__ import annotations

import csv
import math
import os
import re
import sys
from pathlib import Path

import grid
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
KEY = ["mode", "dtype", "layout", "N", "C", "H", "W"]  # one point of the grid
MY_CASE = ["op", "provider", *KEY]  # a layer case, K aside
ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
NUMERIC = ("N", "C", "H", "W", "K", "ms_p20", "ms_p50", "ms_p80", "bytes_min", "gbps",
           "copy_gbps", "peak_mem_mb", "host_ms_p50", "flush_ms_p50")  # fmt: skip


# ------------------------------------ rows and runs ------------------------------------


def default_data_dir() -> Path:
    """Where the writers put their rows: $MN_REPORT_DATA, else reports/data (records.DATA_DIR;
    computed here too, so rendering a report needs neither torch nor triton)."""
    return Path(os.environ.get("MN_REPORT_DATA", REPO / "reports" / "data"))


REQUIRED = ("device", "timestamp", "ms_p50")  # a row without these cannot be placed or judged


def _warn(message: str) -> None:
    print(f"report: {message}", file=sys.stderr, flush=True)


def read_rows(path: Path) -> pd.DataFrame:
    """One CSV file as strings; rows with another field count than the header (a row cut short
    by a killed writer, or two glued together) are dropped with a warning. How many rows the
    file held, whole or not: `.attrs["rows_read"]`."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except UnicodeDecodeError as error:  # not a CSV the writers wrote (a binary file, say)
        _warn(f"{path.name}: not UTF-8 text, skipped ({error.reason} at byte {error.start})")
        return pd.DataFrame()
    if not lines:  # a zero-byte file: a writer killed before its first write
        return pd.DataFrame()
    header, body = lines[0], lines[1:]
    whole = [row for row in body if len(row) == len(header)]
    if len(whole) < len(body):
        bad = [i + 2 for i, row in enumerate(body) if len(row) != len(header)]
        _warn(f"{path.name}: dropped {len(bad)} incomplete row(s), lines {bad[:5]}")
    frame = pd.DataFrame(whole, columns=header, dtype=str)
    frame.attrs["rows_read"] = len(body)
    return frame


def _complete(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows that carry a device, a timestamp and a numeric ms_p50; the others are dropped
    with a warning (an empty device would otherwise read as an unnamed GPU). So are rows
    whose timings cannot be true (`_impossible_timings`)."""
    ok = pd.Series(True, index=frame.index)
    for column in REQUIRED:
        ok &= frame[column].str.strip() != "" if column in frame else False
    if "ms_p50" in frame:
        ok &= pd.to_numeric(frame["ms_p50"], errors="coerce").notna()
    if not ok.all():
        lacking = int((~ok).sum())
        _warn(f"{name}: dropped {lacking} row(s) lacking {'/'.join(REQUIRED)}")
    if ok.any():
        impossible = _impossible_timings(frame) & ok
        if n := int(impossible.sum()):
            _warn(f"{name}: dropped {n} row(s) with a time that is not a positive finite "
                  "number, or percentiles out of order (p20 <= p50 <= p80)")  # fmt: skip
        ok &= ~impossible
    return frame[ok]


def _impossible_timings(frame: pd.DataFrame) -> pd.Series:
    """Rows whose ms_p50 is zero, negative or infinite, or whose p20/p80 (where given) are
    not finite, negative or out of order around p50. A zero time would read as an infinite
    speed-up and meet every goal; no measurement gives one (measure.py never writes zeros)."""
    p50 = pd.to_numeric(frame["ms_p50"], errors="coerce")
    bad = ~(p50 > 0) | (p50 == math.inf)
    for column, out_of_order in (("ms_p20", lambda p: p > p50), ("ms_p80", lambda p: p < p50)):
        if column not in frame:
            continue
        given = frame[column].str.strip() != ""
        p = pd.to_numeric(frame[column], errors="coerce")
        bad |= given & (p.isna() | (p < 0) | (p == math.inf) | out_of_order(p))
    return bad.fillna(True) & p50.notna()


def load(data_dir: Path) -> pd.DataFrame:
    """All rows of all CSV files, with `run` (run_id, else the file name) and `source`; how
    many rows were dropped as unusable in `.attrs["rows_dropped"]`."""
    frames, dropped = [], 0  # dropped: rows read but unusable (the README says how many)
    for path in sorted(data_dir.glob("*.csv")):
        rows = read_rows(path)
        frame = _complete(rows, path.name)
        dropped += rows.attrs.get("rows_read", 0) - len(frame)
        if frame.empty:
            continue
        frame = frame.assign(source=path.name)
        run_id = frame["run_id"] if "run_id" in frame else pd.Series("", index=frame.index)
        frame["run"] = run_id.where(run_id != "", path.stem)
        frames.append(frame)
    if not frames:
        empty = pd.DataFrame(columns=[*KEY, "op", "provider", "device", "run", "source"])
        empty.attrs["rows_dropped"] = dropped
        return empty
    df = pd.concat(frames, ignore_index=True).fillna("")  # files differ in their extra columns
    for column in NUMERIC:  # a column no file has (host_ms_p50 before it existed) is NaN
        df[column] = numeric(df, column)
    df["tensor_bytes"] = df["N"] * df["C"] * df["H"] * df["W"] * df["dtype"].map(ITEMSIZE)
    notes = load_run_notes(data_dir.parent / RUN_NOTES)
    df["run_note"] = df["run"].map(lambda run: notes.get(run, ""))
    df = _own_bytes_models(latest_per_case(df))
    df.attrs["rows_dropped"] = dropped
    return df


# What is known about a run after it was measured (a defect found in the measured build,
# say), shown under the run's caption: a CSV of `run,note` beside the data folder. The rows
# themselves stay as measured.
RUN_NOTES = "run_notes.csv"


def load_run_notes(path: Path) -> dict[str, str]:
    """run id → note, from `path` if it exists; a file without those columns is ignored
    with a warning (the report still renders). A run with several rows gets them as a list,
    one fact per bullet."""
    if not path.is_file():
        return {}
    notes = read_rows(path)
    if notes.empty:
        return {}
    if not {"run", "note"} <= set(notes.columns):
        _warn(f"{path.name}: needs the columns run,note; ignored")
        return {}
    facts: dict[str, list[str]] = {}
    for run, note in zip(notes["run"], notes["note"], strict=True):
        if note.strip():
            facts.setdefault(run.strip(), []).append(note.strip())
    return {
        run: found[0] if len(found) == 1 else "".join(f"\n- {fact}" for fact in found)
        for run, found in facts.items()
    }


def known_about(run: str, note: str) -> str:
    """A run's note as shown: after a bold lead-in, inline, or as its list of facts."""
    return f"**Known about run `{run}`:**" + ("\n" if note.startswith("\n") else " ") + note


# What makes a row a case of its own within one run (SPEC §7's columns that name it).
CASE = ["device", "op", "provider", "mode", "dtype", "layout", "N", "C", "H", "W", "K",
        "model", "exec", "width"]  # fmt: skip


def latest_per_case(df: pd.DataFrame) -> pd.DataFrame:
    """One row per case and run: the latest (by timestamp, then the last appended).

    A part retried under the same run id (a shared MN_RUN_ID) appends its cases again; kept
    twice, a case would count twice in the goals, pair with either attempt's baseline and
    break the figures, which expect one time per case. Unreadable timestamps count as oldest.
    """
    case = [c for c in ("run", *CASE) if c in df]
    when = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    in_order = df.assign(_when=when).sort_values("_when", kind="stable", na_position="first")
    latest = in_order.drop_duplicates(case, keep="last").sort_index().drop(columns="_when")
    if dropped := len(df) - len(latest):
        runs = ", ".join(sorted(set(df.loc[df.duplicated(case), "run"])))
        _warn(f"{dropped} row(s) measured again in the same run ({runs}): the latest kept")
    return latest.reset_index(drop=True)


def _own_bytes_models(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of an op whose own minimum is below SPEC §3's (grid.OWN_MIN_PASSES: BatchNorm's
    eval) written before it had that model carry MN's; bytes_min is a model, not a
    measurement, so every such row gets the current one (and gbps with it)."""
    for (op, mode), passes in grid.OWN_MIN_PASSES.items():
        rows = (df["op"] == op) & (df["mode"] == mode)
        df.loc[rows, "bytes_min"] = passes * df.loc[rows, "tensor_bytes"]
        df.loc[rows, "gbps"] = df.loc[rows, "bytes_min"] / (df.loc[rows, "ms_p50"] * 1e-3) / 1e9
    return df


# A run in parts: gpu_run.sh's parts 1 and 2 each write run id `<id>-partN`, over cases that
# partly overlap (the extra grid measures some core points again, beside the compiled reference).
PART_ID = re.compile(r"^(?P<base>.+)-part(?P<part>\d+)$")
# Parts with different ids (each call takes its own UTC time unless MN_RUN_ID is shared) belong
# to one run when the earlier part ended at most this long before the later one started.
PART_GAP = pd.Timedelta(hours=6)


def _part(run: str) -> tuple[str, int] | None:
    match = PART_ID.match(run)
    return (match["base"], int(match["part"])) if match else None


def run_group(rows: pd.DataFrame) -> list[str]:
    """The runs of one device's latest run group, earliest first.

    The latest run (by its last timestamp); if it is a part, the earlier parts of its own id;
    without any, walk back through the runs before it and add each part with a lower number
    than those taken so far that ended within PART_GAP before the group's start; stop at the
    first run that is not.
    """
    spans = rows.groupby("run")["timestamp"].agg(["min", "max"]).sort_values("max")
    runs = list(spans.index)
    group = [runs[-1]]
    latest = _part(group[0])
    if latest is None:
        return group
    # Parts that share the latest part's id (a shared MN_RUN_ID) are its run, whatever ran
    # between them; only without any does the time gap decide.
    same_id = [r for r in runs[:-1] if (p := _part(r)) and p[0] == latest[0] and p[1] < latest[1]]
    if same_id:
        return [*same_id, group[0]]
    for run in reversed(runs[:-1]):
        if not _continues(run, group, spans):
            break
        group.insert(0, run)
    return group


def _continues(run: str, group: list[str], spans: pd.DataFrame) -> bool:
    """Whether `run` is an earlier part of the run whose later parts are `group`."""
    part, first = _part(run), _part(group[0])
    if part is None or first is None or part[1] >= first[1]:
        return False
    if part[0] in {_part(r)[0] for r in group}:
        return True
    ended = pd.to_datetime(spans.loc[run, "max"], utc=True, errors="coerce")
    started = pd.to_datetime(spans.loc[group[0], "min"], utc=True, errors="coerce")
    if pd.isna(ended) or pd.isna(started):  # unreadable times: only a shared id joins
        return False
    return bool(started - ended <= PART_GAP)


def devices(df: pd.DataFrame) -> list[str]:
    """The devices the rows come from, GPUs first, cpu last."""
    return sorted(df["device"].unique(), key=lambda d: (d == "cpu", d)) if not df.empty else []


def latest_runs(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per device (GPUs first, cpu last), the rows of its latest run group, each row with
    `part_rank` (0 for the group's first run, 1 for the next, ...)."""
    out: dict[str, pd.DataFrame] = {}
    if df.empty:
        return out
    for device in devices(df):
        rows = df[df["device"] == device]
        group = run_group(rows)
        rows = rows[rows["run"].isin(group)]
        out[device] = rows.assign(part_rank=rows["run"].map(group.index))
    return out


def numeric(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers; NaN throughout where the rows lack it (files from before it)."""
    if column not in df:
        return pd.Series(math.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce")


# ------------------------------------ step profiles ------------------------------------


PROFILE_NUMERIC = ("K", "batch", "step_ms", "kernels", "kernel_ms", "norm_kernels",
                   "norm_kernel_ms", "aten_ops", "gpu_busy")  # fmt: skip


def load_profiles(folder: Path) -> pd.DataFrame:
    """benchmarks/step_profile.py's rows, if any: step_profile-<run id>.csv, one file per run,
    and step_profile.csv, which runs appended to until 2026-12-03."""
    frames = [read_rows(path) for path in sorted(folder.glob("step_profile*.csv"))]
    frames = [f for f in frames if not f.empty and "run_id" in f]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True).fillna("")
    for column in PROFILE_NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    notes = load_run_notes(folder.parent / RUN_NOTES)
    return df.assign(run=df["run_id"], run_note=df["run_id"].map(lambda run: notes.get(run, "")))
