"""A real prefill/decode split: two processes, the KV cache in flight between them (lab 07).

The idea it teaches: prefill (compute-bound, whole prompt at once) and decode (one token at a
time, bound by reading weights and cache) can run on different workers if the prefill worker
ships its KV cache to the decode worker. Rank 0 prefills and sends the cache plus the first
token; rank 1 rebuilds a DynamicCache from it and carries on decoding. The price is the
transfer: kv_bytes = 2 * layers * kv_heads * head_dim * bytes * prompt_tokens
(`memlab.footprint.kv_cache_bytes`), at the link's bandwidth.

Transports, in the order the lab meets them:
  1. "gloo": torch.distributed send/recv over TCP loopback (NCCL on GPUs, RDMA in clusters).
  2. "shm":  a POSIX shared-memory block (/dev/shm): one copy in, one copy out.
  3. "file": one safetensors file per request, as vLLM's example KV connector does it
             (here the file most likely stays in the page cache: it is a memory copy plus syscalls).

Timing: perf_counter is CLOCK_MONOTONIC on Linux, one clock for both processes, so a time
stamped on rank 0 and one stamped on rank 1 subtract directly. TTFT = prompt handed to the
prefill worker -> first token there. TPOT = (last token on the decode worker - first token) / (n - 1),
so the split's TPOT carries the transfer, as a user would see it.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import torch
import torch.distributed as dist

TRANSPORTS = ("gloo", "shm", "file")


@dataclass(frozen=True, slots=True)
class SplitResult:
    """One prompt served colocated (one process) and split (prefill rank 0 -> decode rank 1)."""

    model_name: str
    prompt_tokens: int
    new_tokens: int
    tokens_match: bool                 # split tokens == single-process memlab.generation tokens
    token_ids: tuple[int, ...]         # the split run's new tokens
    kv_bytes: int                      # sum of the K and V tensors' nbytes actually sent
    kv_bytes_predicted: int            # memlab.footprint.kv_cache_bytes(config, prompt_tokens)
    transfer_s: float                  # gloo: first token on rank 0 -> cache rebuilt on rank 1
    transfer_bytes_per_s: float
    shm_transfer_s: float
    file_transfer_s: float
    split_ttft_s: float
    split_tpot_s: float                # includes the transfer
    split_decode_tpot_s: float         # decode steps only, on rank 1
    colocated_ttft_s: float
    colocated_tpot_s: float


def prompt_ids(tokenizer, num_tokens: int) -> list[int]:
    """Exactly `num_tokens` ids cut from Python's own docs (pydoc_data, always installed)."""
    from pydoc_data.topics import topics
    text = " ".join(topics[k] for k in sorted(topics))
    ids = tokenizer(text[: num_tokens * 8 + 64], add_special_tokens=False)["input_ids"]
    while len(ids) < num_tokens:
        ids = ids + ids
    return list(ids[:num_tokens])


def kv_tensors(cache) -> list[torch.Tensor]:
    """The cache as a flat list [K0, V0, K1, V1, ...], each (B, kv_heads, T, head_dim)."""
    out = []
    for layer in cache.layers:
        out += [layer.keys, layer.values]
    return out


def cache_from(tensors: list[torch.Tensor], model):
    """A DynamicCache holding the received K/V tensors, ready for decode_step."""
    from memlab import generation
    cache = generation.new_cache(model)
    for i in range(0, len(tensors), 2):
        cache.update(tensors[i], tensors[i + 1], i // 2)
    return cache


def _shapes(cache) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in kv_tensors(cache)]


def pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """All K/V tensors in one flat buffer: one message instead of 2 x layers (each costs a round trip)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unpack(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    out, off = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(flat[off:off + n].view(s))
        off += n
    return out


def _send_gloo(tensors, dst):
    dist.send(pack(tensors), dst)


def _recv_gloo(shapes, dtype, src):
    flat = torch.empty(sum(math.prod(s) for s in shapes), dtype=dtype)
    dist.recv(flat, src)
    return unpack(flat, shapes)


def _write_shm(tensors, name):
    total = sum(t.nbytes for t in tensors)
    shm = shared_memory.SharedMemory(name=name, create=True, size=total)
    buf = torch.frombuffer(shm.buf, dtype=torch.uint8, count=total)
    off = 0
    for t in tensors:
        buf[off:off + t.nbytes].copy_(t.contiguous().view(-1).view(torch.uint8))
        off += t.nbytes
    del buf
    return shm


def _read_shm(shapes, dtype, name):
    shm = shared_memory.SharedMemory(name=name)
    out, off = [], 0
    size = torch.empty((), dtype=dtype).element_size()
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        out.append(torch.frombuffer(shm.buf, dtype=dtype, count=n, offset=off).clone().view(s))
        off += n * size
    shm.close()
    return out


def _notify(value: float, dst: int):
    dist.send(torch.tensor([value], dtype=torch.float64), dst)


def _wait(src: int) -> float:
    t = torch.zeros(1, dtype=torch.float64)
    dist.recv(t, src)
    return float(t.item())


def _send_kv(cache, first: int, t_first: float, dst: int):
    """Header (first token, shapes, rank 0's first-token time), then every K and V tensor."""
    shapes = _shapes(cache)
    header = torch.tensor([first, len(shapes)] + [d for s in shapes for d in s], dtype=torch.long)
    dist.send(torch.tensor([header.numel()], dtype=torch.long), dst)
    dist.send(header, dst)
    _notify(t_first, dst)
    _send_gloo(kv_tensors(cache), dst)


def _recv_kv(dtype, src: int):
    size = torch.zeros(1, dtype=torch.long)
    dist.recv(size, src)
    header = torch.zeros(int(size.item()), dtype=torch.long)
    dist.recv(header, src)
    first, num, dims = int(header[0]), int(header[1]), header[2:].tolist()
    shapes = [tuple(dims[4 * i:4 * i + 4]) for i in range(num)]
    t_first = _wait(src)
    return first, t_first, shapes, _recv_gloo(shapes, dtype, src)


def _other_transports_send(tensors, name: str, path: Path, dst: int):
    """shm then file: stamp, write, tell the reader when writing started; clean up after it read."""
    dist.barrier()
    t_w = time.perf_counter()
    shm = _write_shm(tensors, name)
    _notify(t_w, dst)
    dist.barrier()
    shm.close()
    shm.unlink()
    from safetensors.torch import save_file
    t_w = time.perf_counter()
    save_file({str(i): t.contiguous() for i, t in enumerate(tensors)}, str(path))
    _notify(t_w, dst)
    dist.barrier()
    path.unlink()


def _other_transports_recv(shapes, dtype, name: str, path: Path, src: int) -> tuple[float, float]:
    dist.barrier()
    t_w = _wait(src)
    got = _read_shm(shapes, dtype, name)
    shm_s = time.perf_counter() - t_w
    dist.barrier()
    from safetensors.torch import load_file
    t_w = _wait(src)
    file = load_file(str(path))
    got = [file[str(i)] for i in range(len(shapes))]
    file_s = time.perf_counter() - t_w
    dist.barrier()
    del got
    return shm_s, file_s


def _split_worker(rank, world_size, model_name, lengths, max_new_tokens, tag, folder):
    """Rank 0: colocated reference, then prefill + send; rank 1: receive + decode."""
    from memlab import footprint, generation, loading
    torch.set_num_threads(1)
    loaded = loading.load(model_name)
    model, peer = loaded.model, 1 - rank
    dtype = next(model.parameters()).dtype
    results = []
    with torch.inference_mode():
        generation.prefill(model, torch.tensor([[1, 2, 3, 4]]), generation.new_cache(model))  # warm up
        for n in lengths:
            name, path = f"memlab_kv_{tag}_{n}", Path(folder) / f"kv_{n}.safetensors"
            if rank == 0:
                ids = prompt_ids(loaded.tokenizer, n)
                colo = generation.generate(loaded, ids, max_new_tokens=max_new_tokens, stop_at_eos=False)
                dist.barrier()
                t_start = time.perf_counter()
                cache = generation.new_cache(model)
                first = int(generation.prefill(model, torch.tensor([ids]), cache)[0].argmax())
                t_first = time.perf_counter()
                _send_kv(cache, first, t_first, peer)
                _other_transports_send(kv_tensors(cache), name, path, peer)
                box = [None]
                dist.broadcast_object_list(box, src=1)
                rec = box[0]
                gaps = max(1, max_new_tokens - 1)
                transfer_s = rec["t_rebuilt"] - t_first
                results.append(SplitResult(
                    str(model_name), n, max_new_tokens,
                    tuple(rec["tokens"]) == tuple(colo.token_ids)[-max_new_tokens:],
                    tuple(rec["tokens"]), rec["kv_bytes"],
                    footprint.kv_cache_bytes(loaded.config, n, dtype=dtype),
                    transfer_s, rec["kv_bytes"] / transfer_s, rec["shm_s"], rec["file_s"],
                    t_first - t_start, (rec["t_last"] - t_first) / gaps, rec["decode_s"] / gaps,
                    colo.ttft_s, colo.tpot_s))
            else:
                dist.barrier()
                first, t_first, shapes, tensors = _recv_kv(dtype, peer)
                cache = cache_from(tensors, model)
                t_rebuilt = time.perf_counter()
                tokens = [first]
                for _ in range(max_new_tokens - 1):
                    logits = generation.decode_step(model, torch.tensor([[tokens[-1]]]), cache)
                    tokens.append(int(logits[0].argmax()))
                t_last = time.perf_counter()
                shm_s, file_s = _other_transports_recv(shapes, dtype, name, path, peer)
                dist.broadcast_object_list([{
                    "tokens": tokens, "kv_bytes": sum(t.nbytes for t in tensors), "t_rebuilt": t_rebuilt,
                    "t_last": t_last, "decode_s": t_last - t_rebuilt, "shm_s": shm_s, "file_s": file_s}], src=1)
    return results if rank == 0 else None


def run_split(model: str = "smollm2-135m", prompt_tokens=(64, 256), max_new_tokens: int = 16,
              timeout_s: float = 600) -> tuple[SplitResult, ...]:
    """Serve each prompt length colocated and split across two real processes (gloo on CPU)."""
    from memlab import launch
    lengths = (prompt_tokens,) if isinstance(prompt_tokens, int) else tuple(prompt_tokens)
    if max_new_tokens < 2:
        raise ValueError("max_new_tokens must be >= 2: the decode worker makes tokens 2..n")
    with tempfile.TemporaryDirectory(prefix="memlab_kv_") as folder:
        out = launch.run_workers(_split_worker, world_size=2, timeout_s=timeout_s,
                                 args=(str(model), lengths, max_new_tokens, os.getpid(), folder))
    return tuple(out[0])


# ---- a stream of requests through one prefill worker and one decode worker (for validation) ----

def _serve_prefill(loaded, trace, peer: int) -> list[dict]:
    """Rank 0: wait for each arrival, prefill, hand the KV to the decode rank without blocking."""
    from memlab import generation
    model, rows, pending = loaded.model, [], []
    prompts = [prompt_ids(loaded.tokenizer, r.prompt_tokens) for r in trace]   # tokenized beforehand
    dist.barrier()
    t0 = time.perf_counter()
    _notify(t0, peer)
    for spec, ids in zip(trace, prompts):
        delay = t0 + spec.arrived_at_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        started, cpu_started = time.perf_counter(), time.thread_time()
        cache = generation.new_cache(model)
        first = int(generation.prefill(model, torch.tensor([ids]), cache)[0].argmax())
        t_first, cpu_s = time.perf_counter(), time.thread_time() - cpu_started
        shapes = _shapes(cache)
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


def _serve_decode(loaded, trace, peer: int) -> list[dict]:
    """Rank 1: take requests in arrival order, one at a time, and decode each to its last token."""
    from memlab import generation
    model, rows = loaded.model, []
    dtype = next(model.parameters()).dtype
    dist.barrier()
    t0 = _wait(peer)
    for spec in trace:
        free_at = time.perf_counter()
        size = torch.zeros(1, dtype=torch.long)
        dist.recv(size, peer)
        header = torch.zeros(int(size.item()), dtype=torch.long)
        dist.recv(header, peer)
        first, num, n_out, dims = int(header[0]), int(header[1]), int(header[2]), header[3:].tolist()
        t_first = _wait(peer)
        tensors = _recv_gloo([tuple(dims[4 * i:4 * i + 4]) for i in range(num)], dtype, peer)
        cache = cache_from(tensors, model)
        landed = time.perf_counter()
        token = first
        for _ in range(n_out - 1):
            token = int(generation.decode_step(model, torch.tensor([[token]]), cache)[0].argmax())
        rows.append({"transfer_started_at_s": max(free_at, t_first) - t0, "transfer_ended_at_s": landed - t0,
                     "finished_at_s": time.perf_counter() - t0, "kv_bytes": sum(t.nbytes for t in tensors)})
    return rows


def serve_rows(rank: int, loaded, trace) -> list[dict]:
    """Run the trace on this rank (0 prefills, 1 decodes); timestamps relative to rank 0's start."""
    with torch.inference_mode():
        return _serve_prefill(loaded, trace, 1) if rank == 0 else _serve_decode(loaded, trace, 0)


def to_records(trace, prefill_rows, decode_rows):
    """Merge both ranks' timestamps into the simulator's RequestRecord, so real and simulated compare."""
    from memlab.simulator import RequestRecord
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


def _serve_worker(rank, world_size, model_name, trace):
    from memlab import generation, loading
    torch.set_num_threads(1)
    loaded = loading.load(model_name)
    with torch.inference_mode():
        generation.prefill(loaded.model, torch.tensor([[1, 2, 3, 4]]), generation.new_cache(loaded.model))
    return serve_rows(rank, loaded, trace)


def serve_trace(model: str, trace, timeout_s: float = 600):
    """Serve a request trace (simulator RequestSpecs) for real: rank 0 prefills, rank 1 decodes."""
    from memlab import launch
    trace = tuple(sorted(trace, key=lambda r: r.arrived_at_s))
    rows = launch.run_workers(_serve_worker, world_size=2, timeout_s=timeout_s, args=(str(model), trace))
    return to_records(trace, rows[0], rows[1])
