"""Retrieval-augmented generation, timed: embed, search, prefill, and TTFT (lab 06).

RAG answers a question in three timed steps: embed the question, search a store of chunk
embeddings for the k most similar chunks (the stores, in-RAM index vs on-disk database, are in
`memlab.rag.stores`; the corpus and the embedder in `memlab.rag.chunks`), then prefill the model
on question + chunks. `retrieve` times one search; `rag_ttft` the whole path to the first token.
Score: s_i = q . e_i with unit-length embeddings (cosine similarity); top-k = the k largest s_i.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from memlab.core import limits, pagecache
from memlab.core.errors import InvalidArgumentError
from memlab.core.generation import encode, generate
from memlab.core.hardware import HardwareCard, card
from memlab.rag.chunks import Embedder


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
    is_exact: bool = True          # exact search (every score computed) or approximate (HNSW)
    ram_bytes: int = 0             # vector bytes the store keeps in process memory
    disk_bytes: int = 0            # the store's file (0 for the in-RAM numpy index)
    recall_at_k: float | None = None  # approximate stores given an exact one: |top-k ∩ exact top-k| / k


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
    store_ram_bytes: int = 0   # as RetrievalResult.ram_bytes (0: no store)
    store_disk_bytes: int = 0  # as RetrievalResult.disk_bytes
    recall_at_k: float | None = None  # as RetrievalResult.recall_at_k


def retrieve(store, question: str, embedder: Embedder | None, k: int = 3, cold: bool = False,
             exact=None) -> RetrievalResult:
    """Embed the question, then search `store`, timing both.

    Disk stores: `cold=True` evicts the file from the page cache first, `cold=False` reads it all
    in first (warm); `resident_before` records what mincore saw either way. An approximate vector
    store given an `exact` store gets recall@k against it (after the timing).
    """
    limits.count(k, "k")
    if not question.strip():
        raise InvalidArgumentError("the question is empty: give the words to search for")
    if store.path is None:
        state, resident = "ram", 1.0
    else:
        if cold:
            if hasattr(store, "release"):  # a memory-mapped store unmaps first: mapped pages cannot be evicted
                store.release()
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
    recall = None
    if exact is not None and not store.is_exact and store.needs_embedding:
        recall = len(set(ids) & set(exact.search(query_vec, question, k)[0])) / k
    return RetrievalResult(
        question=question, store=store.kind, cache_state=state, resident_before=resident,
        num_chunks=store.num_chunks, index_bytes=store.index_bytes, embed_s=embed_s, search_s=search_s,
        retrieval_s=embed_s + search_s, top_ids=tuple(ids), top_topics=tuple(topics),
        top_scores=tuple(scores), top_texts=tuple(texts), hardware=card(), is_exact=store.is_exact,
        ram_bytes=int(store.ram_bytes), disk_bytes=int(store.disk_bytes), recall_at_k=recall)


def build_prompt(question: str, texts: list[str] | tuple = ()) -> str:
    """The question alone, or the retrieved chunks followed by the question."""
    if not texts:
        return question
    context = "\n\n---\n\n".join(texts)
    return f"Use this documentation to answer.\n\n{context}\n\n---\n\nQuestion: {question}"


def prompt_tokens(loaded, question: str, store=None, embedder: Embedder | None = None, k: int = 3) -> int:
    """Tokens `rag_ttft` would prefill for `question` with `k` chunks from `store`: retrieves and
    counts, without running the model (a lab's prediction needs the length before the measurement)."""
    r = retrieve(store, question, embedder, k) if store is not None and k > 0 else None
    return len(encode(loaded.tokenizer, build_prompt(question, r.top_texts if r else ())))


def rag_ttft(loaded, question: str, store=None, embedder: Embedder | None = None, k: int = 3,
             cold: bool = False, max_new_tokens: int = 8, exact=None) -> RagTTFT:
    """TTFT the user sees = retrieval_s (embed + search) + the model's TTFT on question + k chunks.

    `store=None` (or k=0) times the question alone, without retrieval; `exact` as in `retrieve`.
    """
    r = retrieve(store, question, embedder, k, cold, exact) if store is not None and k > 0 else None
    g = generate(loaded, build_prompt(question, r.top_texts if r else ()), max_new_tokens=max_new_tokens)
    question_tokens = len(encode(loaded.tokenizer, question))
    return RagTTFT(
        question=question, store=r.store if r else "none", cache_state=r.cache_state if r else "none",
        top_k=len(r.top_ids) if r else 0, embed_s=r.embed_s if r else 0.0, search_s=r.search_s if r else 0.0,
        retrieval_s=r.retrieval_s if r else 0.0, question_tokens=question_tokens,
        prompt_tokens=g.prompt_tokens, context_tokens=g.prompt_tokens - question_tokens,
        tokenize_s=g.tokenize_s, prefill_s=g.prefill_s, llm_ttft_s=g.ttft_s,
        ttft_s=(r.retrieval_s if r else 0.0) + g.ttft_s, top_topics=r.top_topics if r else (),
        text=g.text, hardware=g.hardware, store_ram_bytes=r.ram_bytes if r else 0,
        store_disk_bytes=r.disk_bytes if r else 0, recall_at_k=r.recall_at_k if r else None)
