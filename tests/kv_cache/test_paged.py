"""The block-table KV cache gives the DynamicCache's numbers, and its bytes add up."""

from __future__ import annotations

import pytest
import torch

from memlab.core import footprint, generation
from memlab.core.errors import MemlabError
from memlab.core.text import prompt_ids
from memlab.kv_cache import allocation, paged


def test_paged_logits_equal_the_contiguous_cache_across_block_boundaries(tiny):
    ids = prompt_ids(tiny.tokenizer, 13)
    L = tiny.config.num_hidden_layers
    pool = paged.BlockPool(tiny.config, 8, block_tokens=4)
    seq = paged.Sequence(pool)
    ref, cache = generation.new_cache(tiny.model), paged.PagedCache(seq, L)
    with torch.inference_mode():
        want = generation.prefill(tiny.model, torch.tensor([ids]), ref)
        got = generation.prefill(tiny.model, torch.tensor([ids]), cache)
        assert torch.equal(got, want)
        token = want.argmax(-1)
        for _ in range(6):  # 13 -> 19 tokens: crosses into blocks 4 and 5
            want = generation.decode_step(tiny.model, token[:, None], ref)
            got = generation.decode_step(tiny.model, token[:, None], cache)
            assert torch.equal(got, want)
            token = want.argmax(-1)
    assert seq.num_tokens == cache.get_seq_length() == ref.get_seq_length() == 19
    assert len(seq.table) == 5 and pool.num_used_blocks == 5
    assert pool.block_bytes == paged.block_bytes(tiny.config, 4) == 4 * footprint.kv_bytes_per_token(tiny.config)


def test_a_wrong_block_table_would_be_caught(tiny):
    ids = prompt_ids(tiny.tokenizer, 12)
    pool = paged.BlockPool(tiny.config, 8, block_tokens=4)
    seq = paged.Sequence(pool)
    cache = paged.PagedCache(seq, tiny.config.num_hidden_layers)
    with torch.inference_mode():
        want = generation.prefill(tiny.model, torch.tensor([ids]), generation.new_cache(tiny.model))
        generation.prefill(tiny.model, torch.tensor([ids[:8]]), cache)
        seq.table[0], seq.table[1] = seq.table[1], seq.table[0]  # swap two blocks: positions scrambled
        got = generation.prefill(tiny.model, torch.tensor([ids[8:]]), cache)
    assert not torch.equal(got, want)


def test_fork_shares_full_blocks_and_copies_the_partial_one(tiny):
    pool = paged.BlockPool(tiny.config, 10, block_tokens=4)
    seq = paged.Sequence(pool)
    with torch.inference_mode():
        generation.prefill(tiny.model, torch.tensor([prompt_ids(tiny.tokenizer, 10)]),
                           paged.PagedCache(seq, tiny.config.num_hidden_layers))
    child = seq.fork()
    assert child.table[:2] == seq.table[:2] and child.table[2] != seq.table[2]
    assert [pool.refs[b] for b in seq.table] == [2, 2, 1]
    assert torch.equal(pool.keys[:, child.table[2]], pool.keys[:, seq.table[2]])
    seq.release()
    assert pool.num_used_blocks == 3  # the child still holds the shared blocks and its own copy
    child.release()
    assert pool.num_used_blocks == 0 and sorted(pool.free) == list(range(10))


def test_a_full_pool_says_so(tiny):
    pool = paged.BlockPool(tiny.config, 1, block_tokens=2)
    seq = paged.Sequence(pool)
    with pytest.raises(MemlabError, match="the KV pool is full: all 1 blocks of 2 tokens"):
        seq.ensure(3)


@pytest.mark.parametrize("shared", [0, 20])
def test_paged_serving_of_mixed_lengths(tiny, shared):
    r = allocation.compare(tiny, (5, 37, 12, 60), new_tokens=4, block_tokens=8, shared_prefix_tokens=shared)
    assert r.same_tokens
    per_token = footprint.kv_bytes_per_token(tiny.config)
    assert r.used_bytes == sum(r.tokens_per_request) * per_token
    assert r.contiguous_reserved_bytes == r.num_requests * max(r.tokens_per_request) * per_token
    blocks = sum(-(-n // 8) for n in r.tokens_per_request)
    assert r.unshared_paged_reserved_bytes == blocks * 8 * per_token
    saved = (r.num_requests - 1) * (shared // 8) * 8 * per_token  # the prefix's full blocks, held once
    assert r.paged_reserved_bytes == r.unshared_paged_reserved_bytes - saved
    assert r.unshared_paged_reserved_bytes - r.used_bytes < r.num_requests * 8 * per_token  # < 1 block each


@pytest.mark.parametrize("prefix_tokens", [8, 10])  # a whole number of blocks, and a partial last block
def test_a_forked_sequence_continues_exactly_like_a_cache_of_the_prefix(tiny, prefix_tokens):
    ids = prompt_ids(tiny.tokenizer, prefix_tokens + 7)
    L = tiny.config.num_hidden_layers
    pool = paged.BlockPool(tiny.config, 16, block_tokens=4)
    root = paged.Sequence(pool)
    with torch.inference_mode():
        ref = generation.new_cache(tiny.model)
        generation.prefill(tiny.model, torch.tensor([ids[:prefix_tokens]]), ref)
        want = generation.prefill(tiny.model, torch.tensor([ids[prefix_tokens:]]), ref)
        generation.prefill(tiny.model, torch.tensor([ids[:prefix_tokens]]), paged.PagedCache(root, L))
        got = generation.prefill(tiny.model, torch.tensor([ids[prefix_tokens:]]), paged.PagedCache(root.fork(), L))
    assert torch.equal(got, want)
