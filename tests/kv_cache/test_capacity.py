"""Capacity from the footprint formula, and the formula checked against allocated KV tensors."""

from __future__ import annotations

import torch

from memlab.core import footprint
from memlab.core.text import prompt_ids
from memlab.kv_cache import capacity, tiers


def test_the_per_token_formula_matches_allocated_tensors_in_every_kv_dtype(tiny):
    prefix = tiers.compute_prefix(tiny, prompt_ids(tiny.tokenizer, 20))
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
        held = sum(t.to(dt).nbytes for t in prefix.tensors)
        assert held == footprint.kv_cache_bytes(tiny.config, 20, dtype=name) == 20 * footprint.kv_bytes_per_token(tiny.config, name)


def test_requests_that_fit_by_hand():
    config = footprint.resolve_config("llama-3.1-8b")
    per_token = footprint.kv_bytes_per_token(config, "bf16")  # 2 x 32 x 8 x 128 x 2
    assert per_token == 131072
    room = 1000 * 4096 * per_token
    # contiguous: 4096 reserved each -> 1000; paged: 1000 tokens -> 63 blocks of 16 = 1008 tokens each
    assert capacity.requests_that_fit(config, room + 5, 5, 1000, 4096) == (1000, room // (1008 * per_token))
    assert capacity.requests_that_fit(config, 10, 20, 1000, 4096) == (0, 0)
    fp32, int8 = (capacity.requests_that_fit(config, room, 0, 1000, 4096, dt)[1] for dt in ("fp32", "int8"))
    assert int8 == room // (1008 * per_token // 2) and fp32 == room // (1008 * per_token * 2)


def test_the_table_has_a_row_per_machine_and_dtype():
    config = footprint.resolve_config("llama-3.1-8b")
    h100 = capacity.device_memory_bytes("NVIDIA H100 SXM5")
    assert h100 == 80 * 10**9
    rows = capacity.table(config, {"H100": h100}, footprint.weights_bytes(config, "bf16"), 2000, 8192)
    assert [r.kv_dtype for r in rows] == list(capacity.KV_DTYPES)
    assert all(r.paged_requests >= r.contiguous_requests > 0 for r in rows)
