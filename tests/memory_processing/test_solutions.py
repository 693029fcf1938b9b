"""Lab 08's worked solutions against what the code counts and models, and wrong answers marked a miss."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from memlab.course import exercises
from memlab.memory_processing import mempipe, offload, solutions


@pytest.fixture(autouse=True)
def _learner_mode(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)  # a wrong answer only misses, never raises


@pytest.mark.parametrize("context_tokens", [37, 96])  # a partial last page, and whole pages
def test_index_bytes_equal_the_index_tensors(tiny, context_tokens):
    p = mempipe.profile_decode(tiny, context_tokens, mempipe.PipeConfig(page_tokens=16, budget_tokens=32, repeats=1))
    solved = solutions.index_bytes(tiny.config, context_tokens, page_tokens=16)
    assert solved == p.index_bytes
    assert exercises.grade("08-index", solved, p.index_bytes, rel=0.001) is True
    assert exercises.grade("08-index", 2 * solved, p.index_bytes, rel=0.001) is False  # min and max counted twice
    assert exercises.grade("08-index", p.kv_bytes, p.index_bytes, rel=0.001) is False  # the whole cache


def test_page_scoring_reads_about_half_a_page_fewer_bytes():
    from memlab.memory_processing import scoring
    points = scoring.kernels(num_keys=4096, dim=32, top_k=64, page_tokens=16, repeats=1, kinds=("token", "page"))
    counted = points[0].bytes_moved / points[1].bytes_moved
    solved = solutions.token_over_page_scoring_bytes(4096, dim=32, page_tokens=16)
    assert solved == pytest.approx(counted, rel=1e-12)
    assert exercises.grade("08-page-bytes", solved, counted, rel=0.01) is True
    assert exercises.grade("08-page-bytes", 16.0, counted, rel=0.01) is False  # forgot that a page stores min and max


@pytest.mark.parametrize("context_tokens,batch_size", [(4096, 1), (65536, 1), (65536, 4), (100, 1)])
@pytest.mark.parametrize("device", ["gpu", "fpga"])
def test_apply_time_matches_the_offload_model(context_tokens, batch_size, device):
    shape = replace(offload.LLAMA31_8B, batch_size=batch_size)
    devices = ("gpu", "gpu", "gpu", device)
    specs = dict(offload.SPECS, fpga=replace(offload.SPECS["fpga"], sram_bytes=0.0))  # no SRAM: HBM only
    modelled = offload.evaluate(devices, shape, context_tokens, specs).step_s[3]
    solved = solutions.apply_s(shape, specs[device], context_tokens)
    assert solved == pytest.approx(modelled, rel=1e-9)
    assert exercises.grade("08-apply", solved, modelled, rel=0.01) is True
    no_launch = solved - shape.num_layers * specs[device].launch_s
    assert exercises.grade("08-apply", no_launch, modelled, rel=0.01) is False  # forgot the per-layer launch
    assert exercises.grade("08-apply", 2 * solved, modelled, rel=0.01) is False


def test_break_even_solution_matches_the_measured_model():
    from memlab.memory_processing import measured
    times = {"prep": 1e-4, "comp": 3e-3, "ret": 2e-3, "apply": 1e-3}
    s = measured.MeasuredSteps(offload.LLAMA31_8B, 4096, "gpu", {"gpu": times}, 0.01)
    expected = measured.break_even_speedup(s)
    pcie = offload.transfer_s(("gpu", "fpga", "fpga", "gpu"), s.shape, 4096)
    solved = solutions.break_even_speedup(5e-3, pcie)
    assert exercises.grade("08-break-even", solved, expected, rel=0.01) is True
    assert exercises.grade("08-break-even", 5e-3 / pcie, expected, rel=0.01) is False  # W / P, not W / (W - P)
    assert exercises.grade("08-break-even", 1.0, expected, rel=0.01) is False  # forgot the PCIe time


def test_offload_ceiling_is_the_measured_models_step_with_an_infinitely_fast_fpga():
    from memlab.memory_processing import measured
    times = {"prep": 1e-4, "comp": 3e-3, "ret": 2e-3, "apply": 1e-3}
    s = measured.MeasuredSteps(offload.LLAMA31_8B, 4096, "gpu", {"gpu": times}, 0.01)
    home = s.assignment(("gpu",) * 4).total_s
    fast = s.with_device("fpga", {"prep": 1.0, "comp": math.inf, "ret": math.inf, "apply": 1.0})
    expected = home / fast.assignment(("gpu", "fpga", "fpga", "gpu")).total_s
    pcie = offload.transfer_s(("gpu", "fpga", "fpga", "gpu"), s.shape, 4096)
    solved = solutions.offload_ceiling(home, 5e-3, pcie)
    assert solved == pytest.approx(expected, rel=1e-9)
    assert exercises.grade("08-ceiling", solved, expected, rel=0.01) is True
    assert exercises.grade("08-ceiling", home / (home - 5e-3), expected, rel=0.01) is False  # forgot the PCIe
    assert exercises.grade("08-ceiling", solutions.break_even_speedup(5e-3, pcie), expected, rel=0.01) is False
