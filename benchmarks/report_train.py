"""The report's training-step sections: each MN step against BatchNorm's in the same run,
model and execution mode, with the step goals' verdicts (set for full runs at each model's
goal K) and the goal steps not measured; and the step profiles: where a step's time goes."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from figures import TRAIN_CASE, from_latest_part
from report_data import latest_runs, numeric
from report_goals import GOAL_STEP
from report_text import denoised, fmt, int_text, run_caption, run_notes_text, table

# ----------------------------------- training steps ------------------------------------


TRAIN_GOALS = {"resnet20": 2, "resnet56": 2, "lenet": 6}  # model -> K the goal is set at
TRAIN_GOAL_EXECS = ("eager", "compiled")  # the goal holds for both
STEP_GOAL_PERCENT = f"{(GOAL_STEP - 1) * 100:.0f}%"  # GOAL_STEP as time over BatchNorm's
TRAIN_GOALS_TEXT = (
    "Per model and execution mode: step time of each MN variant over the same net with "
    f"BatchNorm (goal: triton <= {STEP_GOAL_PERCENT} over BN for resnet20/resnet56 at K=2 and "
    f"lenet at K=6, eager and compiled; peak memory <= {GOAL_STEP:.2f}x BN). CUDA-graph steps "
    "(exec `cudagraph`) are exempt: the goal names eager and compiled steps, so they are shown "
    "without a verdict."
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
    df = df.assign(peak_mem_total_mb=numeric(df, "peak_mem_total_mb"),
                   host_ms_p50=numeric(df, "host_ms_p50"))  # fmt: skip
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
        [r["model"], r["exec"], r["provider"], int_text(r["K"]), int_text(r["N"]),
         r.get("run_size", ""), f"{r['ms_p50']:.3f}", f"{r['ms_p50_bn']:.3f}",
         fmt(r["overhead"], True, True), _host_cell(r), _memory_cell(r, "mem_ratio"),
         _memory_cell(r, "total_mem_ratio"), _train_verdict(r, judged)]
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


# ------------------------------------ step profiles ------------------------------------


PROFILE_NOTE = (
    "A few steps of BatchNorm and mn_triton at the headline K, profiled with torch.profiler "
    "after timing them (`benchmarks/step_profile.py`; rows in `reports/profiles/`). Kernel ms "
    "is device time per step; GPU busy = kernel ms / step ms. Well below 100% the GPU waits "
    "for the host, and an extra step time much larger than the extra kernel time is host "
    "time (Python, dispatch, launches), not kernels."
)


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
              + run_notes_text(df, [first["run"]]), ""]  # fmt: skip
    df = df.sort_values(["model", "exec", "provider"])
    rows = [
        [r["model"], r["exec"], r["provider"], int_text(r["K"]), _num(r["step_ms"], ".3f"),
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
            [r["model"], r["exec"], int_text(r["K"]), _num(d["step_ms"], "+.3f"),
             _num(d["kernel_ms"], "+.3f"), _num(d["norm_kernel_ms"], "+.3f"),
             _num(d["kernels"], "+.0f"), _num(d["aten_ops"], "+.0f"), _num(share, ".0%")]
        )  # fmt: skip
    if extra:
        lines += [f"What {'/'.join(sorted(set(ours['provider'])))} adds per step over "
                  "BatchNorm:", "", *table(EXTRA_HEADER, extra), ""]  # fmt: skip
    return lines
