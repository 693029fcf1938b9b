"""The fast decode path gives the same greedy tokens as memlab.core.generation."""

import pytest
import torch

import memlab as ml
from memlab.core import fastpath


def _reference(loaded, ids, n):
    r = ml.generate(loaded, ids, max_new_tokens=n, stop_at_eos=False)
    return list(r.token_ids)


def _same_logits(fast, model, ids, **tol):
    """The fast path's prefill and three steps against transformers' (memlab's generation loop), logit by logit."""
    with torch.inference_mode():
        cache = ml.generation.new_cache(model)
        ref = ml.generation.prefill(model, ids, cache)
        torch.testing.assert_close(fast.prefill(ids), ref, **tol)
        tok = ref.argmax(-1, keepdim=True)
        for pos in range(ids.shape[1], ids.shape[1] + 3):
            ref = ml.generation.decode_step(model, tok, cache)
            torch.testing.assert_close(fast.step(tok, pos), ref, **tol)
            tok = ref.argmax(-1, keepdim=True)


def test_same_tokens_as_generation(tiny):
    ids = list(range(5, 25))
    ref = _reference(tiny, ids, 12)
    r = fastpath.fast_generate(tiny.model, torch.tensor([ids]), 12)
    assert list(r.token_ids) == ref
    assert r.new_tokens == 12 and len(r.itl_s) == 11
    assert r.setup_s > 0 and r.warmup_s > 0 and r.decode_tok_per_s > 0


def test_same_logits_step_by_step(tiny):
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    model = tiny.model
    fast = fastpath.FastLlama(model, max_len=16)
    with torch.inference_mode():
        cache = ml.generation.new_cache(model)
        ref = ml.generation.prefill(model, ids, cache)
        got = fast.prefill(ids)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
        tok = ref.argmax(-1, keepdim=True)
        for pos in range(8, 12):
            ref = ml.generation.decode_step(model, tok, cache)
            got = fast.step(tok, pos)
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
            tok = ref.argmax(-1, keepdim=True)


@pytest.mark.parametrize("kernel", ["auto", "linear", "matmul-t", "blas", "c"])
def test_weights_are_shared_not_copied(tiny, kernel):
    fast = fastpath.FastLlama(tiny.model, max_len=8, kernels=kernel)
    attn = tiny.model.model.layers[0].self_attn
    qkv = fast.layers[0]["qkv"]
    qkv = qkv if isinstance(qkv, torch.Tensor) else qkv.weight_view()  # a kernels.Gemv
    assert attn.q_proj.weight.data_ptr() == qkv.data_ptr()
    assert attn.k_proj.weight.data_ptr() == qkv[attn.q_proj.weight.shape[0]:].data_ptr()
    head = fast.lm_head if isinstance(fast.lm_head, torch.Tensor) else fast.lm_head.weight_view()
    assert tiny.model.lm_head.weight.data_ptr() == head.data_ptr() == fast.embed.data_ptr()


@pytest.mark.parametrize("kernel", ["matmul-t", "blas", "c"])
def test_every_kernel_gives_the_same_tokens(tiny, kernel):
    ids = list(range(5, 25))
    ref = _reference(tiny, ids, 12)
    fast = fastpath.FastLlama(tiny.model, max_len=32, kernels=kernel)
    r = fastpath.fast_generate(tiny.model, torch.tensor([ids]), 12, fast=fast)
    assert list(r.token_ids) == ref
    assert fast.threads == (1 if kernel == "blas" else 0)
    assert list(ml.generate(tiny, ids, max_new_tokens=12, stop_at_eos=False).token_ids) == ref  # the model still works


def test_a_measured_choice_is_shown_and_cached(tiny, monkeypatch):
    monkeypatch.setattr(ml.kernels, "busy_reason", lambda since=None: "")  # a busy machine's timings are not kept: not here
    fast = fastpath.FastLlama(tiny.model, max_len=8, kernels="auto")
    choice = fast.kernels
    assert {r for r, _ in choice.kernels} == {"qkv", "o", "gate_up", "down", "head"}
    assert choice.step_threads == (fast.threads or torch.get_num_threads())
    if len(choice.options) > 1:  # the engine timed the rest of a step at each thread count
        assert all(rest > 0 for _, _, rest in choice.options) and choice.rest_s > 0
    rows = choice.rows()
    assert sum(r["chosen"] for r in rows) == 5 and all(r["GB_per_s"] > 0 for r in rows)
    assert fast.rest_seconds(1) > 0 and fast.matmul is ml.fastpath.matmul  # the stub is put back
    assert all(r["threads"] == 1 for r in rows if r["kernel"] == "blas")  # numpy's pool beside one torch thread
    again = fastpath.FastLlama(tiny.model, max_len=8).kernels
    assert again.from_cache and 0.1 < choice.roof_gb_per_s < 10_000  # the roof's read, timed beside the kernels
    chosen = {(r, k, again.step_threads) for r, k in again.kernels}
    now = [t for t in again.times if (t.role, t.kernel, t.threads) in chosen]
    assert len(now) == 5 and not set(now) <= set(choice.times)  # the chosen kernels timed again, now
    assert again.matmul_s == sum(t.seconds for t in now) and again.roof_gb_per_s > 0


def test_batched_rows_match_single(tiny):
    ids = torch.tensor([[7, 8, 9, 10, 11], [7, 8, 9, 10, 11]])
    r2 = fastpath.fast_generate(tiny.model, ids, 6)
    r1 = fastpath.fast_generate(tiny.model, ids[:1], 6)
    assert r2.token_ids == r1.token_ids and r2.batch_size == 2


@pytest.mark.slow
def test_real_model_same_tokens(real):
    ids = ml.generation.encode(real.tokenizer, "What is the capital of France?")
    ref = _reference(real, ids, 16)
    r = fastpath.fast_generate(real.model, torch.tensor([ids]), 16)
    assert list(r.token_ids) == ref


@pytest.mark.parametrize("kernel", ["linear", "c"])  # quantized matrices: aten's kernel, or memlab's C one
@pytest.mark.parametrize("kind", ["int8", "int4", "int4+int8 head"])
def test_quantized_fast_path_matches_the_quantized_eager_model(tiny, kind, kernel):
    """Fusing q/k/v and gate/up before quantizing keeps every row's codes and scales: same logits."""
    from memlab.quantization import quantize
    make = quantize.Int8Linear if kind == "int8" else quantize.Int4Linear
    head = quantize.Int8Linear if "head" in kind else None
    eager = quantize.build(tiny.model, quantize.Variant(
        "q", "memlab", 8, "fp32", lambda m: quantize.replace_linears(m, make, lm_head=head or (lambda x: x)), "", ""))
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    fast = fastpath.FastLlama(tiny.model, max_len=16, linear=make, lm_head=head, kernels=kernel)
    assert fast.weights == make.__name__
    _same_logits(fast, eager, ids, rtol=2e-2, atol=2e-2)
    if kernel == "linear":
        assert isinstance(fast.layers[0]["qkv"], make)  # the quantized module is the matmul
    else:
        assert isinstance(fast.layers[0]["qkv"], ml.kernels.QGemv)


def test_quantized_fast_path_leaves_the_fp32_model_alone(tiny):
    from memlab.quantization import quantize
    before = tiny.model.model.layers[0].self_attn.q_proj.weight.data_ptr()
    fastpath.FastLlama(tiny.model, max_len=8, linear=quantize.Int8Linear)
    assert tiny.model.model.layers[0].self_attn.q_proj.weight.data_ptr() == before


def test_static_step_matches_the_eager_step(tiny):
    """The compiled decode step's shapes (whole cache under a mask, index_copy_), run uncompiled."""
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    a, b = fastpath.FastLlama(tiny.model, max_len=12), fastpath.FastLlama(tiny.model, max_len=12)
    with torch.inference_mode():
        tok = a.prefill(ids).argmax(-1, keepdim=True)
        b.prefill(ids)
        for pos in range(5, 9):
            ref, got = a.step(tok, pos), b.static_step(tok, torch.tensor([pos]))
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
            tok = ref.argmax(-1, keepdim=True)


def test_bad_arguments_say_so(tiny):
    from memlab.core.errors import InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="max_new_tokens"):
        fastpath.fast_generate(tiny.model, torch.tensor([[1, 2]]), 1)
    fast = fastpath.FastLlama(tiny.model, max_len=4)
    with pytest.raises(InvalidArgumentError, match="exceed max_len"):
        fast.generate(torch.tensor([[1, 2, 3]]), 4)
    with pytest.raises(InvalidArgumentError, match="kernels must be"):
        fastpath.FastLlama(tiny.model, max_len=4, kernels="fastest")
    with pytest.raises(InvalidArgumentError, match="torch's kernels only"):
        fastpath.FastLlama(tiny.model, max_len=4, kernels="blas", compile=True)


def test_a_reused_engine_reports_a_positive_warmup(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=12)
    ids = torch.tensor([[1, 2, 3, 4]])
    runs = [fastpath.fast_generate(tiny.model, ids, 4, fast=fast) for _ in range(2)]
    assert all(r.warmup_s > 0 and r.compile_s == 0 for r in runs) and runs[0].token_ids == runs[1].token_ids


@pytest.mark.slow
def test_the_compiled_step_gives_the_same_tokens(tiny):
    reason = fastpath.compile_reason()
    if reason:
        pytest.skip(reason)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    plain = fastpath.fast_generate(tiny.model, ids, 6)
    compiled = fastpath.fast_generate(tiny.model, ids, 6, compile=True)
    assert compiled.token_ids == plain.token_ids and compiled.compile_s > 0 and compiled.warmup_s > 0


def test_the_kernel_figure_marks_the_choice(tiny):
    import matplotlib
    matplotlib.use("Agg")
    choice = fastpath.FastLlama(tiny.model, max_len=8).kernels
    fig = ml.figures.kernel_rates(choice, 10.0)
    solid = [b for b in fig.axes[0].patches if b.get_alpha() == 1.0]
    assert len(solid) == len(choice.kernels)  # one chosen bar per role


def test_a_busy_machine_keeps_no_kernel_timings(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(ml.kernels, "busy_reason", lambda since=None: "other processes used 1.00 cores meanwhile")
    assert fastpath.FastLlama(tiny.model, max_len=8).kernels is not None  # measured and used
    assert not list((tmp_path / "kernels").glob("*.json"))  # but not kept
    monkeypatch.setattr(ml.kernels, "busy_reason", lambda since=None: "")
    fastpath.FastLlama(tiny.model, max_len=8)
    assert list((tmp_path / "kernels").glob("*.json"))


def test_a_verify_after_a_context_sees_no_later_position(tiny):
    """forward_tokens(every=True) of T tokens after a context (a verify of drafts) gives each position the
    logits that single steps give: position i attends to the cache up to i, not to the drafts after it."""
    fast = fastpath.FastLlama(tiny.model, max_len=24, kernels="linear")
    ids, drafts = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]]), [7, 3, 3, 8]
    with torch.inference_mode():
        fast.prefill(ids)
        steps = torch.cat([fast.step(torch.tensor([[t]]), 8 + i) for i, t in enumerate(drafts)])  # (T, V)
        verify = fast.forward_tokens(torch.tensor([drafts]), 8, every=True)[0]
    torch.testing.assert_close(verify, steps, rtol=1e-4, atol=1e-5)


def test_a_role_is_timed_after_the_bytes_a_step_reads_between_its_uses():
    """Each role is timed after a read of every other role's bytes (what a step reads in between), not all or
    nothing by the model's size against the last-level cache (which timed a 538 MB model warm beside a 260 MiB L3)."""
    from memlab.core import kernels
    roles = {"a": [torch.ones(256, 1024), torch.ones(256, 1024)], "b": [torch.ones(512, 1024)], "c": [torch.ones(1024, 1024)]}
    assert kernels._between(roles, "a", torch.device("cpu")) == (512 + 1024) * 1024 * 4
    assert kernels._between(roles, "c", torch.device("cpu")) == (2 * 256 + 512) * 1024 * 4
    array = torch.ones(2**20)
    assert kernels._evict_view(array, 2 * 2**20).numel() == 2**19  # 2 MiB of a 4 MiB array
    assert kernels._evict_view(array, 64 * 2**20).numel() == 2**20  # past the array: all of it
    assert kernels._evict_view(array, 1000) is None  # a few KiB evict nothing worth a read


def test_qwen2_biases_give_the_same_logits():
    """Qwen2's q/k/v biases: stacked with their matrices, added after the matmul (the C step refuses them)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from memlab.core import cstep
    from memlab.quantization import fastcompare, quantize
    cfg = AutoConfig.for_model("qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)  # init leaves them 0: nonzero, or a dropped bias would pass
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    fast = fastpath.FastLlama(model, max_len=16)
    assert fast.cstep is None and "bias" in cstep.reason(fast)
    _same_logits(fast, model, ids, rtol=1e-4, atol=1e-5)
    assert fastcompare.streamed_bytes(fast) == sum(p.numel() * 4 for p in model.parameters())  # the biases counted
    int8 = quantize.build(model, quantize.VARIANTS["int8"])
    q = fastpath.FastLlama(model, max_len=16, linear=quantize.Int8Linear)
    with torch.inference_mode():
        torch.testing.assert_close(q.prefill(ids), ml.generation.prefill(int8, ids, ml.generation.new_cache(int8)),
                                   rtol=1e-3, atol=1e-3)
