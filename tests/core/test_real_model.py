"""Integration on the real bundled model (SmolLM2-135M-Instruct): the answer, the cache, the KV."""

import pytest
import torch

import memlab as ml
from memlab.core import footprint, models

from tests.conftest import requires_bundled

pytestmark = [pytest.mark.slow, requires_bundled]


def test_capital_of_france(real):
    r = ml.generate(real, "What is the capital of France?", max_new_tokens=16)
    assert "Paris" in r.text
    assert r.ttft_s > 0 and r.decode_tok_per_s > 0


def test_loop_equals_generate_on_the_real_model(real):
    ids = real.tokenizer("The history of the Eiffel Tower begins").input_ids
    mine = ml.generate(real, ids, max_new_tokens=12, stop_at_eos=False)
    hf = real.model.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert list(mine.token_ids) == hf[0, len(ids):].tolist()


def test_footprint_matches_the_real_tensors(real):
    params = {id(p): p for p in real.model.parameters()}.values()
    assert footprint.weights_bytes(real.config, "fp32") == sum(p.nbytes for p in params)


def test_resident_means_no_weight_points_into_the_file(real):
    # every parameter was cloned into anonymous memory: none shares storage with the mmap'd file
    from safetensors import safe_open
    with safe_open(real.checkpoint / "model.safetensors", "pt") as f:
        mapped = f.get_tensor("model.norm.weight")
    assert real.model.model.norm.weight.data_ptr() != mapped.data_ptr()
    assert torch.equal(real.model.model.norm.weight, mapped)


def test_cached_checkpoint_gives_the_same_logits_as_the_gguf(real):
    """The cached checkpoint holds the GGUF's weights bit for bit, so the logits agree to float rounding: not bit for
    bit: on an AVX-512 Xeon torch's fp32 matmuls rounded differently for the two copies (1e-4 apart in logits near
    10; most likely their memory alignment, not confirmed), where the AVX2 EPYC gave equal bits."""
    from transformers import AutoModelForCausalLM
    gguf = models.gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ours, theirs = real.model.state_dict(), direct.state_dict()
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if not torch.equal(ours[k], theirs[k])] == []
    ids = torch.tensor([real.tokenizer("Memory bandwidth limits decoding").input_ids])
    with torch.inference_mode():
        torch.testing.assert_close(real.model(ids).logits, direct(ids).logits, rtol=1e-5, atol=1e-4)
