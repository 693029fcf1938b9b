"""Worked solutions of lab 03's exercises (graded by memlab.course.exercises): the physics, step by step."""

from __future__ import annotations

from memlab.core import footprint, roofline


def checkpoint_bytes(config) -> float:
    """The fp32 checkpoint holds each parameter once (the tied embedding / lm_head once), 4 bytes
    each; its header (tensor names and offsets, tens of KB) is the only other content."""
    return 4 * footprint.num_params(config)


def prefill_matmul_flops(config, prompt_tokens: int) -> float:
    """2 FLOPs (a multiply and an add) per weight per prompt token, for the decoder layers' weights;
    the embedding is a lookup, not a matmul; the lm_head (V x d) runs for the last position only.
        FLOPs = 2 * T * (L * (attention + MLP weights)) + 2 * V * d
    (the attention scores QK^T and AV come on top; torch's counter does not count them on a CPU)."""
    d, V, L = (footprint.config_value(config, k) for k in ("hidden_size", "vocab_size", "num_hidden_layers"))
    norms = (2 * L + 1) * d
    table = V * d * (1 if footprint.config_value(config, "tie_word_embeddings", False) else 2)
    layer_weights = footprint.num_params(config) - norms - table  # every weight inside a decoder layer's matmuls
    return 2 * prompt_tokens * layer_weights + 2 * V * d


def kv_cache_bytes(config, batch_size: int, prompt_tokens: int) -> float:
    """After prefill, each of the B sequences holds a key and a value per layer, per KV head, per
    prompt token: B * T * 2 * L * K * D * 4 bytes in fp32 (the one KV formula, `footprint`)."""
    return footprint.kv_cache_bytes(config, prompt_tokens, batch_size, "fp32")


# measured / predicted that 03-long-ttft accepts. The line through two measured prompts assumes the
# prefill runs at one FLOP rate at every length, and a shared 2-core machine's TTFT at one length varies
# by a fifth from minute to minute. On an AVX2 EPYC (2 vCPUs) the longest prompt landed 0.80-1.29x the line
# in eleven runs (quick 128 -> 256 tokens, full 256 -> 1024), and 1.47x in a twelfth (full mode, a quiet
# machine, after the other labs: the line's two points and the long prompt are timed minutes apart). A
# prediction that forgets the growth (TTFT flat: 2.8-4.7x) or scales TTFT with T^2 lands far outside the
# band. (One that scales TTFT with T alone lands inside it at full mode's lengths: there the fixed part it
# overcounts and the T^2 it leaves out nearly cancel.)
LONG_TTFT_BAND = (0.7, 1.6)


def long_prompt_ttft_s(config, points, prompt_tokens: int) -> float:
    """TTFT = a fixed part (tokenizing, dispatch, the first sample) + the prefill's FLOPs / the rate it
    runs at. The two longest prompts measured (`points`, TTFTPoint) give both: the line through their
    (FLOPs, TTFT), evaluated at the new prompt's FLOPs. FLOPs from `roofline.prefill_workload`: the
    weights' matmuls (2 per weight per token), the last position's lm_head and the attention scores,
    which grow as T^2."""
    a, b = points[-2:]
    f = [roofline.prefill_workload(config, t).flops for t in (a.prompt_tokens, b.prompt_tokens, prompt_tokens)]
    return roofline.time_by_flops(f[0], a.ttft_s, f[1], b.ttft_s, f[2])
