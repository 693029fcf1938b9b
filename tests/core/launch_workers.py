"""Worker functions for test_launch (module level, so spawned processes can import them)."""

import os
import signal

import torch
import torch.distributed as dist


def allreduce_rank(rank, world_size):
    t = torch.tensor([float(rank)])
    dist.all_reduce(t)
    return rank, t.item()


def rank1_raises(rank, world_size):
    if rank == 1:
        raise RuntimeError("boom")
    dist.barrier()  # rank 0 would wait here forever without the launcher's handling
    return rank


def rank1_killed(rank, world_size):
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    t = torch.zeros(1)
    dist.recv(t, src=1)  # never arrives
    return rank
