"""Where the chunk embeddings live: an in-RAM index or an on-disk database (lab 06).

Stores, in order (all exact, so the two vector stores return the same chunks):
  1. RamIndex   every chunk embedding in one (N, D) float32 array in process RAM; top-k by a matmul.
  2. DiskIndex  a sqlite3 file with one row per chunk (text + embedding BLOB); each search opens the
                file and scans every row from it, so the rows come through the OS page cache
                (warm) or from the device (cold, after `pagecache.evict`).
  3. BM25Index  sqlite FTS5 full-text search (BM25) in the same file: lexical, no query embedding.
The stores people use at scale (FAISS flat, HNSW and mmap; sqlite-vec) are in `memlab.rag.vecstores`;
`open_store` opens any of them. Every store says `is_exact`, `ram_bytes` (vector bytes it keeps in
process memory) and `disk_bytes` (its file).
Score: s_i = q . e_i with unit-length embeddings (cosine similarity); top-k = the k largest s_i.
Shapes: N chunks, D embedding dim, k hits.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from memlab.core.errors import MemlabError
from memlab.rag import vecstores
from memlab.rag.chunks import Chunk, corpus_key, rag_dir

KINDS = ("ram", "disk", "bm25") + vecstores.KINDS

# words too common to help a lexical search (Python keywords such as "with" stay searchable)
STOPWORDS = frozenset("a an the what which who how why when where does do did is are was be can "
                      "i you it of to on by about this that these those me my".split())


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then sort the k)."""
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class RamIndex:
    """Exact inner-product search over embeddings held in process RAM."""
    kind, needs_embedding, is_exact = "ram", True, True

    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray):
        self.chunks, self.embeddings = list(chunks), np.ascontiguousarray(embeddings, np.float32)  # (N, D)
        self.num_chunks = len(self.chunks)
        self.index_bytes = self.embeddings.nbytes + sum(len(c.text.encode()) for c in self.chunks)
        self.ram_bytes, self.disk_bytes = self.embeddings.nbytes, 0
        self.path = None

    def search(self, query_vec: np.ndarray | None, question: str, k: int):
        scores = self.embeddings @ query_vec  # (N,)
        idx = top_k(scores, k)
        return ([self.chunks[i].id for i in idx], [float(scores[i]) for i in idx],
                [self.chunks[i].topic for i in idx], [self.chunks[i].text for i in idx])


def build_db(chunks: list[Chunk], embeddings: np.ndarray, path: str | Path) -> Path:
    """Write chunks, their embeddings (float32 BLOBs) and an FTS5 BM25 index into a sqlite file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".sqlite")
    os.close(fd)
    con = sqlite3.connect(tmp)
    try:
        con.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, topic TEXT, text TEXT, emb BLOB)")
        con.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)",
                        [(c.id, c.topic, c.text, np.asarray(e, np.float32).tobytes())
                         for c, e in zip(chunks, embeddings)])
        con.execute("CREATE VIRTUAL TABLE fts USING fts5(text, content='chunks', content_rowid='id')")
        con.execute("INSERT INTO fts(rowid, text) SELECT id, text FROM chunks")
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)
    return path


class DiskIndex:
    """Exact inner-product search that scans every embedding row out of a sqlite file per query.

    Each search opens a fresh read-only connection: sqlite's own page cache would otherwise keep
    this small file in process RAM after the first query, and "disk" would quietly become RAM.
    """
    kind, needs_embedding, is_exact = "disk", True, True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise MemlabError(f"no RAG database at {self.path}; build it with memlab.rag.retrieval.build_db(...)")
        with self._connect() as con:
            self.num_chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        self.index_bytes = self.disk_bytes = self.path.stat().st_size
        self.ram_bytes = 0   # a fresh connection per search: nothing stays in process memory

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def _rows(self, con, ids) -> list[tuple]:
        marks = ",".join("?" * len(ids))
        rows = {r[0]: r for r in con.execute(f"SELECT id, topic, text FROM chunks WHERE id IN ({marks})", ids)}
        return [rows[i] for i in ids]

    def search(self, query_vec: np.ndarray | None, question: str, k: int):
        con = self._connect()
        try:
            ids, blobs = zip(*con.execute("SELECT id, emb FROM chunks").fetchall())
            emb = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)  # (N, D)
            scores = emb @ query_vec
            idx = top_k(scores, k)
            hit_ids = [int(ids[i]) for i in idx]
            rows = self._rows(con, hit_ids)
        finally:
            con.close()
        return hit_ids, [float(scores[i]) for i in idx], [r[1] for r in rows], [r[2] for r in rows]


class BM25Index(DiskIndex):
    """sqlite FTS5 BM25 over the same file: words, not vectors; the question needs no embedding."""
    kind, needs_embedding, is_exact = "bm25", False, False

    def search(self, query_vec: np.ndarray | None, question: str, k: int):
        words = [w for w in re.findall(r"\w+", question.lower()) if w not in STOPWORDS]
        if not words:
            raise MemlabError("the question has no words to search for")
        match = " OR ".join(f'"{w}"' for w in words)
        con = self._connect()
        try:
            hits = con.execute("SELECT rowid, bm25(fts) FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?",
                               (match, k)).fetchall()
            hit_ids = [int(h[0]) for h in hits]
            rows = self._rows(con, hit_ids) if hits else []
        finally:
            con.close()
        # bm25() is lower-is-better; negate so every store reports higher-is-better
        return hit_ids, [-float(h[1]) for h in hits], [r[1] for r in rows], [r[2] for r in rows]


def open_store(kind: str, chunks: list[Chunk], embeddings: np.ndarray, cache_dir: str | Path | None = None):
    """One of KINDS over the same chunks; each file (sqlite, FAISS, sqlite-vec) is built once per corpus key."""
    if kind == "ram":
        return RamIndex(chunks, embeddings)
    if kind in vecstores.KINDS:
        return vecstores.open_vec_store(kind, chunks, embeddings, cache_dir)
    if kind not in ("disk", "bm25"):
        raise MemlabError(f"unknown store {kind!r}: choose {', '.join(KINDS)}")
    path = rag_dir(cache_dir) / f"db-{corpus_key(chunks)}.sqlite"
    if not path.exists():
        build_db(chunks, embeddings, path)
    return DiskIndex(path) if kind == "disk" else BM25Index(path)
