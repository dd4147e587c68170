"""Gloo process groups of the tests (and tools/fuzz_sync.py) on one machine, that cannot hang.

A CI run (of stop 51) once stopped at its 90-minute limit inside the DDP test of
tests/test_sync.py, which had passed in every run before and passed 15 times in a row after:
the test waited on its spawned processes without a limit, and nothing said where they stood.
The cause is not known. Since then, whatever it is fails its test, saying where:

- Processes meet through a FileStore in a fresh folder, not through a TCP port picked free and
  bound later by rank 0: between the pick and the bind anything may take that port, and a
  rank whose connect comes before rank 0 listens can in principle connect to itself (the port
  lies in the range the kernel hands out to outgoing connections). Gloo's own connections
  take the loopback device, not the address the machine's host name resolves to.
- Every collective of the group gives up after PROCESS_GROUP_TIMEOUT, so a process left
  waiting for a peer raises, and mp's join then ends the others.
- The parent waits `deadline_s` at most. Then every process still running prints the stacks
  of its threads (faulthandler, on SIGUSR1; under pytest they appear as the test's captured
  stderr), is killed, and the call raises TimeoutError naming them.
"""

from __future__ import annotations

import contextlib
import datetime
import faulthandler
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

# The slowest spawn of the suite (DDP over ResNet-20 on the interpreter) takes ~30 s on
# 2 cores; its longest wait for a peer is one training step, a few seconds.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=4)
DEADLINE_S = 300.0
DUMP_WAIT_S = 1.0  # for a process's stacks to be written before the next one's, and the kill


def init_group(rank: int, store: str, world_size: int) -> None:
    """This process's default gloo group, met through the FileStore `store`, on loopback."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # not wherever the host name leads
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
        timeout=PROCESS_GROUP_TIMEOUT,
    )  # fmt: skip


def _entry(rank: int, worker: Callable[..., None], store: str, *args: object) -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    worker(rank, store, *args)


def run_processes(
    worker: Callable[..., None], *args: object, nprocs: int, deadline_s: float = DEADLINE_S
) -> None:
    """`worker(rank, store, *args)` in `nprocs` spawned processes, which call
    init_group(rank, store, nprocs). Returns when all have finished; raises what one raised
    (mp's join ends the others), or TimeoutError after `deadline_s`."""
    with tempfile.TemporaryDirectory(prefix="mn-gloo-") as folder:
        store = str(Path(folder) / "store")
        context = mp.start_processes(
            _entry, args=(worker, store, *args), nprocs=nprocs, join=False, start_method="spawn"
        )
        try:
            end = time.monotonic() + deadline_s
            while not context.join(timeout=max(0.0, end - time.monotonic())):
                if time.monotonic() >= end:
                    raise TimeoutError(_dump_running(context, deadline_s))
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                process.join()


def _dump_running(context: mp.ProcessContext, deadline_s: float) -> str:
    running = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
    for rank in running:  # one after another, each under a heading
        pid = context.processes[rank].pid
        print(f"== rank {rank} (pid {pid}), still running at the deadline:", file=sys.stderr)
        sys.stderr.flush()
        with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
            os.kill(pid, signal.SIGUSR1)
        time.sleep(DUMP_WAIT_S)
    return (
        f"processes {running} of {len(context.processes)} still running after "
        f"{deadline_s:.0f} s: killed (each printed its threads' stacks to stderr first)"
    )
