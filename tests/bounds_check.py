"""Out-of-bounds memory checks for kernels run in Triton's interpreter.

On a GPU, a load or store outside its tensor faults, or worse, reads or overwrites a
neighbour without a word (compute-sanitizer's memcheck finds those). The interpreter reads
and writes the raw addresses it is given, so such a bug passes every CPU test while the
neighbouring bytes happen to be harmless. This module makes the interpreter refuse them.

For each launch it notes the bytes each tensor argument may touch: from its first to its
last element, as its strides place them (a slice of a larger tensor does not own the rest of
the storage, and a kernel that strays there is wrong even where the GPU would not fault).
Every load and store whose mask lets a lane through must then fall, whole, inside one of
those extents; anything else raises (the interpreter reports it as an InterpreterError).
"""

from __future__ import annotations

import numpy as np
import torch
from triton.runtime import interpreter

_extents: list[tuple[int, int]] = []  # [start, end) byte ranges of this launch's tensors
_installed = False
HOOKS = {  # what install() wraps, as Triton 3.9's interpreter names it
    "GridExecutor": ("_init_args_hst",),
    "InterpreterBuilder": ("create_masked_load", "create_masked_store"),
}


def tensor_extent(t: torch.Tensor) -> tuple[int, int]:
    """[start, end) of the bytes a tensor's elements occupy (empty for no elements)."""
    start = t.data_ptr()
    if t.numel() == 0:
        return start, start
    spans = [(size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True)]
    low, high = sum(s for s in spans if s < 0), sum(s for s in spans if s > 0)
    return start + low * t.element_size(), start + (high + 1) * t.element_size()


def _tensors(args: object) -> list[torch.Tensor]:
    if isinstance(args, torch.Tensor):
        return [args]
    if isinstance(args, (list, tuple)):
        return [t for a in args for t in _tensors(a)]
    if isinstance(args, dict):
        return _tensors(list(args.values()))
    return []


def check(ptrs: interpreter.TensorHandle, mask: interpreter.TensorHandle, op: str) -> None:
    """Raise unless every active lane's element lies inside one tensor argument's extent."""
    addresses = np.broadcast_to(ptrs.data, np.shape(mask.data))[np.asarray(mask.data, bool)]
    if addresses.size == 0:
        return
    size = ptrs.get_element_ty().primitive_bitwidth // 8
    addresses = addresses.astype(np.uint64)
    inside = np.zeros(addresses.shape, dtype=bool)
    for start, end in _extents:
        inside |= (addresses >= start) & (addresses + size <= end)
    if not inside.all():
        first = int(addresses[~inside][0])
        near = min(_extents, key=lambda e: min(abs(first - e[0]), abs(first - e[1])), default=None)
        raise IndexError(
            f"out-of-bounds {op}: {int((~inside).sum())} of {addresses.size} lanes outside every "
            f"tensor argument, first at {first:#x} ({size}-byte elements); nearest tensor "
            f"spans {near[0]:#x}..{near[1]:#x}"
            if near
            else f"out-of-bounds {op} at {first:#x}: the launch has no tensor arguments"
        )


def missing_hooks() -> list[str]:
    """The interpreter functions install() needs that this Triton lacks."""
    return [
        f"{cls}.{name}"
        for cls, names in HOOKS.items()
        for name in names
        if not hasattr(getattr(interpreter, cls, None), name)
    ]


def install() -> bool:
    """Check every interpreted launch from now on (idempotent); False where this Triton's
    interpreter is built differently (the checks' own tests then skip, saying why)."""
    global _installed
    if _installed or missing_hooks():
        return _installed
    executor, builder = interpreter.GridExecutor, interpreter.InterpreterBuilder
    init_args, load, store = (
        executor._init_args_hst, builder.create_masked_load, builder.create_masked_store
    )  # fmt: skip

    def init_args_checked(self, args_dev, kwargs):  # noqa: ANN001, ANN202
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        _extents[:] = [tensor_extent(t) for t in _tensors([args_hst, kwargs_hst])]
        return args_hst, kwargs_hst

    def load_checked(self, ptrs, mask, other, cache_policy, is_volatile):  # noqa: ANN001, ANN202
        check(ptrs, mask, "load")
        return load(self, ptrs, mask, other, cache_policy, is_volatile)

    def store_checked(self, ptrs, value, mask, cache_policy):  # noqa: ANN001, ANN202
        check(ptrs, mask, "store")
        return store(self, ptrs, value, mask, cache_policy)

    executor._init_args_hst = init_args_checked
    builder.create_masked_load, builder.create_masked_store = load_checked, store_checked
    _installed = True
    return True
