"""A prefix cache of KV blocks: a prompt whose leading blocks were computed before skips them (lab 07).

Prompts are cut into fixed blocks (512 tokens in Mooncake's traces) and each block carries a
hash id that covers its content and everything before it, so two prompts that share a hash id
share the whole prefix up to that block. A request's cached prefix is the *leading run* of
its blocks already in the cache; the first block that misses ends it (a later block with a
known id cannot be used without the blocks before it).

  leading_hits  the length of that run, against any set of known ids
  PrefixCache   an LRU of block ids with a capacity in blocks (the simulator's option)

The simulator charges prefill for the uncached tokens only; at least one token is always
computed, because the first output token needs the last prompt position's logits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Sequence

from memlab.core.errors import InvalidArgumentError


def leading_hits(block_hashes: Sequence[int], known: Container[int]) -> int:
    """Number of leading blocks whose ids are in `known` (stops at the first miss)."""
    n = 0
    for h in block_hashes:
        if h not in known:
            break
        n += 1
    return n


def cached_tokens(prompt_tokens: int, hit_blocks: int, block_tokens: int = 512) -> int:
    """Tokens a prefix hit of `hit_blocks` blocks saves: min(blocks x block size, prompt - 1)."""
    return max(0, min(hit_blocks * block_tokens, prompt_tokens - 1))


class PrefixCache:
    """An LRU set of block ids, `capacity_blocks` long; a lookup refreshes the blocks it hit."""

    def __init__(self, capacity_blocks: int, block_tokens: int = 512):
        if capacity_blocks < 1 or block_tokens < 1:
            raise InvalidArgumentError(f"a prefix cache needs capacity_blocks >= 1 and block_tokens >= 1, "
                                       f"got {capacity_blocks} and {block_tokens}")
        self.capacity_blocks, self.block_tokens = capacity_blocks, block_tokens
        self.blocks: OrderedDict[int, None] = OrderedDict()   # oldest first
        self.num_lookups = self.num_hit_blocks = 0

    def __len__(self) -> int:
        return len(self.blocks)

    def lookup(self, prompt_tokens: int, block_hashes: Sequence[int]) -> int:
        """Tokens of this prompt already cached (its leading run of known blocks), refreshed as used."""
        hits = leading_hits(block_hashes, self.blocks)
        for h in block_hashes[:hits]:
            self.blocks.move_to_end(h)
        self.num_lookups += 1
        self.num_hit_blocks += hits
        return cached_tokens(prompt_tokens, hits, self.block_tokens)

    def insert(self, block_hashes: Sequence[int]) -> None:
        """The prompt's blocks now hold KV: add them (most recent last), evicting the oldest past capacity."""
        for h in block_hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > self.capacity_blocks:
            self.blocks.popitem(last=False)
