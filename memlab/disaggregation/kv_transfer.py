"""The KV cache in flight: how prefill hands its cache to decode (lab 07).

A transformers cache becomes one flat tensor (`memlab.core.kv.pack`) plus its shapes, and comes
back (`unpack`, `cache_from`). Transports, in the order the lab compares them:
  gloo  torch.distributed send/recv between the two processes (what a cluster would use)
  shm   a POSIX shared-memory block both processes map (one copy in, one copy out)
  file  a file in the cache folder (written, fsynced, read back)
`send_kv`/`recv_kv` carry the first token, its timestamp and the cache in one handoff.
"""

from __future__ import annotations

import math
import os
import time
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import torch
import torch.distributed as dist

from memlab.core import launch
from memlab.core.kv import cache_bytes, cache_from, kv_tensors, pack, unpack  # noqa: F401  (one implementation, in the core: lab 09 uses it too)

TRANSPORTS = ("gloo", "shm", "file")


def kv_shapes(cache) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in kv_tensors(cache)]


def send_gloo(tensors, dst):
    dist.send(pack(tensors), dst)


def recv_gloo(shapes, dtype, src):
    flat = torch.empty(sum(math.prod(s) for s in shapes), dtype=dtype)
    dist.recv(flat, src)
    return unpack(flat, shapes)


def write_shm(tensors, name):
    total = cache_bytes(tensors)
    shm = shared_memory.SharedMemory(name=name, create=True, size=total)
    buf = torch.frombuffer(shm.buf, dtype=torch.uint8, count=total)
    off = 0
    for t in tensors:
        buf[off:off + t.nbytes].copy_(t.contiguous().view(-1).view(torch.uint8))
        off += t.nbytes
    del buf
    return shm


def read_shm(shapes, dtype, name):
    shm = shared_memory.SharedMemory(name=name)
    if os.name == "posix" and not launch.spawned_here():  # the writer unlinks it; a reader that torchrun started has
        resource_tracker.unregister("/" + name, "shared_memory")  # a tracker of its own, which would warn at exit
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


def send_scalar(value: float, dst: int):
    dist.send(torch.tensor([value], dtype=torch.float64), dst)


def recv_scalar(src: int) -> float:
    t = torch.zeros(1, dtype=torch.float64)
    dist.recv(t, src)
    return float(t.item())


def send_kv(cache, first: int, t_first: float, dst: int):
    """Header (first token, shapes, rank 0's first-token time), then every K and V tensor."""
    shapes = kv_shapes(cache)
    header = torch.tensor([first, len(shapes)] + [d for s in shapes for d in s], dtype=torch.long)
    dist.send(torch.tensor([header.numel()], dtype=torch.long), dst)
    dist.send(header, dst)
    send_scalar(t_first, dst)
    send_gloo(kv_tensors(cache), dst)


def recv_kv(dtype, src: int):
    size = torch.zeros(1, dtype=torch.long)
    dist.recv(size, src)
    header = torch.zeros(int(size.item()), dtype=torch.long)
    dist.recv(header, src)
    first, num, dims = int(header[0]), int(header[1]), header[2:].tolist()
    shapes = [tuple(dims[4 * i:4 * i + 4]) for i in range(num)]
    t_first = recv_scalar(src)
    return first, t_first, shapes, recv_gloo(shapes, dtype, src)


def send_other_transports(tensors, name: str, path: Path, dst: int):
    """shm then file: stamp, write, tell the reader when writing started; clean up after it read."""
    dist.barrier()
    t_w = time.perf_counter()
    shm = write_shm(tensors, name)
    send_scalar(t_w, dst)
    dist.barrier()
    shm.close()
    shm.unlink()
    from safetensors.torch import save_file
    t_w = time.perf_counter()
    save_file({str(i): t.contiguous() for i, t in enumerate(tensors)}, str(path))
    send_scalar(t_w, dst)
    dist.barrier()
    path.unlink()


def recv_other_transports(shapes, dtype, name: str, path: Path, src: int) -> tuple[float, float]:
    dist.barrier()
    t_w = recv_scalar(src)
    got = read_shm(shapes, dtype, name)
    shm_s = time.perf_counter() - t_w
    dist.barrier()
    from safetensors.torch import load_file
    t_w = recv_scalar(src)
    file = load_file(str(path))
    got = [file[str(i)] for i in range(len(shapes))]
    file_s = time.perf_counter() - t_w
    dist.barrier()
    del got
    return shm_s, file_s


def time_wire(rank: int, peer: int, tensors, dtype, repeats: int, offset: float = 0.0) -> list[float]:
    """`repeats` gloo sends of one packed cache alone (no header, no rebuild), for the link's rate.

    Each runs from rank 0's clock just before the send to rank 1's (moved by `offset`) when the
    last byte has arrived; the seconds, on rank 0 (rank 1 passes the tensors it received).
    """
    flat = pack(tensors) if rank == 0 else torch.empty(cache_bytes(tensors) // dtype.itemsize, dtype=dtype)
    times = []
    for _ in range(repeats):
        dist.barrier()
        if rank == 0:
            t0 = time.perf_counter()
            dist.send(flat, peer)
            box = [None]
            dist.broadcast_object_list(box, src=1)
            times.append(box[0] - t0)
        else:
            dist.recv(flat, peer)
            dist.broadcast_object_list([time.perf_counter() - offset], src=1)
    return times
