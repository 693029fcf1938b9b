"""Serving a whole trace for real on two processes: the simulator's ground truth (lab 07).

Rank 0 prefills each request when it arrives (by the trace's clock) and sends its KV cache;
rank 1 decodes every request it holds one step at a time, batched. `serve_trace` returns one
`workload.RequestRecord` per request, so the real run and the simulation compare field by field.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from memlab.core import generation, launch, loading
from memlab.core.text import prompt_ids
from memlab.disaggregation.kv_transfer import (
    cache_bytes,
    cache_from,
    kv_shapes,
    kv_tensors,
    pack,
    recv_gloo,
    recv_scalar,
    send_scalar,
)
from memlab.disaggregation.workload import RequestRecord


def _serve_prefill(loaded, trace, peer: int) -> list[dict]:
    """Rank 0: wait for each arrival, prefill, hand the KV to the decode rank without blocking."""
    model, rows, pending = loaded.model, [], []
    prompts = [prompt_ids(loaded.tokenizer, r.prompt_tokens) for r in trace]   # tokenized beforehand
    dist.barrier()
    t0 = time.perf_counter()
    send_scalar(t0, peer)
    for spec, ids in zip(trace, prompts):
        delay = t0 + spec.arrived_at_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        started, cpu_started = time.perf_counter(), time.thread_time()
        cache = generation.new_cache(model)
        first = int(generation.prefill(model, torch.tensor([ids]), cache)[0].argmax())
        t_first, cpu_s = time.perf_counter(), time.thread_time() - cpu_started
        shapes = kv_shapes(cache)
        header = torch.tensor([first, len(shapes), spec.output_tokens] + [d for s in shapes for d in s])
        # isend: the prefill worker goes on with the next prompt while the decode worker is busy
        msgs = [torch.tensor([header.numel()]), header, torch.tensor([t_first], dtype=torch.float64)]
        msgs.append(pack(kv_tensors(cache)))
        pending += [(dist.isend(m, peer), m) for m in msgs]
        rows.append({"prefill_started_at_s": started - t0, "first_token_at_s": t_first - t0,
                     "prefill_cpu_s": cpu_s})  # < wall time: the thread waited for a core
    for work, _ in pending:
        work.wait()
    return rows


def _serve_decode(loaded, trace, peer: int, offset: float = 0.0) -> list[dict]:
    """Rank 1: take requests in arrival order, one at a time, and decode each to its last token."""
    model, rows = loaded.model, []
    dtype = next(model.parameters()).dtype
    dist.barrier()
    t0 = recv_scalar(peer) + offset  # rank 0's start, on this rank's clock (offset 0.0 on one host)
    for spec in trace:
        free_at = time.perf_counter()
        size = torch.zeros(1, dtype=torch.long)
        dist.recv(size, peer)
        header = torch.zeros(int(size.item()), dtype=torch.long)
        dist.recv(header, peer)
        first, num, n_out, dims = int(header[0]), int(header[1]), int(header[2]), header[3:].tolist()
        t_first = recv_scalar(peer) + offset
        tensors = recv_gloo([tuple(dims[4 * i:4 * i + 4]) for i in range(num)], dtype, peer)
        cache = cache_from(tensors, model)
        landed = time.perf_counter()
        token = first
        for _ in range(n_out - 1):
            token = int(generation.decode_step(model, torch.tensor([[token]]), cache)[0].argmax())
        rows.append({"transfer_started_at_s": max(free_at, t_first) - t0, "transfer_ended_at_s": landed - t0,
                     "finished_at_s": time.perf_counter() - t0, "kv_bytes": cache_bytes(tensors)})
    return rows


def serve_rows(rank: int, loaded, trace) -> list[dict]:
    """Run the trace on this rank (0 prefills, 1 decodes); timestamps relative to rank 0's start."""
    offset = launch.clock_offset()  # under torchrun the ranks may sit on two hosts, two clocks
    with torch.inference_mode():
        return _serve_prefill(loaded, trace, 1) if rank == 0 else _serve_decode(loaded, trace, 0, offset)


def to_records(trace, prefill_rows, decode_rows):
    """Merge both ranks' timestamps into the simulator's RequestRecord, so real and simulated compare."""
    out = []
    for spec, p, d in zip(trace, prefill_rows, decode_rows):
        first, fin, n = p["first_token_at_s"], d["finished_at_s"], spec.output_tokens
        out.append(RequestRecord(
            spec.request_id, spec.prompt_tokens, n, d["kv_bytes"], 0, 0, spec.arrived_at_s,
            p["prefill_started_at_s"], first, d["transfer_started_at_s"], d["transfer_ended_at_s"],
            d["transfer_ended_at_s"], fin, first - spec.arrived_at_s, (fin - first) / max(1, n - 1),
            fin - spec.arrived_at_s, first - p["prefill_started_at_s"],
            d["transfer_ended_at_s"] - d["transfer_started_at_s"]))
    return tuple(out)


def worker_model(model_name: str, device: torch.device | None = None):
    """One lab 07 worker's model, the same way in every run (the split, the served trace, the calibration):
    one torch thread; on a CPU a mapping of the checkpoint (both workers map one file: its pages are in
    memory once), on a GPU resident in its VRAM (each worker copies the weights there anyway, so a mapping
    would only add a pass through the page cache); then warmed by one tiny prefill."""
    torch.set_num_threads(1)
    on_gpu = device is not None and device.type == "cuda"
    loaded = loading.load(model_name, "resident", device=str(device)) if on_gpu else loading.load(model_name, "mmap")
    with torch.inference_mode():
        ids = torch.tensor([[1, 2, 3, 4]], device=device or "cpu")
        generation.prefill(loaded.model, ids, generation.new_cache(loaded.model))
    return loaded


def _serve_worker(rank, world_size, model_name, trace):
    return serve_rows(rank, worker_model(model_name), trace)


def serve_trace(model: str, trace, timeout_s: float = 600):
    """Serve a request trace (simulator RequestSpecs) for real: rank 0 prefills, rank 1 decodes."""
    trace = tuple(sorted(trace, key=lambda r: r.arrived_at_s))
    rows = launch.run_workers(_serve_worker, world_size=2, timeout_s=timeout_s, args=(str(model), trace))
    return to_records(trace, rows[0], rows[1])
