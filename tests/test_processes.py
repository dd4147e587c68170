"""tests/processes.py: spawned gloo processes meet through a file, give up on a missing peer,
and cannot hold the suite past their deadline."""

import os
import time

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing import ProcessRaisedException

import processes


def _sum_of_ranks(rank, store, out_dir):
    processes.init_group(rank, store, 3)
    try:
        total = torch.tensor([float(rank)])
        dist.all_reduce(total)
        torch.save(total, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _sleep_forever(rank, store):
    time.sleep(3600)


def _rank_0_raises(rank, store):
    if rank == 0:
        raise ValueError("rank 0 gave up")
    time.sleep(3600)


def test_processes_meet_and_reduce(tmp_path):
    processes.run_processes(_sum_of_ranks, str(tmp_path), nprocs=3)
    for rank in range(3):
        assert torch.load(tmp_path / f"rank{rank}.pt").item() == 0 + 1 + 2


def test_processes_past_their_deadline_print_their_stacks_and_are_killed(capfd):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"processes \[0, 1\] of 2 still running after 12 s"):
        processes.run_processes(_sleep_forever, nprocs=2, deadline_s=12)
    assert time.monotonic() - start < 12 + 2 * processes.DUMP_WAIT_S + 10
    stacks = capfd.readouterr().err
    for rank in range(2):  # each process's stack, under its heading
        assert f"== rank {rank} (pid " in stacks, stacks
    assert stacks.count("in _sleep_forever") == 2, stacks


def test_a_process_that_raises_ends_the_others_at_once():
    start = time.monotonic()
    with pytest.raises(ProcessRaisedException, match="rank 0 gave up"):
        processes.run_processes(_rank_0_raises, nprocs=2, deadline_s=120)
    assert time.monotonic() - start < 60  # the sleeping rank did not hold it to the deadline


def test_groups_meet_through_a_file_on_loopback_and_time_out(monkeypatch):
    calls = []
    environ = {name: value for name, value in os.environ.items() if name != "GLOO_SOCKET_IFNAME"}
    monkeypatch.setattr(os, "environ", environ)  # what init_group sets stays in the test
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: calls.append((a, kw)))
    processes.init_group(1, "/some/folder/store", 4)
    [(args, kwargs)] = calls
    assert args == ("gloo",)
    assert kwargs == {
        "init_method": "file:///some/folder/store", "rank": 1, "world_size": 4,
        "timeout": processes.PROCESS_GROUP_TIMEOUT,
    }  # fmt: skip
    assert processes.PROCESS_GROUP_TIMEOUT.total_seconds() < processes.DEADLINE_S
    assert environ["GLOO_SOCKET_IFNAME"] == "lo"
