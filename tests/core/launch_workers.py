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


def timed_send(rank, world_size, num_bytes, link=None, rates=(None,)):
    """Per rate (rank 0 re-shapes `link` first), rank 0 sends num_bytes to rank 1 three times: the median
    seconds from the send to the last byte received, one per rate."""
    import statistics
    import time
    from memlab.core import shaped
    buf = torch.zeros(num_bytes, dtype=torch.uint8)
    out = []
    for gbps in rates:
        if rank == 0 and gbps is not None:
            shaped.set_rate(link, gbps)
        times = []
        for _ in range(3):
            dist.barrier()
            t0 = time.perf_counter()  # one machine: CLOCK_MONOTONIC, one clock for both ranks
            if rank == 0:
                dist.send(buf, 1)
            else:
                dist.recv(buf, 0)
            stamps = [None, None]
            dist.all_gather_object(stamps, time.perf_counter() if rank == 1 else t0)
            times.append(stamps[1] - stamps[0])
        out.append(statistics.median(times))
    return out
