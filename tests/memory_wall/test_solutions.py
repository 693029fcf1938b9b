"""Lab 01's worked solutions against the roofline the lab computes, and a wrong answer is a miss."""

import pytest

from memlab.core import footprint, roofline
from memlab.course import exercises
from memlab.memory_wall import solutions

SMOLLM = footprint.resolve_config("smollm2-135m")


@pytest.mark.parametrize("batch", [1, 4, 8])
def test_the_batch_bound_matches_the_roofline_on_the_lab_model(batch):
    bw, peak = 20e9, 200e9  # a laptop-like machine: memory-bound up to B ~ 8
    ctx = 48  # lab 01's sweep: a ~40-token chat prompt plus half the new tokens
    bound = roofline.predict(roofline.decode_workload(SMOLLM, batch, ctx), peak, bw).tok_per_s
    solution = solutions.batch_bound_tok_per_s(SMOLLM, batch, bw, peak)
    # the solution ignores the KV cache: B * (C + 1) * 46 KB beside 538 MB of weights, 3.4% at B = 8
    assert solution == pytest.approx(bound, rel=0.05)
    assert exercises.grade("01-batch-bound", solution, bound, rel=0.05) is True
    assert exercises.grade("01-batch-bound", 2 * solution, bound, rel=0.05) is False


def test_the_batch_bound_turns_to_compute_when_flops_bind(tiny):
    bw, peak = 100e9, 1e9  # a slow core and fast memory: compute binds from B = 1
    bound = roofline.predict(roofline.decode_workload(tiny.config, 4, 1), peak, bw)
    assert bound.bound == "compute"
    solution = solutions.batch_bound_tok_per_s(tiny.config, 4, bw, peak)
    assert solution == pytest.approx(bound.tok_per_s, rel=0.05)
    assert exercises.grade("01-batch-bound", 4 * bw / footprint.weights_bytes(tiny.config), bound.tok_per_s,
                           rel=0.05) is False  # the memory-only answer misses where compute binds


def test_the_older_lab01_exercises_mark_twice_the_solution_a_miss():
    bw = 20e9
    bound = roofline.predict(roofline.decode_workload(SMOLLM, 1, 48), 1e15, bw).tok_per_s
    assert exercises.grade("01-bound", solutions.decode_bound_tok_per_s(SMOLLM, bw), bound, rel=0.05) is True
    assert exercises.grade("01-bound", 2 * solutions.decode_bound_tok_per_s(SMOLLM, bw), bound, rel=0.05) is False


def test_h100_bound_streams_every_weight_but_the_input_embedding():
    """Exercise 01-h100: an untied input embedding is read one row per token, so it is not streamed;
    the answer that streams it too (all weights, 208.6 tok/s at 3.35 TB/s) is a miss."""
    llama8b = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                   num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)  # the lab's config
    bw = 3350e9
    expected = roofline.decode_tok_per_s_bound(footprint.streamed_bytes(llama8b, "bf16"), bw)
    solution = solutions.h100_decode_bound(llama8b, bw)
    assert solution == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(bw / (2 * (footprint.num_params(llama8b) - 128256 * 4096)), rel=1e-12)
    assert exercises.grade("01-h100", solution, expected, rel=0.05) is True
    all_weights = bw / footprint.weights_bytes(llama8b, "bf16")
    assert all_weights == pytest.approx(208.6, abs=0.05)
    assert exercises.grade("01-h100", all_weights, expected, rel=0.05) is False


def test_the_speculative_speedup_solution_is_the_reports_prediction():
    from memlab.memory_wall import specreport
    ratio = (1.0, 1.7, 1.9, 1.7, 1.8)  # a verify-cost curve like one measured on a loaded 2-core CPU
    for acceptance, lens in [(1.0, [4, 4, 4, 2]), (0.3, [4, 4, 0, 1]), (0.0, [4, 4, 4])]:
        solution = solutions.speculative_speedup(acceptance, lens, ratio)
        assert solution == pytest.approx(specreport.predicted_speedup(acceptance, lens, ratio)[2])
        assert exercises.grade("01-spec", solution, solution, band=solutions.SPEC_BAND) is True
    # forgetting the verify's cost (tokens per verify alone) is a miss where a verify costs 1.8 steps
    right = solutions.speculative_speedup(1.0, [4, 4, 4], ratio)
    assert exercises.grade("01-spec", 5.0, right, band=solutions.SPEC_BAND) is False
