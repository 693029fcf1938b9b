"""memlab.rag.sweep: a tiny sweep gives every store's rows, exact stores find the exact answers, HNSW's
efSearch is picked by its measured recall, and `memlab rag-scale --json` carries the README's fields."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from memlab import rag
from memlab.core.errors import InvalidArgumentError

has_all = all(importlib.util.find_spec(m) is not None for m in ("faiss", "sqlite_vec", "apsw"))
pytestmark = pytest.mark.skipif(not has_all, reason="faiss-cpu, sqlite-vec or apsw not installed (pip install 'memlab[rag]')")
TINY = dict(sizes=(600,), num_queries=20, max_query_s=0.5, num_cold=2, m=8, ef_construction=16)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    return rag.sweep.run(rag.sweep.ScaleConfig(**TINY), cache_dir=tmp_path_factory.mktemp("scale"), progress=False)


def test_every_store_gives_its_rows_and_exact_ones_find_the_exact_answers(tiny_sweep):
    points, curve = tiny_sweep
    rows = [(p.store, p.cache_state) for p in points]
    assert rows == [("flat", "ram"), ("hnsw", "ram"), ("flat-mmap", "warm"), ("flat-mmap", "cold"),
                    ("hnsw-mmap", "warm"), ("hnsw-mmap", "cold"), ("sqlite-vec", "warm"), ("sqlite-vec", "cold")]
    for p in points:
        assert p.num_vectors == 600 and p.threads == 1 and p.median_s > 0 and p.p99_s >= p.median_s
        assert p.num_queries == (2 if p.cache_state == "cold" else 20)
        if not p.store.startswith("hnsw"):
            assert p.recall_at_k == 1.0, p
    flat = points[0]
    assert flat.formula_ram_bytes == rag.indexes.flat_bytes(600, 384) and flat.disk_bytes >= flat.formula_ram_bytes
    for p in points:  # in RAM, the allocator's count of what an open took is the formula (glibc keeps that count)
        if p.cache_state != "ram" or math.isnan(rag.memory.heap_bytes()):
            assert p.cache_state == "ram" or math.isnan(p.heap_bytes), p
        else:
            assert abs(p.heap_bytes / p.formula_ram_bytes - 1) < 0.02 and p.ram_bytes > 0.9 * p.heap_bytes, p
    ef = int(points[1].params.split("efS=")[1])
    assert ef == rag.sweep.pick_ef_search(curve, 0.95) and [e.ef_search for e in curve] == list(rag.sweep.EF_CHOICES)


def test_pick_ef_search_takes_the_smallest_that_reaches_the_target():
    E = rag.sweep.EfPoint
    curve = [E(10, 16, 0.80, 1e-5), E(10, 32, 0.96, 2e-5), E(10, 64, 0.99, 3e-5)]
    assert rag.sweep.pick_ef_search(curve, 0.95) == 32
    assert rag.sweep.pick_ef_search(curve, 0.995) == 64  # none reaches it: the deepest tried


def test_share_size_scales_the_largest_flat_point():
    from types import SimpleNamespace as P
    pts = [P(store="flat", cache_state="ram", num_vectors=1000, median_s=1e-4),
           P(store="flat", cache_state="ram", num_vectors=10_000, median_s=1e-3)]
    assert rag.sweep.share_size(pts, ttft_s=1.0, share=0.1) == pytest.approx(1e6)


def test_bad_configs_are_one_line_errors():
    with pytest.raises(InvalidArgumentError, match="unknown stores"):
        rag.sweep.ScaleConfig(stores=("flat", "tape"))
    with pytest.raises(InvalidArgumentError, match="unknown layout"):
        rag.sweep.ScaleConfig(layout="spiral")
    with pytest.raises(InvalidArgumentError):
        rag.sweep.ScaleConfig(sizes=(0,))


def test_cli_rag_scale_json_has_the_readme_fields(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path
    from memlab import cli
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    assert cli.main(["rag-scale", "--sizes", "300", "--stores", "flat,hnsw", "--m", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("`memlab rag-scale --json`"):].split("\n\n")[0]
    point_fields = {x.strip() for span in re.findall(r"`([^`]*)`", block.split("each ef_curve")[0])
                    for x in span.split(",") if re.fullmatch(r"[a-z_0-9]+", x.strip())}
    assert point_fields and point_fields <= set(out["points"][0]) and len(out["points"]) == 2
    assert {"num_vectors", "ef_search", "recall_at_k", "median_s"} <= set(out["ef_curve"][0])


def test_a_size_that_cannot_fit_is_refused_in_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from memlab import cli
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    assert cli.main(["rag-scale", "--sizes", str(10**13), "--stores", "flat"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("memlab: error: N = 10,000,000,000,000 needs") and "free" in err and "\n" not in err
    assert not list(tmp_path.rglob("*.npy"))


def test_the_scale_plots_draw_from_real_points(tiny_sweep):
    import matplotlib
    matplotlib.use("Agg")
    points, curve = tiny_sweep
    fig = rag.plots.latency_vs_size(points, ttft_s=0.5)
    assert "x faster" in fig.axes[0].get_title() and fig.axes[0].get_xscale() == "log"
    assert "efSearch = 16" in rag.plots.recall_vs_latency(curve, 16).axes[0].get_title()
    assert "N = 600" in rag.sweep.claim_vs_measured(points)
