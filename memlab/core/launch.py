"""Real worker processes over torch.distributed (labs 05, 07).

`run_workers(fn, world_size)` starts `world_size` fresh Python processes (spawn), joins them into
one process group with a TCP rendezvous on 127.0.0.1 (the same env:// rendezvous torchrun
uses: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), runs `fn(rank, world_size, *args)` in each,
and returns the records they return, in rank order. Backend: gloo unless the caller asks for
nccl (lab 05 does, through `sharding.workers.backend_for`, when every rank has its own GPU): a GPU
on the machine says nothing about where a caller keeps the tensors it sends.

A rank that raises or is killed makes the whole group stop with one MemlabError within
`timeout_s`; nothing hangs: the survivors are terminated, and gloo's own timeout bounds any
blocking send/recv.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import traceback
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from memlab.core.errors import MemlabError


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn: Callable, world_size: int, args: tuple, port: int, backend: str,
           timeout_s: float, threads: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), OMP_NUM_THREADS=str(threads))
    torch.set_num_threads(threads)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        out = fn(rank, world_size, *args)
        results.put((rank, "ok", out))
    except BaseException as e:  # report, then let the process fail so the parent sees it
        results.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_workers(fn: Callable[..., Any], world_size: int = 2, args: tuple = (), timeout_s: float = 120,
                backend: str | None = None, threads_per_rank: int | None = None) -> list[Any]:
    """Run `fn(rank, world_size, *args)` in `world_size` processes; their return values, rank order.

    `fn` must be importable (defined at module level in memlab or another module), and its
    return value picklable. Raises MemlabError if any rank fails, dies or exceeds `timeout_s`.
    """
    if world_size < 1:
        raise MemlabError(f"world_size must be >= 1, got {world_size}")
    backend = backend or "gloo"
    threads = threads_per_rank or max(1, (os.cpu_count() or 1) // world_size)
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, fn, world_size, tuple(args), port, backend,
                                              timeout_s, threads, results), daemon=True)
             for r in range(world_size)]
    for p in procs:
        p.start()
    outputs: dict[int, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(outputs) < world_size and not errors:
            while not results.empty():
                rank, status, payload = results.get()
                (outputs.__setitem__(rank, payload) if status == "ok"
                 else errors.append(f"rank {rank} failed: {payload}"))
            if errors or len(outputs) == world_size:
                break
            dead = [(r, p.exitcode) for r, p in enumerate(procs)
                    if p.exitcode is not None and p.exitcode != 0 and r not in outputs]
            if dead:
                time.sleep(0.2)  # let its error message arrive first
                if results.empty():
                    errors += [f"rank {r} died (exit code {code}{', killed by a signal' if code < 0 else ''})"
                               for r, code in dead]
                continue
            if time.monotonic() > deadline:
                errors.append(f"timed out after {timeout_s:.0f} s waiting for ranks "
                              f"{sorted(set(range(world_size)) - set(outputs))}")
            time.sleep(0.01)
    finally:
        for p in procs:
            p.join(timeout=0 if errors else 5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    if errors:
        raise MemlabError("distributed run stopped: " + "; ".join(e.splitlines()[0] for e in errors)
                          + "\n\n" + "\n".join(errors))
    return [outputs[r] for r in range(world_size)]
