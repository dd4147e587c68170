"""The numbers behind the report, value by value: percentiles, bandwidth, the goals' ratios
and verdicts, which run is the latest. test_benchmarks.py runs the pipeline end to end; here
each computation is checked on a few hand-made rows whose right answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import measure  # noqa: E402
import records  # noqa: E402
import report  # noqa: E402

GPU = "NVIDIA H100 80GB HBM3 (hand-made rows)"
BIG = dict(N=128, C=64, H=56, W=56)  # 98 MiB in float32: the goals' "tensors >= 64 MiB"


def _rows(*rows: dict) -> pd.DataFrame:
    """Rows as `report.load` returns them: one MN point at K=2 unless a row says otherwise."""
    base = dict(op="mode_norm", provider="triton", mode="full", dtype="float32",
                layout="nchw", **BIG, K=2, device=GPU, run="r1", timestamp="2026-01-01",
                gbps=float("nan"), copy_gbps=float("nan"))  # fmt: skip
    df = pd.DataFrame([{**base, **row} for row in rows])
    df["tensor_bytes"] = df["N"] * df["C"] * df["H"] * df["W"] * 4
    return df


def _goal(df: pd.DataFrame, words: str) -> report.Goal:
    (goal,) = [g for g in report.goals(df, GPU) if words in g.name]
    return goal


def test_percentiles_interpolate_between_samples():
    assert measure._percentile([0.0, 10.0], 0.2) == pytest.approx(2.0)
    assert measure._percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert measure._percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.8) == pytest.approx(4.2)
    assert measure._percentile([7.0], 0.2) == 7.0


def test_bytes_model_and_bandwidth_from_the_median():
    assert [measure.bytes_min(10, 4, m) for m in ("forward", "eval", "backward", "full")] == [
        120, 120, 200, 320
    ]  # fmt: skip
    timing = measure.Timing(ms_p20=1.0, ms_p50=2.0, ms_p80=3.0, peak_mem_mb=None, reps=5)
    row = records.make_row(op="mode_norm", provider="triton", mode="full", dtype="float32",
                           layout="nchw", shape=(1, 1, 1, 1), k=2, timing=timing,
                           bytes_min=2_000_000_000, copy_gbps=1.0, device="cpu")  # fmt: skip
    assert row["gbps"] == pytest.approx(1000.0)  # 2 GB in the median's 2 ms


def test_goals_ratio_and_copy_fraction_judged_at_their_limits():
    bn = dict(op="batch_norm", provider="native", K="", ms_p50=1.0)
    at_limits = _rows(dict(ms_p50=1.10, gbps=750.0, copy_gbps=1000.0), bn)
    ratio = _goal(at_limits, "BatchNorm2d")
    fraction = _goal(at_limits, "copy bandwidth")
    assert ratio.worst() == pytest.approx(1.10) and ratio.verdict(True) == "met"
    assert fraction.worst() == pytest.approx(0.75) and fraction.verdict(True) == "met"
    assert fraction.verdict(False) == "not judged (CPU)"
    beyond = _rows(dict(ms_p50=1.1001, gbps=749.0, copy_gbps=1000.0), bn)
    assert _goal(beyond, "BatchNorm2d").verdict(True) == "**MISSED**"
    assert _goal(beyond, "copy bandwidth").verdict(True) == "**MISSED**"
    small = _rows(dict(N=4, ms_p50=5.0), {**bn, "N": 4})  # under 64 MiB: not judged
    assert _goal(small, "BatchNorm2d").verdict(True) == "no data"


def test_speedups_and_k_ratio():
    df = _rows(
        dict(K=1, ms_p50=1.0), dict(K=8, ms_p50=2.0),
        dict(K=8, provider="reference", ms_p50=20.0),
        dict(K=8, provider="reference_compiled", ms_p50=3.0),
    )  # fmt: skip
    assert report.k8_over_k1(df, "triton")["ratio"].tolist() == [2.0]
    assert _goal(df, "K=8 / time at K=1").verdict(True) == "**MISSED**"
    assert _goal(df, "eager reference").worst() == pytest.approx(10.0)  # 20 ms / 2 ms
    assert _goal(df, "torch.compile").worst() == pytest.approx(1.5)


def test_mode_group_norm_pairs_with_the_group_norm_measured_for_it():
    """GroupNorm with K groups where K divides C, else with one group (the suite's rule)."""
    df = _rows(
        dict(op="mode_group_norm", C=6, K=4, ms_p50=2.0),
        dict(op="mode_group_norm", C=6, K=2, ms_p50=3.0),
        dict(op="group_norm", provider="native", C=6, K=1, ms_p50=1.0),
        dict(op="group_norm", provider="native", C=6, K=2, ms_p50=0.5),
    )  # fmt: skip
    mgn = {"op": "mode_group_norm", "provider": "triton"}
    paired = report.pair(df, mgn, {"op": "group_norm"}, match="groups")
    assert sorted(zip(paired["K"], paired["ratio"], strict=True)) == [(2, 6.0), (4, 2.0)]


def test_latest_run_per_device_and_cpu_last():
    df = _rows(
        dict(run="new", timestamp="2026-02-01", ms_p50=2.0),
        dict(run="old", timestamp="2026-01-01", ms_p50=1.0),
        dict(run="cpu-run", device="cpu", provider="torch_ops", ms_p50=9.0),
    )  # fmt: skip
    runs = report.latest_runs(df)
    assert list(runs) == [GPU, "cpu"]
    assert runs[GPU]["run"].unique().tolist() == ["new"]


def test_shown_values_are_rounded_against_us():
    assert report.fmt(1.1001, at_most=True, unit="x") == "1.101x"
    assert report.fmt(0.7499, at_most=False, percent=True) == "74.9%"
    assert report.fmt(float("nan")) == "–"
