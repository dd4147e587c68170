"""The report's layer section, one per device: the run, every goal's worst cases, the time
ratios and whether the host bounds them; and where the run replayed CUDA graphs, the same on
the replays and each replay of ours against its eager call."""

from __future__ import annotations

import pandas as pd
from figures import HOST_BOUND_LABEL, calls, from_latest_part, graph_replays, ours
from report_data import MY_CASE, numeric
from report_goals import comparison_lines, comparisons, device_goals, goal_lines, goals, pair
from report_text import cases_without_row, describe, fmt, run_caption, table

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


def layer_section(device: str, rows: pd.DataFrame) -> list[str]:
    judged = device != "cpu"
    lines = [f"### {device}" + ("" if judged else " (pipeline check, not GPU speed)"), ""]
    lines += [run_caption(rows), ""]
    df, graphs = calls(rows), rows[graph_replays(rows)]
    without_row = cases_without_row(rows)
    if not judged:
        lines += [CPU_NOTE, ""]
    lines += goal_lines(goals(df, device), judged, without_row)
    lines += ["", "Time ratios (ours / theirs; above 1 means ours is slower):", ""]
    lines += comparison_lines(comparisons(df, device))
    if judged:
        lines += ["", HOST_NOTE if numeric(df, "host_ms_p50").notna().any() else NO_HOST_NOTE]
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
    replay_goals = list(device_goals(graphs, me, " (replays)"))
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
