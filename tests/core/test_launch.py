import pytest

from memlab.core import launch
from memlab.core.errors import MemlabError

from tests.core import launch_workers as workers


def test_ranks_talk_and_return_in_order():
    out = launch.run_workers(workers.allreduce_rank, world_size=2, timeout_s=60)
    assert out == [(0, 1.0), (1, 1.0)]  # 0 + 1 summed over both ranks


def test_a_failing_rank_stops_the_group_with_a_clear_error():
    with pytest.raises(MemlabError, match="rank 1 failed: RuntimeError: boom"):
        launch.run_workers(workers.rank1_raises, world_size=2, timeout_s=60)


def test_a_killed_rank_does_not_hang_the_other():
    with pytest.raises(MemlabError, match="rank 1 died|rank 0 failed"):
        launch.run_workers(workers.rank1_killed, world_size=2, timeout_s=30)
