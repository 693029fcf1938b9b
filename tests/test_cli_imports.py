"""`memlab --help`, `memlab info` and `memlab fits` answer at once: they import no torch,
transformers, matplotlib or simpy (which took ~3.5 s and ~360 MB before a usage text), and a
command imports what it runs, not what its neighbours run.

Each case runs the CLI in a fresh interpreter and prints the modules it imported at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memlab.core import hardware

HEAVY = ("torch", "transformers", "matplotlib", "simpy")
RUN = ("import json, sys\n"
       "from memlab import cli\n"
       "try:\n    code = cli.main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
       "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n")


def run(*argv: str) -> tuple[str, set[str]]:
    """(stdout, top-level packages imported) of `memlab *argv` in a new process."""
    r = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True, timeout=120)
    report = json.loads(r.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, r.stderr
    return r.stdout, {m.split(".")[0] for m in report["modules"]}


# where torch might see a GPU, the card asks torch which (memlab.core.hardware's docstring)
CARD_NEEDS_TORCH = hardware.torch_may_see_a_gpu()


@pytest.mark.parametrize("argv", [["--help"], ["info", "--json"], ["fits", "llama-3.1-8b"],
                                  ["fits", "llama-3.1-8b", "--json"], ["simulate", "--help"]],
                         ids=" ".join)
def test_help_info_and_fits_import_nothing_heavy(argv):
    out, imported = run(*argv)
    allowed = {"torch"} if CARD_NEEDS_TORCH and argv[0] in ("info", "fits") else set()
    assert not (set(HEAVY) - allowed) & imported, f"memlab {' '.join(argv)} imported {sorted(set(HEAVY) & imported)}"
    assert out.strip()


def test_the_simulator_with_a_simple_profile_imports_simpy_but_no_model():
    _, imported = run("simulate", "--profile", "simple", "--requests", "5", "--json")
    assert "simpy" in imported and not {"torch", "transformers", "matplotlib"} & imported


def test_the_card_without_torch_says_what_torch_would():
    """info --json in a process without torch: the same fields, and those torch would give agree with a
    fresh process that imported torch first (its version, its threads, its GPU)."""
    out, imported = run("info", "--json")
    code = ("import json, torch\nfrom memlab.core import hardware, results\n"
            "print(json.dumps(results.as_dict(hardware.card())))")
    asked = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      timeout=120).stdout)
    card = json.loads(out)
    assert list(card) == list(asked)
    for field in ("torch_version", "transformers_version", "torch_num_threads", "gpu_name", "gpu_vram_bytes",
                  "num_cores", "cpu_model", "ram_total_bytes"):
        assert card[field] == asked[field], field
    assert ("torch" in imported) == CARD_NEEDS_TORCH
