"""Worked solutions of lab 09's exercises (graded by memlab.course.exercises): the physics, step by step."""

from __future__ import annotations

import math

from memlab.core import footprint, roofline
from memlab.core.footprint import config_value, head_dim
from memlab.kv_cache.reuse import prefix_flops


def kv_file_bytes(config, prefix_tokens: int, dtype: str = "fp32") -> int:
    """A key and a value per KV head, per layer, per token: 2 x L x K x D x bytes x P, the course's
    one KV formula (`memlab.core.footprint.kv_cache_bytes`); the file holds those bytes and no header."""
    return footprint.kv_cache_bytes(config, prefix_tokens, dtype=dtype)


def recompute_flops(config, prefix_tokens: int) -> float:
    """Each prefix token meets every matmul weight once (2 FLOPs per weight; the lm_head is not
    needed for the prefix), and token t attends to t keys: QK^T and AV are 2 x 2 x H x D FLOPs per
    key per layer, so 4 L H D x (1 + 2 + ... + P) = 2 L H D P (P + 1)."""
    P = prefix_tokens
    vd = config_value(config, "vocab_size") * config_value(config, "hidden_size")
    body = roofline.matmul_params(config) - vd
    L, H, D = config_value(config, "num_hidden_layers"), config_value(config, "num_attention_heads"), head_dim(config)
    return 2.0 * body * P + 2.0 * L * H * D * P * (P + 1)


def server_crossover_tokens(config, flop_per_s: float, bytes_per_s: float, dtype: str = "bf16") -> float:
    """Restoring P tokens costs P x kv_per_token / bandwidth; recomputing them costs
    (2 x body x P + 2 L H D P (P + 1)) / FLOP/s. Divide both by P: restoring wins once
    kv_per_token / bandwidth < (2 x body + 2 L H D (P + 1)) / FLOP/s, i.e. for
    P > (FLOP/s x kv_per_token / bandwidth - 2 x body) / (2 L H D) - 1."""
    vd = config_value(config, "vocab_size") * config_value(config, "hidden_size")
    body = roofline.matmul_params(config) - vd
    L, H, D = config_value(config, "num_hidden_layers"), config_value(config, "num_attention_heads"), head_dim(config)
    kv_per_token = footprint.kv_bytes_per_token(config, dtype)
    threshold = (flop_per_s * kv_per_token / bytes_per_s - 2 * body) / (2 * L * H * D) - 1
    return 0.0 if threshold < 1 else float(math.floor(threshold) + 1)


# measured / predicted that 09-recompute accepts. The line through two measured prefixes assumes one
# FLOP rate at every length, and a shared 2-core machine's prefill time varies by a fifth from minute to
# minute. On an AVX2 EPYC (2 vCPUs), five runs (quick 256 -> 512 prefix tokens, full 1024 -> 2048):
# 1.00-1.23, and a later `make test` 1.46 (that minute's prefill slower than the two it was predicted
# from). A prediction that forgets the growth (the longest prefix costing what the one before did)
# scored 1.93-2.53 on the same runs.
RECOMPUTE_BAND = (0.7, 1.7)


def recompute_prefix_s(config, runs, prefix_tokens: int) -> float:
    """Recomputing a prefix is its prefill: a fixed part + its FLOPs / the rate the prefill runs at
    (`reuse.prefix_flops`: 2 per body weight per token, plus the causal attention's P^2 term). The two
    longest recomputed prefixes in `runs` give both: the line through their (FLOPs, prefix_s),
    evaluated at the new prefix's FLOPs."""
    a, b = sorted((r for r in runs if r.way == "recompute"), key=lambda r: r.prefix_tokens)[-2:]
    f = [prefix_flops(config, p) for p in (a.prefix_tokens, b.prefix_tokens, prefix_tokens)]
    return roofline.time_by_flops(f[0], a.prefix_s, f[1], b.prefix_s, f[2])


# measured / predicted that 09-blocks accepts: a cold restore of the longest quick prefix in per-layer blocks of 3
# tokens, against the fit over the sweep. Quiet runs (AMD EPYC, 2 vCPUs): 1.07 quick, 1.16 full; under load (load
# average 9-10 on 2 cores) 0.98. Wide because a cold read's latency moves with the disk's minute.
BLOCKS_BAND = (0.5, 2.0)


def block_restore_s(config, fit, prefix_tokens: int, block_tokens: int, layout: str = "per-layer") -> float:
    """A restore in blocks makes one transfer per block: ceil(P / block_tokens) blocks, each per layer
    (x L) or all layers at once (x 1); every transfer pays the tier's latency, every byte its rate:
    t = num_transfers x latency + KV bytes / rate (the fit of `blockfit`)."""
    num_blocks = math.ceil(prefix_tokens / block_tokens)
    num_transfers = num_blocks * (config_value(config, "num_hidden_layers") if layout == "per-layer" else 1)
    return num_transfers * fit.latency_s + footprint.kv_cache_bytes(config, prefix_tokens) / fit.rate_bytes_per_s
