"""Mooncake-format traces: parsing, the prefix-hit share, the shipped synthetic trace, the prefix cache."""

import json
from dataclasses import replace

import pytest

from memlab.core.errors import InvalidArgumentError
from memlab.disaggregation import simstats, traces
from memlab.disaggregation.prefix_cache import PrefixCache, cached_tokens, leading_hits
from memlab.disaggregation.profiles import simple_profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestSpec

HAND = [  # arrival ms, input tokens, output tokens, 512-token block ids
    {"timestamp": 0, "input_length": 1200, "output_length": 10, "hash_ids": [1, 2, 3]},
    {"timestamp": 1000, "input_length": 1500, "output_length": 5, "hash_ids": [1, 2, 4]},     # 2 leading hits
    {"timestamp": 2000, "input_length": 1000, "output_length": 0, "hash_ids": [9, 2]},        # 2 is seen, 9 is not: 0
    {"timestamp": 3500, "input_length": 512, "output_length": 8, "hash_ids": [1]},            # a whole-prompt hit
]


def _write(tmp_path, rows, name="t.jsonl"):
    return traces.write_trace(rows, tmp_path / name)


def test_parse_a_hand_made_trace(tmp_path):
    specs = traces.read_trace(_write(tmp_path, HAND))
    assert [s.request_id for s in specs] == [0, 1, 2, 3]
    assert [s.arrived_at_s for s in specs] == [0.0, 1.0, 2.0, 3.5]
    assert [s.prompt_tokens for s in specs] == [1200, 1500, 1000, 512]
    assert [s.output_tokens for s in specs] == [10, 5, 1, 8]          # output 0 still makes the prefill's token
    assert specs[1].block_hashes == (1, 2, 4)
    # hits: 0 + 2 + 0 + 1 of 3 + 3 + 2 + 1 blocks
    assert traces.prefix_hit_share(specs) == pytest.approx(3 / 9)
    assert traces.read_trace(_write(tmp_path, HAND), max_requests=2)[-1].request_id == 1


@pytest.mark.parametrize("line, what", [
    ('{"timestamp": 0, "input_length": 10, "output_length": 1}', "line 2: missing field(s) hash_ids"),
    ('{"timestamp": -5, "input_length": 10, "output_length": 1, "hash_ids": []}', "line 2: 'timestamp'"),
    ('{"timestamp": 0, "input_length": 0, "output_length": 1, "hash_ids": []}', "line 2: 'input_length' must be"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1.5, "hash_ids": []}', "line 2: 'output_length'"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": ["a"]}', "line 2: 'hash_ids'"),
    ('{"timestamp": 0, "input_length": 10', "line 2: not JSON"),
    ('[1, 2]', "line 2: expected a JSON object"),
])
def test_a_bad_line_is_named_by_number(tmp_path, line, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(HAND[0]) + "\n" + line + "\n")
    with pytest.raises(InvalidArgumentError) as e:
        traces.read_trace(path)
    assert what in str(e.value) and "\n" not in str(e.value)


def test_a_file_that_is_not_text_is_refused_at_its_line(tmp_path):
    """Not "UnicodeDecodeError": the line, that it is not text, and what a trace is (gzip: unpack it)."""
    import gzip
    path = tmp_path / "binary.jsonl"
    path.write_bytes(json.dumps(HAND[0]).encode() + b"\n" + bytes(range(128, 256)) + b"\n")
    with pytest.raises(InvalidArgumentError, match=r"binary.jsonl, line 2: not text: a trace is a Mooncake-format JSONL"):
        traces.read_trace(path)
    packed = tmp_path / "trace.jsonl.gz"
    packed.write_bytes(gzip.compress(json.dumps(HAND[0]).encode() + b"\n"))
    with pytest.raises(InvalidArgumentError, match=r"line 1: not text \(gzip-compressed: gunzip it first\)"):
        traces.read_trace(packed)


def test_empty_or_missing_trace_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InvalidArgumentError, match="no requests"):
        traces.read_trace(tmp_path / "empty.jsonl")
    with pytest.raises(InvalidArgumentError, match="no trace file"):
        traces.read_trace(tmp_path / "nope.jsonl")


def test_the_shipped_trace_is_the_documented_function_output():
    path = traces.synthetic_path()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == traces.synthetic_trace()                       # made by synthetic_trace() with its defaults
    assert 10 <= len(rows) <= 500
    specs = traces.read_trace(path)
    assert 0.2 < traces.prefix_hit_share(specs) < 0.9             # sessions share prefixes, not everything
    for r in rows:
        assert len(r["hash_ids"]) == -(-r["input_length"] // 512)  # one id per (started) 512-token block


def test_with_rate_rescales_arrivals_only(tmp_path):
    specs = traces.read_trace(_write(tmp_path, HAND))
    fast = traces.with_rate(specs, 6.0)
    assert fast[-1].arrived_at_s == pytest.approx(3 / 6.0)
    assert [(s.prompt_tokens, s.block_hashes) for s in fast] == [(s.prompt_tokens, s.block_hashes) for s in specs]


def test_lru_prefix_cache():
    c = PrefixCache(3)
    assert c.lookup(1024, (1, 2)) == 0
    c.insert((1, 2))
    assert c.lookup(1500, (1, 2, 5)) == 1024
    assert c.lookup(1024, (1, 2)) == 1023                         # a full hit still computes the last token
    c.insert((7, 8))                                               # capacity 3: evicts the oldest, 1
    assert len(c) == 3 and c.lookup(1024, (1, 2)) == 0
    assert leading_hits((4, 5, 6), {4, 6}) == 1 and cached_tokens(100, 3) == 99


def test_prefix_cache_lowers_prefill_work(tmp_path):
    specs = traces.read_trace(_write(tmp_path, HAND))
    off = simulate(simple_profile(), Cluster(), specs)
    on = simulate(simple_profile(), Cluster(prefix_cache_blocks=100), specs)
    assert [r.cached_tokens for r in off] == [0, 0, 0, 0]
    assert [r.cached_tokens for r in on] == [0, 1024, 0, 511]      # leading hits x 512, at least 1 token computed
    prof = simple_profile()
    for r, s in zip(on, specs):
        assert r.prefill_s == pytest.approx(prof.prefill_s([s.prompt_tokens - r.cached_tokens]))
    assert sum(r.prefill_s for r in on) < sum(r.prefill_s for r in off)
    assert simstats.cached_token_share(on) == pytest.approx(1535 / 4212)
    assert [r.kv_bytes for r in on] == [r.kv_bytes for r in off]   # the decode worker still gets the whole cache


def test_unbounded_cache_hits_what_the_trace_says():
    """Well-spaced arrivals and room for every block: the simulator hits exactly the offline leading runs."""
    specs = traces.read_trace(traces.synthetic_path(), max_requests=60)
    spaced = [replace(s, arrived_at_s=10.0 * s.request_id) for s in specs]
    recs = simulate(simple_profile(), Cluster(prefix_cache_blocks=10**6), spaced)
    seen, expected = set(), []
    for s in spaced:
        expected.append(cached_tokens(s.prompt_tokens, leading_hits(s.block_hashes, seen)))
        seen.update(s.block_hashes)
    assert [r.cached_tokens for r in recs] == expected
    small = simulate(simple_profile(), Cluster(prefix_cache_blocks=4), spaced)
    assert sum(r.cached_tokens for r in small) < sum(expected)     # a small LRU forgets


def test_cache_lowers_median_ttft_on_the_shipped_trace():
    specs = traces.with_rate(traces.read_trace(traces.synthetic_path()), 3.0)
    base = simstats.summarize(simulate(simple_profile(), Cluster("colocated", 1, 1), specs))
    cached = simstats.summarize(simulate(simple_profile(), Cluster("colocated", 1, 1, prefix_cache_blocks=2000), specs))
    assert cached.ttft_p50_s < base.ttft_p50_s


def test_requests_without_block_ids_never_hit():
    specs = [RequestSpec(i, float(i), 600, 4) for i in range(5)]
    assert all(r.cached_tokens == 0 for r in simulate(simple_profile(), Cluster(prefix_cache_blocks=10), specs))
