"""The alpha-beta model of communication, measured here and used to predict other machines.

Lab 05. Sending n bytes costs  t(n) = alpha + n / beta  (alpha: latency per message, beta: link
bandwidth). An all-reduce of n bytes over R ranks costs about
  t_ar(n) = alpha + 2 (R-1)/R * n / beta
(a ring moves 2 (R-1)/R of the data per rank; alpha is taken per collective call, which is what
tuned libraries such as NCCL approach for small messages; a naive ring would pay 2 (R-1) alphas).
`probe_link` measures alpha and beta between two real processes (gloo here, NCCL on GPUs), and
`predict_decode` turns a model config plus (alpha, beta, memory bandwidth) into per-token time
for pipeline and tensor parallel at R ranks, so the lab can set the prediction for an 8-GPU
NVLink node beside what it measured on two CPU processes.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from memlab.core.launch import run_workers
from memlab.core.measure import sync
from memlab.sharding.workers import worker_device

__all__ = ["LinkProbe", "probe_link", "CommPrediction", "predict_decode"]


@dataclass(frozen=True, slots=True)
class LinkProbe:
    """Ping-pong between rank 0 and rank 1: one-way time per message size."""
    backend: str
    sizes_bytes: tuple
    one_way_s: tuple          # median of half the round-trip time, per size
    alpha_s: float            # fitted latency (intercept)
    beta_bytes_per_s: float   # fitted bandwidth (1 / slope)
    allreduce_s: float        # measured median all-reduce of `allreduce_bytes` on 2 ranks
    allreduce_bytes: int


def _probe_worker(rank, world_size, sizes, repeats, allreduce_bytes, backend):
    dev = worker_device(rank, backend)
    out = []
    for n in sizes:
        t = torch.zeros(max(n // 4, 1), dtype=torch.float32, device=dev)
        times = []
        for i in range(repeats + 1):                 # the first round trip warms up
            dist.barrier()
            t0 = time.perf_counter()
            if rank == 0:
                dist.send(t, 1)
                dist.recv(t, 1)
            else:
                dist.recv(t, 0)
                dist.send(t, 0)
            if dev.type == "cuda":
                sync(dev)
            if i:
                times.append((time.perf_counter() - t0) / 2)
        out.append(statistics.median(times))
    x = torch.zeros(allreduce_bytes // 4, device=dev)
    ar = []
    for i in range(repeats + 1):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        if dev.type == "cuda":
            sync(dev)
        if i:
            ar.append(time.perf_counter() - t0)
    return tuple(out), statistics.median(ar)


def probe_link(sizes_bytes=(4, 2304, 65536, 1 << 20, 8 << 20), repeats: int = 20,
               allreduce_bytes: int = 2304, backend: str = "gloo", timeout_s: float = 120, link=None) -> LinkProbe:
    """Measure one-way message time between two processes and fit t = alpha + n / beta.

    link: a `core.shaped.shaped_link`, to probe its shaped loopback instead of the plain one."""
    (one_way, ar), _ = run_workers(_probe_worker, world_size=2,
                                   args=(tuple(sizes_bytes), repeats, allreduce_bytes, backend),
                                   timeout_s=timeout_s, backend=backend, link=link)
    n = torch.tensor(sizes_bytes, dtype=torch.float64)
    t = torch.tensor(one_way, dtype=torch.float64)
    slope, intercept = _fit(n, t)
    return LinkProbe(backend, tuple(sizes_bytes), tuple(one_way), max(intercept, 0.0),
                     1 / slope if slope > 0 else float("inf"), ar, allreduce_bytes)


def _fit(x, y):
    """Least-squares line y = a x + b."""
    a = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(a), float(y.mean() - a * x.mean())


@dataclass(frozen=True, slots=True)
class CommPrediction:
    """Predicted time per decoded token (batch B) on R ranks; a model, not a measurement."""
    mode: str
    world_size: int
    compute_s: float          # weights_bytes / (R * mem_bandwidth) for tensor; the full model for pipeline
    comm_s: float
    total_s: float
    comm_share: float


def predict_decode(config, world_size: int, alpha_s: float, beta_bytes_per_s: float,
                   mem_bytes_per_s: float, weights_bytes: int, dtype_bytes: int = 4,
                   batch_size: int = 1) -> list[CommPrediction]:
    """Per-token decode time for pipeline and tensor parallel, from the alpha-beta model.

    compute: decode streams every weight once per token, so one device needs W / mem_bandwidth.
      tensor:   each rank streams W / R  ->  W / (R * mem_bw)
      pipeline: the stages run one after another for one token  ->  W / mem_bw (no speed-up)
    communication per token:
      tensor:   (2 L + 1) all-reduces of B*H*bytes, then one all-gather of each rank's best (logit, id)
                -> (2L+1) * (alpha + 2(R-1)/R * B*H*b / beta) + alpha
      pipeline: R hops (R-1 activations B*H*b, one token id back) -> R * alpha + (R-1) * B*H*b / beta
    """
    R, L, H = world_size, config.num_hidden_layers, config.hidden_size
    msg = batch_size * H * dtype_bytes
    out = []
    comp = weights_bytes / (R * mem_bytes_per_s)
    comm = (2 * L + 1) * (alpha_s + 2 * (R - 1) / R * msg / beta_bytes_per_s) + alpha_s if R > 1 else 0.0
    out.append(CommPrediction("tensor", R, comp, comm, comp + comm, comm / (comp + comm)))
    comp = weights_bytes / mem_bytes_per_s
    comm = R * alpha_s + (R - 1) * msg / beta_bytes_per_s if R > 1 else 0.0
    out.append(CommPrediction("pipeline", R, comp, comm, comp + comm, comm / (comp + comm)))
    return out
