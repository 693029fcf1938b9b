"""Real worker processes over torch.distributed (labs 05, 07), on one machine or under torchrun.

`run_workers(fn, world_size)` runs `fn(rank, world_size, *args)` once per rank and returns the
records the ranks return, in rank order, on every rank. Two ways to get the ranks:

  started plainly: it starts `world_size` fresh Python processes (spawn) and joins them into one
    process group with a TCP rendezvous on 127.0.0.1 (the same env:// rendezvous torchrun uses:
    MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE).
  started by torchrun (`core.torchrun.rank_env()`: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set):
    this process is one rank; it joins torchrun's group from the environment (env://), runs `fn`
    for its own rank, and gathers every rank's return value (all_gather_object), so every rank
    holds the same list and rank 0 prints the record (`memlab.cli` keeps the other ranks quiet).
    The group is joined once per process and kept for the process's later calls (`simulate
    --validate` calls twice; the test runs three commands in one process): torchrun's store
    outlives a destroyed group, and a group joined again reads the old group's addresses there.
    A later call that asks for another backend is refused in one line.
    The ranks may sit on one node or several. A `world_size` other than torchrun's WORLD_SIZE is
    refused in one line (the group has the size torchrun gave it: a command that needs 2 ranks
    cannot run on 3), except `world_size=1`: a one-process measurement (lab 05's checkpoint load
    in a fresh process) needs no group, and runs as a local process on each rank's node as today.

`run_ranks` is the same run with where it ran: the hosts of the ranks, the backend, the launcher.
Inside `fn`, `rank_hosts()` says where every rank runs and `clock_offset()` how far this rank's
perf_counter is from rank 0's (0.0 on one host: one clock), for the records that subtract times
stamped on two ranks.

Backend: gloo unless the caller asks for nccl (lab 05 does, through `sharding.workers.backend_for`,
when every rank has its own GPU): a GPU on the machine says nothing about where a caller keeps the
tensors it sends.

A rank that raises or is killed makes the whole group stop with one MemlabError within
`timeout_s`; nothing hangs: the survivors are terminated, and gloo's own timeout bounds any
blocking send/recv. Under torchrun a rendezvous that is missing or unreachable is one MemlabError
within `timeout_s` (init_process_group's own timeout), naming the address it tried.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from memlab.core import shaped
from memlab.core.errors import MemlabError
from memlab.core.torchrun import RankEnv, rank_env


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn: Callable, world_size: int, args: tuple, port: int, backend: str,
           timeout_s: float, threads: int, results, netns: str | None = None) -> None:
    os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)  # a local group inside a torchrun rank has its own store
    os.environ.update(MEMLAB_SPAWNED="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), OMP_NUM_THREADS=str(threads))
    torch.set_num_threads(threads)
    try:
        if netns:  # before the first socket: only the ranks' traffic crosses the shaped loopback
            shaped.enter(netns)
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        # in a namespace of its own, c10d cannot name the peer's address (no resolver there) and warns per socket
        with quiet_stderr() if netns else contextlib.nullcontext():
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


@dataclass(frozen=True, slots=True)
class Ranks:
    """What `run_ranks` returns: every rank's return value and where the ranks ran."""
    results: list          # fn's return values, rank order
    hosts: tuple           # socket.gethostname() of each rank, rank order
    backend: str           # "gloo" or "nccl"
    launcher: str          # "local" (spawned here) or "torchrun"


def run_workers(fn: Callable[..., Any], world_size: int = 2, args: tuple = (), timeout_s: float = 120,
                backend: str | None = None, threads_per_rank: int | None = None,
                link: shaped.Link | None = None) -> list[Any]:
    """Run `fn(rank, world_size, *args)` on `world_size` ranks; their return values, rank order.

    `fn` must be importable (defined at module level in memlab or another module), and its
    return value picklable. Raises MemlabError if any rank fails, dies or exceeds `timeout_s`.
    Under torchrun, see the module's docstring.
    """
    return run_ranks(fn, world_size, args, timeout_s, backend, threads_per_rank, link).results


def run_ranks(fn: Callable[..., Any], world_size: int = 2, args: tuple = (), timeout_s: float = 120,
              backend: str | None = None, threads_per_rank: int | None = None,
              link: shaped.Link | None = None) -> Ranks:
    """`run_workers`, with the hosts of the ranks, the backend and the launcher. With `link` (a
    `core.shaped.shaped_link`), the spawned ranks run inside its namespace, over its shaped loopback."""
    if world_size < 1:
        raise MemlabError(f"world_size must be >= 1, got {world_size}")
    backend = backend or "gloo"
    env = None if spawned_here() else rank_env()  # a spawned worker's RANK is its local group's, not torchrun's
    if env is not None and world_size != 1:
        if world_size != env.world_size:
            raise MemlabError(f"this run needs {world_size} ranks but torchrun started {env.world_size} "
                              f"(--nnodes x --nproc-per-node): start {world_size} ranks")
        if link is not None:
            raise MemlabError("a shaped link (--link-gbps) runs local ranks only; under torchrun the link "
                              "between the nodes is the real one: drop --link-gbps")
        return as_torchrun_rank(env, fn, args, timeout_s, backend, threads_per_rank)
    results = spawn(fn, world_size, args, timeout_s, backend, threads_per_rank, link.namespace if link else None)
    return Ranks(results, (socket.gethostname(),) * world_size, backend, "local")


def as_torchrun_rank(env: RankEnv, fn: Callable[..., Any], args: tuple, timeout_s: float, backend: str,
                     threads_per_rank: int | None = None) -> Ranks:
    """Run `fn` as rank env.rank of torchrun's group; every rank's return value, gathered on every rank."""
    torch.set_num_threads(threads_per_rank or max(1, (os.cpu_count() or 1) // env.local_world_size))
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    join_torchrun_group(env, backend, timeout_s)
    try:
        out = fn(env.rank, env.world_size, *args)
        gathered = [None] * env.world_size
        dist.all_gather_object(gathered, (socket.gethostname(), out))
    except Exception as e:  # this rank's own failure, or a peer that stopped (its connection closed)
        raise MemlabError(f"distributed run stopped on rank {env.rank} of {env.world_size} "
                          f"({socket.gethostname()}): {type(e).__name__}: {first_line(e)}") from e
    return Ranks([o for _, o in gathered], tuple(h for h, _ in gathered), backend, "torchrun")


def join_torchrun_group(env: RankEnv, backend: str, timeout_s: float) -> None:
    """Join torchrun's group from the environment, once per process (see the module's docstring)."""
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise MemlabError(f"this process already joined torchrun's group over {dist.get_backend()}; "
                              f"a run over {backend} needs a torchrun of its own")
        return
    try:
        with quiet_stderr():  # c10d and gloo log every retry, with C++ stack frames, to fd 2: the one line below says it
            dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                                    timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as e:  # unreachable address, nobody listening, a rank that never came
        raise MemlabError(f"rank {env.rank} of {env.world_size} could not join the group at {env.rendezvous} "
                          f"within {timeout_s:.0f} s ({type(e).__name__}: {first_line(e)}): is rank 0's "
                          "node up, and MASTER_ADDR an address of it that this node can reach?") from None
    atexit.register(leave_group)


@contextlib.contextmanager
def quiet_stderr():
    """Send what C++ code writes to file descriptor 2 nowhere while the block runs (Python's own
    exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def leave_group() -> None:
    """At exit: leave the torchrun group this process joined (torch warns about a group left open)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def spawned_here() -> bool:
    """True in a worker that run_workers spawned (it shares its parent's multiprocessing resource
    tracker); False under torchrun or in a plain process."""
    return os.environ.get("MEMLAB_SPAWNED") == "1"


def first_line(e: BaseException) -> str:
    """An exception's message, first line only (gloo's and the store's run over several)."""
    return (str(e).strip().splitlines() or [""])[0]


def rank_hosts() -> list[str]:
    """Inside a worker: socket.gethostname() of every rank, rank order (a collective: every rank calls it)."""
    hosts = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, socket.gethostname())
    return hosts


def clock_offset(rounds: int = 16) -> float:
    """Inside a worker: this rank's time.perf_counter() minus rank 0's at the same instant (a collective).

    0.0 where every rank runs on one host: perf_counter is CLOCK_MONOTONIC, one clock for the
    machine. Across hosts, rank 0 pings each rank `rounds` times and keeps the round trip that was
    shortest: offset = peer's stamp - midpoint of the trip, so its error is under half that trip.
    """
    hosts = rank_hosts()
    if len(set(hosts)) == 1:
        return 0.0
    rank, offsets = dist.get_rank(), [0.0] * len(hosts)
    for peer in range(1, len(hosts)):
        if rank == 0:
            trips = []
            for _ in range(rounds):
                t = torch.zeros(1, dtype=torch.float64)
                t0 = time.perf_counter()
                dist.send(t, peer)
                dist.recv(t, peer)
                t1 = time.perf_counter()
                trips.append((t1 - t0, float(t) - (t0 + t1) / 2))
            offsets[peer] = min(trips)[1]
        elif rank == peer:
            for _ in range(rounds):
                t = torch.zeros(1, dtype=torch.float64)
                dist.recv(t, 0)
                dist.send(torch.tensor([time.perf_counter()], dtype=torch.float64), 0)
    dist.broadcast_object_list(offsets, src=0)
    return offsets[rank]


def spawn(fn: Callable[..., Any], world_size: int, args: tuple, timeout_s: float, backend: str,
          threads_per_rank: int | None = None, netns: str | None = None) -> list[Any]:
    """`world_size` local processes (spawn) in one group on 127.0.0.1; their return values, rank order."""
    threads = threads_per_rank or max(1, (os.cpu_count() or 1) // world_size)
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, fn, world_size, tuple(args), port, backend,
                                              timeout_s, threads, results, netns), daemon=True)
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
