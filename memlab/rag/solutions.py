"""Worked solutions of lab 06's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations


def index_bytes(num_chunks: int, dim: int = 384) -> float:
    """One float32 embedding of `dim` values per chunk: N x D x 4 bytes."""
    return num_chunks * dim * 4
