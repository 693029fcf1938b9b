"""Capacity: how many concurrent requests' KV caches fit beside the weights (lab 09).

    room                = memory - weights bytes
    contiguous requests = floor(room / (max_tokens x kv_bytes_per_token))   each reserves the maximum
    paged requests      = floor(room / (ceil(tokens / b) x b x kv_bytes_per_token))   each holds what it uses
kv_bytes_per_token is the footprint formula (`memlab.core.footprint`), at the KV dtype: fp32 4 bytes
per element, bf16 2, int8 1 (quantized KV caches keep a small scale per block besides; not counted).
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core import devices, footprint, limits

KV_DTYPES = ("fp32", "bf16", "int8")


@dataclass(frozen=True, slots=True)
class CapacityRow:
    machine: str
    memory_bytes: int           # free RAM here, or the device's capacity
    weights_bytes: int
    kv_dtype: str
    tokens_per_request: int     # what a request really holds
    max_tokens: int             # what a contiguous cache reserves per request
    block_tokens: int
    contiguous_requests: int
    paged_requests: int


def requests_that_fit(config, memory_bytes: int, weights_bytes: int, tokens_per_request: int, max_tokens: int,
                      kv_dtype: str = "bf16", block_tokens: int = 16) -> tuple[int, int]:
    """(contiguous, paged) request counts (formulas in the module docstring); (0, 0) when the weights don't fit."""
    limits.count(tokens_per_request, "tokens_per_request")
    limits.count(max_tokens, "max_tokens")
    limits.count(block_tokens, "block_tokens")
    room = memory_bytes - weights_bytes
    if room <= 0:
        return 0, 0
    per_token = footprint.kv_bytes_per_token(config, kv_dtype)
    paged_tokens = -(-tokens_per_request // block_tokens) * block_tokens
    return int(room // (max_tokens * per_token)), int(room // (paged_tokens * per_token))


def table(config, machines: dict[str, int], weights_bytes: int, tokens_per_request: int, max_tokens: int,
          kv_dtypes=KV_DTYPES, block_tokens: int = 16) -> list[CapacityRow]:
    """One row per machine and KV dtype; `machines` maps a name to its memory in bytes."""
    rows = []
    for name, memory in machines.items():
        for dt in kv_dtypes:
            c, p = requests_that_fit(config, memory, weights_bytes, tokens_per_request, max_tokens, dt, block_tokens)
            rows.append(CapacityRow(name, int(memory), int(weights_bytes), dt, tokens_per_request, max_tokens,
                                    block_tokens, c, p))
    return rows


def device_memory_bytes(name: str) -> int:
    """A device's memory from the device table (GB = 1e9 bytes)."""
    return int(float(devices.row(name)["capacity_gb"]) * 1e9)
