"""What a model costs in bytes, from its config alone (labs 01, 04, 07): pure arithmetic.

Shape letters: L layers, d hidden size, f MLP (intermediate) size, H query heads, K KV heads,
D head dim, V vocab. For a Llama-family decoder:
    attention  = d*H*D (q) + 2*d*K*D (k, v) + H*D*d (o)
    mlp        = 3*d*f (gate, up, down)
    per layer  = attention + mlp + 2*d (two RMSNorm weights)
    total      = L*per_layer + V*d (embedding) + d (final norm) + [V*d if lm_head is not tied]
KV cache per token = 2 (k and v) * L * K * D * bytes per element.
"""

from __future__ import annotations

from typing import Any

import torch

BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}


def _get(config: Any, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def head_dim(config: Any) -> int:
    """D = hidden / heads unless the config states it."""
    return _get(config, "head_dim") or _get(config, "hidden_size") // _get(config, "num_attention_heads")


def num_params(config: Any) -> int:
    """Parameter count of a dense Llama-family decoder from its config (formula in the module doc)."""
    d, f, L, V = (_get(config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    H = _get(config, "num_attention_heads")
    K = _get(config, "num_key_value_heads") or H
    D = head_dim(config)
    attention = d * H * D + 2 * d * K * D + H * D * d
    mlp = 3 * d * f
    per_layer = attention + mlp + 2 * d
    total = L * per_layer + V * d + d
    if not _get(config, "tie_word_embeddings", False):
        total += V * d
    return total


def _bytes_per(dtype: str | float | torch.dtype) -> float:
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    if isinstance(dtype, str):
        if dtype not in BYTES_PER_PARAM:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(BYTES_PER_PARAM)} or a number")
        return BYTES_PER_PARAM[dtype]
    return float(dtype)


def weights_bytes(config: Any, dtype: str | float | torch.dtype = "fp32") -> int:
    """Bytes of all weights: num_params * bytes per parameter."""
    return int(num_params(config) * _bytes_per(dtype))


def kv_bytes_per_token(config: Any, dtype: str | float | torch.dtype = "fp32") -> int:
    """2 * L * K * D * bytes: one token's keys and values in every layer (GQA/MQA aware)."""
    L = _get(config, "num_hidden_layers")
    K = _get(config, "num_key_value_heads") or _get(config, "num_attention_heads")
    return int(2 * L * K * head_dim(config) * _bytes_per(dtype))


def kv_cache_bytes(config: Any, num_tokens: int, batch_size: int = 1,
                   dtype: str | float | torch.dtype = "fp32") -> int:
    """KV cache for `batch_size` sequences of `num_tokens` tokens each."""
    return kv_bytes_per_token(config, dtype) * int(num_tokens) * int(batch_size)
