"""Lab 09, the KV cache as a memory tier: keep a prefix's keys and values, or compute them again?

tiers       where a prefix's KV cache can live (RAM, a file on disk cold or warm, pinned host memory)
reuse       prefix reuse on the real model: TTFT split into restore and suffix prefill, beside predictions
granularity restoring a prefix block by block: block sizes, per-layer vs contiguous, RAM and disk cold/warm
blockfit    each tier's latency per transfer and rate, fitted; the block size below which restoring loses
breakeven   the prefix length above which restoring beats recomputing, here and on a GPU server
paged       a block-table KV cache: fixed-size blocks, a free list, reference-counted prefix sharing
allocation  contiguous vs paged allocation for mixed-length requests, measured on the real model's cache
capacity    how many requests' caches fit beside the weights, contiguous vs paged, per KV dtype
plots       the TTFT split, the break-even figure, bytes reserved vs used
solutions   the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, (
    "allocation", "blockfit", "breakeven", "capacity", "granularity", "paged", "plots", "reuse", "solutions", "tiers"))
