"""The interpreter's out-of-bounds check (tests/bounds_check.py) finds what a GPU would fault
on or silently corrupt, and lets correct masked accesses through."""

import pytest
import torch
import triton
import triton.language as tl

import bounds_check
from mn_triton import backend

pytestmark = [
    pytest.mark.skipif(not backend.INTERPRETING, reason="checks the interpreter"),
    pytest.mark.skipif(
        bool(bounds_check.missing_hooks()),
        reason=f"this Triton's interpreter lacks {bounds_check.missing_hooks()}",
    ),
]


@triton.jit
def _copy_kernel(X, Y, n_read, n_write, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    values = tl.load(X + offsets, mask=offsets < n_read, other=0.0)
    tl.store(Y + offsets, values, mask=offsets < n_write)


def test_the_check_is_on_for_every_test():
    assert bounds_check._installed  # tests/conftest.py installs it


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


def test_extents_follow_strides():
    t = torch.empty(4, 6)[:, 1:5:2]  # 4 rows, 2 columns, strides (6, 2)
    start, end = bounds_check.tensor_extent(t)
    assert start == t.data_ptr() and end - start == (3 * 6 + 1 * 2 + 1) * 4
    empty = torch.empty(0, 3)
    assert bounds_check.tensor_extent(empty) == (empty.data_ptr(), empty.data_ptr())
