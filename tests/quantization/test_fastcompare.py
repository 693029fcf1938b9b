"""Every precision through the fast path: bytes counted, tokens checked against the eager variants."""

import pytest
import torch

from memlab.core import fastpath
from memlab.core.errors import InvalidArgumentError
from memlab.quantization import fastcompare, quantize, records


@pytest.mark.parametrize("variant", ["fp32", "int8", "int4", "int4-fast"])
def test_streamed_bytes_equal_the_eager_variants(tiny, variant):
    """The fast path reads what the eager variant holds, but for RoPE's inv_freq (it reads its tables)."""
    linear, head = fastcompare.LINEARS[variant]
    fast = fastpath.FastLlama(tiny.model, max_len=8, linear=linear, lm_head=head)
    eager = quantize.build(tiny.model, quantize.VARIANTS[variant])
    rope = sum(b.numel() * b.element_size() for b in eager.model.rotary_emb.buffers())
    assert fastcompare.streamed_bytes(fast) == records.streamed_bytes(eager) - rope


def test_fewer_bytes_for_fewer_bits(tiny):
    counts = [fastcompare.streamed_bytes(fastpath.FastLlama(tiny.model, 8, linear=lin, lm_head=head))
              for lin, head in (fastcompare.LINEARS[v] for v in ("fp32", "int8", "int4", "int4-fast"))]
    assert counts[0] > counts[1] > counts[2] > counts[3]


def test_measure_rejects_an_unknown_variant(tiny):
    with pytest.raises(InvalidArgumentError, match="fast path runs"):
        fastcompare.measure(tiny.model, [1, 2, 3], 4, "ao-int8")


def test_measure_runs_and_counts(tiny):
    run, nbytes, mm_s, _ = fastcompare.measure(tiny.model, [1, 2, 3, 4], 5, "int4", repeats=1)
    assert run.weights == "Int4Linear" and len(run.token_ids) == 5 and nbytes > 0 and mm_s > 0
    assert run.decode_tok_per_s > 0 and run.prefill_s > 0


def test_measure_runs_the_engine_it_is_given(tiny):
    # lab 04 shows an engine's kernels before it decodes: the run must be that engine's, not a new one
    built = fastcompare.engine(tiny.model, [1, 2, 3, 4], 5, "int4")
    run, _, _, choice = fastcompare.measure(tiny.model, [1, 2, 3, 4], 5, "int4", repeats=1, fast=built)
    assert choice is built.kernels and run.weights == "Int4Linear"


@pytest.mark.slow
def test_compare_on_the_real_model(real):
    from memlab.quantization import quantcompare, records
    cfg = records.QuantConfig.quick(variants=("fp32", "int8", "int4"), new_tokens=8, ppl_tokens=16)
    results = quantcompare.compare(cfg, progress=False, base=real)
    rows = fastcompare.compare(real, results, 30e9, cfg, variants=("fp32", "int8", "int4"), repeats=1,
                               progress=False)
    assert [r.variant for r in rows] == ["fp32", "int8", "int4"]
    assert rows[0].vs_fp32 == 1.0 and rows[0].byte_ratio == 1.0
    assert rows[0].same_tokens  # fp32: the fast path's greedy tokens are the eager loop's
    assert rows[1].byte_ratio > 1 and rows[2].byte_ratio > rows[1].byte_ratio
    assert all(0 < r.of_bound for r in rows)
    assert torch.tensor([r.streamed_bytes for r in rows]).diff().lt(0).all()


def test_quant_cli_fast_json(tmp_path, monkeypatch, capsys):
    import json

    from memlab.cli import main
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    assert main(["quant", "--model", "tiny", "--variants", "fp32,int4", "--quick", "--fast", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in out["variants"]] == ["fp32", "int4"]
    fast = {r["variant"]: r for r in out["fast"]}
    assert list(fast) == ["fp32", "int4"] and fast["fp32"]["same_tokens"] is True
    assert fast["int4"]["byte_ratio"] > 1 and fast["int4"]["weights"] == "Int4Linear"
    assert set(fast["fp32"]) >= {"decode_tok_per_s", "of_bound", "vs_fp32", "of_byte_ratio", "streamed_bytes"}


@pytest.mark.parametrize("cls", [quantize.Int8Linear, quantize.Int4Linear])
def test_a_fused_quantized_matrix_gives_the_products_of_its_parts(cls):
    """Per-row codes and scales do not depend on the rows beside them: fusing changes no product."""
    torch.manual_seed(0)
    q, k = torch.nn.Linear(64, 64, bias=False), torch.nn.Linear(64, 32, bias=False)
    fused = torch.nn.Linear(64, 96, bias=False)
    fused.weight.data = torch.cat([q.weight.data, k.weight.data])
    x = torch.randn(3, 64)
    assert torch.equal(cls(fused)(x), torch.cat([cls(q)(x), cls(k)(x)], -1))
