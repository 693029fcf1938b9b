"""Lab 02's worked solutions against what the paged loader holds and reads, and a wrong answer is a miss."""

import pytest

import memlab as ml
from memlab.core import loading
from memlab.course import exercises
from memlab.ram_vs_disk import runs, solutions


@pytest.fixture(scope="module")
def paged_run(tiny_dir):
    return runs.run_strategy(str(tiny_dir), "paged", [1, 2, 3, 4], max_new_tokens=5)


def test_paged_keeps_only_the_embedding_and_final_norm(tiny, paged_run, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    buffers = sum(b.nbytes for b in tiny.model.buffers())  # the rotary inv_freq, a few hundred bytes
    solution = solutions.paged_resident_bytes(tiny.config)
    assert solution == paged_run.weights_in_memory_bytes - buffers
    assert exercises.grade("02-paged-memory", solution, paged_run.weights_in_memory_bytes, rel=0.001) is True
    assert exercises.grade("02-paged-memory", 2 * solution, paged_run.weights_in_memory_bytes, rel=0.001) is False


def test_paged_reads_every_layer_once_per_forward_pass(tiny, paged_run, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    measured = paged_run.layer_read_bytes
    solution = solutions.paged_read_bytes(tiny.config, 5)
    assert solution == measured
    assert exercises.grade("02-paged-reads", solution, measured, rel=0.001) is True
    # forgetting the prefill pass (one per decode step only) is a miss
    assert exercises.grade("02-paged-reads", 4 * solutions.streamed_layer_bytes(tiny.config), measured,
                           rel=0.001) is False
    assert exercises.grade("02-paged-reads", 2 * solution, measured, rel=0.001) is False


def test_streamed_bytes_solution_marks_twice_a_miss(tiny):
    layers, _ = ml.checkpoint.split_layers(ml.checkpoint.read_header(loading.checkpoint_file(tiny.checkpoint)))
    streamed = sum(e.end_byte - e.start_byte for layer in layers.values() for e in layer.values())
    assert exercises.grade("02-streamed", 2 * solutions.streamed_layer_bytes(tiny.config), streamed, rel=0.01) is False
