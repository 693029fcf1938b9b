"""Lab 00's worked solutions (memlab/start_here/solutions.py) against what the code measures, and
its exercises mark a wrong answer (twice the solution) as a miss."""

import pytest

import memlab as ml
from memlab.core import footprint, tensors
from memlab.course import exercises
from memlab.start_here import solutions


def test_decode_bandwidth_is_the_weights_a_decode_step_reads(tiny, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    r = ml.generate(tiny, [1, 2, 3, 4], max_new_tokens=5, stop_at_eos=False)
    held = tensors.model_bytes(tiny.model) - sum(b.nbytes for b in tiny.model.buffers())
    assert held == footprint.weights_bytes(tiny.config, "fp32")
    measured = held * r.decode_tok_per_s / 1e9  # what lab 00 grades against: bytes x tokens per second
    solution = solutions.decode_gb_per_s(held, r.tpot_s)
    assert solution == pytest.approx(measured, rel=1e-9)
    assert exercises.grade("00-decode-bw", solution, measured, rel=0.01) is True
    assert exercises.grade("00-decode-bw", 2 * solution, measured, rel=0.01) is False
    # forgetting that a GB is 1e9 bytes (GiB instead) is also a miss at this tolerance
    assert exercises.grade("00-decode-bw", held / r.tpot_s / 2**30, measured, rel=0.01) is False


def test_the_older_lab00_exercises_mark_twice_the_solution_a_miss(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    mib = solutions.weights_mib(134_515_008)
    assert exercises.grade("00-weights", 2 * mib, mib, rel=0.01) is False
    e2e = solutions.e2e_s(0.1, 0.02, 11)
    assert exercises.grade("00-e2e", 0.1 + 11 * 0.02, e2e, rel=0.02) is False  # one TPOT too many
