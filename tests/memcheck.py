"""Memory checks for kernels run in Triton's interpreter: out-of-bounds accesses and races.

On a GPU, a load or store outside its tensor faults, or worse, reads or overwrites a
neighbour without a word; and the programs of one launch run in no fixed order, so two of
them that touch the same element, one of them writing, race (compute-sanitizer's memcheck
and racecheck find those). The interpreter reads and writes the raw addresses it is given,
one program after another, so such bugs pass every CPU test while the neighbouring bytes
happen to be harmless and the order happens to be kind. This module makes them fail.

For each launch it notes the bytes each tensor argument may touch: from its first to its
last element, as its strides place them (a slice of a larger tensor does not own the rest of
the storage, and a kernel that strays there is wrong even where the GPU would not fault).
Every load and store whose mask lets a lane through must fall, whole, inside one of those
extents; anything else raises (the interpreter reports it as an InterpreterError). After the
launch, an element that one program stored and another program loaded or stored raises too:
the kernels share nothing between programs but what earlier launches wrote.

Not covered, as the kernels use none of them: atomic read-modify-writes and compare-and-swaps
(neither bounds- nor race-checked; Triton 3.9's interpreter sends atomic loads and stores
through the hooked load and store, so those are checked as plain accesses, and
synchronising through them would read as a race), `triton.reinterpret`
and tensor descriptors (their tensors are not seen: accesses through them would fail), and
races between differently typed views of one buffer (addresses are compared exactly).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from triton.runtime import interpreter

HOOKS = {  # what install() wraps, as Triton 3.9's interpreter names it
    "GridExecutor": ("__call__", "_init_args_hst"),
    "InterpreterBuilder": ("create_masked_load", "create_masked_store", "set_grid_idx"),
}
_extents: list[tuple[int, int]] = []  # [start, end) byte ranges of this launch's tensors
# Per launch: each masked load and store's active addresses, program id and element size.
_accesses: dict[str, list[tuple[np.ndarray, int, int]]] = {"load": [], "store": []}
_program = 0  # the running program's flat id
_installed = False
Accesses = dict[str, list[tuple[np.ndarray, int, int]]]
_listeners: list[Callable[[str, tuple[int, ...], Accesses], None]] = []


def add_listener(listener: Callable[[str, tuple[int, ...], Accesses], None]) -> None:
    """Call `listener(kernel name, grid, accesses)` after each checked launch, with its
    loads' and stores' (active addresses, program id, bytes per element) (tools/mix_traffic.py
    counts bytes so)."""
    _listeners.append(listener)


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


def check_bounds(addresses: np.ndarray, size: int, op: str) -> None:
    """Raise unless the elements of one access all lie inside one tensor argument's extent
    (an access is one pointer plus offsets: lanes that run from one argument into the next,
    say two views of one buffer, are out of bounds too)."""
    if not _extents:
        raise IndexError(f"out-of-bounds {op}: the launch has no tensor arguments")
    best, most = None, -1
    for start, end in _extents:
        inside = (addresses >= start) & (addresses + size <= end)
        if inside.all():
            return
        if inside.sum() > most:
            best, most = (start, end, inside), int(inside.sum())
    start, end, inside = best
    first = int(addresses[~inside][0])
    raise IndexError(
        f"out-of-bounds {op}: {addresses.size - most} of {addresses.size} lanes outside the "
        f"tensor argument that holds the most of them ({start:#x}..{end:#x}), first at "
        f"{first:#x} ({size}-byte elements)"
    )


def _active(ptrs: interpreter.TensorHandle, mask: interpreter.TensorHandle) -> np.ndarray:
    active = np.broadcast_to(ptrs.data, np.shape(mask.data))[np.asarray(mask.data, bool)]
    return active.astype(np.uint64)


def _record(op: str, ptrs: interpreter.TensorHandle, mask: interpreter.TensorHandle) -> None:
    addresses = _active(ptrs, mask)
    if addresses.size == 0:
        return
    size = ptrs.get_element_ty().primitive_bitwidth // 8
    check_bounds(addresses, size, op)
    _accesses[op].append((addresses, _program, size))


def _flat(accesses: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    if not accesses:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    addresses = np.concatenate([a for a, _, _ in accesses])
    programs = np.concatenate([np.full(a.size, p, np.int64) for a, p, _ in accesses])
    return addresses, programs


def check_races() -> None:
    """Raise if an element one program stored was loaded or stored by another program."""
    stored, writers = _flat(_accesses["store"])
    order = np.lexsort((writers, stored))
    stored, writers = stored[order], writers[order]
    clash = (stored[1:] == stored[:-1]) & (writers[1:] != writers[:-1])
    if clash.any():
        i = int(np.argmax(clash))
        raise RuntimeError(
            f"race: programs {writers[i]} and {writers[i + 1]} both store to {stored[i]:#x} "
            f"({int(clash.sum())} such elements); the GPU runs them in no fixed order"
        )
    stored, first = np.unique(stored, return_index=True)  # one writer each, as just checked
    writers = writers[first]
    loaded, readers = _flat(_accesses["load"])
    if stored.size == 0 or loaded.size == 0:
        return
    at = np.minimum(np.searchsorted(stored, loaded), stored.size - 1)
    crossed = (stored[at] == loaded) & (writers[at] != readers)
    if crossed.any():
        i = int(np.argmax(crossed))
        raise RuntimeError(
            f"race: program {readers[i]} loads {loaded[i]:#x}, which program {writers[at[i]]} "
            f"stores in the same launch ({int(crossed.sum())} such loads); the GPU runs them "
            "in no fixed order"
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
    """Check every interpreted launch from now on (idempotent); False where kernels are not
    interpreted (TRITON_INTERPRET unset: nothing to check) or this Triton's interpreter is
    built differently (the checks' own tests then skip, saying why)."""
    global _installed
    if _installed or os.environ.get("TRITON_INTERPRET") != "1" or missing_hooks():
        return _installed
    executor, builder = interpreter.GridExecutor, interpreter.InterpreterBuilder
    call, init_args = executor.__call__, executor._init_args_hst
    load, store, set_grid_idx = (
        builder.create_masked_load, builder.create_masked_store, builder.set_grid_idx
    )  # fmt: skip

    def call_checked(self, *args, **kwargs):
        for accesses in _accesses.values():
            accesses.clear()
        try:
            result = call(self, *args, **kwargs)
            check_races()
            grid = tuple(self.grid) if isinstance(self.grid, (tuple, list)) else ()
            for listener in _listeners:
                listener(self.fn.__name__, grid, _accesses)
            return result
        finally:
            for accesses in _accesses.values():
                accesses.clear()

    def init_args_checked(self, args_dev, kwargs):
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        _extents[:] = [tensor_extent(t) for t in _tensors([args_hst, kwargs_hst])]
        return args_hst, kwargs_hst

    def set_grid_idx_noted(self, x, y, z):
        global _program
        set_grid_idx(self, x, y, z)
        _program = (x * self.grid_dim[1] + y) * self.grid_dim[2] + z

    # The cache arguments after the mask differ between Triton versions (3.9: cache_policy;
    # 3.8 and before: cache_modifier, eviction_policy): passed through as they come.
    def load_checked(self, ptrs, mask, *rest, **kwargs):
        _record("load", ptrs, mask)
        return load(self, ptrs, mask, *rest, **kwargs)

    def store_checked(self, ptrs, value, mask, *rest, **kwargs):
        _record("store", ptrs, mask)
        return store(self, ptrs, value, mask, *rest, **kwargs)

    executor.__call__, executor._init_args_hst = call_checked, init_args_checked
    builder.create_masked_load, builder.create_masked_store = load_checked, store_checked
    builder.set_grid_idx = set_grid_idx_noted
    _installed = True
    return True
