"""A transformers KV cache as plain tensors, and back (labs 07 and 09).

Shapes: B batch, K KV heads, T cached tokens, D head dim. A cache is, per layer, one key and one
value tensor (B, K, T, D); `kv_tensors` lists them [K0, V0, K1, V1, ...], `cache_from` builds a
fresh `DynamicCache` holding copies of them (transformers appends with `torch.cat`, so the tensors
given are never changed by later steps: a held prefix can serve many requests). `pack` / `unpack`
turn the list into one flat buffer and back (one message, one file, one read).
"""

from __future__ import annotations

import math

import torch
from memlab.core import generation


def kv_tensors(cache) -> list[torch.Tensor]:
    """The cache as a flat list [K0, V0, K1, V1, ...], each (B, K, T, D)."""
    out = []
    for layer in cache.layers:
        out += [layer.keys, layer.values]
    return out


def cache_from(tensors: list[torch.Tensor], model):
    """A DynamicCache holding (copies of) the K/V tensors, ready for prefill or decode_step."""
    cache = generation.new_cache(model)
    for i in range(0, len(tensors), 2):
        cache.update(tensors[i], tensors[i + 1], i // 2)
    return cache


def cache_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes the K/V tensors hold: what a tier must store and a restore must move."""
    return sum(t.nbytes for t in tensors)


def pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """All K/V tensors in one flat buffer (one message or one file instead of 2 x layers)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unpack(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Views of `flat` with the given shapes, in order (no copy)."""
    out, off = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(flat[off:off + n].view(s))
        off += n
    return out
