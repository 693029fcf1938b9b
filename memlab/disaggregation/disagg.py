"""A real prefill/decode split: two processes, the KV cache in flight between them (lab 07).

The idea it teaches: prefill (compute-bound, whole prompt at once) and decode (one token at a
time, bound by reading weights and cache) can run on different workers if the prefill worker
ships its KV cache to the decode worker. Rank 0 prefills and sends the cache plus the first
token; rank 1 rebuilds a DynamicCache from it and carries on decoding. The price is the
transfer: kv_bytes = 2 * layers * kv_heads * head_dim * bytes * prompt_tokens
(`memlab.core.footprint.kv_cache_bytes`), at the link's bandwidth.

Devices: on "cpu" both workers map one checkpoint file. On "cuda" each worker holds the model in
its own VRAM (rank r on GPU r % num_gpus), and the cache crosses host memory: device -> pinned host
(d2h_s) -> gloo -> host -> device (h2d_s): gloo sends only host tensors, and one GPU cannot talk
NCCL to itself. Two GPUs take the same route, so their numbers compare with one GPU's.

Transports, in the order the lab meets them:
  1. "gloo": torch.distributed send/recv over TCP loopback (clusters use NCCL between GPUs, RDMA).
  2. "shm":  a POSIX shared-memory block (/dev/shm): one copy in, one copy out.
  3. "file": one safetensors file per request, as vLLM's example KV connector does it
             (here the file most likely stays in the page cache: it is a memory copy plus syscalls).
shm and file always move host tensors (on cuda: rank 0's host copies, read back into host memory).

Timing: perf_counter is CLOCK_MONOTONIC on Linux, one clock for both processes, so a time
stamped on rank 0 and one stamped on rank 1 subtract directly. Under torchrun the two ranks may
sit on two hosts: rank 1's stamps move onto rank 0's clock (`launch.clock_offset`, within half a
round trip), and shm and file, which need one machine, are skipped (NaN). TTFT = prompt handed to the
prefill worker -> first token there. TPOT = (last token on the decode worker - first token) / (n - 1),
so the split's TPOT carries the transfer, as a user would see it. transfer_s = first token on
rank 0 -> cache rebuilt on rank 1, so on cuda it includes d2h_s and h2d_s. Every stamp after GPU
work follows a synchronize (`int(logits.argmax())` waits for the GPU too).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from memlab.core import footprint, generation, launch, shaped, torchrun
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import cpu_or_cuda
from memlab.core.measure import sync
from memlab.core.models import DEFAULT_MODEL
from memlab.core.text import prompt_ids
from memlab.disaggregation.kv_transfer import (
    cache_bytes,
    cache_from,
    kv_tensors,
    recv_kv,
    recv_other_transports,
    send_kv,
    send_other_transports,
    time_wire,
)
from memlab.disaggregation.serve import worker_model


@dataclass(frozen=True, slots=True)
class SplitResult:
    """One prompt served colocated (one process) and split (prefill rank 0 -> decode rank 1)."""

    model_name: str
    prompt_tokens: int
    new_tokens: int
    tokens_match: bool                 # split tokens == single-process memlab.core.generation tokens
    token_ids: tuple[int, ...]         # the split run's new tokens
    kv_bytes: int                      # sum of the K and V tensors' nbytes actually sent
    kv_bytes_predicted: int            # memlab.core.footprint.kv_cache_bytes(config, prompt_tokens)
    transfer_s: float                  # gloo: first token on rank 0 -> cache rebuilt on rank 1 (+ d2h_s, h2d_s)
    transfer_bytes_per_s: float
    shm_transfer_s: float
    file_transfer_s: float
    split_ttft_s: float
    split_tpot_s: float                # includes the transfer
    split_decode_tpot_s: float         # decode steps only, on rank 1
    colocated_ttft_s: float
    colocated_tpot_s: float
    device: str                        # "cpu" or "cuda": where both workers ran
    d2h_s: float                       # rank 0: cache GPU -> pinned host memory (0.0 on cpu)
    h2d_s: float                       # rank 1: received cache host -> GPU (0.0 on cpu)
    transfer_median_s: float = float("nan")  # median of TRANSFER_REPEATS gloo sends (the first: transfer_s)
    backend: str = "gloo"              # the torch.distributed backend the cache crossed
    hosts: tuple = ()                  # the host of each rank (prefill, decode)
    launcher: str = "local"            # "local" (two processes spawned here) or "torchrun"
    link_gbps: float = 0.0             # the shaped link's rate asked for, Gbit/s (core.shaped); 0.0: unshaped loopback
    link_measured_gbps: float = float("nan")  # kv_bytes x 8 / wire_median_s: the rate the sends achieved
    wire_median_s: float = float("nan")       # median of WIRE_REPEATS sends of the packed cache alone (no header, rebuild)


TRANSFER_REPEATS = 5  # one transfer on a shared 2-core machine varies by a factor; the median of five much less
WIRE_REPEATS = 3      # the packed cache alone, for the link's measured rate


def split_device(device: str | torch.device = "cpu") -> str:
    """The device type the split's workers run on: "cpu" or "cuda" ("auto" on a Mac: "cpu")."""
    if str(device).strip().lower().startswith("mps"):  # before resolving: it would only say mps is absent here
        raise InvalidArgumentError(f"device={str(device)!r}: the split runs on cpu or cuda; "
                                   "torch.distributed has no backend for mps.")
    return cpu_or_cuda(device)  # absent or unknown devices raise there


def _cache_to_host(cache, device: torch.device) -> float:
    """Swap every K and V tensor of `cache` for a pinned host copy; seconds the copies took (d2h_s).

    Rank 0 is done computing with this cache, so send_kv and the shm/file transports can read it
    as it is. The pinned buffers are allocated before the clock starts (a server keeps a pool), but
    after t_first, so transfer_s still pays for them.
    """
    host = [(torch.empty(layer.keys.shape, dtype=layer.keys.dtype, pin_memory=True),
             torch.empty(layer.values.shape, dtype=layer.values.dtype, pin_memory=True)) for layer in cache.layers]
    t0 = time.perf_counter()
    for layer, (k, v) in zip(cache.layers, host):
        k.copy_(layer.keys, non_blocking=True)
        v.copy_(layer.values, non_blocking=True)
    sync(device)  # the copies are asynchronous: the clock must see them land
    d2h_s = time.perf_counter() - t0
    for layer, (k, v) in zip(cache.layers, host):
        layer.keys, layer.values = k, v
    return d2h_s


def _resend(rank: int, peer: int, cache, first: int, model, dtype, dev, is_cuda: bool, repeats: int,
            offset: float = 0.0) -> list[float]:
    """`repeats` more gloo transfers of one cache, each timed as transfer_s is (rank 0 starts the clock
    and sends; rank 1 receives, rebuilds the cache and returns the time it was done). Seconds, on rank 0."""
    times = []
    for _ in range(repeats):
        dist.barrier()
        if rank == 0:
            t0 = time.perf_counter()
            send_kv(cache, first, t0, peer)
            box = [None]
            dist.broadcast_object_list(box, src=1)
            times.append(box[0] - t0)
        else:
            _, _, _, tensors = recv_kv(dtype, peer)
            cache_from([t.to(dev) for t in tensors] if is_cuda else tensors, model)
            if is_cuda:
                sync(dev)
            dist.broadcast_object_list([time.perf_counter() - offset], src=1)
    return times


def _split_worker(rank, world_size, model_name, lengths, max_new_tokens, tag, folder, device_type, link=None,
                  rates=(None,)):
    """Rank 0: colocated reference, then prefill + send; rank 1: receive + decode. Once per link rate
    (rank 0 re-shapes the namespace's loopback between rates)."""
    is_cuda = device_type == "cuda"
    dev = torch.device("cuda", rank % torch.cuda.device_count()) if is_cuda else torch.device("cpu")
    if is_cuda:
        torch.cuda.set_device(dev)
    loaded = worker_model(model_name, dev)
    model, peer = loaded.model, 1 - rank
    dtype = next(model.parameters()).dtype
    results, colos = [], {}
    same_host = len(set(launch.rank_hosts())) == 1
    offset = launch.clock_offset()          # rank 1's clock - rank 0's; 0.0 on one host
    box = [(tag, folder)]                   # rank 0 names the shm blocks and the folder (torchrun: each rank made its own)
    dist.broadcast_object_list(box, src=0)
    tag, folder = box[0]
    with torch.inference_mode():
        for gbps in rates:
            if rank == 0 and gbps is not None:
                shaped.set_rate(link, gbps)
            for n in lengths:
                name, path = f"memlab_kv_{tag}_{n}", Path(folder) / f"kv_{n}.safetensors"
                if rank == 0:
                    ids = prompt_ids(loaded.tokenizer, n)
                    colo = colos.get(n) or generation.generate(loaded, ids, max_new_tokens=max_new_tokens, stop_at_eos=False)
                    colos[n] = colo
                    dist.barrier()
                    t_start = time.perf_counter()
                    cache = generation.new_cache(model)
                    first = int(generation.prefill(model, torch.tensor([ids], device=dev), cache)[0].argmax())
                    t_first = time.perf_counter()
                    d2h_s = _cache_to_host(cache, dev) if is_cuda else 0.0  # gloo sends host tensors only
                    send_kv(cache, first, t_first, peer)
                    if same_host:
                        send_other_transports(kv_tensors(cache), name, path, peer)
                    box = [None]
                    dist.broadcast_object_list(box, src=1)
                    rec = box[0]
                    gaps = max(1, max_new_tokens - 1)
                    transfer_s = rec["t_rebuilt"] - t_first
                    more = _resend(rank, peer, cache, first, model, dtype, dev, is_cuda, TRANSFER_REPEATS - 1)
                    wire_s = statistics.median(time_wire(rank, peer, kv_tensors(cache), dtype, WIRE_REPEATS))
                    results.append(SplitResult(
                        str(model_name), n, max_new_tokens,
                        tuple(rec["tokens"]) == tuple(colo.token_ids)[-max_new_tokens:],
                        tuple(rec["tokens"]), rec["kv_bytes"],
                        footprint.kv_cache_bytes(loaded.config, n, dtype=dtype),
                        transfer_s, rec["kv_bytes"] / transfer_s, rec["shm_s"], rec["file_s"],
                        t_first - t_start, (rec["t_last"] - t_first) / gaps, rec["decode_s"] / gaps,
                        colo.ttft_s, colo.tpot_s, device_type, d2h_s, rec["h2d_s"],
                        statistics.median([transfer_s] + more), link_gbps=gbps or 0.0,
                        link_measured_gbps=shaped.measured_gbps(rec["kv_bytes"], wire_s), wire_median_s=wire_s))
                else:
                    dist.barrier()
                    first, t_first, shapes, tensors = recv_kv(dtype, peer)  # into (pageable) host memory
                    on_device, h2d_s = tensors, 0.0
                    if is_cuda:
                        t0 = time.perf_counter()
                        on_device = [t.to(dev) for t in tensors]
                        sync(dev)
                        h2d_s = time.perf_counter() - t0
                    cache = cache_from(on_device, model)
                    if is_cuda:
                        sync(dev)  # cache_from copies on the GPU: t_rebuilt must see it done
                    t_rebuilt = time.perf_counter()
                    tokens = [first]
                    for _ in range(max_new_tokens - 1):
                        logits = generation.decode_step(model, torch.tensor([[tokens[-1]]], device=dev), cache)
                        tokens.append(int(logits[0].argmax()))
                    t_last = time.perf_counter()
                    shm_s, file_s = (recv_other_transports(shapes, dtype, name, path, peer) if same_host
                                     else (float("nan"), float("nan")))
                    dist.broadcast_object_list([{
                        "tokens": tokens, "kv_bytes": cache_bytes(tensors), "t_rebuilt": t_rebuilt - offset,
                        "t_last": t_last - offset, "decode_s": t_last - t_rebuilt, "shm_s": shm_s, "file_s": file_s,
                        "h2d_s": h2d_s}], src=1)
                    _resend(rank, peer, None, first, model, dtype, dev, is_cuda, TRANSFER_REPEATS - 1, offset)
                    time_wire(rank, peer, tensors, dtype, WIRE_REPEATS, offset)
    return results if rank == 0 else None


def run_split(model: str = DEFAULT_MODEL, prompt_tokens=(64, 256), max_new_tokens: int = 16,
              timeout_s: float = 600, device: str = "cpu", link_gbps=None) -> tuple[SplitResult, ...]:
    """Serve each prompt length colocated and split across two real processes (gloo between them).

    device: "cpu", "cuda" (each worker on a GPU, the cache through host memory) or "auto".
    link_gbps: None (the loopback at memory speed), or one rate or several in Gbit/s: the two
    processes then talk over a loopback the kernel shapes to each rate in turn (core.shaped; Linux,
    root); one record per rate and prompt length, rates outer.
    """
    lengths = (prompt_tokens,) if isinstance(prompt_tokens, int) else tuple(prompt_tokens)
    rates = (None,) if link_gbps is None else (link_gbps,) if isinstance(link_gbps, (int, float)) else tuple(link_gbps)
    if max_new_tokens < 2:
        raise InvalidArgumentError("max_new_tokens must be >= 2: the decode worker makes tokens 2..n")
    split_device(device)  # a bad device is refused before a namespace is made
    if rates != (None,):
        if torchrun.rank_env() is not None:
            raise InvalidArgumentError("a shaped link (--link-gbps) runs local ranks only; under torchrun the "
                                       "link between the nodes is the real one: drop --link-gbps")
        for g in rates:
            shaped.check(g)
        with shaped.shaped_link(rates[0]) as link:
            return _run_split(model, lengths, max_new_tokens, timeout_s, device, link, rates)
    return _run_split(model, lengths, max_new_tokens, timeout_s, device)


def _run_split(model, lengths, max_new_tokens, timeout_s, device, link=None, rates=(None,)):
    device_type = split_device(device)
    with tempfile.TemporaryDirectory(prefix="memlab_kv_") as folder:
        # gloo (run_workers' default) even with a GPU per rank: the cache travels as host tensors
        ranks = launch.run_ranks(_split_worker, world_size=2, timeout_s=timeout_s,
                                 args=(str(model), lengths, max_new_tokens, os.getpid(), folder, device_type, link, rates),
                                 link=link)
    return tuple(replace(r, backend=ranks.backend, hosts=ranks.hosts, launcher=ranks.launcher)
                 for r in ranks.results[0])
