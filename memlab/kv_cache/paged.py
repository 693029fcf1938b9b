"""Paged KV allocation: fixed-size blocks, a free list, one block table per sequence (lab 09).

A contiguous cache reserves room for the longest sequence it may hold; short requests leave most
of it empty. PagedAttention (vLLM) stores the cache in blocks of b tokens instead and gives each
sequence a table of the blocks it owns, so a sequence wastes at most one partly filled block:
    contiguous reserved = B x max_tokens x kv_bytes_per_token
    paged reserved      = sum_i ceil(tokens_i / b) x b x kv_bytes_per_token
    used                = sum_i tokens_i x kv_bytes_per_token
Sequences that share a prefix can share its full blocks (a reference count per block; a block
returns to the free list when its count drops to 0); the partly filled last block is copied.

`BlockPool` holds every layer's blocks, (L, N, K, b, D) for keys and for values; `PagedCache` is a
transformers cache whose layers write into a sequence's blocks and hand attention the gathered
keys and values, so memlab's own `generation.prefill` / `decode_step` run on it unchanged.
"""

from __future__ import annotations

import math

import torch
from transformers.cache_utils import Cache, DynamicLayer

from memlab.core import footprint
from memlab.core.errors import MemlabError


def block_bytes(config, block_tokens: int, dtype: str = "fp32") -> int:
    """Bytes of one block over all layers, keys and values: b x kv_bytes_per_token."""
    return block_tokens * footprint.kv_bytes_per_token(config, dtype)


class BlockPool:
    """N blocks of `block_tokens` tokens for every layer, a free list and a reference count per block."""

    def __init__(self, config, num_blocks: int, block_tokens: int = 16, dtype=torch.float32, device="cpu"):
        L = footprint.config_value(config, "num_hidden_layers")
        K = footprint.config_value(config, "num_key_value_heads") or footprint.config_value(config, "num_attention_heads")
        D = footprint.head_dim(config)
        self.block_tokens = block_tokens
        self.keys = torch.zeros(L, num_blocks, K, block_tokens, D, dtype=dtype, device=device)  # (L, N, K, b, D)
        self.values = torch.zeros_like(self.keys)
        self.free = list(range(num_blocks - 1, -1, -1))  # pop() hands out block 0 first
        self.refs = [0] * num_blocks

    @property
    def block_bytes(self) -> int:
        """Bytes one block holds over all layers, keys and values."""
        return 2 * self.keys[:, 0].nbytes

    @property
    def num_used_blocks(self) -> int:
        return len(self.refs) - len(self.free)

    @property
    def reserved_bytes(self) -> int:
        return self.num_used_blocks * self.block_bytes

    def allocate(self) -> int:
        if not self.free:
            raise MemlabError(f"the KV pool is full: all {len(self.refs)} blocks of {self.block_tokens} tokens are in use")
        block = self.free.pop()
        self.refs[block] = 1
        return block

    def share(self, block: int) -> int:
        self.refs[block] += 1
        return block

    def release(self, block: int) -> None:
        self.refs[block] -= 1
        if self.refs[block] == 0:
            self.free.append(block)


class Sequence:
    """One request's block table and length (shared by all layers)."""

    def __init__(self, pool: BlockPool):
        self.pool, self.table, self.num_tokens = pool, [], 0

    def ensure(self, num_tokens: int) -> None:
        """Own enough blocks for `num_tokens` tokens (idempotent: the first layer allocates)."""
        while len(self.table) * self.pool.block_tokens < num_tokens:
            self.table.append(self.pool.allocate())

    def fork(self) -> "Sequence":
        """A new sequence starting with this one's tokens: full blocks shared, the partial one copied."""
        child, b = Sequence(self.pool), self.pool.block_tokens
        full = self.num_tokens // b
        child.table = [self.pool.share(blk) for blk in self.table[:full]]
        if self.num_tokens % b:
            tail = self.pool.allocate()
            self.pool.keys[:, tail] = self.pool.keys[:, self.table[full]]
            self.pool.values[:, tail] = self.pool.values[:, self.table[full]]
            child.table.append(tail)
        child.num_tokens = self.num_tokens
        return child

    def release(self) -> None:
        for blk in self.table:
            self.pool.release(blk)
        self.table, self.num_tokens = [], 0


class PagedLayer(DynamicLayer):
    """One layer's view of a sequence: writes new K/V into its blocks, returns the gathered cache."""

    def __init__(self, seq: Sequence, layer_idx: int):
        super().__init__()
        self.seq, self.layer_idx, self.length = seq, layer_idx, seq.num_tokens

    def get_seq_length(self) -> int:
        """Tokens already cached: a forked sequence has them before this layer has written anything
        (the attention mask is sized from this)."""
        return self.length

    def update(self, key_states, value_states, *args, **kwargs):
        pool, b = self.seq.pool, self.seq.pool.block_tokens
        start = self.seq.num_tokens  # advanced only after the last layer has written (PagedCache.update)
        T = key_states.shape[-2]                                   # (1, K, T, D)
        self.seq.ensure(start + T)
        t = start
        while t < start + T:  # one block at a time: the first and last may be partly filled
            blk, off = self.seq.table[t // b], t % b
            n = min(b - off, start + T - t)
            pool.keys[self.layer_idx, blk, :, off:off + n] = key_states[0, :, t - start:t - start + n]
            pool.values[self.layer_idx, blk, :, off:off + n] = value_states[0, :, t - start:t - start + n]
            t += n
        n = start + T
        idx = torch.tensor(self.seq.table[:math.ceil(n / b)], device=pool.keys.device)
        K, D = pool.keys.shape[2], pool.keys.shape[4]
        self.keys = pool.keys[self.layer_idx, idx].permute(1, 0, 2, 3).reshape(1, K, -1, D)[:, :, :n]
        self.values = pool.values[self.layer_idx, idx].permute(1, 0, 2, 3).reshape(1, K, -1, D)[:, :, :n]
        self.is_initialized, self.length = True, n
        return self.keys, self.values


class PagedCache(Cache):
    """A transformers cache over one `Sequence` of a shared `BlockPool`."""

    def __init__(self, seq: Sequence, num_layers: int):
        self.seq = seq
        super().__init__(layers=[PagedLayer(seq, i) for i in range(num_layers)])

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        out = self.layers[layer_idx].update(key_states, value_states)
        if layer_idx == len(self.layers) - 1:
            self.seq.num_tokens = self.layers[layer_idx].length  # the last layer has written: the tokens are in
        return out

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seq.num_tokens if layer_idx == 0 else self.layers[layer_idx].length
