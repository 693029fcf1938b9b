"""memlab.rag.indexes: FAISS flat is numpy's exact search, the bytes formulas match what faiss holds,
mmap answers as RAM does, and recall@k is counted right."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from memlab import rag
from memlab.core.errors import InvalidArgumentError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("faiss") is None,
                                reason="faiss-cpu not installed (pip install 'memlab[rag]')")


def unit(n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    return rag.synthetic.unit_rows(np.random.default_rng(seed).standard_normal((n, d)))


def test_recall_counts_the_overlap_per_query():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    truth = np.array([[3, 2, 9], [7, 8, 6]])
    assert rag.indexes.recall_at_k(found, truth) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert rag.indexes.recall_at_k(truth, truth) == 1.0
    with pytest.raises(InvalidArgumentError):
        rag.indexes.recall_at_k(found[:, :2], truth)


def test_flat_is_numpys_exact_top_k_and_mmap_answers_the_same(tmp_path):
    x, q = unit(3000), unit(5, seed=1)
    path = tmp_path / "flat.faiss"
    assert rag.indexes.build("flat", x, path, progress=False) > 0 and rag.indexes.build("flat", x, path) == 0.0
    expected = np.argsort(-(q @ x.T), axis=1)[:, :10]
    for mode in ("ram", "mmap"):
        _, ids = rag.indexes.search(rag.indexes.open_index(path, mode), q, 10)
        assert np.array_equal(ids, expected), mode


@pytest.mark.parametrize("m", [8, 32])
def test_hnsw_file_is_the_bytes_formula(tmp_path, m):
    # the serialized index is the arrays faiss holds (vectors, links, levels, offsets) plus a header
    x = unit(4000, d=32)
    rag.indexes.build("hnsw", x, tmp_path / "h.faiss", m=m, ef_construction=32, progress=False)
    size = (tmp_path / "h.faiss").stat().st_size
    assert size == pytest.approx(rag.indexes.hnsw_bytes(4000, 32, m), rel=0.02)
    assert size != pytest.approx(rag.indexes.flat_bytes(4000, 32) + 4 * 4000 * m, rel=0.02)  # forgetting 2M at level 0
    flat = tmp_path / "f.faiss"
    rag.indexes.build("flat", x, flat, progress=False)
    assert 0 <= flat.stat().st_size - rag.indexes.flat_bytes(4000, 32) < 200


def test_bad_kinds_and_modes_are_one_line_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="unknown index kind"):
        rag.indexes.new_index("ivf", 8)
    with pytest.raises(InvalidArgumentError, match="unknown index mode"):
        rag.indexes.open_index(tmp_path / "x.faiss", "swap")
    with pytest.raises(rag.indexes.MemlabError, match="no index file"):
        rag.indexes.open_index(tmp_path / "x.faiss")
