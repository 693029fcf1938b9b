"""memlab.rag.vecstores: the exact stores people use (FAISS flat, mapped, sqlite-vec) return numpy's
chunks; HNSW reports its recall; cold really evicts; the CLI lists the same stores."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from memlab import rag
from memlab.core import pagecache

has_all = all(importlib.util.find_spec(m) is not None for m in ("faiss", "sqlite_vec", "apsw"))
pytestmark = pytest.mark.skipif(not has_all, reason="faiss-cpu, sqlite-vec or apsw not installed (pip install 'memlab[rag]')")


class Unit:
    """A stand-in embedder: the question's vector is fixed, so no MiniLM is needed."""

    def __init__(self, vec):
        self.vec = vec

    def encode(self, texts):
        return self.vec[None, :]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    chunks = rag.chunks.corpus(max_chunks_per_topic=2)
    emb = rag.synthetic.unit_rows(np.random.default_rng(0).standard_normal((len(chunks), 384)))
    return chunks, emb, tmp_path_factory.mktemp("vec")


@pytest.mark.parametrize("kind", ["faiss-flat", "faiss-mmap", "sqlite-vec"])
def test_exact_stores_return_numpys_chunks(corpus, kind):
    chunks, emb, cache = corpus
    ram = rag.stores.open_store("ram", chunks, emb, cache)
    store = rag.stores.open_store(kind, chunks, emb, cache)
    assert store.is_exact and store.num_chunks == len(chunks) and store.disk_bytes > emb.nbytes * 0.99
    for i in (0, 7, 100):
        q = Unit(rag.synthetic.unit_rows(emb[i:i + 1] + 0.05)[0])
        a, b = (rag.retrieval.retrieve(s, "q", q, k=5, exact=ram) for s in (ram, store))
        assert b.top_ids == a.top_ids and np.allclose(b.top_scores, a.top_scores, atol=1e-4), kind
        assert b.top_texts == a.top_texts and b.recall_at_k is None and b.store == kind


def test_hnsw_is_approximate_and_says_its_recall(corpus):
    chunks, emb, cache = corpus
    ram = rag.stores.open_store("ram", chunks, emb, cache)
    hnsw = rag.stores.open_store("faiss-hnsw", chunks, emb, cache)
    r = rag.retrieval.retrieve(hnsw, "q", Unit(emb[3]), k=4, exact=ram)
    assert not hnsw.is_exact and not r.is_exact and r.top_ids[0] == 3
    assert r.recall_at_k == len(set(r.top_ids) & set(ram.search(emb[3], "q", 4)[0])) / 4
    assert r.ram_bytes == hnsw.disk_bytes > rag.indexes.flat_bytes(len(chunks), 384)


@pytest.mark.skipif(not pagecache.supports_eviction(), reason="no posix_fadvise here")
@pytest.mark.parametrize("kind", ["faiss-mmap", "sqlite-vec"])
def test_cold_evicts_the_file_even_when_it_is_mapped(corpus, kind):
    chunks, emb, cache = corpus
    store = rag.stores.open_store(kind, chunks, emb, cache)
    warm = rag.retrieval.retrieve(store, "q", Unit(emb[1]), k=3)
    cold = rag.retrieval.retrieve(store, "q", Unit(emb[1]), k=3, cold=True)
    assert warm.cache_state == "warm" and cold.cache_state == "cold" and cold.top_ids == warm.top_ids


def test_the_cli_lists_the_same_stores():
    from memlab.rag import cli
    assert cli.STORE_KINDS == rag.stores.KINDS and cli.SCALE_STORES == rag.sweep.STORES
    with pytest.raises(rag.stores.MemlabError, match="unknown store"):
        rag.stores.open_store("tape", [], np.zeros((0, 384), np.float32))
