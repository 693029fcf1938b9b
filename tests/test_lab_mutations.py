"""Mutation tests: a deliberate error in the package makes a lab fail under nbval, so the labs keep
catching it (issue 25, item 4).

Each mutation is planted by a `sitecustomize.py` on PYTHONPATH, which every Python process of the run
imports at start (pytest and the notebook's kernel alike), and patches one function of the package.
The lab then runs as `make test` runs it (quick mode, worked solutions); it must fail, and in the cell
whose claim the mutation breaks. The memlab cache is a scratch folder holding a link to the converted
model, so no mutated measurement is kept for later runs.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memlab.core import models

ROOT = Path(__file__).resolve().parents[1]

# lab -> (the error, the patch, words of the claims that may catch it: one of them must)
MUTATIONS = {
    "00_start_here": (
        "fp32 weights counted at 2 bytes each",
        "import memlab.core.footprint as f\n"
        "_weights_bytes = f.weights_bytes\n"
        "f.weights_bytes = lambda config, dtype='fp32': _weights_bytes(config, 'bf16')\n",
        ("bytes the weight tensors hold = num_params x 4 B",),
    ),
    "01_memory_wall": (
        "every kernel timed at half its time (a clock or a byte count off by 2x)",
        "import dataclasses\n"
        "import memlab.core.kernels as k\n"
        "_time_role = k.time_role\n"
        "def time_role(*args, **kwargs):\n"
        "    t = _time_role(*args, **kwargs)\n"
        "    return dataclasses.replace(t, seconds=t.seconds / 2, gb_per_s=t.gb_per_s * 2)\n"
        "k.time_role = time_role\n",
        # the fast path's predicted speed doubles its matmul part (0.61 of it measured here), and a
        # kernel past the caches may read above the roof
        ("exercise 01-fast: the worked solution", "faster than the memory roof timed beside it"),
    ),
    "02_ram_vs_disk": (
        "the layer streamer counts half the bytes it reads",
        "import dataclasses\n"
        "import memlab.core.paging as p\n"
        "_stats = p.LayerStreamer.stats\n"
        "p.LayerStreamer.stats = lambda self: dataclasses.replace(_stats(self), read_bytes=_stats(self).read_bytes // 2)\n",
        ("exercise 02-paged-reads", "read every decoder layer again for every forward pass"),
    ),
    "03_ttft": (
        "the KV formula forgets grouped-query attention (a KV head per query head)",
        "import memlab.core.footprint as f\n"
        "_per_token = f.kv_bytes_per_token\n"
        "def kv_bytes_per_token(config, dtype='fp32'):\n"
        "    heads = f.config_value(config, 'num_attention_heads') / (f.config_value(config, 'num_key_value_heads') or 1)\n"
        "    return int(_per_token(config, dtype) * heads)\n"
        "f.kv_bytes_per_token = kv_bytes_per_token\n",
        ("exercise 03-kv", "no batch beats its roofline bound"),
    ),
    "04_quantization": (
        "int4's zero counted at 8 bits (a format model off by a field)",
        "import dataclasses\n"
        "import memlab.core.quantformat as q\n"
        "q.FORMATS['int4'] = dataclasses.replace(q.FORMATS['int4'], zero_bits=8)\n",
        ("int4: the bytes its tensors hold = section 2's prediction",),
    ),
    "05_sharding": (
        "the pipeline split gives the last rank one layer more than the even split",
        "import memlab.sharding.pipeline as p\n"
        "_split = p.layer_split\n"
        "def layer_split(num_layers, world_size):\n"
        "    out = _split(num_layers, world_size)\n"
        "    if world_size > 1:\n"
        "        (a, b), (c, d) = out[-2], out[-1]\n"
        "        out[-2:] = [(a, b - 1), (c - 1, d)]\n"
        "    return out\n"
        "p.layer_split = layer_split\n",
        ("exercise 05-stage-bytes",),
    ),
    "06_rag": (
        "the in-RAM store counts its embeddings and forgets the texts it keeps",
        "import memlab.rag.stores as s\n"
        "_init = s.RamIndex.__init__\n"
        "def __init__(self, *args, **kwargs):\n"
        "    _init(self, *args, **kwargs)\n"
        "    self.index_bytes = self.embeddings.nbytes\n"
        "s.RamIndex.__init__ = __init__\n",
        ("exercise 06-ram-bytes",),
    ),
    "07_disaggregation": (
        "the KV formula counts the keys and forgets the values",
        "import memlab.core.footprint as f\n"
        "_cache = f.kv_cache_bytes\n"
        "f.kv_cache_bytes = lambda *args, **kwargs: _cache(*args, **kwargs) // 2\n",
        ("KV bytes sent = the footprint formula", "exercise 07-kv"),
    ),
    "08_memory_processing": (
        "the page index keeps one min/max pair per 32 tokens, not per page of 16",
        "import memlab.memory_processing.mempipe as m\n"
        "_build = m.build_index\n"
        "m.build_index = lambda keys, page_tokens: _build(keys, 2 * page_tokens)\n",
        # the sparse step selects pages of 16 from an index of 32-token pages: its tokens drift from dense attention
        ("exercise 08-index", "the index is 1 / page_tokens of the KV cache", "the sparse step picks the dense step's token"),
    ),
    "09_kv_cache": (
        "the prefix's FLOPs leave out attention's quadratic term",
        "import memlab.kv_cache.reuse as r\n"
        "import memlab.core.roofline as rf\n"
        "from memlab.core.footprint import config_value as v\n"
        "def prefix_flops(config, prefix_tokens, dtype='fp32'):\n"
        "    body = rf.matmul_params(config) - v(config, 'vocab_size') * v(config, 'hidden_size')\n"
        "    return 2.0 * body * prefix_tokens\n"
        "r.prefix_flops = prefix_flops\n",
        ("exercise 09-flops", "exercise 09-recompute"),
    ),
}


def _big_files(folder, names, limit=64 * 2**20):
    """copytree's ignore: the names in `folder` of files of `limit` bytes or more."""
    return [n for n in names if os.path.isfile(os.path.join(folder, n)) and os.path.getsize(os.path.join(folder, n)) >= limit]


@pytest.mark.slow
@pytest.mark.parametrize("lab", sorted(MUTATIONS))
def test_a_planted_error_fails_its_lab(lab, tmp_path):
    error, patch, claims = MUTATIONS[lab]
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(patch)
    cache = tmp_path / "cache"
    cache.mkdir()
    models.prepare("smollm2-135m")  # converted once, in the real cache; the models are linked, not copied
    for model in models.cache_dir().iterdir():
        if model.is_dir() and models.is_complete(model):
            (cache / model.name).symlink_to(model)
    # what earlier tests already measured or built from unmutated inputs is copied, not remeasured (the
    # machine's ceilings, the compiled C kernels and their choice, the RAG corpus's embeddings): each lab
    # then costs its own cells only; copies, so nothing a mutated run writes reaches the real cache. Files of
    # 64 MiB and more are left out: quick mode never reads them, and a full-mode run's RAG vectors and indexes
    # (10+ GB) copied once per lab filled this machine's disk
    for name in ("ceilings", "kernels", "rag"):
        if (models.cache_dir() / name).is_dir():
            shutil.copytree(models.cache_dir() / name, cache / name, ignore=_big_files)
    env = dict(os.environ, PYTHONPATH=f"{plant}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               MEMLAB_CACHE=str(cache), MEMLAB_QUICK="1", MEMLAB_SOLUTIONS="1")
    # -x: stop at the first failing cell, which must be one of the claims (a later cell proves nothing more)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--nbval-lax",
                          str(ROOT / "labs" / f"{lab}.ipynb")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode != 0, f"lab {lab} ran green with a planted error ({error})"
    assert any(c in out for c in claims), f"lab {lab} failed, but not at a claim that should catch '{error}':\n{out[-3000:]}"
