"""Published fitted latency models as profiles, and chunked prefill in the colocated mode."""

import pytest

from memlab.core.errors import InvalidArgumentError
from memlab.disaggregation import published, simstats
from memlab.disaggregation.profiles import Profile, simple_profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestSpec, Traffic


def test_distserve_formula_by_hand():
    m = published.model("distserve-opt-13b-a100-tp1")
    a, b, c = 16.456860431694288, 0.09264750660897617, 6.474785740229194e-06   # the JSON's "prefill", ms
    assert m.prefill_s([300, 700]) == pytest.approx((a + b * 1000 + c * (300**2 + 700**2)) / 1e3, rel=1e-12)
    a, b, c = 19.934702624895458, 0.0006269356524350583, 0.03850697740828398  # "decoding_smallbs", ms
    assert m.decode_step_s(8, 4000) == pytest.approx((a + b * 4000 + c * 8) / 1e3, rel=1e-12)
    with pytest.raises(InvalidArgumentError, match="under 95"):
        m.decode_step_s(95, 4000)
    assert m.kv_bytes_per_token == 2 * 40 * 5120 * 2                           # OPT-13B, fp16


@pytest.mark.parametrize("name", sorted(published.MODELS))
def test_a_published_model_is_a_profile_with_its_source(name):
    m = published.model(name)
    p = m.profile("100 Gb Ethernet")
    assert isinstance(p, Profile) and p.source.startswith("published: DistServe") and "commit" in p.source
    assert p.link_bytes_per_s == 100e9 / 8 and p.kv_bytes_per_token == m.kv_bytes_per_token
    for tokens in ([1], [512], [128, 2048, 333]):
        assert p.prefill_s(tokens) == pytest.approx(m.prefill_s(tokens), rel=1e-12)
    for bsz, ctx in ((1, 10), (32, 32 * 900), (94, 94 * 2000)):
        assert p.decode_step_s(bsz, ctx) == pytest.approx(m.decode_step_s(bsz, ctx), rel=1e-12)
    recs = simulate(p, Cluster("disagg", 1, 1), Traffic(num_requests=30, rate_per_s=5.0, prompt_tokens=400))
    assert len(recs) == 30 and all(r.ttft_s >= r.prefill_s for r in recs)


def test_unknown_model_lists_the_names():
    with pytest.raises(InvalidArgumentError, match="known: distserve-opt-13b"):
        published.model("gpt-5")


def test_mixed_step_cost():
    p = simple_profile()
    assert p.mixed_step_s([], 4, 400) == pytest.approx(p.decode_step_s(4, 400))
    assert p.mixed_step_s([(0, 100)], 0, 0) == pytest.approx(p.prefill_s([100]))
    chunk = p.prefill_s([100])
    assert p.mixed_step_s([(0, 100)], 4, 400) == pytest.approx(max(chunk, p.decode_base_s) + 4e-3 + 400e-6)
    q = Profile("q", "test", 0.0, 1e-3, 1e-6, 0.0, 0.0, 0.0, 1e9, 0.0, 1)
    chunks = sum(q.mixed_step_s([(off, 100)], 0, 0) for off in range(0, 1000, 100))
    assert chunks == pytest.approx(q.prefill_s([1000]))           # chunks add up to the whole quadratic term


def test_one_prompt_alone_is_chunked_into_steps():
    p = Profile("flat", "test", 0.0, 1e-3, 0.0, 0.01, 0.0, 0.0, 1e9, 0.0, 1)
    (r,) = simulate(p, Cluster("colocated", 1, 1, prefill_chunk_tokens=100), [RequestSpec(0, 0.0, 250, 3)])
    assert r.ttft_s == pytest.approx(0.25)                        # 100 + 100 + 50 tokens, no decodes to mix
    assert r.prefill_s == pytest.approx(0.25) and r.finished_at_s == pytest.approx(0.27)


def test_chunked_prefill_lowers_decode_stalls_and_costs_ttft():
    """Mixed load: long prompts arrive while others decode. Chunks spare the decodes, prompts wait longer."""
    prof = simple_profile()
    work = Traffic(num_requests=300, rate_per_s=5.0, prompt_tokens=512, prompt_spread=0.5, output_tokens=64,
                    output_spread=0.5, seed=1)
    whole = simstats.summarize(simulate(prof, Cluster("colocated", 1, 1), work))
    for chunk in (64, 128, 256):
        cl = Cluster("colocated", 1, 1, prefill_chunk_tokens=chunk)
        recs = simulate(prof, cl, work)
        assert len(recs) == 300
        s = simstats.summarize(recs, cl)
        assert s.tpot_p90_s < whole.tpot_p90_s, chunk
        assert s.ttft_p50_s > whole.ttft_p50_s, chunk
        for r in recs:
            assert r.ttft_s >= r.prefill_s - 1e-9 and r.finished_at_s >= r.first_token_at_s


def test_chunked_prefill_is_colocated_only():
    with pytest.raises(InvalidArgumentError, match="colocated"):
        Cluster("disagg", 1, 1, prefill_chunk_tokens=256)
    with pytest.raises(InvalidArgumentError):
        Cluster("colocated", 1, 1, prefill_chunk_tokens=-1)
