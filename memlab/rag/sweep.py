"""RAG at the scale where memory decides: each store timed from thousands to millions of vectors (lab 06).

For each size N (synthetic vectors from `memlab.rag.synthetic`, the same for every store):
  1. build every index once (cached per kind, N and parameters) and the exact answers (flat, batched);
  2. per store, open it and time one query at a time: median and p99, recall@k against the exact
     answers, bytes in RAM (for an index read into RAM, what the allocator handed out and the RSS grown by an open;
     for a mapped one, the RSS grown to after the queries) beside the formula (`memlab.rag.indexes`), and its
     file's bytes on disk.
Stores, in order:
  flat        FAISS exact flat index read into RAM          (formula 4·D·N)
  hnsw        FAISS HNSW graph in RAM at efSearch            (formula 4·D·N + links, `indexes.hnsw_bytes`)
  flat-mmap   the flat index mapped from its file, warm and cold (evicted before each cold query)
  hnsw-mmap   the HNSW index mapped from its file, warm and cold: a walk touches few of its pages
  sqlite-vec  SQL on disk (vec0, exact), warm and cold
HNSW's efSearch: given, or the smallest of EF_CHOICES whose recall@k on a separate set of tuning
queries reaches `target_recall` (so the recall reported is measured on queries it was not tuned on).
Shapes: N vectors, D dims, Q queries, k hits.
"""

from __future__ import annotations

import shutil
from pathlib import Path
import statistics
import time
from dataclasses import dataclass

import numpy as np

from memlab.core import guard, limits, measure, pagecache
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import HardwareCard, card
from memlab.core.units import fmt_time
from memlab.rag import indexes, memory, synthetic, vecstores

STORES = ("flat", "hnsw", "flat-mmap", "hnsw-mmap", "sqlite-vec")
EF_CHOICES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MIN_QUERIES = 5          # timed queries per store and size, however slow
BINDER_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    sizes: tuple = (10_000, 100_000, 1_000_000)
    stores: tuple = STORES
    layout: str = "clustered"      # synthetic.LAYOUTS
    dim: int = 384
    k: int = 10
    m: int = 32                    # HNSW links per vector (2M at level 0)
    ef_construction: int = 64
    ef_search: int | None = None   # None: the smallest of EF_CHOICES reaching target_recall
    target_recall: float = 0.95
    num_queries: int = 200
    max_query_s: float = 10.0      # per store and size: stop timing after this long (MIN_QUERIES at least)
    num_cold: int = 5              # cold queries (each after an eviction)
    threads: int = 1               # faiss OpenMP threads while searching; builds use every core. One query on
                                   # one thread: with 2 threads on a busy 2-core machine a 2 ms flat search
                                   # took 16-32 ms, the OpenMP threads waiting for each other (measured)
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> "ScaleConfig":
        return cls(**{**dict(sizes=(2_000, 10_000), num_queries=50, max_query_s=1.0, num_cold=3), **overrides})

    def __post_init__(self):
        for n in self.sizes:
            limits.count(n, "each size")
        unknown = [s for s in self.stores if s not in STORES]
        if unknown or not self.stores:
            raise InvalidArgumentError(f"unknown stores {unknown or '(none)'}: choose from {', '.join(STORES)}")
        if self.layout not in synthetic.LAYOUTS:
            raise InvalidArgumentError(f"unknown layout {self.layout!r}: choose {' or '.join(synthetic.LAYOUTS)}")
        limits.fraction(self.target_recall, "target_recall")
        for name in ("k", "m", "ef_construction", "num_queries", "num_cold", "threads"):
            limits.count(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class ScalePoint:
    store: str                 # STORES
    layout: str                # "clustered" or "uniform"
    num_vectors: int           # N
    dim: int                   # D
    threads: int               # faiss OpenMP threads
    params: str                # "M=32 efC=64 efS=48" for HNSW, "" otherwise
    cache_state: str           # "ram" (read into RAM), "warm" or "cold" (page cache of the file before each query)
    build_s: float             # building the index (0.0: read from the cache)
    ram_bytes: int             # RSS growth: in RAM, the anonymous part over an open (`memory.held_by`); mapped,
                               # to after the queries
    heap_bytes: float          # in RAM, the bytes the C allocator handed out for it (`memory.heap_bytes`); else nan
    formula_ram_bytes: float   # what the formula says RAM holds (nan where RAM is the page cache's, not ours)
    disk_bytes: int            # the store's file
    median_s: float            # one query's search, median
    p99_s: float
    num_queries: int
    recall_at_k: float         # |top-k ∩ exact top-k| / k, mean over the timed queries
    k: int
    hardware: HardwareCard


@dataclass(frozen=True, slots=True)
class EfPoint:
    num_vectors: int
    ef_search: int
    recall_at_k: float
    median_s: float


def needs(config: ScaleConfig, n: int) -> tuple[float, float]:
    """(disk bytes, RAM bytes) a size needs: the vectors, each index file and the sqlite file on disk;
    the largest index read into RAM at once."""
    flat, hnsw = indexes.flat_bytes(n, config.dim), indexes.hnsw_bytes(n, config.dim, config.m)
    has_hnsw = any(s.startswith("hnsw") for s in config.stores)
    disk = 2 * flat + (hnsw if has_hnsw else 0) + (1.05 * flat if "sqlite-vec" in config.stores else 0)
    return disk, hnsw if has_hnsw else flat


def sizes_that_fit(config: ScaleConfig, candidates) -> list[int]:
    """The candidate sizes whose needs fit the disk and RAM free now, with RAM to spare for the rest (x1.5)."""
    folder = synthetic.vectors_file(1, config.dim).parent
    folder.mkdir(parents=True, exist_ok=True)
    free_disk, free_ram = shutil.disk_usage(folder).free, guard.available_bytes()
    return [n for n in candidates if needs(config, n)[0] <= free_disk and 1.5 * needs(config, n)[1] <= free_ram]


def time_queries(search_one, queries: np.ndarray, max_s: float, before=None,
                 min_queries: int = MIN_QUERIES) -> tuple[list[float], np.ndarray]:
    """Seconds of each single-query search (`before()` untimed ahead of each) and the ids found (Q', k):
    every query, or as many as fit in `max_s` seconds but at least `min_queries`."""
    times, found = [], []
    for q in queries:
        if before is not None:
            before()
        start = time.perf_counter()
        ids = search_one(q)
        times.append(time.perf_counter() - start)
        found.append(ids)
        if sum(times) > max_s and len(times) >= min_queries:
            break
    return times, np.asarray(found)


def ef_curve(index, queries: np.ndarray, truth: np.ndarray, k: int, efs=EF_CHOICES) -> list[EfPoint]:
    """HNSW's recall@k and median search time at each efSearch (one query at a time)."""
    out = []
    for ef in efs:
        indexes.set_ef_search(index, ef)
        times, found = time_queries(lambda q: indexes.search(index, q, k)[1][0], queries, max_s=float("inf"))
        out.append(EfPoint(index.ntotal, ef, indexes.recall_at_k(found, truth), statistics.median(times)))
    return out


def pick_ef_search(curve: list[EfPoint], target_recall: float) -> int:
    """The smallest efSearch whose recall reaches the target (the largest tried when none does)."""
    good = [p.ef_search for p in curve if p.recall_at_k >= target_recall]
    return min(good) if good else max(p.ef_search for p in curve)


def warm(path) -> None:
    """Read the whole file once, so it sits in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def measure_store(store: str, files: dict, config: ScaleConfig, queries, truth, ef_search: int, threads: int,
                  build_s: float) -> list[ScalePoint]:
    """One store at one size: a "ram" row, or "warm" and "cold" rows for a store read from its file."""
    k = config.k
    kind = "sqlite-vec" if store == "sqlite-vec" else store.split("-")[0]
    path = files[kind]
    formula = {"flat": indexes.flat_bytes(files["n"], config.dim),
               "hnsw": indexes.hnsw_bytes(files["n"], config.dim, config.m)}.get(kind, float("nan"))
    rows = []
    states = ("ram",) if "-" not in store else ("warm", "cold")
    for state in states:
        held = {}

        def opener():
            if kind == "sqlite-vec":
                return vecstores.connect_vec(path)
            index = indexes.open_index(path, "ram" if state == "ram" else "mmap")
            indexes.set_ef_search(index, ef_search)
            return index

        def search_one(q):
            if "h" not in held:  # a cold query maps (or connects) again after its eviction
                held["h"] = opener()
            if kind == "sqlite-vec":
                return vecstores.vec_search(held["h"], q, k)[0]
            return indexes.search(held["h"], q, k)[1][0]

        def evict():
            held.pop("h", None)
            pagecache.evict(path)

        if state == "warm":
            warm(path)
        measure.release_freed_memory()
        rss0, held_ram = measure.rss_bytes(), None
        if state == "cold":
            # at least 2: a cold mapped flat index at N = 1e6 took 34 s a query (page faults, under load)
            times, found = time_queries(search_one, queries[:config.num_cold], config.max_query_s, before=evict,
                                        min_queries=2)
        else:
            if state == "ram":  # an index read into RAM holds its bytes once opened, before any query
                held["h"], held_ram = memory.held_by(opener)
            else:
                held["h"] = opener()
            search_one(queries[0])  # warm-up: first-touch page faults and lazy set-up are not a query's cost
            times, found = time_queries(search_one, queries, config.max_query_s)
        ram = held_ram.rss_bytes if held_ram else measure.rss_bytes() - rss0
        held.clear()
        rows.append(ScalePoint(
            store=store, layout=config.layout, num_vectors=files["n"], dim=config.dim, threads=threads,
            params=f"M={config.m} efC={config.ef_construction} efS={ef_search}" if kind == "hnsw" else "",
            cache_state=state, build_s=build_s, ram_bytes=int(ram),
            heap_bytes=held_ram.heap_bytes if held_ram else float("nan"),
            # a mapped HNSW index brings in only the pages its walks touch: no formula for that
            formula_ram_bytes=formula if state == "ram" or store == "flat-mmap" and state == "warm" else float("nan"),
            disk_bytes=path.stat().st_size, median_s=statistics.median(times),
            p99_s=float(np.percentile(times, 99)), num_queries=len(times),
            recall_at_k=indexes.recall_at_k(found, truth[:len(found)]), k=k, hardware=card()))
    return rows


def index_file(config: ScaleConfig, n: int, kind: str = "flat", cache_dir=None) -> Path:
    """Where `run` keeps the `kind` ("flat" or "hnsw") index of `config`'s vectors at N = n."""
    vectors_file = synthetic.vectors_file(n, config.dim, config.layout, config.seed, cache_dir)
    return indexes.index_path(vectors_file.parent, kind, vectors_file.stem, config.m, config.ef_construction)


def run(config: ScaleConfig, cache_dir=None, progress: bool = True) -> tuple[list[ScalePoint], list[EfPoint]]:
    """Every store at every size (see the module docstring); also HNSW's efSearch curve per size."""
    from tqdm.auto import tqdm
    points, curves = [], []
    for n in config.sizes:  # refuse before anything is made: disk for what is not cached yet, RAM for the largest index
        disk, ram = needs(config, n)
        vectors_file = synthetic.vectors_file(n, config.dim, config.layout, config.seed, cache_dir)
        synthetic.check_room(0 if vectors_file.exists() else disk, vectors_file.parent, ram, what=f"N = {n:,}")
    for n in tqdm(config.sizes, desc="sizes", disable=not progress):
        indexes.set_threads(None)
        vectors = synthetic.make_vectors(n, config.dim, config.layout, config.seed, cache_dir, progress)
        files, build_s = {"n": n}, {}
        for kind in ("flat", "hnsw"):  # every store reads these files
            if kind == "flat" or any(s.startswith(kind) for s in config.stores):
                files[kind] = index_file(config, n, kind, cache_dir)
                build_s[kind] = indexes.build(kind, vectors, files[kind], config.m, config.ef_construction, progress)
        if "sqlite-vec" in config.stores:
            vectors_file = synthetic.vectors_file(n, config.dim, config.layout, config.seed, cache_dir)
            files["sqlite-vec"] = vectors_file.parent / f"vec-{vectors_file.stem}.sqlite"
            start = time.perf_counter()
            existed = files["sqlite-vec"].exists()
            vecstores.build_vec_db(files["sqlite-vec"], vectors, progress=progress)
            build_s["sqlite-vec"] = 0.0 if existed else time.perf_counter() - start
        threads = indexes.set_threads(config.threads)
        queries, _ = synthetic.make_queries(vectors, config.num_queries, seed=config.seed + 1)
        tuning, _ = synthetic.make_queries(vectors, min(config.num_queries, 100), seed=config.seed + 2)  # Q <= 100
        flat = indexes.open_index(files["flat"], "mmap")
        truth, tuning_truth = (indexes.search(flat, q, config.k)[1] for q in (queries, tuning))
        del flat
        ef = config.ef_search
        if "hnsw" in files:
            hnsw = indexes.open_index(files["hnsw"], "ram")
            curve = ef_curve(hnsw, tuning, tuning_truth, config.k)
            curves += curve
            ef = ef or pick_ef_search(curve, config.target_recall)
            del hnsw
        for store in config.stores:
            kind = "sqlite-vec" if store == "sqlite-vec" else store.split("-")[0]
            points += measure_store(store, files, config, queries, truth, ef, threads, build_s[kind])
    return points, curves


def fits_binder(p: ScalePoint) -> bool:
    """Does this store's RAM (formula) fit Binder's 2 GiB?"""
    return not p.formula_ram_bytes > BINDER_BYTES


def share_size(points: list[ScalePoint], ttft_s: float, store: str = "flat", share: float = 0.1) -> float:
    """The N at which `store`'s median search reaches `share` of the TTFT, from its largest measured N,
    assuming time grows in proportion to N (true of an exact scan, which reads all N vectors)."""
    p = max((p for p in points if p.store == store and p.cache_state in ("ram", "warm")), key=lambda p: p.num_vectors)
    return share * ttft_s * p.num_vectors / p.median_s


def claim_vs_measured(points: list[ScalePoint]) -> str:
    """The seed's claim ("in-memory stores answer in nanoseconds, disk-based SQL databases in
    milliseconds") beside this run's medians at its largest N."""
    n = max(p.num_vectors for p in points)
    at_n = [p for p in points if p.num_vectors == n]
    lines = [f"claim: in-memory stores answer in nanoseconds, disk-based SQL in milliseconds. "
             f"Measured here at N = {n:,} (median of one query):"]
    lines += [f"  {p.store:10s} {p.cache_state:4s} {fmt_time(p.median_s):>10s}  ({p.median_s * 1e9:,.0f} ns)" for p in at_n]
    return "\n".join(lines)
