"""Lab 09's worked solutions give the numbers the lab measures or computes, and a wrong answer is a miss."""

from __future__ import annotations

import pytest

from memlab.core import footprint
from memlab.course import exercises
from memlab.kv_cache import breakeven, reuse, solutions


def test_kv_file_bytes_is_the_file_the_lab_writes(tiny, tmp_path):
    from memlab.core.text import prompt_ids
    from memlab.kv_cache import tiers
    prefix = tiers.compute_prefix(tiny, prompt_ids(tiny.tokenizer, 40))
    size = tiers.save(prefix, tmp_path / "p.kv")
    assert solutions.kv_file_bytes(tiny.config, 40) == size
    assert exercises.grade("09-kv-bytes", size * 2, size, rel=0.001) is False  # K only, or fp64: a miss


def test_recompute_flops_is_the_package_count():
    for model in ("llama-3.1-8b", "smollm2-135m"):
        config = footprint.resolve_config(model)
        for p in (1, 100, 4096):
            assert solutions.recompute_flops(config, p) == pytest.approx(reuse.prefix_flops(config, p), rel=1e-12)
    config = footprint.resolve_config("llama-3.1-8b")
    two_n_p = 2 * footprint.num_params(config) * 4096  # the familiar 2 N P forgets attention and counts the table
    assert exercises.grade("09-flops", two_n_p, reuse.prefix_flops(config, 4096), rel=0.02) is False


def test_server_crossover_solution_and_a_miss():
    config = footprint.resolve_config("llama-3.1-8b")
    flops, rates = breakeven.server_rates()
    want = breakeven.spec_crossover(config, flops, rates["NVMe SSD"])
    assert exercises.grade("09-crossover", solutions.server_crossover_tokens(config, flops, rates["NVMe SSD"]),
                           want, rel=0.01) is True
    # ignoring attention (recompute linear in P) gives "never": a miss, not a near one
    assert exercises.grade("09-crossover", 0.0, want, rel=0.01) is False


def test_block_restore_s_counts_the_transfers_the_sweep_makes(tiny):
    from memlab.kv_cache import blockfit, granularity
    fit = blockfit.TierFit("disk-cold", 300e-6, 1e9, 1.0, 8)
    L = tiny.config.num_hidden_layers
    for layout in granularity.LAYOUTS:
        n = len(granularity.block_spans(L, 64, 3, layout))
        want = blockfit.predict_s(fit, n, footprint.kv_cache_bytes(tiny.config, 64))
        assert solutions.block_restore_s(tiny.config, fit, 64, 3, layout) == pytest.approx(want, rel=1e-12)
    per_layer = solutions.block_restore_s(tiny.config, fit, 64, 3)
    one_read = solutions.block_restore_s(tiny.config, fit, 64, 64)  # forgets that every block is a transfer
    assert exercises.grade("09-blocks", one_read, per_layer, band=solutions.BLOCKS_BAND) is False
