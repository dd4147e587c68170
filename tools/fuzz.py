"""Fuzz the layers against the float64 oracle: random layers, shapes, strides, dtypes, K,
offsets and tile sizes, each checked as the tests check (SPEC §5 via tests/helpers).

The tests pin their cases; this draws new combinations of the same ingredients (a fuzzer of
this kind found the MGN backward's lost σ²-in-μ term). Each error is held to its bound (SPEC §5);
one that misses it by more than rounding on that data explains (see `verdict`) makes the draw
OVER, printed with the command that replays it, and the exit status 1.

    python tools/fuzz.py                       # 200 draws, Triton kernels (interpreted on CPU)
    python tools/fuzz.py --backend torch --draws 2000
    python tools/fuzz.py --device cuda --seconds 60    # the real kernels on a GPU, for 60 s
    python tools/fuzz.py --compile aot_eager           # the custom ops, as torch.compile runs them
    python tools/fuzz.py --seed 1234 --draws 1 -v      # replay one draw, every error shown
    python tools/fuzz.py --only one-element-rows --draws 20000 --seconds 600
    python tools/fuzz.py --only dead --seconds 300     # zero channels, tiny ε
    python tools/fuzz.py --only clusters --seconds 300 # rows in two groups far apart

--seconds without --draws draws until the time is up. A draw that raises (memcheck's bounds
and race checks included) is printed with its replay and counted like one OVER.

Some data are ill-conditioned for any float32 evaluation (README, "Accuracy"): draws where
ours misses the bound by no more than a float32 evaluation of the reference can explain are
reported as "ill-conditioned" (or "gate tail") and do not fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # helpers imports mn_triton: at run time only after TRITON_INTERPRET is set
    from helpers import OracleError

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
# No float64: against a float64 oracle nothing tells its rounding from the data's conditioning
# (the tests check float64 on benign data, and with gradcheck).
DTYPES = ("float32",) * 6 + ("float16", "bfloat16")


@dataclass(frozen=True)
class Draw:
    """One random case: everything needed to rebuild it is its seed."""

    seed: int
    layer: str  # e.g. "ModeNorm2d"
    shape: tuple[int, ...]
    num_modes: int
    dtype: str
    layout: str  # contiguous | channels_last | sliced | transposed
    offset: float
    gate_scale: float
    training: bool
    affine: bool
    momentum: float | None
    track_running_stats: bool
    tiny_tiles: bool
    outlier_gap: float  # 0, or how many logits mode 0 favours one far-off row by (see build)
    eps: float = 1e-5  # (see _dead_and_eps)
    dead: bool = False  # one channel (MGN: one sample) of zeros, as after a ReLU (ditto)
    # rows moved `cluster_gap` away from the rest (MN: samples; MGN: channels; see _clusters)
    far_rows: tuple[int, ...] = ()
    cluster_gap: float = 0.0

    def gates_matter(self) -> bool:
        """False where every mode sees the same statistics, so gate gradients vanish."""
        n, c = self.shape[:2]
        if self.num_modes == 1:
            return False
        if self.layer.startswith("ModeGroupNorm"):
            return c > 1
        uses_batch_stats = self.training or not self.track_running_stats
        return n > 1 or not uses_batch_stats


def draw(seed: int) -> Draw:
    rng = random.Random(seed)
    group = rng.random() < 0.4
    dims = rng.choice((1, 2, 2, 3))
    n, c = rng.randint(1, 5 if group else 9), rng.randint(1, 9 if rng.random() < 0.85 else 40)
    spatial = {
        1: rng.choice(((), (rng.randint(1, 13),))),
        2: (rng.randint(1, 7), rng.randint(1, 7)),
        3: (rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 4)),
    }[dims]
    # A mode nearly one row's alone (see _add_outlier), often on features: with one value per
    # row its σ² can fall below eps, which amplifies rounding the most.
    others = c if group else n  # rows the outlier stands apart from, itself included
    outlier_gap = rng.uniform(8.0, 40.0) if others > 1 and rng.random() < 0.25 else 0.0
    if outlier_gap and rng.random() < 0.5:
        dims, spatial = 1, ()
    length = 1
    for s in spatial:
        length *= s
    # One value per normalised group has output β and dx 0: relative errors say nothing.
    if (c if group else n) * length < 4:
        spatial = (*spatial[:-1], 4) if spatial else (4,)
    shape = (n, c, *spatial)
    dtype = rng.choice(DTYPES)
    layouts = ["contiguous", "sliced", "transposed"] + ["channels_last"] * (len(shape) >= 4)
    # 16-bit inputs cannot hold randn's detail at 1e4 (spacing 8 or 64): data then degenerate.
    offset = rng.choice((0.0, 1.0, 10.0) + ((1e4,) if dtype == "float32" else ()))
    # Logits differ between modes by ~spread·N(0, 2) (the offset's share: offset·Σ_c W) plus
    # about as much between samples: gates down to ~e^-20 with 16 modes. (An outlier's gap
    # goes further, by design: see verdict for how gate gradients are judged there.)
    spread = rng.choice((0.3, 1.0, 2.0, 4.0))
    gate_scale = spread / (max(offset, 2.0) * c**0.5)
    if outlier_gap:  # centred data: the gap, not an offset, sets the logits
        offset = 0.0
    return Draw(
        seed=seed,
        layer=("ModeGroupNorm" if group else "ModeNorm") + f"{dims}d",
        shape=shape,
        num_modes=rng.choice((1, 2, 2, 3, 4, 8, 16)),
        dtype=dtype,
        layout=rng.choice(layouts),
        offset=offset,
        gate_scale=gate_scale,
        training=rng.random() < 0.7,
        affine=rng.random() < 0.85,
        momentum=rng.choice((0.1, 0.1, 0.5, None)),
        track_running_stats=rng.random() < 0.85,
        tiny_tiles=rng.random() < 0.3,
        outlier_gap=outlier_gap,
        **_dead_and_eps(seed, group, n, c, dtype),
        **_clusters(seed, group, n, c, dtype, outlier_gap),
    )


def _eps(seed: int) -> float:
    """The layer's ε: the default in 60 % of draws, else log-uniform over 1e-10 … 1 (where
    it ties with a mode's σ², it changes which terms dominate). Drawn from a stream of its
    own, so a seed draws the same case as before ε was drawn, but for ε."""
    rng = random.Random(f"eps-{seed}")
    return 1e-5 if rng.random() < 0.6 else 10 ** rng.uniform(-10.0, 0.0)


def _dead_and_eps(seed: int, group: bool, n: int, c: int, dtype: str) -> dict[str, object]:
    """In 10 % of the draws with another channel (MGN: sample) beside it, one channel (MGN:
    one sample) of zeros, its σ² exactly 0; in float32, half of those with an ε log-uniform
    over 1e-30 … 1e-5, where 1/√ε is large and (1/√ε)³ overflows float32 (σ²'s gradient
    once turned that into NaN everywhere). In float16 ε stays ≥ 1e-5: the zero row's dx is
    ~dy/√ε, beyond float16's range below that for any evaluation. From a stream of its own,
    as ε's: a seed draws the same case as before these were drawn, but for them."""
    eps = _eps(seed)
    rng = random.Random(f"dead-{seed}")
    dead = (n if group else c) > 1 and rng.random() < 0.1
    if dead and rng.random() < 0.5 and dtype == "float32":
        eps = 10 ** rng.uniform(-30.0, -5.0)
    if dead and dtype == "float16":
        eps = max(eps, 1e-5)
    return {"dead": dead, "eps": eps}


def _clusters(
    seed: int, group: bool, n: int, c: int, dtype: str, outlier_gap: float
) -> dict[str, object]:
    """In 15 % of the float32 draws without an outlier, whose rows (MN: samples; MGN: each
    sample's channels) number 2 or more, a random part of them moved 1e2 … 1e6 away from
    the rest: two groups of rows far apart, data no other ingredient draws. MGN's pivot,
    while it was the shift nearest the mean of the shifts, put 11 of 330 such draws over a
    bound (seeds 58000000 on, torch ops; now 0). MN's mode pivots summed around sample 0,
    fixed the same day, took a ratio of ~1e8 to the rows' spread, beyond these: a pinned
    test holds that. From a stream of its own, as _dead_and_eps's: a seed draws the same
    case as before, but for these."""
    rng = random.Random(f"clusters-{seed}")
    rows = c if group else n
    if dtype != "float32" or outlier_gap or rows < 2 or rng.random() >= 0.15:
        return {}
    far = tuple(sorted(rng.sample(range(rows), rng.randint(1, rows - 1))))
    return {"far_rows": far, "cluster_gap": 10 ** rng.uniform(2.0, 6.0)}


def _laid_out(t, layout: str):
    """The same values in another memory layout (a view with non-trivial strides)."""
    import torch

    from helpers import batch_transposed, embed

    if layout == "channels_last":
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.to(memory_format=fmt)
    if layout == "transposed":  # samples fastest-varying: stride_n < stride_c
        return batch_transposed(t)
    if layout == "sliced":
        return embed(t, (1,) * t.dim())
    return t


def build(d: Draw, device: str):
    """The layer (randomised parameters and running estimates) and its input."""
    import torch

    import mn_triton
    from helpers import randomize

    torch.manual_seed(d.seed)
    dtype = getattr(torch, d.dtype)
    kwargs = {"num_modes": d.num_modes, "affine": d.affine, "eps": d.eps}  # float32 parameters
    if d.layer.startswith("ModeNorm"):
        kwargs.update(momentum=d.momentum, track_running_stats=d.track_running_stats)
    layer = getattr(mn_triton, d.layer)(d.shape[1], **kwargs)
    layer = randomize(layer, gate_scale=d.gate_scale).train(d.training)
    if getattr(layer, "running_mean", None) is not None and d.offset:
        with torch.no_grad():  # running estimates that describe such data
            layer.running_mean.add_(d.offset)
            layer.running_mean_sq.copy_(
                layer.running_mean**2 + 1.0 + torch.rand_like(layer.running_mean)
            )
    x = torch.randn(d.shape, dtype=torch.float64) * 2 + d.offset
    if d.outlier_gap:
        _add_outlier(layer, x, d.outlier_gap)
    if d.far_rows:
        far = list(d.far_rows)  # (x[far] would be a copy: assigned, not added to in place)
        where = (slice(None), far) if d.layer.startswith("ModeGroupNorm") else far
        x[where] += d.cluster_gap
    if d.dead:  # the last channel (MGN: sample), away from an outlier's first
        (x[-1] if d.layer.startswith("ModeGroupNorm") else x[:, -1]).zero_()
    # Laid out on the device: moving a sliced view there would make it contiguous.
    return layer.to(device), _laid_out(x.to(device, dtype), d.layout)


def _add_outlier(layer, x, gap: float) -> None:
    """One row far below the others (MGN: channel 0 of each sample; MN: sample 0), and mode
    0's gate favouring it by `gap` logits: mode 0 is then nearly that row's alone, its σ²
    small and σ²'s gradient large. Where the MGN backward once lost 1e-2 of dx."""
    import torch

    rows = x.view(*x.shape[:2], -1)
    with torch.no_grad():
        if type(layer).__name__.startswith("ModeGroupNorm"):
            drop = 8.0 + 8.0 * torch.rand(x.shape[0], dtype=x.dtype)
            rows[:, 0] -= drop[:, None]
            drop = drop.mean().item()
            layer.gate.weight[0] = -gap / drop
        else:
            drop = 8.0 + 8.0 * torch.rand(()).item()
            rows[0] -= drop
            layer.gate.weight[0] = -gap / (drop * x.shape[1])
        # The other modes see the outlier's row means too: keep their logits' spread as on
        # centred data, so that no gate underflows (its mode's statistics would jump).
        layer.gate.weight[1:] *= 2.0 / drop


def check(d: Draw, backend: str, device: str, compiler: str = "none") -> list[OracleError]:
    """The errors of every checked quantity of the draw; with a `compiler` (a torch.compile
    backend), of the layer compiled whole: the custom ops with their fake kernels."""
    import torch

    import mn_triton
    from helpers import oracle_errors, tiny_tiles

    layer, x = build(d, device)
    if compiler != "none":
        torch._dynamo.reset()  # each draw is a new layer: do not hit the recompile limit
        layer.compile(backend=compiler, fullgraph=True)
    tiles = tiny_tiles() if d.tiny_tiles and backend == "triton" else contextlib.nullcontext()
    with mn_triton.use_backend(backend), tiles:
        return oracle_errors(layer, x, gates_matter=d.gates_matter(), nudge=True)


def _replay(d: Draw, args: argparse.Namespace) -> str:
    return (f"python tools/fuzz.py --seed {d.seed} --draws 1 --backend {args.backend}"
            f" --device {args.device} --compile {args.compile} -v")  # fmt: skip


GATE_TAIL = 8  # see verdict


def excess(e: OracleError) -> float:
    """How far past its bound an error is (≤ 1: within); for a gate gradient the lesser of
    its relative error over the (capped) bound and its scaled error over GATE_SCALE_TOL
    (helpers: the tests' rule is stricter, OracleError.within)."""
    from helpers import GATE_BOUND_CAP, GATE_SCALE_TOL

    if e.err != e.err:
        return float("inf")
    if e.scale_err is None:
        return e.err / e.bound
    return min(e.err / min(e.bound, GATE_BOUND_CAP), e.scale_err / GATE_SCALE_TOL)


def verdict(e: OracleError) -> str:
    """'ok' within the bound; else 'ill-conditioned' within GATE_SLACK× the error of a float32
    evaluation of the reference on the same draw (the larger of two: at x and dy, and at both
    nudged by an ulp, see helpers.oracle_errors); else 'OVER'.

    A lost or wrong term errs by the size of that term, far beyond rounding; within 16× of
    what float32 arithmetic loses on the same data, an error is that data's conditioning at
    work (a scalar weight gradient summing terms that cancel, a mode one sample owns).

    Gate gradients are 'ok' within their bound (capped at GATE_BOUND_CAP) or within
    GATE_SCALE_TOL of the largest value they could take, which stays meaningful where gates
    barely matter and the relative error of a near-0 gradient does not; 'gate tail' within
    GATE_TAIL× either. Their bound follows GATE_SLACK× the float32 reference's error on the
    same draw, itself heavy-tailed: over 2000 draws ours was the more accurate in the median
    (ratio ~0.3), but the ratio reached ~70 where the reference happened to be lucky."""
    from helpers import GATE_SLACK

    if e.scale_err is not None:
        if excess(e) <= 1:
            return "ok"
        return "gate tail" if excess(e) <= GATE_TAIL else "OVER"
    if e.err <= e.bound:
        return "ok"
    # (Only a finite estimate explains anything: a float32 reference that overflowed would
    # clear every error, an infinite one of ours included.)
    lp = e.float32_err
    if lp is not None and math.isfinite(lp) and e.err <= GATE_SLACK * lp:
        return "ill-conditioned"
    return "OVER"  # NaN included


# Subsets of the draws a run may keep (--only): the rest are skipped, not checked.
SUBSETS: dict[str, Callable[[Draw], bool]] = {
    "all": lambda d: True,
    # rows of one element, in any dtype and layout: the path that skips the passes over x
    # (mn_triton.backend.POINT_ROWS)
    "one-element-rows": lambda d: math.prod(d.shape[2:]) == 1,
    # a channel (MGN: a sample) of zeros, half of them with a tiny ε (see _dead_and_eps)
    "dead": lambda d: d.dead,
    # two groups of rows far apart (see _clusters)
    "clusters": lambda d: bool(d.far_rows),
}


def _judge(
    d: Draw,
    errors: list[OracleError],
    args: argparse.Namespace,
    counts: dict[str, int],
    worst: dict[str, tuple[float, int]],
    out: Callable[[str], None],
) -> None:
    """Count a checked draw by its worst verdict, keep each quantity's worst error, and
    print the draw unless it is ok (every draw with -v), with its replay if OVER."""
    verdicts = [verdict(e) for e in errors]
    for e in errors:
        if excess(e) > worst.get(e.what, (-1.0, 0))[0]:
            worst[e.what] = (excess(e), d.seed)
    label = next((v for v in ("OVER", "ill-conditioned", "gate tail") if v in verdicts), "ok")
    if label != "ok":
        counts[label] += 1
    if label != "ok" or args.verbose:
        out(f"{label}: {d}")
        for e, v in zip(errors, verdicts, strict=True):
            if v != "ok" or args.verbose:
                lp = "" if e.float32_err is None else f", float32 reference {e.float32_err:.2e}"
                sc = "" if e.scale_err is None else f", {e.scale_err:.1e} of its scale"
                out(f"    {e.what}: {e.err:.2e} (bound {e.bound:.1e}{lp}{sc}) {v}")
        if label == "OVER":
            out(f"    replay: {_replay(d, args)}")


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Check args.draws draws (or as many as args.seconds allow); the number OVER or raised."""
    start, counts = time.perf_counter(), {"OVER": 0, "ill-conditioned": 0, "gate tail": 0}
    worst: dict[str, tuple[float, int]] = {}
    checked = raised = 0
    for i in range(args.draws):
        if args.seconds and time.perf_counter() - start > args.seconds:
            break
        d = draw(args.seed + i)
        if not SUBSETS[args.only](d):
            continue
        checked += 1
        try:
            errors = check(d, args.backend, args.device, args.compile)
        except Exception as exc:  # (memcheck's bounds and race errors too): name the draw, go on
            raised += 1
            out(f"RAISED: {d}\n    {type(exc).__name__}: {(str(exc) or '-').splitlines()[0]}")
            if args.verbose:  # (as the replay runs) the traceback too
                out(traceback.format_exc().rstrip())
            out(f"    replay: {_replay(d, args)}")
        else:
            _judge(d, errors, args, counts, worst, out)
        if checked % 25 == 0:
            elapsed = time.perf_counter() - start
            out(f"{checked} draws, {counts['OVER']} over a bound, {raised} raised, {elapsed:.0f} s")
    how = "" if args.compile == "none" else f", compiled by {args.compile}"
    out(f"{checked} draws ({args.backend} on {args.device}{how}): {counts['OVER']} over a bound, "
        f"{raised} raised, {counts['ill-conditioned']} ill-conditioned, {counts['gate tail']} in "
        "the gate tail; worst error / bound (seed), as judged (see verdict):")  # fmt: skip
    for what, (ratio, seed) in sorted(worst.items(), key=lambda kv: -kv[1][0]):
        out(f"    {what:36s} {ratio:10.3g}  ({seed})")
    return counts["OVER"] + raised


MAX_SEED = 2**62  # torch.manual_seed takes < 2**64; random.Random(-s) would redraw seed s


def check_counts(p: argparse.ArgumentParser, args: argparse.Namespace, default_draws: int):
    """Refuse (exit 2) counts that would check nothing or fail later; fill in --draws."""
    if args.draws is None:
        args.draws = MAX_SEED if getattr(args, "seconds", 0) else default_draws
    if args.draws < 1:
        p.error(f"--draws must be at least 1, not {args.draws}")
    if not getattr(args, "seconds", 0) >= 0:
        p.error(f"--seconds must be 0 (no limit) or more, not {args.seconds}")
    if not 0 <= args.seed < MAX_SEED:
        p.error(f"--seed must lie in 0 … 2**62 - 1, not {args.seed}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, help="how many (200; with --seconds, no limit)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop starting draws after this")
    p.add_argument("--seed", type=int, default=0, help="draw i uses seed + i")
    p.add_argument("--backend", choices=("triton", "torch"), default="triton")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--compile", choices=("none", "aot_eager", "inductor"), default="none",
        help="compile each layer with this torch.compile backend (seconds per draw)",
    )  # fmt: skip
    p.add_argument(
        "--only",
        choices=tuple(SUBSETS),
        default="all",
        help="check only this subset of the draws (the others are skipped)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="every draw and error")
    args = p.parse_args()
    check_counts(p, args, default_draws=200)
    import torch  # (mn_triton only after TRITON_INTERPRET below: it decorates the kernels)

    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda needs a CUDA device (this machine has none)")
    if args.device == "cpu" and args.backend == "triton":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are decorated
    import memcheck  # tests/: interpreted launches checked for bounds and races, as in tests

    memcheck.install()
    sys.exit(1 if run(args) else 0)


if __name__ == "__main__":
    main()
