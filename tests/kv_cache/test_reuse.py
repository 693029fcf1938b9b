"""The prefix-reuse experiment on the tiny model: same tokens every way, bytes as the formula says."""

from __future__ import annotations

import math

import pytest

from memlab.core import footprint, roofline
from memlab.core.errors import InvalidArgumentError
from memlab.kv_cache import reuse


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    config = reuse.ReuseConfig.quick(prefix_tokens=(8, 32), folder=str(tmp_path_factory.mktemp("kv")))
    return reuse.run(tiny, config)


def test_every_way_at_every_length_gives_the_recompute_tokens(runs):
    assert [(r.prefix_tokens, r.way) for r in runs] == [(p, w) for p in (8, 32) for w in reuse.ReuseConfig().ways]
    assert all(r.same_tokens for r in runs)
    for p in (8, 32):
        assert len({r.token_ids for r in runs if r.prefix_tokens == p}) == 1


def test_bytes_and_residency_are_what_the_physics_says(runs, tiny):
    for r in runs:
        assert r.kv_bytes == r.kv_bytes_predicted == footprint.kv_cache_bytes(tiny.config, r.prefix_tokens)
        assert r.file_bytes == r.kv_bytes
    assert all(max(r.page_cache_before) < 0.05 for r in runs if r.way == "disk-cold")
    assert all(min(r.page_cache_before) > 0.95 for r in runs if r.way == "disk-warm")


def test_ttft_is_the_prefix_part_plus_the_suffix_part(runs):
    for r in runs:
        assert len(r.ttft_runs_s) == r.num_repeats == 2
        assert all(t > 0 for t in r.ttft_runs_s + r.prefix_runs_s)
        assert min(r.ttft_runs_s) <= r.ttft_s <= max(r.ttft_runs_s)
        assert math.isnan(r.predicted_prefix_s)  # no ceilings given: no prediction, not a made-up one


def test_the_kv_files_are_removed_afterwards(runs, tmp_path_factory):
    assert not list(tmp_path_factory.getbasetemp().glob("kv*/*.kv"))


def test_predictions_follow_the_formulas(tiny):
    from memlab.core.ceilings import Ceilings
    fields = {f: 0 for f in Ceilings.__dataclass_fields__}
    c = Ceilings(**{**fields, "host": "h", "device": "cpu", "mode": "quick", "matmul_sizes": (), "measured_at": "",
                    "copy_gb_per_s": 10.0, "fp32_flop_per_s": 1e11, "disk_cold_gb_per_s": 1.0,
                    "disk_warm_gb_per_s": 5.0})
    kv = footprint.kv_cache_bytes(tiny.config, 100)
    assert reuse.predict_prefix_s("ram", tiny.config, 100, c) == pytest.approx(2 * kv / 10e9)
    assert reuse.predict_prefix_s("disk-cold", tiny.config, 100, c) == pytest.approx(kv / 1e9 + 2 * kv / 10e9)
    assert reuse.predict_prefix_s("recompute", tiny.config, 100, c) == pytest.approx(
        reuse.prefix_flops(tiny.config, 100) / 1e11)
    assert math.isnan(reuse.predict_prefix_s("pinned", tiny.config, 100, c))  # no GPU measured: nan
    # the suffix's FLOPs are what prefill of P + S adds to prefill of P, with the lm_head once
    work = reuse.suffix_workload(tiny.config, 100, 10)
    whole = roofline.prefill_workload(tiny.config, 110).flops
    assert reuse.prefix_flops(tiny.config, 100) + work.flops == pytest.approx(whole)


@pytest.mark.parametrize("kw,words", [
    (dict(prefix_tokens=()), "at least one length"),
    (dict(prefix_tokens=(0,)), "prefix_tokens must be >= 1, got 0"),
    (dict(repeats=0), "repeats must be >= 1, got 0"),
    (dict(suffix_tokens=0), "suffix_tokens must be >= 1, got 0"),
    (dict(ways=("ram", "tape")), "unknown way(s) ['tape']"),
])
def test_the_config_refuses_nonsense(kw, words):
    with pytest.raises(InvalidArgumentError) as e:
        reuse.ReuseConfig(**kw)
    assert words in str(e.value)


def test_a_prefix_beyond_the_context_is_refused(tiny):
    from memlab.core.errors import MemlabError
    with pytest.raises(MemlabError, match="context"):
        reuse.run(tiny, reuse.ReuseConfig.quick(prefix_tokens=(100000,)))
