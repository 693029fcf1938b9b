import math

import pytest
import torch

import memlab as ml
from memlab.core import generation
from memlab.core.errors import MemlabError


def _hf_greedy(loaded, ids, n):
    out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                                min_new_tokens=n, pad_token_id=loaded.tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def test_greedy_loop_equals_transformers_generate(tiny):
    ids = list(range(5, 25))
    r = ml.generate(tiny, ids, max_new_tokens=24, stop_at_eos=False)
    assert list(r.token_ids) == _hf_greedy(tiny, ids, 24)


def test_record_fields_follow_the_metric_definitions(tiny):
    r = ml.generate(tiny, "hello there", max_new_tokens=12, stop_at_eos=False, batch_size=2)
    assert r.new_tokens == 12 and len(r.itl_s) == 11 and r.batch_size == 2
    assert r.ttft_s >= r.prefill_s + r.tokenize_s > 0
    assert r.e2e_s == pytest.approx(r.ttft_s + sum(r.itl_s))
    assert r.tpot_s == pytest.approx((r.e2e_s - r.ttft_s) / 11)
    assert r.decode_tok_per_s == pytest.approx(2 * 11 / (r.e2e_s - r.ttft_s))
    assert r.prefill_tok_per_s == pytest.approx(2 * r.prompt_tokens / r.prefill_s)
    assert r.hardware.host and r.peak_rss_bytes > 0


def test_chat_template_is_applied_for_text_prompts(tiny):
    with_chat = generation.encode(tiny.tokenizer, "hi")
    plain = generation.encode(tiny.tokenizer, "hi", chat=False)
    assert len(with_chat) > len(plain)
    assert tiny.tokenizer.decode(with_chat).startswith("<|im_start|>user")


def test_stops_at_eos(tiny):
    eos = next(iter(generation.eos_ids(tiny.model, tiny.tokenizer)))
    lm_head_bias = torch.zeros(tiny.config.vocab_size)
    lm_head_bias[eos] = 1e4  # force EOS as the first token via a hook on the logits
    handle = tiny.model.lm_head.register_forward_hook(lambda m, i, o: o + lm_head_bias)
    try:
        r = ml.generate(tiny, [1, 2, 3], max_new_tokens=10)
    finally:
        handle.remove()
    assert r.new_tokens == 1 and r.token_ids == (eos,) and math.isnan(r.tpot_s)


def test_sampling_is_seeded(tiny):
    a = ml.generate(tiny, [1, 2, 3], max_new_tokens=8, do_sample=True, temperature=1.5, seed=7, stop_at_eos=False)
    b = ml.generate(tiny, [1, 2, 3], max_new_tokens=8, do_sample=True, temperature=1.5, seed=7, stop_at_eos=False)
    c = ml.generate(tiny, [1, 2, 3], max_new_tokens=8, do_sample=True, temperature=1.5, seed=8, stop_at_eos=False)
    assert a.token_ids == b.token_ids != c.token_ids


def test_bad_arguments_are_refused(tiny):
    with pytest.raises(MemlabError):
        ml.generate(tiny, "x", max_new_tokens=0)
    with pytest.raises(MemlabError):
        ml.generate(tiny, "x", batch_size=0)
