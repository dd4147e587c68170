"""How the report writes what it shows: values rounded against us, a case in words, markdown
tables, host-bound counts and tags, and the caption of the run (or run in parts) that rows
come from, with how many planned cases have no row and what is known about the run."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from figures import host_bound
from report_data import known_about, numeric

# ---------------------------------- values and tables ----------------------------------


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


def host_tag(row: pd.Series) -> str:
    """ " (host-bound)" after a case whose time is the host's (figures.host_bound)."""
    return " (host-bound)" if host_bound(pd.DataFrame([row])).iloc[0] else ""


def host_count(rows: pd.DataFrame) -> str:
    """How many rows are host-bound; – where none has an issue time (CPU, older runs)."""
    if not numeric(rows, "host_ms_p50").notna().any():
        return "–"
    return str(int(host_bound(rows).sum()))


def int_text(value: float) -> str:
    """A whole number as text; empty where the row lacks it."""
    return "" if pd.isna(value) else str(int(value))


# ------------------------------------ run captions -------------------------------------


def run_caption(df: pd.DataFrame) -> str:
    """Which run the rows come from; for a run in parts, each part on a line of its own."""
    runs = df.sort_values("part_rank", kind="stable") if "part_rank" in df else df
    names = list(dict.fromkeys(runs["run"]))
    if len(names) == 1:
        return _one_run(df) + run_notes_text(df, names)
    parts = [f"- {_one_run(df[df['run'] == name])}" for name in names]
    return "\n".join([
        f"run group of {len(names)} parts (ratios pair rows of the same part only; a case "
        "measured in more than one part counts once, from the later part):", "", *parts
    ]) + run_notes_text(df, names)  # fmt: skip


def run_notes_text(df: pd.DataFrame, names: list[str]) -> str:
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
    missing = cases_without_row(df)
    return f" of {planned} cases planned" + (
        f" (**{missing} without a row**: skipped for time, or failed)" if missing > 0 else ""
    )


def _cases_planned(df: pd.DataFrame) -> int | None:
    """How many cases the run's grid held, where its rows say (None for older runs)."""
    planned = numeric(df, "cases_planned").dropna()
    return None if planned.empty else int(planned.max())


def cases_without_row(df: pd.DataFrame) -> int:
    """How many of the cases the run's grid held have no row (0 where rows do not say); for a
    run group, each part's own count, summed: each part planned its own grid, and one part's
    extra rows must not hide another's missing ones."""
    if "run" in df and df["run"].nunique() > 1:
        return sum(cases_without_row(part) for _, part in df.groupby("run", sort=False))
    planned = _cases_planned(df)
    return 0 if planned is None else max(planned - len(df), 0)
