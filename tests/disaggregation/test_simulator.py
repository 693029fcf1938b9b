"""The SimPy serving simulator: invariants, determinism, and hand-computed cases."""

import json

import pytest

from memlab.disaggregation import simstats
from memlab.disaggregation.profiles import Profile, simple_profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestSpec, Traffic

EPS = 1e-9


def _flat(**kw):
    """A profile with round numbers so single requests can be checked by hand."""
    base = dict(name="flat", source="test", prefill_base_s=0.0, prefill_per_token_s=1e-3,
                prefill_per_token2_s=0.0, decode_base_s=0.01, decode_per_seq_s=0.0,
                decode_per_ctx_token_s=0.0, link_bytes_per_s=1e6, link_latency_s=0.001,
                kv_bytes_per_token=100)
    base.update(kw)
    return Profile(**base)


@pytest.mark.parametrize("mode", ["disagg", "colocated"])
@pytest.mark.parametrize("rate", [2.0, 50.0])
def test_invariants(mode, rate):
    w = Traffic(num_requests=300, rate_per_s=rate, prompt_tokens=200, prompt_spread=0.9,
                 output_tokens=20, output_spread=0.9, seed=3)
    cl = Cluster(mode, 2, 3, max_decode_batch=8)
    recs = simulate(simple_profile(), cl, w)
    assert [r.request_id for r in recs] == list(range(300))          # every request finishes
    for r in recs:
        assert r.ttft_s >= r.prefill_s - EPS
        assert r.prefill_started_at_s >= r.arrived_at_s - EPS
        assert r.transfer_started_at_s >= r.first_token_at_s - EPS
        assert r.decode_started_at_s >= r.transfer_ended_at_s - EPS   # never before the KV lands
        assert r.finished_at_s >= r.decode_started_at_s - EPS
        assert r.e2e_s == pytest.approx(r.finished_at_s - r.arrived_at_s)
        if mode == "colocated":
            assert r.transfer_s == 0 and r.kv_bytes == 0
        else:
            assert r.kv_bytes == r.prompt_tokens * simple_profile().kv_bytes_per_token


def test_seeded_and_deterministic():
    w = Traffic(num_requests=100, rate_per_s=20, prompt_spread=0.5, output_spread=0.5, seed=7)
    a = simulate(simple_profile(), Cluster(), w)
    b = simulate(simple_profile(), Cluster(), w)
    assert a == b
    c = simulate(simple_profile(), Cluster(), Traffic(num_requests=100, rate_per_s=20,
                                                       prompt_spread=0.5, output_spread=0.5, seed=8))
    assert a != c


def test_single_request_by_hand():
    """prefill 100 tok = 0.1 s; transfer 10 kB at 1 MB/s + 1 ms; 4 decode steps of 10 ms."""
    (r,) = simulate(_flat(), Cluster(), [RequestSpec(0, 1.0, 100, 5)])
    assert r.first_token_at_s == pytest.approx(1.1)
    assert r.ttft_s == pytest.approx(0.1)
    assert r.transfer_s == pytest.approx(0.011)
    assert r.decode_started_at_s == pytest.approx(1.111)
    assert r.finished_at_s == pytest.approx(1.151)
    assert r.tpot_s == pytest.approx(0.051 / 4)


def test_continuous_batching_join_at_step_boundary():
    """A second request joins the running batch at the next decode step, not at the end."""
    prof = _flat(prefill_per_token_s=0.0, link_latency_s=0.0, link_bytes_per_s=1e15)
    recs = simulate(prof, Cluster(), [RequestSpec(0, 0.0, 10, 101), RequestSpec(1, 0.105, 10, 11)])
    assert recs[1].decode_started_at_s == pytest.approx(0.11)            # boundary after 0.105
    assert recs[1].finished_at_s == pytest.approx(0.11 + 10 * 0.01)
    assert recs[0].finished_at_s == pytest.approx(1.0)                   # flat step cost: unchanged


def test_decode_cost_grows_with_context():
    """With a per-context-token cost the closed-form jump equals summing the steps one by one."""
    prof = _flat(decode_per_ctx_token_s=1e-5, decode_per_seq_s=1e-3, link_latency_s=0.0,
                 link_bytes_per_s=1e15, prefill_per_token_s=0.0)
    (r,) = simulate(prof, Cluster(), [RequestSpec(0, 0.0, 50, 31)])
    expected = sum(prof.decode_step_s(1, 51 + j) for j in range(30))
    assert r.finished_at_s - r.decode_started_at_s == pytest.approx(expected)


def test_colocated_prefill_interrupts_decode():
    """In colocated mode a new prompt stalls the running request's decode (interference)."""
    prof = _flat(prefill_per_token_s=1e-3)
    alone = simulate(prof, Cluster("colocated", 1, 1), [RequestSpec(0, 0.0, 10, 51)])
    # two workers, each decoding one request; a 200-token prompt lands on worker 0 at t = 0.1
    busy = [RequestSpec(0, 0.0, 10, 51), RequestSpec(1, 0.0, 10, 51), RequestSpec(2, 0.1, 200, 2)]
    shared = simulate(prof, Cluster("colocated", 1, 1), busy)
    assert shared[1].tpot_s == pytest.approx(alone[0].tpot_s)                 # untouched worker
    assert shared[0].tpot_s == pytest.approx(alone[0].tpot_s + 0.2 / 50)      # 0.2 s stall / 50 gaps
    # disaggregated: the same trace does not stall decode
    split = simulate(prof, Cluster("disagg", 1, 2), busy)
    assert split[0].finished_at_s - split[0].decode_started_at_s == pytest.approx(0.5)


def test_link_bandwidth_changes_tpot_not_ttft():
    w = Traffic(num_requests=50, rate_per_s=1.0, prompt_tokens=1000, output_tokens=8)
    fast = simstats.summarize(simulate(simple_profile(), Cluster(link_bytes_per_s=100e9), w))
    slow = simstats.summarize(simulate(simple_profile(), Cluster(link_bytes_per_s=0.1e9), w))
    assert fast.ttft_p50_s == pytest.approx(slow.ttft_p50_s)
    assert slow.tpot_p50_s > fast.tpot_p50_s + 0.2 / 7 * 0.9          # 20 MB at 0.1 GB/s = 0.2 s


def test_slo_attainment_and_goodput():
    w = Traffic(num_requests=200, rate_per_s=1.0, prompt_tokens=256, output_tokens=16)
    prof = simple_profile()
    low = simulate(prof, Cluster(), w)
    assert simstats.slo_attainment(low, 1.0, 1.0) == 1.0
    assert simstats.slo_attainment(low, 0.0, 1.0) == 0.0
    g = simstats.goodput(prof, Cluster(), w, ttft_slo_s=0.2, tpot_slo_s=0.05, iterations=8)
    assert g > 1.0
    at = simulate(prof, Cluster(), Traffic(200, g, 256, 0, 16))
    assert simstats.slo_attainment(at, 0.2, 0.05) >= 0.9
    s = simstats.summarize(low, Cluster(), 1.0, 1.0)
    assert s.slo_attainment == 1.0 and s.ttft_p50_s <= s.ttft_p99_s


def test_best_ratio_lists_every_split():
    w = Traffic(num_requests=60, rate_per_s=1.0, prompt_tokens=512, output_tokens=16)
    rows = simstats.best_ratio(simple_profile(), 3, w, 0.3, 0.05)
    assert sorted((p, d) for p, d, _ in rows) == [(0, 3), (1, 2), (2, 1)]
    assert rows[0][2] >= rows[-1][2]


def test_chrome_trace(tmp_path):
    recs = simulate(simple_profile(), Cluster(), Traffic(num_requests=5, rate_per_s=10))
    trace = simstats.chrome_trace(recs, tmp_path / "t.json")
    loaded = json.loads((tmp_path / "t.json").read_text())
    assert loaded == trace
    names = {e["name"].split()[0] for e in trace["traceEvents"]}
    assert {"prefill", "kv", "decode"} <= names
    assert all(e["dur"] >= 0 for e in trace["traceEvents"])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="mode"):
        Cluster(mode="pipelined")
    with pytest.raises(ValueError):
        Traffic(rate_per_s=0)


def test_ttft_can_include_the_transfer():
    prof = _flat()
    (a,) = simulate(prof, Cluster(), [RequestSpec(0, 0.0, 100, 5)])
    (b,) = simulate(prof, Cluster(ttft_includes_transfer=True), [RequestSpec(0, 0.0, 100, 5)])
    assert b.ttft_s == pytest.approx(a.ttft_s + a.transfer_s)
    assert b.prefill_s == pytest.approx(a.prefill_s) == pytest.approx(0.1)
    assert b.finished_at_s == pytest.approx(a.finished_at_s)
