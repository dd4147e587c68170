"""tools/fuzz.py and tools/fuzz_sync.py: their draws cover the space the tests pin, replay
exactly, and a wrong kernel, mix or merge makes them fail."""

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import mn_triton
import mn_triton.mix
from helpers import OracleError, _nudged, oracle_errors
from mn_triton.sync import _merge_across_processes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import fuzz  # noqa: E402
import fuzz_sync  # noqa: E402


def _args(**kw) -> argparse.Namespace:
    base = {"draws": 4, "seconds": 0.0, "seed": 0, "backend": "torch", "device": "cpu"}
    base.update(compile="none", only="all")
    return argparse.Namespace(**{**base, "verbose": False, **kw})


def test_draws_cover_the_space_and_replay():
    draws = [fuzz.draw(seed) for seed in range(600)]
    assert fuzz.draw(123) == draws[123]  # a seed is a replay
    fields = ("layer", "dtype", "layout", "num_modes", "training", "tiny_tiles", "offset", "eps")
    fields += ("dead",)
    for field in fields:
        seen = Counter(getattr(d, field) for d in draws)
        assert len(seen) >= 2, (field, seen)
    assert {d.layer for d in draws} == {
        f"{kind}{dims}d" for kind in ("ModeNorm", "ModeGroupNorm") for dims in (1, 2, 3)
    }
    assert {d.layout for d in draws} == {"contiguous", "sliced", "transposed", "channels_last"}
    for d in draws:
        n, c, *spatial = d.shape
        length = 1
        for s in spatial:
            length *= s
        assert (c if d.layer.startswith("ModeGroupNorm") else n) * length >= 4, d
        assert d.layout != "channels_last" or len(d.shape) >= 4
        assert d.offset < 1e4 or d.dtype == "float32"
        assert d.dtype != "float64"  # left to the tests: see fuzz.DTYPES
        assert not d.outlier_gap or d.offset == 0.0
    assert 0.1 < sum(bool(d.outlier_gap) for d in draws) / len(draws) < 0.4
    dead = [d for d in draws if d.dead]
    assert 0.05 < len(dead) / len(draws) < 0.15
    assert any(d.eps < 1e-26 for d in dead)  # where r³ overflows float32
    assert all(d.shape[0 if d.layer.startswith("ModeGroupNorm") else 1] > 1 for d in dead)


def test_build_lays_the_input_out_as_drawn():
    for seed in range(60):
        d = fuzz.draw(seed)
        layer, x = fuzz.build(d, "cpu")
        if d.dead:
            zeros = x[-1] if d.layer.startswith("ModeGroupNorm") else x[:, -1]
            assert not zeros.any() and x.any()
        assert tuple(x.shape) == d.shape and str(x.dtype) == f"torch.{d.dtype}"
        assert layer.training == d.training and layer.num_modes == d.num_modes
        if d.layout == "contiguous":
            assert x.is_contiguous()
        elif min(d.shape) > 1:  # (a layout does not show in the strides of size-1 dims)
            assert not x.is_contiguous()


@pytest.mark.parametrize(
    ("err", "bound", "float32_err", "expected"),
    [
        (1e-6, 1e-5, None, "ok"),
        (2e-5, 1e-5, None, "OVER"),
        (2e-5, 1e-5, 5e-6, "ill-conditioned"),  # within 16x of what float32 arithmetic loses
        (2e-4, 1e-5, 5e-6, "OVER"),
        (1e-3, 1e-5, 1.5e-5, "OVER"),  # far worse than float32 arithmetic
        (float("nan"), 1e-5, 1.5e-5, "OVER"),
        (1.0, 1e-5, float("inf"), "OVER"),  # a float32 reference that overflowed explains nothing
        (float("inf"), 1e-5, float("inf"), "OVER"),
    ],
)
def test_verdict(err, bound, float32_err, expected):
    assert fuzz.verdict(OracleError("grad of x", err, bound, float32_err)) == expected


def test_gate_gradients_are_judged_by_bound_or_scale():
    """Their bound follows one draw of the float32 reference's heavy-tailed error, and their
    relative error says nothing where they nearly vanish: either measure may clear them."""
    bound = 16 * 1e-6

    def gate(err: float, scale_err: float, bound: float = bound) -> str:
        return fuzz.verdict(OracleError("grad of gate.bias", err, bound, 1e-6, scale_err))

    assert gate(0.5 * bound, 1.0) == "ok"
    assert gate(1.0, 1e-8) == "ok"  # a near-0 gradient, off by 100 % of itself: rounding
    assert gate(3 * bound, 1e-4) == "gate tail"
    assert gate(1.0, 3e-6) == "gate tail"
    assert gate(9 * bound, 1e-4) == "OVER"
    assert gate(1.0, 1e-4, bound=10.0) == "OVER"  # a garbage float32 reference clears nothing
    assert fuzz.verdict(OracleError("grad of weight", 3 * bound, 1e-5, 1e-6)) == "OVER"


def test_the_tests_cap_gate_bounds_that_a_garbage_reference_sets():
    """check_against_oracle (OracleError.within) is stricter than the fuzzer: a gate gradient
    must meet its bound, and where that bound passes GATE_BOUND_CAP (at offsets of 1e4 it
    reaches 1e2–1e10) also the cap or GATE_SCALE_TOL of its scale."""

    def gate(err: float, bound: float, scale_err: float) -> bool:
        return OracleError("grad of gate.bias", err, bound, bound / 16, scale_err).within()

    assert gate(1e-3, 1e-2, 1.0)  # the cap leaves bounds below it alone
    assert not gate(2e-2, 1e-2, 1e-9)  # and the scale does not clear what passes them
    assert gate(0.05, 1e8, 1e-3)  # within the cap
    assert gate(1e3, 1e8, 1e-9)  # a near-0 gradient, off by rounding only
    assert not gate(1e3, 1e8, 1e-4)  # which was within its bound
    assert not gate(float("nan"), 1e8, float("nan"))
    assert OracleError("grad of weight", 1e-6, 1e-5).within()
    assert not OracleError("grad of weight", 2e-5, 1e-5, scale_err=None).within()


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_a_few_draws_pass(backend):
    draws = 3 if backend == "triton" else 12
    lines = []
    assert fuzz.run(_args(backend=backend, draws=draws), lines.append) == 0
    assert f"{draws} draws ({backend} on cpu): 0 over a bound" in "\n".join(lines)


def test_one_element_row_draws_take_that_path(monkeypatch):
    """--only one-element-rows keeps the draws whose layer call skips the passes over x."""
    from mn_triton import backend

    taken = []
    point_rows = backend.point_rows
    monkeypatch.setattr(backend, "point_rows", lambda *a: taken.append(point_rows(*a)) or taken[-1])
    lines = []
    assert fuzz.run(_args(draws=60, only="one-element-rows", backend="triton"), lines.append) == 0
    (summary,) = [line for line in lines if " draws (triton on cpu)" in line]
    checked = int(summary.split()[0])
    assert 0 < checked < 60 and len(taken) >= checked and all(taken), summary


def test_a_wrong_mix_is_caught(monkeypatch):
    """dx's per-row bias off by 1e-4 of its size, in the torch path's mix backward."""
    right = mn_triton.mix._dx_coefficients

    def wrong(*args):
        e, f = right(*args)
        return e, f * (1 + 1e-4)

    monkeypatch.setattr(mn_triton.mix, "_dx_coefficients", wrong)
    lines = []
    assert fuzz.run(_args(draws=8), lines.append) > 0
    over = [line for line in lines if line.startswith("OVER")]
    assert over and any("grad of input" in line and "OVER" in line for line in lines)
    assert any(line.strip().startswith("replay: python tools/fuzz.py --seed") for line in lines)


def test_command_line():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, str(REPO / "tools" / "fuzz.py"), "--backend", "torch", "-v"]
    done = subprocess.run(
        [*command, "--draws", "3"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "3 draws (torch on cpu): 0 over a bound" in out
    assert out.count("ok: Draw(") == 3


def test_nudged_inputs_only_raise_the_float32_estimate():
    """The estimate of float32 rounding takes the larger of two evaluations; bounds stay."""
    for seed in range(6):
        d = fuzz.draw(seed)
        results = []
        for nudge in (False, True):
            layer, x = fuzz.build(d, "cpu")
            torch.manual_seed(seed)  # the same upstream gradient
            with mn_triton.use_backend("torch"):
                results.append(oracle_errors(layer, x, gates_matter=d.gates_matter(), nudge=nudge))
        for plain, nudged in zip(*results, strict=True):
            assert (plain.what, plain.err, plain.bound) == (nudged.what, nudged.err, nudged.bound)
            if plain.float32_err is not None:
                assert nudged.float32_err >= plain.float32_err


def test_nudging_dy_shows_a_bias_gradient_that_cancels():
    """Draw 99796: one channel, so the bias gradient is one sum Σ dy, of 48 terms that nearly
    cancel. Any float32 order of summation errs by up to ~1e-4 there; the one evaluation of
    the reference happened to err by 5e-6, ours by 1e-4 (once reported OVER). With dy nudged
    as well as x, the estimate of float32 rounding sees the cancellation."""
    d = fuzz.draw(99796)
    assert d.shape[1] == 1
    results = []
    for nudge in (False, True):
        layer, x = fuzz.build(d, "cpu")  # seeds torch: dy is the fuzzer's
        with mn_triton.use_backend("torch"):
            errors = oracle_errors(layer, x, gates_matter=d.gates_matter(), nudge=nudge)
        results.append(next(e for e in errors if e.what == "grad of bias"))
    plain, nudged = results
    assert nudged.float32_err > 4 * plain.float32_err
    assert fuzz.verdict(nudged) == "ill-conditioned"


def test_nudges_move_every_element_by_one_ulp_either_way():
    """Up as well as down: x·(1 + 2⁻²⁴) rounds back to x in float32, so a nudge written that
    way moved only the elements nudged down."""
    x = torch.randn(4096) * torch.logspace(-20, 20, 4096)
    up = torch.arange(4096) % 2 == 0
    nudged = _nudged(x, torch.where(up, 1.0, -1.0))
    inf = torch.full_like(x, torch.inf)
    assert torch.equal(nudged, torch.where(up, torch.nextafter(x, inf), torch.nextafter(x, -inf)))
    assert (nudged[up] > x[up]).all() and (nudged[~up] < x[~up]).all()


def test_a_weight_gradient_that_cancels_is_judged_ill_conditioned():
    """Draw 7401172 (the kernels): one channel and K = 1, so the weight gradient is one sum
    Σ dy·x̂ of 36 terms whose sizes add to 43 and which cancel to 0.006. Ours (the kernels'
    order of summation) errs by 1.7e-4; the float32 reference, in its order, by 5.6e-6; with
    every element nudged by an ulp, by 8.5e-5. It was reported OVER while the nudge moved only
    half of the elements."""
    d = fuzz.draw(7401172)
    (weight,) = [e for e in fuzz.check(d, "triton", "cpu") if e.what == "grad of weight"]
    assert weight.err > weight.bound
    assert fuzz.verdict(weight) == "ill-conditioned"


def test_compiled_draws_go_through_torch_compile():
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    lines = []
    assert fuzz.run(_args(draws=3, compile="aot_eager"), lines.append) == 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs >= 3
    assert "3 draws (torch on cpu, compiled by aot_eager): 0 over a bound" in "\n".join(lines)


def test_sync_fuzzer_passes():
    lines = []
    args = argparse.Namespace(draws=40, seed=5000, backend="torch", verbose=False)
    assert fuzz_sync.run(args, lines.append) == 0
    assert "40 draws: 0 over" in "\n".join(lines)
    draws = [fuzz_sync.draw(seed) for seed in range(300)]
    assert fuzz_sync.draw(7) == draws[7]
    assert {d.split for d in draws if d.n == 5} == set(range(6))  # empty processes too
    assert {d.num_modes for d in draws} == {1, 2, 3, 4, 8}
    assert {d.dtype for d in draws} == {"float32", "float16", "bfloat16"}
    assert any(d.channels_last for d in draws)


def test_sync_cluster_draws_move_their_samples_apart(monkeypatch):
    """Two groups of samples far apart (fuzz._clusters, as fuzz_sync draws them): the far
    ones cluster_gap above the rest, either process holding either group or both; only in
    float32 draws without an outlier, from a stream of their own (so the draws without them
    are the draws they were); `--only clusters` runs those alone."""
    draws = [fuzz_sync.draw(seed) for seed in range(600)]
    clustered = [d for d in draws if d.far_rows]
    assert len(clustered) >= 10
    assert all(d.dtype == "float32" and not d.outlier for d in clustered)
    assert {d.cluster_gap > 1e4 for d in clustered} == {True, False}
    assert {0 < d.split < d.n for d in clustered} == {True, False}  # split, and not
    for d in clustered[:12]:
        assert 0 < len(d.far_rows) < d.n and d.cluster_gap >= 100, d
        _layer, x, _dy = fuzz_sync.build(d)
        far = torch.zeros(d.n, dtype=torch.bool)
        far[list(d.far_rows)] = True
        gap = x.double()[far].mean() - x.double()[~far].mean()
        assert abs(gap.item() - d.cluster_gap) < 20, d  # randn·(0.5 … 2.5)
    lines = []
    args = argparse.Namespace(draws=140, seed=0, backend="torch", verbose=True, only="clusters")
    assert fuzz_sync.run(args, lines.append) == 0
    assert "2 draws: 0 over" in lines[-5]  # seeds 32 and 134 of the 140
    assert sum(line.startswith("ok: Draw(seed=") for line in lines) == 2
    monkeypatch.setattr(fuzz_sync, "_clusters", lambda *args: {})
    for d in clustered:
        assert fuzz_sync.draw(d.seed) == dataclasses.replace(d, far_rows=(), cluster_gap=0.0)


def _merge_off_by_1e_4_sigma(local, k, c, group, on_kernels=False):  # picklable (the fuzzer's
    merged = _merge_across_processes(local, k, c, group, on_kernels)  # processes import it)
    return dataclasses.replace(merged, residual=merged.residual + 1e-4 * merged.var.sqrt())


def test_sync_fuzzer_catches_a_wrong_merge():
    lines = []
    args = argparse.Namespace(draws=6, seed=5000, backend="torch", verbose=False)
    assert fuzz_sync.run(args, lines.append, merge=_merge_off_by_1e_4_sigma) > 0
    assert any(line.startswith("OVER") for line in lines)
    assert any("output" in line and "one process" in line and "OVER" in line for line in lines)
    replays = [line for line in lines if "replay: python tools/fuzz_sync.py --draws 1" in line]
    assert replays and all(line.endswith(" --backend torch -v") for line in replays)


# --- the tools' own judgement and bookkeeping (the layers stubbed out: fast) ---


def test_draws_reach_the_hard_cases():
    """What the fuzzer says it draws, it draws (600 seeds): one sample (MN and MGN), one
    channel, wide features, odd sizes, channels_last in 2-d and 3-d, every dtype, offset,
    K and momentum it lists, eval, no running estimates, no affine parameters, tiny tiles,
    default and other ε."""
    draws = [fuzz.draw(seed) for seed in range(600)]
    for kind in ("ModeNorm", "ModeGroupNorm"):
        assert any(d.shape[0] == 1 for d in draws if d.layer.rstrip("123d") == kind), kind
    assert any(d.shape[1] == 1 for d in draws) and max(d.shape[1] for d in draws) > 32
    assert any(s > 1 and s % 2 for d in draws for s in d.shape[2:])
    assert {len(d.shape) for d in draws if d.layout == "channels_last"} == {4, 5}
    assert {d.dtype for d in draws} == {"float32", "float16", "bfloat16"}
    assert {d.offset for d in draws} == {0.0, 1.0, 10.0, 1e4}
    assert {d.num_modes for d in draws} == {1, 2, 3, 4, 8, 16}
    assert {d.momentum for d in draws} == {0.1, 0.5, None}
    for field in ("training", "affine", "track_running_stats", "tiny_tiles"):
        assert {getattr(d, field) for d in draws} == {True, False}, field
    assert {d.eps == 1e-5 for d in draws if not d.dead} == {True, False}
    assert len({d.gate_scale for d in draws}) > 20


def test_build_makes_the_layer_and_data_drawn():
    """Every drawn setting reaches the layer and its input: ε, affine parameters, momentum,
    running estimates; the offset; the outlier row; the gates' scale."""
    outliers = offsets = small_gates = 0
    for seed in range(80):
        d = fuzz.draw(seed)
        layer, x = fuzz.build(d, "cpu")
        assert layer.eps == d.eps and (layer.weight is not None) == d.affine, d
        if d.layer.startswith("ModeNorm"):
            assert layer.momentum == d.momentum, d
            assert layer.track_running_stats == d.track_running_stats, d
        x = x.double()
        if d.offset >= 10 and not d.dead and not d.far_rows:
            offsets += 1
            assert abs(x.mean().item() - d.offset) < 4, d
        if d.outlier_gap and not d.dead:  # sample 0 (MGN: channel 0) far below the rest
            outliers += 1
            row, rest = (
                (x[:, 0], x[:, 1:]) if d.layer.startswith("ModeGroupNorm") else (x[0], x[1:])
            )
            assert row.mean() < rest.mean() - 3, d
            assert (layer.gate.weight[0] < 0).all(), d
        elif not d.outlier_gap and d.gate_scale < 0.05:
            small_gates += 1
            assert layer.gate.weight.abs().max() < 6 * d.gate_scale, d
    assert min(outliers, offsets, small_gates) >= 3


def test_cluster_draws_move_their_rows_apart(monkeypatch):
    """Two groups of rows far apart (fuzz._clusters): MN's far samples, MGN's far channels
    of every sample, cluster_gap above the rest; only in float32 draws without an outlier,
    from a stream of their own (so the draws without them are the draws they were)."""
    draws = [fuzz.draw(seed) for seed in range(600)]
    clustered = [d for d in draws if d.far_rows]
    for kind in ("ModeNorm", "ModeGroupNorm"):
        assert sum(d.layer.rstrip("123d") == kind for d in clustered) >= 3, kind
    assert all(d.dtype == "float32" and not d.outlier_gap for d in clustered)
    assert {d.cluster_gap > 1e4 for d in clustered} == {True, False}
    for d in clustered[:12]:
        rows = d.shape[1] if d.layer.startswith("ModeGroupNorm") else d.shape[0]
        assert 0 < len(d.far_rows) < rows, d
        if d.dead:  # a zeroed row would pull a group's mean
            continue
        _layer, x = fuzz.build(d, "cpu")
        x = x.double().transpose(0, 1) if d.layer.startswith("ModeGroupNorm") else x.double()
        far = torch.zeros(rows, dtype=torch.bool)
        far[list(d.far_rows)] = True
        gap = x[far].mean() - x[~far].mean()
        assert abs(gap.item() - d.cluster_gap) < 4, d  # randn·2
    monkeypatch.setattr(fuzz, "_clusters", lambda *args: {})
    for d in clustered:
        assert fuzz.draw(d.seed) == dataclasses.replace(d, far_rows=(), cluster_gap=0.0)


def _check_stub(monkeypatch, errors_of):
    """fuzz.check replaced by `errors_of(draw)`: the run's bookkeeping without the layers.
    Returns the draws it was asked to check."""
    seen = []

    def check(d, backend, device, compiler="none"):
        seen.append(d)
        return errors_of(d)

    monkeypatch.setattr(fuzz, "check", check)
    return seen


def test_run_counts_labels_and_replays_the_draw_that_was_over(monkeypatch):
    """Draw i has seed --seed + i; a draw with one error OVER is OVER whatever its others
    are (ill-conditioned here), counted, printed with the command that replays that draw,
    and named in the table of worst errors; a NaN error is the worst there is."""
    ok = OracleError("output", 1e-7, 1e-5, 1e-7)
    ill = OracleError("grad of weight", 2e-5, 1e-5, 5e-6)
    over = OracleError("grad of input", 1e-3, 1e-5, 1e-6)
    nan = OracleError("grad of bias", float("nan"), 1e-5, 1e-6)
    bad = {42: [ok, ill, over], 43: [ok, nan]}
    seen = _check_stub(monkeypatch, lambda d: bad.get(d.seed, [ok]))
    lines = []
    assert fuzz.run(_args(seed=40, draws=5), lines.append) == 2
    assert [d.seed for d in seen] == [40, 41, 42, 43, 44]
    text = "\n".join(lines)
    assert "5 draws (torch on cpu): 2 over a bound, 0 raised, 0 ill-conditioned" in text
    assert "OVER: Draw(seed=42," in text and "OVER: Draw(seed=43," in text
    replays = [line.strip() for line in lines if line.strip().startswith("replay:")]
    assert replays == [
        f"replay: python tools/fuzz.py --seed {seed} --draws 1 --backend torch --device cpu"
        " --compile none -v"
        for seed in (42, 43)
    ]
    table = [line for line in lines if line.startswith("    ") and line.endswith(")")]
    worst = {line[:40].strip(): line[40:].split() for line in table}
    assert worst["grad of input"] == ["100", "(42)"]
    assert worst["grad of bias"] == ["inf", "(43)"]


def test_a_draw_that_raises_is_named_counted_and_the_run_goes_on(monkeypatch):
    """An exception in a draw (memcheck's bounds errors are IndexErrors) names the draw and
    its replay, counts like an OVER, and the later draws are still checked (it stopped the
    run with a bare traceback)."""

    def errors_of(d):
        if d.seed == 11:
            raise IndexError("out of bounds\nsecond line")
        return []

    seen = _check_stub(monkeypatch, errors_of)
    lines = []
    assert fuzz.run(_args(seed=10, draws=3), lines.append) == 1
    assert [d.seed for d in seen] == [10, 11, 12]
    text = "\n".join(lines)
    assert "RAISED: Draw(seed=11," in text and "    IndexError: out of bounds\n" in text
    assert "replay: python tools/fuzz.py --seed 11 --draws 1 --backend torch" in text
    assert "3 draws (torch on cpu): 0 over a bound, 1 raised," in text
    assert "Traceback" not in text
    lines.clear()  # with -v, as the replay runs: the traceback too
    fuzz.run(_args(seed=11, draws=1, verbose=True), lines.append)
    assert "Traceback (most recent call last)" in "\n".join(lines)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--draws", "0"], "--draws must be at least 1"),
        (["--draws", "-5"], "--draws must be at least 1"),
        (["--seconds", "-1"], "--seconds must be 0 (no limit) or more"),
        (["--seconds", "nan"], "--seconds must be 0 (no limit) or more"),
        (["--seed", "-3"], "--seed must lie in 0"),  # random.Random(-3) would redraw seed 3
        (["--seed", str(2**64)], "--seed must lie in 0"),  # torch.manual_seed's overflow
    ],
)
def test_counts_that_would_check_nothing_are_refused(monkeypatch, capsys, options, message):
    """An empty run passed (exit 0); a seed past torch's range failed with a traceback."""
    monkeypatch.setattr(fuzz, "run", lambda args: pytest.fail("ran"))
    monkeypatch.setattr(sys, "argv", ["fuzz.py", "--backend", "torch", *options])
    with pytest.raises(SystemExit) as exit_:
        fuzz.main()
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_refusals_say_why(capsys):
    p = argparse.ArgumentParser()
    with pytest.raises(SystemExit):
        fuzz.check_counts(p, argparse.Namespace(draws=0, seconds=0.0, seed=0), 200)
    assert "--draws must be at least 1, not 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fuzz.check_counts(p, argparse.Namespace(draws=None, seconds=0.0, seed=-1), 200)
    assert "--seed must lie in 0 … 2**62 - 1, not -1" in capsys.readouterr().err


def test_seconds_alone_draw_until_the_time_is_up():
    """--seconds without --draws is not capped at the 200 draws of a plain run (the docstring's
    `--only dead --seconds 300` stopped after 18 draws in 2 s)."""
    p = argparse.ArgumentParser()
    for seconds, draws, expected in ((0.0, None, 200), (60.0, None, fuzz.MAX_SEED), (60.0, 7, 7)):
        args = argparse.Namespace(draws=draws, seconds=seconds, seed=5)
        fuzz.check_counts(p, args, default_draws=200)
        assert args.draws == expected


def test_only_keeps_its_subset(monkeypatch):
    seen = _check_stub(monkeypatch, lambda d: [])
    fuzz.run(_args(draws=300, only="dead"), [].append)
    assert [d.seed for d in seen] == [s for s in range(300) if fuzz.draw(s).dead]


@pytest.mark.parametrize("tool", ["fuzz", "fuzz_sync"])
@pytest.mark.parametrize("over", [0, 3])
def test_the_exit_status_says_whether_a_draw_was_over(monkeypatch, tool, over):
    module = {"fuzz": fuzz, "fuzz_sync": fuzz_sync}[tool]
    monkeypatch.setattr(module, "run", lambda args: over)
    monkeypatch.setattr(sys, "argv", [module.__file__, "--backend", "torch"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == (1 if over else 0)


def test_check_runs_the_draw_as_drawn(monkeypatch):
    """Tiny tiles where the draw says so (the kernels only), the draw's own gates_matter,
    and float32 estimates from nudged inputs."""
    import helpers

    calls = []

    @contextlib.contextmanager
    def tiny_tiles():
        calls.append("tiny tiles")
        yield

    def oracle_errors(layer, x, gates_matter, nudge):
        calls.append((gates_matter, nudge))
        return []

    monkeypatch.setattr(helpers, "tiny_tiles", tiny_tiles)
    monkeypatch.setattr(helpers, "oracle_errors", oracle_errors)
    tiny = next(d for d in map(fuzz.draw, range(100)) if d.tiny_tiles and not d.gates_matter())
    plain = next(d for d in map(fuzz.draw, range(100)) if not d.tiny_tiles and d.gates_matter())
    for d, backend, expected in (
        (tiny, "triton", ["tiny tiles", (False, True)]),
        (tiny, "torch", [(False, True)]),
        (plain, "triton", [(True, True)]),
    ):
        calls.clear()
        assert fuzz.check(d, backend, "cpu") == []
        assert calls == expected, (d, backend)


def test_gates_matter_unless_every_mode_sees_the_same_statistics():
    d = fuzz.draw(0)

    def matter(layer: str, shape: tuple, k: int = 2, **kw) -> bool:
        return dataclasses.replace(d, layer=layer, shape=shape, num_modes=k, **kw).gates_matter()

    assert matter("ModeNorm2d", (2, 3, 4, 4), training=True)
    assert not matter("ModeNorm2d", (2, 3, 4, 4), k=1, training=True)
    assert not matter("ModeNorm2d", (1, 3, 4, 4), training=True)  # one sample's statistics
    assert matter("ModeNorm2d", (1, 3, 4, 4), training=False, track_running_stats=True)
    assert not matter("ModeNorm2d", (1, 3, 4, 4), training=False, track_running_stats=False)
    assert matter("ModeNorm2d", (2, 3, 4, 4), training=False, track_running_stats=True)
    assert matter("ModeGroupNorm2d", (1, 3, 4, 4))
    assert not matter("ModeGroupNorm2d", (4, 1, 4, 4))  # one channel's statistics


def _synced_as_one_process(perturb=None):
    """A stand-in for fuzz_sync's run_processes: each rank holds its rows of one process's
    step (what a right merge gives), then `perturb(step, rank, draw)` may spoil them."""

    def spawn(worker, draws, backend, out_dir, merge, nprocs, deadline_s):
        for rank in range(nprocs):
            results = []
            for d in draws:
                with mn_triton.use_backend(backend):
                    step = fuzz_sync._step(*fuzz_sync.build(d))
                rows = slice(0, d.split) if rank == 0 else slice(d.split, None)
                for q in ("output", "grad of input"):
                    step[q] = step[q][rows]
                if perturb is not None:
                    perturb(step, rank, d)
                results.append(step)
            torch.save(results, Path(out_dir) / f"rank{rank}.pt")

    return spawn


def test_sync_fuzzer_judges_every_quantity_and_nan(monkeypatch):
    """A merge that spoils only the running estimates' second moment, or makes one rank's
    output NaN, is OVER, and the replay names the draw (the processes stood in for)."""
    args = argparse.Namespace(draws=3, seed=5000, backend="torch", verbose=False)
    monkeypatch.setattr(fuzz_sync, "run_processes", _synced_as_one_process())
    assert fuzz_sync.run(args, [].append) == 0  # the stand-in itself is right

    def spoil(step, rank, d):
        if d.seed == 5001:
            step["running_mean_sq"] = step["running_mean_sq"] * (1 + 1e-2)
        if d.seed == 5002 and rank == (0 if d.split else 1):
            step["output"] = step["output"].clone().fill_(torch.nan)

    monkeypatch.setattr(fuzz_sync, "run_processes", _synced_as_one_process(spoil))
    lines = []
    assert fuzz_sync.run(args, lines.append) == 2
    text = "\n".join(lines)
    assert "OVER: Draw(seed=5001," in text and "OVER: Draw(seed=5002," in text
    assert "    running_mean_sq: " in text and "    output: nan" in text
    replays = [line.strip() for line in lines if "replay:" in line]
    assert replays == [  # on the backend that was over (the replay ran torch's, whatever it was)
        f"replay: python tools/fuzz_sync.py --draws 1 --seed {s} --backend torch -v"
        for s in (5001, 5002)
    ]


def _merge_that_raises(local, k, c, group, on_kernels=False):  # picklable, as above
    raise IndexError("out of bounds")


def test_sync_fuzzer_names_the_draw_a_process_raised_on():
    """An exception in a process (memcheck's bounds errors are IndexErrors) names the draw
    and its replay, on the backend run (it said only which exception)."""
    args = argparse.Namespace(draws=2, seed=5000, backend="triton", verbose=False)
    with pytest.raises(Exception) as raised:
        fuzz_sync.run(args, [].append, merge=_merge_that_raises)
    text = str(raised.value)
    assert "rank 0 raised on Draw(seed=5000," in text or "rank 1 raised on Draw(seed=5000," in text
    assert "replay: python tools/fuzz_sync.py --draws 1 --seed 5000 --backend triton -v" in text
    assert "IndexError: out of bounds" in text


def test_sync_fuzzer_refuses_counts_that_check_nothing(monkeypatch):
    monkeypatch.setattr(fuzz_sync, "run", lambda args: pytest.fail("ran"))
    for options in (["--draws", "0"], ["--seed", "-1"]):
        monkeypatch.setattr(sys, "argv", ["fuzz_sync.py", *options])
        with pytest.raises(SystemExit) as exit_:
            fuzz_sync.main()
        assert exit_.value.code == 2, options


def test_sync_draws_reach_their_cases_and_build_them():
    """Every offset, outlier and gate scale fuzz_sync lists is drawn, and build applies
    them: the offset to every element, the outlier to one sample, channels_last."""
    draws = [fuzz_sync.draw(seed) for seed in range(300)]
    assert {d.offset for d in draws} == {0.0, 3.0, 1e3, 1e4}
    assert {d.outlier for d in draws} == {0.0, 10.0, -100.0, 1000.0}
    assert {d.gate_scale for d in draws} == {0.1, 1.0, 3.0}
    laid_out = 0
    for d in draws[:40]:
        _, x, _ = fuzz_sync.build(d)
        assert tuple(x.shape) == (d.n, d.c, *d.spatial) and str(x.dtype) == f"torch.{d.dtype}"
        if d.channels_last and d.c > 1:
            laid_out += 1
            assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if d.outlier:
            _, without, _ = fuzz_sync.build(dataclasses.replace(d, outlier=0.0))
            moved = (x.double() - without.double()).flatten(1).mean(1)
            assert sorted(moved.tolist(), key=abs)[-1] == pytest.approx(d.outlier, 1e-2), d
            assert (moved.abs() > 1e-2 * abs(d.outlier)).sum() == 1, d
        if d.offset:  # (without the outlier: 16-bit values near it cannot hold the offset)
            plain = dataclasses.replace(d, outlier=0.0)
            _, with_, _ = fuzz_sync.build(plain)
            _, without, _ = fuzz_sync.build(dataclasses.replace(plain, offset=0.0))
            moved = (with_.double() - without.double()).flatten(1).mean(1)
            assert moved == pytest.approx([d.offset] * d.n, rel=1e-2, abs=0.1), d
    assert laid_out >= 3
