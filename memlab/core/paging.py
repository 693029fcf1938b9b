"""Weights that stay on disk: map them, or stream one decoder layer at a time (lab 02).

The machinery behind `loading.load_mmap` and the `paged` strategies, simplest first:

1. `checkpoint.read_header`: where each tensor sits in a safetensors file (8-byte length, JSON, raw bytes).
2. `checkpoint.map_checkpoint`: every tensor a view into one private mmap of the file; nothing is read
   until a page is touched (what gpt-fast does with `torch.load(mmap=True)` + `assign=True`).
3. `LayerStreamer(prefetch=False)`: each decoder layer's parameters hold empty tensors; a forward
   pre-hook reads a decoder layer's bytes with `pread` right before the layer runs, and a
   forward hook drops them afterwards (AirLLM, "LLM in a flash"). Per token, all layers are read.
4. `LayerStreamer(prefetch=True)`: a background thread reads layer i+1 while layer i computes,
   so disk time hides behind compute: time per token ~ max(read, compute) instead of the sum.
   The reader gets a core of its own (`reserve_core_for_reads`), and reads go into two reused
   buffers rather than fresh memory.
5. `bigger_than_ram=True`: after a layer runs, its file range is evicted from the page cache
   (`posix_fadvise DONTNEED`), so the next token reads it from disk again, as it would when the
   model is larger than the page cache. Without it the page cache quietly makes paging look free.

Reads use `os.preadv` into anonymous memory (not mmap), so the pages are never mapped by this
process and eviction works (the kernel cannot drop pages a process has mapped).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from memlab.core.checkpoint import TensorEntry, entries_bytes, evict_range, read_tensors
from memlab.core.errors import MemlabError


@dataclass(frozen=True, slots=True)
class PagingStats:
    """What streaming cost so far: layer reads, bytes, and seconds spent waiting for them."""

    num_layer_reads: int
    read_bytes: int
    read_s: float       # time inside pread (on the reader thread when prefetching)
    wait_s: float       # time the forward pass stood still waiting for weights
    prefetch: bool
    bigger_than_ram: bool


def layer_stack(model, layer_prefix: str = "model.layers"):
    """The ModuleList of decoder layers whose weights are named `<layer_prefix>.<i>.*`."""
    return model.get_submodule(layer_prefix)


class LayerStreamer:
    """Hooks that give each decoder layer its weights just in time and take them away after.

    `layers` are modules of a skeleton (on the meta device; their parameters become empty tensors);
    `entries[i]` maps layer i's parameter names (relative to the layer) to their place in the
    checkpoint at `path`.
    """

    def __init__(self, layers, entries: dict[int, dict[str, TensorEntry]], path: str | Path,
                 device: str | torch.device = "cpu", prefetch: bool = False,
                 bigger_than_ram: bool = False):
        self.layers = list(layers)
        self.entries = entries
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.bigger_than_ram = bigger_than_ram
        self.fd = os.open(path, os.O_RDONLY)
        if bigger_than_ram:
            # start cold: dirty pages cannot be evicted, and the large folios a fresh write leaves
            # would survive a range eviction that covers them only in part
            os.fsync(self.fd)
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            # no kernel readahead: it would pull the next layer into the cache behind our back
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="memlab-prefetch") if prefetch else None
        # Two reusable read buffers, taken in turn (read k -> buffer k % 2): when read k starts, the
        # layer that used read k-2 has run and dropped its weights. Reusing them saves a zero-filled
        # page fault per 4 KiB and an munmap per layer (which also stalls the compute threads).
        size = max(entries_bytes(e) for e in entries.values())
        with torch.inference_mode(False):  # normal tensors: a model loaded under inference_mode still runs outside it
            self._buffers = [torch.empty(size, dtype=torch.uint8) for _ in range(2)]
        self._num_issued = 0
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._reads = self._bytes = 0
        self._read_s = self._wait_s = 0.0
        # Each layer's parameters become empty CPU (or device) tensors whose storage a hook swaps in and
        # out: `param.data = tensor` costs microseconds, where load_state_dict + to("meta") per layer
        # measured about 0.6 ms (a fifth of a 135M model's warm paged step, on 30 layers).
        with torch.inference_mode(False):
            self._empty = torch.empty(0, device=self.device)
            self._params = [self._bind(layer, entries[i]) for i, layer in enumerate(self.layers)]
        self._handles = []
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_pre_hook(self.make_pre_hook(i)))
            self._handles.append(layer.register_forward_hook(self.make_post_hook(i)))

    def _bind(self, layer, names) -> list[tuple[str, torch.nn.Parameter]]:
        """Give layer's parameters named in the checkpoint `names` empty storage; (name, parameter) pairs."""
        bound = []
        for name in names:
            owner, _, attr = name.rpartition(".")
            module = layer.get_submodule(owner) if owner else layer
            if attr not in module._parameters:
                raise MemlabError(f"{name!r} is not a parameter of the decoder layer: it cannot be streamed")
            module._parameters[attr] = p = torch.nn.Parameter(self._empty, requires_grad=False)
            bound.append((name, p))
        return bound

    def _issue(self, i: int):
        """Start reading layer i into the next buffer: in the background with prefetch, else now."""
        buffer = self._buffers[self._num_issued % 2]
        self._num_issued += 1
        if self._pool is not None:
            return self._pool.submit(self._read, i, buffer)
        return self._read(i, buffer)

    def _read(self, i: int, buffer: torch.Tensor) -> dict[str, torch.Tensor]:
        t0 = time.perf_counter()
        with torch.inference_mode(False):  # views of the buffers, read in and out of inference mode alike
            tensors = read_tensors(self.fd, self.entries[i], into=buffer)
            if self.device.type != "cpu":  # a blocking copy: the buffer is reused two reads later
                tensors = {k: v.to(self.device) for k, v in tensors.items()}
        with self._lock:
            self._reads += 1
            self._bytes += entries_bytes(self.entries[i])
            self._read_s += time.perf_counter() - t0
        return tensors

    def make_pre_hook(self, i: int):
        def pre_hook(module, args):
            t0 = time.perf_counter()
            fut = self._pending.pop(i, None)
            if fut is None and self._pending:  # out of order (an interrupted pass): start afresh
                for f in self._pending.values():
                    f.result()
                self._pending.clear()
            if fut is None:
                fut = self._issue(i)
            tensors = fut.result() if self._pool is not None else fut
            self._wait_s += time.perf_counter() - t0
            for name, p in self._params[i]:
                p.data = tensors[name]
            if self._pool is not None:  # next layer, wrapping to layer 0 for the next token
                nxt = (i + 1) % len(self.layers)
                self._pending[nxt] = self._issue(nxt)
        return pre_hook

    def make_post_hook(self, i: int):
        def post_hook(module, args, output):
            for _, p in self._params[i]:  # drop the weights: this layer holds no memory until next use
                p.data = self._empty
            if self.bigger_than_ram:
                evict_range(self.fd, self.entries[i])
            return output
        return post_hook

    def stats(self) -> PagingStats:
        """Counters since creation (or the last `reset_stats`)."""
        return PagingStats(self._reads, self._bytes, self._read_s, self._wait_s,
                           self.prefetch, self.bigger_than_ram)

    def reset_stats(self) -> None:
        with self._lock:
            self._reads = self._bytes = 0
            self._read_s = self._wait_s = 0.0

    def close(self) -> None:
        """Remove the hooks, stop the prefetch thread, close the file."""
        for h in self._handles:
            h.remove()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pending.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def reserve_core_for_reads(model, threads: int | None = None) -> list:
    """While `model` runs forward, torch computes on `threads` threads (default: all cores but one).

    The prefetch thread needs a core of its own: torch's CPU kernels split every matmul across
    all cores and wait for the slowest part, so a reader that takes a core from one of them stalls
    every kernel (measured on 2 cores: prefetch then ran slower than no prefetch at all).
    Returns the hook handles; the previous thread count is restored after each forward.
    """
    n = threads or max(1, (os.cpu_count() or 1) - 1)
    saved = []

    def pre(module, args):
        saved.append(torch.get_num_threads())
        torch.set_num_threads(n)

    def post(module, args, output):
        torch.set_num_threads(saved.pop())
        return output

    return [model.register_forward_pre_hook(pre), model.register_forward_hook(post)]
