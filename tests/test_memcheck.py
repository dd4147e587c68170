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
