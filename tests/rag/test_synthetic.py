"""memlab.rag.synthetic: unit vectors on disk, made once, clustered as the real embeddings are, with
queries whose nearest neighbour is known, and a one-line refusal when they cannot fit."""

from __future__ import annotations

import numpy as np
import pytest

from memlab import rag
from memlab.core.errors import WontFitError


@pytest.mark.parametrize("layout", ["clustered", "uniform"])
def test_vectors_are_unit_float32_made_once(tmp_path, layout):
    v = rag.synthetic.make_vectors(1000, dim=48, layout=layout, cache_dir=tmp_path, progress=False)
    path = rag.synthetic.vectors_file(1000, 48, layout, cache_dir=tmp_path)
    assert isinstance(v, np.memmap) and v.shape == (1000, 48) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    before = path.stat().st_mtime_ns
    again = rag.synthetic.make_vectors(1000, dim=48, layout=layout, cache_dir=tmp_path, progress=False)
    assert path.stat().st_mtime_ns == before and np.array_equal(v, again)
    assert not list(path.parent.glob("*.tmp*"))


def test_clustered_vectors_have_near_neighbours_and_uniform_ones_do_not(tmp_path):
    c = rag.synthetic.neighbour_cosines(rag.synthetic.make_vectors(1000, cache_dir=tmp_path, progress=False))
    u = rag.synthetic.neighbour_cosines(rag.synthetic.make_vectors(1000, layout="uniform", cache_dir=tmp_path,
                                                                   progress=False))
    assert c[1] > 0.6 and u[1] < 0.3          # nearest neighbour
    assert 0.15 < c[0] < 0.35 and abs(u[0]) < 0.02  # random pairs: the shared direction, or none


def test_each_query_is_nearest_to_its_source(tmp_path):
    v = rag.synthetic.make_vectors(2000, cache_dir=tmp_path, progress=False)
    q, src = rag.synthetic.make_queries(v, 50)
    assert q.shape == (50, 384) and len(set(src.tolist())) == 50
    assert np.mean(np.argmax(q @ np.asarray(v).T, axis=1) == src) >= 0.98


def test_too_many_vectors_are_refused_in_one_line_with_bytes_needed_and_free(tmp_path):
    with pytest.raises(WontFitError, match=r"needs .* on disk .* free") as e:
        rag.synthetic.make_vectors(10**13, cache_dir=tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(WontFitError, match=r"needs .* of RAM, and .* is available"):
        rag.synthetic.check_room(0, tmp_path, ram_bytes=2**62)
    assert not list((tmp_path / "synthetic").glob("*"))
