"""The report's first screen, At a glance: per GPU, the run and commit measured (and how far
mn_triton/ has moved since), a bottom line, every goal with data in one table, the training
steps' overhead per model and execution mode, and the median ratios against the native
norms."""

from __future__ import annotations

import re
import subprocess

import pandas as pd
from figures import calls, graph_replays, host_bound, ours
from report_data import REPO, numeric
from report_goals import GOAL_STEP, Goal, comparisons, device_goals, goals, qualified
from report_text import cases_without_row, fmt, host_count, int_text, table
from report_train import (
    STEP_GOAL_PERCENT,
    TRAIN_GOAL_EXECS,
    TRAIN_GOALS,
    not_full_run,
    train_pairs,
)


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
        lines += [*glance_table(goal_list, cases_without_row(rows) if len(rows) else 0), ""]
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
            goal_list += device_goals(replays, ours(device), " (replays)")
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
    if len(mine) and numeric(mine, "host_ms_p50").notna().any():
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
         host_count(g.rows) if g.layer else "–",
         qualified(g.verdict(True), without_row if g.layer else 0)]
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
        rows.append([model, int_text(steps["K"].iloc[0]), *cells])
    names = {"cudagraph": "CUDA graphs (no goal)"}
    header = ["model", "K", *(names.get(e, e) for e in execs)]
    goal = f"goal: at most +{STEP_GOAL_PERCENT}"
    title = f"Training step time, MN (Triton) over BatchNorm's ({goal}):"
    return [title, "", *table(header, rows), ""]


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
