"""Worked solutions of lab 03's exercises (graded by memlab.core.exercises): the physics, step by step."""

from __future__ import annotations

from memlab.core import footprint


def checkpoint_bytes(config) -> float:
    """The fp32 checkpoint holds each parameter once (the tied embedding / lm_head once), 4 bytes
    each; its header (tensor names and offsets, tens of KB) is the only other content."""
    return 4 * footprint.num_params(config)


def prefill_matmul_flops(config, prompt_tokens: int) -> float:
    """2 FLOPs (a multiply and an add) per weight per prompt token, for the decoder layers' weights;
    the embedding is a lookup, not a matmul; the lm_head (V x d) runs for the last position only.
        FLOPs = 2 * T * (L * (attention + MLP weights)) + 2 * V * d
    (the attention scores QK^T and AV come on top; torch's counter does not count them on a CPU)."""
    d, V, L = (footprint.config_value(config, k) for k in ("hidden_size", "vocab_size", "num_hidden_layers"))
    norms = (2 * L + 1) * d
    table = V * d * (1 if footprint.config_value(config, "tie_word_embeddings", False) else 2)
    layer_weights = footprint.num_params(config) - norms - table  # every weight inside a decoder layer's matmuls
    return 2 * prompt_tokens * layer_weights + 2 * V * d


def kv_cache_bytes(config, batch_size: int, prompt_tokens: int) -> float:
    """After prefill, each of the B sequences holds a key and a value per layer, per KV head, per
    prompt token: B * T * 2 * L * K * D * 4 bytes in fp32 (the one KV formula, `footprint`)."""
    return footprint.kv_cache_bytes(config, prompt_tokens, batch_size, "fp32")
