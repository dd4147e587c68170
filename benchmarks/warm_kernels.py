"""Compile, before a GPU run times anything, the Triton kernels its layer grid and training
steps will launch, in parallel processes, into Triton's on-disk cache.

    python benchmarks/warm_kernels.py --grid core|...|none [--models lenet,resnet20,resnet56]
        [--host-overhead] [--compiled-steps] [--jobs N]   (N: 1 by default)

A fresh GPU machine starts with an empty cache, so every new kernel specialisation (tile
shape, K, dtype, layout) compiles on its first launch, one after another, inside the timed
stages' budgets. Here each specialisation is compiled once, for the local GPU's architecture,
by the launch path itself (`tools/compile_check.py`'s compile-only driver: `kernel.run(...,
warmup=True)` on `meta` tensors), so a later launch finds it in the cache. Nothing runs on
the GPU. Prints each layer call or training step it warmed, with its time, then the total
time and how many failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import grid  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

META = torch.device("meta")
TRAIN_BATCH = 128


# A layer case, an eager training step (model, K), a compiled one (model, K, COMPILED), or
# HOST_OVERHEAD: host_overhead.py's layer calls.
Unit = grid.Case | tuple[str, int] | tuple[str, int, str] | str
HOST_OVERHEAD = "host_overhead.py's layer calls"
COMPILED = "compiled"
NO_GRID = "none"  # --grid none: only the training steps and host_overhead.py's calls


def _units(
    grid_name: str, models: list[str], host_overhead: bool = False, compiled_steps: bool = False
) -> list[Unit]:
    """What to compile: each Triton case of the grid, its training modes as one forward and
    backward (the forward and backward modes launch a subset of those kernels), one training
    step per (model, K), with `compiled_steps` also as torch.compile runs it, and with
    `host_overhead` that stage's calls (tiny shapes, which no grid case or step has)."""
    units: dict[Unit, None] = {}
    cases = [] if grid_name == NO_GRID else grid.cases(grid_name, cuda=True, compile=False)
    for case in cases:
        if case.provider == "triton":  # (a CUDA-graph case captures the eager call's kernels)
            mode = "eval" if case.mode == "eval" else "full"
            units[replace(case, mode=mode, exec="eager")] = None
    for model in models:
        import train_step

        ks = train_step.LENET_KS if model == "lenet" else train_step.RESNET_KS
        for k in ks:
            units[(model, k)] = None
            if compiled_steps:
                units[(model, k, COMPILED)] = None
    if host_overhead:
        units[HOST_OVERHEAD] = None
    return list(units)


def _layer_call(case: grid.Case) -> None:
    """The suite's own call of the case (benchmarks/layers.py), on meta tensors."""
    import layers

    with layers.backend_for(case):
        module = layers.make_module(case, META)
        layers.timed_call(case, module, module, layers.make_inputs(case, META, 1))(0)


def _training_step(model_name: str, k: int) -> None:
    import models

    model = models.build_model(model_name, "mn_triton", num_modes=k).to(META)
    x = torch.randn(TRAIN_BATCH, 3, 32, 32, device=META)
    y = torch.randint(10, (TRAIN_BATCH,), device=META)
    F.cross_entropy(model(x), y).backward()


def _compiled_step(model_name: str, k: int) -> None:
    """The layer calls of a compiled (or CUDA-graph) training step (compile_check's
    `compiled_layer_calls`), each layer's input taken from an eager forward, in eager's
    layout (which inductor keeps for these convolutions)."""
    import models
    from compile_check import compiled_layer_calls  # (the worker imported it already)

    import mn_triton

    model = models.build_model(model_name, "mn_triton", num_modes=k).to(META)
    seen: list[tuple[torch.nn.Module, torch.Tensor]] = []
    for layer in model.modules():
        if isinstance(layer, (mn_triton.ModeNorm, mn_triton.ModeGroupNorm)):
            layer.register_forward_hook(lambda layer, args, _: seen.append((layer, args[0])))
    with torch.no_grad():
        model(torch.randn(TRAIN_BATCH, 3, 32, 32, device=META))
    for layer, x in seen:
        compiled_layer_calls(layer, x)


def _host_overhead_calls() -> None:
    """host_overhead.py's layer calls, forward and backward, on meta tensors: eager, and on
    its maps as torch.compile runs them (its --compiled, ops opaque)."""
    import host_overhead
    from compile_check import compiled_layer_calls

    for dim, shape in host_overhead.SHAPES:
        x = torch.randn(shape, device=META, requires_grad=True)
        for name, layer in host_overhead.layers_for(dim).items():
            if name.startswith("mn_triton"):
                layer.to(META)(x).sum().backward()
                if dim == host_overhead.COMPILED_SHAPE[0]:
                    compiled_layer_calls(layer, x.detach())


def _init_worker(arch: int, multiprocessors: int) -> None:
    from compile_check import compile_instead_of_launch

    from mn_triton.kernels import layout

    compile_instead_of_launch(arch)
    # Rows split as on the GPU, whose multiprocessor count sets the reduction splits and so
    # the kernels' specialisations (H100 SXM and H200: 132; H100 PCIe: 114).
    layout.CPU_TARGET_PROGRAMS = layout.PROGRAMS_PER_SM * multiprocessors


def _compile_unit(unit: Unit) -> tuple[str, float, str]:
    started = time.perf_counter()
    try:
        if isinstance(unit, grid.Case):
            _layer_call(unit)
        elif unit == HOST_OVERHEAD:
            _host_overhead_calls()
        elif len(unit) == 3:
            _compiled_step(*unit[:2])
        else:
            _training_step(*unit)
        error = ""
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if isinstance(unit, grid.Case):
        label = unit.id
    elif unit == HOST_OVERHEAD:
        label = unit
    else:
        label = "step {} K={}".format(*unit) + (" (compiled)" if len(unit) == 3 else "")
    return label, time.perf_counter() - started, error


def _target(arch: int | None, sms: int | None) -> tuple[int, int]:
    """(compute capability, 90 for 9.0; multiprocessors) to compile for: as given, else the local
    GPU's, else an H200's."""
    if torch.cuda.is_available() and (arch is None or sms is None):
        properties = torch.cuda.get_device_properties(0)
        arch = 10 * properties.major + properties.minor if arch is None else arch
        sms = properties.multi_processor_count if sms is None else sms
    return (90 if arch is None else arch), (132 if sms is None else sms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", default="core", choices=(*grid.GRIDS[1:], NO_GRID))
    p.add_argument("--models", default="", help="comma-separated: lenet,resnet20,resnet56")
    p.add_argument(
        "--host-overhead", action="store_true",
        help="also benchmarks/host_overhead.py's layer calls (its stage runs in gpu_run.sh)",
    )  # fmt: skip
    p.add_argument(
        "--compiled-steps", action="store_true",
        help="also the training steps' layer calls under torch.compile (and CUDA graphs)",
    )  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="parallel compiling processes")
    p.add_argument("--arch", type=int, default=None, help="default: the local GPU's, else 90")
    p.add_argument(
        "--sms", type=int, default=None,
        help="the GPU's multiprocessors (default: the local GPU's, else 132: H100 SXM, H200)",
    )  # fmt: skip
    args = p.parse_args(argv)
    arch, sms = _target(args.arch, args.sms)
    models = [m for m in args.models.split(",") if m]
    units = _units(args.grid, models, args.host_overhead, args.compiled_steps)
    print(f"warming Triton's cache for sm_{arch} ({sms} multiprocessors): {len(units)} layer "
          f"calls and steps, {args.jobs} processes", flush=True)  # fmt: skip
    started = time.perf_counter()
    failed = 0
    # Fresh processes, not forks: this one may have initialised CUDA (`_target`),
    # which a forked child could not use; the workers never touch the GPU.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_init_worker, initargs=(arch, sms)
    ) as pool:
        for i, (label, seconds, error) in enumerate(pool.map(_compile_unit, units), 1):
            failed += bool(error)
            note = f"  FAILED {error[:200]}" if error else ""
            print(f"[{i}/{len(units)}] {seconds:6.1f} s  {label}{note}", flush=True)
    total = time.perf_counter() - started
    print(f"warmed in {total:.0f} s; {failed} of {len(units)} failed (they compile when launched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
