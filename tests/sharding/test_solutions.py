"""Lab 05's new worked solutions (05-stage-bytes, 05-relay-bytes) against what the pipeline's ranks hold
and send, and a wrong answer misses."""

import pytest
import torch
from transformers import AutoConfig

import memlab as ml
from memlab.core import models, tensors
from memlab.course import exercises
from memlab.sharding import parallel, pipeline
from memlab.sharding.workers import ParallelConfig


@pytest.fixture(scope="module")
def five_layers(tmp_path_factory):
    """A tiny tied-embedding model with 5 layers: 2 ranks split it unevenly (3 + 2)."""
    return models.build_tiny(tmp_path_factory.mktemp("tiny5"), num_hidden_layers=5)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_last_stage_solution_is_what_the_last_rank_holds(five_layers, world_size):
    config = AutoConfig.from_pretrained(five_layers)
    stage = pipeline.load_stage(five_layers, world_size - 1, world_size, torch.device("cpu"))
    held = tensors.tensor_bytes(stage.tensors())
    assert ml.sharding.solutions.last_stage_weights_bytes(config, world_size) == held


def test_relay_solution_is_what_two_ranks_send(five_layers):
    config = AutoConfig.from_pretrained(five_layers)
    res = parallel.run(ParallelConfig(model=str(five_layers), world_size=2, max_new_tokens=4,
                                      check_tokens=False, timeout_s=120), "pipeline")
    assert ml.sharding.solutions.pipeline_bytes_per_token(config, 2) == res.comm_bytes_per_token
    assert ml.sharding.solutions.last_stage_weights_bytes(config, 2) == res.ranks[-1].weights_bytes


def test_wrong_answers_are_misses(five_layers, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    config = AutoConfig.from_pretrained(five_layers)
    stage = ml.sharding.solutions.last_stage_weights_bytes(config, 2)
    relay = ml.sharding.solutions.pipeline_bytes_per_token(config, 2)
    untied = stage - 4 * config.vocab_size * config.hidden_size  # forgetting that the lm_head is the embedding
    assert exercises.grade("05-stage-bytes", 2 * stage, stage, rel=0.001) is False
    assert exercises.grade("05-stage-bytes", untied, stage, rel=0.001) is False
    assert exercises.grade("05-relay-bytes", 2 * relay, relay, rel=0.001) is False
    assert exercises.grade("05-relay-bytes", relay - 8, relay, rel=0.001) is False  # the token id back counts too
