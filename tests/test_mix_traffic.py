"""tools/mix_traffic.py counts the bytes each launch and program of the MN mix moves.

It counts what the memory checks (tests/memcheck.py) see of each launch; it runs in a
process of its own, so that its listener and settings leave the other tests alone."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import memcheck

REPO = Path(__file__).resolve().parents[1]
# The tool counts through the memory checks, which need these interpreter functions.
pytestmark = pytest.mark.skipif(
    bool(memcheck.missing_hooks()),
    reason=f"this Triton's interpreter lacks {memcheck.missing_hooks()}",
)

_RUN = """
import json, sys
sys.path.insert(0, "tools")
import mix_traffic as t
t.mix.GATES_KERNEL_MIN_ELEMENTS = {threshold}
t.mix.GATE_PARTIALS_SUM_MIN = {shares_threshold}
counter = t.Counter()
counter.install()
forward, backward = t.run_mix(40, 70, 3, counter)
print(json.dumps([[l.kernel, l.programs, l.total, l.busiest] for l in forward + backward]))
"""


def _run(script: str) -> list:
    """Run a script in a process of its own; the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _launches(threshold: int, shares_threshold: int = 2**62) -> list[list]:
    return _run(_RUN.format(threshold=threshold, shares_threshold=shares_threshold))


def test_counts_the_bytes_of_the_gates_kernel_exactly():
    """N, C, K = 40, 70, 3 in float32; the gates kernel runs 10 programs of 4 samples (the
    mix kernels' blocks of samples at K = 3). Each reads its samples' shift and mean
    deviation (8 bytes a statistic), the whole gate weight (K·C) and bias (K), and writes its
    samples' K gates. It runs in the forward alone: the backward takes the gates it wrote."""
    launches = _launches(threshold=0)
    gates = [launch for launch in launches if launch[0] == "_mn_gates_kernel"]
    per_program_params = 4 * (3 * 70 + 3)
    total = 40 * 70 * 8 + 10 * per_program_params + 40 * 3 * 4
    busiest = 4 * 70 * 8 + per_program_params + 4 * 3 * 4
    assert gates == [["_mn_gates_kernel", 10, total, busiest]]
    assert launches.index(gates[0]) == 0  # before the forward mix kernel


def test_gates_computed_once_move_less_per_program():
    """With the gates computed once, each walk of a mix program over the samples reads each
    sample's K gates instead of every channel's shift and mean deviation (8 bytes each) and,
    per block of 4 samples, the gate weight and bias: N·C·8 + blocks·(K·C + K)·4 − N·K·4
    bytes fewer in each of the forward kernel's 3 walks. The backward's kernels read the
    gates the forward kept either way (its rows kernel walks twice, taking the forward's
    batch statistics too, its gates kernel once): the same bytes."""
    shared, inline = _launches(threshold=0), _launches(threshold=2**62)
    assert "_mn_gates_kernel" not in {launch[0] for launch in inline}
    walks = {"_mn_mix_forward_kernel": 3, "_mn_mix_backward_rows_kernel": 0,
             "_mn_mix_backward_gates_kernel": 0}  # fmt: skip
    assert {launch[0] for launch in inline} == set(walks)
    n, c, k, blocks = 40, 70, 3, 10
    per_walk = n * c * 8 + blocks * (k * c + k) * 4 - n * k * 4
    # Computing them, the forward kernel also stores them for the backward: its first program
    # (the busiest), K per sample.
    stored = {"_mn_mix_forward_kernel": n * k * 4}
    for name, count in walks.items():
        (with_kernel,) = [launch for launch in shared if launch[0] == name]
        (without,) = [launch for launch in inline if launch[0] == name]
        assert with_kernel[1] == without[1] == 3  # programs: channel blocks of 32
        saved = count * per_walk + stored.get(name, 0)
        assert without[3] - with_kernel[3] == saved, name  # the busiest program
        assert without[2] - with_kernel[2] == 3 * count * per_walk + stored.get(name, 0), name


def test_gate_shares_summed_first_move_less_per_program():
    """The backward's gates kernel runs a program per channel block (P = 3 at C = 70), and
    each reads every block's share of Σ_c g·∂L/∂g for its samples: P·N·K floats. Summed
    first (kernels/mix.GATE_PARTIALS_SUM_MIN), each reads the N·K sums instead, and a torch
    sum (counted as one launch) reads the P·N·K shares once and writes the N·K sums."""
    apart, summed = _launches(threshold=0), _launches(threshold=0, shares_threshold=0)
    n, k, programs = 40, 3, 3
    name = "_mn_mix_backward_gates_kernel"
    (gates_apart,) = [launch for launch in apart if launch[0] == name]
    (gates_summed,) = [launch for launch in summed if launch[0] == name]
    saved = (programs - 1) * n * k * 4
    assert gates_apart[3] - gates_summed[3] == saved  # the busiest program
    assert gates_apart[2] - gates_summed[2] == programs * saved
    sums = [launch for launch in summed if launch[0] == "torch sum (gate shares)"]
    moved = (programs + 1) * n * k * 4
    assert sums == [["torch sum (gate shares)", 1, moved, moved]]
    assert summed.index(sums[0]) == summed.index(gates_summed) - 1  # just before the kernel
    assert "torch sum (gate shares)" not in {launch[0] for launch in apart}


_LAYER = """
import json, sys
sys.path.insert(0, "tools")
import mix_traffic as t
t.backend.POINT_ROWS = {points}
counter = t.Counter()
counter.install()
steps = t.run_layer(8, 40, 1, 2, counter)
print(json.dumps([[[launch.kernel, launch.total] for launch in step] for step in steps]))
"""


def test_layer_step_on_one_element_rows_skips_the_passes():
    """`--layer` counts a whole ModeNorm1d step: on (8, 40) features, rows of one element, the
    forward is the mix kernel alone (mn_triton.backend.POINT_ROWS), which then reads no mean
    deviations or variances, and the backward has no gradient-sums pass and no apply pass:
    dx is one torch op (counted as TORCH_DX), which moves less than the pass it replaces."""
    forward, backward = _run(_LAYER.format(points=True))
    forward_off, backward_off = _run(_LAYER.format(points=False))
    kernels = [[name for name, _ in launches] for launches in (forward, backward)]
    kernels_off = [[name for name, _ in launches] for launches in (forward_off, backward_off)]
    mix_backward = ["_mn_mix_backward_rows_kernel", "_mn_mix_backward_gates_kernel"]
    assert kernels == [["_mn_mix_forward_kernel"], [*mix_backward, "torch addcmul_ (dx)"]]
    assert kernels_off == [
        ["_row_moments_kernel", "_mn_mix_forward_kernel", "_row_affine_kernel"],
        ["_row_grad_sums_kernel", *mix_backward, "_row_affine_kernel"],
    ]
    assert forward[0][1] < forward_off[1][1]  # the mix kernel itself reads less
    assert backward[0][1] < backward_off[1][1]
    assert backward[-1][1] == 4 * 8 * 40 * 4  # bias, dy, dy_scale read; dx written
    assert backward_off[-1][1] == 7 * 8 * 40 * 4  # x twice, dy, and four per-row arrays


_MAIN = """
import contextlib, io, json, sys
sys.path.insert(0, "tools")
import mix_traffic as t
names = ("GATES_KERNEL_MIN_ELEMENTS", "SPLIT_MIN_ROWS", "GRAPH_SPLIT_MIN_ROWS",
         "GATE_PARTIALS_SUM_MIN")
saved, points = {name: getattr(t.mix, name) for name in names}, t.backend.POINT_ROWS
out = {}
for argv in ARGVS:
    with contextlib.redirect_stdout(io.StringIO()) as text:
        t.main(argv)
    out[" ".join(argv)] = text.getvalue()
    for name, value in saved.items():  # as the next command line finds them
        setattr(t.mix, name, value)
    t.backend.POINT_ROWS = points
print(json.dumps(out))
"""


def _table(text: str) -> tuple[list[tuple], dict[str, list[float]]]:
    """The launches' rows, (direction, kernel, programs, total KiB, busiest KiB), and the
    Σ rows' numbers by direction."""
    launches, sums = [], {}
    for line in text.splitlines():
        words = line.split()
        if line[:5].strip().isdigit():
            launches.append((words[4], " ".join(words[5:-3]), int(words[-3]),
                             float(words[-2]), float(words[-1])))  # fmt: skip
        elif "Σ" in line:
            sums[words[0]] = [float(w) for w in words if w.replace(".", "").isdigit()]
    return launches, sums


def test_the_command_line_sets_what_it_says_and_adds_up_the_launches():
    """main's options reach the mix (--gates, --gate-shares, --captured, --split off, --points
    off), each program of a 2-d grid counts, and the Σ rows add up the rows above them against
    3·|x| forward and 5·|x| backward. (32, 40) with K = 2: two channel blocks, and as captured
    the samples split in two."""
    shape = ["--shape", "32", "40", "1", "--k", "2"]
    argvs = [shape + ["--layer"], shape + ["--layer", "--points", "off"],
             shape + ["--gates", "kernel", "--gate-shares", "summed"],
             shape + ["--captured"], shape + ["--captured", "--split", "off"]]  # fmt: skip
    out = _run(_MAIN.replace("ARGVS", repr(argvs)))
    x_kib = 32 * 40 * 4 / 1024
    layer, points_off, gates, captured, unsplit = (_table(out[" ".join(a)]) for a in argvs)
    for launches, sums in (layer, points_off):
        for direction, passes in (("fwd", 3), ("bwd", 5)):
            rows = [row for row in launches if row[0] == direction]
            count, total, busiest, minimum = sums[direction]
            assert count == len(rows) and minimum == pytest.approx(passes * x_kib, abs=0.05)
            assert total == pytest.approx(sum(row[3] for row in rows), abs=0.05 * count)
            assert busiest == pytest.approx(sum(row[4] for row in rows), abs=0.05 * count)
    kernels = {name: [row[1] for row in table[0]] for name, table in
               (("layer", layer), ("points off", points_off), ("gates", gates))}  # fmt: skip
    assert "_row_moments_kernel" in kernels["points off"]
    assert "_row_moments_kernel" not in kernels["layer"]
    assert kernels["gates"][0] == "_mn_gates_kernel"
    assert "torch sum (gate shares)" in kernels["gates"]
    for launches, sums in (captured, unsplit):
        busiest = sum(row[4] for row in launches if row[0] == "fwd")
        assert sums["fwd"] == pytest.approx([3 * x_kib, busiest], abs=0.1)
    programs = [[row[2] for row in launches if row[1] == "_mn_mix_forward_kernel"]
                for launches, _ in (unsplit, captured)]  # fmt: skip
    assert programs == [[2], [4]]  # one per channel block, and per split of the samples


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shape", "0", "4", "1"], "--shape 0 4 1: N, C and L must be 1 or more"),  # memcheck
        (["--shape", "4", "0", "1"], "--shape 4 0 1: N, C and L must be 1 or more"),  # ÷ 0
        (["--shape", "4", "4", "0"], "--shape 4 4 0: N, C and L must be 1 or more"),  # a table
        (["--shape", "1", "4", "1", "--layer"], "and N·L 2 or more with --layer"),
        (["--k", "0"], "--k 0: a layer has 1 mode or more"),  # a table of nothing
    ],
)
def test_shapes_and_modes_that_count_nothing_are_refused(argv, message):
    """Refused before anything runs (they gave a memcheck error, a ZeroDivisionError or a
    table of meaningless numbers)."""
    result = subprocess.run([sys.executable, "tools/mix_traffic.py", *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "KiB" not in result.stdout
