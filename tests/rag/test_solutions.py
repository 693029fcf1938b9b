"""Lab 06's new worked solutions (06-ram-bytes, 06-share) against what the store and rag_ttft count,
and a wrong answer misses."""

import numpy as np
import pytest

import memlab as ml
from memlab import rag
from memlab.core import exercises


@pytest.mark.parametrize("per_topic", [1, None])
def test_ram_store_solution_is_the_store_bytes_within_the_exercise_tolerance(per_topic):
    # the real corpus of quick (1 chunk per topic) and full mode: the 1% of lab 06's grade must cover the
    # help pages' non-ASCII characters, which UTF-8 stores in 2-3 bytes
    chunks = rag.chunks.corpus(max_chunks_per_topic=per_topic)
    emb = np.zeros((len(chunks), 384), np.float32)
    store = rag.stores.RamIndex(chunks, emb)
    solved = ml.rag.solutions.ram_index_bytes(len(chunks), sum(len(c.text) for c in chunks))
    assert exercises.is_right(solved, store.index_bytes, rel=0.01)
    ascii_chunks = [rag.chunks.Chunk(c.id, c.topic, c.text.encode("ascii", "replace").decode()) for c in chunks]
    ascii_store = rag.stores.RamIndex(ascii_chunks, emb)
    assert ml.rag.solutions.ram_index_bytes(len(chunks), sum(len(c.text) for c in ascii_chunks)) == ascii_store.index_bytes


class FakeEmbedder:
    """Unit vectors from a seeded generator: retrieval runs without MiniLM."""

    def encode(self, texts):
        rng = np.random.default_rng(0)
        v = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_share_solution_is_what_rag_ttft_reports(tiny):
    chunks = rag.chunks.corpus(["with", "for", "while"], max_chunks_per_topic=1)
    emb = FakeEmbedder().encode([c.text for c in chunks])
    r = rag.retrieval.rag_ttft(tiny, "What does with do?", rag.stores.RamIndex(chunks, emb), FakeEmbedder(),
                               k=2, max_new_tokens=2)
    share = ml.rag.solutions.retrieval_share(r.embed_s, r.search_s, r.llm_ttft_s)
    assert share == pytest.approx(r.retrieval_s / r.ttft_s, rel=1e-12) and 0 < share < 1


def test_wrong_answers_are_misses(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    ram = ml.rag.solutions.ram_index_bytes(79, 59_000)
    assert exercises.grade("06-ram-bytes", 2 * ram, ram, rel=0.01) is False
    assert exercises.grade("06-ram-bytes", ml.rag.solutions.index_bytes(79), ram, rel=0.01) is False  # texts left out
    share = ml.rag.solutions.retrieval_share(0.010, 0.002, 0.500)
    assert exercises.grade("06-share", 2 * share, share, rel=0.01) is False
    assert exercises.grade("06-share", 0.010 / 0.512, share, rel=0.01) is False  # the search left out
    assert exercises.grade("06-share", 0.012 / 0.500, share, rel=0.01) is False  # divided by the model's TTFT only
