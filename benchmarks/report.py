"""The performance report: reports/README.md and reports/figures/ from every CSV in reports/data/.

    python benchmarks/report.py [--data reports/data] [--out reports]

Needs no GPU: it renders whatever rows are committed. Every ratio compares rows of one run on
one device (SPEC §6); per device the latest run group is reported: the latest run, and where
it is one part of a run in parts (run id `<id>-partN`, as `benchmarks/gpu_run.sh 1` and `2`
write them), the earlier parts of that run too. GPU rows are held against the issue's goals,
whichever way they fall: values are printed rounded against us, verdicts use the measured
numbers (both only after float noise beyond 9 significant digits is dropped), and the worst
cases are listed. CPU rows are shown apart: they only show the pipeline works and say nothing
about GPU speed.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import figures
import grid
import pandas as pd
from figures import (
    HOST_BOUND_LABEL,
    TRAIN_CASE,
    calls,
    from_latest_part,
    graph_replays,
    host_bound,
    ours,
    where,
)

REPO = Path(__file__).resolve().parents[1]
KEY = ["mode", "dtype", "layout", "N", "C", "H", "W"]  # one point of the grid
MY_CASE = ["op", "provider", *KEY]  # a layer case, K aside
ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
BIG_BYTES = 64 * 2**20  # the goals on BatchNorm and bandwidth hold for tensors this large
# The goals (figures.py draws the same ones, train_step.py measures at GOAL_K: tests
# keep the copies equal).
GOAL_MN_OVER_BN = 1.10  # MN K=2 fwd+bwd / BatchNorm2d, tensors >= BIG_BYTES, at most
GOAL_COPY_FRACTION = 0.75  # of the copy bandwidth there, at least
GOAL_SPEEDUP_REFERENCE = 5.0  # over the eager reference, at least
GOAL_SPEEDUP_COMPILED = 1.5  # over torch.compile(reference), at least
GOAL_K8_OVER_K1 = 1.05  # at most
GOAL_STEP = 1.05  # a training step's time, and its peak memory, / BatchNorm's, at most
NUMERIC = ("N", "C", "H", "W", "K", "ms_p20", "ms_p50", "ms_p80", "bytes_min", "gbps",
           "copy_gbps", "peak_mem_mb", "host_ms_p50", "flush_ms_p50")  # fmt: skip
NO_GPU_NOTE = (
    "> **No GPU data yet.** Every row below was measured on a CPU: it shows that the pipeline "
    "runs, and says nothing about GPU speed. The goals are judged only on GPU rows; run "
    "`bash benchmarks/gpu_run.sh` on a GPU machine and commit its `reports/`."
)
PROFILE_NOTE = (
    "A few steps of BatchNorm and mn_triton at the headline K, profiled with torch.profiler "
    "after timing them (`benchmarks/step_profile.py`; rows in `reports/profiles/`). Kernel ms "
    "is device time per step; GPU busy = kernel ms / step ms. Well below 100% the GPU waits "
    "for the host, and an extra step time much larger than the extra kernel time is host "
    "time (Python, dispatch, launches), not kernels."
)
HOST_NOTE = (
    "Host-bound: our cases whose host issue time (Python, dispatch, launches; "
    "`host_ms_p50`), beyond the head start the L2 flush before each call gives it "
    "(`flush_ms_p50`), is at least 80% of their median device time. There the device waits "
    "for the host, the ratio measures the host's cost per call rather than the kernels', and "
    "fewer launches or CUDA graphs would help, not faster kernels. The figures ring such "
    f'points of every provider and baseline ("{HOST_BOUND_LABEL}") and hatch such bars.'
)
NO_HOST_NOTE = "This run did not record host issue times, so host-bound cases are not flagged."
CPU_NOTE = (
    "CPU rows exercise the pipeline only (mn_triton's torch-op path, no Triton kernels); "
    "they do not speak about GPU speed and are not held against the goals."
)


# ------------------------------------ loading ------------------------------------------


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
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
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
        df[column] = _numeric(df, column)
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


# ------------------------------------ ratios -------------------------------------------


def pair(df: pd.DataFrame, mine: dict, other: dict, match: str = "point") -> pd.DataFrame:
    """Rows `mine` joined with rows `other`; ratio = my time / its time.

    match: "point" joins at the same grid point whatever K (BatchNorm and the like);
    "k" also at the same K (ours against the reference); "groups" pairs MGN at K with the
    GroupNorm the suite measured for it (its K column holds groups: K if K divides C, else 1).
    """
    df = df.assign(_replay=graph_replays(df))  # a call never pairs with a graph replay
    a, b = where(df, **mine), where(df, **other)
    on = [*KEY, "run", "_replay"]  # never across runs, nor across the parts of one run group
    if match == "k":
        on.append("K")
    elif match == "groups":
        a = a.assign(_k=[k if c % k == 0 else 1 for k, c in zip(a["K"], a["C"], strict=True)])
        b = b.assign(_k=b["K"])
        on.append("_k")
    merged = a.merge(b[[*on, "ms_p50"]], on=on, suffixes=("", "_other"))
    merged = from_latest_part(merged, [*MY_CASE, "K", "_replay"]).drop(columns="_replay")
    return merged.assign(ratio=merged["ms_p50"] / merged["ms_p50_other"])


def k8_over_k1(df: pd.DataFrame, provider: str) -> pd.DataFrame:
    """Time at K = 8 over time at K = 1, per op and point."""
    rows = where(df.assign(_replay=graph_replays(df)), provider=provider)
    rows = rows[rows["op"].isin(["mode_norm", "mode_group_norm"])]
    k1, k8 = rows[rows["K"] == 1], rows[rows["K"] == 8]
    on = [*KEY, "op", "run", "_replay"]  # a call never pairs with a graph replay
    merged = k8.merge(k1[[*on, "ms_p50"]], on=on, suffixes=("", "_other"))
    merged = from_latest_part(merged, [*MY_CASE, "_replay"]).drop(columns="_replay")
    return merged.assign(ratio=merged["ms_p50"] / merged["ms_p50_other"])


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    limit: float
    at_most: bool  # True: the value must not exceed `limit`; False: must reach it
    rows: pd.DataFrame  # one row per case, the judged value in column `value`
    percent: bool = False  # shown as a percentage, else as a ratio ("x")
    layer: bool = True  # judged on layer calls (host-bound is flagged there), not on steps

    def show(self, value: float) -> str:
        return fmt(value, self.at_most, self.percent, "" if self.percent else "x")

    def median(self) -> float:
        return math.nan if self.rows.empty else float(self.rows["value"].median())

    def worst(self) -> float:
        if self.rows.empty:
            return math.nan
        return self.rows["value"].max() if self.at_most else self.rows["value"].min()

    def verdict(self, judged: bool) -> str:
        if self.rows.empty:
            return "no data"
        if not judged:
            return "not judged (CPU)"
        worst = denoised(self.worst())
        ok = worst <= self.limit if self.at_most else worst >= self.limit
        return "met" if ok else "**MISSED**"


def goals(df: pd.DataFrame, device: str) -> list[Goal]:
    """The issue's goals, each with every case it is judged on (calls, not graph replays)."""
    df, me = calls(df), ours(device)
    vs_ref, vs_compiled = _vs(df, me, "reference"), _vs(df, me, "reference_compiled")
    bn_goal, bandwidth_goal, k_goal = _device_goals(df, me)
    return [
        bn_goal,
        bandwidth_goal,
        Goal("speed-up over eager reference (MN and MGN, all cases)",
             f">= {GOAL_SPEEDUP_REFERENCE:g}x", GOAL_SPEEDUP_REFERENCE, False,
             vs_ref.assign(value=1 / vs_ref["ratio"])),
        Goal("speed-up over torch.compile(reference) (compiled subset)",
             f">= {GOAL_SPEEDUP_COMPILED:g}x", GOAL_SPEEDUP_COMPILED, False,
             vs_compiled.assign(value=1 / vs_compiled["ratio"])),
        k_goal,
    ]  # fmt: skip


def _device_goals(df: pd.DataFrame, me: str, suffix: str = "") -> tuple[Goal, Goal, Goal]:
    """The goals that ask how fast the kernels are (BatchNorm, bandwidth, K = 8 against 1),
    judged on the calls or, with a suffix naming them, on CUDA-graph replays."""
    bn = big_k2_full(pair(df, {"op": "mode_norm", "provider": me}, {"op": "batch_norm"}))
    # The bandwidth goal needs no partner: every MN case, against its own part's copy
    # bandwidth (each row carries the copy_gbps its part measured).
    mn = big_k2_full(from_latest_part(where(df, op="mode_norm", provider=me), [*MY_CASE, "K"]))
    k_ratio = k8_over_k1(df, me)
    return (
        Goal(f"MN K=2 fwd+bwd / BatchNorm2d, tensors >= 64 MiB{suffix}",
             f"<= {GOAL_MN_OVER_BN:.2f}x", GOAL_MN_OVER_BN, True, bn.assign(value=bn["ratio"])),
        Goal(f"MN K=2 fwd+bwd, fraction of copy bandwidth, >= 64 MiB{suffix}",
             f">= {GOAL_COPY_FRACTION:.0%}", GOAL_COPY_FRACTION, False,
             mn.assign(value=mn["gbps"] / mn["copy_gbps"]).dropna(subset=["value"]),
             percent=True),  # a part that did not measure its copy bandwidth: no data
        Goal(f"time at K=8 / time at K=1 (MN and MGN){suffix}", f"<= {GOAL_K8_OVER_K1:.2f}x",
             GOAL_K8_OVER_K1, True, k_ratio.assign(value=k_ratio["ratio"])),
    )  # fmt: skip


def big_k2_full(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows the goals on BatchNorm and bandwidth hold for: K=2, fwd+bwd, >= 64 MiB."""
    return rows[(rows["K"] == 2) & (rows["mode"] == "full") & (rows["tensor_bytes"] >= BIG_BYTES)]


def _vs(df: pd.DataFrame, me: str, other: str) -> pd.DataFrame:
    frames = [
        pair(df, {"op": op, "provider": me}, {"op": op, "provider": other}, match="k")
        for op in ("mode_norm", "mode_group_norm")
    ]
    return pd.concat(frames, ignore_index=True)


def comparisons(df: pd.DataFrame, device: str) -> dict[str, pd.DataFrame]:
    """Every ratio of the report (my time / their time), over all cases and modes (calls, not
    graph replays)."""
    df, me = calls(df), ours(device)
    mn, mgn = {"op": "mode_norm", "provider": me}, {"op": "mode_group_norm", "provider": me}
    return {
        "MN / BatchNorm2d": pair(df, mn, {"op": "batch_norm"}),
        "MN / InstanceNorm2d": pair(df, mn, {"op": "instance_norm"}),
        "MN / LayerNorm(C,H,W)": pair(df, mn, {"op": "layer_norm"}),
        "MGN / GroupNorm": pair(df, mgn, {"op": "group_norm"}, match="groups"),
        "ours / eager reference": _vs(df, me, "reference"),
        "ours / compiled reference": _vs(df, me, "reference_compiled"),
    }


# ------------------------------------ formatting ---------------------------------------


def denoised(value: float) -> float:
    """`value` to 9 significant digits. Timings carry 3 to 6; what lies beyond 9 is float noise
    (21/20 − 1 is 0.0500…04, 1.1 · 1000 is 1100.0000000000002), which must neither round a
    shown value up against us nor tip a verdict."""
    return float(f"{value:.9g}")


def against_us(value: float, at_most: bool, digits: int = 3) -> float:
    """Round to `digits` decimals so the shown value is never better than the measured one."""
    if math.isnan(value):
        return value
    scale = 10**digits
    scaled = denoised(value * scale)
    return math.ceil(scaled) / scale if at_most else math.floor(scaled) / scale


SIGNIFICANT = 3  # timings vary by more than 1 % between runs: more digits would claim precision


def fmt(value: float, at_most: bool = True, percent: bool = False, unit: str = "") -> str:
    """A value as shown: a percentage to 0.1, else to 3 significant digits; rounded against us
    (up where lower is better, `at_most`; down where higher is)."""
    if value is None or math.isnan(value):
        return "–"
    if percent:
        return f"{against_us(value * 100, at_most, 1):.1f}%"
    if value == 0 or math.isinf(value):
        return f"{value:g}{unit}"
    decimals = max(SIGNIFICANT - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{against_us(value, at_most, decimals):.{decimals}f}{unit}"


def describe(row: pd.Series) -> str:
    """A case in words, e.g. `mode_norm full float32 nchw N=128 64x56x56 K=2`."""
    k = "" if pd.isna(row.get("K")) else f" K={int(row['K'])}"
    return (
        f"{row['op']} {row['mode']} {row['dtype']} {row['layout']} "
        f"N={int(row['N'])} {int(row['C'])}x{int(row['H'])}x{int(row['W'])}{k}"
    )


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def goal_lines(goal_list: list[Goal], judged: bool, without_row: int = 0) -> list[str]:
    """Each goal's worst cases; on a CPU, the goal table before them (a GPU's is in At a
    glance). `without_row`: how many of the run's planned cases have no row; the rows do not
    say which goals they belonged to, so a goal met then is met on the cases measured, and
    says so."""
    if judged:
        lines = ["Every goal's verdict, median and worst case: At a glance."]
    else:
        rows = [
            [g.name, g.target, g.show(g.worst()), len(g.rows),
             _qualified(g.verdict(judged), without_row)]
            for g in goal_list
        ]  # fmt: skip
        lines = table(["goal", "target", "worst case", "cases", "verdict"], rows)
    lines += ["", "Worst cases per goal (the slow ones stay visible):", ""]
    for g in goal_list:
        if g.rows.empty:
            continue
        worst = g.rows.sort_values("value", ascending=not g.at_most).head(3)
        cases = [f"`{describe(r)}` {g.show(r['value'])}{_host_tag(r)}" for _, r in worst.iterrows()]
        lines.append(f"- {g.name}: {'; '.join(cases)}")
    return lines


def _qualified(verdict: str, without_row: int) -> str:
    if verdict != "met" or not without_row:
        return verdict
    return f"met on the cases measured ({without_row} planned cases have no row)"


def _host_tag(row: pd.Series) -> str:
    """ " (host-bound)" after a case whose time is the host's (figures.host_bound)."""
    return " (host-bound)" if host_bound(pd.DataFrame([row])).iloc[0] else ""


def _host_count(rows: pd.DataFrame) -> str:
    """How many rows are host-bound; – where none has an issue time (CPU, older runs)."""
    if not _numeric(rows, "host_ms_p50").notna().any():
        return "–"
    return str(int(host_bound(rows).sum()))


def comparison_lines(comps: dict[str, pd.DataFrame]) -> list[str]:
    """Median and worst ratio per comparison and mode (ratio > 1: ours is slower), with how
    many of our times in it are the host's (figures.host_bound)."""
    rows = []
    for name, frame in comps.items():
        for mode, part in frame.groupby("mode", sort=False):
            worst = part.loc[part["ratio"].idxmax()]
            ratios = part["ratio"]
            rows.append([name, mode, len(part), _host_count(part), fmt(ratios.median()),
                         fmt(ratios.max()), f"`{describe(worst)}`{_host_tag(worst)}"])  # fmt: skip
    if not rows:
        return ["No pairs to compare in this run."]
    header = ["time ratio", "mode", "cases", "host-bound", "median", "worst", "worst case"]
    return table(header, rows)


# ------------------------------------ sections -----------------------------------------


def run_caption(df: pd.DataFrame) -> str:
    """Which run the rows come from; for a run in parts, each part on a line of its own."""
    runs = df.sort_values("part_rank", kind="stable") if "part_rank" in df else df
    names = list(dict.fromkeys(runs["run"]))
    if len(names) == 1:
        return _one_run(df) + _run_notes(df, names)
    parts = [f"- {_one_run(df[df['run'] == name])}" for name in names]
    return "\n".join([
        f"run group of {len(names)} parts (ratios pair rows of the same part only; a case "
        "measured in more than one part counts once, from the later part):", "", *parts
    ]) + _run_notes(df, names)  # fmt: skip


def _run_notes(df: pd.DataFrame, names: list[str]) -> str:
    """Each run's note (reports/run_notes.csv), as paragraphs after the caption."""
    if "run_note" not in df:
        return ""
    notes = df.drop_duplicates("run").set_index("run")["run_note"]
    return "".join(f"\n\n{known_about(name, notes[name])}" for name in names if notes.get(name))


def _one_run(df: pd.DataFrame) -> str:
    first = df.iloc[0]
    copy = df["copy_gbps"].dropna()
    copy_text = f"measured copy bandwidth {copy.iloc[0]:.1f} GB/s; " if not copy.empty else ""
    return (
        f"run `{first['run']}` (git `{first['git_sha']}`, torch {first['torch']}, triton "
        f"{first['triton']}, {first['timestamp']}); {copy_text}{len(df)} rows{_planned(df)}"
    )


def _planned(df: pd.DataFrame) -> str:
    """`of N cases planned`, and how many of them have no row (skipped for time, or failed),
    for runs whose rows say how many cases their grid held."""
    planned = _cases_planned(df)
    if planned is None:
        return ""
    missing = _without_row(df)
    return f" of {planned} cases planned" + (
        f" (**{missing} without a row**: skipped for time, or failed)" if missing > 0 else ""
    )


def _cases_planned(df: pd.DataFrame) -> int | None:
    """How many cases the run's grid held, where its rows say (None for older runs)."""
    planned = _numeric(df, "cases_planned").dropna()
    return None if planned.empty else int(planned.max())


def _without_row(df: pd.DataFrame) -> int:
    """How many of the cases the run's grid held have no row (0 where rows do not say)."""
    planned = _cases_planned(df)
    return 0 if planned is None else max(planned - len(df), 0)


def layer_section(device: str, rows: pd.DataFrame) -> list[str]:
    judged = device != "cpu"
    lines = [f"### {device}" + ("" if judged else " (pipeline check, not GPU speed)"), ""]
    lines += [run_caption(rows), ""]
    df, graphs = calls(rows), rows[graph_replays(rows)]
    without_row = _without_row(rows)
    if not judged:
        lines += [CPU_NOTE, ""]
    lines += goal_lines(goals(df, device), judged, without_row)
    lines += ["", "Time ratios (ours / theirs; above 1 means ours is slower):", ""]
    lines += comparison_lines(comparisons(df, device))
    if judged:
        lines += ["", HOST_NOTE if _numeric(df, "host_ms_p50").notna().any() else NO_HOST_NOTE]
    setup = df[df["provider"] == "reference_compiled"]
    if not setup.empty and "setup_s" in df:
        total = pd.to_numeric(setup["setup_s"], errors="coerce").sum()
        lines += [
            "",
            f"torch.compile of the reference: {len(setup)} cases measured, of a subset of the "
            f"grid's points; their setup, compile included, took {total:.0f} s.",
        ]
    if not graphs.empty:
        lines += ["", *graph_lines(device, graphs, df, without_row)]
    return [*lines, ""]


GRAPH_NOTE = (
    "The same forward+backward calls captured once into CUDA graphs and timed as replays (exec "
    "`cudagraph`), with the same L2 flush before each: the device's time alone, without the "
    "host's cost per call (Python, dispatch, launches), which bounds most eager calls above "
    "on these hosts. A training step gets these times where it replays CUDA graphs "
    '(torch.compile\'s mode="reduce-overhead"); eager calls do not. Shown beside the goals, '
    "not instead of them."
)


def graph_lines(
    device: str, graphs: pd.DataFrame, made: pd.DataFrame, without_row: int = 0
) -> list[str]:
    """The layer goals about the kernels' speed and the ratios, on CUDA-graph replays; and
    each replayed case of ours against the same call made eagerly. `without_row`: as for
    goal_lines (the run's planned cases without a row, replays among them perhaps)."""
    me = ours(device)
    lines = ["#### Device time alone: CUDA-graph replays", "", GRAPH_NOTE, ""]
    replay_goals = list(_device_goals(graphs, me, " (replays)"))
    lines += goal_lines(replay_goals, device != "cpu", without_row)
    mn, mgn = {"op": "mode_norm", "provider": me}, {"op": "mode_group_norm", "provider": me}
    lines += ["", "Time ratios of replays (ours / theirs; above 1 means ours is slower):", ""]
    lines += comparison_lines({
        "MN / BatchNorm2d": pair(graphs, mn, {"op": "batch_norm"}),
        "MGN / GroupNorm": pair(graphs, mgn, {"op": "group_norm"}, match="groups"),
    })  # fmt: skip
    lines += ["", "Our replays against the same calls made eagerly (same run and part):", ""]
    return lines + replay_lines(graphs, made, me)


def replay_lines(graphs: pd.DataFrame, made: pd.DataFrame, me: str) -> list[str]:
    """Per replayed case of ours: the eager call's time, the replay's, their ratio (what the
    host adds per call) and the replay's share of the copy bandwidth."""
    on = [*MY_CASE, "K", "run"]
    mine = graphs[graphs["provider"] == me]
    merged = mine.merge(made[[*on, "ms_p50"]], on=on, suffixes=("", "_call"))
    merged = from_latest_part(merged, [*MY_CASE, "K"])
    if merged.empty:
        return ["No replay has an eager call to compare with in this run."]
    merged = merged.sort_values(["op", "tensor_bytes", "K"], kind="stable")
    rows = [
        [f"`{describe(r)}`", fmt(r["ms_p50_call"]), fmt(r["ms_p50"]),
         fmt(r["ms_p50_call"] / r["ms_p50"], at_most=False),
         fmt(r["gbps"] / r["copy_gbps"], at_most=False, percent=True)]
        for _, r in merged.iterrows()
    ]  # fmt: skip
    header = ["case", "call ms", "replay ms", "call / replay", "replay, % of copy bandwidth"]
    return table(header, rows)


TRAIN_GOALS = {"resnet20": 2, "resnet56": 2, "lenet": 6}  # model -> K the goal is set at
TRAIN_GOAL_EXECS = ("eager", "compiled")  # the goal holds for both
TRAIN_GOALS_TEXT = (
    "Per model and execution mode: step time of each MN variant over the same net with "
    "BatchNorm (goal: triton <= 5% over BN for resnet20/resnet56 at K=2 and lenet at K=6, "
    "eager and compiled; peak memory <= 1.05x BN). CUDA-graph steps (exec `cudagraph`) are "
    "exempt: the goal names eager and compiled steps, so they are shown without a verdict."
)


def train_sections(train: pd.DataFrame, all_devices: list[str]) -> list[str]:
    """Per device, its latest run's training steps. A GPU with layer rows but no step still
    gets a section naming every goal step as not measured: a silent gap would read as if
    nothing were owed."""
    runs = latest_runs(train)
    lines = []
    for device in all_devices:
        if device in runs:
            lines += train_lines(device, runs[device])
        elif device != "cpu":
            lines += [f"### {device}", "", "No training-step rows from this device.", ""]
            lines += _unmeasured_goal_steps(pd.DataFrame())
    return lines or ["No training-step rows yet.", ""]


def train_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Each MN training step against BatchNorm's in the same run, model and exec mode.

    Memory is compared two ways where the rows allow: peak_mem_mb (a step's activations and
    temporaries above what warm-up left allocated; for CUDA-graph steps, from warm-up on, which
    records the graphs) and peak_mem_total_mb (everything allocated at that peak); the goal is
    judged on the worse of the two. (CUDA-graph rows before GRAPH_MEMORY_SINCE measured the
    replays alone, which allocate nothing: their memory is the static memory only.)
    """
    df = df.assign(peak_mem_total_mb=_numeric(df, "peak_mem_total_mb"),
                   host_ms_p50=_numeric(df, "host_ms_p50"))  # fmt: skip
    on = [c for c in ("run", "model", "exec", "dtype", "layout", "N", "width") if c in df]
    values = ["ms_p50", "host_ms_p50", "peak_mem_mb", "peak_mem_total_mb"]
    native = df[df["provider"] == "native"].groupby(on, as_index=False, dropna=False)[values]
    native = native.median()
    merged = df[df["provider"] != "native"].merge(native, on=on, suffixes=("", "_bn"))
    merged = from_latest_part(merged, TRAIN_CASE)
    return merged.assign(
        overhead=merged["ms_p50"] / merged["ms_p50_bn"] - 1,
        mem_ratio=merged["peak_mem_mb"] / merged["peak_mem_mb_bn"],
        total_mem_ratio=merged["peak_mem_total_mb"] / merged["peak_mem_total_mb_bn"],
    )


TRAIN_HEADER = ["model", "exec", "provider", "K", "N", "run size", "ms", "BN ms", "overhead",
                "host issue ms / BN's", "step memory / BN", "total memory / BN",
                "goal"]  # fmt: skip
TRAIN_HOST_NOTE = (
    "Host issue ms: the host's time to issue one step (Python, dispatch, launches), ours / "
    "BatchNorm's. Well below the step's time, the step is the device's. Near it, the device "
    "may have waited for the host, or the host for room in a full launch queue; this column "
    "cannot tell which, so no step is marked host-bound. The profiles' GPU busy, below, can."
)


# CUDA-graph steps measured before this date timed their memory over the replays alone, which
# allocate nothing: their memory columns hold the static memory only (b361406).
GRAPH_MEMORY_SINCE = "2026-12-06"  # b361406 landed at 23:57 UTC on 2026-12-05


def _memory_cell(row: pd.Series, column: str) -> str:
    """A step's memory ratio, or n/a where a CUDA-graph row measured the replays alone."""
    if row["exec"] == "cudagraph" and str(row.get("timestamp", "")) < GRAPH_MEMORY_SINCE:
        return "n/a (replays only)"
    return fmt(row[column])


def _host_cell(row: pd.Series) -> str:
    """`ours / BN's` host issue ms per step (– where a step has none)."""
    ours_ms, bn_ms = row.get("host_ms_p50", math.nan), row.get("host_ms_p50_bn", math.nan)
    if pd.isna(ours_ms) and pd.isna(bn_ms):
        return "–"
    return " / ".join("–" if pd.isna(v) else f"{v:.3f}" for v in (ours_ms, bn_ms))


def train_lines(device: str, df: pd.DataFrame) -> list[str]:
    judged = device != "cpu"
    lines = [f"### {device}" + ("" if judged else " (pipeline check, not GPU speed)"), ""]
    lines += [run_caption(df), ""]
    pairs = train_pairs(df)
    unmeasured = _unmeasured_goal_steps(pairs) if judged else []
    if pairs.empty:
        return [*lines, "No MN rows with a BatchNorm row to compare against.", *unmeasured, ""]
    rows = [
        [r["model"], r["exec"], r["provider"], _k(r["K"]), _k(r["N"]), r.get("run_size", ""),
         f"{r['ms_p50']:.3f}", f"{r['ms_p50_bn']:.3f}", fmt(r["overhead"], True, True),
         _host_cell(r), _memory_cell(r, "mem_ratio"), _memory_cell(r, "total_mem_ratio"),
         _train_verdict(r, judged)]
        for _, r in pairs.sort_values(["model", "exec", "provider", "K"]).iterrows()
    ]  # fmt: skip
    note = [TRAIN_HOST_NOTE, ""] if judged else []
    return [*lines, *table(TRAIN_HEADER, rows), "", *unmeasured, *note]


def _unmeasured_goal_steps(pairs: pd.DataFrame) -> list[str]:
    """Lines naming the goal's training steps (Triton, at the goal's K, eager and compiled)
    that have no pair with BatchNorm here: a run short of time skips the slowest compiles, and
    a table without their rows would read as if nothing were owed. CUDA-graph steps at the
    same K are named apart: they have no goal, but a failed one should not vanish either."""
    lines = []
    if missing := _missing_steps(pairs, TRAIN_GOAL_EXECS):
        lines += [
            f"Not measured with BatchNorm beside it in these rows, so not judged: "
            f"{', '.join(missing)} (skipped for lack of time, or failed: the run's log says "
            "which).",
            "",
        ]
    if missing := _missing_steps(pairs, ("cudagraph",)):
        lines += [
            f"No CUDA-graph step (exempt from the goal) with BatchNorm beside it: "
            f"{', '.join(missing)} (not asked for, skipped for lack of time, or failed: the "
            "run's log says which).",
            "",
        ]
    return lines


def _missing_steps(pairs: pd.DataFrame, execs: Iterable[str]) -> list[str]:
    """`model exec (K = k)` for each goal model at its K and each exec mode in `execs` that
    has no Triton step paired with BatchNorm."""
    ours = pairs[pairs["provider"] == "triton"] if not pairs.empty else pairs
    return [
        f"{model} {exec_mode} (K = {k})"
        for model, k in TRAIN_GOALS.items()
        for exec_mode in execs
        if ours.empty
        or not ((ours["model"] == model) & (ours["exec"] == exec_mode) & (ours["K"] == k)).any()
    ]


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers; NaN throughout where the rows lack it (files from before it)."""
    if column not in df:
        return pd.Series(math.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce")


def _k(value: float) -> str:
    return "" if pd.isna(value) else str(int(value))


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


# The training-step goals are set for a full run: batch 128, the nets at full width, the
# median of at least 50 timed steps (train_step.py's defaults without --quick).
FULL_RUN = {"run_size": "full", "N": 128, "width": 1.0, "reps": 50}


def not_full_run(row: pd.Series) -> list[str]:
    """Why a training-step row is not one of a full run (empty if it is)."""
    reasons = []
    size = str(row.get("run_size", "") or "")
    if size != FULL_RUN["run_size"]:
        reasons.append(size or "run size unknown")
    n, width, reps = (_number(row.get(c)) for c in ("N", "width", "reps"))
    if n != FULL_RUN["N"]:
        reasons.append("N unknown" if math.isnan(n) else f"N={n:g}")
    if width != FULL_RUN["width"]:
        reasons.append("width unknown" if math.isnan(width) else f"width {width:g}")
    if not reps >= FULL_RUN["reps"]:
        reasons.append("steps unknown" if math.isnan(reps) else f"{reps:g} timed steps")
    return reasons


def _train_verdict(row: pd.Series, judged: bool) -> str:
    """The goal's verdict on one of our steps: at its model's K, eager or compiled (CUDA
    graphs are shown beside, without a goal)."""
    goal = TRAIN_GOALS.get(row["model"]) == row["K"] and row["exec"] in TRAIN_GOAL_EXECS
    if row["provider"] != "triton" or not goal:
        return ""
    if not judged:
        return "not judged (CPU)"
    if reasons := not_full_run(row):
        return f"not judged ({' / '.join(reasons)})"
    # The ratio itself, as the layer goals compare it (denoised: 21/20 is 1.05 exactly).
    ratio = denoised(row["ms_p50"] / row["ms_p50_bn"])
    parts = ["time met" if ratio <= GOAL_STEP else "time **MISSED**"]
    mem = row[["mem_ratio", "total_mem_ratio"]].dropna()
    if mem.empty:
        parts.append("memory: no data")
    else:
        worse = denoised(mem.max())
        parts.append("memory met" if worse <= GOAL_STEP else "memory **MISSED**")
    return ", ".join(parts)


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


def _num(value: float, spec: str) -> str:
    return "–" if pd.isna(value) else format(value, spec)


PROFILE_HEADER = ["model", "exec", "provider", "K", "step ms", "kernel ms", "GPU busy",
                  "kernels", "norm kernels", "norm kernel ms", "aten ops"]  # fmt: skip
EXTRA_HEADER = ["model", "exec", "K", "extra step ms", "extra kernel ms", "of which norm",
                "extra kernels", "extra aten ops", "extra kernel ms / extra step ms"]  # fmt: skip


def profile_lines(device: str, df: pd.DataFrame) -> list[str]:
    """One device's step profiles, and what MN adds per step over BatchNorm."""
    judged = device != "cpu"
    lines = [f"### {device}" + ("" if judged else " (pipeline check, no device kernels)"), ""]
    first = df.iloc[0]
    lines += [f"run `{first['run']}` (git `{first['git_sha']}`), "
              f"{int(first['profiled_steps'])} profiled steps per variant"
              + _run_notes(df, [first["run"]]), ""]  # fmt: skip
    df = df.sort_values(["model", "exec", "provider"])
    rows = [
        [r["model"], r["exec"], r["provider"], _k(r["K"]), _num(r["step_ms"], ".3f"),
         _num(r["kernel_ms"], ".3f"), _num(r["gpu_busy"], ".0%"), _num(r["kernels"], ".0f"),
         _num(r["norm_kernels"], ".0f"), _num(r["norm_kernel_ms"], ".3f"),
         _num(r["aten_ops"], ".0f")]
        for _, r in df.iterrows()
    ]  # fmt: skip
    lines += [*table(PROFILE_HEADER, rows), ""]
    values = ["step_ms", "kernel_ms", "norm_kernel_ms", "kernels", "aten_ops"]
    on = ["run", "model", "exec"]  # each profile against BatchNorm's of its own run
    native = df[df["provider"] == "native"][[*on, *values]]
    ours = df[df["provider"] != "native"].merge(native, on=on, suffixes=("", "_bn"))
    extra = []
    for _, r in ours.iterrows():
        d = {v: r[v] - r[f"{v}_bn"] for v in values}
        share = d["kernel_ms"] / d["step_ms"] if d["step_ms"] > 0 else float("nan")
        extra.append(
            [r["model"], r["exec"], _k(r["K"]), _num(d["step_ms"], "+.3f"),
             _num(d["kernel_ms"], "+.3f"), _num(d["norm_kernel_ms"], "+.3f"),
             _num(d["kernels"], "+.0f"), _num(d["aten_ops"], "+.0f"), _num(share, ".0%")]
        )  # fmt: skip
    if extra:
        lines += [f"What {'/'.join(sorted(set(ours['provider'])))} adds per step over "
                  "BatchNorm:", "", *table(EXTRA_HEADER, extra), ""]  # fmt: skip
    return lines


# ----------------------------------- at a glance ---------------------------------------


def glance_lines(layer_runs: dict, train_runs: dict) -> list[str]:
    """The first screen, per GPU: what was measured and at which commit (and how far the
    library has moved since), a bottom line, every goal with its median, worst case and
    verdict in one table, the training steps' overhead per model and execution mode, and the
    median ratios against the native norms. Details and worst cases follow below."""
    gpus = [d for d in {**layer_runs, **train_runs} if d != "cpu"]
    if not gpus:
        return []
    lines = ["## At a glance", "", f"Measured on {', '.join(gpus)} only.", ""]
    for device in gpus:
        rows = layer_runs.get(device, pd.DataFrame())
        train = train_runs.get(device, pd.DataFrame())
        first = (rows if not rows.empty else train).iloc[0]
        pairs = train_pairs(train) if not train.empty else pd.DataFrame()
        goal_list = glance_goals(device, rows, pairs)
        lines += [f"**{device}**, {_measured_at(first)}", ""]
        lines += [_bottom_line(goal_list, rows), ""]
        lines += [*glance_table(goal_list, _without_row(rows) if len(rows) else 0), ""]
        if not pairs.empty:
            lines += _glance_steps(pairs)
        if not rows.empty:
            lines += _glance_medians(device, rows)
    return lines


def _measured_at(row: pd.Series) -> str:
    """`run …, <date>, git <sha>`, and how many commits have changed mn_triton/ since, where
    this checkout knows that commit (a copy without .git, or an unknown sha, says nothing)."""
    sha, _, tag = str(row.get("git_sha", "") or "").lower().partition("-")
    shown = (sha[:12] or "unknown") + (f"-{tag}" if tag else "")  # measure.git_sha's "-dirty"
    text = f"run `{row['run']}` ({str(row['timestamp'])[:10]}, git `{shown}`)"
    if since := _commits_since(sha):
        text += (f": **mn_triton/ has changed in {since} commits since**, up to `{_head()}` "
                 "where this report was rendered; these numbers do not measure them")  # fmt: skip
    if tag == "dirty":
        text += "; measured with changes not committed"
    return text


def _head() -> str:
    """This checkout's HEAD, abbreviated (the commit a commit count runs up to)."""
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    return out.stdout.strip() or "HEAD"


def _commits_since(sha: str) -> int:
    """Commits after `sha` that touch mn_triton/ (0 where git or the commit is unknown)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        return 0
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-list", "--count", f"{sha}..HEAD", "--", "mn_triton"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return 0
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else 0


def glance_goals(device: str, rows: pd.DataFrame, pairs: pd.DataFrame) -> list[Goal]:
    """Every goal with data on this GPU: the layer goals on calls, those about the kernels'
    speed again on CUDA-graph replays where the run has them, and the training-step goals."""
    goal_list = []
    if not rows.empty:
        goal_list += goals(calls(rows), device)
        replays = rows[graph_replays(rows)]
        if not replays.empty:
            goal_list += _device_goals(replays, ours(device), " (replays)")
    if not pairs.empty:
        goal_list += step_goals(pairs)
    return [g for g in goal_list if not g.rows.empty]


def goal_steps(pairs: pd.DataFrame) -> pd.DataFrame:
    """MN (Triton) steps at each model's goal K from full runs, every exec mode (the table
    below says why another step is not judged)."""
    mine = pairs[(pairs["provider"] == "triton")]
    mine = mine[mine["model"].map(TRAIN_GOALS) == mine["K"]]
    return mine[[not not_full_run(r) for _, r in mine.iterrows()]]


def step_goals(pairs: pd.DataFrame) -> list[Goal]:
    """The training-step goals as goals: the goal steps, eager and compiled."""
    mine = goal_steps(pairs)
    mine = mine[mine["exec"].isin(TRAIN_GOAL_EXECS)]
    memory = mine[["mem_ratio", "total_mem_ratio"]].max(axis=1, skipna=True)
    return [
        Goal("training step time / BatchNorm's (eager and compiled)", f"<= {GOAL_STEP:.2f}x",
             GOAL_STEP, True,
             mine.assign(value=mine["ms_p50"] / mine["ms_p50_bn"]), layer=False),
        Goal("training step peak memory / BatchNorm's", f"<= {GOAL_STEP:.2f}x", GOAL_STEP, True,
             mine.assign(value=memory).dropna(subset=["value"]), layer=False),
    ]  # fmt: skip


def _bottom_line(goal_list: list[Goal], rows: pd.DataFrame) -> str:
    """How many goals are met (which), and why the times are what they are."""
    met = [g.name for g in goal_list if g.verdict(True) == "met"]
    text = f"**Goals met: {len(met)} of {len(goal_list)} with data**"
    text += f": {'; '.join(met)}." if met else "."
    if rows.empty:
        return text
    mine = calls(rows)
    mine = mine[(mine["provider"] == ours(str(rows["device"].iloc[0]))) & (mine["mode"] == "full")]
    if len(mine) and _numeric(mine, "host_ms_p50").notna().any():
        text += (f" {int(host_bound(mine).sum())} of our {len(mine)} forward+backward layer "
                 "calls are host-bound: the host's cost per call (Python, dispatch, launches) "
                 "sets their time, not the kernels'.")  # fmt: skip
    if rows[graph_replays(rows)].empty:
        text += " This run has no CUDA-graph replays, so the kernels' own time is not shown."
    return text


def glance_table(goal_list: list[Goal], without_row: int) -> list[str]:
    """Each goal: target, median and worst over its cases, how many of them are host-bound,
    and the verdict. Speed-ups are shown as speed-ups, as the goals state them.
    `without_row`: the layer run's planned cases without a row (as for goal_lines)."""
    rows = [
        [g.name, g.target, g.show(g.median()), g.show(g.worst()), len(g.rows),
         _host_count(g.rows) if g.layer else "–",
         _qualified(g.verdict(True), without_row if g.layer else 0)]
        for g in goal_list
    ]  # fmt: skip
    header = ["goal", "target", "median", "worst", "cases", "host-bound", "verdict"]
    return table(header, rows) if rows else ["No goal has data in this run."]


def _glance_steps(pairs: pd.DataFrame) -> list[str]:
    """MN (Triton) training steps at each model's goal K over BatchNorm's: model by execution
    mode (CUDA-graph steps have no goal; they show the kernels without the host's cost)."""
    mine = goal_steps(pairs)
    if mine.empty:
        return []
    execs = [e for e in ("eager", "compiled", "cudagraph") if (mine["exec"] == e).any()]
    rows = []
    for model, steps in mine.groupby("model", sort=True):
        cells = []
        for exec_mode in execs:
            step = steps[steps["exec"] == exec_mode]
            cells.append("–" if step.empty else _overhead(step["overhead"].iloc[0]))
        rows.append([model, _k(steps["K"].iloc[0]), *cells])
    names = {"cudagraph": "CUDA graphs (no goal)"}
    header = ["model", "K", *(names.get(e, e) for e in execs)]
    return ["Training step time, MN (Triton) over BatchNorm's (goal: at most +5%):", "",
            *table(header, rows), ""]  # fmt: skip


def _overhead(value: float) -> str:
    return ("+" if value >= 0 else "") + fmt(value, True, True)


def _glance_medians(device: str, rows: pd.DataFrame) -> list[str]:
    """The median forward+backward call ratio against each native norm (the goal table has
    the references)."""
    medians = []
    for name, frame in comparisons(calls(rows), device).items():
        full = frame[frame["mode"] == "full"]
        if not full.empty and "reference" not in name:
            medians.append(f"{name} {fmt(full['ratio'].median(), unit='x')}")
    if not medians:
        return []
    return ["Median time of a forward+backward layer call, ours / the native norm's (above 1: "
            f"ours slower): {'; '.join(medians)}.", ""]  # fmt: skip


def runs_lines(df: pd.DataFrame) -> list[str]:
    """Every run in the data, and whether the report above shows it (per device, only the
    latest run group of layer rows and of training steps is shown)."""
    summary = df.groupby(["source", "run", "device"], as_index=False).agg(
        rows=("op", "size"), first=("timestamp", "min"), git=("git_sha", "first")
    )
    shown = set()
    for part in (df[df["op"] != "train_step"], df[df["op"] == "train_step"]):
        for rows in latest_runs(part).values():
            shown |= set(zip(rows["source"], rows["run"], strict=True))
    summary["shown"] = [
        "yes" if key in shown else "no: a later run"
        for key in zip(summary["source"], summary["run"], strict=True)
    ]
    rows = summary[["source", "device", "run", "rows", "first", "git", "shown"]].values.tolist()
    return table(["file", "device", "run", "rows", "started", "git", "shown above"], rows)


def render(
    df: pd.DataFrame, n_files: int, data_dir: str, profiles: pd.DataFrame | None = None
) -> str:
    layer = df[df["op"] != "train_step"]
    train = df[df["op"] == "train_step"]
    has_gpu = bool((df["device"] != "cpu").any()) if not df.empty else False
    lines = ["# Performance report", ""]
    lines += [
        f"Generated by `python benchmarks/report.py` from {n_files} CSV files in "
        f"`{data_dir}` ({len(df)} rows); do not edit by hand. How rows are measured: "
        "`benchmarks/measure.py`; notes and attempts: `benchmarks/NOTES.md`. Values are "
        "rounded against us, to 3 significant digits (0.1 for percentages): a time ratio "
        "up, a speed-up or a bandwidth down; verdicts use the measured values.",
        "",
    ]
    if dropped := df.attrs.get("rows_dropped", 0):
        lines += [
            f"> **{dropped} row(s) dropped as unusable** (cut short, lacking a device, timestamp "
            "or time, or with an impossible time such as zero); `report.py` names them on "
            "stderr. The verdicts below only see the rows that remain.",
            "",
        ]
    if not has_gpu:
        lines += [NO_GPU_NOTE, ""]
    runs = latest_runs(layer)
    lines += glance_lines(runs, latest_runs(train))
    lines += ["## Layers", ""]
    lines += [] if runs else ["No layer rows yet.", ""]
    for device, rows in runs.items():
        lines += layer_section(device, rows)
    lines += ["## End-to-end training step", "", TRAIN_GOALS_TEXT, ""]
    lines += train_sections(train, devices(df))
    profile_runs = latest_runs(profiles) if profiles is not None else {}
    if profile_runs:
        lines += ["## Where a training step's time goes", ""]
        lines += [PROFILE_NOTE, ""]
        for device, rows in profile_runs.items():
            lines += profile_lines(device, rows)
    lines += ["## Figures", ""]
    lines += ["GPU devices first; panels titled `cpu` are pipeline checks, not GPU speed.", ""]
    for name, caption in figures.CAPTIONS.items():
        lines += [f"### {caption}", "", f"![{caption}](figures/{name}.png)", ""]
    lines += ["## Data", ""]
    lines += runs_lines(df) if not df.empty else ["No CSV files."]
    return _each_note_once(df, "\n".join(lines) + "\n")


def _each_note_once(df: pd.DataFrame, text: str) -> str:
    """A run's note in full where its run is first captioned; later captions point to it."""
    if "run_note" not in df:
        return text
    for run, note in df.drop_duplicates("run").set_index("run")["run_note"].items():
        full = known_about(run, note)
        if not note or (first := text.find(full)) < 0:
            continue
        end = first + len(full)
        text = text[:end] + text[end:].replace(full, f"**Known about run `{run}`:** see above.")
    return text


def _shown_path(path: Path) -> str:
    """The data folder as the README shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO)) + "/"
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=default_data_dir(),
        help="the CSV folder (default: $MN_REPORT_DATA, else reports/data, as the writers)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=REPO / "reports",
        help="folder that gets README.md and figures/ (default: reports/)",
    )  # fmt: skip
    parser.add_argument(
        "--profiles", type=Path, default=None,
        help="step profiles' folder (default: profiles/ beside the data folder)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    profiles_dir = args.profiles or args.data.parent / "profiles"
    if not args.data.is_dir() and not profiles_dir.is_dir():
        # nothing to render: a mistyped folder would overwrite the report with an empty one
        parser.error(f"--data {args.data}: no such folder (and no {profiles_dir})")
    df = load(args.data)
    profiles = load_profiles(profiles_dir)
    n_files = len(list(args.data.glob("*.csv")))
    args.out.mkdir(parents=True, exist_ok=True)
    # The figures get whole run groups: each pairs within a part and counts a case once.
    # Drawn first: a README is written only for data that also drew.
    layer_runs = latest_runs(df[df["op"] != "train_step"])
    train_runs = latest_runs(df[df["op"] == "train_step"])
    written = figures.write_all(layer_runs, train_runs, args.out / "figures")
    (args.out / "README.md").write_text(render(df, n_files, _shown_path(args.data), profiles))
    print(f"wrote {args.out / 'README.md'} and {len(written)} figures from {len(df)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
