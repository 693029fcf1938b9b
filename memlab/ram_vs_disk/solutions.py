"""Worked solutions of lab 02's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def streamed_layer_bytes(config) -> float:
    """Bigger than RAM, paging reads every decoder layer each token: all fp32 weights except the
    embedding (V x d, tied to lm_head) and the final norm (d), which stay in memory."""
    d, V = footprint.config_value(config, "hidden_size"), footprint.config_value(config, "vocab_size")
    return 4 * (footprint.num_params(config) - V * d - d)
