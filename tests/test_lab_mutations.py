"""Mutation tests: a deliberate error in the package makes a lab fail under nbval, so the labs keep
catching it (issue 25, item 4).

Each mutation is planted by a `sitecustomize.py` on PYTHONPATH, which every Python process of the run
imports at start (pytest and the notebook's kernel alike), and patches one function of the package.
The lab then runs as `make test` runs it (quick mode, worked solutions); it must fail, and in the cell
whose claim the mutation breaks. The memlab cache is a scratch folder holding a link to the converted
model, so no mutated measurement is kept for later runs.
"""

import os
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
}


@pytest.mark.slow
@pytest.mark.parametrize("lab", sorted(MUTATIONS))
def test_a_planted_error_fails_its_lab(lab, tmp_path):
    error, patch, claims = MUTATIONS[lab]
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(patch)
    cache = tmp_path / "cache"
    cache.mkdir()
    model = models.prepare("smollm2-135m")  # converted once, in the real cache; linked, not copied
    (cache / model.name).symlink_to(model)
    env = dict(os.environ, PYTHONPATH=f"{plant}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               MEMLAB_CACHE=str(cache), MEMLAB_QUICK="1", MEMLAB_SOLUTIONS="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          str(ROOT / "labs" / f"{lab}.ipynb")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode != 0, f"lab {lab} ran green with a planted error ({error})"
    assert any(c in out for c in claims), f"lab {lab} failed, but not at a claim that should catch '{error}':\n{out[-3000:]}"
