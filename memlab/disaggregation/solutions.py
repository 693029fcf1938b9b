"""Worked solutions of lab 07's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def kv_bytes_shipped(config, prompt_tokens: int, dtype: str = "fp32") -> float:
    """Keys and values of every prompt token in every layer: 2 x L x K x D x bytes x T, the
    course's one KV formula (`memlab.core.footprint.kv_cache_bytes`)."""
    return footprint.kv_cache_bytes(config, prompt_tokens, dtype=dtype)


def split_tpot_s(decode_tpot_s: float, transfer_s: float, new_tokens: int) -> float:
    """The user's clock runs from the first token (on the prefill worker) to the last (on the decode
    worker): the transfer plus n - 1 decode steps, over n - 1 gaps. TPOT = decode TPOT + transfer / (n - 1)."""
    return decode_tpot_s + transfer_s / (new_tokens - 1)


def link_transfer_s(config, prompt_tokens: int, link_bytes_per_s: float, link_latency_s: float,
                    dtype: str = "bf16") -> float:
    """One prompt's KV cache over a link: latency + kv_bytes / bandwidth, with kv_bytes from the KV formula."""
    return link_latency_s + footprint.kv_cache_bytes(config, prompt_tokens, dtype=dtype) / link_bytes_per_s


def fitted_prefill_s(coefficients: tuple[float, float, float], prompt_tokens: int, time_unit_s: float) -> float:
    """DistServe's fitted prefill time of one prompt of n tokens: (a + b n + c n^2) in the fit's unit, in seconds.
    On an idle cluster the first token comes when that prefill ends, so it is also the TTFT."""
    a, b, c = coefficients
    return (a + b * prompt_tokens + c * prompt_tokens ** 2) * time_unit_s
