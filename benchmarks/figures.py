"""The report's figures (matplotlib, Agg backend): one file per kind, one row of panels per
device (GPUs first; `cpu` panels are pipeline checks, not GPU speed), each row with its legend
to the right, outside the panels. Every file is written even without data, as a panel saying
so, so the report's links always resolve.

Each figure gets a device's whole run group (every part, `part_rank` 0, 1, ...) and keeps the
tables' rule: times are only compared within one part (each part has its own copy bandwidth,
clocks and temperature), and a case measured in several parts counts once, from the latest.
Layer figures show calls (eager, and the compiled reference's); CUDA-graph replays (exec
`cudagraph`) appear only in the bandwidth figure, as series of their own (`calls`).

One colour per provider (PROVIDERS) and per native baseline (NATIVE_COLOUR) in every figure;
ratios read as the tables' do: ours over theirs, below 1 ours is faster. Goals (dashed lines,
the bandwidth goal's starred cases) are drawn on GPU panels only: CPU rows are not judged."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: figures are files

import grid
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

CAPTIONS = {
    "time_vs_k": "Time against K (fwd+bwd); BatchNorm2d / GroupNorm dashed",
    "time_vs_batch": "Time against batch size (fwd+bwd, K=2)",
    "speedup_per_shape": "Time of ours over the others' per layer shape (fwd+bwd, K=2; "
    "below 1: ours is faster; dashed: goals; n/m: not measured)",
    "bandwidth": "Achieved bandwidth (the least bytes a layer must move / time) as a % of the "
    "measured copy bandwidth; stars: the cases the 75% goal is judged on",
    "memory": "Peak memory per call over BatchNorm2d's (MN) and GroupNorm's (MGN) at the same "
    "shape (fwd+bwd, K=2, float32 NCHW)",
    "train_step": "Training-step time of MN over BatchNorm's (median step)",
}
PROVIDERS = {  # provider -> (colour, marker), the same in every figure
    "triton": ("C0", "o"),
    "torch_ops": ("C1", "s"),
    "reference": ("C3", "^"),
    "reference_compiled": ("C4", "v"),
}
NATIVE = {
    "batch_norm": "BatchNorm2d",
    "group_norm": "GroupNorm",
    "instance_norm": "InstanceNorm2d",
    "layer_norm": "LayerNorm",
}
NATIVE_COLOUR = {"batch_norm": "0.15", "group_norm": "0.55", "instance_norm": "C5",
                 "layer_norm": "C6"}  # fmt: skip
FAMILIES = (("mode_norm", "MN", "batch_norm"), ("mode_group_norm", "MGN", "group_norm"))
MIB = 2**20
LAYER_CASE = ["op", "provider", "mode", "dtype", "layout", "N", "C", "H", "W", "K"]  # one row each
TRAIN_CASE = ["model", "exec", "provider", "K", "dtype", "layout", "N", "width"]
POINT = ["dtype", "layout", "N", "C", "H", "W"]  # where a sweep over K is made
DPI = 150
PANEL_SIZE = (5.4, 3.9)  # inches per panel
LEGEND_WIDTH = 2.7  # inches beside each row for its legend
LEGEND_WRAP = 34  # characters per legend line
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8.5,
         "xtick.labelsize": 8.5, "ytick.labelsize": 8.5}  # fmt: skip
GAP_NOTE = "a break in a line: not measured there"
GOAL_BYTES = 64 * MIB  # the goals on BatchNorm and bandwidth hold for tensors this large
# What a legend says for a label where the label alone does not explain itself; the label
# stays the key the drawing code and the tests find a series by. Per figure, on top of "*".
LEGEND_TEXT = {
    "*": {"torch_ops": "torch_ops (mn_triton without Triton)"},
    "time_vs_k": {"GroupNorm": "GroupNorm (K groups; 1 where K does not divide C)"},
    **dict.fromkeys(
        ("time_vs_batch", "speedup_per_shape", "memory"),
        {"GroupNorm": "GroupNorm (2 groups; 1 where 2 does not divide C)"},
    ),
    "bandwidth": {
        f"{name} ({provider})": f"{name} ({provider}): every case (all modes, K, dtypes)"
        for name in ("MN", "MGN")
        for provider in ("triton", "torch_ops")
    },
}


def graph_replays(df: pd.DataFrame) -> pd.Series:
    """Which rows time CUDA-graph replays (exec `cudagraph`) rather than calls."""
    if "exec" not in df:
        return pd.Series(False, index=df.index)
    return df["exec"] == grid.GRAPH_EXEC


def calls(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that time calls (eager, or the compiled reference's): no graph replays."""
    return df[~graph_replays(df)]


def ours(device: str) -> str:
    """The provider the goals are about: the Triton kernels on a GPU, the torch ops on CPU."""
    return "torch_ops" if device == "cpu" else "triton"


def judged(device: str) -> bool:
    """Whether the goals are judged on a device's rows: GPUs only (CPU rows check the
    pipeline), so only their panels draw goal lines and goal cases."""
    return device != "cpu"


def _title(device: str) -> str:
    return "cpu: pipeline check, not GPU speed" if device == "cpu" else device


def _panels(
    runs: dict[str, pd.DataFrame],
    ncols: int,
    heights: list[float] | None = None,
    empty: str = "no data yet",
) -> tuple[Figure, np.ndarray]:
    """A figure of one row of `ncols` panels per device, each row a subfigure (its title and
    legend its own), `heights` inches high (PANEL_SIZE's by default); without runs, one row
    of panels saying `empty`."""
    heights = heights or [PANEL_SIZE[1]] * max(1, len(runs))
    size = (PANEL_SIZE[0] * ncols + LEGEND_WIDTH, sum(heights) + 0.5)
    fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
    rows = fig.subfigures(len(heights), 1, squeeze=False, height_ratios=heights)[:, 0]
    axes = np.array([row.subplots(1, ncols, squeeze=False)[0] for row in rows])
    if not runs:
        for ax in axes.flat:
            _empty(ax, empty)
    return fig, axes


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def where(df: pd.DataFrame, **eq: object) -> pd.DataFrame:
    """The rows whose columns equal the given values."""
    mask = pd.Series(True, index=df.index)
    for column, value in eq.items():
        mask &= df[column] == value
    return df[mask]


def from_latest_part(frame: pd.DataFrame, case: list[str]) -> pd.DataFrame:
    """Where the parts of a run group both measured a case, the later part's rows only, so no
    case counts twice. (The later rather than the grid that owns the case: either part's
    figures are one run's, and the later part is the newer measurement.) Frames without
    `part_rank` hold one run and come back as they are."""
    if frame.empty or "part_rank" not in frame:
        return frame
    case = [c for c in case if c in frame]
    latest = frame.groupby(case, dropna=False)["part_rank"].transform("max")
    return frame[frame["part_rank"] == latest]


def _in_run(rows: pd.DataFrame) -> list[str]:
    """["run"] where rows say which run (part) they are from: a join key that keeps parts apart."""
    return ["run"] if "run" in rows else []


HOST_BOUND_SHARE = 0.8  # issue time beyond the head start / event time: host-bound from here
HOST_BOUND_LABEL = (
    "host-bound: host issue time beyond the L2 flush's head start ≥ 80% of the median device time"
)


def host_bound(rows: pd.DataFrame) -> pd.Series:
    """Which rows' times are the host's rather than the device's.

    Before each timed call, measure.time_fn queues an L2 flush (`flush_ms_p50` of device
    time) and the host issues the call's launches while the device is busy with it: the
    kernels wait for the host only where the issue time (`host_ms_p50`) passes that head
    start by about the event time itself. Device-bound, the events time the kernels and the
    issue time beyond the head start stays well below them; host-bound, the events time
    the issue beyond the head start, plus the last kernel. The share leaves room for noise.
    Rows without an issue time (CPU, older runs) are not flagged.
    """
    if "host_ms_p50" not in rows:
        return pd.Series(False, index=rows.index)
    head_start = rows["flush_ms_p50"].fillna(0.0) if "flush_ms_p50" in rows else 0.0
    beyond = (rows["host_ms_p50"] - head_start).astype(float)  # NaN (no issue time): False
    return beyond >= HOST_BOUND_SHARE * rows["ms_p50"].astype(float)


def _ring(ax: Axes, x: Iterable[float], y: Iterable[float], size: float = 90) -> None:
    """A black ring around each point given (`size`: its area, points²), labelled once per
    panel."""
    x, y = list(x), list(y)
    if not x:
        return
    label = None if HOST_BOUND_LABEL in ax.get_legend_handles_labels()[1] else HOST_BOUND_LABEL
    ax.scatter(x, y, s=size, facecolors="none", edgecolors="k", linewidths=0.8, label=label,
               zorder=3, gid="host_bound")  # fmt: skip


def _ring_host_bound(
    ax: Axes, rows: pd.DataFrame, x: pd.Series, y: pd.Series, size: float = 90
) -> None:
    """A black ring around each host-bound point (rows, at x and y aligned with them)."""
    bound = host_bound(rows)
    _ring(ax, x[bound], y[bound], size)


def _densest(rows: pd.DataFrame, axis: str, fixed: list[str]) -> pd.DataFrame:
    """The rows of one sweep: at the point (values of `fixed`) and in the part with the most
    distinct `axis` values; ties go to the largest tensor, then to the later part. One part
    only, so that no curve joins times of two parts."""
    if rows.empty:
        return rows
    fixed = [*fixed, *_in_run(rows)]
    ranked = rows.assign(_rank=rows.get("part_rank", 0))  # rows of one run: all rank 0
    counts = ranked.groupby(fixed).agg(_n=(axis, "nunique"), _rank=("_rank", "max")).reset_index()
    counts["_bytes"] = counts.get("N", 1) * counts["C"] * counts["H"] * counts["W"]
    best = counts.sort_values(["_n", "_bytes", "_rank"]).iloc[-1]
    return _at(rows, best, fixed)


def _at(rows: pd.DataFrame, point: pd.Series, columns: list[str]) -> pd.DataFrame:
    """The rows whose `columns` equal the point's."""
    return rows[(rows[columns] == point[columns]).all(axis=1)]


def _point_label(rows: pd.DataFrame, skip: str) -> str:
    r = rows.iloc[0]
    parts = {"N": f"N={int(r['N'])}", "shape": f"{int(r['C'])}x{int(r['H'])}x{int(r['W'])}"}
    parts.pop(skip, None)
    return " ".join([*parts.values(), r["dtype"], r["layout"]])


def planned(rows: pd.DataFrame, axis: str, plan: Iterable[float]) -> list[float]:
    """The x values of a sweep: every value any of its rows has, and the grid's (`plan`)
    between the least and the greatest of them. A curve gets NaN (a break) at those it has
    no row for, so that no line is drawn across a value that was not measured."""
    seen = sorted({float(v) for v in rows[axis].dropna()})
    if not seen:
        return []
    return sorted({*seen, *(float(v) for v in plan if seen[0] <= v <= seen[-1])})


def _has_gap(ys: Iterable[float]) -> bool:
    """Whether a curve has a NaN between two measured values (a break in its line)."""
    measured = np.flatnonzero(~np.isnan(np.asarray(list(ys), dtype=float)))
    return len(measured) > 1 and measured[-1] - measured[0] + 1 > len(measured)


def _plot_providers(ax: Axes, rows: pd.DataFrame, x: str, xs: list[float]) -> bool:
    """Each provider's median time (p20-p80 bars) at the sweep's values `xs`, NaN (a break in
    the line) where it has no row; host-bound points ringed. Whether any line has a break."""
    gaps = False
    for provider, (colour, marker) in PROVIDERS.items():
        part = rows[rows["provider"] == provider].sort_values(x)
        if part.empty:
            continue
        at = part.drop_duplicates(x, keep="last").set_index(x).reindex(xs)
        err = [at["ms_p50"] - at["ms_p20"], at["ms_p80"] - at["ms_p50"]]
        ax.errorbar(xs, at["ms_p50"], yerr=err, color=colour, marker=marker, label=provider,
                    capsize=2)  # fmt: skip
        _ring_host_bound(ax, part, part[x], part["ms_p50"])
        gaps |= _has_gap(at["ms_p50"])
    return gaps


def _plot_baseline(
    ax: Axes, native: str, xs: list[float], at: list[pd.DataFrame], marker: str | None = "."
) -> bool:
    """A native baseline, dashed in its colour: the median time of its rows `at` each x (NaN,
    a break, where there are none; a point between two breaks shows by its marker);
    host-bound points ringed. Whether the line has a break."""
    ys = [rows["ms_p50"].median() if not rows.empty else np.nan for rows in at]
    ax.plot(xs, ys, ls="--", color=NATIVE_COLOUR[native], marker=marker, label=NATIVE[native])
    bound = [i for i, rows in enumerate(at) if host_bound(rows).any()]
    _ring(ax, [xs[i] for i in bound], [ys[i] for i in bound])
    return _has_gap(ys)


def time_vs_k(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):
        full = where(calls(df), mode="full")
        rows = _densest(full[full["op"] == op], "K", POINT)
        if rows.empty:
            _empty(ax, f"{name}: no K sweep in this run")
            continue
        ks = planned(rows, "K", grid.KS)
        gaps = _plot_providers(ax, rows, "K", ks)
        point = rows.iloc[0]  # the baseline at the sweep's own point, from its own part
        base = _at(where(full, op=native), point, [*POINT, *_in_run(full)])
        if native == "batch_norm" and not base.empty:  # one case, whatever K: a flat line
            gaps |= _plot_baseline(ax, native, ks, [base] * len(ks), marker=None)
        elif not base.empty:  # GroupNorm(K, C), or GroupNorm(1, C) where K does not divide C,
            # at the K values the sweep measured
            measured = set(rows["K"])
            at = [base[base["K"] == grid.group_norm_groups(int(k), int(point["C"]))]
                  if k in measured else base.iloc[:0] for k in ks]  # fmt: skip
            gaps |= _plot_baseline(ax, native, ks, at)
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.set(
            xlabel="K (modes)" + (f"; {GAP_NOTE}" if gaps else ""),
            ylabel="ms (median, p20-p80)",
            yscale="log",
            title=f"{name}: {_point_label(rows, '')}",
        )


def time_vs_batch(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):
        full = where(calls(df), mode="full")
        mine = full[(full["op"] == op) & (full["K"] == 2)]
        at = [c for c in POINT if c != "N"]  # where a sweep over N is made
        rows = _densest(mine, "N", at)
        if rows.empty:
            _empty(ax, f"{name}: no batch sweep in this run")
            continue
        ns = planned(rows, "N", grid.BATCHES)
        gaps = _plot_providers(ax, rows, "N", ns)
        point = rows.iloc[0]  # the baseline at the sweep's own point, from its own part
        base = _at(where(full, op=native), point, [*at, *_in_run(full)])
        if native == "group_norm":
            base = base[base["K"] == grid.group_norm_groups(2, int(point["C"]))]
        if not base.empty:
            gaps |= _plot_baseline(ax, native, ns, [base[base["N"] == n] for n in ns])
        ax.set(
            xlabel="batch size N" + (f"; {GAP_NOTE}" if gaps else ""),
            ylabel="ms (median, p20-p80)",
            xscale="log",
            yscale="log",
            title=f"{name} K=2: {_point_label(rows, 'N')}",
        )
        ax.set_xticks(ns, [f"{n:g}" for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())


def speedup_per_shape(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    me = ours(device)
    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):
        full = where(calls(df), mode="full", dtype="float32", layout="nchw")
        mine = full[(full["op"] == op) & (full["K"] == 2) & (full["provider"] == me)]
        if mine.empty:
            _empty(ax, f"{name}: no {me} rows at K=2, float32, NCHW")
            continue
        n = mine["N"].mode().iloc[0]
        mine = mine[mine["N"] == n]
        shapes = sorted({_shape(s) for s in mine[["C", "H", "W"]].values}, key=_shape_order)
        missing = _speedup_bars(ax, full[full["N"] == n], mine, shapes, op, native)
        if judged(device):
            _speedup_goals(ax, mine, shapes, op)
        names = [f"{c}x{h}x{w}" for c, h, w in shapes]
        ax.set_xticks(range(len(shapes)), names, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(shapes) - 0.4)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(
            xlabel="layer shape C×H×W" + (f"; {NOT_MEASURED}: not measured" if missing else ""),
            ylabel=f"time of {me} / time of the other\n(log; below 1: {me} is faster)",
            yscale="log",
            title=f"{name} K=2 N={int(n)} float32 nchw",
        )


NOT_MEASURED = "n/m"  # written where a bar has no pair to divide: not a ratio of 1
HOST_BOUND_BARS_LABEL = f"hatched: our time or the other's is {HOST_BOUND_LABEL}"
# The goals on a ratio of ours over theirs (report_goals.goals), as that ratio: a speed-up of at
# least 5× is a ratio of at most 1/5. Keyed by what the bar compares with.
SPEEDUP_GOALS = {
    "reference": (1 / 5, "goal vs reference: ≥ 5× faster (ratio ≤ 0.2)"),
    "reference_compiled": (1 / 1.5, "goal vs reference_compiled: ≥ 1.5× faster (ratio ≤ 0.67)"),
}
BN_GOAL = (1.10, "goal vs BatchNorm2d: ≤ 1.10 (MN, tensors ≥ 64 MiB: the shapes under the line)")


def _speedup_goals(ax: Axes, mine: pd.DataFrame, shapes: list[tuple], op: str) -> None:
    """A dashed line per goal a panel's ratios are judged by, in its comparison's colour: the
    references' over the whole panel (every case counts), BatchNorm's (MN only) over the
    shapes of at least 64 MiB alone, the only ones that goal holds for."""
    for provider, (limit, label) in SPEEDUP_GOALS.items():
        ax.axhline(limit, color=PROVIDERS[provider][0], ls="--", lw=1.0, label=label)
    if op != "mode_norm":
        return
    sizes = mine.groupby(["C", "H", "W"])["tensor_bytes"].max()
    big = [i for i, shape in enumerate(shapes) if sizes[shape] >= GOAL_BYTES]
    if big:  # one segment per shape, NaN between them: no line across a small shape
        xs = np.array([x for i in big for x in (i - 0.45, i + 0.45, np.nan)])
        ys = np.where(np.isnan(xs), np.nan, BN_GOAL[0])
        ax.plot(xs, ys, color=NATIVE_COLOUR["batch_norm"], ls="--", lw=1.5, label=BN_GOAL[1])


def _shape(values: Iterable) -> tuple[int, ...]:
    """(C, H, W) as ints: the key a bar is found by."""
    return tuple(int(v) for v in values)


def _shape_order(shape: tuple[int, ...]) -> tuple[int, int]:
    """CIFAR shapes, then ImageNet ones, in the grid's order; others after them."""
    known = [*grid.CIFAR_SHAPES, *grid.IMAGENET_SHAPES]
    return (known.index(shape), 0) if shape in known else (len(known), shape[0])


def _ratios(
    mine: pd.DataFrame, other: pd.DataFrame, key: list[str]
) -> dict[tuple, tuple[float, bool]]:
    """Our time over theirs per shape (as the report's tables: above 1, ours is slower), both
    sides from one part, as the tables pair them: each part's own pairs, and where several
    parts hold one, the latest part's. With each, whether either time is host-bound (then
    the ratio is not one of the kernels' times)."""
    on = [*key, *_in_run(mine)]
    mine = mine.assign(_bound=host_bound(mine))
    other = other.assign(_bound=host_bound(other))
    pairs = mine.merge(other[[*on, "ms_p50", "_bound"]], on=on, suffixes=("", "_o"))
    pairs = from_latest_part(pairs, ["C", "H", "W"])
    ratios = pairs["ms_p50"] / pairs["ms_p50_o"]
    bound = pairs["_bound"] | pairs["_bound_o"]
    shapes = [_shape(s) for s in pairs[["C", "H", "W"]].values]
    return {s: (r, bool(b)) for s, r, b in zip(shapes, ratios, bound, strict=True)}


def _speedup_bars(
    ax: Axes, rows: pd.DataFrame, mine: pd.DataFrame, shapes: list[tuple], op: str, native: str
) -> bool:
    """Per shape, one bar per other provider, drawn from 1 to our time over theirs (a log
    axis has no zero: a bar's length is the ratio's distance from parity); hatched where a
    time is host-bound; NOT_MEASURED where there is no pair. Whether any bar has none."""
    others = {
        "reference": rows[(rows["op"] == op) & (rows["provider"] == "reference")],
        "reference_compiled": rows[(rows["op"] == op) & (rows["provider"] == "reference_compiled")],
        NATIVE[native]: rows[rows["op"] == native],
    }
    colours = {**{p: c for p, (c, _) in PROVIDERS.items()}, NATIVE[native]: NATIVE_COLOUR[native]}
    width, missing, hatched = 0.8 / len(others), False, False
    for i, (label, other) in enumerate(others.items()):
        key = ["C", "H", "W"] + (["K"] if label.startswith("reference") else [])
        if label == "GroupNorm":  # GroupNorm(2, C) where 2 divides C, else GroupNorm(1, C)
            other = other[other["K"] == [grid.group_norm_groups(2, int(c)) for c in other["C"]]]
        ratios = _ratios(mine, other, key)
        xs = np.arange(len(shapes)) + (i - 1) * width
        ends = np.array([ratios.get(shape, (np.nan, False))[0] for shape in shapes])
        bars = ax.bar(xs, ends - 1, width, bottom=1.0, color=colours[label], label=label)
        for bar, shape in zip(bars, shapes, strict=True):
            if ratios.get(shape, (np.nan, False))[1]:
                bar.set_hatch("//")
                bar.set_edgecolor("white")  # the hatch's colour, visible on every fill
                hatched = True
        for x in xs[np.isnan(ends)]:  # no pair: no bar, and a word saying so, not a gap at 1
            ax.text(x, 1.0, NOT_MEASURED, rotation=90, ha="center", va="bottom", fontsize=7,
                    color=colours[label])  # fmt: skip
            missing = True
    if hatched:  # a legend entry for the hatching (a patch of no size, at x = 0)
        ax.add_patch(Rectangle((0, 1.0), 0, 0, facecolor="0.6", edgecolor="white", hatch="//",
                               label=HOST_BOUND_BARS_LABEL))  # fmt: skip
    return missing


BANDWIDTH_GOAL = 75.0  # % of the copy bandwidth, for the goal cases (goal_cases)
GOAL_CASES_LABEL = "goal cases: MN K=2 fwd+bwd calls, tensors ≥ 64 MiB (labelled: their %)"


def goal_cases(rows: pd.DataFrame, me: str) -> pd.DataFrame:
    """The rows the bandwidth goal is judged on (report_goals.device_goals): calls of our MN at
    K=2, forward+backward, on tensors of at least 64 MiB."""
    mine = where(calls(rows), op="mode_norm", provider=me, K=2, mode="full")
    return mine[mine["tensor_bytes"] >= GOAL_BYTES]


def _share(rows: pd.DataFrame) -> pd.Series:
    """Achieved bandwidth as a % of the copy bandwidth the row's own part measured."""
    return 100 * rows["gbps"] / rows["copy_gbps"]


def bandwidth(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    """Each point as a share of the copy bandwidth its own part measured (the goal's measure):
    parts' ceilings differ, and one line for all would misplace the points of the others.
    Every case is drawn, light; the goal's cases on top as labelled stars, so the few the
    verdict rests on stand out of the many it does not."""
    ax = axes[0]
    ax.set_xscale("log")  # before the goal cases' labels ask for the limits
    me = ours(device)
    df = from_latest_part(df, [*LAYER_CASE, "exec"])
    replayed = graph_replays(df)
    mine, bn = PROVIDERS[me][0], NATIVE_COLOUR["batch_norm"]
    series = (  # BatchNorm first, so ours are drawn over it
        # BatchNorm's bytes: SPEC §3's model for MN, except eval's 2·|x| (grid.bytes_min).
        ("batch_norm", "native", "BatchNorm2d: all modes, dtypes (bytes counted as for MN; "
         "eval: x read and y written once)", bn, ".", False),
        ("mode_norm", me, f"MN ({me})", mine, "o", False),
        ("mode_group_norm", me, f"MGN ({me})", mine, "x", False),
        # The device's time alone: the same calls replayed from CUDA graphs, no host cost.
        ("mode_norm", me, f"MN ({me}), CUDA-graph replays", mine, "D", True),
        ("batch_norm", "native", "BatchNorm2d, CUDA-graph replays", bn, "D", True),
    )  # fmt: skip
    for op, provider, label, colour, marker, graphs in series:
        rows = where(df[replayed == graphs], op=op, provider=provider)
        if graphs and rows.empty:
            continue
        # Replays: hollow markers in the series' colour. Light: the goal's stars stand out.
        style = dict(facecolors="none", edgecolors=colour) if graphs else dict(c=colour)
        ax.scatter(rows["tensor_bytes"] / MIB, _share(rows), s=14, marker=marker, label=label,
                   alpha=0.45, **style)  # fmt: skip
        # A small ring: a large one covers the neighbouring points of a dense column.
        _ring_host_bound(ax, rows, rows["tensor_bytes"] / MIB, _share(rows), size=32)
    ax.axhline(100, color="k", ls="--", label="copy bandwidth of the point's part")
    if judged(device):
        _goal_cases(ax, goal_cases(df, me), mine)
    ax.set(
        xlabel="tensor size, MiB (the input x)" + ("; grey line: 64 MiB" if judged(device) else ""),
        ylabel="achieved bandwidth, % of measured copy bandwidth",
        title=f"{device}: {_copy_title(df)}",
    )


STAR_LABEL_GAP = 6.0  # percentage points between two star labels (the axis spans 0 to 100+)


def _goal_cases(ax: Axes, rows: pd.DataFrame, colour: str) -> None:
    """The goal's line (75%) and 64 MiB mark, and its cases as large stars, each labelled to
    its right with its % (rounded down, as the report shows a value that must reach its
    limit) and whether it is host-bound: a ring around a star would cover its neighbours."""
    ax.axhline(BANDWIDTH_GOAL, color="k", ls=":",
               label="75% of it (goal: MN K=2 fwd+bwd, >= 64 MiB)")  # fmt: skip
    ax.axvline(GOAL_BYTES / MIB, color="0.7", lw=0.8)
    rows = rows.assign(_x=rows["tensor_bytes"] / MIB, _y=_share(rows), _bound=host_bound(rows))
    rows = rows.dropna(subset=["_y"])  # no copy bandwidth in its part: no data, as the goal's
    if rows.empty:
        return
    ax.scatter(rows["_x"], rows["_y"], s=180, marker="*", c=colour, edgecolors="k",
               linewidths=0.6, label=GOAL_CASES_LABEL, zorder=4, gid="goal_cases")  # fmt: skip
    # The labels in one column right of every star, stacked upwards where stars lie close
    # (one size, two layouts), each with a leader to its star.
    column, label_y = rows["_x"].max() * 1.6, -math.inf
    for _, r in rows.sort_values("_y").iterrows():
        label_y = max(r["_y"], label_y + STAR_LABEL_GAP)
        text = _percent_down(r["_y"]) + (", host-bound" if r["_bound"] else "")
        ax.annotate(text, (r["_x"], r["_y"]), xytext=(column, label_y), va="center",
                    fontsize=8, fontweight="bold", zorder=5,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.3", shrinkB=5))  # fmt: skip
    low, high = ax.get_xlim()
    ax.set_xlim(low, max(high, column * 8))  # room for the labels


def _percent_down(percent: float) -> str:
    """A % that must reach a limit, as the report shows it: rounded down to 0.1 (against
    us), once float noise beyond 9 significant digits is dropped."""
    return f"{math.floor(float(f'{percent * 10:.9g}')) / 10:.1f}%"


def _copy_title(df: pd.DataFrame) -> str:
    """The copy bandwidths the parts measured, in GB/s."""
    copies = [f"{v:.0f}" for v in dict.fromkeys(df["copy_gbps"].dropna())]
    if not copies:
        return "no copy bandwidth measured"
    return f"copy bandwidth measured: {', '.join(copies)} GB/s"


def _memory_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The calls with a peak memory at fwd+bwd, float32 NCHW, each case once."""
    df = calls(df)
    if "peak_mem_mb" not in df:
        return df.iloc[:0]
    full = df[(df["mode"] == "full") & df["peak_mem_mb"].notna()]
    return full[(full["dtype"] == "float32") & (full["layout"] == "nchw")]


def has_memory(df: pd.DataFrame) -> bool:
    """Whether a device's rows have any peak memory to draw (CPU runs measure none)."""
    return not _memory_rows(df).empty


def memory(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    """Per provider, each case's peak over the baseline's at the same shape (dots) and the
    median per tensor size (line), in float32 NCHW only: layouts and dtypes need different
    memory at one size (GroupNorm takes twice as much channels_last), and a median across
    them would be a point no case measured. As a ratio, ours stays visible where it is close
    to the baseline (absolute, the two lines lie on each other)."""
    full = _memory_rows(df)
    for ax, (op, name, native) in zip(axes, FAMILIES, strict=True):
        mine = full[(full["op"] == op) & (full["K"] == 2)]
        base = full[full["op"] == native]
        if native == "group_norm":  # GroupNorm(2, C) stands for MGN at K=2
            base = base[base["K"] == [grid.group_norm_groups(2, int(c)) for c in base["C"]]]
        if mine.empty or base.empty:
            text = "peak memory is not measured on CPU" if device == "cpu" else "no memory rows"
            _empty(ax, text if mine.empty and base.empty else f"no {NATIVE[native]} to pair with")
            continue
        on = ["N", "C", "H", "W", *_in_run(full)]  # dtype and layout are fixed above
        pairs = mine.merge(base[[*on, "peak_mem_mb"]], on=on, suffixes=("", "_base"))
        pairs = from_latest_part(pairs, LAYER_CASE)
        pairs = pairs.assign(ratio=pairs["peak_mem_mb"] / pairs["peak_mem_mb_base"])
        sizes = sorted(base["tensor_bytes"].unique() / MIB)
        # Wide and below: ours, often at 1.00x, stays visible on it.
        ax.plot(sizes, [1.0] * len(sizes), ls="--", lw=2.5, color=NATIVE_COLOUR[native],
                alpha=0.6, zorder=1, label=NATIVE[native])  # fmt: skip
        for provider, (colour, marker) in PROVIDERS.items():
            part = pairs[pairs["provider"] == provider]
            if part.empty:
                continue
            ax.scatter(part["tensor_bytes"] / MIB, part["ratio"], s=12, alpha=0.6, color=colour,
                       marker=marker, zorder=2)  # fmt: skip
            median = part.groupby("tensor_bytes", as_index=False)["ratio"].median()
            ax.plot(median["tensor_bytes"] / MIB, median["ratio"], color=colour, lw=1.0,
                    marker=marker, markersize=3, label=provider, zorder=2)  # fmt: skip
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="tensor size, MiB (the input x)",
            ylabel=f"peak extra memory ÷ {NATIVE[native]}'s",
            title=f"{name} fwd+bwd, K=2, float32 NCHW",
        )


def _train_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Each step of ours (or the reference's) with BatchNorm's median step of the same run,
    model, exec mode and net (train_step.py --width); a step once, from its latest part."""
    on = [c for c in ("run", "model", "exec", "dtype", "layout", "N", "width") if c in df]
    native = df[df["provider"] == "native"].groupby(on, as_index=False, dropna=False)
    native = native["ms_p50"].median()
    rows = df[df["provider"] != "native"].merge(native, on=on, suffixes=("", "_bn"))
    rows = from_latest_part(rows, TRAIN_CASE)  # pairs within a part; a step once, the latest
    order = {
        "exec": {e: i for i, e in enumerate(("eager", "compiled", grid.GRAPH_EXEC))},
        "provider": {p: i for i, p in enumerate(PROVIDERS)},
    }
    rows = rows.assign(
        ratio=rows["ms_p50"] / rows["ms_p50_bn"],
        _exec=rows["exec"].map(order["exec"]).fillna(len(order["exec"])),
        _provider=rows["provider"].map(order["provider"]).fillna(len(PROVIDERS)),
    )
    rows = rows.sort_values(["model", "_exec", "exec", "_provider", "provider", "K"])
    return rows.drop(columns=["_exec", "_provider"]).reset_index(drop=True)


def _overhead_text(ratio: float) -> str:
    """The overhead in percent, as the report's table prints it: rounded against us (up) to
    0.1%, once float noise beyond 9 significant digits is dropped."""
    percent = math.ceil(float(f"{(ratio - 1) * 1000:.9g}")) / 10
    return f"{percent:+.1f}%"


TRAIN_GOAL = 1.05  # step time / BatchNorm's, at most
TRAIN_GOAL_LABEL = (
    "goal: ≤ 1.05× BatchNorm's step (+5%), for triton's eager and compiled steps at the "
    "model's goal K"
)
EXEMPT_LABEL = "CUDA-graph step: exempt from the goal"


def train_step_rows(df: pd.DataFrame) -> int:
    """How many bars train_step draws for a device (so its panel is sized to them)."""
    return len(_train_pairs(df))


def train_step(device: str, df: pd.DataFrame, axes: np.ndarray) -> None:
    """One horizontal bar per step of ours (model, exec mode, provider, K) present, from 1 to
    its time over BatchNorm's on a log axis (a few % and the reference's 10× both readable,
    and a step faster than BatchNorm's goes left), the overhead printed beside it."""
    ax = axes[0]
    rows = _train_pairs(df)
    if rows.empty:
        _empty(ax, "no MN rows with a BatchNorm row to compare against")
        return
    # Models apart by a gap; the first row on top.
    new_model = (rows["model"] != rows["model"].shift()).cumsum().to_numpy()
    y = np.arange(len(rows)) + 0.6 * (new_model - 1)
    exempt = (rows["exec"] == grid.GRAPH_EXEC).to_numpy()
    for provider, (colour, _) in PROVIDERS.items():
        mine = (rows["provider"] == provider).to_numpy()
        if not mine.any():
            continue
        bars = ax.barh(y[mine], rows["ratio"][mine] - 1, 0.7, left=1.0, color=colour,
                       label=provider)  # fmt: skip
        for bar, graphs in zip(bars, exempt[mine], strict=True):
            if graphs:
                bar.set_hatch("///")
                bar.set_edgecolor("white")
    for yi, ratio in zip(y, rows["ratio"], strict=True):
        right = ratio >= 1
        ax.text(ratio * (1.03 if right else 1 / 1.03), yi, _overhead_text(ratio), va="center",
                ha="left" if right else "right", fontsize=8)  # fmt: skip
    labels = [
        f"{r['model']} {r['exec']}, {r['provider']}" + ("" if pd.isna(r["K"]) else f" K={r['K']:g}")
        for _, r in rows.iterrows()
    ]
    ax.set_yticks(y, labels)
    for tick, graphs in zip(ax.get_yticklabels(), exempt, strict=True):
        if graphs:
            tick.set_fontstyle("italic")
    ax.axvline(1.0, color=NATIVE_COLOUR["batch_norm"], lw=0.8)
    if judged(device):  # named in the legend alone: a word beside it has no room at 1.05
        ax.axvline(TRAIN_GOAL, color="k", ls="--", lw=1.0, label=TRAIN_GOAL_LABEL)
    if exempt.any():  # a legend entry for the hatching (a patch of no size, at x = 1)
        ax.add_patch(Rectangle((1.0, y[0]), 0, 0, facecolor="0.6", edgecolor="white",
                               hatch="///", label=EXEMPT_LABEL))  # fmt: skip
    low, high = min(rows["ratio"].min(), 1.0), max(rows["ratio"].max(), TRAIN_GOAL)
    ax.set_xscale("log")
    ax.set_xlim(low / 1.25, high * 1.6)  # room for the printed overhead
    ax.set_ylim(y[-1] + 0.7, y[0] - 0.7)  # the first row on top
    ax.set(
        xlabel="step time / BatchNorm's (log; 1 = BatchNorm); printed: overhead",
        title=_train_setting(rows),
    )


def _train_setting(rows: pd.DataFrame) -> str:
    """The batch size and dtype the steps ran at (each value present), and whether the run
    was a quick one (train_step.py --quick: fewer steps, a pipeline check)."""
    batches = ", ".join(f"{float(n):g}" for n in dict.fromkeys(rows["N"].dropna()))
    text = f"N={batches}, {', '.join(dict.fromkeys(rows['dtype'].dropna()))}"
    quick = "run_size" in rows and (rows["run_size"] == "quick").any()
    return text + (", quick run" if quick else "")


LAYER_FIGURES: dict[str, tuple[Callable, int]] = {
    "time_vs_k": (time_vs_k, 2),
    "time_vs_batch": (time_vs_batch, 2),
    "speedup_per_shape": (speedup_per_shape, 2),
    "bandwidth": (bandwidth, 1),
    "memory": (memory, 2),
}
# Devices a figure leaves out where their rows have nothing for it (a row of empty panels
# says less than a line naming them).
KEEP: dict[str, Callable[[pd.DataFrame], bool]] = {"memory": has_memory}
KEEP_NOTE = {"memory": "no peak memory measured"}


def _plain(value: float, _position: object = None) -> str:
    return f"{value:g}"


def _plain_log_ticks(axis: Axis, low: float, high: float) -> None:
    """Plain numbers (0.5, 2, 100; not 5×10⁻¹) at a log axis's ticks, as many as its span
    takes: every 1, 2, 5 within three decades, decades beyond, linear steps within a factor 3."""
    if axis.get_scale() != "log" or not isinstance(axis.get_major_locator(), LogLocator):
        return  # not log, or ticks set by the figure itself
    span = high / low if low > 0 else math.inf
    if span < 3:
        axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    else:
        subs = (1.0, 2.0, 5.0) if span <= 1000 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def _row_legend(row: np.ndarray, texts: dict[str, str] | None = None) -> None:
    """One legend for a row of panels, outside them on the right: every label once, the
    providers first (in PROVIDERS' order), the host-bound marks last; each label shown as
    `texts` words it (LEGEND_TEXT), else as it is; long ones wrapped."""
    found: dict[str, object] = {}
    for ax in row:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, _series_handle(handle))
    first = [label for label in PROVIDERS if label in found]
    last = [label for label in (HOST_BOUND_LABEL, HOST_BOUND_BARS_LABEL) if label in found]
    middle = [label for label in found if label not in first and label not in last]
    entries = {label: found[label] for label in [*first, *middle, *last]}
    if entries:
        texts = texts or {}
        labels = [textwrap.fill(texts.get(label, label), LEGEND_WRAP) for label in entries]
        row[0].figure.legend(list(entries.values()), labels, loc="outside right upper")


def _series_handle(handle: object) -> object:
    """A bar series' legend mark: its colour alone. Matplotlib copies the first bar's, hatch
    included, and a hatch means something of its own (host-bound, or exempt)."""
    if not isinstance(handle, BarContainer) or not handle.patches:
        return handle
    return Rectangle((0, 0), 1, 1, facecolor=handle.patches[0].get_facecolor())


def figure(name: str, runs: dict[str, pd.DataFrame]) -> Figure:
    """Figure `name` (a CAPTIONS key) of each device's rows (layer rows, or training steps for
    train_step), one row of panels each; the caller saves and closes it."""
    if name == "train_step":
        return _figure(name, runs, train_step, 1, lambda df: 1.3 + 0.3 * train_step_rows(df))
    draw, ncols = LAYER_FIGURES[name]
    return _figure(name, runs, draw, ncols)


def _figure(
    name: str,
    runs: dict[str, pd.DataFrame],
    draw: Callable,
    ncols: int,
    heights: Callable[[pd.DataFrame], float] | None = None,
) -> Figure:
    keep = KEEP.get(name)
    shown = {d: df for d, df in runs.items() if keep is None or keep(df)}
    left_out = [d for d in runs if d not in shown]
    with plt.rc_context(STYLE):
        sizes = [heights(df) for df in shown.values()] if heights and shown else None
        empty = f"{', '.join(left_out)}: {KEEP_NOTE[name]}" if left_out else "no data yet"
        fig, axes = _panels(shown, ncols, sizes, empty)
        for row, (device, df) in zip(axes, shown.items(), strict=False):
            draw(device, df, row)
            for ax in row:
                _plain_log_ticks(ax.xaxis, *sorted(ax.get_xlim()))
                _plain_log_ticks(ax.yaxis, *sorted(ax.get_ylim()))
            _row_legend(row, {**LEGEND_TEXT["*"], **LEGEND_TEXT.get(name, {})})
            row[0].figure.suptitle(_title(device), x=0.01, ha="left", fontweight="bold")
        if left_out and shown:
            note = f"Not shown: {', '.join(left_out)} ({KEEP_NOTE[name]})."
            fig.supxlabel(note, x=0.01, ha="left", fontsize=8.5)
        # Wrapped to the figure's width (about 11 characters an inch at 11 pt).
        fig.suptitle(textwrap.fill(CAPTIONS[name], int(fig.get_figwidth() * 11)), fontsize=11)
    return fig


def write_all(
    layer_runs: dict[str, pd.DataFrame], train_runs: dict[str, pd.DataFrame], out_dir: Path
) -> list[Path]:
    """Write every figure file (CAPTIONS' names, .png) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CAPTIONS:
        paths.append(out_dir / f"{name}.png")
        fig = figure(name, train_runs if name == "train_step" else layer_runs)
        fig.savefig(paths[-1], dpi=DPI)
        plt.close(fig)
    return paths
