"""Speculative decoding gives greedy's tokens, token for token, whatever the drafts (tiny and real model)."""

from __future__ import annotations

import pytest
import torch

import memlab as ml
from memlab.memory_wall import specdec
from tests.conftest import requires_bundled


def test_lookup_drafts_takes_what_followed_the_latest_longest_match():
    ids = [5, 6, 7, 8, 1, 5, 6, 9, 2, 5, 6]
    assert specdec.lookup_drafts(ids, 2) == [9, 2]              # "5 6" last seen before 9 2 (not 7 8)
    assert specdec.lookup_drafts(ids, 9) == [9, 2, 5, 6]        # cut at the end of the context
    assert specdec.lookup_drafts([1, 2, 3, 4], 3) == []         # nothing recurs
    ids = [3, 1, 2, 7, 9, 1, 2, 8, 3, 1, 2]
    assert specdec.lookup_drafts(ids, 2, max_ngram=3) == [7, 9]  # "3 1 2" beats the later "1 2" (-> 8 3)
    assert specdec.lookup_drafts(ids, 2, max_ngram=2) == [8, 3]
    assert specdec.lookup_drafts([4, 4, 4], 0) == []


def test_accepted_prefix_stops_at_the_first_mismatch():
    assert specdec.accepted_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert specdec.accepted_prefix([1, 9, 3], [1, 2, 3, 4]) == 1
    assert specdec.accepted_prefix([], [7]) == 0


def test_expected_tokens_per_verify_is_leviathans_sum():
    assert specdec.expected_tokens_per_verify(0.0, 4) == 1.0
    assert specdec.expected_tokens_per_verify(1.0, 4) == 5.0
    assert specdec.expected_tokens_per_verify(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_speculative_tokens_equal_greedy_on_the_tiny_model(tiny, k):
    torch.manual_seed(0)
    prompts = [torch.randint(3, 200, (12,)).tolist(), [40, 41, 42, 43] * 6, [7, 8, 9] * 4 + [10, 11]]
    drafted = accepted = 0
    for ids in prompts:
        reference = ml.generate(tiny, ids, max_new_tokens=24, stop_at_eos=False).token_ids
        greedy = specdec.greedy_decode(tiny.model, ids, 24)
        spec = specdec.speculative_decode(tiny.model, ids, 24, k=k)
        assert greedy.token_ids == reference
        assert spec.token_ids == reference, f"k={k}, prompt {ids}"
        assert spec.num_verifies <= greedy.num_verifies == 23
        drafted, accepted = drafted + sum(spec.draft_lens), accepted + sum(spec.accepted)
    assert accepted > 0


@pytest.mark.parametrize("k", [2, 5])
def test_any_drafts_give_greedy_tokens(tiny, k):
    """Drafts that are right for a while, then wrong: kept ones and rejected ones (the cache cut) alike."""
    ids = torch.randint(3, 200, (10,), generator=torch.Generator().manual_seed(1)).tolist()
    truth = list(specdec.greedy_decode(tiny.model, ids, 30).token_ids)

    def half_right(context, budget):  # greedy's next tokens, the last of them replaced by a wrong one
        right = truth[len(context) - len(ids):][:budget]
        return right[:-1] + [(right[-1] + 1) % 200] if len(right) > 1 else right

    spec = specdec.speculative_decode(tiny.model, ids, 30, k=k, draft=half_right)
    assert spec.token_ids == tuple(truth)
    assert spec.cache_tokens == len(ids) + len(truth) - 1, "the rejected drafts' K/V must leave the cache"
    assert 0 < sum(spec.accepted) < sum(spec.draft_lens), "both kept and rejected drafts must occur"
    noise = specdec.speculative_decode(tiny.model, ids, 30, k=k, draft=lambda c, b: [(c[-1] + 7) % 200] * b)
    assert noise.token_ids == tuple(truth)


def test_speculative_stops_where_greedy_stops(tiny):
    ids = [40, 41, 42, 43] * 6
    full = specdec.greedy_decode(tiny.model, ids, 24).token_ids
    stop = {full[5]}
    first = full.index(full[5])
    assert specdec.speculative_decode(tiny.model, ids, 24, k=4, stop=stop).token_ids == full[:first + 1]
    assert specdec.greedy_decode(tiny.model, ids, 24, stop=stop).token_ids == full[:first + 1]


@requires_bundled
def test_speculative_tokens_equal_greedy_on_the_real_model(real):
    from memlab.memory_wall.specreport import PROMPTS
    for name, text in PROMPTS.items():
        ids = ml.generation.encode(real.tokenizer, text)
        reference = ml.generate(real, ids, max_new_tokens=24, stop_at_eos=False).token_ids
        spec = specdec.speculative_decode(real.model, ids, 24, k=4)
        assert spec.token_ids == reference, name
        assert spec.cache_tokens == len(ids) + len(reference) - 1
        if name == "quote":  # the answer copies the prompt: most drafts hold
            assert sum(spec.accepted) > 0.5 * sum(spec.draft_lens)
