"""benchmarks/gpu_run.sh, dry: every stage's command, with a stand-in `python3` that records its
arguments. The script has a single try on a lent GPU, inside a device budget; what it asks of
the suites (grid names, marks, the training benchmark's flags) is checked here against the
real parsers, and what it leaves in $OUT against the device tool's limits (at most 8 files).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_benchmarks import _load_benchmark

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_run.sh"

# Appends its argument count, its arguments and the variables of ENV_VARS (the two that part
# `traced` sets first), NUL-separated, to $CALLS, in one write: calls run in the background side
# by side, and two appends per call (to two files) interleaved, pairing a call with another's
# variables. With FAIL_PREFLIGHT=1 it fails the preflight check (a `-c` program), with
# FAIL_TESTS=1 every `-m pytest tests` run (saying why on stderr); a call whose arguments match
# the regular expression $SLEEP_ON sleeps $SLEEP_S seconds instead (a stage that overruns).
ENV_VARS = (
    "MN_TRITON_TRACE_KERNELS", "MN_REPORT_DATA", "MN_RUN_ID", "MN_GIT_SHA", "TRITON_INTERPRET",
    "PYTHONUNBUFFERED", "PYTHONPATH",
)  # fmt: skip
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\0' "$#" "$@" ENV_VALUES >> "$CALLS"
if [ -n "${SLEEP_ON:-}" ] && [[ "$*" =~ $SLEEP_ON ]]; then exec sleep "$SLEEP_S"; fi
if [ "${FAIL_PREFLIGHT:-0}" = 1 ] && [ "$1" = -c ]; then exit 1; fi
if [ "${FAIL_TESTS:-0}" = 1 ] && [ "$1 $2 $3" = "-m pytest tests" ]; then
    echo "E   the fake GPU tests failed" >&2; exit 1
fi
""".replace("ENV_VALUES", " ".join(f'"${{{v}-unset}}"' for v in ENV_VARS))


def _dry_run(
    tmp_path: Path,
    *args: str,
    fail_preflight: bool = False,
    fail_tests: bool = False,
    run_id: str | None = "dry",
    **limits: str,
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run a copy of the script in an empty tree, with the fake python first on PATH."""
    tree, bin_dir, out = tmp_path / "tree", tmp_path / "bin", tmp_path / "out"
    (tree / "benchmarks").mkdir(parents=True)
    (tree / "benchmarks" / "gpu_run.sh").write_text(SCRIPT.read_text())
    bin_dir.mkdir()
    fake = bin_dir / "python3"  # what the script runs (PYTHON unset)
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ENV_VARS + ("PYTHON",)},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "OUT": str(out),
        **({} if run_id is None else {"MN_RUN_ID": run_id}),
        "FAIL_PREFLIGHT": "1" if fail_preflight else "0",
        "FAIL_TESTS": "1" if fail_tests else "0",
        **limits,
    }
    proc = subprocess.run(
        ["bash", str(tree / "benchmarks" / "gpu_run.sh"), *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    return proc, [args for args, _ in _records(calls)]


def _records(calls: Path) -> list[tuple[list[str], tuple[str, str]]]:
    """Per recorded call, in order: its arguments and (MN_TRITON_TRACE_KERNELS,
    MN_REPORT_DATA)."""
    return [(args, (env["MN_TRITON_TRACE_KERNELS"], env["MN_REPORT_DATA"]))
            for args, env in _records_with_env(calls)]  # fmt: skip


def _records_with_env(calls: Path) -> list[tuple[list[str], dict[str, str]]]:
    """Per recorded call, in order: its arguments and the values of ENV_VARS ("unset")."""
    fields = calls.read_text().split("\0")[:-1] if calls.exists() else []
    recorded = []
    while fields:
        count = int(fields.pop(0))
        env = dict(zip(ENV_VARS, fields[count : count + len(ENV_VARS)], strict=True))
        recorded.append((fields[:count], env))
        del fields[: count + len(ENV_VARS)]
    return recorded


def _environments(tmp_path: Path) -> list[tuple[str, str]]:
    """Per recorded call, in order: its (MN_TRITON_TRACE_KERNELS, MN_REPORT_DATA)."""
    return [env for _, env in _records(tmp_path / "calls.txt")]


def _option(call: list[str], name: str) -> str:
    """The value of option `name` in `call`, given as `name value` or `name=value`."""
    for i, arg in enumerate(call):
        if arg == name:
            return call[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {call}")


def _stages(calls: list[list[str]]) -> dict[str, list[str]]:
    """The recorded calls by what they run."""
    stages = {}
    for call in calls:
        if call[0] == "-c" and call[1].startswith("import xdist"):
            stages["xdist check"] = call
        elif call[0] == "-c":
            stages["preflight"] = call
        elif call[:3] == ["-m", "pytest", "tests"]:
            stages[f"tests: {_option(call[2:], '-m')}"] = call
        elif call[:3] == ["-m", "pytest", "benchmarks/test_layers.py"]:
            stages["layers"] = call
        elif "--warm-compile" in call:
            stages.setdefault("compile warm-up", []).append(call)
        else:
            stages[Path(call[0]).stem] = call
    return stages


EXPECTED = {
    "all": {
        "preflight", "warm_kernels", "compile warm-up", "tests: gpu and not slow",
        "tests: gpu and slow", "layers", "train_step", "step_profile", "host_overhead", "report",
    },
    "1": {"preflight", "warm_kernels", "tests: gpu and not slow", "layers", "train_step",
          "step_profile", "report"},
    "2": {"preflight", "warm_kernels", "compile warm-up", "tests: gpu and slow", "layers",
          "train_step", "host_overhead", "report"},
}  # fmt: skip
GRID = {"all": "full", "1": "core", "2": "extra"}
EXECS = {"all": ["eager", "compiled", "cudagraph"], "1": ["eager"], "2": ["compiled", "cudagraph"]}
# What one call may take: the device tool's limit of 600 s, less start-up and transfers; the
# two parts together within a device budget of 900 s with a start-up of up to 4 minutes.
CALL_LIMIT_S = {"all": 560, "1": 310, "2": 310}


def _warm_wait_s(stdout: str) -> int:
    """How much longer than the tests' limit the layer grid may wait for the kernel warm-up."""
    marker = "== kernel warm-up wait (until its deadline: the tests' limit + "
    (line,) = [line for line in stdout.splitlines() if line.startswith(marker)]
    return int(line[len(marker) :].split(" s)")[0])


@pytest.mark.parametrize("part", ["all", "1", "2"])
def test_stages_and_their_arguments(part, tmp_path, monkeypatch):
    proc, calls = _dry_run(tmp_path, *([] if part == "all" else [part]))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stages = _stages(calls)
    assert set(stages) - {"xdist check"} == EXPECTED[part]
    assert calls[0] == stages["preflight"]  # first, before anything spends device time
    assert "uses_kernels" in stages["preflight"][1] and "backward" in stages["preflight"][1]
    run_id = "dry" if part == "all" else f"dry-part{part}"
    assert f"== run {run_id} (part {part}, python3)" in proc.stdout
    # ... the id every process writes into its rows (a part's, not the one given).
    run_ids = {env["MN_RUN_ID"] for _, env in _records_with_env(tmp_path / "calls.txt")}
    assert run_ids == {run_id}

    layers = stages["layers"]
    grid = _load_benchmark("grid", monkeypatch)
    assert _option(layers, "--grid") == GRID[part] and GRID[part] in grid.GRIDS
    assert "--benchmark-only" in layers
    assert _option(layers, "--benchmark-json") == f"reports/raw/pytest-benchmark-{run_id}.json"

    # The GPU tests run in several processes where pytest-xdist is there (the fake python
    # says it is): 6 for the fast tests, 3 for the slow ones beside part 2's warm-ups, 7
    # (one per test) where they run alone at the end of `all`.
    slow_jobs = "7" if part == "all" else "3"
    for marks, jobs in (("gpu and not slow", "6"), ("gpu and slow", slow_jobs)):
        if f"tests: {marks}" in stages:
            assert _option(stages[f"tests: {marks}"], "-n") == jobs

    # The kernel warm-up compiles what the layer grid and the training steps will launch.
    warm = stages["warm_kernels"]
    assert _option(warm, "--grid") == GRID[part]
    assert set(_option(warm, "--models").split(",")) == {"lenet", "resnet20", "resnet56"}
    assert int(_option(warm, "--jobs")) >= 2
    # ... and the host-overhead stage's tiny shapes and compiled training steps, where
    # those run.
    assert ("--host-overhead" in warm) == ("host_overhead" in stages)
    assert ("--compiled-steps" in warm) == ("compiled" in EXECS[part])
    assert calls.index(warm) < calls.index(layers)
    assert "== kernel warm-up wait (until its deadline: the tests' limit + " in proc.stdout

    train_step = _load_benchmark("train_step", monkeypatch)
    args = train_step.parse_args(stages["train_step"][1:])
    assert train_step.execs_from(args, torch.device("cuda")) == EXECS[part]
    assert not args.quick and args.max_seconds > 0

    # Every compiled variant the timed stage runs is compiled ahead, one process each, at the
    # timed run's settings (batch, width), before the layer grid.
    timed = train_step.plan(args.models.split(","), EXECS[part], args.compile_reference)
    ahead = []
    for call in stages.get("compile warm-up", []):
        warm_args = train_step.parse_args(call[1:])
        assert warm_args.warm_compile and (warm_args.batch, warm_args.width) == (None, 1.0)
        execs = train_step.execs_from(warm_args, torch.device("cuda"))
        planned = train_step.plan(warm_args.models.split(","), execs)
        ahead += [v for v in planned if v.norm in warm_args.norms.split(",")]
        assert calls.index(call) < calls.index(layers)
    assert len(ahead) == len(set(ahead))
    assert set(ahead) == {v for v in timed if v.exec != "eager"}

    # Each stage's limit, from the log, and the time budgets inside them.
    limits = {}
    for line in proc.stdout.splitlines():
        if line.startswith("== ") and "(limit " in line:
            name = line[3 : line.index(" (limit")]
            limits[name] = int(line.split("(limit ")[1].split(" s)")[0])
    limits["kernel warm-up wait"] = _warm_wait_s(proc.stdout)  # beyond the tests' limit
    assert sum(limits.values()) <= CALL_LIMIT_S[part], limits
    layer_limit = next(v for k, v in limits.items() if k.startswith("layer grid"))
    assert 0 < float(_option(layers, "--time-budget")) <= layer_limit - 20
    train_limit = next(v for k, v in limits.items() if k.startswith("training steps"))
    assert 0 < args.max_seconds <= train_limit - 20
    # The budget lets the plan's first (model, exec) group start, by the benchmark's own
    # guess (a budget below it measures nothing of that stage).
    variants = train_step.plan(args.models.split(","), EXECS[part], args.compile_reference)
    assert train_step._needed_seconds(variants, 0, {}) < args.max_seconds
    if part == "2":  # only compiled variants: the first compiled pair must fit
        assert variants[0].exec == "compiled"

    if "step_profile" in stages:
        step_profile = _load_benchmark("step_profile", monkeypatch)
        profile = step_profile.parse_args(stages["step_profile"][1:])
        assert profile.execs == "eager"
        profile_limit = limits["step profiles (eager)"]
        assert 0 < profile.max_seconds <= profile_limit - 8


def test_part_traced_measures_the_switch_both_ways(tmp_path, monkeypatch):
    """Part `traced`: the traced GPU tests, then LeNet's compiled step with
    MN_TRITON_TRACE_KERNELS=1 (BatchNorm's too, for the ratio) and MN's with it off, then host
    times of compiled layer calls; rows into reports/raw/, none into the report's data."""
    proc, calls = _dry_run(tmp_path, "traced")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    environments = _environments(tmp_path)
    assert len(environments) == len(calls)
    assert calls[0][0] == "-c" and "uses_kernels" in calls[0][1]  # the preflight first
    assert "== run dry-parttraced (part traced, python3)" in proc.stdout

    def index(first: str) -> list[int]:
        return [i for i, call in enumerate(calls) if call[0] == first]

    (tests,) = [i for i, call in enumerate(calls) if call[:3] == ["-m", "pytest", "tests"]]
    assert _option(calls[tests][2:], "-m") == "gpu" and _option(calls[tests], "-k") == "traced"
    (warm,) = index("benchmarks/warm_kernels.py")  # in the background, beside the tests
    assert _option(calls[warm], "--grid") == "none"
    assert _option(calls[warm], "--models") == "lenet"
    assert {"--host-overhead", "--compiled-steps"} <= set(calls[warm])

    train_step = _load_benchmark("train_step", monkeypatch)
    ahead = [i for i, call in enumerate(calls) if "--warm-compile" in call]
    traced, opaque = (i for i in index("benchmarks/train_step.py") if i not in ahead)
    (host,) = index("benchmarks/host_overhead.py")
    # Compiled ahead, beside the tests: BatchNorm's step, and MN's both ways.
    compiled_ahead = []
    for i in ahead:
        args = train_step.parse_args(calls[i][1:])
        assert (args.models, args.execs) == ("lenet", "compiled") and i < traced
        compiled_ahead.append((args.norms, environments[i][0]))
    assert sorted(compiled_ahead) == [("batchnorm", "0"), ("mn_triton", "0"), ("mn_triton", "1")]
    assert max(tests, warm) < traced < opaque < host and "--compiled" in calls[host]
    assert environments[traced] == ("1", "reports/raw")
    assert environments[opaque] == ("0", "reports/raw")
    for i, norms, name in (
        (traced, "batchnorm,mn_triton", "traced"),
        (opaque, "mn_triton", "opaque"),
    ):
        args = train_step.parse_args(calls[i][1:])
        assert train_step.execs_from(args, torch.device("cuda")) == ["compiled"]
        assert args.models == "lenet" and args.norms == norms
        assert args.out == f"train_step-{name}-dry-parttraced"
        variants = [v for v in train_step.plan(["lenet"], ["compiled"]) if v.norm in norms]
        assert variants and train_step._needed_seconds(variants, 0, {}) < args.max_seconds
    # Nothing else runs (but the check for pytest-xdist): no layer grid, no report.
    others = set(range(len(calls))) - {0, warm, tests, traced, opaque, host, *ahead}
    assert all(calls[i][0] == "-c" and calls[i][1].startswith("import xdist") for i in others)
    limits = {
        line[3 : line.index(" (limit")]: int(line.split("(limit ")[1].split(" s)")[0])
        for line in proc.stdout.splitlines()
        if line.startswith("== ") and "(limit " in line and " s)" in line
    }
    limits["kernel warm-up wait"] = _warm_wait_s(proc.stdout)
    assert sum(limits.values()) <= CALL_LIMIT_S["1"], limits
    for i, stage in ((traced, "kernels traced"), (opaque, "ops opaque")):
        max_seconds = train_step.parse_args(calls[i][1:]).max_seconds
        assert max_seconds <= limits[f"training steps (compiled, {stage})"] - 20
    assert "report: skipped (limit 0)" in proc.stdout


def test_out_holds_few_files_and_the_whole_reports_folder(tmp_path):
    """The device tool brings back at most 8 files from $OUT: one archive and the log."""
    proc, _ = _dry_run(tmp_path, "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_run.log", "reports.tar.gz"]
    with tarfile.open(out / "reports.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"reports/data", "reports/figures", "reports/raw"} <= names
    assert "reports/raw/gpu_run-dry-part1.summary.txt" in names
    summary = (tmp_path / "tree" / "reports" / "raw" / "gpu_run-dry-part1.summary.txt").read_text()
    assert "layer grid (core): exit 0" in summary and "report: exit 0" in summary


def test_unknown_part_is_refused(tmp_path):
    proc, calls = _dry_run(tmp_path, "3")
    assert proc.returncode == 2 and "usage" in proc.stderr
    assert calls == []


def test_a_limit_of_0_skips_its_stage(tmp_path):
    """`timeout 0` would run a stage without any limit: a 0 skips the stage instead."""
    proc, calls = _dry_run(tmp_path, "1", TRAIN_S="0", PROFILE_S="0")
    assert proc.returncode == 0, proc.stderr
    stages = _stages(calls)
    assert "train_step" not in stages and "step_profile" not in stages
    assert {"layers", "report", "tests: gpu and not slow"} <= set(stages)
    assert "training steps (eager): skipped (limit 0)" in proc.stdout


@pytest.mark.parametrize(("limit", "budget"), [("26", "1"), ("4", "1"), ("27", "2")])
def test_a_short_layer_grid_still_has_a_time_budget(tmp_path, limit, budget):
    """The grid stops starting cases 25 s before its limit; a limit of 25 s or less would
    give a budget of 0 or less, which the suite reads as no budget at all: it gets 1 s."""
    proc, calls = _dry_run(tmp_path, "1", LAYERS_S=limit)
    assert proc.returncode == 0, proc.stderr
    assert _option(_stages(calls)["layers"], "--time-budget") == budget


def test_a_failed_stage_lets_the_others_run_and_sets_the_exit_status(tmp_path):
    """A stage that fails (here the GPU tests) does not stop the later ones, whose rows are
    still worth having; the run then exits 3, naming it, so the operator sees it from the
    status alone; the archive is whole (written to a part file, then renamed)."""
    proc, calls = _dry_run(tmp_path, "1", fail_tests=True)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "stages that failed or timed out: gpu tests" in proc.stdout
    assert {"layers", "report", "train_step"} <= set(_stages(calls))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gpu_run.log", "reports.tar.gz",
    ]  # fmt: skip
    # Its errors (stderr) are in the log that comes back, and so is the verdict.
    log = (tmp_path / "out" / "gpu_run.log").read_text()
    assert "E   the fake GPU tests failed" in log
    assert "stages that failed or timed out: gpu tests" in log


def test_every_stage_sees_the_run_id_the_commit_and_the_real_kernels(tmp_path):
    """Rows name their run and commit from MN_RUN_ID and MN_GIT_SHA: every process sees the
    same run id (the part's, where none was given, not one each) and the commit named; none
    runs the Triton interpreter (but for the GPU tests' explicit 0), all see the repository on
    PYTHONPATH and unbuffered output (a stage cut short still leaves its lines)."""
    tree = tmp_path / "tree"
    proc, calls = _dry_run(tmp_path, "1", run_id=None, MN_GIT_SHA="abc1234", TRITON_INTERPRET="1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run_id = proc.stdout.split("== run ")[1].split(" ")[0]
    assert run_id.endswith("-part1") and len(run_id) > len("-part1")
    records = _records_with_env(tmp_path / "calls.txt")
    assert len(records) == len(calls) > 5
    for args, env in records:
        assert env["MN_RUN_ID"] == run_id and env["MN_GIT_SHA"] == "abc1234", args
        tests = args[:3] == ["-m", "pytest", "tests"]
        assert env["TRITON_INTERPRET"] == ("0" if tests else "unset"), args
        assert env["PYTHONUNBUFFERED"] == "1", args
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tree), args


def test_a_stage_that_times_out_is_named_and_the_run_goes_on(tmp_path):
    """A stage cut by its limit counts as failed (exit 3, named, TIMED OUT in the summary),
    the later stages still run, and the archive is written."""
    proc, calls = _dry_run(
        tmp_path, "1", SLEEP_ON="benchmarks/train_step.py", SLEEP_S="30", TRAIN_S="1"
    )
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "stages that failed or timed out: training steps (eager)" in proc.stdout
    assert {"step_profile", "report"} <= set(_stages(calls))
    with tarfile.open(tmp_path / "out" / "reports.tar.gz") as archive:
        summary = archive.extractfile("reports/raw/gpu_run-dry-part1.summary.txt").read()
    assert "training steps (eager): exit 124 after 1 s (TIMED OUT)" in summary.decode()


def test_the_warm_ups_run_beside_the_tests_and_end_by_their_deadline(tmp_path):
    """The kernel and compile warm-ups run in the background beside the GPU tests; the layer
    grid waits for both (the compile warm-up's variants use the GPU), each at most until the
    tests' limit + WARM_WAIT_S; a warm-up that would run on is stopped there."""
    proc, _ = _dry_run(
        tmp_path, "2", SLEEP_ON="warm_kernels.py|--warm-compile", SLEEP_S="2",
        SLOW_TESTS_S="5", WARM_WAIT_S="1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = (tmp_path / "tree" / "reports" / "raw" / "gpu_run-dry-part2.summary.txt").read_text()
    lines = summary.splitlines()
    warm = next(i for i, line in enumerate(lines) if line.startswith("kernel warm-up: exit 0,"))
    assert int(lines[warm].split("waited ")[1].split(" s")[0]) >= 1  # the tests took ~0 s
    compiled = next(i for i, line in enumerate(lines) if line.startswith("compile warm-up:"))
    assert lines[compiled].startswith("compile warm-up: 12 of 12 variants compiled")
    grid = next(i for i, line in enumerate(lines) if line.startswith("layer grid"))
    assert warm < compiled < grid

    late = tmp_path / "late"
    late.mkdir()
    proc, _ = _dry_run(
        late, "1", SLEEP_ON="warm_kernels.py", SLEEP_S="30", GPU_TESTS_S="1", WARM_WAIT_S="1"
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = (late / "tree" / "reports" / "raw" / "gpu_run-dry-part1.summary.txt").read_text()
    (line,) = [line for line in summary.splitlines() if line.startswith("kernel warm-up:")]
    assert line.startswith("kernel warm-up: exit 124,")
    assert int(line.split("waited ")[1].split(" s")[0]) <= 5


def test_a_failed_preflight_stops_the_run(tmp_path):
    """Kernels that cannot launch on the machine would fail every case of every stage: the
    run stops after the preflight, with its log packed for the way back."""
    proc, calls = _dry_run(tmp_path, "1", fail_preflight=True)
    assert proc.returncode == 1
    assert len(calls) == 1 and calls[0][0] == "-c"
    assert "preflight failed" in proc.stdout
    assert (tmp_path / "out" / "reports.tar.gz").is_file()
    # So does a preflight that hangs (a kernel that never ends) past its limit.
    hung = tmp_path / "hung"
    hung.mkdir()
    proc, calls = _dry_run(hung, "1", SLEEP_ON="^-c import torch", SLEEP_S="30", PREFLIGHT_S="1")
    assert proc.returncode == 1 and len(calls) == 1 and "preflight failed" in proc.stdout


def test_kernel_warm_up_covers_every_triton_case_and_training_step(monkeypatch):
    """benchmarks/warm_kernels.py compiles one layer call per distinct Triton case of the
    grid (modes that launch the same kernels share one) and one step per model and K."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    grid = warm.grid  # the module whose Case the units hold
    train_step = _load_benchmark("train_step", monkeypatch)
    units = warm._units("core", ["lenet", "resnet20"])
    assert len(units) == len(set(units))
    layer_units = {u for u in units if isinstance(u, grid.Case)}
    cases = [c for c in grid.cases("core", cuda=True, compile=False) if c.provider == "triton"]
    training = {"forward", "backward", "full"}
    assert any(c.exec == "cudagraph" for c in cases)  # their kernels are the eager calls'
    assert cases and layer_units == {
        replace(c, mode="full" if c.mode in training else c.mode, exec="eager") for c in cases
    }
    models = {u for u in units if not isinstance(u, grid.Case)}
    expected = {("lenet", k) for k in train_step.LENET_KS}
    assert models == expected | {("resnet20", k) for k in train_step.RESNET_KS}
    with_host = warm._units("core", [], host_overhead=True)
    assert with_host[-1] == warm.HOST_OVERHEAD and warm.HOST_OVERHEAD not in units
    compiled = set(warm._units("core", ["lenet"], compiled_steps=True)) - set(units)
    assert compiled == {("lenet", k, warm.COMPILED) for k in train_step.LENET_KS}


def test_kernel_warm_up_steps_take_the_benchmarks_batch(monkeypatch):
    """The kernels' tiles and sample splits depend on the batch: a warm-up at another
    batch than the timed steps' would leave their specialisations to compile inside them."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    train_step = _load_benchmark("train_step", monkeypatch)
    assert warm.TRAIN_BATCH == train_step.Settings().batch == 128


def test_kernel_warm_up_of_grid_none_is_the_steps_and_host_overhead_only(monkeypatch):
    """`--grid none` (part traced): no layer case, only the steps and host_overhead.py's calls."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    train_step = _load_benchmark("train_step", monkeypatch)
    units = warm._units(warm.NO_GRID, ["lenet"], host_overhead=True, compiled_steps=True)
    steps = [("lenet", k, *way) for k in train_step.LENET_KS for way in ((), (warm.COMPILED,))]
    assert units == [*steps, warm.HOST_OVERHEAD]


def test_kernel_warm_up_units_run_their_own_calls_and_report_failures(monkeypatch):
    """Each kind of unit runs its own call and is labelled so; a call that raises is reported
    with its error (the pool goes on), one that does not with none."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    ran = []
    monkeypatch.setattr(warm, "_layer_call", lambda case: ran.append(("layer", case)))
    monkeypatch.setattr(warm, "_host_overhead_calls", lambda: ran.append(("host",)))
    monkeypatch.setattr(warm, "_training_step", lambda m, k: ran.append(("eager", m, k)))

    def compiled_step(model, k):
        ran.append(("compiled", model, k))
        raise RuntimeError("no room")

    monkeypatch.setattr(warm, "_compiled_step", compiled_step)
    case = warm._units("smoke", [])[0]
    units = [case, warm.HOST_OVERHEAD, ("lenet", 4), ("lenet", 4, warm.COMPILED)]
    results = [warm._compile_unit(unit) for unit in units]
    assert ran == [("layer", case), ("host",), ("eager", "lenet", 4), ("compiled", "lenet", 4)]
    assert [(label, error) for label, _, error in results] == [
        (case.id, ""),
        (warm.HOST_OVERHEAD, ""),
        ("step lenet K=4", ""),
        ("step lenet K=4 (compiled)", "RuntimeError: no room"),
    ]
    assert all(seconds >= 0 for _, seconds, _ in results)


def _compile_check(monkeypatch):
    """tools/compile_check.py, imported here (warm_kernels put tools/ on sys.path). Its
    import sets TRITON_INTERPRET=0 for its own runs, which need real JIT functions; that must
    not outlive the test: processes that later tests start (test_sync's workers, test_mutants'
    pytest) would import mn_triton without the interpreter."""
    monkeypatch.setenv("TRITON_INTERPRET", os.environ["TRITON_INTERPRET"])  # put back after
    import compile_check

    return compile_check


def test_kernel_warm_up_workers_compile_for_the_gpu_and_split_rows_as_it_does(monkeypatch):
    """A worker compiles for the architecture it is given and splits the rows of its meta
    tensors as a CUDA device of the multiprocessors it is given splits them: the kernels'
    grid, and with it their specialisations, as in the timed launches."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    compile_check = _compile_check(monkeypatch)

    from mn_triton.kernels import layout

    archs = []
    monkeypatch.setattr(compile_check, "compile_instead_of_launch", archs.append)
    monkeypatch.setattr(layout, "CPU_TARGET_PROGRAMS", layout.CPU_TARGET_PROGRAMS)  # put back
    plan = layout.RowPlan(64, 8, 1 << 16, 1 << 16, 4, 1024, 4)
    splits = set()
    for sms in (114, 132):  # an H100 PCIe's, an H100 SXM's and H200's
        monkeypatch.setattr(layout, "_sm_count", lambda index, sms=sms: sms)
        on_gpu = layout.reduction_split(plan, torch.device("cuda", 0))
        warm._init_worker(80, sms)
        assert layout.reduction_split(plan, torch.device("meta")) == on_gpu
        splits.add(on_gpu)
    assert archs == [80, 80]
    assert len(splits) == 2  # (the test's plan tells the two apart, and a CPU's one program)
    monkeypatch.setattr(layout, "CPU_TARGET_PROGRAMS", 1)
    assert layout.reduction_split(plan, torch.device("meta")) not in splits


class _InProcessPool:
    """ProcessPoolExecutor's part that warm_kernels.main uses, in this process; notes how it
    was made (processes, start method, initializer)."""

    made: list[tuple] = []

    def __init__(self, jobs, mp_context, initializer, initargs) -> None:
        self.made.append((jobs, mp_context.get_start_method(), initializer, initargs))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, units):
        return map(fn, units)


def test_kernel_warm_up_main_on_a_gpu(monkeypatch, capsys):
    """On a GPU (faked: compute capability 8.6, 84 multiprocessors) the workers start fresh
    (spawn: this process asked CUDA for the device's properties), compile for that GPU and
    split rows as it does, and each unit's line and the last line (which gpu_run.sh puts in
    its summary) count the failures; the exit status stays 0 (what failed compiles when
    launched). Every grid gpu_run.sh warms is accepted."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    monkeypatch.setattr(warm.torch.cuda, "is_available", lambda: True)
    properties = SimpleNamespace(major=8, minor=6, multi_processor_count=84)
    monkeypatch.setattr(warm.torch.cuda, "get_device_properties", lambda *_: properties)
    monkeypatch.setattr(_InProcessPool, "made", [])
    monkeypatch.setattr(warm, "ProcessPoolExecutor", _InProcessPool)

    def compile_unit(unit):
        return str(unit), 1.5, "RuntimeError: boom" if unit == warm.HOST_OVERHEAD else ""

    monkeypatch.setattr(warm, "_compile_unit", compile_unit)
    assert warm.main(["--grid", "none", "--host-overhead", "--jobs", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert _InProcessPool.made == [(3, "spawn", warm._init_worker, (86, 84))]
    assert out[0] == (
        "warming Triton's cache for sm_86 (84 multiprocessors): 1 layer calls and steps, "
        "3 processes"
    )
    assert out[1] == f"[1/1]    1.5 s  {warm.HOST_OVERHEAD}  FAILED RuntimeError: boom"
    assert out[2].startswith("warmed in ")
    assert out[2].endswith("; 1 of 1 failed (they compile when launched)")
    grids = set(re.findall(r"^\s*warm_kernels_start (\w+) ", SCRIPT.read_text(), re.M))
    assert grids == {"full", "core", "extra", "none"}
    for grid_name in grids:
        assert warm.main(["--grid", grid_name, "--models", "lenet"]) == 0
        assert "; 0 of " in capsys.readouterr().out


def test_kernel_warm_up_target_is_as_given_else_the_gpus_else_an_h200s(monkeypatch):
    """--arch and --sms win; each one not given is the local GPU's; without a GPU, sm_90 and
    132 multiprocessors (an H200, the lent machines' kind)."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    monkeypatch.setattr(warm.torch.cuda, "is_available", lambda: False)
    assert warm._target(None, None) == (90, 132)
    assert warm._target(80, 108) == (80, 108)
    monkeypatch.setattr(warm.torch.cuda, "is_available", lambda: True)
    properties = SimpleNamespace(major=9, minor=0, multi_processor_count=114)
    monkeypatch.setattr(warm.torch.cuda, "get_device_properties", lambda *_: properties)
    assert warm._target(None, None) == (90, 114)
    assert warm._target(86, None) == (86, 114)
    assert warm._target(None, 132) == (90, 132)


def test_kernel_warm_up_steps_run_forward_and_backward_of_the_models_layers(monkeypatch):
    """An eager step builds the model with our layers at its K and runs its forward and
    backward on meta tensors; a compiled step hands each of the model's layers, in order, its
    input from a forward without gradients at the benchmark's batch."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    compile_check = _compile_check(monkeypatch)
    import models

    import mn_triton

    built = []
    real_build = models.build_model
    monkeypatch.setattr(
        models, "build_model", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1]
    )
    calls = []
    monkeypatch.setattr(
        compile_check, "compiled_layer_calls", lambda layer, x: calls.append((layer, x))
    )

    def ours(model):
        kinds = (mn_triton.ModeNorm, mn_triton.ModeGroupNorm)
        return [layer for layer in model.modules() if isinstance(layer, kinds)]

    warm._training_step("lenet", 4)
    (model,) = built
    assert ours(model) and all(layer.num_modes == 4 for layer in ours(model))
    assert all(p.device.type == "meta" and p.grad is not None for p in model.parameters())
    assert not calls
    warm._compiled_step("lenet", 6)
    model = built[-1]
    assert [layer for layer, _ in calls] == ours(model)
    assert all(layer.num_modes == 6 for layer in ours(model))
    for _, x in calls:
        assert x.device.type == "meta" and x.shape[0] == warm.TRAIN_BATCH and not x.requires_grad


def test_kernel_warm_up_of_host_overhead_is_its_layers_and_compiled_maps(monkeypatch):
    """host_overhead.py's calls: our layers' eager calls on both shapes (BatchNorm launches no
    Triton kernel), and their compiled calls on the maps that its --compiled times."""
    warm = _load_benchmark("warm_kernels", monkeypatch)
    compile_check = _compile_check(monkeypatch)
    import host_overhead

    calls = []
    monkeypatch.setattr(
        compile_check, "compiled_layer_calls", lambda layer, x: calls.append((layer, x))
    )
    warm._host_overhead_calls()
    maps = host_overhead.COMPILED_INPUTS["maps"][1]
    assert [(type(layer).__name__, tuple(x.shape)) for layer, x in calls] == [
        ("ModeNorm2d", maps),
        ("ModeGroupNorm2d", maps),
    ]
    assert all(x.device.type == "meta" and not x.requires_grad for _, x in calls)


WARM_STEPS = """
import os, sys
sys.path[:0] = ["benchmarks"]
import warm_kernels
warm_kernels._init_worker(90, 132)
def entries():
    return len(os.listdir(os.environ["TRITON_CACHE_DIR"]))
warm_kernels._training_step("lenet", 2)
eager = entries()
warm_kernels._compiled_step("lenet", 2)
print("entries", eager, entries())
"""


def _cache_entries(script: str, cache: Path) -> tuple[int, int]:
    """Run `script` (it prints "entries A B") without the interpreter, its Triton cache in
    `cache`; the two counts of cache entries it printed."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    first, second = (int(n) for n in proc.stdout.split("entries")[-1].split())
    return first, second


@pytest.mark.slow
def test_kernel_warm_up_of_a_compiled_step_compiles_what_eager_calls_do_not(tmp_path):
    """Under torch.compile the layers run the custom ops' implementations, some of whose
    kernels eager calls never launch (MN's mix without the running estimates; rows of one
    element through the passes): the warm-up's compiled step adds them to the cache."""
    eager, both = _cache_entries(WARM_STEPS, tmp_path / "cache")
    assert 0 < eager < both


WARM_HOST_OVERHEAD = """
import os, sys
sys.path[:0] = ["benchmarks"]
import warm_kernels
warm_kernels._init_worker(90, 132)
def entries():
    return len(os.listdir(os.environ["TRITON_CACHE_DIR"]))
warm_kernels._host_overhead_calls()
warmed = entries()
import host_overhead, torch
for dim, shape in host_overhead.SHAPES:
    x = torch.randn(shape, requires_grad=True)
    for name, layer in host_overhead.layers_for(dim).items():
        if name.startswith("mn_triton"):
            layer(x).sum().backward()
            if (dim, shape) == host_overhead.COMPILED_SHAPE:
                host_overhead._compiled_us(layer, x, 1, False)
print("entries", warmed, entries())
"""


@pytest.mark.slow
def test_kernel_warm_up_compiles_what_host_overhead_launches(tmp_path):
    """host_overhead.py's layer calls, eager and (--compiled, ops opaque) under torch.compile,
    here on CPU tensors with kernels compiled for sm_90, launch nothing the warm-up left out
    (without its compiled calls it left out 3 of 17)."""
    warmed, after = _cache_entries(WARM_HOST_OVERHEAD, tmp_path / "cache")
    assert 0 < warmed == after


@pytest.mark.slow
def test_kernel_warm_up_compiles_the_smoke_grid_for_sm_90():
    """The warm-up as gpu_run.sh calls it, on the smoke grid: its processes compile every
    layer call for sm_90 and an H200's 132 multiprocessors (here without a GPU: the
    defaults) and none fails."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "benchmarks/warm_kernels.py",
         "--grid", "smoke", "--host-overhead", "--jobs", "2"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # the smoke grid's 6 calls and host_overhead's
    assert "for sm_90 (132 multiprocessors): 7 layer calls" in proc.stdout
    assert "; 0 of 7 failed" in proc.stdout, proc.stdout[-2000:]
