"""What every multi-process worker of lab 05 shares: the run config, per-rank records, timed
communication, and reading only a rank's part of a safetensors checkpoint.

Used by `pipeline.py` (layers split across ranks) and `tensor_parallel.py` (matrices split
across ranks); `sharding.py` turns the rank records into one `ShardResult`.

Time is split into two kinds, per rank:
  compute_s = time running the model's math on this rank
  comm_s    = time *blocked* in a torch.distributed call (send wait, recv, all-reduce, gather).
Blocked time is wire time plus waiting for a slower peer (the pipeline bubble shows up here),
so `comm_s` is an upper bound on what the link itself costs; `probe_link` measures the wire.
Timestamps are `time.perf_counter()` (CLOCK_MONOTONIC, shared by processes on one host); ranks on
other hosts (under torchrun) move theirs onto rank 0's clock (`Comm.timeline`, `launch.clock_offset`).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist

from memlab.core import launch, limits, shaped
from memlab.core.errors import MemlabError
from memlab.core.hardware import resolve_device
from memlab.core.measure import release_freed_memory, sync
from memlab.core.models import DEFAULT_MODEL

__all__ = ["ParallelConfig", "Event", "RankResult", "Comm",
           "peak_rss_bytes", "worker_device", "maybe_fail", "load_in_turn",
           "backend_for", "backend_reason"]


@dataclass(frozen=True, slots=True)
class ParallelConfig:
    """One pipeline- or tensor-parallel generation run."""
    model: str = DEFAULT_MODEL     # catalog name, HF id or local folder (see models.prepare)
    world_size: int = 2             # number of ranks (processes)
    prompt: str = "The capital of France is Paris. The capital of Germany is"
    max_new_tokens: int = 24        # greedy tokens; step 0 is the prefill
    batch_size: int = 1             # sequences decoded together (the same prompt repeated)
    micro_batches: int = 1          # pipeline only: the batch is cut into this many pieces
    dtype: str = "fp32"
    backend: str = "gloo"           # "gloo" on CPU, "nccl" on GPUs (one GPU per rank)
    timeout_s: float = 300.0        # a rank that dies or hangs ends the run within this
    check_tokens: bool = True       # also run the single-process reference and compare tokens
    link_gbps: float | None = None  # ranks talk over a loopback the kernel shapes to this (core.shaped); None: unshaped
    fail_rank: int = -1             # fault injection for the kill test: this rank ...
    fail_at_step: int = -1          # ... kills itself (SIGKILL) at this generation step

    def __post_init__(self):
        for name in ("world_size", "max_new_tokens", "batch_size", "micro_batches"):
            limits.count(getattr(self, name), name)
        limits.positive(self.timeout_s, "timeout_s")
        if self.link_gbps is not None:  # refused here, in one line, before any process starts
            shaped.check(self.link_gbps)
        if self.batch_size % self.micro_batches:
            raise MemlabError(f"batch_size ({self.batch_size}) must be a multiple of "
                              f"micro_batches ({self.micro_batches}).")
        if self.backend not in ("gloo", "nccl"):
            raise MemlabError(f"backend must be 'gloo' (CPU) or 'nccl' (GPU), got {self.backend!r}.")

    @classmethod
    def quick(cls, **overrides) -> "ParallelConfig":
        """Few tokens: for tests and quick labs."""
        return cls(**{"max_new_tokens": 8, **overrides})


@dataclass(frozen=True, slots=True)
class Event:
    """One interval on one rank's timeline (for the Gantt chart)."""
    rank: int
    kind: str            # "compute" or "comm"
    name: str            # "embed", "layers 0-14", "recv", "send", "all_reduce", "lm_head", ...
    step: int            # generation step; 0 is the prefill
    micro_batch: int
    start_at_s: float    # perf_counter clock
    end_at_s: float


@dataclass(frozen=True, slots=True)
class RankResult:
    """What one rank measured about itself."""
    rank: int
    world_size: int
    mode: str                    # "pipeline" or "tensor"
    holds: str                   # which part of the model this rank holds, in words
    weights_bytes: int           # sum of nbytes of the unique tensors this rank holds
    kv_cache_bytes: int          # this rank's KV cache at the end of generation
    start_rss_bytes: int         # RSS before loading weights (torch and transformers imported)
    loaded_rss_bytes: int        # RSS once this rank's weights are in memory
    peak_rss_bytes: int          # peak RSS of this rank's process over the whole run
    load_s: float
    prefill_compute_s: float
    prefill_comm_s: float
    decode_compute_s: float      # summed over all decode steps
    decode_comm_s: float
    decode_comm_bytes: int       # payload this rank sent or all-reduced during decode
    num_decode_steps: int
    token_ids: tuple = ()        # generated ids of sequence 0 (filled on rank 0)
    events: tuple = ()           # tuple[Event, ...]


def peak_rss_bytes() -> int:
    """Peak RSS of this process so far: VmHWM from /proc (Linux), else ru_maxrss.

    Not ru_maxrss on Linux: a spawned process inherits its parent's ru_maxrss across exec, so a
    worker started by a notebook that holds a model would report the notebook's peak.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys
    scale = 1 if sys.platform == "darwin" else 1024          # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker_device(rank: int, backend: str) -> torch.device:
    """CPU for gloo; GPU `rank % device_count` for NCCL."""
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise MemlabError("backend='nccl' needs CUDA GPUs; use backend='gloo' on CPU.")
        dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        return dev
    return torch.device("cpu")


def load_in_turn(rank: int, world_size: int, load):
    """Run `load()` on one rank at a time (a barrier between turns) and trim the heap after it:
    the copies a load makes in passing (a tensor read, then copied into place) peak in one process
    at a time rather than in all at once, and what the load freed goes back to the OS. Returns
    (what load returned, seconds the load itself took: waiting for one's turn is not counted)."""
    out, load_s = None, float("nan")
    for turn in range(world_size):
        if turn == rank:
            t0 = time.perf_counter()
            out = load()
            load_s = time.perf_counter() - t0
            release_freed_memory()
        if world_size > 1:
            dist.barrier()
    return out, load_s


def backend_for(device: str = "auto", world_size: int = 2) -> str:
    """The lab's DEVICE as a torch.distributed backend: "nccl" where it resolves to CUDA and torch
    sees a GPU for every rank, else "gloo" with every rank on the CPU."""
    cuda = resolve_device(device).type == "cuda"
    return "nccl" if cuda and torch.cuda.device_count() >= world_size else "gloo"


def backend_reason(device: str = "auto", world_size: int = 2) -> str:
    """Why `backend_for` chose what it chose, in one sentence."""
    kind = resolve_device(device).type
    if backend_for(device, world_size) == "nccl":
        return f"NCCL, one GPU per rank ({torch.cuda.device_count()} GPUs seen for {world_size} ranks)"
    if kind == "cuda":
        return (f"gloo, ranks on the CPU: NCCL needs a GPU per rank, and torch sees {torch.cuda.device_count()} "
                f"for {world_size} ranks")
    if kind == "mps":
        return "gloo, ranks on the CPU: torch.distributed has no backend for Apple's mps"
    return "gloo, ranks on the CPU (no GPU here)"


def maybe_fail(cfg: ParallelConfig, rank: int, step: int) -> None:
    """Fault injection for the kill test: die hard, as an OOM kill would, with no cleanup."""
    if rank == cfg.fail_rank and step == cfg.fail_at_step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True)
class Comm:
    """Timed wrappers around torch.distributed calls; records events and payload bytes."""
    rank: int
    device: torch.device
    events: list = field(default_factory=list)
    step: int = 0
    micro_batch: int = 0
    bytes_by_step: dict = field(default_factory=dict)

    def _record(self, kind, name, t0, nbytes=0):
        sync(self.device)
        self.events.append(Event(self.rank, kind, name, self.step, self.micro_batch, t0,
                                 time.perf_counter()))
        if nbytes:
            self.bytes_by_step[self.step] = self.bytes_by_step.get(self.step, 0) + nbytes

    def compute(self, name: str):
        """Context manager timing a compute interval."""
        return _Span(self, "compute", name)

    def send(self, t: torch.Tensor, dst: int):
        """Start a send; the returned handle's wait is timed by `wait`."""
        self.bytes_by_step[self.step] = self.bytes_by_step.get(self.step, 0) + t.nbytes
        return dist.isend(t.contiguous(), dst)

    def wait(self, handles):
        t0 = time.perf_counter()
        for h in handles:
            h.wait()
        self._record("comm", "send wait", t0)

    def recv(self, shape, dtype, src: int) -> torch.Tensor:
        t = torch.empty(shape, dtype=dtype, device=self.device)
        t0 = time.perf_counter()
        dist.recv(t, src)
        self._record("comm", "recv", t0)
        return t

    def all_reduce(self, t: torch.Tensor, name: str = "all_reduce") -> torch.Tensor:
        if dist.get_world_size() == 1:          # nothing to reduce: no call, no bytes, no time
            return t
        sync(self.device)
        t0 = time.perf_counter()
        dist.all_reduce(t)
        self._record("comm", name, t0, t.nbytes)
        return t

    def all_gather(self, t: torch.Tensor) -> list:
        if dist.get_world_size() == 1:
            return [t]
        sync(self.device)
        out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        t0 = time.perf_counter()
        dist.all_gather(out, t)
        self._record("comm", "all_gather", t0)      # tiny (B x 2 numbers); not in the all-reduce count
        return out

    def timeline(self) -> tuple:
        """The events on rank 0's clock (a collective: every rank calls it), so that ranks on other
        hosts line up in step_times and the Gantt chart; unchanged on one host."""
        off = launch.clock_offset()
        return tuple(e if not off else replace(e, start_at_s=e.start_at_s - off, end_at_s=e.end_at_s - off)
                     for e in self.events)

    def totals(self, steps) -> tuple:
        """(compute_s, comm_s) summed over events of the given steps."""
        steps = set(steps)
        comp = sum(e.end_at_s - e.start_at_s for e in self.events if e.step in steps and e.kind == "compute")
        comm = sum(e.end_at_s - e.start_at_s for e in self.events if e.step in steps and e.kind == "comm")
        return comp, comm


class _Span:
    __slots__ = ("comm", "kind", "name", "t0")

    def __init__(self, comm, kind, name):
        self.comm, self.kind, self.name = comm, kind, name

    def __enter__(self):
        sync(self.comm.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.comm._record(self.kind, self.name, self.t0)
        return False
