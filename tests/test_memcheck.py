"""The interpreter's memory checks (tests/memcheck.py) find what a GPU would fault on,
silently corrupt or compute in a varying order (out-of-bounds accesses, races between the
programs of a launch), and let correct masked and shared accesses through."""

import pytest
import torch
import triton
import triton.language as tl

import memcheck
from mn_triton import backend

pytestmark = [
    pytest.mark.skipif(not backend.INTERPRETING, reason="checks the interpreter"),
    pytest.mark.skipif(
        bool(memcheck.missing_hooks()),
        reason=f"this Triton's interpreter lacks {memcheck.missing_hooks()}",
    ),
]


@triton.jit
def _copy_kernel(X, Y, n_read, n_write, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    values = tl.load(X + offsets, mask=offsets < n_read, other=0.0)
    tl.store(Y + offsets, values, mask=offsets < n_write)


def test_the_check_is_on_for_every_test():
    assert memcheck._installed  # tests/conftest.py installs it


def test_in_bounds_masked_accesses_pass():
    x, y = torch.randn(5), torch.empty(5)
    _copy_kernel[(1,)](x, y, 5, 5, BLOCK=8)  # lanes 5..7 masked off
    assert torch.equal(x, y)


def test_a_load_one_past_the_end_raises():
    with pytest.raises(Exception, match="out-of-bounds load: 1 of 6 lanes"):
        _copy_kernel[(1,)](torch.randn(5), torch.empty(8), 6, 5, BLOCK=8)


def test_a_store_past_the_end_raises():
    with pytest.raises(Exception, match="out-of-bounds store: 3 of 8 lanes"):
        _copy_kernel[(1,)](torch.randn(8), torch.empty(5), 8, 8, BLOCK=8)


def test_a_slice_does_not_own_the_rest_of_its_storage():
    """Reading x[2:6]'s fifth element hits allocated memory (x[6]), but not the argument's."""
    base = torch.randn(10)
    with pytest.raises(Exception, match="out-of-bounds load"):
        _copy_kernel[(1,)](base[2:6], torch.empty(8), 5, 5, BLOCK=8)
    _copy_kernel[(1,)](base[2:6], out := torch.empty(4), 4, 4, BLOCK=8)
    assert torch.equal(out, base[2:6])


def test_an_access_running_from_one_argument_into_the_next_is_out_of_bounds():
    """Two views of one buffer, passed side by side: reading the first one element too far
    lands in the second, allocated and an argument, but not the one the access is for."""
    base = torch.randn(8)
    with pytest.raises(Exception, match="out-of-bounds load: 1 of 5 lanes"):
        _copy_kernel[(1,)](base[:4], base[4:], 5, 0, BLOCK=8)


def test_extents_follow_strides():
    t = torch.empty(4, 6)[:, 1:5:2]  # 4 rows, 2 columns, strides (6, 2)
    start, end = memcheck.tensor_extent(t)
    assert start == t.data_ptr() and end - start == (3 * 6 + 1 * 2 + 1) * 4
    empty = torch.empty(0, 3)
    assert memcheck.tensor_extent(empty) == (empty.data_ptr(), empty.data_ptr())


@triton.jit
def _shared_store_kernel(Y, SAME: tl.constexpr):
    pid = tl.program_id(0)
    where = 0 if SAME else pid
    tl.store(Y + where, pid.to(tl.float32))


@triton.jit
def _neighbour_load_kernel(X, Y, NEIGHBOUR: tl.constexpr):
    pid = tl.program_id(0)
    tl.store(X + pid, pid.to(tl.float32))
    source = (pid + 1) % tl.num_programs(0) if NEIGHBOUR else pid
    tl.store(Y + pid, tl.load(X + source))  # reads its own store, or a neighbour's


def test_two_programs_storing_one_element_race():
    _shared_store_kernel[(3,)](torch.empty(3), SAME=False)
    with pytest.raises(RuntimeError, match="race: programs 0 and 1 both store"):
        _shared_store_kernel[(3,)](torch.empty(3), SAME=True)


def test_a_program_loading_what_another_stores_races_whatever_the_order():
    """Program 0 loads x[1] before program 1 stores it, program 2 loads x[0] after program 0
    stored it: both race on a GPU. A program reading its own store and every program reading
    an element nobody stores are fine."""
    x, y = torch.zeros(3), torch.empty(3)
    _neighbour_load_kernel[(3,)](x, y, NEIGHBOUR=False)
    assert y.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="race: program .* loads .* which program"):
        _neighbour_load_kernel[(3,)](x, y, NEIGHBOUR=True)
    _copy_kernel[(4,)](torch.randn(5), torch.empty(5), 5, 0, BLOCK=8)  # all read, none store


@triton.jit
def _wide_load_kernel(X, Y, n):
    offsets = tl.arange(0, 2)
    wide = X.to(tl.pointer_type(tl.float64))  # x's bytes, read 8 at a time
    tl.store(Y + offsets, tl.load(wide + offsets, mask=offsets < n, other=0.0), mask=offsets < n)


def test_an_element_must_fit_whole_inside_its_tensor():
    """x holds 12 bytes: its first 8 as one float64 are inside, the next 8 start inside but
    end 4 bytes past x."""
    x, y = torch.zeros(3), torch.empty(2, dtype=torch.float64)
    _wide_load_kernel[(1,)](x, y, 1)
    with pytest.raises(Exception, match=r"out-of-bounds load: 1 of 2 lanes.*\(8-byte elements"):
        _wide_load_kernel[(1,)](x, y, 2)


@triton.jit
def _shifted_copy_kernel(X, Y, shift, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    tl.store(Y + offsets, tl.load(X + offsets + shift))


def test_a_load_one_before_the_start_raises():
    """x[1:5] starting one element early reads x[0]: allocated, but not the argument's."""
    base = torch.randn(8)
    _shifted_copy_kernel[(1,)](base[1:5], y := torch.empty(4), 0, BLOCK=4)
    assert torch.equal(y, base[1:5])
    with pytest.raises(Exception, match="out-of-bounds load: 1 of 4 lanes"):
        _shifted_copy_kernel[(1,)](base[1:5], y, -1, BLOCK=4)


def test_the_extents_are_the_launchs_own():
    """A tensor that an earlier launch took is no argument of this one: x[:4]'s fifth
    element is x's, an argument just before, but not this launch's."""
    x = torch.randn(16)
    _copy_kernel[(1,)](x, torch.empty(8), 8, 0, BLOCK=8)
    with pytest.raises(Exception, match="out-of-bounds load: 1 of 5 lanes"):
        _copy_kernel[(1,)](x[:4], torch.empty(8), 5, 0, BLOCK=8)


def test_tensors_passed_by_keyword_are_arguments():
    x, y = torch.randn(5), torch.empty(5)
    _copy_kernel[(1,)](X=x, Y=y, n_read=5, n_write=5, BLOCK=8)
    assert torch.equal(x, y)
    with pytest.raises(Exception, match="out-of-bounds store: 1 of 6 lanes"):
        _copy_kernel[(1,)](X=x, Y=y, n_read=5, n_write=6, BLOCK=8)


@triton.jit
def _tuple_sum_kernel(XS, Y, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    tl.store(Y + offsets, tl.load(XS[0] + offsets) + tl.load(XS[1] + offsets))


def test_tensors_in_a_tuple_argument_are_arguments():
    a, b, y = torch.randn(4), torch.randn(4), torch.empty(4)
    _tuple_sum_kernel[(1,)]((a, b), y, BLOCK=4)
    assert torch.equal(y, a + b)
    with pytest.raises(Exception, match="out-of-bounds load: 4 of 8 lanes"):
        _tuple_sum_kernel[(1,)]((a, b), torch.empty(8), BLOCK=8)


@triton.jit
def _grid_store_kernel(Y, WHERE: tl.constexpr):
    x, y, z = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    flat = (x * tl.num_programs(1) + y) * tl.num_programs(2) + z
    if WHERE == "own":
        where = flat
    elif WHERE == "sum":
        where = x + y + z
    else:
        where = 0
    tl.store(Y + where, flat.to(tl.float32))


@pytest.mark.parametrize(
    "grid, where",
    [((2, 1, 1), "first"), ((1, 2, 1), "first"), ((1, 1, 2), "first"), ((1, 2, 2), "sum")],
)
def test_programs_differing_along_any_grid_axis_race(grid, where):
    """Programs that differ along one axis alone store y[0]; or, in a (1, 2, 2) grid, each
    stores at the sum of its ids: only (0, 1, 0) and (0, 0, 1) meet, at y[1]. Each program
    at its own element (its flat id) is no race."""
    _grid_store_kernel[(2, 3, 4)](y := torch.empty(24), WHERE="own")
    assert y.tolist() == list(range(24))
    with pytest.raises(RuntimeError, match="race: programs .* both store"):
        _grid_store_kernel[grid](torch.empty(4), WHERE=where)


@triton.jit
def _block_store_kernel(Y, STEP: tl.constexpr):
    pid = tl.program_id(0)
    first = (tl.num_programs(0) - 1 - pid) * STEP  # program 0 stores the last block
    tl.store(Y + first + tl.arange(0, 4), pid.to(tl.float32))


def test_overlapping_blocks_of_two_programs_race():
    """Program 1 stores y[0:4], program 0 y[3:7]: they share y[3] alone."""
    _block_store_kernel[(2,)](y := torch.empty(8), STEP=4)
    assert y.tolist() == [1.0] * 4 + [0.0] * 4
    with pytest.raises(RuntimeError, match="race: programs 0 and 1 both store"):
        _block_store_kernel[(2,)](torch.empty(8), STEP=3)


@triton.jit
def _own_element_kernel(X, Y, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    total = tl.sum(tl.load(X + tl.arange(0, BLOCK)))  # every program reads all of x
    tl.store(Y + pid, total)
    tl.store(Y + pid, tl.load(Y + pid) + pid)  # reads back its own store, and stores again


def test_shared_reads_and_a_programs_own_stores_and_reloads_pass():
    """The common shape of a kernel: every program reads all of x (nobody stores it) and
    stores, reloads and stores again its own element of y: no race."""
    x, y = torch.randn(4), torch.empty(3)
    _own_element_kernel[(3,)](x, y, BLOCK=4)
    assert torch.allclose(y, x.sum() + torch.arange(3.0))


def test_what_an_earlier_launch_stored_is_no_race():
    """Programs 1..3 store y[1..3]; the next launch's program 0 reads them: launches are
    ordered, so only a race within one launch counts."""
    _shared_store_kernel[(4,)](y := torch.empty(4), SAME=False)
    _own_element_kernel[(3,)](y, out := torch.empty(3), BLOCK=4)
    assert torch.allclose(out, torch.full((3,), 6.0) + torch.arange(3.0))


def test_listeners_see_each_launchs_name_grid_and_accesses():
    """tools/mix_traffic.py counts bytes per program so: each store's program is the flat
    id of the program that made it, as the kernel computes it."""
    seen = []

    def listener(name, grid, accesses):
        seen.append(
            (name, grid, {op: [(a.copy(), p, s) for a, p, s in accesses[op]] for op in accesses})
        )

    memcheck.add_listener(listener)
    try:
        _grid_store_kernel[(2, 3, 4)](y := torch.empty(24), WHERE="own")
    finally:
        memcheck._listeners.remove(listener)
    [(name, grid, accesses)] = seen
    assert (name, grid, accesses["load"]) == ("_grid_store_kernel", (2, 3, 4), [])
    stores = [(int(a[0] - y.data_ptr()) // 4, p, s) for a, p, s in accesses["store"]]
    assert sorted(stores) == [(i, i, 4) for i in range(24)]
