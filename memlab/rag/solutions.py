"""Worked solutions of lab 06's exercises (graded by memlab.core.exercises)."""

from __future__ import annotations


def index_bytes(num_chunks: int, dim: int = 384) -> float:
    """One float32 embedding of `dim` values per chunk: N x D x 4 bytes."""
    return num_chunks * dim * 4


def ram_index_bytes(num_chunks: int, num_chars: int, dim: int = 384) -> float:
    """The in-RAM store keeps the embeddings (N x D x 4 B) and the chunk texts, one UTF-8 byte per
    ASCII character (the help pages are ASCII but for a fraction of a percent)."""
    return index_bytes(num_chunks, dim) + num_chars


def retrieval_share(embed_s: float, search_s: float, llm_ttft_s: float) -> float:
    """The user waits for the question's embedding, the search, then the model's own TTFT on the
    longer prompt, one after the other: retrieval's share = (embed + search) / (embed + search + model TTFT)."""
    retrieval_s = embed_s + search_s
    return retrieval_s / (retrieval_s + llm_ttft_s)
