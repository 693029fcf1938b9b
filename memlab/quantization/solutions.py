"""Worked solutions of lab 04's exercises (graded by memlab.course.exercises)."""

from __future__ import annotations

import dataclasses

from memlab.core import footprint, quantformat


def int4_bits_per_weight(group_size: int = 32, scale_bits: int = 16) -> float:
    """b + (bits of scale and zero) / G: 4 bits per weight, plus a bf16 scale and a bf16 zero per group
    (memlab's int4 format, `quantformat.FORMATS["int4"]`, on a grid of `group_size` and `scale_bits`)."""
    fmt = dataclasses.replace(quantformat.FORMATS["int4"], group_size=group_size, scale_bits=scale_bits,
                              zero_bits=scale_bits)
    return fmt.bits_per_weight(group_size)


def int8_bits_per_weight(in_features: int, scale_bits: int = 16) -> float:
    """8 bits per weight plus one bf16 scale per row of `in_features` weights (memlab's int8 format)."""
    return dataclasses.replace(quantformat.FORMATS["int8"], scale_bits=scale_bits).bits_per_weight(in_features)


def fp32_over_int4_bytes(config) -> float:
    """Bytes per token, fp32 / int4. int4 shrinks the linear layers to 5 bits per weight, but keeps the
    tied embedding / lm_head (V x d) and the norms in fp32, the dtype the model was loaded in; all of it
    is read every token. Both counted tensor by tensor (`footprint.streamed_bytes`)."""
    return footprint.streamed_bytes(config, "fp32") / footprint.streamed_bytes(config, "int4", kept_dtype="fp32")


def kv_crossover_tokens(config, weights_bytes: int, dtype_bytes: int = 4) -> float:
    """Context length at which one decode step reads as many KV-cache bytes as weight bytes: every
    token of context adds 2 (key and value) x layers x KV heads x head dim x bytes to each step's reads."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return weights_bytes / (2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * dtype_bytes)


# measured / predicted that 04-int4-fast accepts: the prediction is 01-fast's (memory_wall.solutions.
# fast_step_tok_per_s) on int4's kernel choice, whose times are cached per machine from the minute they were
# measured, while the step runs now: a shared 2-core machine's bandwidth drifts by a third between the two.
# On an AVX2 EPYC (2 vCPUs): the step in C (`core.cstep`), four fresh kernel choices: 0.72-0.91; through
# torch's operators, quick mode: 0.86-1.30 in four runs. The bound alone (int4's bytes over the roof) as the
# prediction lands near 0.55 in C, near 0.3 through torch; fp32's step time (int4 no faster) above 2.
# Up to 1.6: on an AVX-512 Xeon with a 260 MiB L3 the whole step outran its parts (lab 01's FAST_STEP_BAND).
INT4_FAST_BAND = (0.6, 1.6)


def big_int4_tok_per_s(read_bytes: int, matmul_gb_per_s: float) -> float:
    """A step's time is its bytes over the rate its kernels read them: the 8B model's int4 codes and int8
    head go through the same kernels as the 135M model's int4-fast, at the rate section 5 measured, and
    the rest of the step (a few ms) is small beside seconds of matmuls."""
    return matmul_gb_per_s * 1e9 / read_bytes


# measured / predicted that 04-8b accepts. An AVX-512 Xeon (260 MiB L3, 2 vCPUs), full mode: 0.98 (the 8B read
# 13.5 GB/s, its kernels chosen for its own shapes). Low to 0.35: where a last-level cache holds most of the 135M
# model's 95 MB (480 MiB on an AMX Xeon) its rate is partly the cache's, and the 8B, read from DRAM, lands below;
# the roof alone as the rate (bytes / the roof) is a fair guess where the kernels reach it (0.48 on that Xeon).
# Forgetting the quantization (fp32 bytes) predicts 6x too slow; the 135M model's tok/s unscaled, 45x too fast.
BIG_INT4_BAND = (0.35, 1.5)
