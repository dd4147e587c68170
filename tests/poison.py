"""Uninitialised memory made loud: mn_triton's fresh floating-point tensors start as NaN.

`torch.empty` on a GPU returns whatever the caching allocator held before, so a kernel that
reads a buffer before anything wrote it (a partial result of a split that was not launched,
a padded row) computes garbage there, or NaN, depending on the run. On CPU the same read
usually finds zeros or an old, finite value, and a test may pass by luck. With this module
installed, every floating-point tensor that mn_triton's own code creates with `torch.empty`,
`torch.empty_like`, `torch.empty_strided` or `Tensor.new_empty` is filled with NaN first, so
such a read spreads NaN into the results that the tests compare (compute-sanitizer's
initcheck, for the buffers we allocate). Allocations made elsewhere (torch, the tests) are
left alone, as is code that dynamo traces; the fake implementations of the custom ops fill
their fake tensors, which costs nothing. `torch.jit.script` cannot compile a function that
calls a patched allocator (it sees a Python function): nothing here is scripted.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

import torch

OURS = ("mn_triton",)  # modules whose allocations are poisoned
_installed = False


def _called_from_ours(depth: int) -> bool:
    name = sys._getframe(depth).f_globals.get("__name__", "")
    return name.split(".")[0] in OURS


def _poisoning(make: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(make)
    def make_poisoned(*args, **kwargs):
        t = make(*args, **kwargs)
        if (
            not torch.compiler.is_compiling()
            and t.is_floating_point()
            and t.device.type != "meta"
            and _called_from_ours(2)
        ):
            t.fill_(math.nan)
        return t

    return make_poisoned


def install() -> None:
    """Poison mn_triton's allocations from now on (idempotent)."""
    global _installed
    if _installed:
        return
    for name in ("empty", "empty_like", "empty_strided"):
        setattr(torch, name, _poisoning(getattr(torch, name)))
    torch.Tensor.new_empty = _poisoning(torch.Tensor.new_empty)
    _installed = True
