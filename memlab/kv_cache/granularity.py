"""KV transfers at the right granularity: restore a prefix's cache block by block (lab 09).

An offload store (vLLM's KV connector, LMCache, Dynamo) moves a cache in blocks of `block_tokens`
tokens, and the size of a block decides whether offload pays. Two layouts of one block:
  per-layer   one layer's K and V for those tokens (what a paged cache holds per layer):
              2 x K x D x bytes x block_tokens (SmolLM2-135M fp32: 1.5 KiB per token)
  contiguous  every layer's K and V for those tokens, stored adjacent: L times larger, one transfer
The tiers a block comes back from, each block one transfer into the model's cache tensors (on one
thread, as one memcpy: torch would split a copy of 32 Ki elements or more across threads, and on
a shared machine waking the second thread can cost more than the copy):
  ram                   one copy from a host buffer
  disk-warm             one `os.preadv` from a pool file whose pages are cached, then one copy
  disk-cold             the same after evicting the file (checked): blocks sit in shuffled slots of
                        the pool, read with POSIX_FADV_RANDOM, so each read pays the device's latency
  disk-cold-sequential  the same cold file read in slot order: the kernel's readahead hides the latency
Each point also times a recompute of the same prefix (a prefill), and `blockfit` fits each tier's
latency per transfer and rate from the sweep.
Shapes: L layers, K KV heads, P prefix tokens, D head dim; the cache is one (L, 2, 1, K, P, D) tensor.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from memlab.core import generation, kv, limits, models, paths
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import card
from memlab.core.measure import summarize, torch_threads
from memlab.core.text import prompt_ids
from memlab.kv_cache import tiers

LAYOUTS = ("per-layer", "contiguous")
TIERS = ("ram", "disk-warm", "disk-cold", "disk-cold-sequential")
_PAGE = 4096  # slots start on a page, as an O_DIRECT store's do: a block never shares a page with another


@dataclass(frozen=True, slots=True)
class GranularityConfig:
    """One block-size sweep (full-run defaults; `quick()` for tests and quick labs)."""

    prefix_tokens: tuple = (256, 1024)             # two lengths or more: the fit needs both terms
    block_tokens: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    layouts: tuple = LAYOUTS
    tiers: tuple = TIERS
    repeats: int = 3                               # timed restores per point (median)
    suffix_tokens: int = 8                         # the question asked over a restored cache
    new_tokens: int = 4                            # tokens generated to compare with the resident cache
    seed: int = 0                                  # the pool's slot shuffle
    measure_recompute: bool = True                 # False: recompute_s is nan (a point added to a sweep)
    folder: str | None = None                      # where the pool files go (default: memlab cache/kv_cache)

    def __post_init__(self):
        for name in ("prefix_tokens", "block_tokens"):
            if not getattr(self, name):
                raise InvalidArgumentError(f"{name} needs at least one value")
            for n in getattr(self, name):
                limits.count(n, name)
        bad = [x for x in self.layouts if x not in LAYOUTS] + [x for x in self.tiers if x not in TIERS]
        if bad or not self.layouts or not self.tiers:
            raise InvalidArgumentError(f"unknown layout(s) or tier(s) {bad}: layouts {', '.join(LAYOUTS)}; "
                                       f"tiers {', '.join(TIERS)}")
        for name in ("repeats", "suffix_tokens", "new_tokens"):
            limits.count(getattr(self, name), name)

    @classmethod
    def quick(cls, **kw) -> "GranularityConfig":
        return cls(**{**dict(prefix_tokens=(16, 128), block_tokens=(1, 4, 16, 64), repeats=3, suffix_tokens=4,
                             new_tokens=2), **kw})


@dataclass(frozen=True, slots=True)
class BlockRestore:
    """Restoring one prefix from one tier in blocks of one size and layout: medians over repeats."""

    tier: str                    # TIERS
    layout: str                  # LAYOUTS
    prefix_tokens: int           # P
    block_tokens: int
    block_bytes: int             # bytes one transfer moves (a full block)
    num_transfers: int           # ceil(P / block_tokens), times L for per-layer blocks
    num_bytes: int               # the prefix's KV bytes: every transfer together
    restore_s: float             # all transfers into the model's cache tensors, median
    restore_best_s: float        # the fastest repeat: the least disturbed by other work (what the fit uses)
    restore_runs_s: tuple
    recompute_s: float           # a prefill of the same prefix, measured in the same run (median; nan: not measured)
    recompute_best_s: float      # its fastest repeat
    page_cache_before: tuple     # disk tiers: resident fraction of the pool file before each restore
    same_bytes: bool             # the restored cache equals the resident one, bit for bit
    same_tokens: bool | None     # greedy tokens over it equal the resident cache's (smallest block and prefix; else None)
    host: str = field(default="")


def block_spans(num_layers: int, prefix_tokens: int, block_tokens: int, layout: str) -> list[tuple]:
    """The transfers of one restore, in block-table order: (layer or None for all layers, t0, t1)."""
    starts = range(0, prefix_tokens, block_tokens)
    spans = [(None, t, min(t + block_tokens, prefix_tokens)) for t in starts]
    if layout == "contiguous":
        return spans
    return [(layer, t0, t1) for _, t0, t1 in spans for layer in range(num_layers)]


def _view(cache: torch.Tensor, span) -> torch.Tensor:
    layer, t0, t1 = span
    return (cache if layer is None else cache[layer])[..., t0:t1, :]  # (L?, 2, 1, K, t, D)


class Pool:
    """A prefix's blocks in a store: a host buffer (ram) and a file (disk) of page-aligned slots,
    the blocks placed in shuffled slots (other requests' blocks would sit between them)."""

    def __init__(self, resident: torch.Tensor, layout: str, block_tokens: int, path: Path, seed: int = 0):
        self.spans = block_spans(resident.shape[0], resident.shape[-2], block_tokens, layout)
        blocks = [_view(resident, s).contiguous() for s in self.spans]
        self.max_bytes = max(b.nbytes for b in blocks)
        slot = -(-self.max_bytes // _PAGE) * _PAGE
        slots = list(range(len(blocks)))
        random.Random(seed).shuffle(slots)
        self.offsets = [i * slot for i in slots]     # block j lives at offsets[j]
        flat = torch.zeros(slot * len(blocks), dtype=torch.uint8)
        for b, off in zip(blocks, self.offsets):
            flat[off:off + b.nbytes] = b.reshape(-1).view(torch.uint8)
        self.host = [flat[o:o + b.nbytes].view(resident.dtype).view(b.shape) for b, o in zip(blocks, self.offsets)]
        self.sizes = [b.nbytes for b in blocks]
        self.path = Path(path)
        raw = memoryview(flat.numpy())

        def write(f):
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # on disk before anyone evicts it: dirty pages cannot be dropped
        paths.write_atomic(self.path, write=write)

    def restore(self, tier: str, cache: torch.Tensor) -> None:
        """Every block into its place in `cache` (L, 2, 1, K, P, D): one transfer per block."""
        dests = [_view(cache, s) for s in self.spans]  # the block table: where each block goes
        if tier == "ram":
            for d, h in zip(dests, self.host):
                d.copy_(h)
            return
        staging = torch.empty(self.max_bytes, dtype=torch.uint8)
        mv = memoryview(staging.numpy())
        order = range(len(dests))
        if tier == "disk-cold-sequential":
            order = sorted(order, key=lambda j: self.offsets[j])
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if tier != "disk-cold-sequential" and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # a scattered store: no readahead
            for j in order:
                n, d = self.sizes[j], dests[j]
                if os.preadv(fd, [mv[:n]], self.offsets[j]) != n:
                    raise OSError(f"short read from {self.path}")
                d.copy_(staging[:n].view(cache.dtype).view(d.shape))
        finally:
            os.close(fd)


def prepare(tier: str, path: Path) -> float:
    """Untimed, before a restore: the block pool's tiers are the prefix tiers' (`tiers.prepare`: evict the
    file, or read it whole), a cold tier whatever its read order; the resident fraction just before."""
    return tiers.prepare("disk-cold" if tier.startswith("disk-cold") else tier, path)


def greedy_tokens(loaded, cache: torch.Tensor, suffix_ids: list[int], new_tokens: int) -> list[int]:
    """Greedy tokens after the suffix, over a cache built from the (L, 2, 1, K, P, D) tensor."""
    tensors = [cache[layer, i] for layer in range(cache.shape[0]) for i in (0, 1)]
    dc = kv.cache_from(tensors, loaded.model)
    token = generation.pick(generation.prefill(loaded.model, torch.tensor([suffix_ids]), dc))
    out = token.tolist()
    while len(out) < new_tokens:
        token = generation.pick(generation.decode_step(loaded.model, token[:, None], dc))
        out += token.tolist()
    return out


@torch.inference_mode()
def run(loaded, config: GranularityConfig | None = None, progress: bool = False) -> list[BlockRestore]:
    """Every (P, layout, block size, tier) of `config`; rows in that order. CPU only (a GPU restore
    would add a host->device copy per block: `memlab kvcache --tiers pinned` measures that path)."""
    config = config or GranularityConfig()
    if loaded.device.type != "cpu":
        raise InvalidArgumentError("the block-size sweep runs on the CPU (load the model with device='cpu')")
    limits.check_context(loaded.config, max(config.prefix_tokens) + config.suffix_tokens + config.new_tokens,
                         getattr(loaded, "name", "the model"))
    host, rows = card().host, []
    folder = Path(config.folder) if config.folder else models.cache_dir() / "kv_cache"
    plan = [(P, lay, bt) for P in config.prefix_tokens for lay in config.layouts for bt in config.block_tokens]
    if progress:
        from tqdm.auto import tqdm
        plan = tqdm(plan, desc="block sizes")
    recompute, resident, want = {}, {}, {}
    for P, layout, bt in plan:
        if P not in resident:
            ids = prompt_ids(loaded.tokenizer, P + config.suffix_tokens)
            prefix = tiers.compute_prefix(loaded, ids[:P])
            full = torch.stack([torch.stack(prefix.tensors[i:i + 2]) for i in range(0, len(prefix.tensors), 2)])
            resident[P] = (full, ids[P:])  # (L, 2, 1, K, P, D)
            recompute[P] = time_recompute(loaded, prefix, config.repeats) if config.measure_recompute else (float("nan"),) * 2
            if P == min(config.prefix_tokens):
                want[P] = greedy_tokens(loaded, full, ids[P:], config.new_tokens)
        full, suffix = resident[P]
        path = folder / f"pool-{P}-{layout}-{bt}-{os.getpid()}.kv"
        pool = Pool(full, layout, bt, path, config.seed)
        try:
            for tier in config.tiers:
                times, residency, cache = [], [], torch.empty_like(full)  # allocated once, as a server's cache is
                with torch_threads(1):  # a transfer is one memcpy: torch would split copies of > 32 Ki elements
                    pool.restore(tier, cache)  # warm-up (page faults, the code path)
                    for _ in range(config.repeats):
                        residency.append(prepare(tier, path))
                        cache.zero_()  # nothing left from the last restore: same_bytes checks this one
                        start = time.perf_counter()
                        pool.restore(tier, cache)
                        times.append(time.perf_counter() - start)
                tokens = (greedy_tokens(loaded, cache, suffix, config.new_tokens) == want[P]
                          if P in want and bt == min(config.block_tokens) else None)
                rows.append(BlockRestore(
                    tier=tier, layout=layout, prefix_tokens=P, block_tokens=bt, block_bytes=pool.max_bytes,
                    num_transfers=len(pool.spans), num_bytes=full.nbytes, restore_s=summarize(times).median,
                    restore_best_s=min(times), restore_runs_s=tuple(times), recompute_s=recompute[P][0],
                    recompute_best_s=recompute[P][1], page_cache_before=tuple(residency) if tier != "ram" else (),
                    same_bytes=torch.equal(cache, full), same_tokens=tokens, host=host))
        finally:
            path.unlink(missing_ok=True)
    return rows


@torch.inference_mode()
def time_recompute(loaded, prefix, repeats: int) -> tuple[float, float]:
    """(median, fastest) seconds of a prefill of the prefix into a fresh cache, after a warm-up."""
    tiers.restore("recompute", loaded, prefix)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tiers.restore("recompute", loaded, prefix)
        times.append(time.perf_counter() - start)
    return summarize(times).median, min(times)
