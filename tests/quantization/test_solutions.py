"""Lab 04's worked solutions (04-kv-crossover, 04-g64) against the bytes the model holds, and a wrong answer misses."""

import pytest
import torch

import memlab as ml
from memlab.course import exercises


@pytest.mark.parametrize("num_tokens", [1, 13])
def test_kv_crossover_solution_uses_the_bytes_a_prefill_allocates(tiny, num_tokens):
    cache = ml.generation.new_cache(tiny.model)
    with torch.inference_mode():
        ml.generation.prefill(tiny.model, torch.tensor([list(range(5, 5 + num_tokens))]), cache)
    per_token = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers) / num_tokens
    weights = ml.tensors.model_bytes(tiny.model)
    assert ml.quantization.solutions.kv_crossover_tokens(tiny.config, weights) == pytest.approx(weights / per_token)


def test_kv_crossover_exercise_marks_a_wrong_answer_a_miss(tiny, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    right = ml.quantization.solutions.kv_crossover_tokens(tiny.config, 10**8)
    assert exercises.grade("04-kv-crossover", right, right, rel=0.02) is True
    assert exercises.grade("04-kv-crossover", 2 * right, right, rel=0.02) is False  # the keys, or the values, only
    assert exercises.grade("04-kv-crossover", 4 * right, right, rel=0.02) is False  # 1 B per value, not 4


def test_bits_solutions_are_the_format_model():
    """04-int8-bits and 04-g64 read memlab's int8/int4 formats (`core.quantformat`): the answers stay b + bits / G."""
    solutions = ml.quantization.solutions
    assert solutions.int8_bits_per_weight(576) == 8 + 16 / 576 and solutions.int8_bits_per_weight(1536, 32) == 8 + 32 / 1536
    assert solutions.int4_bits_per_weight() == 5.0 and solutions.int4_bits_per_weight(128, 16) == 4.25
    smollm2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                   num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    total = 134_515_008
    kept = 49152 * 576 + 61 * 576                 # the tied embedding and 61 norms stay fp32
    assert solutions.fp32_over_int4_bytes(smollm2) == pytest.approx(4 * total / ((total - kept) * 5 / 8 + 4 * kept), rel=1e-12)


def test_g64_bits_match_what_the_grid_stores_and_a_wrong_answer_misses(monkeypatch):
    from memlab.quantization import quantize
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    w = torch.randn(64, 256)
    q, s, z = quantize.quantize_groupwise(w, bits=4, group_size=64, symmetric=False)
    counted = (4 * q.numel() + 16 * (s.numel() + z.numel())) / w.numel()
    assert ml.quantization.solutions.int4_bits_per_weight(group_size=64, scale_bits=16) == counted == 4.5
    assert ml.exercises.grade("04-g64", 5.0, counted, rel=0.001) is False  # G = 32's answer
