"""Lab 06's new worked solutions (06-ram-bytes, 06-ttft-k) against what the store and rag_ttft count,
and a wrong answer misses."""

import numpy as np
import pytest

import memlab as ml
from memlab import rag
from memlab.course import exercises


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


def test_prompt_tokens_is_what_rag_ttft_prefills(tiny):
    chunks = rag.chunks.corpus(["with", "for", "while"], max_chunks_per_topic=1)
    emb = FakeEmbedder().encode([c.text for c in chunks])
    store = rag.stores.RamIndex(chunks, emb)
    for k in (0, 2):
        r = rag.retrieval.rag_ttft(tiny, "What does with do?", store, FakeEmbedder(), k=k, max_new_tokens=2)
        assert rag.retrieval.prompt_tokens(tiny, "What does with do?", store, FakeEmbedder(), k=k) == r.prompt_tokens


def _sweep(config, ttft_of_tokens, tokens_by_k, repeats=3):
    """RagTTFT-like runs whose TTFT is a function of the prompt length, `repeats` per K."""
    from types import SimpleNamespace
    return [SimpleNamespace(top_k=k, prompt_tokens=t, llm_ttft_s=ttft_of_tokens(t) * (1 + 0.01 * i))
            for i in range(repeats) for k, t in tokens_by_k.items()]


def test_ttft_at_k_is_exact_on_a_fixed_part_plus_flops_over_a_rate(tiny):
    # a machine whose TTFT is 40 ms + prefill FLOPs / 2 GFLOP/s: the line through two K's gives any third
    true = lambda t: 0.04 + ml.roofline.prefill_workload(tiny.config, t).flops / 2e9
    sweep = _sweep(tiny.config, true, {0: 30, 1: 280, 2: 530})
    assert ml.rag.solutions.ttft_at_k_s(tiny.config, sweep, 780) == pytest.approx(true(780) * 1.01, rel=1e-9)


def test_a_forgotten_term_misses_the_band(tiny):
    # TTFT flat in K (the retrieved tokens forgotten): the last K's TTFT (quick mode: K = 4, two steps past
    # the sweep's K = 2) is predicted as K = 2's
    true = lambda t: 0.04 + ml.roofline.prefill_workload(tiny.config, t).flops / 2e9
    flat = true(530)
    lo, hi = ml.rag.solutions.TTFT_K_BAND
    assert not lo <= true(1030) / flat <= hi


def test_wrong_answers_are_misses(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    ram = ml.rag.solutions.ram_index_bytes(79, 59_000)
    assert exercises.grade("06-ram-bytes", 2 * ram, ram, rel=0.01) is False
    assert exercises.grade("06-ram-bytes", ml.rag.solutions.index_bytes(79), ram, rel=0.01) is False  # texts left out


def test_hnsw_solution_is_the_index_faiss_writes_and_forgetting_level_0s_doubling_misses(tmp_path):
    # the file is the arrays an HNSW index holds in RAM (lab 06 grades against the allocator's count, within 5%)
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(0).standard_normal((3000, 384)).astype(np.float32)
    index = rag.indexes.new_index("hnsw", 384, m=32, ef_construction=16)
    index.add(x)
    size = len(faiss.serialize_index(index))
    solved = ml.rag.solutions.hnsw_ram_bytes(3000, 384, 32)
    assert exercises.is_right(solved, size, rel=0.01)
    one_m = 3000 * 384 * 4 + 3000 * 32 * 4 * (1 + 1 / 31) + 3000 * 12   # M links at level 0, not 2M
    assert not exercises.is_right(one_m, size, rel=0.05)
    assert not exercises.is_right(3000 * 384 * 4, size, rel=0.05)       # the vectors alone
