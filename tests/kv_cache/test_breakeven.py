"""The break-even: fitted lines cross where the arithmetic says, and the spec-sheet crossover
agrees with the closed form of the worked solution."""

from __future__ import annotations

import math

import pytest

from memlab.core import footprint
from memlab.kv_cache import breakeven, reuse, solutions


def run(way, p, s):
    return reuse.ReuseRun(way, "m", "cpu", "fp32", p, 8, 0, 0, 0, (), s, math.nan, 0.0, math.nan, s, (s,), (s,),
                          (), True, 1)


def test_the_fitted_lines_cross_where_the_arithmetic_says():
    # recompute: 1 ms per token; disk: 5 ms fixed + 0.5 ms per token -> equal at 10 tokens
    runs = [run("recompute", p, 1e-3 * p) for p in (10, 100, 1000)] + \
           [run("disk-cold", p, 5e-3 + 0.5e-3 * p) for p in (10, 100, 1000)] + \
           [run("ram", p, 1e-6 * p) for p in (10, 100, 1000)]
    lines = breakeven.fit(runs)
    assert lines["disk-cold"].slope_s_per_token == pytest.approx(0.5e-3)
    got = {c.tier: c.crossover_tokens for c in breakeven.measured(runs)}
    assert got["disk-cold"] == pytest.approx(10.0)
    assert got["ram"] == pytest.approx(0.0, abs=1e-6)  # below recompute at every length (fit rounding aside)


def test_a_tier_slower_per_token_never_wins():
    slow = breakeven.Line("disk", 0.01, 2e-3)
    assert breakeven.crossover_tokens(slow, breakeven.Line("recompute", 0.0, 1e-3)) == math.inf


def test_one_length_gives_no_line():
    assert breakeven.measured([run("recompute", 10, 0.01), run("ram", 10, 0.001)]) == []


@pytest.mark.parametrize("model", ["llama-3.1-8b", "qwen2.5-7b"])
def test_the_spec_crossover_is_the_closed_form(model):
    config = footprint.resolve_config(model)
    flops, rates = breakeven.server_rates()
    for tier, rate in rates.items():
        got = breakeven.spec_crossover(config, flops, rate)
        want = solutions.server_crossover_tokens(config, flops, rate)
        assert got == want, (model, tier)
        if 0 < got < math.inf:  # just below it restoring loses, at it restoring wins
            p = int(got)
            assert breakeven.restore_s(config, [p], rate)[0] < breakeven.recompute_s(config, [p], flops)[0]
            assert breakeven.restore_s(config, [p - 1], rate)[0] >= breakeven.recompute_s(config, [p - 1], flops)[0]


def test_on_an_h100_nvme_flips_and_sata_never_pays_within_the_context():
    config = footprint.resolve_config("llama-3.1-8b")
    by_tier = {c.tier: c.crossover_tokens for c in breakeven.server(config)}
    assert by_tier["host RAM over PCIe 5.0 x16"] == 0.0
    assert 0 < by_tier["NVMe SSD"] < config["max_position_embeddings"] < by_tier["SATA SSD"]
    # half the peak FLOP/s (a realistic prefill) moves the NVMe crossover down
    half = {c.tier: c.crossover_tokens for c in breakeven.server(config, efficiency=0.5)}
    assert half["NVMe SSD"] < by_tier["NVMe SSD"]


def test_the_server_curves_are_the_formulas():
    config = footprint.resolve_config("llama-3.1-8b")
    curves = breakeven.server_curves(config, [1000])
    flops, rates = breakeven.server_rates()
    assert curves["recompute"][0] == pytest.approx(solutions.recompute_flops(config, 1000) / flops)
    assert curves["NVMe SSD"][0] == pytest.approx(footprint.kv_cache_bytes(config, 1000, dtype="bf16") / rates["NVMe SSD"])
