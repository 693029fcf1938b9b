"""comp and ret alone, at paper-like scale, on synthetic index keys (lab 08, section 3).

Per query over N keys of D fp32 numbers, pages of p keys (P = N / p pages):
  token scoring    s = K q                             2 N D FLOP,  4 (N D + N + D) bytes -> ~0.5 FLOP/B
  page scoring     s_p = max_d-wise bound of q.k:      4 P D FLOP,  4 (2 P D + P + D) bytes
                   sum_d max(q_d min_pd, q_d max_pd) = max_p . q+ + min_p . q-  (q+ = max(q, 0), q- = min(q, 0)):
                   two GEMVs over the index, each byte read once (`mempipe.page_scores`)
  page, elementwise  the same sum as written, max(q * min, q * max).sum(-1): the same bytes counted, but
                   it writes and re-reads three P x D temporaries, so it moves several times more
  top-k            over N scores                       ~N compares (counted as N ops), 4 N bytes read
Each kernel is timed from a cold cache: before every repeat a read of twice the last-level cache evicts
its operands, so on every CPU (a 32 MiB L3 or a 480 MiB one) the kernels stream from DRAM, as an index
larger than any cache would, and a kernel's time is its bytes over the rate it reaches there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memlab.core import ceilings, measure
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import last_level_cache_bytes
from memlab.memory_processing.mempipe import build_index, page_scores

KINDS = ("token", "page", "page-elementwise", "topk")


@dataclass(frozen=True, slots=True)
class KernelPoint:
    """One timed kernel with its FLOPs and bytes moved, ready for a roofline."""
    name: str
    num_keys: int
    dim: int
    flops: float
    bytes_moved: float           # minimum DRAM traffic: every operand read once, the result written
    time_s: float                # median, each repeat from a cold cache

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops / self.bytes_moved

    @property
    def achieved_bytes_per_s(self) -> float:
        return self.bytes_moved / self.time_s

    @property
    def achieved_flop_per_s(self) -> float:
        return self.flops / self.time_s


@torch.inference_mode()
def kernels(num_keys: int = 262_144, dim: int = 128, top_k: int = 2048, page_tokens: int = 16,
            repeats: int = 5, seed: int = 0, num_threads: int = 1, kinds=KINDS) -> list[KernelPoint]:
    """The `kinds` of comp and ret kernels (module doc) on random fp32 keys (N, D), timed from a cold cache."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise InvalidArgumentError(f"unknown kernel kinds {sorted(unknown)}: use {', '.join(KINDS)}")
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(num_keys, dim, generator=g)
    q = torch.randn(dim, generator=g)
    scores = keys @ q
    kmin, kmax = build_index(keys[None], page_tokens)
    pages, b = kmin.shape[1], 4
    qg = q[None, None]  # (Hkv = 1, G = 1, D): the shape a decode step scores with
    evict = torch.ones(max(2 * last_level_cache_bytes(), 64 * 2**20) // 4)
    table = {
        "token": ("comp: token scores K q", 2.0 * num_keys * dim, b * (num_keys * dim + num_keys + dim),
                  lambda: keys @ q),
        "page": ("comp: page scores, two GEMVs", 4.0 * pages * dim, b * (2 * pages * dim + pages + dim),
                 lambda: page_scores(qg, kmin, kmax)),
        "page-elementwise": ("comp: page scores, elementwise", 4.0 * pages * dim, b * (2 * pages * dim + pages + dim),
                             lambda: torch.maximum(q * kmin[0], q * kmax[0]).sum(-1)),
        "topk": (f"ret: top-{top_k} of token scores", float(num_keys), b * num_keys + 8 * top_k,
                 lambda: scores.topk(top_k)),
    }
    with measure.torch_threads(num_threads):
        return [KernelPoint(name, num_keys, dim, flops, nbytes, measure.repeat(fn, repeats, before=evict.sum).median)
                for name, flops, nbytes, fn in (table[k] for k in kinds)]


@torch.inference_mode()
def cpu_ceilings(num_bytes: int | None = None, matmul_n: int = 1024, repeats: int = 5,
                 num_threads: int = 1) -> tuple[float, float]:
    """Ceilings of this CPU at `num_threads`, measured now: (read bandwidth bytes/s, fp32 matmul FLOP/s).

    bandwidth: `memlab.core.ceilings.stream`'s read kernel (the index kernels only read their keys);
    FLOP/s = 2 n^3 / t(n x n matmul), median of `repeats`. On as many threads as the kernels.
    """
    with measure.torch_threads(num_threads):
        bw = ceilings.stream(num_bytes or ceilings.array_size(), repeats, read_only=True)["read"] * 1e9  # DRAM, not L3
        m = torch.randn(matmul_n, matmul_n)
        fl = 2.0 * matmul_n**3 / measure.repeat(lambda: m @ m, repeats).median
    return bw, fl
