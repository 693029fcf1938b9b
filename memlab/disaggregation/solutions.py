"""Worked solutions of lab 07's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations


def kv_bytes_shipped(config, prompt_tokens: int, dtype_bytes: int = 4) -> float:
    """Keys and values of every prompt token in every layer: 2 x L x K x D x bytes x T."""
    L, K = config.num_hidden_layers, config.num_key_value_heads
    D = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * L * K * D * dtype_bytes * prompt_tokens
