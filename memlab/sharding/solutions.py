"""Worked solutions of lab 05's exercises (graded by memlab.core.exercises)."""

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
