"""Worked solutions of lab 02's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def streamed_layer_bytes(config) -> float:
    """Bigger than RAM, paging reads every decoder layer each token: all fp32 weights except the
    embedding (V x d, tied to lm_head) and the final norm (d), which stay in memory."""
    d, V = footprint.config_value(config, "hidden_size"), footprint.config_value(config, "vocab_size")
    return 4 * (footprint.num_params(config) - V * d - d)


def paged_resident_bytes(config) -> float:
    """`paged` keeps in memory only what is not a decoder layer: the embedding (V x d, which is also the
    tied lm_head) and the final norm (d), 4 bytes each in fp32."""
    d, V = footprint.config_value(config, "hidden_size"), footprint.config_value(config, "vocab_size")
    return 4 * (V * d + d)


def paged_read_bytes(config, new_tokens: int) -> float:
    """Every forward pass reads every decoder layer once: the prefill (which yields the first token)
    plus one decode step for each of the other new_tokens - 1, so new_tokens passes in all."""
    return new_tokens * streamed_layer_bytes(config)
