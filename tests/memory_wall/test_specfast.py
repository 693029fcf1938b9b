"""Speculative decoding through the fast path gives greedy's tokens, token for token (tiny and real model)."""

from __future__ import annotations

import pytest
import torch

import memlab as ml
from memlab.core import ckernels
from memlab.core.errors import InvalidArgumentError
from memlab.memory_wall import specdec, specfast
from tests.conftest import requires_bundled


def test_fast_greedy_and_speculative_equal_eager_greedy_on_the_tiny_model(tiny):
    """Greedy through the fast path, and speculative with drafts right for a while, then wrong (kept and
    rejected drafts: the static cache's later positions are written over), give eager greedy's tokens."""
    ids = torch.randint(3, 200, (10,), generator=torch.Generator().manual_seed(1)).tolist()
    truth = list(specdec.greedy_decode(tiny.model, ids, 30).token_ids)
    run = specfast.FastRunner(specfast.engine(tiny.model, 48))  # the lookup prompt below: 24 + 24 positions
    assert (run.fast.cstep is not None) == (ckernels.reason() == "")
    assert specdec.greedy_decode(run, ids, 30).token_ids == tuple(truth)

    def half_right(context, budget):  # greedy's next tokens, the last of them replaced by a wrong one
        right = truth[len(context) - len(ids):][:budget]
        return right[:-1] + [(right[-1] + 1) % 200] if len(right) > 1 else right

    for k in (2, 5):
        spec = specdec.speculative_decode(run, ids, 30, k=k, draft=half_right)
        assert spec.token_ids == tuple(truth), f"k={k}"
        assert spec.cache_tokens == len(ids) + len(truth) - 1
        assert 0 < sum(spec.accepted) < sum(spec.draft_lens), "both kept and rejected drafts must occur"
    lookup = specdec.speculative_decode(run, [40, 41, 42, 43] * 6, 24, k=4)
    assert lookup.token_ids == specdec.greedy_decode(tiny.model, [40, 41, 42, 43] * 6, 24).token_ids


def test_the_torch_verify_gives_the_same_tokens(tiny):
    """Where the C step cannot run, a verify goes through FastLlama.forward_tokens: the same tokens."""
    ids = [7, 8, 9] * 4 + [10, 11]
    run = specfast.FastRunner(ml.fastpath.FastLlama(tiny.model, len(ids) + 20, kernels="linear"))
    assert run.fast.cstep is None and run.kernel(5) == "torch/linear"
    spec = specdec.speculative_decode(run, ids, 20, k=3)
    assert spec.token_ids == specdec.greedy_decode(tiny.model, ids, 20).token_ids and sum(spec.accepted) > 0


def test_the_cache_is_not_overrun(tiny):
    run = specfast.FastRunner(ml.fastpath.FastLlama(tiny.model, 12, kernels="linear"))
    run.start([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    with pytest.raises(InvalidArgumentError, match="exceed the fast path's cache of 12"):
        run.argmax([1, 2, 3])


@requires_bundled
def test_fast_speculative_tokens_equal_greedy_on_the_real_model(real):
    from memlab.memory_wall.specreport import PROMPTS
    ids = ml.generation.encode(real.tokenizer, PROMPTS["quote"])
    reference = ml.generate(real, ids, max_new_tokens=16, stop_at_eos=False).token_ids
    run = specfast.FastRunner(specfast.engine(real.model, len(ids) + 16))
    spec = specdec.speculative_decode(run, ids, 16, k=4)
    assert spec.token_ids == reference
    assert sum(spec.accepted) > 0.5 * sum(spec.draft_lens)


def test_verify_parts_time_the_matmuls_and_the_rest_for_both_row_counts(tiny):
    if ckernels.reason():
        pytest.skip("no C kernels here")
    fast = specfast.engine(tiny.model, 24)
    fast.prefill(torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]]))
    parts = specfast.verify_parts(fast, 5, 8, repeats=2)
    assert parts.rows == 5 and all(t > 0 for t in parts.matmul_s + parts.rest_s)
    assert parts.predicted_ratio == pytest.approx(sum(p[1] for p in (parts.matmul_s, parts.rest_s))
                                                  / sum(p[0] for p in (parts.matmul_s, parts.rest_s)))
    assert parts.weight_bytes == sum(p.numel() * p.element_size() for n, p in tiny.model.named_parameters()
                                     if "proj" in n or "lm_head" in n or ("embed" in n and tiny.model.config.tie_word_embeddings))
    with pytest.raises(InvalidArgumentError, match="exceed"):
        specfast.verify_parts(fast, 5, 22)
    with pytest.raises(InvalidArgumentError, match="torch"):
        specfast.verify_parts(ml.fastpath.FastLlama(tiny.model, 24, kernels="linear"), 5, 8)
