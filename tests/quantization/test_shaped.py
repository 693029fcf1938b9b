"""The int4 shape-true build (lab 04 section 8), on a small Llama config: what it reads is what `plan`
counted, it decodes through the fast path, and it is refused in one line where RAM lacks room."""

import pytest
import torch

from memlab.core import fastpath, shapetrue
from memlab.core.errors import UnsupportedArchitectureError, WontFitError
from memlab.quantization import fastcompare, shaped

SMALL = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=128, rms_norm_eps=1e-5,
             initializer_range=0.02, tie_word_embeddings=False)


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(shaped, "_config", lambda name: shapetrue.hf_config(SMALL))
    return "shape:small"


def test_a_step_reads_what_the_plan_counted_and_decodes(small):
    plan = shaped.plan(small, available=2**40)
    assert plan.fits and plan.layer_weights == 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128)
    model, fast = shaped.build(small, max_len=16)
    assert fastcompare.streamed_bytes(fast) == plan.read_bytes
    assert fast.weights == "Int4Linear" and shapetrue.weights_origin(model.config) == shapetrue.RANDOM
    ids = torch.tensor([[1, 2, 3, 4]])
    run = fastpath.fast_generate(model, ids, 6, fast=fast)
    assert len(run.token_ids) == 6 and all(0 <= t < 256 for t in run.token_ids) and run.decode_tok_per_s > 0
    again = fastpath.fast_generate(*shaped.build(small, max_len=16)[:1], ids, 6, fast=shaped.build(small, max_len=16)[1])
    assert again.token_ids == run.token_ids  # seeded: the same noise, the same tokens


def test_a_build_that_will_not_fit_is_refused_in_one_line(small, monkeypatch):
    monkeypatch.setattr(shaped.guard, "available_bytes", lambda device="cpu": 1000)
    with pytest.raises(WontFitError, match=r"needs about .* GiB of RAM .* is available here"):
        shaped.build(small, max_len=16)
    assert not shaped.plan(small).fits


def test_a_shape_with_biases_is_refused_in_one_line():
    with pytest.raises(UnsupportedArchitectureError, match="biases"):
        shaped.plan("shape:qwen2.5-7b")
