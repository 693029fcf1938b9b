"""`memlab simulate` and `memlab disagg` (issue 7)."""

import json

import pytest

from memlab import cli


def test_simulate_json_fields(capsys):
    assert cli.main(["simulate", "--profile", "simple", "--rate", "5", "--requests", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("ttft_p50_s", "tpot_p50_s", "slo_attainment", "num_prefill_workers", "profile"):
        assert key in out
    assert out["num_requests"] == 50 and out["profile"]["name"] == "simple"


def test_simulate_workers_and_link(capsys, tmp_path):
    trace = tmp_path / "t.json"
    assert cli.main(["simulate", "--profile", "simple", "--prefill-workers", "2", "--decode-workers", "3",
                     "--link-gbps", "1", "--requests", "30", "--trace", str(trace), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["num_prefill_workers"], out["num_decode_workers"]) == (2, 3)
    assert json.loads(trace.read_text())["traceEvents"]


def test_disagg_needs_real(capsys):
    assert cli.main(["disagg"]) == 2
    assert "--real" in capsys.readouterr().out


@pytest.mark.slow
def test_disagg_real_json(capsys, real):
    assert cli.main(["disagg", "--real", "--prompt-tokens", "32", "--max-new-tokens", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens_match"] is True
    assert out["kv_bytes"] == out["kv_bytes_predicted"] == 32 * 46_080
    for key in ("transfer_s", "split_ttft_s", "split_tpot_s", "colocated_ttft_s", "colocated_tpot_s"):
        assert out[key] > 0


def test_simulate_goodput_json(capsys):
    assert cli.main(["simulate", "--profile", "simple", "--goodput", "--slo", "distserve-code-opt-66b",
                     "--requests", "80", "--goodput-iterations", "6", "--prefill-workers", "1",
                     "--decode-workers", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_workers"] == 3 and out["slo"]["name"] == "distserve-code-opt-66b"
    assert "DistServe" in out["slo"]["source"]
    for mode in ("colocated", "disagg"):
        g = out[mode]
        assert g["mode"] == mode and g["num_workers"] == 3 and g["target"] == 0.9
        for key in ("rate_per_s", "goodput_per_worker", "resolution_per_s", "attainment_at_rate",
                    "attainment_above", "is_bracketed", "num_simulations"):
            assert key in g
        assert g["goodput_per_worker"] == pytest.approx(g["rate_per_s"] / 3)
        assert g["ttft_slo_s"] == 0.125 and g["tpot_slo_s"] == 0.2


def test_simulate_goodput_text_and_custom_slo(capsys):
    assert cli.main(["simulate", "--profile", "simple", "--goodput", "--ttft-slo", "0.5", "--tpot-slo", "0.05",
                     "--slo-target", "0.8", "--requests", "60", "--goodput-iterations", "4"]) == 0
    text = capsys.readouterr().out
    assert "colocated" in text and "disaggregated 1P:1D" in text and "80% of requests" in text


def test_simulate_replay_fields(capsys, tmp_path):
    from memlab.disaggregation import traces
    path = traces.write_trace(traces.synthetic_trace(num_requests=40), tmp_path / "t.jsonl")
    assert cli.main(["simulate", "--profile", "simple", "--replay", str(path), "--rate", "2",
                     "--prefix-cache-blocks", "500", "--mode", "colocated", "--chunk-tokens", "256", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trace_file"] == str(path) and out["trace_requests"] == out["num_requests"] == 40
    assert 0 < out["prefix_hit_share"] < 1 and 0 < out["cached_token_share"] < 1
    assert out["prefix_cache_blocks"] == 500 and out["prefill_chunk_tokens"] == 256
    assert out["rate_per_s"] == pytest.approx(2.0)


def test_simulate_published_profile_and_bad_trace(capsys, tmp_path):
    assert cli.main(["simulate", "--profile", "distserve-opt-13b-a100-tp1", "--requests", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["source"].startswith("published: DistServe")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 5, "output_length": 2, "hash_ids": [1]}\n{"timestamp": 1}\n')
    assert cli.main(["simulate", "--profile", "simple", "--replay", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "line 2: missing field(s)" in err and len(err.strip().splitlines()) == 1
