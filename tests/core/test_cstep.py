"""The whole decode step in C (memlab/data/step.c through core.cstep) computes what torch's step does."""

import dataclasses

import pytest
import torch

import memlab as ml
from memlab.core import ckernels, cstep, fastpath, kernels
from memlab.core.errors import InvalidArgumentError

pytestmark = pytest.mark.skipif(bool(ckernels.reason()), reason="no C compiler here")


def _steps(model, fast, ids, positions):
    """(eager logits, fast logits) at each decode position after prefilling `ids` in both."""
    out = []
    with torch.inference_mode():
        cache = ml.generation.new_cache(model)
        ref = ml.generation.prefill(model, ids, cache)
        fast.prefill(ids)
        tok = ref.argmax(-1, keepdim=True)
        for pos in positions:
            ref = ml.generation.decode_step(model, tok, cache)
            out.append((ref, fast.step(tok, pos)))
            tok = ref.argmax(-1, keepdim=True)
    return out


def test_the_c_step_gives_the_eager_logits(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=24, step="c")
    assert fast.cstep is not None
    assert {k for _, k in fast.kernels.kernels} == {"c"} and fast.kernels.step == "c"
    for ref, got in _steps(tiny.model, fast, torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]]), range(8, 20)):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)  # later steps read the k, v the C step wrote


def test_a_bf16_model_steps_in_c_over_its_bf16_weights_and_cache(tiny_dir):
    """fp32 activations over bf16 weights, norms and cache: close to torch's bf16 step, which rounds
    every activation to bf16 (so within bf16's tolerance, not bit for bit)."""
    loaded = ml.load(str(tiny_dir), dtype="bf16")
    fast = fastpath.FastLlama(loaded.model, max_len=24, step="c")
    assert fast.cstep is not None and fast.cache_k.dtype == torch.bfloat16
    for ref, got in _steps(loaded.model, fast, torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]]), range(8, 16)):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, ref.float(), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("kind", ["int8", "int4", "int4+int8 head"])
def test_quantized_c_step_equals_the_torch_step_over_the_same_kernels(tiny, kind):
    from memlab.quantization import quantize
    make = quantize.Int8Linear if kind == "int8" else quantize.Int4Linear
    head = quantize.Int8Linear if "head" in kind else None
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    a = fastpath.FastLlama(tiny.model, max_len=16, linear=make, lm_head=head, kernels="c", step="torch")
    b = fastpath.FastLlama(tiny.model, max_len=16, linear=make, lm_head=head, kernels="c", step="c")
    assert a.cstep is None and b.cstep is not None
    # int4's kernel rounds each activation group to int8: a last-bit difference in the norm before it
    # can move a value across a rounding edge (one step of max|x|/127), so int4 gets the quantized tolerance
    tol = dict(rtol=1e-4, atol=1e-4) if kind == "int8" else dict(rtol=2e-2, atol=2e-2)
    with torch.inference_mode():
        torch.testing.assert_close(b.prefill(ids), a.prefill(ids))
        tok = a.prefill(ids).argmax(-1, keepdim=True)
        for pos in range(8, 12):
            want = a.step(tok, pos)
            torch.testing.assert_close(b.step(tok, pos), want, **tol)
            tok = want.argmax(-1, keepdim=True)


def test_the_choice_times_the_c_step_and_keeps_the_faster(tiny, monkeypatch):
    monkeypatch.setattr(ml.kernels, "busy_reason", lambda since=None: "")
    fast = fastpath.FastLlama(tiny.model, max_len=8)
    choice = fast.kernels
    assert choice.c_options and all(mm > 0 and rest > 0 for _, mm, rest in choice.c_options)
    assert (fast.cstep is not None) == (choice.step == "c")
    torch_s = fastpath.FastLlama(tiny.model, max_len=8, step="torch").kernels
    assert torch_s.step == "torch" and not torch_s.c_options
    # which step wins is consider's rule (tested below on fixed numbers): two engines' timings drift apart


def _choice(c_mm: float, c_rest: float) -> kernels.KernelChoice:
    t = [kernels.KernelTime(r, "float32", (4, 4), 1, k, 2, s, 64, 1.0)
         for r in ("qkv", "head") for k, s in (("linear", 0.010), ("c", c_mm / 2))]
    return kernels.KernelChoice("float32", (("qkv", "linear"), ("head", "linear")), 2, 0.020, 0.005,
                                ((2, 0.020, 0.005),), tuple(t), False)


def test_consider_picks_the_c_step_only_where_it_predicts_a_shorter_step():
    fast = cstep.consider(_choice(0.010, 0.001), {2: 0.001})
    assert fast.step == "c" and dict(fast.kernels) == {"qkv": "c", "head": "c"} and fast.rest_s == 0.001
    slow = cstep.consider(_choice(0.030, 0.001), {2: 0.001})
    assert slow.step == "torch" and slow.c_options == ((2, 0.030, 0.001),)
    assert cstep.consider(_choice(0.030, 0.001), {2: 0.001}, force=True).step == "c"
    assert dataclasses.replace(slow, c_options=()) == _choice(0.030, 0.001)  # nothing else changed


def test_the_plans_weighed_are_the_parts_linear_everywhere_and_the_c_step():
    roles = {"qkv": [torch.zeros(4, 4)], "head": [torch.zeros(4, 4)]}
    choice = dataclasses.replace(_choice(0.010, 0.001), c_options=((2, 0.010, 0.001),))
    plans = cstep.plans(choice, roles)
    assert list(plans) == ["parts", "c"]  # the parts chose F.linear everywhere: one plan, timed once
    assert plans["c"].step == "c" and dict(plans["c"].kernels) == {"qkv": "c", "head": "c"}
    mixed = dataclasses.replace(choice, kernels=(("qkv", "c"), ("head", "linear")))
    plans = cstep.plans(mixed, roles)
    assert list(plans) == ["parts", "linear", "c"]
    assert dict(plans["linear"].kernels) == {"qkv": "linear", "head": "linear"} and plans["linear"].matmul_s == 0.020


@pytest.mark.parametrize("parts_qkv", [None, "c"])
@pytest.mark.parametrize("fastest", ["linear", "C step"])
def test_the_whole_step_timed_fastest_is_the_one_kept(tiny, monkeypatch, fastest, parts_qkv):
    """Whatever the parts predicted, the plan whose whole step measures fastest runs (times planted here).
    A plan is told by what `_apply` last installed: the C step, F.linear on every matrix, or another mix
    (the "parts" plan may run C kernels under torch's step, or F.linear on some roles only: on CI's CPU
    the first, named by its qkv kernel, tied with the C step and won)."""
    import types
    applied = []

    def plan_now():
        pairs, step = applied[-1]
        return "C step" if step == "c" else "linear" if {k for _, k in pairs} == {"linear"} else "mixed"

    def planted(fn, repeats, **kw):
        if fast is None:  # the C step's rest, timed before the plans are weighed
            return real_repeat(fn, repeats, **kw)
        fn()
        return types.SimpleNamespace(median=0.001 if plan_now() == fastest else 0.002)
    real_repeat, real_apply = cstep.repeat, cstep._apply

    def record(fast, model, roles, pairs, threads, step):
        applied.append((tuple(pairs), step))
        return real_apply(fast, model, roles, pairs, threads, step)
    monkeypatch.setattr(ml.kernels, "busy_reason", lambda since=None: "")
    monkeypatch.setattr(cstep, "repeat", planted)
    monkeypatch.setattr(cstep, "_apply", record)
    if parts_qkv:  # C's kernel timed fastest for qkv, as on CI's CPU: the parts plan runs it under torch's step
        real_choose = kernels.choose
        monkeypatch.setattr(kernels, "choose", lambda *a, **kw: dataclasses.replace(c := real_choose(*a, **kw), times=tuple(
            dataclasses.replace(t, seconds=t.seconds / 100) if (t.role, t.kernel) == ("qkv", parts_qkv) else t for t in c.times)))
    fast = None
    real_weigh = cstep.weigh

    def weigh(f, *a, **kw):
        nonlocal fast
        fast = f
        return real_weigh(f, *a, **kw)
    monkeypatch.setattr(cstep, "weigh", weigh)
    fast = fastpath.FastLlama(tiny.model, max_len=16)
    choice = fast.kernels
    assert {name for name, _, _ in choice.steps} >= {"linear", "c"}
    if parts_qkv:
        assert (parts_qkv, "torch") in [(dict(pairs)["qkv"], step) for pairs, step in applied]  # the CI case arose
    assert plan_now() == fastest and (fast.cstep is not None) == (choice.step == "c") == (fastest == "C step")
    if fastest == "linear":
        assert {k for _, k in choice.kernels} == {"linear"}
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    ref = fastpath.fast_generate(tiny.model, ids, 6, fast=fastpath.FastLlama(tiny.model, max_len=16, kernels="linear"))
    assert fastpath.fast_generate(tiny.model, ids, 6, fast=fast).token_ids == ref.token_ids


def test_the_rest_alone_reads_no_weight(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=16, kernels="linear")
    assert cstep.rest_seconds(fast, 1) > 0  # a bare step holds no weight pointer: it would crash if it read one


def test_what_the_c_step_cannot_run_is_refused_in_one_line(tiny):
    with pytest.raises(InvalidArgumentError, match="compiled"):
        fastpath.FastLlama(tiny.model, max_len=8, step="c", compile=True)
    with pytest.raises(InvalidArgumentError, match="kernels=auto or c"):
        fastpath.FastLlama(tiny.model, max_len=8, step="c", kernels="linear")
    with pytest.raises(InvalidArgumentError, match="step must be"):
        fastpath.FastLlama(tiny.model, max_len=8, step="fortran")
    fast = fastpath.FastLlama(tiny.model, max_len=8, step="c")
    with pytest.raises(InvalidArgumentError, match="outside the cache"):
        fast.cstep(torch.tensor([[1]]), 8)
    with pytest.raises(InvalidArgumentError, match="token ids must lie in"):
        fast.cstep(torch.tensor([[fast.embed.shape[0]]]), 3)
    with pytest.raises(InvalidArgumentError, match="the cache holds 1"):
        fast.cstep(torch.tensor([[1], [2]]), 3)


def test_a_batch_steps_in_c_as_each_sequence_alone(tiny):
    ids = torch.tensor([[7, 8, 9, 10, 11], [3, 1, 4, 1, 5], [2, 7, 1, 8, 2]])
    batch = fastpath.FastLlama(tiny.model, max_len=16, batch_size=3, step="c")
    ref = fastpath.FastLlama(tiny.model, max_len=16, batch_size=3, kernels="c", step="torch")
    with torch.inference_mode():
        a, b = batch.prefill(ids).argmax(-1, keepdim=True), ref.prefill(ids).argmax(-1, keepdim=True)
        for pos in range(5, 10):
            got, want = batch.step(a, pos), ref.step(b, pos)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # each sequence reads its own cache rows
            a, b = got.argmax(-1, keepdim=True), want.argmax(-1, keepdim=True)
    alone = fastpath.fast_generate(tiny.model, ids[:1], 6, fast=fastpath.FastLlama(tiny.model, max_len=16, step="c"))
    assert fastpath.fast_generate(tiny.model, ids, 6, fast=batch).token_ids == alone.token_ids  # sequence 0


@pytest.mark.slow
def test_real_model_c_step_same_tokens(real):
    ids = ml.generation.encode(real.tokenizer, "What is the capital of France?")
    ref = list(ml.generate(real, ids, max_new_tokens=16, stop_at_eos=False).token_ids)
    fast = fastpath.FastLlama(real.model, max_len=len(ids) + 16, step="c")
    assert list(fastpath.fast_generate(real.model, torch.tensor([ids]), 16, fast=fast).token_ids) == ref


def test_a_verify_in_c_gives_the_logits_of_steps_one_by_one(tiny):
    """The C step's verify mode (T tokens of one sequence at consecutive positions, one call): each row's
    logits equal single steps' (row t sees positions <= its own), and the cache holds the same k and v."""
    fast = fastpath.FastLlama(tiny.model, max_len=24, step="c")
    ids, drafts = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]]), [7, 3, 3, 8, 1]
    with torch.inference_mode():
        fast.prefill(ids)
        steps = torch.cat([fast.step(torch.tensor([[t]]), 8 + i) for i, t in enumerate(drafts)])  # (T, V)
        k_steps = fast.cache_k[:, :, :, :13].clone()
        fast.cache_k[:, :, :, 8:].zero_()
        verify = fast.cstep(torch.tensor([drafts]), 8, verify=True)
    torch.testing.assert_close(verify, steps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.cache_k[:, :, :, :13], k_steps, rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidArgumentError, match="outside"):
        fast.cstep(torch.tensor([drafts]), 20, verify=True)
