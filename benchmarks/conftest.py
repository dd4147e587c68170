"""Layer benchmark suite setup: options, the grid's parametrisation, run-wide measurements.

Run with `pytest benchmarks/test_layers.py --benchmark-only [--grid smoke|small|full]`. The
Triton kernels run for real here (TRITON_INTERPRET is deliberately not set): on a CPU the
`triton` provider is left out and mn_triton runs its torch-op path.
"""

from __future__ import annotations

import os
import re
import time

import grid
import layers
import measure
import pytest
import records
import torch

_STARTED = pytest.StashKey[float]()
_RUN_ID = pytest.StashKey[str]()
_SELECTED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mn-triton layer benchmarks")
    group.addoption(
        "--grid",
        default="auto",
        choices=grid.GRIDS,
        help="auto: full on CUDA, small on CPU; core and extra: the full grid in two halves; "
        "smoke: a few cases for tests",
    )
    group.addoption(
        "--bench-device", default="auto", help="auto (cuda if available, else cpu), cpu or cuda[:i]"
    )
    group.addoption(
        "--time-budget",
        type=float,
        default=0.0,
        help="seconds after which cases still to run are skipped (0: no limit)",
    )
    group.addoption(
        "--no-compile", action="store_true", help="leave out the reference_compiled provider"
    )
    group.addoption(
        "--run-id",
        default=os.environ.get("MN_RUN_ID"),
        help="names this run's CSV file and fills its run_id column (default: time)",
    )


# A compiled-reference case may compile for tens of seconds (torch.compile of the reference's
# forward and backward, then inductor's kernels), so one starts only with the time to finish:
# COMPILE_FIRST_RESERVE_S before any has run, then COMPILE_MARGIN × the slowest so far (the
# first compile on a fresh machine is the slowest; later ones reuse inductor's caches).
COMPILE_FIRST_RESERVE_S = 45.0
COMPILE_MARGIN = 1.25
_SLOWEST_COMPILED = pytest.StashKey[float]()


def compile_reserve_s(slowest_s: float | None) -> float:
    """Seconds of budget a compiled case needs left to start."""
    return COMPILE_FIRST_RESERVE_S if slowest_s is None else COMPILE_MARGIN * slowest_s


def _case(item: pytest.Item) -> grid.Case | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("case") if callspec is not None else None


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's, which reads --benchmark-json
def pytest_configure(config: pytest.Config) -> None:
    """The run's id (--run-id, else the time), and where pytest-benchmark keeps its JSON
    unless --benchmark-json says: raw/pytest-benchmark-<run id>.json beside the data folder,
    so that every run keeps it (as tools/bench.sh and gpu_run.sh ask for explicitly)."""
    run_id = config.getoption("run_id", None) or records.new_run_id()
    config.stash[_RUN_ID] = run_id
    if config.getoption("benchmark_disable", False) or config.getoption("benchmark_json", 1):
        return  # benchmarks off, or a path given (or pytest-benchmark missing)
    raw = records.DATA_DIR.parent / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    config.option.benchmark_json = raw / f"pytest-benchmark-{run_id}.json"


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have taken their cases out
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """How many grid cases this run selected: its rows' cases_planned, which the report holds
    the rows against (the whole grid, where -k picked a few, would count the rest missing)."""
    config.stash[_SELECTED] = sum(_case(item) is not None for item in items)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.perf_counter()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip the cases still to run once the time budget is spent (before any fixture is built,
    so pytest-benchmark does not warn about an unused fixture); rows already written stay."""
    budget = item.config.getoption("time_budget")
    case = _case(item)
    if case is None or budget <= 0:
        return
    left = budget - (time.perf_counter() - item.config.stash[_STARTED])
    if left <= 0:
        pytest.skip(f"time budget of {budget:.0f} s spent")
    reserve = compile_reserve_s(item.config.stash.get(_SLOWEST_COMPILED, None))
    if case.provider == "reference_compiled" and left < reserve:
        pytest.skip(f"{left:.0f} s of the time budget left, {reserve:.0f} s needed to compile")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Note how long the slowest compiled case took, for the reserve of the next ones. Only
    cases that ran to the end count: one that failed fast or was skipped (out of memory)
    says nothing about compile time, and would shrink the reserve."""
    started = time.perf_counter()
    outcome = yield
    case = _case(item)
    if case is not None and case.provider == "reference_compiled" and outcome.excinfo is None:
        took = time.perf_counter() - started
        stash = item.config.stash
        stash[_SLOWEST_COMPILED] = max(stash.get(_SLOWEST_COMPILED, 0.0), took)


def _device(config: pytest.Config) -> torch.device:
    name = config.getoption("bench_device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _cases(config: pytest.Config) -> list[grid.Case]:
    device = _device(config)
    compile_ = not config.getoption("no_compile")
    return grid.cases(config.getoption("grid"), device.type == "cuda", compile_)


def pytest_report_header(config: pytest.Config) -> list[str]:
    device = _device(config)
    lines = [
        f"mn-triton benchmarks: device={measure.device_name(device)}, "
        f"grid={grid.resolve(config.getoption('grid'), device.type == 'cuda')}, "
        f"cases={len(_cases(config))}, time budget={config.getoption('time_budget') or 'none'}"
    ]
    if device.type != "cuda":
        lines.append("triton provider left out: no CUDA device (CPU rows do not speak about speed)")
    if warning := measure.cpu_load_warning(device):
        lines.append(warning)
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = _cases(metafunc.config)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@pytest.fixture(scope="session")
def bench_run(pytestconfig: pytest.Config) -> layers.BenchRun:
    device = _device(pytestconfig)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # (set_device refuses a device without an index)
    layers.configure_compile()
    run_id = pytestconfig.stash[_RUN_ID]
    copy_gbps = measure.copy_bandwidth_gbps(str(device))  # once per run: the physical ceiling
    print(f"\ncopy bandwidth on {measure.device_name(device)}: {copy_gbps:.1f} GB/s")
    return layers.BenchRun(
        device=device,
        settings=layers.settings_for(device),
        copy_gbps=copy_gbps,
        run_id=run_id,
        csv_name=f"layers-{_slug(measure.device_name(device))}-{run_id}",
        cases_planned=pytestconfig.stash.get(_SELECTED, len(_cases(pytestconfig))),
    )
