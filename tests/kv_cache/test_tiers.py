"""Every way of getting a prefix's KV cache back gives the model the same numbers as recomputing it."""

from __future__ import annotations

import pytest
import torch

from memlab.core import footprint, generation, pagecache
from memlab.core.text import prompt_ids
from memlab.kv_cache import tiers

P, S = 24, 6


@pytest.fixture
def prefix_and_file(tiny, tmp_path):
    ids = prompt_ids(tiny.tokenizer, P + S)
    prefix = tiers.compute_prefix(tiny, ids[:P])
    path = tmp_path / "prefix.kv"
    return prefix, ids[P:], path, tiers.save(prefix, path)


def suffix_logits(tiny, cache, suffix):
    with torch.inference_mode():
        return generation.prefill(tiny.model, torch.tensor([suffix]), cache)


@pytest.mark.parametrize("way", ["ram", "disk-cold", "disk-warm"])
def test_a_restored_prefix_gives_the_same_logits_as_recomputing_it(tiny, prefix_and_file, way):
    prefix, suffix, path, _ = prefix_and_file
    want = suffix_logits(tiny, tiers.restore("recompute", tiny, prefix), suffix)
    tiers.prepare(way, path)
    got = suffix_logits(tiny, tiers.restore(way, tiny, prefix, path), suffix)
    assert torch.equal(got, want)  # the same bytes in the cache: bit for bit


def test_a_wrong_cache_would_be_caught(tiny, prefix_and_file):
    """The equality above can fail: one changed key changes the suffix's logits."""
    prefix, suffix, path, _ = prefix_and_file
    want = suffix_logits(tiny, tiers.restore("recompute", tiny, prefix), suffix)
    tensors = [t.clone() for t in prefix.tensors]
    tensors[0][..., 3, :] += 1.0
    broken = tiers.Prefix(prefix.token_ids, tuple(tensors), prefix.shapes, prefix.dtype, prefix.num_bytes)
    assert not torch.equal(suffix_logits(tiny, tiers.restore("ram", tiny, broken), suffix), want)


def test_restoring_leaves_the_held_prefix_unchanged(tiny, prefix_and_file):
    prefix, suffix, _, _ = prefix_and_file
    before = [t.clone() for t in prefix.tensors]
    cache = tiers.restore("ram", tiny, prefix)
    suffix_logits(tiny, cache, suffix)
    assert cache.get_seq_length() == P + S
    assert all(torch.equal(a, b) for a, b in zip(before, prefix.tensors))


def test_the_file_holds_the_kv_bytes_of_the_footprint_formula(tiny, prefix_and_file):
    prefix, _, path, file_bytes = prefix_and_file
    assert file_bytes == prefix.num_bytes == footprint.kv_cache_bytes(tiny.config, P, dtype="fp32")
    assert file_bytes == path.stat().st_size


def test_cold_is_cold_and_warm_is_warm(prefix_and_file):
    _, _, path, _ = prefix_and_file
    assert tiers.prepare("disk-cold", path) < 0.05
    assert tiers.prepare("disk-warm", path) > 0.95
    assert pagecache.state(path) == "warm"


def test_an_unknown_way_is_refused(tiny, prefix_and_file):
    from memlab.core.errors import InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="unknown way 'tape'"):
        tiers.restore("tape", tiny, prefix_and_file[0])


@pytest.mark.gpu
def test_pinned_and_vram_restores_match_recompute_on_a_gpu(tiny_dir):
    import memlab as ml
    gpu = ml.load(str(tiny_dir), device="cuda")
    ids = prompt_ids(gpu.tokenizer, P + S)
    prefix = tiers.compute_prefix(gpu, ids[:P])
    with torch.inference_mode():
        want = generation.prefill(gpu.model, torch.tensor([ids[P:]], device="cuda"), tiers.restore("recompute", gpu, prefix))
        for way, pinned in (("ram", None), ("pinned", tiers.pin(prefix))):
            cache = tiers.restore(way, gpu, prefix, None, pinned)
            assert torch.equal(generation.prefill(gpu.model, torch.tensor([ids[P:]], device="cuda"), cache), want), way
