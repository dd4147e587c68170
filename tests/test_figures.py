"""What the report's figures say, read off their Axes (no pixels): which cases the bandwidth
figure stars as the goal's, the goals drawn where a comparison has one (GPU panels only),
"n/m" where a bar has no measurement, host-bound marks that hide nothing, and labels in plain
words. Hand-made rows, as in test_report_values.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import figures
import matplotlib.pyplot as plt
import report_goals
import report_train
from matplotlib.container import BarContainer

GPU = "NVIDIA H100 80GB HBM3 (hand-made rows)"
BIG = dict(N=128, C=64, H=56, W=56)  # 98 MiB in float32: the goals' "tensors >= 64 MiB"
CIFAR = dict(C=16, H=32, W=32)  # 8 MiB at N=128: no goal on BatchNorm or bandwidth
NAN = float("nan")
NATIVE = dict(provider="native", K=NAN)


def _rows(*rows: dict) -> pd.DataFrame:
    """Layer rows as `report_data.load` returns them: MN of triton at K=2, fwd+bwd, unless a row
    says otherwise."""
    base = dict(op="mode_norm", provider="triton", mode="full", dtype="float32",
                layout="nchw", **BIG, K=2, device=GPU, run="r1", timestamp="2026-01-01",
                ms_p50=1.0, gbps=NAN, copy_gbps=1000.0)  # fmt: skip
    df = pd.DataFrame([{**base, **row} for row in rows])
    df["tensor_bytes"] = df["N"] * df["C"] * df["H"] * df["W"] * 4
    return df.assign(ms_p20=df["ms_p50"], ms_p80=df["ms_p50"])


def _train(*rows: dict) -> pd.DataFrame:
    """Training-step rows: resnet20, eager, triton at K=2, N=128, unless a row says otherwise."""
    base = dict(op="train_step", provider="triton", mode="train_step", dtype="float32",
                layout="nchw", N=128, K=2.0, model="resnet20", exec="eager", run="t1",
                width="1.0", run_size="full", ms_p50=1.0)  # fmt: skip
    return pd.DataFrame([{**base, **row} for row in rows])


def _drawn(draw, df: pd.DataFrame, ncols: int = 2, device: str = GPU) -> list:
    fig, axes = plt.subplots(1, ncols, squeeze=False)
    draw(device, df, axes[0])
    plt.close(fig)
    return list(axes[0])


def _legend(name: str, runs: dict[str, pd.DataFrame]) -> list[str]:
    """The texts of the figure's first row's legend, each on one line."""
    fig = figures.figure(name, runs)
    plt.close(fig)
    legend = fig.subfigs[0].legends[0]
    return [t.get_text().replace("\n", " ") for t in legend.get_texts()]


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def _line(ax, label: str) -> tuple[list[float], list[float]]:
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return list(map(float, line.get_xdata())), list(map(float, line.get_ydata()))


def _collection(ax, gid: str):
    (found,) = [c for c in ax.collections if c.get_gid() == gid]
    return found


# ------------------------------------ bandwidth ----------------------------------------

GOAL_ROWS = (
    dict(gbps=600.0),  # judged: 60%
    dict(layout="nhwc", gbps=650.0),  # judged: 65%
    dict(N=64, H=64, W=64, gbps=400.0),  # exactly 64 MiB: judged, 40%
    dict(N=32, gbps=300.0),  # 24.5 MiB
    dict(K=8, gbps=500.0),
    dict(mode="forward", gbps=700.0),
    dict(op="mode_group_norm", gbps=610.0),
    dict(provider="torch_ops", gbps=100.0),
    dict(exec="cudagraph", gbps=900.0),  # a replay: the replays' goal, not the calls'
    dict(op="batch_norm", **NATIVE, gbps=800.0),
)


def test_goal_cases_are_the_report_goal_selection():
    assert figures.GOAL_BYTES == report_goals.BIG_BYTES
    df = _rows(*GOAL_ROWS)
    (goal,) = [g for g in report_goals.goals(df, GPU) if "copy bandwidth" in g.name]
    assert sorted(figures.goal_cases(df, "triton").index) == sorted(goal.rows.index)


def test_the_goals_are_the_same_in_the_report_the_figures_and_the_training_steps():
    """Written in three places (the report judges them, the figures draw them, the training
    steps measure at the goal's K): one number each."""
    import train_step

    assert figures.BN_GOAL[0] == report_goals.GOAL_MN_OVER_BN
    assert figures.BANDWIDTH_GOAL == 100 * report_goals.GOAL_COPY_FRACTION
    assert figures.SPEEDUP_GOALS["reference"][0] == 1 / report_goals.GOAL_SPEEDUP_REFERENCE
    assert figures.SPEEDUP_GOALS["reference_compiled"][0] == 1 / report_goals.GOAL_SPEEDUP_COMPILED
    assert figures.TRAIN_GOAL == report_goals.GOAL_STEP
    assert train_step.HEADLINE_K == report_train.TRAIN_GOALS
    limits = {g.name: g.limit for g in report_goals.goals(_rows(*GOAL_ROWS), GPU)}
    goal = report_goals
    assert sorted(limits.values()) == sorted([
        goal.GOAL_MN_OVER_BN, goal.GOAL_COPY_FRACTION, goal.GOAL_SPEEDUP_REFERENCE,
        goal.GOAL_SPEEDUP_COMPILED, goal.GOAL_K8_OVER_K1,
    ])  # fmt: skip


def test_bandwidth_figure_stars_exactly_the_goal_cases_and_labels_them():
    """Three of ten cases are the goal's: large stars with their % beside them (rounded down,
    as the report shows them) and a legend entry; every case stays a point of its series."""
    (ax,) = _drawn(figures.bandwidth, _rows(*GOAL_ROWS), ncols=1)
    stars = _collection(ax, "goal_cases")
    mib = lambda n, h, w: n * 64 * h * w * 4 / 2**20  # noqa: E731
    expected = [(mib(128, 56, 56), 60.0), (mib(128, 56, 56), 65.0), (64.0, 40.0)]
    assert sorted(map(tuple, stars.get_offsets().tolist())) == sorted(expected)
    (mn,) = [c for c in ax.collections if c.get_label() == "MN (triton)"]
    assert stars.get_sizes().min() > 5 * mn.get_sizes().max()
    assert len(mn.get_offsets()) == 6  # the stars' three, N=32, K=8, forward: none hidden
    assert figures.GOAL_CASES_LABEL in _labels(ax)
    assert sorted(t.get_text() for t in ax.texts) == ["40.0%", "60.0%", "65.0%"]
    assert _line(ax, "75% of it (goal: MN K=2 fwd+bwd, >= 64 MiB)")[1] == [75.0, 75.0]
    # CPU rows are not judged: no goal line, no stars (ours there is torch_ops).
    cpu = _rows(*GOAL_ROWS).replace({"provider": {"triton": "torch_ops"}})
    (ax,) = _drawn(figures.bandwidth, cpu, ncols=1, device="cpu")
    assert [label for label in _labels(ax) if "goal" in label] == [] and not ax.texts


def test_bandwidth_figure_rings_host_bound_points_closely():
    """A ring hugs a host-bound point (it covered its neighbours at 6× the point's area);
    a host-bound star says so in its label instead of a ring around it."""
    df = _rows(
        dict(gbps=600.0, host_ms_p50=0.9),  # a goal case, host-bound
        dict(N=32, gbps=300.0, host_ms_p50=0.9),
        dict(N=16, gbps=200.0),
    )
    (ax,) = _drawn(figures.bandwidth, df, ncols=1)
    (mn,) = [c for c in ax.collections if c.get_label() == "MN (triton)"]
    rings = [c for c in ax.collections if c.get_gid() == "host_bound"]
    assert sum(len(c.get_offsets()) for c in rings) == 2
    assert all(c.get_sizes().max() <= 2.5 * mn.get_sizes().max() for c in rings)
    assert [t.get_text() for t in ax.texts] == ["60.0%, host-bound"]


def test_bandwidth_figure_speaks_plainly():
    (ax,) = _drawn(figures.bandwidth, _rows(*GOAL_ROWS), ncols=1)
    assert ax.get_ylabel() == "achieved bandwidth, % of measured copy bandwidth"
    assert GPU in ax.get_title() and "1000 GB/s" in ax.get_title()
    legend = " ".join(_legend("bandwidth", {GPU: _rows(*GOAL_ROWS)}))
    assert "goal cases" in legend and "every case" in legend
    for jargon in ("bytes model", "|x|", "SPEC", "its part's"):
        assert jargon not in legend + ax.get_ylabel() + figures.CAPTIONS["bandwidth"], jargon


# ------------------------------------ speed-up -----------------------------------------


def _speedup_rows(me: str = "triton") -> pd.DataFrame:
    """MN at a CIFAR shape and a big one (the compiled reference at the big one only); MGN
    at the big one with every comparison measured."""
    return _rows(
        dict(provider=me, ms_p50=2.0), dict(provider=me, **CIFAR, ms_p50=1.0),
        dict(provider="reference", ms_p50=20.0), dict(provider="reference", **CIFAR, ms_p50=5.0),
        dict(provider="reference_compiled", ms_p50=4.0),
        dict(op="batch_norm", **NATIVE, ms_p50=1.0),
        dict(op="batch_norm", **NATIVE, **CIFAR, ms_p50=0.5),
        *[dict(op="mode_group_norm", provider=p, ms_p50=t)
          for p, t in ((me, 1.0), ("reference", 10.0), ("reference_compiled", 2.0))],
        dict(op="group_norm", provider="native", K=2, ms_p50=0.5),
    )  # fmt: skip


def test_speedup_figure_writes_nm_where_a_bar_was_not_measured():
    """No compiled reference at the CIFAR shape: "n/m" where its bar would be (on the log
    axis an empty bar looks like a ratio of 1), and the axis says what n/m means."""
    mn, mgn = _drawn(figures.speedup_per_shape, _speedup_rows())
    (nm,) = [t for t in mn.texts if t.get_text() == figures.NOT_MEASURED]
    assert nm.get_position() == (0.0, 1.0)  # CIFAR first; the compiled bar is the middle one
    assert "n/m: not measured" in mn.get_xlabel()
    assert not mgn.texts and "n/m" not in mgn.get_xlabel()


def test_speedup_figure_draws_each_comparisons_goal_as_its_ratio():
    """Bars show our time over theirs, so "≥ 5× faster" is a line at 0.2 and "≥ 1.5×" at
    1/1.5; the BatchNorm goal (≤ 1.10, MN, tensors ≥ 64 MiB) only over the big shape of
    the MN panel; none on CPU, where nothing is judged."""
    mn, mgn = _drawn(figures.speedup_per_shape, _speedup_rows())
    for ax in (mn, mgn):
        for provider, (limit, label) in figures.SPEEDUP_GOALS.items():
            assert _line(ax, label)[1] == pytest.approx([limit, limit]), provider
            assert _line(ax, label)[0] == [0, 1]  # across the panel (axes fraction)
    assert figures.SPEEDUP_GOALS["reference"][0] == pytest.approx(0.2)
    assert figures.SPEEDUP_GOALS["reference_compiled"][0] == pytest.approx(1 / 1.5)
    xs, ys = _line(mn, figures.BN_GOAL[1])
    assert xs[:2] == pytest.approx([0.55, 1.45]) and ys[:2] == [1.10, 1.10]  # shape 1 only
    assert all(np.isnan(xs[2:]))
    assert figures.BN_GOAL[1] not in _labels(mgn)  # no goal on MGN / GroupNorm
    for ax in _drawn(figures.speedup_per_shape, _speedup_rows("torch_ops"), device="cpu"):
        assert not [label for label in _labels(ax) if label.startswith("goal")]


def test_speedup_figure_hatches_host_bound_bars():
    """Our time at the CIFAR shape is host-bound: its every bar is hatched; at the big shape
    only the reference's (its own time host-bound). The legend names the hatching and
    shows each series by its colour alone."""
    df = _speedup_rows()
    df["host_ms_p50"] = NAN
    df.loc[(df["C"] == 16) & (df["provider"] == "triton"), "host_ms_p50"] = 0.9
    df.loc[(df["C"] == 64) & (df["provider"] == "reference"), "host_ms_p50"] = 19.0
    mn, _ = _drawn(figures.speedup_per_shape, df)
    bars = {c.get_label(): [p.get_hatch() for p in c.patches]
            for c in mn.containers if isinstance(c, BarContainer)}  # fmt: skip
    assert bars == {"reference": ["//", "//"], "reference_compiled": [None, None],
                    "BatchNorm2d": ["//", None]}  # fmt: skip
    assert _labels(mn).count(figures.HOST_BOUND_BARS_LABEL) == 1
    fig = figures.figure("speedup_per_shape", {GPU: df})
    plt.close(fig)
    legend = fig.subfigs[0].legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    marks = dict(zip(texts, legend.legend_handles, strict=True))
    assert marks["reference"].get_hatch() is None


# ------------------------------------ time against K -----------------------------------


def test_legends_say_which_groupnorm_and_what_torch_ops_is():
    """The dashed GroupNorm of the K sweep is GroupNorm(K, C), GroupNorm(1, C) where K does
    not divide C; the batch sweep's has 2 groups; torch_ops is mn_triton without Triton."""
    gn = dict(op="group_norm", provider="native")
    df = _rows(
        *[dict(op="mode_group_norm", K=k, ms_p50=1.0) for k in (1, 2, 6)],
        *[dict(op="mode_group_norm", provider="torch_ops", K=k, ms_p50=2.0) for k in (1, 2, 6)],
        *[dict(**gn, K=k, ms_p50=0.5) for k in (1, 2)],
    )
    by_k = _legend("time_vs_k", {GPU: df})
    assert "GroupNorm (K groups; 1 where K does not divide C)" in by_k
    assert "torch_ops (mn_triton without Triton)" in by_k
    by_batch = _legend("time_vs_batch", {GPU: df})
    assert "GroupNorm (2 groups; 1 where 2 does not divide C)" in by_batch
    # The series keep their plain names: the tests and the code find them by these.
    _, mgn = _drawn(figures.time_vs_k, df)
    assert {line.get_label() for line in mgn.lines} >= {"GroupNorm"}


# ------------------------------------ training step ------------------------------------


def test_train_step_names_the_goal_in_the_legend_only_and_not_on_cpu():
    df = _train(dict(**NATIVE, ms_p50=8.0), dict(ms_p50=8.5))
    (ax,) = _drawn(figures.train_step, df, ncols=1)
    assert _line(ax, figures.TRAIN_GOAL_LABEL)[0] == [1.05, 1.05]
    assert not [t for t in ax.texts if "goal" in t.get_text()]
    cpu = _train(dict(**NATIVE, ms_p50=8.0), dict(provider="torch_ops", ms_p50=8.5))
    (ax,) = _drawn(figures.train_step, cpu, ncols=1, device="cpu")
    assert figures.TRAIN_GOAL_LABEL not in _labels(ax)
    assert [line.get_xdata()[0] for line in ax.lines] == [1.0]  # BatchNorm's only


def test_train_step_titles_name_batch_size_and_dtype():
    df = _train(dict(**NATIVE, ms_p50=8.0), dict(ms_p50=8.5))
    (ax,) = _drawn(figures.train_step, df, ncols=1)
    assert ax.get_title() == "N=128, float32"
    quick = _train(dict(**NATIVE, ms_p50=8.0), dict(provider="torch_ops", ms_p50=8.5))
    quick = quick.assign(N=32, run_size="quick")
    (ax,) = _drawn(figures.train_step, quick, ncols=1, device="cpu")
    assert ax.get_title() == "N=32, float32, quick run"


# ------------------------------------ memory, captions ---------------------------------


def test_memory_figure_says_what_its_ratio_is_in_plain_words():
    df = _rows(
        dict(peak_mem_mb=10.0), dict(op="batch_norm", **NATIVE, peak_mem_mb=5.0),
        dict(op="mode_group_norm", peak_mem_mb=10.0),
        dict(op="group_norm", provider="native", K=2, peak_mem_mb=5.0),
    )  # fmt: skip
    mn, mgn = _drawn(figures.memory, df)
    assert mn.get_ylabel() == "peak extra memory ÷ BatchNorm2d's"
    assert mgn.get_ylabel() == "peak extra memory ÷ GroupNorm's"


@pytest.mark.parametrize("name", list(figures.CAPTIONS))
def test_captions_are_wrapped_to_their_figure(name):
    fig = figures.figure(name, {})
    plt.close(fig)
    lines = fig.get_suptitle().split("\n")
    assert " ".join(lines) == figures.CAPTIONS[name]
    assert max(map(len, lines)) <= fig.get_figwidth() * 11


def test_star_labels_round_down_but_not_on_float_noise():
    assert figures._percent_down(12.78) == "12.7%"
    assert figures._percent_down(28.999999999999996) == "29.0%"  # 0.29 · 100


# ------------------------ from the mutation audit (2026-12-06, evening) ------------------


def _series(ax) -> dict[str, tuple[list[float], list[float]]]:
    """Each provider's errorbar line and each baseline's line, as (x, y) by label."""
    lines = {c.get_label(): c.lines[0] for c in ax.containers if hasattr(c, "has_yerr")}
    lines.update({ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")})
    return {k: (list(map(float, v.get_xdata())), list(map(float, v.get_ydata())))
            for k, v in lines.items()}  # fmt: skip


BN = dict(op="batch_norm", **NATIVE)


def test_times_sizes_and_ratios_are_drawn_on_log_axes():
    """Times span decades (K=1 to 8, N=4 to 256, CIFAR to ImageNet), so do tensor sizes and
    memory ratios: every such axis is logarithmic, as the tick formatter assumes."""
    df = _rows(
        *[dict(K=k, ms_p50=k, peak_mem_mb=10.0) for k in (1, 2, 4)],
        *[dict(N=n, ms_p50=n / 32) for n in (4, 8, 16)],
        dict(**BN, ms_p50=0.5, peak_mem_mb=5.0),
    ).assign(gbps=500.0)  # fmt: skip
    by_k, _ = _drawn(figures.time_vs_k, df)
    assert by_k.get_yscale() == "log"
    by_batch, _ = _drawn(figures.time_vs_batch, df)
    assert (by_batch.get_xscale(), by_batch.get_yscale()) == ("log", "log")
    (bandwidth,) = _drawn(figures.bandwidth, df, ncols=1)
    assert bandwidth.get_xscale() == "log"
    memory, _ = _drawn(figures.memory, df)
    assert (memory.get_xscale(), memory.get_yscale()) == ("log", "log")


def test_time_vs_k_draws_calls_not_graph_replays():
    """A K=2 replay (a tenth of the call's time) stays out of the call's curve."""
    df = _rows(*[dict(K=k, exec="eager", ms_p50=k) for k in (1, 2, 4)],
               dict(K=2, exec="cudagraph", ms_p50=0.2))  # fmt: skip
    mn, _ = _drawn(figures.time_vs_k, df)
    assert _series(mn)["triton"] == ([1, 2, 4], [1, 2, 4])


def test_time_error_bars_run_from_p20_to_p80():
    df = _rows(*[dict(K=k, ms_p50=k) for k in (1, 2)]).assign(ms_p20=[0.8, 1.9], ms_p80=[1.5, 2.2])
    mn, _ = _drawn(figures.time_vs_k, df)
    (bars,) = [c for c in mn.containers if c.get_label() == "triton"]
    segments = bars.lines[2][0].get_segments()
    spans = [float(v) for s in segments for v in (s[0][1], s[1][1])]
    assert spans == pytest.approx([0.8, 1.5, 1.9, 2.2])


def test_the_k_sweep_is_the_point_with_the_most_k_values_then_the_later_part():
    """A large point measured at K=1, 2 only loses to a smaller one swept over five K values;
    two parts that swept the same point equally: the later part's curve."""
    df = _rows(
        *[dict(K=k, ms_p50=10.0 * k) for k in (1, 2)],
        *[dict(N=64, K=k, ms_p50=k) for k in (1, 2, 4, 6, 8)],
    )  # fmt: skip
    mn, _ = _drawn(figures.time_vs_k, df)
    assert _series(mn)["triton"] == ([1, 2, 4, 6, 8], [1, 2, 4, 6, 8])
    assert "N=64" in mn.get_title()
    one, two = dict(run="A-part1", part_rank=0), dict(run="A-part2", part_rank=1)
    parts = _rows(*[dict(**two, K=k, ms_p50=3.0 * k) for k in (1, 2, 4)],
                  *[dict(**one, K=k, ms_p50=k) for k in (1, 2, 4)])  # fmt: skip
    mn, _ = _drawn(figures.time_vs_k, parts)
    assert _series(mn)["triton"] == ([1, 2, 4], [3, 6, 12])


def test_bandwidth_figure_draws_mgn_beside_mn():
    (ax,) = _drawn(figures.bandwidth, _rows(*GOAL_ROWS), ncols=1)
    (mgn,) = [c for c in ax.collections if c.get_label() == "MGN (triton)"]
    assert [float(y) for _, y in mgn.get_offsets()] == pytest.approx([61.0])


def test_speedup_bars_take_the_later_part_whatever_the_rows_order():
    """A shape measured in both parts (part 2 at 3× part 1's times and ratios): its bar is the
    later part's ratio even where part 2's rows come first in the frame."""
    one, two = dict(run="A-part1", part_rank=0), dict(run="A-part2", part_rank=1)
    df = _rows(
        dict(**two, ms_p50=6.0), dict(**two, **BN, ms_p50=1.0),
        dict(**one, ms_p50=1.0), dict(**one, **BN, ms_p50=1.0),
    )  # fmt: skip
    mn, _ = _drawn(figures.speedup_per_shape, df)
    (bars,) = [c for c in mn.containers if c.get_label() == "BatchNorm2d"]
    assert [p.get_y() + p.get_height() for p in bars.patches] == [6.0]


def test_cpu_panels_are_titled_a_pipeline_check_and_left_out_of_memory():
    """The cpu row says it is no GPU speed; the memory figure leaves a device without peak
    memory (CPU) out and names it below, rather than drawing empty panels for it."""
    gpu = _rows(dict(peak_mem_mb=10.0), dict(**BN, peak_mem_mb=5.0))
    cpu = _rows(dict(provider="torch_ops"), dict(**BN)).assign(device="cpu")
    fig = figures.figure("time_vs_k", {GPU: gpu, "cpu": cpu})
    plt.close(fig)
    assert [f.get_suptitle() for f in fig.subfigs] == [GPU, "cpu: pipeline check, not GPU speed"]
    fig = figures.figure("memory", {GPU: gpu, "cpu": cpu})
    plt.close(fig)
    assert [f.get_suptitle() for f in fig.subfigs] == [GPU]
    assert fig.get_supxlabel() == "Not shown: cpu (no peak memory measured)."


def test_bandwidth_figure_draws_a_goal_case_without_a_copy_bandwidth_as_no_star():
    """A part that measured no copy bandwidth has no share of it: the report's goal counts
    such a case as no data, and the figure draws it as no star (it raised ValueError on
    the NaN label, and report.py with it, before any README was written)."""
    df = _rows(dict(gbps=600.0), dict(N=64, H=64, W=64, gbps=700.0, copy_gbps=NAN))
    (ax,) = _drawn(figures.bandwidth, df, ncols=1)
    assert _collection(ax, "goal_cases").get_offsets().tolist() == [[98.0, 60.0]]
    assert [t.get_text() for t in ax.texts] == ["60.0%"]
    (ax,) = _drawn(figures.bandwidth, df.assign(copy_gbps=NAN), ncols=1)
    assert not [c for c in ax.collections if c.get_gid() == "goal_cases"] and not ax.texts


def test_bandwidth_figure_draws_batchnorm_beside_ours():
    (ax,) = _drawn(figures.bandwidth, _rows(*GOAL_ROWS), ncols=1)
    (bn,) = [c for c in ax.collections if c.get_label().startswith("BatchNorm2d: all modes")]
    assert [float(y) for _, y in bn.get_offsets()] == pytest.approx([80.0])


def test_memory_pairs_each_case_with_the_baseline_of_its_own_part():
    """Ours measured in part 1 only (10 MB, BatchNorm 5 MB there); BatchNorm again in part 2
    (20 MB): one point, 2×, never also 0.5× against part 2's."""
    one, two = dict(run="A-part1", part_rank=0), dict(run="A-part2", part_rank=1)
    df = _rows(dict(**one, peak_mem_mb=10.0), dict(**one, **BN, peak_mem_mb=5.0),
               dict(**two, **BN, peak_mem_mb=20.0))  # fmt: skip
    mn, _ = _drawn(figures.memory, df)
    (dots,) = [c for c in mn.collections if len(c.get_offsets())]
    assert [float(y) for _, y in dots.get_offsets()] == [2.0]
    assert _series(mn)["triton"][1] == [2.0]


def test_train_step_axis_reaches_past_the_slowest_step():
    """The reference's 10× step: its bar and printed overhead lie inside the axis."""
    df = _train(
        dict(**NATIVE, ms_p50=8.0), dict(ms_p50=8.5), dict(provider="reference", ms_p50=80.0)
    )
    (ax,) = _drawn(figures.train_step, df, ncols=1)
    low, high = ax.get_xlim()
    assert low < 1.0 and high > 10.0 * 1.03


def test_a_batch_sweep_with_a_break_says_what_it_means():
    df = _rows(*[dict(N=n, ms_p50=n) for n in (4, 8, 32)])  # the grid's 16 not measured
    mn, _ = _drawn(figures.time_vs_batch, df)
    assert figures.GAP_NOTE in mn.get_xlabel()
    whole, _ = _drawn(figures.time_vs_batch, _rows(*[dict(N=n, ms_p50=n) for n in (4, 8)]))
    assert figures.GAP_NOTE not in whole.get_xlabel()
