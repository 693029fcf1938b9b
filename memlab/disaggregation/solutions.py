"""Worked solutions of lab 07's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def kv_bytes_shipped(config, prompt_tokens: int, dtype: str = "fp32") -> float:
    """Keys and values of every prompt token in every layer: 2 x L x K x D x bytes x T, the
    course's one KV formula (`memlab.core.footprint.kv_cache_bytes`)."""
    return footprint.kv_cache_bytes(config, prompt_tokens, dtype=dtype)
