"""Contiguous vs paged KV allocation, measured on the real model's cache (lab 09).

A batch of requests of mixed lengths is served greedily twice: each with its own transformers
`DynamicCache` (the reference tokens), and all from one `paged.BlockPool`, each request holding a
block table. Bytes, all measured from tensors (`nbytes`) except where said:
    used                  K/V bytes the requests' caches hold at the end (the gathered tensors)
    paged reserved        blocks in use x bytes per block (the pool's tensors)
    contiguous reserved   B x the longest request x bytes per token: what a cache sized for the
                          longest request reserves for each (the longest request's measured bytes x B)
With `shared_prefix_tokens`, every request starts with the same prefix: computed once, its full
blocks shared by reference count, so the pool holds them once instead of B times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memlab.core import footprint, generation, limits
from memlab.core.hardware import card
from memlab.core.text import prompt_ids
from memlab.kv_cache import paged


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """One batch of mixed-length requests, contiguous vs paged."""

    num_requests: int
    block_tokens: int                 # b
    shared_prefix_tokens: int         # 0: no shared prefix
    tokens_per_request: tuple         # prompt + generated, per request
    used_bytes: int
    paged_reserved_bytes: int
    contiguous_reserved_bytes: int
    unshared_paged_reserved_bytes: int  # the same requests without sharing the prefix's blocks
    same_tokens: bool                 # paged tokens == DynamicCache tokens, every request
    host: str

    @property
    def contiguous_waste(self) -> float:
        """Share of the contiguous reservation that holds no token."""
        return 1 - self.used_bytes / self.contiguous_reserved_bytes

    @property
    def paged_waste(self) -> float:
        return 1 - self.used_bytes / self.unshared_paged_reserved_bytes


def cache_tensor_bytes(cache) -> int:
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)


@torch.inference_mode()
def greedy(model, ids: list[int], cache, new_tokens: int) -> list[int]:
    """Prefill `ids` into `cache`, then decode greedily: the token ids."""
    dev = next(model.parameters()).device
    token = generation.pick(generation.prefill(model, torch.tensor([ids], device=dev), cache))
    out = token.tolist()
    while len(out) < new_tokens:
        token = generation.pick(generation.decode_step(model, token[:, None], cache))
        out += token.tolist()
    return out


def compare(loaded, prompt_tokens=(40, 200, 90, 500), new_tokens: int = 8, block_tokens: int = 16,
            shared_prefix_tokens: int = 0) -> AllocationResult:
    """Serve one request per prompt length (each prompt after the shared prefix, if any) both ways."""
    for t in prompt_tokens:
        limits.count(t, "prompt_tokens")
    limits.count(new_tokens, "new_tokens")
    limits.count(block_tokens, "block_tokens")
    limits.count(shared_prefix_tokens, "shared_prefix_tokens", minimum=0)
    model, cfg, P = loaded.model, loaded.config, shared_prefix_tokens
    text = prompt_ids(loaded.tokenizer, P + max(prompt_tokens) + len(prompt_tokens))
    prompts = [text[:P] + text[P + i:P + i + t] for i, t in enumerate(prompt_tokens)]  # distinct suffixes
    totals = [len(p) + new_tokens - 1 for p in prompts]  # the last token is sampled, never cached
    per_block = paged.block_bytes(cfg, block_tokens, loaded.dtype)
    unshared = sum(-(-n // block_tokens) for n in totals) * per_block
    pool = paged.BlockPool(cfg, sum(-(-n // block_tokens) for n in totals), block_tokens,
                           next(model.parameters()).dtype, loaded.device)
    L = footprint.config_value(cfg, "num_hidden_layers")
    same, used, longest = True, 0, 0
    root = None
    if P:
        root = paged.Sequence(pool)
        with torch.inference_mode():
            generation.prefill(model, torch.tensor([prompts[0][:P]], device=loaded.device), paged.PagedCache(root, L))
    caches = []
    for ids in prompts:
        ref_cache = generation.new_cache(model)
        if P:  # the same chunks as the paged run (prefix, then the rest), so the same arithmetic
            with torch.inference_mode():
                generation.prefill(model, torch.tensor([ids[:P]], device=loaded.device), ref_cache)
        want = greedy(model, ids[P:], ref_cache, new_tokens)
        seq = root.fork() if root is not None else paged.Sequence(pool)
        cache = paged.PagedCache(seq, L)
        got = greedy(model, ids[seq.num_tokens:], cache, new_tokens)
        same &= got == want
        used += cache_tensor_bytes(cache)
        longest = max(longest, cache_tensor_bytes(ref_cache))
        caches.append(seq)
    if root is not None:
        root.release()  # the prefix's own table: its blocks live on in the requests that share them
    reserved = pool.reserved_bytes
    for seq in caches:
        seq.release()
    return AllocationResult(len(prompts), block_tokens, P, tuple(totals), used, reserved, longest * len(prompts),
                            unshared, same, card().host)
