"""Where a prefix's KV cache can live, and how it gets back into the model (lab 09).

A shared prefix (a system prompt, a document, the earlier turns of a chat) has the same keys and
values in every request that starts with it. The ways to have them ready, in the order lab 09
compares them:
  recompute  prefill the prefix again (costs FLOPs: about 2 x params x P, plus attention)
  ram        held in the memory the model runs in (RAM on a CPU, VRAM on a GPU): one copy
  disk-cold  a file on disk, its pages evicted from the page cache first (and checked): a read
  disk-warm  the same file, its pages still in the page cache: a read from RAM
  pinned     (CUDA only) held in pinned host memory: one host->device copy over PCIe
The file holds the packed K/V tensors and nothing else (`memlab.core.kv.pack`): its size is the
footprint formula's KV bytes, exactly. Shapes: K KV heads, P prefix tokens, D head dim.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from memlab.core import generation, kv, pagecache, paths
from memlab.core.errors import InvalidArgumentError

WAYS = ("recompute", "ram", "disk-cold", "disk-warm", "pinned")


@dataclass(frozen=True, slots=True)
class Prefix:
    """A prefix and its KV cache, computed once and held where the model runs."""

    token_ids: tuple            # the P prefix tokens
    tensors: tuple              # [K0, V0, K1, V1, ...], each (1, K, P, D), on the model's device
    shapes: tuple               # their shapes, to rebuild them from a flat buffer
    dtype: torch.dtype
    num_bytes: int              # bytes the tensors hold (sum of nbytes)


@torch.inference_mode()
def compute_prefix(loaded, token_ids) -> Prefix:
    """Prefill the prefix once and keep its K/V tensors."""
    cache = generation.new_cache(loaded.model)
    generation.prefill(loaded.model, torch.tensor([list(token_ids)], device=loaded.device), cache)  # (1, P)
    tensors = tuple(kv.kv_tensors(cache))
    return Prefix(tuple(token_ids), tensors, tuple(tuple(t.shape) for t in tensors), tensors[0].dtype,
                  kv.cache_bytes(list(tensors)))


def save(prefix: Prefix, path: str | Path) -> int:
    """Write the packed K/V tensors to `path` (whole or not at all); returns the file's bytes."""
    flat = kv.pack([t.cpu() for t in prefix.tensors]).contiguous()
    raw = flat.view(torch.uint8).numpy()

    def write(f):
        f.write(memoryview(raw))
        f.flush()
        os.fsync(f.fileno())  # on disk before anyone evicts it: dirty pages cannot be dropped
    paths.write_atomic(path, write=write)
    return os.path.getsize(path)


def read_file(path: str | Path, prefix: Prefix, device) -> list[torch.Tensor]:
    """The K/V tensors from `path`: one sequential read into a buffer (as the disk probe reads),
    then views of it, moved to `device` when that is a GPU."""
    size = os.path.getsize(path)
    buf = torch.empty(size, dtype=torch.uint8)
    view = memoryview(buf.numpy())
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < size:  # a single read may return less than asked
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
    tensors = kv.unpack(buf.view(prefix.dtype), prefix.shapes)
    if torch.device(device).type != "cpu":
        tensors = [t.to(device) for t in tensors]
    return tensors


def pin(prefix: Prefix) -> list[torch.Tensor]:
    """Copies of the K/V tensors in pinned (page-locked) host memory, for fast host->device copies."""
    return [t.cpu().pin_memory() for t in prefix.tensors]


def prepare(way: str, path: str | Path | None) -> float:
    """Untimed set-up before a restore: evict the file (cold) or read it once (warm). Returns the
    page-cache residency of the file just before the restore (mincore), nan without a file."""
    if way == "disk-cold":
        pagecache.evict(path)
    elif way == "disk-warm":
        pagecache.measure_read_rate(path, cold=False)  # reading it is what makes it warm
    return pagecache.resident_fraction(path) if way.startswith("disk") else float("nan")


@torch.inference_mode()
def restore(way: str, loaded, prefix: Prefix, path: str | Path | None = None, pinned=None):
    """A KV cache holding the prefix, ready for the suffix's prefill: the part of TTFT that a tier
    decides (recompute: a prefill of the prefix)."""
    if way == "recompute":
        cache = generation.new_cache(loaded.model)
        generation.prefill(loaded.model, torch.tensor([list(prefix.token_ids)], device=loaded.device), cache)
        return cache
    if way == "ram":
        return kv.cache_from(list(prefix.tensors), loaded.model)
    if way in ("disk-cold", "disk-warm"):
        return kv.cache_from(read_file(path, prefix, loaded.device), loaded.model)
    if way == "pinned":
        tensors = [t.to(loaded.device, non_blocking=True) for t in pinned]
        return kv.cache_from(tensors, loaded.model)
    raise InvalidArgumentError(f"unknown way {way!r}; one of {', '.join(WAYS)}")
