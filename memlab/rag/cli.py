"""`memlab rag` and `memlab rag-scale`: answer from retrieved chunks, timed; every store at scale (lab 06).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time

# memlab.rag.stores.KINDS and memlab.rag.sweep.STORES, here so that registering imports neither (tests check they agree)
STORE_KINDS = ("ram", "disk", "bm25", "faiss-flat", "faiss-hnsw", "faiss-mmap", "sqlite-vec")
SCALE_STORES = ("flat", "hnsw", "flat-mmap", "hnsw-mmap", "sqlite-vec")


def store_list(text: str) -> list[str]:
    """argparse `type=` for --stores: comma-separated names from SCALE_STORES, refused in one line otherwise."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in SCALE_STORES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown store(s) {unknown or [text]}: choose from {', '.join(SCALE_STORES)}")
    return names


def _cmd_rag(args) -> int:
    from memlab.core.loading import load
    from memlab import rag
    embedder = rag.chunks.Embedder()
    chunks = rag.chunks.corpus(max_chunks_per_topic=1 if args.quick else None)
    emb, _ = rag.chunks.embed_corpus(chunks, embedder)
    store = rag.stores.open_store(args.store, chunks, emb)
    exact = None if store.is_exact else rag.stores.RamIndex(chunks, emb)  # recall@k of an approximate store
    loaded = load(args.model)
    rag.retrieval.retrieve(store, args.question, embedder, args.k)  # warm-up: first encode/search pays one-off costs
    r = rag.retrieval.rag_ttft(loaded, args.question, store, embedder, k=args.k, cold=args.cold,
                               max_new_tokens=args.max_new_tokens, exact=exact)
    if args.json:
        print_json(r)
        return 0
    print(r.text)
    recall = "" if r.recall_at_k is None else f", recall@{r.top_k} {r.recall_at_k:.2f} against exact search"
    print(f"\n[{args.store} store, {r.cache_state}, {store.num_chunks} chunks, {fmt_bytes(r.store_ram_bytes)} in RAM, "
          f"{fmt_bytes(r.store_disk_bytes)} on disk{recall}] top {r.top_k}: {', '.join(r.top_topics)}")
    print(f"embed {fmt_time(r.embed_s)} + search {fmt_time(r.search_s)} + model TTFT {fmt_time(r.llm_ttft_s)} "
          f"(prompt {r.prompt_tokens} tok, {r.context_tokens} of them context) = TTFT {fmt_time(r.ttft_s)}")
    return 0


def _cmd_rag_scale(args) -> int:
    from memlab import rag
    from memlab.core.results import as_dict
    base = rag.sweep.ScaleConfig.quick() if args.quick else rag.sweep.ScaleConfig()
    overrides = {k: v for k, v in dict(sizes=tuple(args.sizes) if args.sizes else None,
                                       stores=tuple(args.stores) if args.stores else None, layout=args.layout,
                                       ef_search=args.ef_search, m=args.m, threads=args.threads).items()
                 if v is not None}
    config = rag.sweep.ScaleConfig(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **overrides})
    points, curve = rag.sweep.run(config, progress=not args.json)
    if args.json:
        print_json({"points": [as_dict(p) for p in points], "ef_curve": [as_dict(e) for e in curve]})
        return 0
    print(f"{config.layout} vectors, D = {config.dim}, k = {config.k}, faiss threads while searching: {points[0].threads}")
    print(f"{'store':10s} {'N':>10s} {'cache':5s} {'median':>9s} {'p99':>9s} {'recall':>6s} "
          f"{'RAM (RSS)':>10s} {'allocated':>10s} {'formula':>10s} {'disk':>10s}  params")
    for p in points:
        formula, heap = ("-" if b != b else fmt_bytes(b) for b in (p.formula_ram_bytes, p.heap_bytes))
        print(f"{p.store:10s} {p.num_vectors:>10,} {p.cache_state:5s} {fmt_time(p.median_s):>9s} {fmt_time(p.p99_s):>9s} "
              f"{p.recall_at_k:6.3f} {fmt_bytes(max(p.ram_bytes, 0)):>10s} {heap:>10s} {formula:>10s} "
              f"{fmt_bytes(p.disk_bytes):>10s}  {p.params}")
    print(rag.sweep.claim_vs_measured(points))
    return 0


def register(sub) -> None:
    s = sub.add_parser("rag", help="answer from retrieved pydoc chunks; time embed, search and TTFT")
    s.add_argument("question")
    s.add_argument("--store", default="ram", choices=STORE_KINDS,
                   help="ram: numpy index; disk: sqlite file scanned per query; bm25: sqlite FTS5; faiss-flat, "
                        "faiss-hnsw: FAISS in RAM; faiss-mmap: the flat index mapped from its file; "
                        "sqlite-vec: SQL vector search on disk")
    s.add_argument("--cold", action="store_true", help="evict the store's file from the page cache first")
    s.add_argument("--k", type=limits.COUNT, default=3, help="chunks put into the prompt")
    s.add_argument("--quick", action="store_true", help="one chunk per topic (79 chunks) instead of all")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=32)
    s.add_argument("--json", action="store_true", help="one JSON object with the RagTTFT fields")
    s.set_defaults(func=_cmd_rag)

    s = sub.add_parser("rag-scale", help="every vector store from thousands to millions of synthetic vectors: "
                                         "latency, recall, bytes in RAM and on disk")
    s.add_argument("--sizes", type=limits.count_list, help="comma-separated N (default 10000,100000,1000000)")
    s.add_argument("--stores", type=store_list,
                   help=f"comma-separated, from {','.join(SCALE_STORES)} (default all)")
    s.add_argument("--layout", choices=["clustered", "uniform"], help="synthetic vectors (default clustered)")
    s.add_argument("--ef-search", type=limits.COUNT, help="HNSW search depth (default: the smallest reaching recall 0.95)")
    s.add_argument("--m", type=limits.COUNT, help="HNSW links per vector (default 32)")
    s.add_argument("--threads", type=limits.COUNT, help="faiss threads while searching (default 1)")
    s.add_argument("--quick", action="store_true", help="N = 2000 and 10000, fewer queries")
    s.add_argument("--json", action="store_true", help="{points: [ScalePoint], ef_curve: [EfPoint]}")
    s.set_defaults(func=_cmd_rag_scale)
