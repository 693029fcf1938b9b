"""`memlab rag`: answer from retrieved chunks, timed (lab 06).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time


def _cmd_rag(args) -> int:
    from memlab.core.loading import load
    from memlab import rag
    embedder = rag.chunks.Embedder()
    chunks = rag.chunks.corpus(max_chunks_per_topic=1 if args.quick else None)
    emb, _ = rag.chunks.embed_corpus(chunks, embedder)
    store = rag.stores.open_store(args.store, chunks, emb)
    loaded = load(args.model)
    rag.retrieval.retrieve(store, args.question, embedder, args.k)  # warm-up: first encode/search pays one-off costs
    r = rag.retrieval.rag_ttft(loaded, args.question, store, embedder, k=args.k, cold=args.cold,
                     max_new_tokens=args.max_new_tokens)
    if args.json:
        print_json(r)
        return 0
    print(r.text)
    print(f"\n[{args.store} store, {r.cache_state}, {store.num_chunks} chunks, {fmt_bytes(store.index_bytes)}] "
          f"top {r.top_k}: {', '.join(r.top_topics)}")
    print(f"embed {fmt_time(r.embed_s)} + search {fmt_time(r.search_s)} + model TTFT {fmt_time(r.llm_ttft_s)} "
          f"(prompt {r.prompt_tokens} tok, {r.context_tokens} of them context) = TTFT {fmt_time(r.ttft_s)}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("rag", help="answer from retrieved pydoc chunks; time embed, search and TTFT")
    s.add_argument("question")
    s.add_argument("--store", default="ram", choices=["ram", "disk", "bm25"],
                   help="ram: numpy index; disk: sqlite file scanned per query; bm25: sqlite FTS5")
    s.add_argument("--cold", action="store_true", help="evict the database file from the page cache first")
    s.add_argument("--k", type=limits.COUNT, default=3, help="chunks put into the prompt")
    s.add_argument("--quick", action="store_true", help="one chunk per topic (79 chunks) instead of all")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=32)
    s.add_argument("--json", action="store_true", help="one JSON object with the RagTTFT fields")
    s.set_defaults(func=_cmd_rag)
