"""Worked solutions of lab 05's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations

from memlab.sharding import tensor_parallel


def allreduced_bytes_per_token(config, world_size: int, dtype_bytes: int = 4) -> float:
    """Tensor parallel: 2 all-reduces per layer (attention, MLP) + 1 (embedding), each of hidden x
    bytes, on every rank: R x (2 L + 1) x H x bytes (`tensor_parallel.allreduce_bytes_per_token`)."""
    return world_size * tensor_parallel.allreduce_bytes_per_token(config, dtype_bytes)
