"""The fast decode path gives the same greedy tokens as memlab.core.generation."""

import pytest
import torch

import memlab as ml
from memlab.memory_wall import fastpath


def _reference(loaded, ids, n):
    r = ml.generate(loaded, ids, max_new_tokens=n, stop_at_eos=False)
    return list(r.token_ids)


def test_same_tokens_as_generation(tiny):
    ids = list(range(5, 25))
    ref = _reference(tiny, ids, 12)
    r = fastpath.fast_generate(tiny.model, torch.tensor([ids]), 12)
    assert list(r.token_ids) == ref
    assert r.new_tokens == 12 and len(r.itl_s) == 11
    assert r.setup_s > 0 and r.warmup_s > 0 and r.decode_tok_per_s > 0


def test_same_logits_step_by_step(tiny):
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    model = tiny.model
    fast = fastpath.FastLlama(model, max_len=16)
    with torch.inference_mode():
        cache = ml.generation.new_cache(model)
        ref = ml.generation.prefill(model, ids, cache)
        got = fast.prefill(ids)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
        tok = ref.argmax(-1, keepdim=True)
        for pos in range(8, 12):
            ref = ml.generation.decode_step(model, tok, cache)
            got = fast.step(tok, pos)
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
            tok = ref.argmax(-1, keepdim=True)


def test_weights_are_shared_not_copied(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=8)
    attn = tiny.model.model.layers[0].self_attn
    qkv = fast.layers[0]["qkv"]
    assert attn.q_proj.weight.data_ptr() == qkv.data_ptr()
    assert attn.k_proj.weight.data_ptr() == qkv[attn.q_proj.weight.shape[0]:].data_ptr()


def test_batched_rows_match_single(tiny):
    ids = torch.tensor([[7, 8, 9, 10, 11], [7, 8, 9, 10, 11]])
    r2 = fastpath.fast_generate(tiny.model, ids, 6)
    r1 = fastpath.fast_generate(tiny.model, ids[:1], 6)
    assert r2.token_ids == r1.token_ids and r2.batch_size == 2


def test_profile_counts_ops(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=8)
    ids = torch.tensor([[1, 2, 3]])
    fast.prefill(ids)
    prof = fastpath.profile_decode_step(lambda: fast.step(ids[:, :1], 3), "fast")
    assert prof.num_ops > 10 and prof.step_s > 0
    assert prof.top_ops and all(o.self_cpu_s >= 0 for o in prof.top_ops)


@pytest.mark.slow
def test_real_model_same_tokens(real):
    ids = ml.generation.encode(real.tokenizer, "What is the capital of France?")
    ref = _reference(real, ids, 16)
    r = fastpath.fast_generate(real.model, torch.tensor([ids]), 16)
    assert list(r.token_ids) == ref


def test_profile_both(tiny):
    eager, fast = fastpath.profile_both(tiny.model, torch.tensor([[1, 2, 3, 4]]))
    assert fast.num_ops < eager.num_ops  # fewer, larger operations: the point of the fast path
    table = fastpath.profile_table(eager, fast)
    assert list(table["aten_calls"]) == [eager.num_ops, fast.num_ops]
