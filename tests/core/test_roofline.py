"""Roofline arithmetic, checked against the tensors a model really holds."""

import pytest
import torch

from memlab.core import footprint, roofline


def _param_bytes(model) -> int:
    seen, total = set(), 0
    for p in model.parameters():  # tied weights count once, as they are read once
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def test_decode_bytes_are_the_weights_plus_kv(tiny):
    cfg = tiny.model.config
    w = roofline.decode_workload(cfg, batch_size=1, context_tokens=0)
    kv = footprint.kv_bytes_per_token(cfg, "fp32")
    assert w.bytes == _param_bytes(tiny.model) + kv


def test_matmul_flops_match_linear_layers(tiny):
    model = tiny.model
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert roofline.matmul_params(model.config) == linear


def test_batching_raises_intensity_not_weight_bytes(tiny):
    cfg = tiny.model.config
    one = roofline.decode_workload(cfg, 1, 100)
    eight = roofline.decode_workload(cfg, 8, 100)
    assert eight.flops == pytest.approx(8 * one.flops)
    assert eight.bytes < 8 * one.bytes
    assert eight.intensity_flop_per_byte > 4 * one.intensity_flop_per_byte


def test_predict_picks_the_binding_roof(tiny):
    cfg = tiny.model.config
    dec = roofline.decode_workload(cfg, 1, 10)
    p = roofline.predict(dec, peak_flop_per_s=1e12, bandwidth_bytes_per_s=1e9)
    assert p.bound == "memory" and p.time_s == pytest.approx(dec.bytes / 1e9)
    assert p.tok_per_s == pytest.approx(1e9 / dec.bytes)
    pre = roofline.prefill_workload(cfg, 200)
    q = roofline.predict(pre, peak_flop_per_s=1e6, bandwidth_bytes_per_s=1e12)
    assert q.bound == "compute" and q.tok_per_s == pytest.approx(200 / (pre.flops / 1e6))
    ridge = 1e12 / 1e9  # peak / bandwidth: the ridge point (memory_wall.points.ridge_point)
    assert roofline.attainable_flop_per_s(ridge / 2, 1e12, 1e9) == pytest.approx(5e11)
    assert roofline.attainable_flop_per_s(ridge * 2, 1e12, 1e9) == 1e12


def test_prefill_flops_by_hand():
    cfg = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, vocab_size=10,
               num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    # per layer: q 8*8 + k,v 2*8*4 + o 8*8 = 192; mlp 3*8*16 = 384; lm_head 10*8 = 80
    assert roofline.matmul_params(cfg) == 192 + 384 + 80
    w = roofline.prefill_workload(cfg, 3)
    attn = 4 * 1 * 2 * 4 * (1 + 2 + 3)
    assert w.flops == 2 * (192 + 384) * 3 + 2 * 80 + attn


@pytest.mark.slow
def test_real_model_bytes_match_tensors(real):
    w = roofline.decode_workload(real.model.config, 1, 0)
    kv = footprint.kv_bytes_per_token(real.model.config, "fp32")
    assert w.bytes - kv == _param_bytes(real.model)


def test_cli_roofline_json(tiny_dir, tmp_path, monkeypatch, capsys):
    import json

    from memlab.core import ceilings
    from memlab import cli
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(ceilings, "measure", lambda quick=True, **kw: ceilings.measure_now(quick=True))
    out_png = tmp_path / "roof.png"
    assert cli.main(["roofline", "--model", str(tiny_dir), "--json", "--max-new-tokens", "4",
                     "--out", str(out_png)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["predicted_decode_tok_per_s"] > 0 and rep["measured_decode_tok_per_s"] > 0
    assert rep["fast_same_tokens"] is True
    assert rep["decode_fraction_of_bound"] == pytest.approx(
        rep["measured_decode_tok_per_s"] / rep["predicted_decode_tok_per_s"])
    assert out_png.stat().st_size > 0


def test_a_cache_that_keeps_bytes_between_steps_raises_the_memory_bound():
    w = roofline.Workload("decode", 1, 1, 0, 1e6, 1e9, "fp32")
    plain = roofline.predict(w, 1e15, 1e10)
    cached = roofline.predict(w, 1e15, 1e10, cached_bytes=0.9e9)
    assert plain.memory_s == pytest.approx(0.1) and cached.memory_s == pytest.approx(0.01)
    assert roofline.predict(w, 1e15, 1e10, cached_bytes=2e9).bound == "compute"  # all of it fits
