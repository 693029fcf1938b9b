import pytest

from memlab.core import footprint
from memlab.quantization import fits


def test_weight_bytes_match_the_tensors(tiny):
    params = {id(p): p for p in tiny.model.parameters()}.values()
    assert footprint.num_params(tiny.config) == sum(p.numel() for p in params)
    assert footprint.weights_bytes(tiny.config, "fp32") == sum(p.nbytes for p in params)


def test_kv_formula_matches_the_cache_the_model_allocates(tiny):
    import torch
    from memlab.core.generation import new_cache, prefill
    cache = new_cache(tiny.model)
    with torch.inference_mode():
        prefill(tiny.model, torch.arange(10)[None].repeat(3, 1), cache)
    allocated = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert allocated == footprint.kv_cache_bytes(tiny.config, 10, batch_size=3, dtype="fp32")


def test_smollm2_numbers_from_its_config():
    cfg = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    assert footprint.num_params(cfg) == 134_515_008
    assert footprint.kv_bytes_per_token(cfg, "bf16") == 23_040


def test_the_guard_and_the_fits_table_use_one_activation_formula(tiny):
    from memlab.core import footprint, guard
    p = guard.predict(tiny.config, "resident", "fp32", context_tokens=512, available=10**12)
    assert p.activation_bytes == footprint.activation_bytes(tiny.config, 512, 1, "fp32", "sdpa")
    eager = footprint.activation_bytes(tiny.config, 512, 1, "fp32", "eager")
    H = tiny.config.num_attention_heads
    assert eager - p.activation_bytes == H * 512 * 512 * 4  # only eager attention materialises scores


def test_available_memory_respects_a_container_limit(tmp_path, monkeypatch):
    """Binder gives 2 GB in a cgroup on a big host: free host RAM is not what a lab may use."""
    from memlab.core import guard
    limit, usage, stat = tmp_path / "max", tmp_path / "current", tmp_path / "stat"
    limit.write_text(f"{2 * 2**30}\n")
    usage.write_text(f"{1536 * 2**20}\n")
    stat.write_text(f"anon 1\ninactive_file {256 * 2**20}\nactive_file 5\n")
    monkeypatch.setattr(guard, "CGROUP_FILES", ((str(limit), str(usage), str(stat), "inactive_file"),))
    assert guard.cgroup_free_bytes() == 768 * 2**20
    assert guard.available_bytes() == min(768 * 2**20, guard.psutil.virtual_memory().available)
    limit.write_text("max\n")
    assert guard.cgroup_free_bytes() is None
    monkeypatch.setattr(guard, "CGROUP_FILES", ((str(tmp_path / "none"), str(usage), str(stat), "x"),))
    assert guard.cgroup_free_bytes() is None and guard.available_bytes() == pytest.approx(
        guard.psutil.virtual_memory().available, rel=0.2)
