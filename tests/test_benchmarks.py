"""The benchmark pipeline on a CPU: the layer suite's smoke grid, the grid's coverage of
SPEC §6, and the report on a fixture CSV (tests/data/bench_fixture.csv: synthetic rows, not
measurements, with fake GPU rows, CPU rows and training-step rows).

The suite and the report run in subprocesses, as a user runs them: the suite without
TRITON_INTERPRET (which tests/conftest.py sets for this process), writing into a temporary
folder through MN_REPORT_DATA.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "bench_fixture.csv"
FIXTURE_GPU = "NVIDIA H100 80GB HBM3 (fixture)"
FIGURES = ("time_vs_k", "time_vs_batch", "speedup_per_shape", "bandwidth", "memory", "train_step")
# SPEC §7, written out here so that the test checks the contract, not the code's copy of it.
SPEC_COLUMNS = (
    "op", "provider", "mode", "dtype", "layout", "N", "C", "H", "W", "K", "model", "exec",
    "ms_p20", "ms_p50", "ms_p80", "bytes_min", "gbps", "copy_gbps", "peak_mem_mb",
    "device", "torch", "triton", "git_sha", "timestamp",
)  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_benchmark(name: str, monkeypatch: pytest.MonkeyPatch | None = None):
    """benchmarks/<name>.py as a module. benchmarks/ goes on sys.path only when a test
    passes its monkeypatch (for modules that import their siblings), and only for that test."""
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", REPO / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _load_grid():
    """benchmarks/grid.py (plain Python, no torch)."""
    return _load_benchmark("grid")


def _run(args: list[str], env_updates: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "MN_RUN_ID")}
    env.update(env_updates)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def test_run_ids_have_one_format_in_python_and_in_the_shell_scripts(monkeypatch) -> None:
    """The report groups a run's parts by id and sorts runs by it: every writer must form it
    alike (records.new_run_id, tools/bench.sh, benchmarks/gpu_run.sh)."""
    records = _load_benchmark("records", monkeypatch)
    assert re.fullmatch(r"\d{8}T\d{6}Z", records.new_run_id())
    for script in ("tools/bench.sh", "benchmarks/gpu_run.sh"):
        assert f"date -u +{records.RUN_ID_FORMAT})" in (REPO / script).read_text(), script


def test_split_timing_runs_both_ways_and_labels_cpu_times() -> None:
    """benchmarks/split_timing.py through the interpreter, by its CPU defaults (a tiny
    shape, its samples split in 3 for the 'split' column, one timed call; the GPU's shapes
    would take hours): one row per shape and K, CPU times labelled as no GPU speed."""
    proc = _run(["benchmarks/split_timing.py", "--device", "cpu"], {"TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "not GPU speed" in proc.stdout
    row = proc.stdout.strip().splitlines()[-1].split()
    assert row[:4] == ["(12,", "5)", "2", "3"], proc.stdout  # shape, K, splits
    assert all(float(value) > 0 for value in row[4:]), proc.stdout
    without = _run(["benchmarks/split_timing.py", "--device", "cpu"], {})
    assert without.returncode == 2 and "TRITON_INTERPRET=1" in without.stderr


def test_split_timing_prints_each_ratio_the_right_way_up(monkeypatch, capsys) -> None:
    """Per shape and K: split, no split and BatchNorm's times, then no split / split and
    split / BatchNorm (fake times, told apart by the rule in force while each is taken)."""
    split_timing = _load_benchmark("split_timing", monkeypatch)
    mix = split_timing.mix

    def step_ms(layer, shape, device, args):
        if isinstance(layer, torch.nn.BatchNorm1d):
            return 0.5
        return 4.0 if mix.SPLIT_MIN_ROWS == split_timing.NEVER else 2.0

    monkeypatch.setattr(split_timing, "_step_ms", step_ms)
    monkeypatch.setattr(split_timing.mn_triton, "set_backend", lambda name: None)
    monkeypatch.setattr(split_timing.mn_triton.backend, "INTERPRETING", True)
    assert split_timing.main(["--device", "cpu", "--shape", "12", "5"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert [float(v) for v in row[4:]] == [2.0, 4.0, 0.5, 2.0, 4.0], row


class _FreshGradsLinear(torch.nn.Linear):
    """A square Linear that notes, at each forward, whether its input's and parameters'
    gradients are all None (a timed step after zero_grad())."""

    def __init__(self, features: int) -> None:
        super().__init__(features, features)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(all(t.grad is None for t in (x, self.weight, self.bias)))
        return super().forward(x)


class _Placed(torch.nn.Identity):
    """A layer that notes the device it is moved to (CUDA faked on a CPU-only machine)."""

    def __init__(self, *_, num_modes: int | None = None, **__) -> None:
        super().__init__()
        self.num_modes, self.device = num_modes, None

    def to(self, device):
        self.device = device
        return self


def test_split_timing_steps_start_from_no_gradients(monkeypatch) -> None:
    """Each timed forward+backward stores its gradients rather than adding to the last
    step's (an add per leaf, and for dx a pass over x more, that a training step after
    zero_grad() does not pay)."""
    split_timing = _load_benchmark("split_timing", monkeypatch)
    layer = _FreshGradsLinear(3)

    args = SimpleNamespace(warmup=1, reps=5)
    assert split_timing._step_ms(layer, (4, 3), "cpu", args) > 0
    assert len(layer.seen) == 6 and all(layer.seen)


def test_split_timing_step_is_the_median_of_its_timed_calls_on_its_device(monkeypatch) -> None:
    """A step's time is the median (ms_p50) of measure.time_fn's timed calls, on the device,
    warm-up and repetitions asked for."""
    split_timing = _load_benchmark("split_timing", monkeypatch)
    asked = []

    def time_fn(fn, device, warmup, reps):
        fn(0)
        asked.append((device, warmup, reps))
        return SimpleNamespace(ms_p20=1.0, ms_p50=2.0, ms_p80=3.0)

    monkeypatch.setattr(split_timing.measure, "time_fn", time_fn)
    args = SimpleNamespace(warmup=3, reps=7)
    assert split_timing._step_ms(torch.nn.Linear(3, 3), (4, 3), "cpu", args) == 2.0
    assert asked == [(torch.device("cpu"), 3, 7)]


def test_split_timing_batch_norm_takes_each_rank_of_input() -> None:
    """BatchNorm beside ModeNorm: the class that takes the shape's rank, on its channels."""
    split_timing = _load_benchmark("split_timing")
    for shape in [(4, 3), (4, 3, 5), (4, 3, 2, 2), (4, 3, 2, 2, 2)]:
        bn = split_timing._batch_norm(shape)
        assert bn.num_features == 3
        assert bn(torch.randn(shape)).shape == shape


def test_split_timing_splits_column_is_the_kernels_split_at_each_k(monkeypatch) -> None:
    """The 'splits' column is the split the forward's batch-statistics kernel launches with
    (its grid's second axis), at the row's K: the blocks, and so the rounding of the splits
    to whole blocks, depend on K (this shape splits in 2 at K = 2 and in 3 at K = 6)."""
    split_timing = _load_benchmark("split_timing", monkeypatch)
    mix = split_timing.mix
    monkeypatch.setattr(mix, "SPLIT_MIN_ROWS", 10)
    grids = []
    monkeypatch.setattr(
        mix, "launch", lambda kernel, grid: grids.append((kernel, grid)) or (lambda *a, **k: None)
    )
    n, c = 30, 32
    launched = {}
    for k in (2, 6):
        gate = split_timing.mn_triton.ModeNorm(c, num_modes=k).gate
        grids.clear()
        mix.mode_norm_batch_stats(
            torch.randn(n, c), torch.randn(n, c), torch.rand(n, c), gate.weight, gate.bias
        )
        (launched[k],) = [grid[1] for kernel, grid in grids if kernel is mix._mn_batch_stats_kernel]
        assert split_timing._splits((n, c), k) == launched[k]
    assert launched[2] != launched[6]


def test_split_timing_on_a_gpu_times_its_shapes_and_each_k_on_the_device(monkeypatch, capsys):
    """On a machine with CUDA (faked): the GPU's defaults (its shapes, 10 warm-up and 50 timed
    calls, the rule's SPLIT_MIN_ROWS for the 'split' column) where no option is given, and the
    options where one is; the Triton backend; each layer moved to the device asked for; per
    shape BatchNorm, then per K ModeNorm never split and split; the rule put back after."""
    split_timing = _load_benchmark("split_timing", monkeypatch)
    mix = split_timing.mix
    rule = mix.SPLIT_MIN_ROWS
    monkeypatch.setattr(split_timing.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(split_timing.measure, "device_name", lambda device: "a faked GPU")
    backends = []
    monkeypatch.setattr(split_timing.mn_triton, "set_backend", backends.append)
    monkeypatch.setattr(split_timing, "_batch_norm", lambda shape: _Placed())
    monkeypatch.setattr(split_timing.mn_triton, "ModeNorm", _Placed)
    timed = []

    def step_ms(layer, shape, device, args):
        timed.append((layer.num_modes, shape, layer.device, device, mix.SPLIT_MIN_ROWS))
        assert (args.warmup, args.reps) == expected_calls
        return 1.0

    monkeypatch.setattr(split_timing, "_step_ms", step_ms)

    def rows(shapes, ks, device, split_rule):
        for shape in shapes:
            yield None, shape, device, device, rule
            for k in ks:
                yield k, shape, device, device, split_timing.NEVER
                yield k, shape, device, device, split_rule

    expected_calls = (10, 50)
    assert split_timing.main([]) == 0
    assert timed == list(rows(split_timing.SHAPES, [2], "cuda", rule))
    assert backends == ["triton"] and rule == mix.SPLIT_MIN_ROWS
    assert "device: a faked GPU" in capsys.readouterr().out
    timed.clear()
    expected_calls = (10, 7)
    argv = ["--device", "cuda:0", "--shape", "64", "8", "--k", "2", "6", "--split-min-rows",
            "16", "--reps", "7"]  # fmt: skip
    assert split_timing.main(argv) == 0
    assert timed == list(rows([(64, 8)], [2, 6], "cuda:0", 16))
    assert rule == mix.SPLIT_MIN_ROWS


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
@pytest.mark.parametrize(
    "command", [["tools/gpu_diagnose.py"], ["tools/fuzz.py", "--device", "cuda"]]
)
def test_gpu_only_tools_refuse_a_machine_without_cuda_plainly(command) -> None:
    """A usage error naming what is missing, not a traceback from deep inside torch."""
    proc = _run(command, {})
    assert proc.returncode == 2 and "needs a CUDA device" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


FORWARD_PIECES = ["moments", "scale", "bias", "mean", "var", "gates"]
BACKWARD_PIECES = ["dy_scale", "x_scale", "row_bias", "gate_weight", "gate_bias", "weight",
                   "bias_param"]  # fmt: skip


def _gpu_diagnose(monkeypatch):
    """tools/gpu_diagnose.py, its tensors on the CPU (Triton's interpreter) and
    torch.cuda.synchronize a no-op, for this test."""
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    import gpu_diagnose

    monkeypatch.setattr(gpu_diagnose, "DEV", "cpu")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    return gpu_diagnose


def _diagnosed_errors(line: str) -> list[tuple[str, float]]:
    """A gpu_diagnose line's relative errors, (piece, error) in print order; nan and inf too."""
    found = re.findall(r"(\w+) (nan|inf|\d\.\de[+-]\d\d)\b", line)
    return [(name, float(error)) for name, error in found]


def test_gpu_diagnose_comparisons_run_on_the_interpreter(monkeypatch, capsys) -> None:
    """The diagnostics' kernel-against-torch comparisons, on CPU tensors through Triton's
    interpreter: they run to their printed errors (a renamed MixGrads field once crashed the
    backward's, which only a GPU session would have met), every piece's, and all are small
    (not nan, not 1 or more)."""
    gpu_diagnose = _gpu_diagnose(monkeypatch)
    for training in (True, False):
        gpu_diagnose.compare_forward(8, 8, 16, 2, training, "fwd")
        gpu_diagnose.compare_backward(8, 8, 16, 2, training, "bwd")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4, lines
    for line, pieces in zip(lines, [FORWARD_PIECES, BACKWARD_PIECES] * 2, strict=True):
        errors = _diagnosed_errors(line)
        assert [name for name, _ in errors] == pieces, line
        assert all(error < 1e-4 for _, error in errors), line


def test_gpu_diagnose_comparisons_show_a_wrong_kernel_result(monkeypatch, capsys) -> None:
    """Each piece's error is that piece's kernel result against its own reference: with
    every kernel result made wrong by its own factor (1 + i/100, i = 1, 2, ...), each piece
    prints its own i/100 (the moments the worst of their three)."""
    from mn_triton.kernels import mix as kmix
    from mn_triton.kernels import moments as kmom

    gpu_diagnose = _gpu_diagnose(monkeypatch)

    def scaled(results):
        return tuple(t * (1 + i / 100) for i, t in enumerate(results, 1))

    real_moments, real_forward = kmom.row_moments, kmix.mode_norm_forward
    real_backward, real_gates = kmix.mode_norm_backward, kmix._mn_gates_kernel
    monkeypatch.setattr(kmom, "row_moments", lambda *a: scaled(real_moments(*a)))
    monkeypatch.setattr(kmix, "mode_norm_forward", lambda *a: scaled(real_forward(*a)))
    monkeypatch.setattr(kmix, "mode_norm_backward", lambda *a: scaled(real_backward(*a)))

    class WrongGates:  # the diagnostics' own launch of the gates kernel, its gates made wrong
        def __getitem__(self, grid):
            def run(*args, **kwargs):
                real_gates[grid](*args, **kwargs)
                args[4].mul_(1.05)

            return run

    monkeypatch.setattr(kmix, "_mn_gates_kernel", WrongGates())
    gpu_diagnose.compare_forward(8, 8, 16, 2, True, "fwd")
    gpu_diagnose.compare_backward(8, 8, 16, 2, True, "bwd")
    forward, backward = capsys.readouterr().out.strip().splitlines()
    expected = [3, 1, 2, 3, 4, 5]  # moments: shift 1, mean deviation 2, variance 3
    assert _diagnosed_errors(forward) == [
        (name, pytest.approx(i / 100, rel=0.05))
        for name, i in zip(FORWARD_PIECES, expected, strict=True)
    ], forward
    assert _diagnosed_errors(backward) == [
        (name, pytest.approx(i / 100, rel=0.05)) for i, name in enumerate(BACKWARD_PIECES, 1)
    ], backward


MIX_KERNELS = ["_mn_mix_forward_kernel", "_mn_batch_stats_kernel", "_mn_mix_backward_rows_kernel",
               "_mn_mix_backward_gates_kernel", "_mn_gates_kernel"]  # fmt: skip


def test_gpu_diagnose_variants_launch_every_kernel_they_change_then_put_it_back(
    monkeypatch, capsys
) -> None:
    """Each variant (no fp fusion, blocks of 4 samples, 1 and 8 warps) compares the forward
    and the backward, in eval and in training, with every mix kernel it changes launched as
    it says (on a case whose samples split and whose channels span two programs: all five
    run; noted, not run, their results not checked here); afterwards the kernels and
    settings are as they were."""
    from mn_triton.kernels import mix as kmix

    gpu_diagnose = _gpu_diagnose(monkeypatch)
    monkeypatch.setattr(gpu_diagnose, "VARIANT_CASES", [(8, 40, 4, 2)])
    monkeypatch.setattr(kmix, "SPLIT_MIN_ROWS", 4)  # 8 samples: 2 splits
    label, launches, compared = [None], [], set()

    class Noted:
        def __init__(self, name: str) -> None:
            self.name = name

        def __getitem__(self, grid):
            def run(*args, **kwargs):
                options = kwargs.get("num_warps"), kwargs["enable_fp_fusion"], kwargs["BLOCK_N"]
                launches.append((label[0], self.name, *options))

            return run

    noted = {name: Noted(name) for name in MIX_KERNELS}
    for name in MIX_KERNELS:
        monkeypatch.setattr(kmix, name, noted[name])
    real = {name: getattr(gpu_diagnose, name) for name in ("compare_forward", "compare_backward")}
    for compare in real:

        def note(*args, compare=compare):
            label[0] = args[5]
            compared.add((args[5], compare, args[4]))
            real[compare](*args)

        monkeypatch.setattr(gpu_diagnose, compare, note)
    gpu_diagnose.variants()
    labels = ["no fp fusion", "MN blocks of 4 samples", "num_warps 1", "num_warps 8"]
    ways = [(compare, training) for compare in ("compare_forward", "compare_backward")
            for training in (False, True)]  # fmt: skip
    assert compared == {(lb, *way) for lb in labels for way in ways}
    for lb in labels:
        options = [launch[1:] for launch in launches if launch[0] == lb]
        assert {name for name, *_ in options} == set(MIX_KERNELS), lb
        assert {fusion for _, _, fusion, _ in options} == {lb != "no fp fusion"}, lb
        assert {warps for _, warps, _, _ in options} == {
            {"num_warps 1": 1, "num_warps 8": 8}.get(lb)
        }, lb
        block_n = max(block for *_, block in options)
        assert block_n == 4 if lb == "MN blocks of 4 samples" else block_n == 8, lb
    assert (kmix.FP_FUSION, kmix.MN_BLOCK_N) == (True, 8)
    assert all(getattr(kmix, name) is noted[name] for name in MIX_KERNELS)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(labels) * len(ways) and "failed" not in "".join(lines), lines


def _leaves(output: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors whose gradients a backward from `output` accumulates."""
    leaves, seen, todo = [], set(), [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad
            leaves.append(node.variable)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def test_gpu_diagnose_host_timings_run_each_backward_from_no_gradients(monkeypatch, capsys):
    """The host-time stages, the profile and the probe, on CPU tensors through the torch-op
    backend (each timing, profile and table made two calls): every stage runs against the
    backend's current signatures, and every timed backward starts from no gradients, as a
    training step after zero_grad() does (else each call adds into the last one's: an add_
    per leaf, 5 for ours against BatchNorm's 3, the bias benchmarks/NOTES.md removed from
    host_overhead.py)."""
    import mn_triton

    gpu_diagnose = _gpu_diagnose(monkeypatch)
    fresh, real_backward = [], torch.Tensor.backward

    def backward(self, *args, **kwargs):
        fresh.append([leaf.grad is None for leaf in _leaves(self)])
        return real_backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", backward)

    def twice(fn, *_, **__) -> float:
        fn()
        fn()
        return 1.0

    for timing in ("_us_per_call", "_cprofile_top", "_op_table"):
        monkeypatch.setattr(gpu_diagnose, timing, twice)
    with mn_triton.use_backend("torch"):  # the same host code, without the interpreter
        gpu_diagnose.host_stages()
        gpu_diagnose.profile()
        gpu_diagnose.host_probe()
    # fwd+bwd: ModeNorm2d, BatchNorm2d, the no-op Function, the first two without the engine
    # thread and in op tables; the profile's timing and cProfile: 9 stages, 2 calls each
    assert len(fresh) == 18 and all(none and all(none) for none in fresh), fresh
    out = capsys.readouterr().out
    assert out.count(" us") == 16 + 2 + 4 + 12 + 1, out  # stages, engine thread, profile, probe


def test_gpu_diagnose_host_time_is_the_median_round_per_call_its_work_done(monkeypatch) -> None:
    """_us_per_call: 20 warm-up calls, then 5 rounds of `calls` calls, each synchronised
    before its clock stops (the calls' queued work inside the round); the median round, in µs
    per call."""
    gpu_diagnose = _gpu_diagnose(monkeypatch)
    events: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: events.append("sync"))
    rounds_s = [3e-3, 1e-3, 5e-3, 2e-3, 4e-3]
    ticks = iter([t for d in rounds_s for t in (10.0, 10.0 + d)])
    clock = SimpleNamespace(perf_counter=lambda: events.append("clock") or next(ticks))
    monkeypatch.setattr(gpu_diagnose, "time", clock)
    us = gpu_diagnose._us_per_call(lambda: events.append("call"), calls=2)
    assert us == pytest.approx(1500.0)  # 3 ms / 2 calls
    one_round = ["clock", "call", "call", "sync", "clock"]
    assert events == ["call"] * 20 + ["sync"] + one_round * 5


BACKWARD_CASES = [(16, 24, 143, 3), (8192, 24, 1, 2), (4096, 64, 1, 2)]


@pytest.mark.parametrize(
    "argv, ran",
    [
        ([], ["comparisons", "variants"]),
        (["--no-variants"], ["comparisons"]),
        (["--profile"], ["comparisons", "variants", "profile"]),
        (["--host-only"], ["launch_cost", "host_stages", "profile"]),
        (["--host-probe"], ["host_probe"]),
    ],
)
def test_gpu_diagnose_options_choose_what_runs(argv, ran, monkeypatch, capsys) -> None:
    """On a machine with CUDA (faked): the GPU's name, then what each option says: the
    comparisons (every case in eval and training, float64, the backward's cases, some of
    whose samples split) and the variants unless --no-variants, the profile after them with
    --profile; host times alone with --host-only, autograd's share alone with --host-probe."""
    gpu_diagnose = _gpu_diagnose(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a faked GPU")
    done, compared = [], []
    for name in ("variants", "profile", "launch_cost", "host_stages", "host_probe"):
        monkeypatch.setattr(gpu_diagnose, name, lambda name=name: done.append(name))
    monkeypatch.setattr(gpu_diagnose, "compare_forward", lambda *a: compared.append(("fwd", *a)))
    monkeypatch.setattr(gpu_diagnose, "compare_backward", lambda *a: compared.append(("bwd", *a)))
    monkeypatch.setattr(sys, "argv", ["gpu_diagnose.py", *argv])
    gpu_diagnose.main()
    assert capsys.readouterr().out == "a faked GPU\n"
    assert done == [name for name in ran if name != "comparisons"]
    if "comparisons" not in ran:
        assert compared == []
        return
    forward = [("fwd", *case, training) for case in gpu_diagnose.CASES for training in (0, 1)]
    backward = [("bwd", *case, training) for case in BACKWARD_CASES for training in (0, 1)]
    float64 = ("fwd", 16, 24, 143, 3, False, "float64", torch.float64)
    assert compared == [*forward, float64, *backward]


def test_gpu_diagnose_host_only_and_host_probe_exclude_each_other(monkeypatch, capsys) -> None:
    """--host-only with --host-probe is refused, not run as --host-probe alone."""
    gpu_diagnose = _gpu_diagnose(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a faked GPU")
    for name in ("launch_cost", "host_stages", "profile", "host_probe"):
        monkeypatch.setattr(gpu_diagnose, name, lambda name=name: pytest.fail(f"ran {name}"))
    monkeypatch.setattr(sys, "argv", ["gpu_diagnose.py", "--host-only", "--host-probe"])
    with pytest.raises(SystemExit) as exited:
        gpu_diagnose.main()
    assert exited.value.code == 2 and "not allowed with" in capsys.readouterr().err


def _split_experiment(argv: list[str], monkeypatch) -> list[tuple]:
    """tools/split_experiment.py run as a script with `argv`, benchmarks/train_step.py's run
    noted rather than made: (script, run name, its argv, the eager and captured split of a
    32-sample batch of 8 channels as the run finds them); the rules put back after the test."""
    import runpy

    from mn_triton.kernels import mix

    for rule in ("SPLIT_MIN_ROWS", "GRAPH_SPLIT_MIN_ROWS"):
        monkeypatch.setattr(mix, rule, getattr(mix, rule))
    config = torch._functorch.config  # (put back by hand: monkeypatch's undo hides its options)
    cached = config.enable_autograd_cache
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", ["split_experiment.py", *argv])
    runs, run_script = [], runpy.run_path

    def run_path(path, run_name):
        with mix.as_captured():
            captured = mix._mn_splits(32, 8, 8, 8)
        runs.append((path, run_name, list(sys.argv), mix._mn_splits(32, 8, 8, 8), captured))
        # traced compiled steps read the rules: no graph from AOTAutograd's on-disk cache
        assert not config.enable_autograd_cache

    monkeypatch.setattr(runpy, "run_path", run_path)
    try:
        run_script(str(REPO / "tools" / "split_experiment.py"), run_name="__main__")
    finally:
        config.enable_autograd_cache = cached
    return runs


def test_split_experiment_runs_train_step_with_eager_and_captured_calls_split(monkeypatch):
    """`split_experiment.py 8 OPTIONS`: train_step.py run as a script with OPTIONS alone,
    eager and captured calls alike splitting 32 samples into 4 splits of 8 (by default eager
    calls do not split them, captured ones split them in 2)."""
    train_step = str(REPO / "benchmarks" / "train_step.py")
    runs = _split_experiment(["8", "--models", "lenet", "--quick"], monkeypatch)
    assert runs == [(train_step, "__main__", [train_step, "--models", "lenet", "--quick"],
                     (4, 8), (4, 8))]  # fmt: skip


@pytest.mark.parametrize("argv", [[], ["-8"], ["eight"], ["1e3"], ["²"], ["--models", "lenet"]])
def test_split_experiment_refuses_anything_but_a_count_first(argv, monkeypatch) -> None:
    """Without a count of samples (digits 0-9) first: the usage, status 1, nothing run (a
    '²', which str.isdigit takes, once reached int() and a traceback)."""
    with pytest.raises(SystemExit) as exited:
        _split_experiment(argv, monkeypatch)
    assert str(exited.value.code).startswith("usage: python tools/split_experiment.py MIN_ROWS")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_split_experiment_help_is_not_an_error(flag, monkeypatch, capsys) -> None:
    """--help prints the usage and what the script does, on stdout, status 0."""
    with pytest.raises(SystemExit) as exited:
        _split_experiment([flag], monkeypatch)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python tools/split_experiment.py MIN_ROWS") and "NOTES" in out


# ------------------------------------ the suite ----------------------------------------


@pytest.mark.slow
def test_smoke_grid_writes_spec_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bench_json = tmp_path / "bench.json"
    suite = ["-m", "pytest", "benchmarks/test_layers.py", "--benchmark-only", "-q"]
    options = ["--grid", "smoke", "--bench-device", "cpu", "-p", "no:cacheprovider"]
    proc = _run([*suite, *options, f"--benchmark-json={bench_json}"], {"MN_REPORT_DATA": str(data)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    files = list(data.glob("layers-cpu-*.csv"))
    assert len(files) == 1, files
    with files[0].open(newline="") as f:
        rows = list(csv.DictReader(f))
    expected = len(_load_grid().cases("smoke", cuda=False))
    assert len(rows) == expected
    assert set(SPEC_COLUMNS) <= set(rows[0])
    assert {r["cases_planned"] for r in rows} == {str(expected)}  # for the report's count
    for row in rows:
        assert row["device"] == "cpu" and row["provider"] != "triton"
        p20, p50, p80 = (float(row[k]) for k in ("ms_p20", "ms_p50", "ms_p80"))
        assert 0 < p20 <= p50 <= p80
        assert int(row["bytes_min"]) > 0 and float(row["gbps"]) > 0
        assert float(row["copy_gbps"]) > 0
        assert row["model"] == "" and row["exec"] == "eager"
    assert {r["op"] for r in rows} >= {"mode_norm", "mode_group_norm", "batch_norm", "group_norm"}
    benchmarks = json.loads(bench_json.read_text())["benchmarks"]
    assert len(benchmarks) == expected
    assert all(b["extra_info"]["ms_p50"] > 0 for b in benchmarks)


def test_a_selection_plans_its_own_cases_and_keeps_the_json(tmp_path: Path) -> None:
    """`pytest benchmarks --benchmark-only -k …` without --benchmark-json: the rows count the
    selected cases as planned (not the whole grid, whose rest the report would call missing),
    and pytest-benchmark's JSON is kept beside the data folder, in raw/, under the run's id."""
    data = tmp_path / "data"
    suite = ["-m", "pytest", "benchmarks/test_layers.py", "--benchmark-only", "-q"]
    options = ["--grid", "smoke", "--bench-device", "cpu", "-p", "no:cacheprovider"]
    proc = _run([*suite, *options, "-k", "batch_norm", "--run-id", "picked"],
                {"MN_REPORT_DATA": str(data)})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    with (data / "layers-cpu-picked.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert 0 < len(rows) < len(_load_grid().cases("smoke", cuda=False))
    assert {r["cases_planned"] for r in rows} == {str(len(rows))}
    kept = json.loads((tmp_path / "raw" / "pytest-benchmark-picked.json").read_text())
    assert len(kept["benchmarks"]) == len(rows)


def test_full_grid_covers_spec_section_6() -> None:
    grid = _load_grid()
    cases = grid.cases("full", cuda=True)
    mode_cases = [c for c in cases if c.op in grid.MODE_OPS]
    assert {c.k for c in mode_cases} == {1, 2, 4, 6, 8}
    assert {(c.c, c.h, c.w) for c in cases} == set(grid.CIFAR_SHAPES + grid.IMAGENET_SHAPES)
    assert {c.n for c in cases} >= {4, 256}
    assert {c.dtype for c in cases} == {"float32", "bfloat16", "float16"}
    assert {c.layout for c in cases} == {"nchw", "nhwc"}
    assert {c.mode for c in cases} == {"forward", "backward", "full", "eval"}
    assert {c.provider for c in cases} == {
        "triton", "torch_ops", "reference", "reference_compiled", "native"
    }  # fmt: skip
    assert {c.op for c in cases} == set(grid.MODE_OPS + grid.NATIVE_OPS)
    assert len({c.id for c in cases}) == len(cases)
    # Bounded: focused sweeps, not the cross product; few distinct compiled modules.
    assert len(cases) < 800
    compiled = {(c.op, c.dtype, c.n, c.c, c.h, c.w, c.k) for c in cases
                if c.provider == "reference_compiled"}  # fmt: skip
    assert len(compiled) <= 12


def test_cpu_grids_leave_out_triton_and_groupnorm_matches_k() -> None:
    grid = _load_grid()
    for name in ("smoke", "small", "auto"):
        assert all(c.provider != "triton" for c in grid.cases(name, cuda=False))
    assert grid.resolve("auto", cuda=True) == "full"
    assert grid.group_norm_groups(4, 64) == 4 and grid.group_norm_groups(6, 64) == 1


def test_full_grid_sweeps_every_batch_and_judges_big_tensors_at_two_batches() -> None:
    """SPEC §6's batch sizes 4 ... 256 all swept; the goals on tensors >= 64 MiB (MN K=2
    fwd+bwd float32 NCHW) see more than one batch size."""
    grid = _load_grid()
    cases = grid.cases("full", cuda=True)
    assert {c.n for c in cases} == {4, 8, 16, 32, 64, 128, 256}
    headline = ("mode_norm", "triton", "full", 2, "float32", "nchw")
    big = {c.n for c in cases if (c.op, c.provider, c.mode, c.k, c.dtype, c.layout) == headline
           and c.numel * 4 >= 64 * 2**20}  # fmt: skip
    assert big == {128, 256}


def test_native_baselines_at_every_point_and_groupnorm_groups_divide_c() -> None:
    """BatchNorm, GroupNorm, InstanceNorm and LayerNorm wherever MN is measured (the report's
    ratios); GroupNorm with K groups where K divides C, else one group (K=6 with C=32)."""
    grid = _load_grid()
    cases = grid.cases("full", cuda=True)

    def points(op: str) -> set[tuple]:
        return {(c.mode, c.dtype, c.layout, c.n, c.c, c.h, c.w) for c in cases if c.op == op}

    for op in ("batch_norm", "group_norm", "instance_norm", "layer_norm", "mode_group_norm"):
        assert points(op) == points("mode_norm"), op
    group_norm = [c for c in cases if c.op == "group_norm"]
    assert all(c.c % c.k == 0 for c in group_norm)
    pairs = {(c.c, c.k) for c in group_norm}
    assert (32, 1) in pairs and (32, 2) in pairs and (64, 8) in pairs


def test_full_grid_puts_headline_cases_first_and_compiles_last() -> None:
    """Priority order, so that a run cut short keeps the headline: first every shape at K=2,
    float32, NCHW, batch 128 in the training modes; last the compiled reference (tens of
    seconds of compiling each), on training modes only, at K=2 and K=8."""
    grid = _load_grid()
    cases = grid.cases("full", cuda=True)
    head = [c for c in cases if c.mode in grid.TRAINING_MODES and c.dtype == "float32"
            and c.layout == "nchw" and c.n == 128 and c.k in (None, 2)
            and c.provider != "reference_compiled" and c.exec == "eager"]  # fmt: skip
    assert {(c.c, c.h, c.w) for c in head} == set(grid.CIFAR_SHAPES + grid.IMAGENET_SHAPES)
    assert cases[: len(head)] == head
    compiled = [c for c in cases if c.provider == "reference_compiled"]
    assert cases[len(cases) - len(compiled) :] == compiled
    assert {c.mode for c in compiled} == set(grid.TRAINING_MODES)
    assert {c.k for c in compiled} == {2, 8}


def test_core_and_extra_grids_split_the_full_grid_for_two_device_calls() -> None:
    """`core` (first call) holds the points the figures and the layer goals but one need:
    MN K=2 fwd+bwd on >= 64 MiB, K = 1 and K = 8, every batch, every shape; `extra` (second
    call) holds the compiled reference's points first (the remaining goal), then the rest.
    Together they are the full grid, each a self-contained run (its own baselines)."""
    grid = _load_grid()
    full, core, extra = (grid.cases(name, cuda=True) for name in ("full", "core", "extra"))
    assert {c.id for c in core} | {c.id for c in extra} == {c.id for c in full}
    assert core == full[: len(core)]  # the full grid's head, in the same order
    assert not any(c.provider == "reference_compiled" for c in core)
    headline = [c for c in core if (c.op, c.provider, c.mode, c.dtype, c.layout)
                == ("mode_norm", "triton", "full", "float32", "nchw")]  # fmt: skip
    assert any(c.k == 2 and c.numel * 4 >= 64 * 2**20 for c in headline)
    assert {1, 8} <= {c.k for c in headline}
    assert {c.n for c in core} == set(grid.BATCHES)
    assert {(c.c, c.h, c.w) for c in core} == set(grid.CIFAR_SHAPES + grid.IMAGENET_SHAPES)

    def point(c) -> tuple:
        return (c.mode, c.dtype, c.layout, c.n, c.c, c.h, c.w)

    compiled = [c for c in extra if c.provider == "reference_compiled"]
    assert point(extra[0]) == point(compiled[0])  # the first point already compiles
    modes = [c.mode for c in compiled]
    assert modes == sorted(modes, key=lambda mode: mode != "full")  # fwd+bwd ones first
    for case in compiled:  # each compiled case's baselines are measured in the same run
        same = {(c.op, c.provider) for c in extra if point(c) == point(case)}
        assert {("mode_norm", "triton"), ("batch_norm", "native")} <= same


def test_graph_cases_replay_ours_and_two_baselines_where_the_core_measures_eagerly() -> None:
    """On a GPU the core grid ends with CUDA-graph replays (exec cudagraph) of forward+backward:
    MN and MGN by Triton beside BatchNorm2d and GroupNorm at each of their points (the report
    pairs within exec), every shape, >= 64 MiB at batch 128 and 256, K = 1 and 8; each point
    also measured eagerly. CPU grids have none."""
    grid = _load_grid()
    full, core = grid.cases("full", cuda=True), grid.cases("core", cuda=True)
    graphed = [c for c in full if c.exec == "cudagraph"]
    assert graphed and graphed == [c for c in core if c.exec == "cudagraph"]
    assert core[-len(graphed) :] == graphed  # the core's last cases
    kinds = {("mode_norm", "triton"), ("mode_group_norm", "triton"), ("batch_norm", "native"),
             ("group_norm", "native")}  # fmt: skip
    assert {(c.op, c.provider) for c in graphed} == kinds and {c.mode for c in graphed} == {"full"}
    eager = {c for c in full if c.exec == "eager"}
    assert all(replace(c, exec="eager") in eager for c in graphed)
    points: dict[tuple, set] = {}
    for c in graphed:
        points.setdefault((c.dtype, c.layout, c.n, c.c, c.h, c.w), set()).add((c.op, c.provider))
    assert all(ops == kinds for ops in points.values())
    assert {(c.c, c.h, c.w) for c in graphed} == set(grid.CIFAR_SHAPES + grid.IMAGENET_SHAPES)
    mn = [c for c in graphed if c.op == "mode_norm"]
    assert {c.n for c in mn if c.numel * 4 >= 64 * 2**20 and c.k == 2} == {128, 256}
    assert {1, 2, 8} <= {c.k for c in mn}
    assert len({c.id for c in full}) == len(full) and all(
        c.id.endswith("-cudagraph") for c in graphed
    )
    for name in ("small", "smoke"):
        assert all(c.exec == "eager" for c in grid.cases(name, cuda=True))
    assert all(c.exec == "eager" for c in grid.cases("full", cuda=False))


def test_smoke_grid_covers_every_mode_and_both_layouts() -> None:
    """The tests' grid takes every code path of the suite: four modes, NCHW and NHWC."""
    cases = _load_grid().cases("smoke", cuda=False)
    assert {c.mode for c in cases} == {"forward", "backward", "full", "eval"}
    assert {c.layout for c in cases} == {"nchw", "nhwc"}


def test_benchmark_groups_hold_one_point_each() -> None:
    """pytest-benchmark compares within a group: every op and provider at one point, never
    forward against backward times."""
    groups: dict[str, set[tuple]] = {}
    for c in _load_grid().cases("full", cuda=True):
        groups.setdefault(c.group, set()).add((c.mode, c.dtype, c.layout, c.n, c.c, c.h, c.w))
    assert all(len(points) == 1 for points in groups.values())


def test_no_compile_option_leaves_out_the_compiled_reference() -> None:
    """The CPU grid measures torch.compile(reference) unless --no-compile says not to."""
    grid = _load_grid()
    assert any(c.provider == "reference_compiled" for c in grid.cases("small", cuda=False))
    suite = ["-m", "pytest", "benchmarks/test_layers.py", "--collect-only", "-q"]
    options = ["--grid", "small", "--bench-device", "cpu", "--no-compile", "-p", "no:cacheprovider"]
    proc = _run([*suite, *options], {})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ids = [line for line in proc.stdout.splitlines() if "::test_layer[" in line]
    assert len(ids) == len(grid.cases("small", cuda=False, compile=False))
    assert not any("reference_compiled" in i for i in ids)


def test_the_suite_takes_its_grid_device_and_compile_options(monkeypatch) -> None:
    """--grid, --bench-device and --no-compile choose the cases (in process: the collect-only
    run above checks --no-compile on the small grid, which is also the CPU's `auto`), and the
    header names the grid and the count of cases the run will take."""
    conftest = _load_benchmark("conftest", monkeypatch)
    grid = conftest.grid

    def config(**options):
        given = {"grid": "auto", "bench_device": "cpu", "no_compile": False, "time_budget": 0.0}
        return SimpleNamespace(getoption={**given, **options}.__getitem__)

    for name in ("smoke", "small", "core"):
        for no_compile in (False, True):
            picked = conftest._cases(config(grid=name, no_compile=no_compile))
            assert picked == grid.cases(name, cuda=False, compile=not no_compile), name
    assert conftest._cases(config()) == grid.cases("small", cuda=False)
    with pytest.raises(ValueError, match="grid must be one of"):  # not the full grid silently
        grid.cases("tiny", cuda=False)
    smoke = config(grid="smoke")
    header = conftest.pytest_report_header(smoke)[0]
    assert f"grid=smoke, cases={len(grid.cases('smoke', cuda=False))}," in header
    assert "device=cpu" in header
    monkeypatch.setattr(conftest.measure, "cpu_load_warning", lambda device: "WARNING: loaded")
    assert conftest.pytest_report_header(smoke)[-1] == "WARNING: loaded"  # said before timing


@pytest.mark.parametrize(
    "budget, spent, provider, slowest, runs",
    [
        (0.0, 1e6, "reference_compiled", None, True),  # 0: no limit
        (100.0, 101.0, "reference", None, False),  # budget spent
        (100.0, 50.0, "reference", None, True),
        (100.0, 60.0, "reference_compiled", None, False),  # 40 s left: too little to compile
        (100.0, 50.0, "reference_compiled", None, True),
        (100.0, 75.0, "reference_compiled", 10.0, True),  # the slowest so far took 10 s
        (100.0, 75.0, "reference_compiled", 30.0, False),  # ... or 30 s
        (100.0, 99.0, "reference", 30.0, True),
    ],
)
def test_time_budget_skips_cases_that_cannot_finish(
    monkeypatch, budget, spent, provider, slowest, runs
):
    conftest = _load_benchmark("conftest", monkeypatch)
    case = conftest.grid.Case("mode_norm", provider, "full", "float32", "nchw", 4, 16, 8, 8, 2)
    stash = {conftest._STARTED: time.perf_counter() - spent}
    if slowest is not None:
        stash[conftest._SLOWEST_COMPILED] = slowest
    config = SimpleNamespace(getoption={"time_budget": budget}.__getitem__, stash=stash)
    item = SimpleNamespace(config=config, callspec=SimpleNamespace(params={"case": case}))
    try:
        conftest.pytest_runtest_setup(item)
        ran = True
    except pytest.skip.Exception:
        ran = False
    assert ran == runs


def test_the_slowest_compiled_case_sets_the_next_reserve(monkeypatch):
    conftest = _load_benchmark("conftest", monkeypatch)
    config = SimpleNamespace(stash={})
    for provider, took in (
        ("reference_compiled", 0.2),
        ("reference", 0.5),
        ("reference_compiled", 0.1),
    ):
        case = conftest.grid.Case("mode_norm", provider, "full", "float32", "nchw", 4, 16, 8, 8, 2)
        item = SimpleNamespace(config=config, callspec=SimpleNamespace(params={"case": case}))
        clock = iter([0.0, took])
        monkeypatch.setattr(conftest.time, "perf_counter", lambda clock=clock: next(clock))
        hook = conftest.pytest_runtest_call(item)
        next(hook)
        with pytest.raises(StopIteration):
            hook.send(SimpleNamespace(excinfo=None))
    # A compiled case that fails (or is skipped) fast does not count.
    case = conftest.grid.Case("mode_norm", "reference_compiled", "full", "float32", "nchw",
                              4, 16, 8, 8, 2)  # fmt: skip
    item = SimpleNamespace(config=config, callspec=SimpleNamespace(params={"case": case}))
    clock = iter([0.0, 9.0])
    monkeypatch.setattr(conftest.time, "perf_counter", lambda: next(clock))
    hook = conftest.pytest_runtest_call(item)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(SimpleNamespace(excinfo=(RuntimeError, RuntimeError("OOM"), None)))
    assert config.stash[conftest._SLOWEST_COMPILED] == 0.2
    assert conftest.compile_reserve_s(0.2) == conftest.COMPILE_MARGIN * 0.2
    assert conftest.compile_reserve_s(None) == conftest.COMPILE_FIRST_RESERVE_S


# ------------------------------------ tools/bench.sh -----------------------------------


def _bench_sh(tmp_path: Path, interpreters: tuple[str, ...], env: dict[str, str]) -> list[str]:
    """Run a copy of tools/bench.sh with MN_NO_SETUP=1 on a PATH that holds only the shell
    tools it needs and stub `interpreters` (each logs its name and arguments); the log."""
    tree, bin_dir, log = tmp_path / "tree", tmp_path / "bin", tmp_path / "calls.log"
    (tree / "tools").mkdir(parents=True)
    (tree / "benchmarks").mkdir()
    (tree / "benchmarks" / "train_step.py").touch()
    (tree / "tools" / "bench.sh").write_text((REPO / "tools" / "bench.sh").read_text())
    bin_dir.mkdir()
    for tool in ("bash", "date", "mkdir", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name in interpreters:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        stub.chmod(0o755)
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(tree / "tools" / "bench.sh")],
        env={"PATH": str(bin_dir), "MN_NO_SETUP": "1", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize(
    "interpreters, env, used",
    [
        (("python3",), {}, "python3"),  # a lent GPU machine: no `python` at all
        (("python", "python3"), {}, "python"),
        (("python", "mypy3"), {"PYTHON": "mypy3"}, "mypy3"),
    ],
)
def test_bench_sh_runs_every_stage_with_the_interpreter_there_is(tmp_path, interpreters, env, used):
    calls = _bench_sh(tmp_path, interpreters, env)
    assert [c.split()[:3] for c in calls] == [
        [used, "-m", "pytest"], [used, "benchmarks/train_step.py"],
        [used, "benchmarks/step_profile.py"], [used, "benchmarks/report.py"],
    ]  # fmt: skip


# ------------------------------------ the report ---------------------------------------


def _report(data: Path, out: Path) -> str:
    proc = _run(["benchmarks/report.py", "--data", str(data), "--out", str(out)], {})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name in FIGURES:
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, png
    return (out / "README.md").read_text()


def test_report_on_fixture(tmp_path: Path) -> None:
    text = _report(FIXTURE.parent, tmp_path)
    assert FIXTURE_GPU in text and "No GPU data yet" not in text
    assert "cpu (pipeline check, not GPU speed)" in text
    assert "**MISSED**" in text and "| met |" in text
    assert "End-to-end training step" in text and "| resnet56 | eager | triton | 2 |" in text
    for name in FIGURES:
        assert f"(figures/{name}.png)" in text
    # The worst MN/BatchNorm ratio is shown rounded up to 3 digits, never in our favour.
    worst = _worst_mn_over_bn(pd.read_csv(FIXTURE))
    decimals = 2 - math.floor(math.log10(worst))
    assert f"| {math.ceil(worst * 10**decimals) / 10**decimals:.{decimals}f}x |" in text


def _worst_mn_over_bn(df: pd.DataFrame) -> float:
    df = df[df["device"] == FIXTURE_GPU]
    key = ["mode", "dtype", "layout", "N", "C", "H", "W"]
    mn = df[(df["op"] == "mode_norm") & (df["provider"] == "triton") & (df["K"] == 2)]
    mn = mn[(mn["mode"] == "full") & (mn["N"] * mn["C"] * mn["H"] * mn["W"] * 4 >= 64 * 2**20)]
    merged = mn.merge(df[df["op"] == "batch_norm"][[*key, "ms_p50"]], on=key)
    return float((merged["ms_p50_x"] / merged["ms_p50_y"]).max())


def test_report_without_gpu_rows_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = FIXTURE.read_text().splitlines()
    cpu_only = [lines[0]] + [line for line in lines[1:] if FIXTURE_GPU not in line]
    (data / "cpu.csv").write_text("\n".join(cpu_only) + "\n")
    text = _report(data, tmp_path / "out")
    assert "No GPU data yet" in text and FIXTURE_GPU not in text


def test_report_with_no_layer_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = FIXTURE.read_text().splitlines()
    columns = lines[0].split(",")
    op = columns.index("op")
    steps = [line for line in lines[1:] if line.split(",")[op] == "train_step"]
    cpu_steps = [line for line in steps if FIXTURE_GPU not in line]
    assert cpu_steps
    (data / "steps.csv").write_text("\n".join([lines[0], *cpu_steps]) + "\n")
    text = _report(data, tmp_path / "out")
    assert "No GPU data yet" in text and "No layer rows yet" in text


# ----------------------------------- host overhead -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, path",
    [
        (["--compile-only"], "Triton, compile-only"),
        (["--compile-only", "--skip-launch-path"], "Triton, without its launch path"),
        (["--compile-only", "--compiled"], "Triton, compile-only"),
    ],
)
def test_host_overhead_compile_only_times_the_triton_path(
    flags: list[str], path: str, tmp_path: Path
) -> None:
    """No GPU needed: the Triton path's host time, kernels compiled for sm_90, not run (or,
    with --skip-launch-path, not even looked up: what Triton's launch path costs). With
    --compiled, the maps' layers under torch.compile too, the ops opaque: inductor launches
    no user kernels on a CPU, so the traced way is left out, and said to be."""
    proc = _run(
        ["benchmarks/host_overhead.py", *flags, "--calls", "3"],
        {"TRITON_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"({path})" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if "µs" in line]
    times = [float(line.split()[-2]) for line in lines]
    compiled = "--compiled" in flags
    # 2-D and 1-D layers; with --compiled the 2-D ones again: BatchNorm, MN and MGN opaque
    assert len(times) == (9 if compiled else 6) and all(t > 0 for t in times), proc.stdout
    if compiled:
        assert [line.rsplit(maxsplit=2)[0].strip() for line in lines[6:]] == [
            "BatchNorm2d, compiled",
            "mn_triton.ModeNorm2d K=2, compiled, ops opaque",
            "mn_triton.ModeGroupNorm2d K=2, compiled, ops opaque",
        ]
        assert "kernels traced: needs CUDA" in proc.stdout


def test_host_overhead_calls_start_from_no_gradients(monkeypatch):
    """Each timed call starts with the input's and parameters' gradients None, as a training
    step after zero_grad(): accumulating into the last call's would add an add_ per leaf, 5
    for our layers against BatchNorm's 3."""
    host = _load_benchmark("host_overhead", monkeypatch)
    layer = _FreshGradsLinear(3)

    x = torch.randn(2, 3, requires_grad=True)
    assert host._per_call_us(layer, x, calls=2) > 0
    assert len(layer.seen) == 12 and all(layer.seen)  # a warm-up round and 5 timed ones, of 2 calls


def test_host_overhead_reports_a_compiled_way_that_fails_and_goes_on(monkeypatch, capsys):
    """A way of compiling that fails (the traced one, new on a GPU) is printed as FAILED with
    its error, the other ways are still timed, and the script exits with status 1."""
    host = _load_benchmark("host_overhead", monkeypatch)
    monkeypatch.setattr(host, "compiled_variants", lambda _: [("opaque", False), ("traced", True)])

    def compiled_us(layer, x, calls, traced):
        if traced:
            raise RuntimeError("inductor refused\nsecond line")
        return 2.0

    monkeypatch.setattr(host, "_compiled_us", compiled_us)
    monkeypatch.setattr(host, "_per_call_us", lambda *_: 1.0)
    monkeypatch.setattr(sys, "argv", ["host_overhead.py", "--device", "cpu", "--compiled"])
    assert host.main() == 1
    out = capsys.readouterr().out
    assert "ModeNorm2d K=2, traced" in out and "FAILED: RuntimeError: inductor refused" in out
    assert "second line" not in out
    assert "ModeNorm2d K=2, opaque" in out and "ModeGroupNorm2d K=2, opaque" in out
    assert "BatchNorm2d, compiled" in out


def test_host_overhead_times_compiled_features_with_and_without_their_path(monkeypatch, capsys):
    """--compiled-input features times the 1-D layers on (N, C) features under torch.compile;
    --points off turns off the path that rows of one element take, while they are timed."""
    from mn_triton import backend

    host = _load_benchmark("host_overhead", monkeypatch)
    monkeypatch.setattr(backend, "POINT_ROWS", True)  # put back after the test
    timed = []

    def compiled_us(layer, x, calls, traced):
        timed.append((type(layer).__name__, tuple(x.shape), backend.POINT_ROWS))
        return 2.0

    monkeypatch.setattr(host, "_compiled_us", compiled_us)
    monkeypatch.setattr(host, "_per_call_us", lambda *_: 1.0)
    for points in ("on", "off"):
        argv = ["host_overhead.py", "--device", "cpu", "--compiled", "--compiled-input",
                "features", "--points", points]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        assert host.main() == 0
    assert "under torch.compile, cpu (torch ops), input (2, 8):" in capsys.readouterr().out
    layers = ["BatchNorm1d", "ModeNorm1d", "ModeGroupNorm1d"]
    assert timed == [(name, (2, 8), on) for on in (True, False) for name in layers]


def test_host_overhead_compiles_each_way_afresh(monkeypatch) -> None:
    """--compiled: each timing compiles the layer afresh, whole (fullgraph), with the switch
    as asked while it traces, and puts the switch back."""
    host = _load_benchmark("host_overhead", monkeypatch)
    seen, options = [], []
    monkeypatch.setattr(host.torch, "compile", lambda layer, **kw: options.append(kw) or layer)
    monkeypatch.setattr(host.torch._dynamo, "reset", lambda: seen.append("reset"))
    monkeypatch.setattr(host, "_per_call_us", lambda *_: seen.append(host.ops.TRACE_KERNELS) or 1.0)
    monkeypatch.setattr(host.ops, "TRACE_KERNELS", False)
    layer = torch.nn.Identity()
    assert host._compiled_us(layer, torch.ones(1), 1, True) == 1.0
    assert host.ops.TRACE_KERNELS is False  # put back at once, not by the next call
    assert host._compiled_us(layer, torch.ones(1), 1, False) == 1.0
    assert seen == ["reset", True, "reset", "reset", False, "reset"]
    assert options == [{"fullgraph": True}] * 2  # a graph break fails, not times half a layer
    assert host.ops.TRACE_KERNELS is False
    assert [traced for _, traced in host.compiled_variants(True)] == [False, True]
    assert [traced for _, traced in host.compiled_variants(False)] == [False]


def test_host_overhead_is_the_median_round_in_microseconds_per_call(monkeypatch) -> None:
    """Five timed rounds after a warm-up, each of `calls` forward+backward calls."""
    host = _load_benchmark("host_overhead", monkeypatch)
    rounds_s = [3e-3, 1e-3, 5e-3, 2e-3, 4e-3]
    ticks = iter([t for d in rounds_s for t in (10.0, 10.0 + d)])
    monkeypatch.setattr(host, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    x = torch.ones(3, requires_grad=True)
    assert host._per_call_us(torch.nn.Identity(), x, 2) == pytest.approx(1500.0)  # 3 ms / 2
    assert x.grad.tolist() == [1.0] * 3  # each call's backward, from no gradient


def test_host_overhead_rounds_on_a_gpu_end_when_its_work_is_done(monkeypatch) -> None:
    """On a GPU (an input whose is_cuda is faked) each round, warm-up included, synchronises
    after its calls and before its clock stops: the calls' queued work is inside the round."""
    host = _load_benchmark("host_overhead", monkeypatch)
    events: list[str] = []
    monkeypatch.setattr(host.torch.cuda, "synchronize", lambda: events.append("sync"))
    clock = SimpleNamespace(perf_counter=lambda: events.append("clock") or 1.0)
    monkeypatch.setattr(host, "time", clock)

    class Layer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x) -> torch.Tensor:
            events.append("call")
            return self.w * 2.0

    x = SimpleNamespace(is_cuda=True, grad=None)  # a CUDA input, as far as the timing sees
    assert host._per_call_us(Layer(), x, calls=2) == 0.0
    one_round = ["clock", "call", "call", "sync", "clock"]
    assert events == ["call", "call", "sync"] + one_round * 5


def test_host_overhead_layers_are_what_their_labels_say(monkeypatch) -> None:
    """BatchNorm and our two layers, per rank, on the 8 channels of their shape, ours at K = 2
    as their labels say; the shapes are maps (rank 2) and features (rank 1)."""
    host = _load_benchmark("host_overhead", monkeypatch)
    assert [(dim, len(shape)) for dim, shape in host.SHAPES] == [(2, 4), (1, 2)]
    for dim, shape in host.SHAPES:
        layers = host.layers_for(dim)
        kinds = [f"BatchNorm{dim}d", f"ModeNorm{dim}d", f"ModeGroupNorm{dim}d"]
        assert [type(layer).__name__ for layer in layers.values()] == kinds
        assert list(layers)[0] == kinds[0]
        for name, layer in list(layers.items())[1:]:
            assert name == f"mn_triton.{type(layer).__name__} K={layer.num_modes}"
            assert layer.num_modes == 2
        assert {layer.num_features for layer in layers.values()} == {shape[1]}


@pytest.mark.parametrize(
    "argv, message",
    [(["--compile-only"], "unset TRITON_INTERPRET"), (["--skip-launch-path"], "--compile-only")],
)
def test_host_overhead_refuses_options_it_cannot_honour(argv, message, monkeypatch, capsys):
    """--compile-only through the interpreter would time the interpreter, and
    --skip-launch-path needs --compile-only: both refused before anything is patched or timed."""
    host = _load_benchmark("host_overhead", monkeypatch)
    monkeypatch.setattr(host.backend, "INTERPRETING", True)
    patched = SimpleNamespace(compile_instead_of_launch=lambda: pytest.fail("patched the launch"))
    monkeypatch.setitem(sys.modules, "compile_check", patched)
    monkeypatch.setattr(host, "_per_call_us", lambda *_: pytest.fail("timed"))
    monkeypatch.setattr(sys, "argv", ["host_overhead.py", "--device", "cpu", *argv])
    with pytest.raises(SystemExit) as exited:
        host.main()
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_host_overhead_times_16_bit_inputs_on_float32_layers(monkeypatch, capsys) -> None:
    """--dtype: every timed input (eager and compiled) in that dtype, said in the headers;
    the layers' parameters stay float32, as under autocast."""
    host = _load_benchmark("host_overhead", monkeypatch)
    monkeypatch.setattr(host.backend, "POINT_ROWS", host.backend.POINT_ROWS)  # main sets it
    timed = []

    def per_call_us(layer, x, calls):
        timed.append((x.dtype, {p.dtype for p in layer.parameters()}, x.requires_grad))
        return 1.0

    monkeypatch.setattr(host, "_per_call_us", per_call_us)
    monkeypatch.setattr(
        host, "_compiled_us", lambda layer, x, calls, traced: per_call_us(layer, x, calls)
    )
    argv = ["host_overhead.py", "--device", "cpu", "--dtype", "bfloat16", "--compiled"]
    monkeypatch.setattr(sys, "argv", argv)
    assert host.main() == 0
    assert timed == [(torch.bfloat16, {torch.float32}, True)] * 9
    out = capsys.readouterr().out
    assert "input (2, 8, 4, 4) bfloat16:" in out and "input (2, 8) bfloat16:" in out
    assert "under torch.compile, cpu (torch ops), input (2, 8, 4, 4) bfloat16:" in out


@pytest.mark.parametrize("argv, device", [([], "cuda"), (["--device", "cuda:0"], "cuda:0")])
def test_host_overhead_on_a_gpu_times_every_layer_there_and_the_traced_way(
    argv, device, monkeypatch, capsys
) -> None:
    """On a machine with CUDA (faked), the stage as gpu_run.sh runs it (no --device): every
    layer moved to the GPU and timed on a GPU input, labelled as the Triton path; with
    --compiled, ours also with the kernels traced, on the input the kernel warm-up compiles
    (COMPILED_SHAPE), and no 'needs CUDA' note."""
    host = _load_benchmark("host_overhead", monkeypatch)
    monkeypatch.setattr(host.backend, "POINT_ROWS", host.backend.POINT_ROWS)  # main sets it
    monkeypatch.setattr(host.torch.cuda, "is_available", lambda: True)
    real_randn, inputs = torch.randn, []

    def randn(shape, device, dtype, requires_grad):
        inputs.append(device)
        assert dtype == torch.float32  # the default
        return real_randn(shape, requires_grad=requires_grad)

    monkeypatch.setattr(host.torch, "randn", randn)
    real_layers = host.layers_for
    monkeypatch.setattr(host, "layers_for", lambda dim: {k: _Placed() for k in real_layers(dim)})
    eager, compiled = [], []
    monkeypatch.setattr(
        host, "_per_call_us", lambda layer, x, calls: eager.append(layer.device) or 1.0
    )

    def compiled_us(layer, x, calls, traced):
        compiled.append((layer.device, tuple(x.shape), traced))
        return 2.0

    monkeypatch.setattr(host, "_compiled_us", compiled_us)
    monkeypatch.setattr(sys, "argv", ["host_overhead.py", *argv, "--compiled"])
    assert host.main() == 0
    out = capsys.readouterr().out
    assert f"host time per forward+backward call, {device} (Triton), input (2, 8, 4, 4):" in out
    assert eager == [device] * 6 and inputs == [device] * 3
    maps = host.COMPILED_SHAPE[1]
    assert compiled == [(device, maps, traced) for traced in (False, False, True, False, True)]
    assert "needs CUDA" not in out
    assert "ModeGroupNorm2d K=2, compiled, kernels traced" in out
