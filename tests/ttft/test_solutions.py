"""Lab 03's worked solutions against what the code counts (file bytes, torch's FLOP counter, the KV
cache's tensors), and a wrong answer (twice the solution) is graded a miss."""

import torch
from torch.utils.flop_counter import FlopCounterMode

import memlab as ml
from memlab.core import footprint, generation, loading, tensors
from memlab.course import exercises
from memlab.ttft import solutions


def test_the_checkpoint_is_every_parameter_once_plus_a_small_header(tiny):
    size = loading.checkpoint_file(tiny.checkpoint).stat().st_size
    solution = solutions.checkpoint_bytes(tiny.config)
    assert 0 < size - solution < 64 * 1024  # the safetensors header: names, shapes, offsets
    rel = 0.05  # the tiny model's header is a larger share of its file than the real model's
    assert exercises.grade("03-checkpoint", solution, size, rel=rel) is True
    assert exercises.grade("03-checkpoint", 2 * solution, size, rel=rel) is False


def test_prefill_matmul_flops_match_torchs_counter(tiny):
    ids = list(range(1, 33))
    with FlopCounterMode(display=False) as counter:
        ml.generate(tiny, ids, max_new_tokens=1)
    counted = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "attention" not in str(op))
    solution = solutions.prefill_matmul_flops(tiny.config, len(ids))
    assert solution == counted
    assert exercises.grade("03-prefill-flops", solution, counted, rel=0.01) is True
    assert exercises.grade("03-prefill-flops", 2 * solution, counted, rel=0.01) is False
    # 2 x all parameters x T (the embedding counted as a matmul for every token) is a miss too
    assert exercises.grade("03-prefill-flops", 2 * footprint.num_params(tiny.config) * len(ids), counted,
                           rel=0.01) is False


def test_kv_cache_bytes_match_the_cache_tensors(tiny):
    ids = list(range(1, 17))
    cache = generation.new_cache(tiny.model)
    with torch.inference_mode():
        generation.prefill(tiny.model, torch.tensor([ids] * 3), cache)
    held = tensors.tensor_bytes([t for layer in cache.layers for t in (layer.keys, layer.values)])
    solution = solutions.kv_cache_bytes(tiny.config, 3, len(ids))
    assert solution == held
    assert exercises.grade("03-kv", solution, held, rel=0.01) is True
    assert exercises.grade("03-kv", 2 * solution, held, rel=0.01) is False
