"""Synthetic embeddings for RAG at scale: millions of unit vectors written straight to disk (lab 06).

Search time depends on the bytes and the index's structure, not on what the vectors mean, so past
the real corpus lab 06 times the stores on made-up vectors whose right answers are known.
Layouts, in order:
  1. clustered  like real sentence embeddings: N / PER_CENTRE topics (the pydoc corpus has ~7 chunks
                per topic), each a Gaussian centre in a LATENT_DIM-dim space; a vector is its topic's
                centre plus Gaussian noise (SPREAD per latent dim), lifted to D dims by one fixed random
                map, normalised, then shifted by BIAS along one shared direction (real embeddings share
                one: their random pairs have cos ~0.26, not 0) plus isotropic noise ISO, and
                normalised again. The constants match MiniLM on the pydoc corpus (mean cos of random
                pairs, of the nearest and of the 10th nearest neighbour: `neighbour_cosines`).
  2. uniform    Gaussian directions, renormalised: every vector about equally far from every other,
                the worst case for a graph index (no neighbourhood to walk towards).
Queries: a stored vector plus noise of norm ~QUERY_NOISE, renormalised, so its source is (almost
surely) its nearest neighbour; recall@k is measured against the exact flat search of the same query.
Vectors are generated chunk by chunk (chunk j from seed (seed, j)) into a .npy memmap in the memlab
cache, so N vectors are never held in RAM, and a file is made once per (layout, N, D, seed).
Shapes: N vectors, D dims, Q queries.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from memlab.core import guard, limits
from memlab.core.errors import InvalidArgumentError, WontFitError
from memlab.core.units import fmt_bytes
from memlab.rag.chunks import rag_dir

LAYOUTS = ("clustered", "uniform")
PER_CENTRE = 8         # vectors per topic
LATENT_DIM = 32        # the dimensions along which the vectors of this corpus really differ
SPREAD = 0.7           # a vector's distance from its topic centre, per latent dim (centres: 1)
BIAS = 0.6             # the shared direction's weight
ISO = 0.3              # isotropic noise (norm)
QUERY_NOISE = 0.3      # cos(query, its source) ~ 0.96
CHUNK = 65_536         # vectors generated and written per step (96 MiB at D = 384)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its length (float32)."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def vectors_file(num_vectors: int, dim: int = 384, layout: str = "clustered", seed: int = 0,
                 cache_dir: str | Path | None = None) -> Path:
    """Where `make_vectors` keeps these vectors: <memlab cache>/rag/synthetic/."""
    return rag_dir(cache_dir) / "synthetic" / f"{layout}-n{num_vectors}-d{dim}-s{seed}.npy"


def check_room(disk_bytes: float, folder: str | Path, ram_bytes: float = 0, what: str = "this") -> None:
    """Refuse in one line when the disk under `folder` or the RAM lacks room (bytes needed and free)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    free_disk = shutil.disk_usage(folder).free
    if disk_bytes > free_disk:
        raise WontFitError(f"{what} needs {fmt_bytes(disk_bytes)} on disk under {folder}, "
                           f"which has {fmt_bytes(free_disk)} free: choose fewer vectors")
    free_ram = guard.available_bytes()
    if ram_bytes > free_ram:
        raise WontFitError(f"{what} needs {fmt_bytes(ram_bytes)} of RAM, and {fmt_bytes(free_ram)} is available: "
                           "choose fewer vectors")


def topics(num_vectors: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(topic centres (C, LATENT_DIM), the lift (LATENT_DIM, D), the shared direction (D,)) for N vectors."""
    rng = np.random.default_rng([seed, 2**31])
    num_centres = max(1, num_vectors // PER_CENTRE)
    shared = rng.standard_normal(dim).astype(np.float32)
    return (rng.standard_normal((num_centres, LATENT_DIM), dtype=np.float32),
            rng.standard_normal((LATENT_DIM, dim), dtype=np.float32), shared / np.linalg.norm(shared))


def chunk_vectors(j: int, count: int, dim: int, layout: str, seed: int, topic_parts=None) -> np.ndarray:
    """Chunk j's `count` vectors (count, D), from its own seed (see the module docstring for the recipe)."""
    rng = np.random.default_rng([seed, j])
    noise = rng.standard_normal((count, dim), dtype=np.float32)
    if layout == "uniform":
        return unit_rows(noise)
    centre_rows, lift, shared = topic_parts
    z = centre_rows[rng.integers(0, len(centre_rows), count)]
    z = z + SPREAD * rng.standard_normal(z.shape, dtype=np.float32)   # (count, LATENT_DIM)
    return unit_rows(unit_rows(z @ lift) + BIAS * shared + noise * (ISO / np.sqrt(dim)))


def make_vectors(num_vectors: int, dim: int = 384, layout: str = "clustered", seed: int = 0,
                 cache_dir: str | Path | None = None, progress: bool = True) -> np.ndarray:
    """N unit vectors (N, D) float32 as a read-only memmap of a cached .npy, generated once, chunk by chunk."""
    from tqdm.auto import tqdm
    limits.count(num_vectors, "num_vectors")
    limits.count(dim, "dim")
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {layout!r}: choose {' or '.join(LAYOUTS)}")
    path = vectors_file(num_vectors, dim, layout, seed, cache_dir)
    if not path.exists():
        check_room(4 * dim * num_vectors, path.parent, what=f"{num_vectors:,} vectors of {dim} float32")
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(num_vectors, dim))
        parts = topics(num_vectors, dim, seed) if layout == "clustered" else None
        steps = range(0, num_vectors, CHUNK)
        try:
            for j, s in enumerate(tqdm(steps, desc=f"{layout} vectors", disable=not progress or len(steps) < 3)):
                out[s:s + CHUNK] = chunk_vectors(j, min(CHUNK, num_vectors - s), dim, layout, seed, parts)
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def make_queries(vectors: np.ndarray, num_queries: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(queries (Q, D), source ids (Q,)): stored vectors picked at random, each nudged by QUERY_NOISE."""
    limits.count(num_queries, "num_queries")
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(len(vectors), size=min(num_queries, len(vectors)), replace=False))
    src = np.asarray(vectors[ids], np.float32)
    noise = rng.standard_normal(src.shape, dtype=np.float32) * (QUERY_NOISE / np.sqrt(src.shape[1]))
    return unit_rows(src + noise), ids


def neighbour_cosines(vectors: np.ndarray, sample: int = 2000) -> tuple[float, float, float]:
    """Mean cosine of (random pairs, each vector's nearest, its 10th nearest) among the first `sample`
    vectors: how clustered a set of unit vectors is (compare real embeddings with synthetic ones)."""
    x = np.asarray(vectors[:sample], np.float32)
    sims = x @ x.T                       # (S, S)
    np.fill_diagonal(sims, -np.inf)
    nearest = -np.sort(-sims, axis=1)[:, :10]
    pairs = sims[np.triu_indices(len(x), 1)]
    return float(pairs.mean()), float(nearest[:, 0].mean()), float(nearest[:, min(9, len(x) - 2)].mean())
