"""Worked solutions of lab 04's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def int4_bits_per_weight(group_size: int = 32, scale_bits: int = 16) -> float:
    """b + (bits of scale and zero) / G: 4 bits per weight, plus a bf16 scale and a bf16 zero per group."""
    return 4 + 2 * scale_bits / group_size


def int8_bits_per_weight(in_features: int, scale_bits: int = 16) -> float:
    """8 bits per weight plus one bf16 scale per row of `in_features` weights."""
    return 8 + scale_bits / in_features


def fp32_over_int4_bytes(config) -> float:
    """Bytes per token, fp32 / int4. int4 shrinks the linear layers to 5 bits per weight, but keeps the
    tied embedding / lm_head (V x d) and the norms in fp32; all of it is read every token."""
    total = footprint.num_params(config)
    kept = config.vocab_size * config.hidden_size + (2 * config.num_hidden_layers + 1) * config.hidden_size
    linear = total - kept
    return 4 * total / (linear * int4_bits_per_weight() / 8 + 4 * kept)


def kv_crossover_tokens(config, weights_bytes: int, dtype_bytes: int = 4) -> float:
    """Context length at which one decode step reads as many KV-cache bytes as weight bytes: every
    token of context adds 2 (key and value) x layers x KV heads x head dim x bytes to each step's reads."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return weights_bytes / (2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * dtype_bytes)
