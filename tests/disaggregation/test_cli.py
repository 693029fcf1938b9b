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
