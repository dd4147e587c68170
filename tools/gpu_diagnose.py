"""GPU diagnosis of the MN mix kernels against the torch-op mix, on identical inputs, and a
cProfile of one layer call's host side. Usage on a GPU machine:

    python tools/gpu_diagnose.py [--profile] [--no-variants]
    python tools/gpu_diagnose.py --host-only   # host time: per launch, per stage, cProfile
    python tools/gpu_diagnose.py --host-probe  # autograd's share of a call's host time

Prints relative-norm errors (kernel vs torch ops, float64 evaluation of the torch ops) of each
piece: row moments, gates, forward coefficients, backward coefficients; then the same under
variants (no fp fusion, smaller tiles, other warp counts) to localise a miscompile.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import mn_triton
from mn_triton import backend
from mn_triton import mix as tmix
from mn_triton.kernels import mix as kmix
from mn_triton.kernels import moments as kmom

DEV = "cuda"


def rel(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def case(n, c, length, k, seed=0, dtype=torch.float32):
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = (torch.randn(n, c, length, generator=g) * 2 + 1).to(DEV)
    p = {
        "gw": torch.randn(k, c, generator=g),
        "gb": torch.randn(k, generator=g),
        "w": torch.randn(c, generator=g) * 0.5 + 1,
        "b": torch.randn(c, generator=g) * 0.5,
        "rm": torch.randn(k, c, generator=g),
    }
    p["rms"] = p["rm"] ** 2 + torch.rand(k, c, generator=g) + 0.5
    p = {key: v.to(DEV, dtype) for key, v in p.items()}
    return x, p


def fwd_args(stats, p, training):
    """mode_norm_forward's arguments (both mixes) from row statistics and parameters."""
    return (*stats, p["gw"], p["gb"], p["w"], p["b"], p["rm"].clone(), p["rms"].clone(),
            training, 1e-5)  # fmt: skip


def compare_forward(n, c, length, k, training, label="", dtype=torch.float32):
    x, p = case(n, c, length, k, dtype=dtype)
    x = x.to(dtype)
    stats = backend._row_moments_torch(x, dtype)
    kstats = kmom.row_moments(x, dtype)
    e_mom = max(rel(a, b) for a, b in zip(kstats, stats, strict=True))
    # float64 truth from the torch-op mix
    p64 = {key: v.double() for key, v in p.items()}
    st64 = tuple(s.double() for s in stats)
    coeffs, mstats = tmix.mode_norm_forward(*fwd_args(st64, p64, training))
    ks, kb, kmean, kvar = kmix.mode_norm_forward(*fwd_args(stats, p, training))
    torch.cuda.synchronize()
    gates = torch.softmax((st64[0] + st64[1]) @ p64["gw"].T + p64["gb"], dim=1)
    mode = "train" if training else "eval "
    out = (
        f"{label:28s} N={n:5d} C={c:4d} L={length:4d} K={k} {mode}"
        f" moments {e_mom:.1e} scale {rel(ks, coeffs.scale):.1e} bias {rel(kb, coeffs.bias):.1e}"
        f" mean {rel(kmean, mstats.absolute_mean()):.1e} var {rel(kvar, mstats.var):.1e}"
    )
    # gates alone, with the mix kernels' tiles
    bn, bc, kp, cc = kmix._mn_blocks(n, c, k)
    kg = torch.empty(n, k, device=DEV, dtype=dtype)
    kmix._mn_gates_kernel[(kmix.cdiv(n, bn),)](
        stats[0], stats[1], p["gw"], p["gb"], kg, n, c, k,
        HAS_GATE_BIAS=True, BLOCK_N=bn, K_PAD=kp, CHUNK_C=cc, enable_fp_fusion=kmix.FP_FUSION,
    )  # fmt: skip
    torch.cuda.synchronize()
    out += f" gates {rel(kg, gates):.1e} tiles {bn, bc, kp, cc}"
    print(out, flush=True)


def compare_backward(n, c, length, k, training, label=""):
    x, p = case(n, c, length, k, seed=1)
    stats = backend._row_moments_torch(x, torch.float32)
    dy = torch.randn_like(x)
    sdy, sdyxs = backend._row_grad_sums_torch(x, dy, stats[0])

    def args(st, pp, s1, s2):
        return (s1, s2, length, *st, pp["gw"], pp["gb"], pp["w"], pp["rm"], pp["rms"], training,
                1e-5)  # fmt: skip

    p64 = {key: v.double() for key, v in p.items()}
    st64 = tuple(s.double() for s in stats)
    ref = tmix.mode_norm_backward(*args(st64, p64, sdy.double(), sdyxs.double()))
    got = kmix.mode_norm_backward(*args(stats, p, sdy, sdyxs))
    torch.cuda.synchronize()
    errs = " ".join(f"{nm} {rel(g, r):.1e}" for nm, g, r in zip(ref._fields, got, ref, strict=True))
    print(
        f"{label:28s} BWD N={n:5d} C={c:4d} L={length:4d} K={k} "
        f"{'train' if training else 'eval '} {errs}",
        flush=True,
    )


CASES = [(16, 24, 143, 3), (15, 24, 143, 3), (4, 64, 3136, 2), (256, 64, 64, 2), (8, 8, 16, 2)]
# The variants' cases: a CNN layer's, and a BatchNorm1d-like batch whose samples split (the
# split's statistics kernel) and whose channels span two programs (the gates' backward kernel).
VARIANT_CASES = [CASES[0], CASES[3], (4096, 64, 1, 2)]


class Warps:
    """kernel[grid](...) with num_warps forced."""

    def __init__(self, fn, warps):
        self.fn, self.warps = fn, warps

    def __getitem__(self, grid):
        return lambda *a, **kw: self.fn[grid](*a, **{**kw, "num_warps": self.warps})


def variants() -> None:
    names = [
        "_mn_mix_forward_kernel",
        "_mn_batch_stats_kernel",
        "_mn_mix_backward_rows_kernel",
        "_mn_mix_backward_gates_kernel",
        "_mn_gates_kernel",
    ]
    orig = {nm: getattr(kmix, nm) for nm in names}
    for label, setup in [
        ("no fp fusion", lambda: setattr(kmix, "FP_FUSION", False)),
        ("MN blocks of 4 samples", lambda: setattr(kmix, "MN_BLOCK_N", 4)),
        ("num_warps 1", lambda: [setattr(kmix, nm, Warps(orig[nm], 1)) for nm in names]),
        ("num_warps 8", lambda: [setattr(kmix, nm, Warps(orig[nm], 8)) for nm in names]),
    ]:
        saved = (kmix.FP_FUSION, kmix.MN_BLOCK_N)
        setup()
        try:
            for n, c, length, k in VARIANT_CASES:
                for training in (False, True):
                    compare_forward(n, c, length, k, training, label)
                    compare_backward(n, c, length, k, training, label)
        except Exception as e:
            print(label, "failed:", repr(e)[:300], flush=True)
        kmix.FP_FUSION, kmix.MN_BLOCK_N = saved
        for nm in names:
            setattr(kmix, nm, orig[nm])


def profile() -> None:
    """A ModeNorm2d call's host time beside bare PyTorch costs, then its cProfile."""
    layer = mn_triton.ModeNorm2d(8, num_modes=2).to(DEV)
    x = torch.randn(2, 8, 4, 4, device=DEV, requires_grad=True)
    xs = torch.randn(2, 8, 16, device=DEV)
    step = _from_no_grads([x, *layer.parameters()], lambda: layer(x).sum().backward())
    timings = {
        "ModeNorm2d fwd+bwd host": step,
        "row_moments (1 launch + 3 empties)": lambda: kmom.row_moments(xs, torch.float32),
        "torch.empty": lambda: torch.empty(16, device=DEV),
        "tiny torch kernel launch (add_)": lambda: xs.add_(0),
    }
    for name, fn in timings.items():
        print(f"{name}: {_us_per_call(fn):.1f} us", flush=True)
    _cprofile_top(step, "ModeNorm2d fwd+bwd", calls=100, rows=28,
                  keys=("tottime", "cumulative"))  # fmt: skip


def launch_cost() -> None:
    """Host time of one launch of the moments kernel on a tiny tensor: through Triton's
    launch path (binding, specialisation, cache lookup), and straight through the cached
    CompiledKernel (what a leaner launch path would save), beside a tiny torch kernel."""
    x = torch.randn(2, 8, 16, device=DEV)
    outs = [torch.empty(2, 8, device=DEV) for _ in range(3)]
    args = (x, *outs, 16, 8, 16, 16, 128, 16, 0, 1, 16, 1)
    consts = {"BLOCK_ROWS": 16, "BLOCK_LEN": 16, "TWO_LEVEL": False, "ACC_FP64": False,
              "INDEX_64": False}  # fmt: skip
    kernel = kmom._row_moments_kernel
    calls = 2000

    def per_launch(launch) -> float:
        for _ in range(50):
            launch()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            launch()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / calls * 1e6

    normal = per_launch(lambda: kernel[(1, 1)](*args, **consts, enable_fp_fusion=True))
    print(f"moments kernel launch, Triton's launch path: {normal:.1f} us", flush=True)
    expected = [t.clone() for t in outs]
    try:
        compiled = kernel.warmup(*args, **consts, enable_fp_fusion=True, grid=(1, 1))
        for t in outs:
            t.zero_()
        direct = per_launch(lambda: compiled[(1, 1, 1)](*args, *consts.values()))
        same = all(torch.equal(a, b) for a, b in zip(outs, expected, strict=True))
        print(f"moments kernel launch, CompiledKernel directly: {direct:.1f} us (same "
              f"results: {same})", flush=True)  # fmt: skip
    except Exception as e:
        print("direct launch failed:", repr(e)[:400], flush=True)
    print(f"tiny torch kernel (add_): {per_launch(lambda: x.add_(0)):.1f} us", flush=True)


def _us_per_call(fn, calls: int = 300, rounds: int = 5) -> float:
    """Median over `rounds` of the host time per call of `fn` (µs), synchronised per round."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return sorted(times)[len(times) // 2]


class _SixOutputs(torch.autograd.Function):
    """A Function shaped like ours (6 outputs, 5 without gradient), doing nothing."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        outs = tuple(x.new_empty(1) for _ in range(5))
        ctx.mark_non_differentiable(*outs)
        return (x.view_as(x), *outs)

    @staticmethod
    def backward(ctx, dy, *_):
        return dy


def host_stages() -> None:
    """Host time of each stage of a ModeNorm2d call (tiny input: the host's share alone),
    timed with perf_counter over many calls, beside BatchNorm2d and bare PyTorch costs."""
    from torch import nn

    c, k = 8, 2
    layer = mn_triton.ModeNorm2d(c, num_modes=k).to(DEV)
    bn = nn.BatchNorm2d(c).to(DEV)
    x = torch.randn(2, c, 4, 4, device=DEV)
    xg = x.clone().requires_grad_()
    dy = torch.randn_like(x)
    params = [xg, *layer.parameters()]
    gw, gb = layer.gate.weight.detach(), layer.gate.bias.detach()
    w, b = layer.weight.detach(), layer.bias.detach()
    rm, rms = layer.running_mean.clone(), layer.running_mean_sq.clone()
    shift, md, var = backend.row_moments(x, torch.float32)
    scale, row_bias, *_ = backend.mode_norm_mix_forward(
        x, shift, md, var, gw, gb, w, b, rm, rms, True, 1e-5)  # fmt: skip
    sdy, sdyxs = backend.row_grad_sums(x, dy, shift)
    y = layer(xg)
    ident = nn.Identity()
    mn_step = _from_no_grads(params, lambda: layer(xg).backward(dy))
    bn_step = _from_no_grads([xg, *bn.parameters()], lambda: bn(xg).backward(dy))
    stages = {
        "ModeNorm2d fwd+bwd (layer(x).backward(dy))": mn_step,
        "ModeNorm2d forward, recording autograd": lambda: layer(xg),
        "ModeNorm2d forward under no_grad": lambda: _no_grad(layer, x),
        "ModeNorm2d backward alone (autograd.grad, retained graph)":
            lambda: torch.autograd.grad(y, params, dy, retain_graph=True),
        "  row_moments (moments kernel)": lambda: backend.row_moments(x, torch.float32),
        "  mix forward (mix kernel)": lambda: backend.mode_norm_mix_forward(
            x, shift, md, var, gw, gb, w, b, rm, rms, True, 1e-5),
        "  apply (row_affine)": lambda: backend.row_affine(x, shift, scale, row_bias),
        "  row_grad_sums (gradient-sums kernel)": lambda: backend.row_grad_sums(x, dy, shift),
        "  mix backward (rows kernel)": lambda: backend.mode_norm_mix_backward(
            x, sdy, sdyxs, 16, shift, md, var, gw, gb, w, rm, rms, True, 1e-5),
        "  dx (row_affine with dy)": lambda: backend.row_affine(x, shift, scale, row_bias, dy,
                                                                 scale),
        "BatchNorm2d fwd+bwd": bn_step,
        "BatchNorm2d forward under no_grad": lambda: _no_grad(bn, x),
        "6-output no-op autograd.Function fwd+bwd":
            _from_no_grads([xg], lambda: _SixOutputs.apply(xg)[0].backward(dy)),
        "nn.Identity module call": lambda: ident(x),
        "torch.empty (CUDA)": lambda: torch.empty(16, device=DEV),
        "tiny torch kernel (x.add_(0))": lambda: x.add_(0),
    }  # fmt: skip
    for name, fn in stages.items():
        print(f"{name:60s} {_us_per_call(fn):8.1f} us", flush=True)
    # The autograd engine runs a CUDA graph's nodes on a device thread: each backward hands
    # over to it and back. Without that thread the handover's cost drops out.
    with torch.autograd.set_multithreading_enabled(False):
        for name in ("ModeNorm2d fwd+bwd (layer(x).backward(dy))", "BatchNorm2d fwd+bwd"):
            print(f"{name + ', no engine thread':60s} {_us_per_call(stages[name]):8.1f} us",
                  flush=True)  # fmt: skip
    _op_table(mn_step, "ModeNorm2d fwd+bwd")
    _op_table(bn_step, "BatchNorm2d fwd+bwd")


def _from_no_grads(leaves: list[torch.Tensor], fn: Callable[[], object]) -> Callable[[], None]:
    """`fn` (a forward+backward), each call from every leaf's gradient None, as a training
    step after zero_grad(): else each call adds into the last one's, an add_ per leaf (5 for
    ModeNorm2d, 3 for BatchNorm2d) that a training step does not pay."""

    def call() -> None:
        for leaf in leaves:
            leaf.grad = None
        fn()

    return call


def _op_table(fn, label: str, calls: int = 50) -> None:
    """torch.profiler's CPU-side table for `calls` calls: aten ops and CUDA runtime calls
    (a cudaMemcpy or cudaStreamSynchronize here would be a host synchronisation)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    print(f"\n{label}: torch.profiler, {calls} calls, by self CPU time", flush=True)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    print(table[:9000], flush=True)


class _LikeModeNorm(torch.autograd.Function):
    """A Function with ModeNormFunction's inputs, outputs and saved tensors, doing no work:
    what autograd's own bookkeeping costs for a call shaped like ours."""

    @staticmethod
    def forward(ctx, x, gw, gb, w, b, rm, rms, training, eps, momentum):
        n, c = x.shape[:2]
        stats = [x.new_empty((n, c)) for _ in range(3)] + [x.new_empty((2, c)) for _ in range(2)]
        y = torch.empty_like(x)
        ctx.save_for_backward(x, *stats[:3], gw, gb, w, None, None)
        ctx.mark_non_differentiable(*stats)
        ctx.set_materialize_grads(False)
        return y, *stats

    @staticmethod
    def backward(ctx, dy, *_):
        x, s, md, v, gw, gb, w, _, _ = ctx.saved_tensors
        return dy, gw, gb, w, w, None, None, None, None, None


def _cprofile_top(
    fn: Callable[[], object],
    label: str,
    calls: int = 200,
    rows: int = 14,
    keys: tuple[str, ...] = ("tottime",),
) -> None:
    """cProfile of `calls` calls of `fn` after a warm-up: its top `rows`, by each of `keys`."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    pr.disable()
    for key in keys:
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats(key).print_stats(rows)
        print(f"\ncProfile, {label}, {calls} calls, by {key}:\n" + s.getvalue()[:6000],
              flush=True)  # fmt: skip


def _probe_device(dev: str) -> None:
    """host_probe's timings on one device."""
    c, k = 8, 2
    layer = mn_triton.ModeNorm2d(c, num_modes=k).to(dev)
    x = torch.randn(2, c, 4, 4, device=dev)
    xg = x.clone().requires_grad_()
    dy = torch.randn_like(x)
    params = [xg, *layer.parameters()]
    y = layer(xg)
    like = (layer.gate.weight, layer.gate.bias, layer.weight, layer.bias, layer.running_mean,
            layer.running_mean_sq, True, 1e-5, 0.1)  # fmt: skip
    yl = _LikeModeNorm.apply(xg, *like)[0]
    stages = {
        "ModeNorm2d forward, recording": lambda: layer(xg),
        "ModeNorm2d forward, no_grad": lambda: _no_grad(layer, x),
        "ModeNorm2d backward alone": lambda: torch.autograd.grad(y, params, dy,
                                                                 retain_graph=True),
        "no-op Function like ours, forward recording": lambda: _LikeModeNorm.apply(xg, *like),
        "no-op Function like ours, forward no_grad": lambda: _no_grad(
            lambda t: _LikeModeNorm.apply(t, *like), x),
        "no-op Function like ours, backward alone": lambda: torch.autograd.grad(
            yl, params, dy, retain_graph=True, allow_unused=True),
    }  # fmt: skip
    for name, fn in stages.items():
        print(f"{name + ', ' + dev:60s} {_us_per_call(fn, calls=200, rounds=3):8.1f} us",
              flush=True)  # fmt: skip


def host_probe() -> None:
    """Where a ModeNorm2d call's host time goes beyond its kernels' wrappers: the same call
    recording autograd and not, on CUDA and on CPU tensors (the torch-op path) in this
    process, beside a Function shaped like ours doing nothing; then cProfile of both."""
    from torch import nn

    for dev in (DEV, "cpu"):
        _probe_device(dev)
    ident, t = nn.Identity(), torch.zeros(1)
    print(f"{'nn.Identity call':60s} {_us_per_call(lambda: ident(t), 2000, 3):8.1f} us")
    layer = mn_triton.ModeNorm2d(8, num_modes=2).to(DEV)
    x = torch.randn(2, 8, 4, 4, device=DEV)
    xg = x.clone().requires_grad_()
    _cprofile_top(lambda: layer(xg), "ModeNorm2d forward recording (CUDA)")
    _cprofile_top(lambda: _no_grad(layer, x), "ModeNorm2d forward no_grad (CUDA)")


def _no_grad(module, x):
    with torch.no_grad():
        return module(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="store_true", help="the host profile after the errors")
    ap.add_argument("--no-variants", action="store_true", help="the errors without the variants")
    host = ap.add_mutually_exclusive_group()
    host.add_argument("--host-only", action="store_true",
                      help="host time only: launch cost, per stage, profile")  # fmt: skip
    host.add_argument("--host-probe", action="store_true", help="autograd's share of host time")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("needs a CUDA device (this machine has none)")
    print(torch.cuda.get_device_name(), flush=True)
    if a.host_probe:
        host_probe()
        return
    if a.host_only:
        launch_cost()
        host_stages()
        profile()
        return
    for n, c, length, k in CASES:
        for training in (False, True):
            compare_forward(n, c, length, k, training)
    compare_forward(16, 24, 143, 3, False, "float64", torch.float64)
    for n, c, length, k in [(16, 24, 143, 3), (8192, 24, 1, 2), (4096, 64, 1, 2)]:
        for training in (False, True):
            compare_backward(n, c, length, k, training)
    if not a.no_variants:
        variants()
    if a.profile:
        profile()


if __name__ == "__main__":
    main()
