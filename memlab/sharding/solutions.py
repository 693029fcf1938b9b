"""Worked solutions of lab 05's exercises (graded by memlab.course.exercises)."""

from __future__ import annotations

from memlab.sharding import tensor_parallel


def allreduced_bytes_per_token(config, world_size: int, dtype_bytes: int = 4) -> float:
    """Tensor parallel: 2 all-reduces per layer (attention, MLP) + 1 (embedding), each of hidden x
    bytes, on every rank: R x (2 L + 1) x H x bytes (`tensor_parallel.allreduce_bytes_per_token`)."""
    return world_size * tensor_parallel.allreduce_bytes_per_token(config, dtype_bytes)


def pipeline_bytes_per_token(config, world_size: int = 2, batch_size: int = 1, dtype_bytes: int = 4) -> float:
    """Pipeline parallel: each rank but the last sends its hidden state (H x bytes per sequence) to
    the next, and the last sends the int64 token ids (8 B each) back to rank 0:
    B x ((R - 1) x H x bytes + 8)."""
    return batch_size * ((world_size - 1) * config.hidden_size * dtype_bytes + 8)


def last_stage_weights_bytes(config, world_size: int = 2, dtype_bytes: int = 4) -> float:
    """The last pipeline rank holds its share of the layers (L / R, the first ranks take any
    remainder), the final norm, and the lm_head, which for tied embeddings is the whole V x H
    embedding again. A layer: q and o (H x heads*D each), k and v (H x KV heads*D each), gate, up and
    down (H x I each), and two norms (H each); no biases."""
    H, I = config.hidden_size, config.intermediate_size
    D = getattr(config, "head_dim", None) or H // config.num_attention_heads
    per_layer = 2 * H * config.num_attention_heads * D + 2 * H * config.num_key_value_heads * D + 3 * H * I + 2 * H
    num_layers = config.num_hidden_layers // world_size   # the remainder goes to the first ranks
    return dtype_bytes * (num_layers * per_layer + H + config.vocab_size * H)


# measured / predicted that 05-micro-step accepts. The prediction assumes each micro-batch costs a stage
# what the whole batch cost it (decode streams the stage's weights once per micro-batch) and leaves out
# the messages' latency, which grows with M. It is an upper estimate where the per-sequence work is not
# negligible: a 135M model's slot of one sequence costs a CPU less than a slot of four, so the step grows
# less than M + R - 1. On an AVX2 EPYC (2 vCPUs), quiet: M = 1 -> 2 (quick mode's step once) 0.87-1.12 in three
# runs (1.40 beside another lab running); M = 1 -> 4 (full, slots of one sequence) 0.58 and 0.60. Predicting no
# change (step(M) = step(1)) gave 1.45 (M = 4) and 1.66 (M = 2), a step that shrinks with the bubble more. On a
# Xeon (AVX-512, 260 MiB L3) M = 2's step once came out shorter than M = 1's (0.64 of the prediction), so quick
# mode now steps to M = 4 as full does: 0.90 of the prediction there, quick (6 tokens).
MICRO_STEP_BAND = (0.5, 1.35)


def micro_batched_step_s(step_s: float, micro_batches: int, measured_micro_batches: int, world_size: int = 2) -> float:
    """GPipe's schedule: a step of M micro-batches lasts M + R - 1 slots, and on a CPU a slot (one
    micro-batch on one stage) costs about what a whole batch did, because each stage streams its
    weights once per micro-batch. So step(M) = step(M0) x (M + R - 1) / (M0 + R - 1), from a step
    measured at M0 micro-batches."""
    return step_s * (micro_batches + world_size - 1) / (measured_micro_batches + world_size - 1)
