"""The roofline: FLOPs and bytes per token, arithmetic intensity, and the bound they imply (lab 01).

A step of work that does F FLOPs and moves Q bytes between memory and the cores can finish no
sooner than max(F / peak FLOP/s, Q / bandwidth). Its arithmetic intensity I = F / Q (FLOP/byte)
says which term wins: below the ridge point I* = peak / bandwidth the step is memory-bound.

For a Llama-family decoder (letters as in footprint.py; P_mm = matmul parameters per token
= all weights except the embedding table, plus the lm_head, which is the tied table):
    decode step, B sequences at context C (tokens already cached):
        FLOPs = B * (2 * P_mm + 4 * L * H * D * (C + 1))       (matmuls + QK^T and AV)
        bytes = weights + B * (C + 1) * kv_per_token   (weights read once; each cache read, new
                                                        k/v written: counted as one pass)
    prefill, B prompts of T tokens (logits only for the last position):
        FLOPs = B * (2 * (P_mm - V*d) * T + 2 * V * d + 4 * L * H * D * T * (T + 1) / 2)
        bytes = weights + B * T * kv_per_token          (activations are ignored: they stay in cache
                                                          for small T, which flatters the bound)
Batching multiplies the FLOPs by B but not the weight bytes: decode moves right on the roofline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.core import footprint
from memlab.core.footprint import config_value, head_dim


@dataclass(frozen=True, slots=True)
class Workload:
    """One forward step's work."""

    phase: str                  # "prefill" or "decode"
    batch_size: int             # B
    num_tokens: int             # tokens produced/processed per sequence in this step (T or 1)
    context_tokens: int         # C: tokens already in the KV cache when the step starts
    flops: float
    bytes: float
    dtype: str

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops / self.bytes


@dataclass(frozen=True, slots=True)
class Prediction:
    """The roofline's lower bound on a workload's time on one machine."""

    workload: Workload
    peak_flop_per_s: float
    bandwidth_bytes_per_s: float
    compute_s: float            # flops / peak
    memory_s: float             # bytes / bandwidth
    time_s: float               # max of the two: the bound
    bound: str                  # "memory" or "compute"
    tok_per_s: float            # B * num_tokens / time_s: an upper bound on throughput


def matmul_params(config: Any) -> int:
    """P_mm: parameters that take part in a matmul for each token (the lm_head included)."""
    d, V = config_value(config, "hidden_size"), config_value(config, "vocab_size")
    norms = (2 * config_value(config, "num_hidden_layers") + 1) * d
    # the embedding lookup is no matmul, the lm_head is: tied, the table counts once as lm_head
    table = 0 if config_value(config, "tie_word_embeddings", False) else V * d
    return footprint.num_params(config) - norms - table


def _attention_flops_per_token(config: Any, context: int) -> float:
    """QK^T and AV for one query over `context` keys: 2 matmuls * 2 FLOPs * L * H * D * context."""
    return 4.0 * config_value(config, "num_hidden_layers") * config_value(config, "num_attention_heads") * head_dim(config) * context


def decode_workload(config: Any, batch_size: int = 1, context_tokens: int = 100,
                    dtype: str = "fp32") -> Workload:
    """One decode step for B sequences with C tokens cached (formula in the module docstring)."""
    B, C = batch_size, context_tokens
    flops = B * (2.0 * matmul_params(config) + _attention_flops_per_token(config, C + 1))
    nbytes = footprint.weights_bytes(config, dtype) + B * (C + 1) * footprint.kv_bytes_per_token(config, dtype)
    return Workload("decode", B, 1, C, flops, float(nbytes), dtype)


def prefill_flops_terms(config: Any) -> tuple[float, float, float]:
    """The one prefill-FLOPs count, as (fixed, per token, per token^2): FLOPs(T) = fixed + a T + b T^2.

    fixed = 2 V d (the lm_head, for the last position only); a = 2 per weight of the decoder layers'
    matmuls + the causal attention's linear part; b = 2 L H D: query t attends to t keys, and QK^T
    and AV cost 2 x 2 L H D FLOPs per key, so 4 L H D x (1 + ... + T) = 2 L H D (T^2 + T).
    Every prefill in the course (TTFT, recompute, the simulator's spec profiles) counts with it."""
    vd = config_value(config, "vocab_size") * config_value(config, "hidden_size")
    body = matmul_params(config) - vd
    quad = _attention_flops_per_token(config, 1) / 2
    return 2.0 * vd, 2.0 * body + quad, quad


def prefill_workload(config: Any, prompt_tokens: int, batch_size: int = 1, dtype: str = "fp32") -> Workload:
    """Prefill of B prompts of T tokens, logits for the last position only (`prefill_flops_terms`)."""
    B, T = batch_size, prompt_tokens
    fixed, per_token, per_token2 = prefill_flops_terms(config)
    flops = B * (fixed + per_token * T + per_token2 * T * T)
    nbytes = footprint.weights_bytes(config, dtype) + B * T * footprint.kv_bytes_per_token(config, dtype)
    return Workload("prefill", B, T, 0, flops, float(nbytes), dtype)


def attainable_flop_per_s(intensity: float, peak_flop_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """The roof: min(peak, I * bandwidth)."""
    return min(peak_flop_per_s, intensity * bandwidth_bytes_per_s)


def predict(workload: Workload, peak_flop_per_s: float, bandwidth_bytes_per_s: float,
            cached_bytes: float = 0) -> Prediction:
    """time >= max(FLOPs / peak, bytes / bandwidth); tok/s <= B * tokens / that time.

    `cached_bytes`: a last-level cache that may keep that many bytes between steps (e.g.
    `HardwareCard.last_level_cache_bytes`); then only bytes - cached_bytes must cross the memory bus,
    the bound that holds even when most of a small model stays in a large L3.
    """
    compute_s = workload.flops / peak_flop_per_s
    memory_s = max(workload.bytes - cached_bytes, 0.0) / bandwidth_bytes_per_s
    t = max(compute_s, memory_s)
    return Prediction(workload, peak_flop_per_s, bandwidth_bytes_per_s, compute_s, memory_s, t,
                      "memory" if memory_s >= compute_s else "compute",
                      workload.batch_size * workload.num_tokens / t)


def decode_tok_per_s_bound(weights_bytes: float, bandwidth_bytes_per_s: float) -> float:
    """Fastest possible batch-1 decode when every token streams all weights once.

    tok/s <= bandwidth / bytes_per_token, and bytes_per_token ~= weights_bytes at batch 1.
    """
    return bandwidth_bytes_per_s / weights_bytes


def time_by_flops(flops_a: float, seconds_a: float, flops_b: float, seconds_b: float, flops: float) -> float:
    """A prefill's time is a fixed part + its FLOPs / the rate it runs at: two measured (FLOPs, s)
    points give both, and this is the line through them at `flops` (labs 03 and 09 predict with it)."""
    return seconds_b + (flops - flops_b) * (seconds_b - seconds_a) / (flops_b - flops_a)
