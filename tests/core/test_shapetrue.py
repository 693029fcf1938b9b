"""Shape-true models: the published shapes, seeded random values written chunk by chunk, the disk
checked first, never a half-written model, and every output saying the text is noise."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import memlab as ml
from memlab.core import checkpoint, fastpath, footprint, models, shapetrue
from memlab.core.errors import MemlabError, UnknownModelError, UnsupportedArchitectureError
from tests.conftest import requires_bundled

# a tiny Llama at a shape no test model has, with the bundled tokenizer's vocabulary (49152 ids)
TINY_FIELDS = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152,
               "tie_word_embeddings": True, "max_position_embeddings": 4096, "rope_theta": 500000.0,
               "rms_norm_eps": 1e-05}


def test_the_new_configs_have_their_published_sizes():
    # published: Llama-3.2-1B 1.24 B parameters, Qwen2.5-1.5B 1.54 B (their model cards)
    for name, billions in {"llama-3.2-1b": 1.236, "qwen2.5-1.5b": 1.544}.items():
        config = shapetrue.hf_config(shapetrue.published(f"shape:{name}"))
        assert shapetrue.weights_bytes(config, "fp32") / 4 / 1e9 == pytest.approx(billions, rel=0.002), name
        assert shapetrue.weights_bytes(config, "bf16") * 2 == shapetrue.weights_bytes(config, "fp32")
    assert shapetrue.weights_bytes(shapetrue.hf_config(shapetrue.published("shape:llama-3.1-8b"))) \
        == footprint.weights_bytes(footprint.famous_configs()["llama-3.1-8b"], "fp32")


def test_unknown_and_unrunnable_names_are_refused_in_one_line():
    with pytest.raises(UnknownModelError, match="shape:llama-3.2-1b"):
        shapetrue.published("shape:no-such-model")
    with pytest.raises(UnsupportedArchitectureError, match="fits table only"):
        shapetrue.published("shape:mixtral-8x7b")  # memlab's loaders run Llama-family decoders only
    assert "shape:NAME" in models.catalog_text() and "shape:qwen2.5-1.5b" in models.catalog_text()


def test_the_file_is_the_skeleton_seeded_and_initialised_like_transformers(tmp_path):
    fields = {**TINY_FIELDS, "vocab_size": 320}
    config = shapetrue.hf_config(fields)
    path = tmp_path / "model.safetensors"
    written = shapetrue.write_weights(path, config, progress=False)
    entries = checkpoint.read_header(path)
    assert written == path.stat().st_size == max(e.end_byte for e in entries.values())
    assert checkpoint.entries_bytes(entries) == shapetrue.weights_bytes(config)
    skeleton = checkpoint.skeleton(config)
    stored = {n: tuple(p.shape) for n, p in skeleton.named_parameters() if n != "lm_head.weight"}  # tied: not stored
    assert stored == {n: e.shape for n, e in entries.items()}
    tensors = checkpoint.map_checkpoint(path)
    assert all(torch.equal(t, torch.ones_like(t)) for n, t in tensors.items() if n.endswith("norm.weight"))
    w = tensors["model.layers.0.mlp.up_proj.weight"]
    assert w.std().item() == pytest.approx(config.initializer_range, rel=0.05) and abs(w.mean().item()) < 2e-3
    # seeded: the same bytes again; another seed, other bytes
    again, other = tmp_path / "again.safetensors", tmp_path / "other.safetensors"
    shapetrue.write_weights(again, config, progress=False)
    shapetrue.write_weights(other, config, seed=1, progress=False)
    assert again.read_bytes() == path.read_bytes() != other.read_bytes()
    # bf16: the fp32 values rounded, the same tensors at half the bytes
    half = tmp_path / "half.safetensors"
    shapetrue.write_weights(half, config, "bf16", progress=False)
    torch.testing.assert_close(checkpoint.map_checkpoint(half)["model.embed_tokens.weight"],
                               tensors["model.embed_tokens.weight"].to(torch.bfloat16), rtol=0, atol=0)


def test_the_writer_holds_a_chunk_not_the_model(tmp_path):
    """A 192 MiB embedding is written with far less than 192 MiB of peak RSS added (a subprocess, so the
    peak is this writer's alone)."""
    fields = {**TINY_FIELDS, "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
              "num_hidden_layers": 1, "intermediate_size": 256}
    code = ("import json, resource, sys\nfrom memlab.core import shapetrue\n"
            f"config = shapetrue.hf_config({fields!r})\nshapetrue.tensor_specs(config)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "shapetrue.write_weights(sys.argv[1], config, progress=False)\n"
            "print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.safetensors")], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    before_kib, after_kib = json.loads(out.stdout.strip().splitlines()[-1])
    largest = 49152 * 1024 * 4
    added = (after_kib - before_kib) * 1024
    assert added < largest / 2, f"the writer added {added / 2**20:.0f} MiB of RSS for a {largest / 2**20:.0f} MiB tensor"


def test_no_room_is_refused_before_a_byte_is_written(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    weights = shapetrue.weights_bytes(shapetrue.hf_config(shapetrue.published("shape:llama-3.2-1b")))
    with pytest.raises(MemlabError, match=r"needs 4\.60 GiB \((\d+) bytes\) and .* has 0\.00 GiB free") as e:
        models.prepare("shape:llama-3.2-1b", cache_dir=tmp_path / "cache")
    assert weights <= int(e.value.args[0].split("(")[1].split(" ")[0]) <= weights + 2**20  # the bytes, named
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing written


@pytest.fixture
def shape_cache(tmp_path, monkeypatch):
    """A cache folder holding the bundled model (linked from the real cache) and `shape:tiny-test`."""
    real = models.cache_dir() / f"{models.DEFAULT_MODEL}-fp32"
    if not models.is_complete(real):
        pytest.skip("the bundled model is not converted yet (memlab prepare)")
    (tmp_path / real.name).symlink_to(real)
    known = shapetrue.published_configs()
    monkeypatch.setattr(shapetrue, "published_configs", lambda: {**known, "tiny-test": TINY_FIELDS})
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    return tmp_path


@requires_bundled
def test_a_shape_true_model_generates_noise_and_says_so(shape_cache, tiny):
    loaded = ml.load("shape:tiny-test")
    assert loaded.checkpoint == shape_cache / "shape-tiny-test-fp32" and models.is_complete(loaded.checkpoint)
    r = ml.generate(loaded, "hi", max_new_tokens=6, stop_at_eos=False)
    assert r.weights_origin == shapetrue.RANDOM and r.new_tokens == 6
    assert ml.generate(tiny, "hi", max_new_tokens=2).weights_origin == shapetrue.TRAINED
    # the fast path (and its C step) runs it, with eager's greedy tokens
    ids = ml.generation.encode(loaded.tokenizer, "Explain why the sky is blue.")
    eager = ml.generate(loaded, ids, max_new_tokens=12, stop_at_eos=False)
    for step in ("auto", "c"):
        fast = fastpath.fast_generate(loaded.model, torch.tensor([ids]), 12,
                                      fast=fastpath.FastLlama(loaded.model, len(ids) + 12, step=step))
        assert list(fast.token_ids) == list(eager.token_ids), step
    # bf16 is written straight in bf16: the fp32 values rounded
    half = models.prepare("shape:tiny-test", dtype="bf16")
    assert half.name == "shape-tiny-test-bf16"
    assert checkpoint.entries_bytes(checkpoint.read_header(half / "model.safetensors")) * 2 == \
        checkpoint.entries_bytes(checkpoint.read_header(loaded.checkpoint / "model.safetensors"))


@requires_bundled
def test_the_cli_says_the_text_is_noise(shape_cache, capsys):
    from memlab.cli import main
    main(["generate", "hi", "--model", "shape:tiny-test", "--max-new-tokens", "3", "--json"])
    assert json.loads(capsys.readouterr().out)["weights_origin"] == "random (shape-true)"
    main(["generate", "hi", "--model", "shape:tiny-test", "--max-new-tokens", "3"])
    assert "text is noise" in capsys.readouterr().out


@requires_bundled
def test_an_interrupted_write_leaves_nothing_taken_for_complete(shape_cache, monkeypatch):
    real_write = shapetrue.write_weights

    def dies_halfway(path, config, *args, **kwargs):
        real_write(path, config, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(math.ceil(Path(path).stat().st_size / 2))
        raise KeyboardInterrupt

    monkeypatch.setattr(shapetrue, "write_weights", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.prepare("shape:tiny-test")
    assert not (shape_cache / "shape-tiny-test-fp32").exists()
    assert not [p for p in shape_cache.iterdir() if p.is_dir() and "tiny-test" in p.name]
    monkeypatch.setattr(shapetrue, "write_weights", real_write)
    assert models.is_complete(models.prepare("shape:tiny-test"))
