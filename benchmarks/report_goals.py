"""The issue's goals and the report's ratios: the goals' numbers (GOAL_*), rows paired within
one run (ours against the native norms and the references, K = 8 against K = 1), each goal
with every case it is judged on, and the lines that list each goal's worst cases and each
comparison's median and worst ratio."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from figures import calls, from_latest_part, graph_replays, ours, where
from report_data import KEY, MY_CASE
from report_text import denoised, describe, fmt, host_count, host_tag, table

BIG_BYTES = 64 * 2**20  # the goals on BatchNorm and bandwidth hold for tensors this large
# The goals (figures.py draws the same ones, train_step.py measures at its HEADLINE_K: tests
# keep the copies equal).
GOAL_MN_OVER_BN = 1.10  # MN K=2 fwd+bwd / BatchNorm2d, tensors >= BIG_BYTES, at most
GOAL_COPY_FRACTION = 0.75  # of the copy bandwidth there, at least
GOAL_SPEEDUP_REFERENCE = 5.0  # over the eager reference, at least
GOAL_SPEEDUP_COMPILED = 1.5  # over torch.compile(reference), at least
GOAL_K8_OVER_K1 = 1.05  # at most
GOAL_STEP = 1.05  # a training step's time, and its peak memory, / BatchNorm's, at most


# ---------------------------------- ratios and goals -----------------------------------


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
    bn_goal, bandwidth_goal, k_goal = device_goals(df, me)
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


def device_goals(df: pd.DataFrame, me: str, suffix: str = "") -> tuple[Goal, Goal, Goal]:
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


# ------------------------------ goals and ratios as lines ------------------------------


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
             qualified(g.verdict(judged), without_row)]
            for g in goal_list
        ]  # fmt: skip
        lines = table(["goal", "target", "worst case", "cases", "verdict"], rows)
    lines += ["", "Worst cases per goal (the slow ones stay visible):", ""]
    for g in goal_list:
        if g.rows.empty:
            continue
        worst = g.rows.sort_values("value", ascending=not g.at_most).head(3)
        cases = [f"`{describe(r)}` {g.show(r['value'])}{host_tag(r)}" for _, r in worst.iterrows()]
        lines.append(f"- {g.name}: {'; '.join(cases)}")
    return lines


def qualified(verdict: str, without_row: int) -> str:
    if verdict != "met" or not without_row:
        return verdict
    return f"met on the cases measured ({without_row} planned cases have no row)"


def comparison_lines(comps: dict[str, pd.DataFrame]) -> list[str]:
    """Median and worst ratio per comparison and mode (ratio > 1: ours is slower), with how
    many of our times in it are the host's (figures.host_bound)."""
    rows = []
    for name, frame in comps.items():
        for mode, part in frame.groupby("mode", sort=False):
            worst = part.loc[part["ratio"].idxmax()]
            ratios = part["ratio"]
            rows.append([name, mode, len(part), host_count(part), fmt(ratios.median()),
                         fmt(ratios.max()), f"`{describe(worst)}`{host_tag(worst)}"])  # fmt: skip
    if not rows:
        return ["No pairs to compare in this run."]
    header = ["time ratio", "mode", "cases", "host-bound", "median", "worst", "worst case"]
    return table(header, rows)
