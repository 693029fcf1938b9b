"""The vector stores people use, over the same chunks as lab 06's baselines (lab 06).

Stores, in order (the baselines `ram`, `disk`, `bm25` are in `memlab.rag.stores`):
  1. faiss-flat  a FAISS IndexFlatIP read into process RAM: exact, like `ram`, in FAISS's kernels.
  2. faiss-hnsw  a FAISS HNSW graph index in RAM: approximate (recall@k is reported, not assumed).
  3. faiss-mmap  the flat index memory-mapped from its file: the vectors stay page-cache pages,
                 read from the device when cold.
  4. sqlite-vec  an SQLite file with a vec0 virtual table (the sqlite-vec extension, loaded through
                 apsw, since this Python's sqlite3 cannot load extensions): SQL with real vector
                 search on disk, exact (a brute-force scan of its chunked vector blobs).
FAISS searches on one thread (set here, process-wide). Every store keeps one open handle; sqlite's own page cache is cut to 64 KiB so the OS page cache
(evicted for cold runs) is the cache that decides. Also here: the sqlite-vec file format for any
vectors (the scale sweep writes millions through `build_vec_db`).
Shapes: N chunks (or vectors), D dims, k hits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from memlab.core.errors import InvalidArgumentError, MemlabError
from memlab.rag import indexes
from memlab.rag.chunks import Chunk, corpus_key, rag_dir

KINDS = ("faiss-flat", "faiss-hnsw", "faiss-mmap", "sqlite-vec")
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 64   # the corpus's HNSW (the sweep picks its own efSearch)
SQLITE_CACHE_KIB = 64
INSERT_CHUNK = 10_000


def connect_vec(path: str | Path, read_only: bool = True):
    """An apsw connection to `path` with sqlite-vec loaded, or a one-line error naming the extra."""
    try:
        import apsw
        import sqlite_vec
    except ImportError as e:
        raise MemlabError("sqlite-vec needs apsw and sqlite-vec: pip install 'memlab[rag]'") from e
    flags = apsw.SQLITE_OPEN_READONLY if read_only else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    con = apsw.Connection(str(path), flags=flags)
    con.enable_load_extension(True)
    con.load_extension(sqlite_vec.loadable_path())
    con.enable_load_extension(False)
    con.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    return con


def build_vec_db(path: str | Path, vectors: np.ndarray, chunks: list[Chunk] | None = None,
                 progress: bool = True) -> Path:
    """Write `vectors` (N, D) into a vec0 table (rowid i = row i), `INSERT_CHUNK` rows per transaction,
    plus the chunk texts when given; temp file + rename, and nothing done if `path` exists."""
    from tqdm.auto import tqdm
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = connect_vec(tmp, read_only=False)
    try:
        con.execute(f"CREATE VIRTUAL TABLE vec USING vec0(embedding float[{vectors.shape[1]}])")
        steps = range(0, len(vectors), INSERT_CHUNK)
        for s in tqdm(steps, desc=f"sqlite-vec N={len(vectors):,}", disable=not progress or len(steps) < 3):
            block = np.ascontiguousarray(vectors[s:s + INSERT_CHUNK], np.float32)
            with con:
                con.executemany("INSERT INTO vec(rowid, embedding) VALUES (?, ?)",
                                [(s + i, row.tobytes()) for i, row in enumerate(block)])
        if chunks is not None:
            with con:
                con.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, topic TEXT, text TEXT)")
                con.executemany("INSERT INTO chunks VALUES (?, ?, ?)", [(c.id, c.topic, c.text) for c in chunks])
    finally:
        con.close()
    os.replace(tmp, path)
    return path


def vec_search(con, query: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """sqlite-vec's k nearest rows by L2 distance; for unit vectors cos = 1 - L2^2 / 2, returned as scores."""
    rows = list(con.execute("SELECT rowid, distance FROM vec WHERE embedding MATCH ? AND k = ?",
                            (np.ascontiguousarray(query, np.float32).tobytes(), int(k))))
    return [int(r[0]) for r in rows], [1.0 - float(r[1]) ** 2 / 2 for r in rows]


class FaissStore:
    """A FAISS index over the corpus: flat or HNSW, read into RAM or memory-mapped from its file."""
    needs_embedding = True

    def __init__(self, kind: str, chunks: list[Chunk], embeddings: np.ndarray, cache_dir: str | Path | None = None):
        index_kind, mode = {"faiss-flat": ("flat", "ram"), "faiss-hnsw": ("hnsw", "ram"),
                            "faiss-mmap": ("flat", "mmap")}[kind]
        self.kind, self.is_exact, self.chunks = kind, index_kind == "flat", list(chunks)
        file = indexes.index_path(rag_dir(cache_dir), index_kind, f"corpus-{corpus_key(chunks)}",
                                  HNSW_M, HNSW_EF_CONSTRUCTION)
        indexes.build(index_kind, np.asarray(embeddings, np.float32), file, HNSW_M, HNSW_EF_CONSTRUCTION, progress=False)
        self.file, self.mode = file, mode
        self.threads = indexes.set_threads(1)  # one query, one thread (as lab 06's sweep: memlab.rag.sweep)
        self.index = self.open()
        self.num_chunks, self.disk_bytes = self.index.ntotal, file.stat().st_size
        # in RAM: the index's own arrays (its serialized size); mapped: none, its pages are the file's
        self.ram_bytes = self.disk_bytes if mode == "ram" else 0
        self.index_bytes = self.disk_bytes
        self.path = file if mode == "mmap" else None

    def open(self):
        index = indexes.open_index(self.file, self.mode)
        indexes.set_ef_search(index, HNSW_EF_SEARCH)
        return index

    def release(self) -> None:
        """Unmap the file, so evicting it from the page cache takes (a mapped page cannot be dropped)."""
        self.index = None

    def search(self, query_vec: np.ndarray | None, question: str, k: int):
        if self.index is None:  # released for a cold run: mapping it again is part of the search
            self.index = self.open()
        scores, ids = indexes.search(self.index, query_vec, k)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        return ([i for i, _ in hits], [s for _, s in hits], [self.chunks[i].topic for i, _ in hits],
                [self.chunks[i].text for i, _ in hits])


class SqliteVecStore:
    """The chunks and their embeddings in one SQLite file, searched with sqlite-vec's vec0 (exact)."""
    kind, needs_embedding, is_exact = "sqlite-vec", True, True

    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray, cache_dir: str | Path | None = None):
        self.path = rag_dir(cache_dir) / f"vec-{corpus_key(chunks)}.sqlite"
        build_vec_db(self.path, np.asarray(embeddings, np.float32), chunks, progress=False)
        self.con = connect_vec(self.path)
        self.num_chunks = next(iter(self.con.execute("SELECT count(*) FROM chunks")))[0]
        self.disk_bytes = self.index_bytes = self.path.stat().st_size
        self.ram_bytes = SQLITE_CACHE_KIB * 1024   # at most sqlite's own page cache

    def search(self, query_vec: np.ndarray | None, question: str, k: int):
        ids, scores = vec_search(self.con, query_vec, k)
        marks = ",".join("?" * len(ids))
        rows = {r[0]: r for r in self.con.execute(f"SELECT id, topic, text FROM chunks WHERE id IN ({marks})", ids)}
        return ids, scores, [rows[i][1] for i in ids], [rows[i][2] for i in ids]


def open_vec_store(kind: str, chunks: list[Chunk], embeddings: np.ndarray, cache_dir: str | Path | None = None):
    """One of KINDS over the same chunks; its index file is built once per corpus key."""
    if kind == "sqlite-vec":
        return SqliteVecStore(chunks, embeddings, cache_dir)
    if kind not in KINDS:
        raise InvalidArgumentError(f"unknown store {kind!r}: choose {', '.join(KINDS)}")
    return FaissStore(kind, chunks, embeddings, cache_dir)
