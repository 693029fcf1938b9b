"""Issue 4's CLI: `memlab load`, `memlab ttft`, `memlab generate --strategy/--cold` on the tiny model."""

import json

from memlab import cli


def test_load_json_reports_a_verified_cold_load(tiny_dir, capsys):
    assert cli.main(["load", "--model", str(tiny_dir), "--strategy", "mmap", "--cold", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["strategy"] == "mmap" and rec["is_cold"] and rec["page_cache_before"] < 0.05
    assert rec["checkpoint_bytes"] > 0 and rec["load_time_s"] > 0


def test_generate_with_a_paged_strategy(tiny_dir, capsys):
    assert cli.main(["generate", "hi", "--model", str(tiny_dir), "--strategy", "paged-prefetch",
                     "--cold", "--max-new-tokens", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_tokens"] <= 3


def test_ttft_json(tiny_dir, capsys):
    assert cli.main(["ttft", "--model", str(tiny_dir), "--prompt-tokens", "4,16", "--repeats", "1",
                     "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["prompt_tokens"] for p in doc["points"]] == [4, 16]
    assert doc["load"]["strategy"] == "resident" and doc["ceilings"]["matmul_flop_per_s"] > 0


def test_guard_refusal_is_one_line(tmp_path, capsys):
    from memlab.core import models
    models.tiny_config(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                       num_key_value_heads=8, vocab_size=128256).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x02" + b"\x00" * 7 + b"{}")  # no weights: the guard stops first
    assert cli.main(["load", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memlab: error: Predicted footprint") and "mmap" in err
