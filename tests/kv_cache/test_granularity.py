"""Restoring a prefix block by block gives back the resident cache, bit for bit, from every tier."""

from __future__ import annotations

import math

import pytest
import torch

from memlab.core import footprint
from memlab.core.errors import InvalidArgumentError
from memlab.kv_cache import granularity


@pytest.mark.parametrize("layout", granularity.LAYOUTS)
@pytest.mark.parametrize("P, bt", [(24, 1), (24, 5), (7, 16)])
def test_the_spans_cover_every_token_of_every_layer_once(layout, P, bt):
    L = 3
    spans = granularity.block_spans(L, P, bt, layout)
    assert len(spans) == math.ceil(P / bt) * (L if layout == "per-layer" else 1)
    seen = torch.zeros(L, P, dtype=torch.int64)
    for layer, t0, t1 in spans:
        seen[(slice(None) if layer is None else layer), t0:t1] += 1
    assert torch.equal(seen, torch.ones_like(seen))


@pytest.fixture(scope="module")
def sweep(tiny, tmp_path_factory):
    config = granularity.GranularityConfig(prefix_tokens=(8, 24), block_tokens=(1, 4, 32), repeats=1,
                                           suffix_tokens=3, new_tokens=3,
                                           folder=str(tmp_path_factory.mktemp("pool")))
    return granularity.run(tiny, config)


def test_every_tier_layout_and_block_size_restores_the_resident_cache(sweep):
    assert len(sweep) == 2 * 2 * 3 * len(granularity.TIERS)
    assert all(p.same_bytes for p in sweep)
    checked = [p.same_tokens for p in sweep if p.same_tokens is not None]
    assert checked and all(checked)
    assert len(checked) == 2 * len(granularity.TIERS)  # smallest prefix and block, each layout and tier


def test_block_bytes_and_transfers_follow_the_layout(tiny, sweep):
    cfg = tiny.config
    per_token_layer = footprint.kv_bytes_per_token(cfg, "fp32") // cfg.num_hidden_layers
    for p in sweep:
        tokens = min(p.block_tokens, p.prefix_tokens)
        layers = 1 if p.layout == "per-layer" else cfg.num_hidden_layers
        assert p.block_bytes == tokens * per_token_layer * layers
        assert p.num_bytes == footprint.kv_cache_bytes(cfg, p.prefix_tokens, dtype="fp32")
        assert p.num_transfers == math.ceil(p.prefix_tokens / p.block_tokens) * (cfg.num_hidden_layers // layers)


def test_cold_is_cold_and_warm_is_warm(sweep):
    assert max(f for p in sweep if p.tier.startswith("disk-cold") for f in p.page_cache_before) < 0.05
    assert min(f for p in sweep if p.tier == "disk-warm" for f in p.page_cache_before) > 0.95
    assert all(p.restore_best_s <= p.restore_s and p.recompute_best_s > 0 for p in sweep)


def test_a_wrong_block_table_would_be_caught(tiny, tmp_path):
    """same_bytes can fail: a pool whose blocks sit at each other's offsets restores the wrong cache."""
    full = torch.randn(2, 2, 1, 2, 8, 4)  # (L, 2, 1, K, P, D)
    pool = granularity.Pool(full, "per-layer", 2, tmp_path / "pool.kv")
    pool.offsets = pool.offsets[1:] + pool.offsets[:1]
    pool.host = pool.host[1:] + pool.host[:1]
    for tier in ("ram", "disk-warm"):
        cache = torch.empty_like(full)
        pool.restore(tier, cache)
        assert not torch.equal(cache, full)


@pytest.mark.parametrize("kw", [dict(block_tokens=()), dict(prefix_tokens=(0,)), dict(layouts=("diagonal",)),
                                dict(tiers=("tape",)), dict(repeats=0)])
def test_a_bad_config_is_refused_in_one_line(kw):
    with pytest.raises(InvalidArgumentError):
        granularity.GranularityConfig(**kw)
