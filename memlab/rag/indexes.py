"""FAISS vector indexes at scale: exact flat and graph HNSW, their bytes, built once and cached (lab 06).

Indexes, in order:
  1. flat  IndexFlatIP: the N vectors as float32, nothing else; a search scores all N (exact).
           bytes = 4·D·N
  2. hnsw  IndexHNSWFlat: the same vectors plus a navigable graph; a search walks the graph from an
           entry point and scores only the vectors it visits (approximate: recall < 1 is possible).
           Each vector gets a level L with P(L >= l) = M^-l; level 0 holds 2M neighbour ids, each
           level above M more (int32), so E[links] = 2M + M/(M-1) per vector; faiss also keeps each
           vector's level (int32) and an offset into the link table (int64):
           bytes = 4·D·N + 4·N·(2M + M/(M-1)) + 12·N
Opened "ram" (`read_index`: the file is copied into process memory) or "mmap" (IO_FLAG_MMAP_IFC:
the vectors are mapped from the file in place, read through the page cache; the plain IO_FLAG_MMAP
of faiss 1.15 still copies a flat index's vectors into RAM, measured in lab 06's making).
Recall@k = |found top-k ∩ exact top-k| / k, averaged over the queries.
Shapes: N vectors, D dims, Q queries, k hits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from memlab.core.errors import InvalidArgumentError, MemlabError

KINDS = ("flat", "hnsw")
ADD_CHUNK = 20_000  # vectors per faiss.add call, so a long build shows progress


def load_faiss():
    """The faiss module, or a one-line error naming the extra that installs it."""
    try:
        import faiss
    except ImportError as e:
        raise MemlabError("FAISS is not installed: pip install 'memlab[rag]' (or pip install faiss-cpu)") from e
    return faiss


def set_threads(num_threads: int | None = None) -> int:
    """Set faiss's OpenMP threads (default: every core) and return the count, so every store is timed
    with the same number (a single query's flat or HNSW search runs on one thread either way)."""
    n = int(num_threads or os.cpu_count() or 1)
    load_faiss().omp_set_num_threads(n)
    return n


def flat_bytes(num_vectors: int, dim: int) -> int:
    """A flat float32 index: 4·D·N bytes."""
    return 4 * dim * num_vectors


def hnsw_link_bytes(num_vectors: int, m: int) -> float:
    """HNSW's graph: 4·N·(2M + M/(M-1)) bytes of int32 neighbour ids + 12·N of levels and offsets."""
    return 4 * num_vectors * (2 * m + m / (m - 1)) + 12 * num_vectors


def hnsw_bytes(num_vectors: int, dim: int, m: int) -> float:
    """An HNSW index: the flat vectors (4·D·N) plus its graph (`hnsw_link_bytes`)."""
    return flat_bytes(num_vectors, dim) + hnsw_link_bytes(num_vectors, m)


def new_index(kind: str, dim: int, m: int = 32, ef_construction: int = 64):
    """An empty inner-product index of `kind` ("flat" or "hnsw" with M = m links)."""
    faiss = load_faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        if m < 2:
            raise InvalidArgumentError(f"HNSW needs M >= 2 links per vector, got {m}")
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        return index
    raise InvalidArgumentError(f"unknown index kind {kind!r}: choose {' or '.join(KINDS)}")


def index_path(folder: Path, kind: str, vectors_name: str, m: int = 32, ef_construction: int = 64) -> Path:
    """One file per (kind, vectors, parameters): a rerun finds it instead of building again."""
    params = f"-m{m}-efc{ef_construction}" if kind == "hnsw" else ""
    return Path(folder) / f"{kind}{params}-{vectors_name}.faiss"


def build(kind: str, vectors: np.ndarray, path: str | Path, m: int = 32, ef_construction: int = 64,
          progress: bool = True) -> float:
    """Build the index over `vectors` (N, D), adding them chunk by chunk (a progress bar per chunk),
    and write it to `path`; return the build seconds (0.0 when `path` already exists)."""
    from tqdm.auto import tqdm
    path = Path(path)
    if path.exists():
        return 0.0
    faiss = load_faiss()
    index = new_index(kind, vectors.shape[1], m, ef_construction)
    start = time.perf_counter()
    steps = range(0, len(vectors), ADD_CHUNK)
    for s in tqdm(steps, desc=f"build {kind} N={len(vectors):,}", disable=not progress or len(steps) < 3):
        index.add(np.ascontiguousarray(vectors[s:s + ADD_CHUNK], np.float32))
    build_s = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    return build_s


def open_index(path: str | Path, mode: str = "ram"):
    """Read an index file: "ram" copies it into process memory, "mmap" maps its vectors in place."""
    faiss = load_faiss()
    if mode not in ("ram", "mmap"):
        raise InvalidArgumentError(f"unknown index mode {mode!r}: choose ram or mmap")
    if not Path(path).exists():
        raise MemlabError(f"no index file at {path}; build it with memlab.rag.indexes.build(...)")
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mode == "mmap" else 0)


def set_ef_search(index, ef_search: int | None) -> None:
    """HNSW's search depth (candidates kept while walking the graph); flat indexes have none."""
    if ef_search is not None and hasattr(index, "hnsw"):
        if ef_search < 1:
            raise InvalidArgumentError(f"efSearch must be >= 1, got {ef_search}")
        index.hnsw.efSearch = int(ef_search)


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (Q, k), best first."""
    return index.search(np.ascontiguousarray(queries, np.float32).reshape(-1, index.d), k)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found_i ∩ truth_i| / k, with truth the exact top-k (Q, k)."""
    found, truth = np.atleast_2d(found), np.atleast_2d(truth)
    if found.shape != truth.shape:
        raise InvalidArgumentError(f"found {found.shape} and truth {truth.shape} must have the same (Q, k)")
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))

