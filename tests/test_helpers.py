"""The tests' yardstick (tests/helpers.py, tests/conftest.py) checked against itself.

Every other test passes when the library is right, whether or not its measure can fail: a
rel_err that is always small, a loosened tolerance, an oracle that compares a gradient with
itself, an `embed` that lays nothing out, a fixture that sets nothing. Here each helper must
flag a planted error, measure known values, or produce the layout or state it claims.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

import mn_triton
import reference
from helpers import (
    BF16_ULP,
    TOLERANCE,
    OracleError,
    assert_close,
    assert_same_point_results,
    batch_transposed,
    check_against_oracle,
    check_equals_native,
    embed,
    forward_backward,
    randomize,
    reference_twin,
    rel_err,
    tiny_tiles,
)
from mn_triton.backend import INTERPRETING
from mn_triton.kernels import layout, mix

REPO = Path(__file__).resolve().parents[1]


# --- relative errors and tolerances ---


def test_rel_err_on_known_values():
    ref = torch.tensor([3.0, 4.0])
    assert rel_err(torch.tensor([3.0, 4.0]), ref) == 0.0
    assert rel_err(torch.zeros(2), ref) == 1.0  # relative to the reference's norm
    assert rel_err(-ref, ref) == 2.0  # a sign is an error
    assert rel_err(torch.tensor([4.0, 5.0]), ref) == pytest.approx(math.sqrt(2) / 5)  # a norm
    assert rel_err(torch.tensor([3.0, 4.0]), torch.zeros(2)) == 5.0  # no scale: absolute
    # In float64: float32 would round both to the same value
    one = torch.ones(3, dtype=torch.float64)
    assert rel_err(one + 1e-12, one) == pytest.approx(1e-12, rel=1e-3, abs=0)
    assert math.isnan(rel_err(torch.tensor([3.0, math.nan]), ref))
    assert rel_err(torch.tensor([3.0, math.inf]), ref) == math.inf


def test_assert_close_fails_beyond_its_tolerance_and_on_any_nan_or_shape():
    ref = torch.tensor([3.0, 4.0])
    assert_close(ref * (1 + 0.5e-5), ref, 1e-5)
    for bad in (ref * (1 + 2e-5), torch.tensor([3.0, math.nan]), torch.tensor([math.inf, 4.0])):
        with pytest.raises(AssertionError, match="relative error"):
            assert_close(bad, ref, 1e-5)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(ref[None], ref, 1e-5)  # broadcasting would compare them


def test_tolerances_are_spec_5s():
    assert TOLERANCE[torch.float32] == 1e-5
    assert TOLERANCE[torch.float16] == 2e-3
    assert TOLERANCE[torch.bfloat16] == 1e-2 + (BF16_ULP if INTERPRETING else 0.0)
    assert TOLERANCE[torch.float64] <= 1e-10


# --- layouts, tiles, parameters ---


def test_embed_is_an_offset_strided_view_of_the_same_values():
    t = torch.randn(2, 3, 4, 5)
    pad = (1, 0, 2, 1)
    view = embed(t, pad)
    assert torch.equal(view, t) and view.dtype == t.dtype
    big = torch.Size(s + 2 * p for s, p in zip(t.shape, pad, strict=True))
    assert view.untyped_storage().nbytes() == big.numel() * t.element_size()
    assert view.stride() == torch.empty(big).stride()  # the big tensor's strides
    assert view.storage_offset() == sum(p * s for p, s in zip(pad, view.stride(), strict=True))
    assert not view.is_contiguous()


def test_batch_transposed_puts_samples_fastest():
    t = torch.randn(5, 4, 6)
    view = batch_transposed(t)
    assert torch.equal(view, t)
    assert view.stride(0) < view.stride(1) and not view.is_contiguous()


def test_tiny_tiles_sets_its_sizes_and_puts_them_back():
    names = [(layout, "MAX_TILE"), (layout, "CPU_TARGET_PROGRAMS")]
    names += [(mix, "GATES_KERNEL_MIN_ELEMENTS"), (mix, "SPLIT_MIN_ROWS")]
    before = [getattr(module, name) for module, name in names]
    with pytest.raises(RuntimeError), tiny_tiles():
        assert [getattr(module, name) for module, name in names] == [16, 8, 0, 4]
        raise RuntimeError  # put back on the way out of a failing test too
    assert [getattr(module, name) for module, name in names] == before
    assert before != [16, 8, 0, 4]


def test_the_tiny_tiles_fixture_sets_them(tiny_tiles):
    assert (layout.MAX_TILE, layout.CPU_TARGET_PROGRAMS) == (16, 8)
    assert (mix.GATES_KERNEL_MIN_ELEMENTS, mix.SPLIT_MIN_ROWS) == (0, 4)


def test_randomize_draws_every_parameter_and_estimate():
    """Each of them drawn, at its spread (large enough that the bounds hold for any seed)."""
    layer = mn_triton.ModeNorm1d(512, num_modes=64)
    fresh = copy.deepcopy(layer)
    randomize(layer, gate_scale=3.0)
    state, before = layer.state_dict(), fresh.state_dict()
    for name, t in state.items():
        if t.is_floating_point():
            assert not torch.equal(t, before[name]), f"{name} not drawn"
    assert 2.8 < layer.gate.weight.std() < 3.2  # gate_scale
    assert 0.6 < layer.gate.bias.std() < 1.4
    assert 0.45 < layer.weight.std() < 0.55 and 0.9 < layer.weight.mean() < 1.1
    assert 0.45 < layer.bias.std() < 0.55
    assert 0.9 < layer.running_mean.std() < 1.1
    variance = layer.running_mean_sq - layer.running_mean**2
    assert variance.min() > 0.5 - 1e-4 and variance.max() < 1.5 + 1e-4 and variance.std() > 0.2
    assert randomize(mn_triton.ModeNorm1d(64, num_modes=4), 0.1).gate.weight.std() < 0.2


def test_reference_twin_is_the_reference_layer_in_the_same_state():
    for cls, kwargs in [
        ("ModeNorm2d", {"momentum": 0.3, "track_running_stats": True}),
        ("ModeNorm1d", {"momentum": None, "track_running_stats": False}),
        ("ModeGroupNorm2d", {}),
    ]:
        for training in (True, False):
            layer = randomize(getattr(mn_triton, cls)(6, num_modes=3, eps=0.25, **kwargs))
            layer.train(training)
            twin = reference_twin(layer)
            assert type(twin) is getattr(reference, cls)
            assert twin.training == training and twin.eps == 0.25 and twin.num_modes == 3
            for name, value in kwargs.items():
                assert getattr(twin, name) == value, name
            ours, theirs = layer.state_dict(), twin.state_dict()
            assert ours.keys() == theirs.keys()
            for name, t in theirs.items():
                assert t.dtype == torch.float64 or not t.is_floating_point(), name
                assert torch.equal(t, ours[name].to(t.dtype)), name
            assert reference_twin(layer, torch.float32).gate.weight.dtype == torch.float32


def test_forward_backward_gives_every_gradient_for_dy_afresh():
    module = nn.Linear(4, 3).double()
    x, dy = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for _ in range(2):  # a second call does not add to the first one's gradients
        y, grads = forward_backward(module, x, dy)
        assert torch.equal(y, x @ module.weight.T + module.bias)
        assert grads.keys() == {"input", "weight", "bias"}
        torch.testing.assert_close(grads["input"], dy @ module.weight, rtol=0, atol=1e-14)
        torch.testing.assert_close(grads["weight"], dy.T @ x, rtol=0, atol=1e-14)
        torch.testing.assert_close(grads["bias"], dy.sum(0), rtol=0, atol=1e-14)


# --- the oracle flags what it should ---


class _Scaled(torch.autograd.Function):
    """t·out in the forward pass, the gradient times grad in the backward pass."""

    @staticmethod
    def forward(ctx, t, out: float, grad: float):
        ctx.grad = grad
        return t * out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.grad, None, None


def _planted(layer: nn.Module, what: str, delta: float) -> nn.Module:
    """`layer` with one quantity off by a relative `delta`: its output, the gradient of its
    input or of a parameter, or a running estimate after the step."""
    forward = layer.forward
    if what == "output":
        layer.forward = lambda x: _Scaled.apply(forward(x), 1 + delta, 1.0)
    elif what == "input":
        layer.forward = lambda x: forward(_Scaled.apply(x, 1.0, 1 + delta))
    elif what.startswith("running_"):

        def stepped(x):
            y = forward(x)
            with torch.no_grad():
                getattr(layer, what).mul_(1 + delta)
            return y

        layer.forward = stepped
    else:
        layer.get_parameter(what).register_hook(lambda g: g * (1 + delta))
    return layer


MN_QUANTITIES = ["output", "input", "weight", "bias", "gate.weight", "gate.bias"]
MN_QUANTITIES += ["running_mean", "running_mean_sq"]


def _float64_case(seed: int = 0):
    torch.manual_seed(seed)
    layer = randomize(mn_triton.ModeNorm1d(4, num_modes=2, dtype=torch.float64, momentum=0.3))
    return layer, torch.randn(3, 4, 5, dtype=torch.float64) * 2 + 1


@pytest.mark.parametrize("what", MN_QUANTITIES)
def test_the_oracle_flags_each_quantity_off_by_10_tolerances(what):
    """In float64 (every bound 1e-10, no float32 estimate involved): a layer right but for one
    quantity, off by 1e-9 of itself, fails check_against_oracle, naming that quantity; the
    same layer without the error passes."""
    with mn_triton.use_backend("torch"):
        layer, x = _float64_case()
        check_against_oracle(layer, x)
        layer, x = _float64_case()
        with pytest.raises(AssertionError, match=rf"^(grad of )?{what}: relative error 1\.0"):
            check_against_oracle(_planted(layer, what, 1e-9), x)


def test_the_oracle_flags_a_float32_gate_gradient_beyond_its_slack():
    """In float32 a gate gradient's bound is GATE_SLACK (16)× the float32 reference's own
    error (or of the same at inputs nudged by an ulp): a gate gradient off by 8·16× that error
    (measured here without the helpers, for the oracle's upstream gradient) fails."""
    with mn_triton.use_backend("torch"):
        torch.manual_seed(1)
        layer = randomize(mn_triton.ModeNorm1d(4, num_modes=3), gate_scale=2.0)
        x = torch.randn(6, 4, 5) * 2 + 1
        torch.manual_seed(2)
        dy = torch.randn(x.shape, dtype=torch.float64).float()  # as oracle_errors draws it
        grads = {}
        for dtype in (torch.float32, torch.float64):
            twin = reference.ModeNorm1d(4, num_modes=3).to(dtype)
            twin.load_state_dict(layer.state_dict())
            twin(x.to(dtype)).backward(dy.to(dtype))
            grads[dtype] = twin.gate.weight.grad.double()
        diff = grads[torch.float32] - grads[torch.float64]
        delta = 8 * 16 * (diff.norm() / grads[torch.float64].norm()).item()
        assert 3e-5 < delta < 1e-2, delta
        torch.manual_seed(2)
        check_against_oracle(copy.deepcopy(layer), x)
        torch.manual_seed(2)
        with pytest.raises(AssertionError, match="^grad of gate.weight: relative error"):
            check_against_oracle(_planted(layer, "gate.weight", delta), x)


def test_the_oracle_flags_gate_gradients_that_should_vanish():
    """One sample in training: the gates do not change the output, their gradients vanish,
    and a gate bias gradient of ~1e-4 of its scale fails."""
    with mn_triton.use_backend("torch"):
        layer = randomize(mn_triton.ModeNorm1d(4, num_modes=2))
        x = torch.randn(1, 4, 6) * 2 + 1
        check_against_oracle(copy.deepcopy(layer), x, gates_matter=False)
        layer.gate.bias.register_hook(lambda g: g + 3e-3)
        with pytest.raises(AssertionError, match=r"^grad of gate.bias \(should vanish\)"):
            check_against_oracle(layer, x, gates_matter=False)


def test_oracle_errors_judge_nan_and_capped_gate_bounds():
    assert not OracleError("output", math.nan, 1e-5).within()
    assert not OracleError("output", 2e-5, 1e-5).within()
    assert OracleError("output", 1e-5, 1e-5).within()
    # a gate bound past the cap (0.1): within the cap, or within 1e-6 of its scale
    assert OracleError("grad of gate.bias", 0.09, 1e3, scale_err=1e-3).within()
    assert not OracleError("grad of gate.bias", 0.5, 1e3, scale_err=1e-3).within()
    assert OracleError("grad of gate.bias", 0.5, 1e3, scale_err=1e-7).within()


@pytest.mark.parametrize("what", ["output", "input", "weight", "bias"])
def test_check_equals_native_flags_each_quantity(what):
    layer = randomize(mn_triton.ModeNorm1d(4, num_modes=1))
    x = torch.randn(5, 4, 3) + 1
    same = copy.deepcopy(layer)
    for _ in range(2):  # a second call takes fresh gradients, not the first call's added in
        check_equals_native(same, nn.BatchNorm1d(4), x)
    native = _planted(nn.BatchNorm1d(4), what, 1e-4)
    with pytest.raises(AssertionError, match=f"^(grad of )?{what}: relative error"):
        check_equals_native(layer, native, x)


def test_assert_same_point_results_allows_one_rounding_of_dx_only():
    a, dx = torch.randn(4), torch.randn(4)
    ulp = torch.finfo(dx.dtype).eps
    near = dx + ulp * 2.0  # within 2 eps of the largest term (4)
    assert_same_point_results([a, dx], [a.clone(), near], 1, [4.0])
    with pytest.raises(AssertionError, match="dx differs"):
        assert_same_point_results([a, dx], [a, dx + 12 * ulp], 1, [4.0])
    with pytest.raises(AssertionError, match="result 0 differs"):
        assert_same_point_results([torch.nextafter(a, a + 1), dx], [a, dx], 1, [4.0])
    with pytest.raises(ValueError):
        assert_same_point_results([a, dx, a], [a, dx], 1, [4.0])


# --- the fixtures of conftest.py ---


def test_each_test_draws_from_its_own_seed(request):
    expected = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("MN_TEST_SEED", "0"))
    assert torch.initial_seed() == expected


def test_kernels_run_in_the_interpreter():
    assert os.environ["TRITON_INTERPRET"] == "1" and INTERPRETING


_PROBE = """
import os
import zlib

import torch

from mn_triton import backend


def test_each_test_draws_from_its_own_seed(request):
    expected = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ["MN_TEST_SEED"])
    assert torch.initial_seed() == expected


def test_leaves_the_backend():
    backend.set_backend("torch")
"""


def test_fixtures_redraw_and_refuse_a_backend_left_behind(tmp_path):
    """In a run of its own (with tests/conftest.py and MN_TEST_SEED set): the seed check above
    re-drawn, and a test that leaves the backend at 'torch' fails."""
    tests = REPO / "tests"
    (tmp_path / "conftest.py").write_text(
        f"import runpy\nimport sys\n\nsys.path.append({str(tests)!r})\n"
        f"for name, value in runpy.run_path({str(tests / 'conftest.py')!r}).items():\n"
        "    if not name.startswith('__'):\n        globals()[name] = value\n"
    )
    (tmp_path / "test_probe.py").write_text(_PROBE)
    env = {**os.environ, "MN_TEST_SEED": "12345", "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py"]
    done = subprocess.run(
        [*command, "--rootdir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = done.stdout
    assert "2 passed, 1 error" in out, out[-2000:] + done.stderr[-2000:]
    assert "ERROR test_probe.py::test_leaves_the_backend" in out
    assert "Failed: the test left the backend at 'torch'" in out
