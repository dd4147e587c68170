"""Shared test helpers: the float64 oracle, relative-norm errors and tolerances (SPEC §5)."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

import mn_triton
import reference
from mn_triton.backend import INTERPRETING
from mn_triton.kernels import layout, mix

BF16_ULP = 2.0**-8
# SPEC §5: relative error ‖out − ref‖ / ‖ref‖ against a float64 evaluation of the formulas.
# bfloat16 may lose one more ulp under the interpreter, whose fp32 → bf16 stores truncate.
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2 + (BF16_ULP if INTERPRETING else 0.0),
}


def rel_err(actual: Tensor, expected: Tensor) -> float:
    actual, expected = actual.double().cpu(), expected.double().cpu()
    denom = expected.norm().item()
    diff = (actual - expected).norm().item()
    return diff / denom if denom > 0 else diff


def assert_close(actual: Tensor, expected: Tensor, tol: float, what: str = "") -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = rel_err(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"


def embed(t: Tensor, pad: tuple[int, ...]) -> Tensor:
    """A view of t inside a larger tensor, offset by `pad` in each dim (non-trivial strides)."""
    shape = [s + 2 * p for s, p in zip(t.shape, pad, strict=True)]
    big = torch.randn(shape, dtype=t.dtype, device=t.device)
    view = big[tuple(slice(p, p + s) for s, p in zip(t.shape, pad, strict=True))]
    view.copy_(t)
    return view


def spatially_permuted(t: Tensor) -> Tensor:
    """Same values of a 5-D t, dense in memory order (D, N, H, C, W): no two spatial dims
    merge, so the kernels would need three strided levels, and `torch.empty_like` keeps
    that order (it copies a dense tensor's strides)."""
    return t.permute(2, 0, 3, 1, 4).contiguous().permute(1, 3, 0, 2, 4)


def three_level_input(x_layout: str, dy_layout: str) -> tuple[Tensor, Tensor]:
    """x and dy of shape (2, 3, 3, 4, 5) laid out so that the kernels would need three strided
    spatial levels to read x: x 'sliced' in two spatial dims (`embed`) or 'dense' in memory
    order (D, N, H, C, W) (`spatially_permuted`); dy 'contiguous' or 'sliced'."""
    shape = (2, 3, 3, 4, 5)
    x = torch.randn(shape) * 2 + 1
    x = embed(x, (0, 0, 1, 2, 1)) if x_layout == "sliced" else spatially_permuted(x)
    dy = torch.randn(shape)
    dy = dy if dy_layout == "contiguous" else embed(dy, (0, 0, 1, 1, 1))
    assert layout.plan_rows(x) is None and (dy_layout == "contiguous") == dy.is_contiguous()
    return x, dy


class _CountCopies(TorchDispatchMode):
    """Counts the copies of `numel` elements that `.contiguous()` makes (aten.clone)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.count = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.count += func is torch.ops.aten.clone.default and out.numel() == self.numel
        return out


def copies_per_three_level_call(layer: nn.Module, x: Tensor, dy: Tensor) -> tuple[int, int]:
    """The copies of x's size that a forward and a backward of `layer` at (x, dy) from
    `three_level_input` make on the kernels (what `.contiguous()` copies). Asserts that y and
    every gradient are the same bits as at contiguous x and dy, and that y and dx are laid
    out as `torch.empty_like(x)` (as the ops' fake implementations say)."""
    with mn_triton.use_backend("triton"):
        x_ = x.detach().requires_grad_()
        with _CountCopies(x.numel()) as forward:
            y = layer(x_)
        with _CountCopies(x.numel()) as backward:
            y.backward(dy)
        grads = {"input": x_.grad, **{n: p.grad for n, p in layer.named_parameters()}}
        y_dense, grads_dense = forward_backward(layer, x.contiguous(), dy.contiguous())
    assert y.stride() == x_.grad.stride() == torch.empty_like(x).stride()
    assert torch.equal(y, y_dense)
    for key, grad in grads_dense.items():
        assert torch.equal(grads[key], grad), key
    return forward.count, backward.count


def batch_transposed(t: Tensor) -> Tensor:
    """Same values, but samples are the fastest-varying of (N, C): stride_n < stride_c."""
    return t.transpose(0, 1).contiguous().transpose(0, 1)


@contextlib.contextmanager
def tiny_tiles() -> Iterator[None]:
    """Tiles of 16 elements and 8 reduction programs: small shapes then take every code path
    (several tiles per row, rows split across programs, partial results merged; MN's gates
    computed once wherever its mix kernels split the channels: C > 32 at K ≤ 128; MN's mix
    kernels split the samples too, in blocks of 4 or more, from N = 8)."""
    names = "MAX_TILE", "CPU_TARGET_PROGRAMS", "GATES_KERNEL_MIN_ELEMENTS", "SPLIT_MIN_ROWS"
    modules = layout, layout, mix, mix
    saved = [getattr(module, name) for module, name in zip(modules, names, strict=True)]
    for module, name, tiny in zip(modules, names, (16, 8, 0, 4), strict=True):
        setattr(module, name, tiny)
    try:
        yield
    finally:
        for module, name, value in zip(modules, names, saved, strict=True):
            setattr(module, name, value)


def reference_twin(module: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The `reference` layer with the same class name, state and mode as `module`."""
    cls = getattr(reference, type(module).__name__)
    kwargs = {"num_modes": module.num_modes, "eps": module.eps, "affine": module.affine}
    if hasattr(module, "momentum"):
        kwargs.update(momentum=module.momentum, track_running_stats=module.track_running_stats)
    twin = cls(module.num_features, **kwargs).to(dtype)
    twin.load_state_dict(module.state_dict())
    return twin.train(module.training)


def randomize(module: nn.Module, gate_scale: float = 1.0) -> nn.Module:
    """Non-trivial parameters (and running estimates): nothing cancels by construction."""
    with torch.no_grad():
        module.gate.weight.normal_(0.0, gate_scale)
        module.gate.bias.normal_(0.0, 1.0)
        if module.weight is not None:
            module.weight.normal_(1.0, 0.5)
        if module.bias is not None:
            module.bias.normal_(0.0, 0.5)
        if getattr(module, "running_mean", None) is not None:
            module.running_mean.normal_(0.0, 1.0)
            module.running_mean_sq.copy_(
                module.running_mean**2 + torch.rand_like(module.running_mean) + 0.5
            )
    return module


def forward_backward(module: nn.Module, x: Tensor, dy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Output and every gradient (input and parameters) of `module` at x, for upstream dy."""
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    y = module(x)
    y.backward(dy.to(y.device, y.dtype))
    grads = {"input": x.grad}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return y.detach(), grads


GATE_PARAMS = ("gate.weight", "gate.bias")
GATE_SLACK = 16
# Beyond this relative error the float32 reference's own error (GATE_SLACK× it bounds a gate
# gradient) is no measure of anything: at offsets of 1e4 its E[x²] − E[x]² cancels and the
# bound reaches 1e2–1e10, which no error fails. There the scale decides: a gate gradient's
# error relative to the largest value it could take. Over 2000 draws of tools/fuzz.py's
# torch path that was at most 8e-8 (median 2e-9); in the tests, where the cap applies, at
# most 7e-9.
GATE_BOUND_CAP = 0.1
GATE_SCALE_TOL = 1e-6


class OracleError(NamedTuple):
    """One checked quantity: its relative error against float64 and the bound it must meet;
    `float32_err` is a float32 evaluation of the reference formulas' own error on the same
    data (float32 and 16-bit inputs): how well float32 arithmetic can do there. For gate
    gradients `scale_err` is the error relative to the largest value they could take (see
    `oracle_errors`), which stays meaningful where the gates barely matter."""

    what: str
    err: float
    bound: float
    float32_err: float | None = None
    scale_err: float | None = None

    def within(self) -> bool:
        """Within the bound (NaN never is); a gate gradient whose bound passes GATE_BOUND_CAP
        also within the cap or within GATE_SCALE_TOL of its scale."""
        if not self.err <= self.bound:
            return False
        if self.scale_err is None or self.bound <= GATE_BOUND_CAP:
            return True
        return self.err <= GATE_BOUND_CAP or self.scale_err <= GATE_SCALE_TOL

    def __str__(self) -> str:
        text = f"{self.what}: relative error {self.err:.3e}, bound {self.bound:.1e}"
        if self.scale_err is not None and self.bound > GATE_BOUND_CAP:
            text += f" (capped at {GATE_BOUND_CAP}), {self.scale_err:.1e} of its scale"
        return text


def check_against_oracle(module: nn.Module, x: Tensor, gates_matter: bool = True) -> None:
    """Outputs and all gradients of `module` (fast path) against the float64 reference:
    every error of `oracle_errors` within its bound."""
    for e in oracle_errors(module, x, gates_matter):
        assert e.within(), str(e)


# How many nudged float32 evaluations estimate float32's sensitivity (see oracle_errors): one
# can be lucky too (over 1200 MGN draws, one gate gradient was 3.3× one evaluation's error).
# (A draw that stayed beyond three, MN_TEST_SEED=777's MGN gate bias gradient, was a defect
# of ours, not the oracle's luck: fixed in mix.mode_group_norm_backward.)
NUDGES = 3


def _nudged(t: Tensor, direction: Tensor) -> Tensor:
    """t moved by one ulp per element, up where direction > 0, else down."""
    return torch.nextafter(t, torch.where(direction > 0, torch.inf, -torch.inf).to(t.dtype))


def oracle_errors(
    module: nn.Module,
    x: Tensor,
    gates_matter: bool = True,
    nudge: bool = False,
) -> list[OracleError]:
    """The errors of the output, every gradient and the running estimates of `module` (fast
    path) at x against the float64 reference, for a random upstream gradient.

    Errors are relative (SPEC §5), bounded by the dtype's tolerance. Gate-parameter gradients
    pass through the softmax of nearly equivalent modes and are ill-conditioned: even a
    float32 evaluation of the reference formulas misses float64 by up to ~1e-3 on random
    data. Their bound is the tolerance or GATE_SLACK× that float32 evaluation's own error on
    the same data (16-bit inputs too: the fast path computes in float32), whichever is
    larger. Per draw the two errors are independent, heavy-tailed samples of the same size
    (median errors are equal), and a single float32 evaluation can be lucky where terms
    cancel: over 60 draws of each layout of the oracle tests, MGN's gate gradients came out
    up to 4.8× GATE_SLACK× its error. So where ours passes GATE_SLACK× it, the float32 error
    taken is the largest of it and those of evaluations at inputs nudged by an ulp (below):
    how far float32 rounding moves the quantity there.

    `gates_matter=False` is for data where every mode sees the same statistics (one sample
    in training, or identical running estimates): the gates then do not change the output,
    their gradients are 0 up to rounding, and their error is their size relative to the
    largest value they could take, ‖dy‖·‖y‖ (times max |row mean| for the gate weight),
    bounded by 1e-5.

    With `nudge`, every `float32_err` is the largest of that evaluation's error and the
    errors of NUDGES evaluations at x and dy nudged by one float32 ulp per element, at random
    up or down (against the oracle at x and dy): a single evaluation can be lucky where terms
    cancel (a bias gradient Σ dy near 0, say); nudged inputs show how far float32 rounding
    moves the quantity. Bounds do not change with it. The nudged evaluations draw from the
    global random generator without advancing it.

    The module and x may be on a GPU; the oracle always runs on the CPU.
    """
    tol = TOLERANCE[x.dtype]
    dy = torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
    oracle = reference_twin(module)
    # The fast path computes in float32 for 16-bit inputs too: its reference is the same.
    in_float32 = x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    low_precision = reference_twin(module, torch.float32) if in_float32 else None
    # Its twin for the nudged evaluation, taken before module's forward changes the running
    # estimates (and without drawing from the generator: the test's later data stay as drawn).
    with torch.random.fork_rng(devices=[]):
        nudged_twin = reference_twin(module, torch.float32) if in_float32 else None
    y, grads = forward_backward(module, x, dy)
    x = x.cpu()
    y_ref, grads_ref = forward_backward(oracle, x.double(), dy.double())
    assert y.dtype == x.dtype
    y_lp, grads_lp = None, {}
    if low_precision is not None:
        y_lp, grads_lp = forward_backward(low_precision, x.float(), dy.float())
    nudged_results: list[dict[str, Tensor]] = []

    def nudged_err(key: str, ref: Tensor) -> float:
        """The largest error of the NUDGES nudged float32 evaluations' output, gradient or
        running estimate `key` (each from a fresh copy of the twin)."""
        if not nudged_results:
            with torch.random.fork_rng(devices=[]):
                ulps = torch.randint(0, 2, (NUDGES, 2, *x.shape), dtype=torch.float32) * 2 - 1
            for up_x, up_dy in ulps:
                twin = copy.deepcopy(nudged_twin)
                y_n, grads_n = forward_backward(
                    twin, _nudged(x.float(), up_x), _nudged(dy.float(), up_dy)
                )
                buffers = {name: t for name, t in twin.named_buffers() if t.is_floating_point()}
                nudged_results.append({**buffers, **grads_n, "output": y_n})
        return max(rel_err(results[key], ref) for results in nudged_results)

    def error(what: str, ours: Tensor, ref: Tensor, lp: Tensor | None, bound: float):
        assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
        lp_err = None if lp is None else rel_err(lp, ref)
        if nudge and lp is not None:
            lp_err = max(lp_err, nudged_err(what.removeprefix("grad of "), ref))
        return OracleError(what, rel_err(ours, ref), bound, lp_err)

    # What the fast path computes its statistics in: float32, unless x is float64.
    computed_in = torch.float64 if x.dtype == torch.float64 else torch.float32

    def own_tol(t: Tensor) -> float:
        """A parameter gradient's or running estimate's tolerance: its own dtype's, and no
        tighter than the statistics allow. (For 16-bit x with float32 parameters that is
        float32's: they are computed from the exact 16-bit values, never stored in 16 bits.)"""
        return max(TOLERANCE[t.dtype], TOLERANCE[computed_in])

    def gate_bound(name: str, ours: Tensor, ref: Tensor) -> float:
        """The tolerance, or GATE_SLACK× float32's error (nudged too, where ours passes the
        plain one's bound: see above)."""
        float32_err = rel_err(grads_lp[name], ref)
        if rel_err(ours, ref) > max(own_tol(ours), GATE_SLACK * float32_err):
            float32_err = max(float32_err, nudged_err(name, ref))
        return max(own_tol(ours), GATE_SLACK * float32_err)

    def gate_scale(name: str) -> Tensor:
        """‖dy‖·‖y‖, times max |row mean| for the gate weight: what a gate gradient can reach."""
        scale = dy.double().norm() * y_ref.norm()
        if name == "gate.weight":
            row_means = x.double().reshape(*x.shape[:2], -1).mean(-1)  # (N, C), any rank
            scale = scale * row_means.abs().max().clamp_min(1.0)
        return scale

    errors = [error("output", y, y_ref, y_lp, tol)]
    for name, g_ref in grads_ref.items():
        if name in GATE_PARAMS and not gates_matter:
            size = (grads[name].double().norm().cpu() / gate_scale(name)).item()
            errors.append(OracleError(f"grad of {name} (should vanish)", size, 1e-5))
            continue
        bound = tol if name == "input" else own_tol(grads[name])
        if name in GATE_PARAMS and low_precision is not None:
            bound = gate_bound(name, grads[name], g_ref)
        e = error(f"grad of {name}", grads[name], g_ref, grads_lp.get(name), bound)
        if name in GATE_PARAMS:
            diff = (grads[name].double().cpu() - g_ref).norm()
            e = e._replace(scale_err=(diff / gate_scale(name)).item())
        errors.append(e)
    if getattr(module, "running_mean", None) is not None:
        for name in ("running_mean", "running_mean_sq"):
            lp = None if low_precision is None else getattr(low_precision, name)
            ours, ref = getattr(module, name), getattr(oracle, name)
            errors.append(error(name, ours, ref, lp, own_tol(ours)))
    return errors


def fast_layer(name: str, *args, **kwargs) -> nn.Module:
    return getattr(mn_triton, name)(*args, **kwargs)


def check_equals_native(layer: nn.Module, native: nn.Module, x: Tensor) -> None:
    """`layer` (K = 1) against the native layer it reduces to, from the same affine weights:
    output, and gradients of the input, weight and bias, to the dtype's tolerance."""
    with torch.no_grad():
        native.weight.copy_(layer.weight)
        native.bias.copy_(layer.bias)
    dy = torch.randn_like(x)
    y1, grads1 = forward_backward(layer, x, dy)  # fresh gradients, on every call
    y2, grads2 = forward_backward(native, x, dy)
    tol = TOLERANCE[x.dtype]
    assert_close(y1, y2, tol, "output")
    for name in ("input", "weight", "bias"):
        assert_close(grads1[name], grads2[name], tol, f"grad of {name}")


def run_benchmark_script(
    script: str, args: list[str], data_dir: Path, run_id: str
) -> subprocess.CompletedProcess:
    """Run benchmarks/<script> as a user runs it on a CPU (mn_triton's torch-op path, not the
    interpreter), with its rows under `data_dir`; the caller checks the result."""
    env = {**os.environ, "MN_REPORT_DATA": str(data_dir), "MN_RUN_ID": run_id}
    env.pop("TRITON_INTERPRET", None)
    env["OMP_NUM_THREADS"] = "1"  # tiny steps: threads only add contention noise
    script_path = Path(__file__).resolve().parents[1] / "benchmarks" / script
    return subprocess.run(
        [sys.executable, str(script_path), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def modes_far_from_sample_0() -> tuple[nn.Module, Tensor, Tensor]:
    """(ModeNorm1d layer, x, dy): tools/fuzz.py draw 1439, rounded to 4 decimals. Sample 0
    lies ~10 below the others, whose modes sit near 0; a mode's m − μ formed around sample
    0's value carries the rounding of values 10 away (test_mode_norm, test_sync)."""
    layer = mn_triton.ModeNorm1d(6, num_modes=3)
    with torch.no_grad():
        layer.gate.weight.copy_(torch.tensor([
            [-0.5958] * 6,
            [-0.0092, -0.0037, -0.007, 0.01, 0.0141, -0.003],
            [0.0066, 0.0039, 0.002, 0.0028, 0.0005, -0.0007],
        ]))  # fmt: skip
        layer.gate.bias.copy_(torch.tensor([-1.1178, -0.6536, 0.21]))
        layer.weight.copy_(torch.tensor([0.5274, 0.7622, 1.7276, 0.1244, 0.8955, 1.8492]))
        layer.bias.copy_(torch.tensor([-0.043, -0.6752, -0.276, 0.2234, 0.3913, -0.43]))
    x = torch.tensor([[-12.2268, -10.537, -11.9108, -7.6498, -12.158, -8.153],
                      [-0.3705, -0.215, -0.8662, -1.2981, 2.3345, 1.3961],
                      [-0.0801, -2.4404, 1.8954, 0.6498, 5.4932, -1.8903],
                      [-0.2045, 0.776, 1.7727, 0.7, 1.4869, -1.4017]])  # fmt: skip
    dy = torch.tensor([[0.6719, 1.6861, 1.899, 0.2421, 0.1882, 1.5198],
                       [0.4464, 0.9978, 1.1235, -0.0275, -0.6487, -0.4393],
                       [-0.148, 0.382, 0.8359, -0.3889, -0.1382, 0.4473],
                       [-1.6457, -0.3964, -2.5443, 0.4265, 0.2661, -0.1837]])  # fmt: skip
    return layer, x, dy


def spy_launches(monkeypatch, module, name: str, launch: bool = True) -> list:
    """Replace the jitted kernel `module.name` with a stand-in that records each launch's
    grid (in the list returned), then launches it, or with `launch=False` does nothing."""
    kernel, grids = getattr(module, name), []

    class Spy:
        def __getitem__(self, grid):
            grids.append(grid)
            return kernel[grid] if launch else lambda *args, **kwargs: None

    monkeypatch.setattr(module, name, Spy())
    return grids


def spy_row_passes(monkeypatch) -> list[list]:
    """`spy_launches` on the three passes over x (moments, gradient sums, apply): their grids,
    in that order, as the layers launch them."""
    from mn_triton.kernels import apply, moments

    return [
        spy_launches(monkeypatch, module, name)
        for module, name in [(moments, "_row_moments_kernel"),
                             (moments, "_row_grad_sums_kernel"), (apply, "_row_affine_kernel")]
    ]  # fmt: skip


def record_guarded_launches(monkeypatch) -> list[tuple[str, bool]]:
    """Replace backend.on_device_of with a guard that only records being entered, and wrap
    every kernel entry point to note (its name, whether it ran inside such a guard); the
    list fills as the layers run."""
    from mn_triton import backend
    from mn_triton.kernels import apply, moments
    from mn_triton.kernels import mix as kernel_mix

    depth, calls = [0], []

    @contextlib.contextmanager
    def recording_guard(t: Tensor) -> Iterator[None]:
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    monkeypatch.setattr(backend, "on_device_of", recording_guard)
    entry_points = [(moments, "row_moments"), (moments, "row_grad_sums"), (apply, "row_affine")]
    entry_points += [(kernel_mix, f"{op}_{way}") for op in ("mode_norm", "mode_group_norm")
                     for way in ("forward", "backward")]  # fmt: skip
    entry_points += [(kernel_mix, name) for name in ("mode_norm_batch_stats", "shared_gates",
                                                     "merge_mode_stats")]  # fmt: skip
    for module, name in entry_points:
        original = getattr(module, name)

        def checked(*args, original=original, name=name, **kwargs):
            calls.append((name, depth[0] > 0))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, checked)
    return calls


def negated_view(shape: tuple[int, ...]) -> Tensor:
    """A float32 tensor whose memory holds its negation (`is_neg()`), as `z.conj().imag`."""
    t = torch.randn(shape, dtype=torch.complex64).conj().imag
    assert t.is_neg()
    return t


class AbsParametrization(nn.Module):
    """A parametrization (torch.nn.utils.parametrize): the weight's absolute value."""

    def forward(self, weight: Tensor) -> Tensor:
        return weight.abs()


def record_dx_terms(monkeypatch) -> list[float]:
    """Spies on ops._dx: per backward of rows of one element, the largest term of
    dx = (x − s)·x_scale + row_bias + dy·dy_scale, where x − s = 0 (for
    `assert_same_point_results`' bound)."""
    from mn_triton import ops

    terms: list[float] = []
    original = ops._dx

    def spy(x, shift, grads, dy, input_grad, dy_rows, **kwargs):
        rows = dy.reshape(dy.shape[0], dy.shape[1]).to(grads.dy_scale.dtype)
        terms.append((grads.row_bias.abs() + (rows * grads.dy_scale).abs()).max().item())
        return original(x, shift, grads, dy, input_grad, dy_rows, **kwargs)

    monkeypatch.setattr(ops, "_dx", spy)
    return terms


def assert_same_point_results(
    skipped: list | tuple, full: list | tuple, dx_index: int, dx_terms: list[float], what: str = ""
) -> None:
    """A layer step on rows of one element (backend.POINT_ROWS) against the same step with
    the passes: the same bits everywhere but dx. There the path computes row_bias + dy·dy_scale
    as one torch op (`addcmul_`), which may round once where the Triton pass rounds twice (or
    the other way round, on a GPU with fused multiply-adds): allow one rounding of the
    largest term (`record_dx_terms`); the terms nearly cancel in dx, so dx's own size is no
    bound. A wrong or missing term is far beyond it."""
    assert dx_terms, "no backward recorded its dx terms"
    for i, (a, b) in enumerate(zip(skipped, full, strict=True)):
        if i == dx_index:
            tol = 2 * torch.finfo(b.dtype).eps * max(dx_terms)
            assert (a - b).abs().max().item() <= tol, f"{what}dx differs beyond rounding"
        else:
            assert a is b or torch.equal(a, b), f"{what}result {i} differs"
