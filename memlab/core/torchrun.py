"""Was memlab started by torchrun? The launcher's environment, read without importing torch.

torchrun (and any launcher that follows its env:// contract: Slurm scripts, Kubernetes operators)
starts one process per rank and tells each where it stands through environment variables:
RANK (0 .. WORLD_SIZE-1, over all nodes), WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE (on this
node), MASTER_ADDR and MASTER_PORT (the rendezvous: rank 0's node). `core.launch.run_workers`
runs as one rank of that group when they are set, and `memlab.cli` keeps the non-zero ranks quiet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from memlab.core.errors import MemlabError

REQUIRED = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True, slots=True)
class RankEnv:
    """This process's place in a torchrun group."""
    rank: int              # over all nodes
    world_size: int
    local_rank: int        # on this node
    local_world_size: int  # ranks on this node
    master_addr: str
    master_port: int

    @property
    def rendezvous(self) -> str:
        return f"{self.master_addr}:{self.master_port}"


def rank_env(environ=None) -> RankEnv | None:
    """This process's torchrun place, or None when RANK and WORLD_SIZE are not set (a plain start).

    RANK or WORLD_SIZE set without the rest, or a value that is not a number, raises a MemlabError
    naming what is missing: a half-set environment is a mistake, not a plain start.
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env and "WORLD_SIZE" not in env:
        return None
    missing = [k for k in REQUIRED if not env.get(k)]
    if missing:
        raise MemlabError(f"RANK/WORLD_SIZE are set but {', '.join(missing)} not: start memlab with torchrun "
                          "(--master-addr, --master-port), or unset RANK and WORLD_SIZE to run on this machine alone")
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        port = int(env["MASTER_PORT"])
        local_rank, local_world = int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", 1))
    except ValueError as e:
        raise MemlabError(f"the torchrun environment holds a value that is not a number ({e})") from None
    if not 0 <= rank < world:
        raise MemlabError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return RankEnv(rank, world, local_rank, max(1, local_world), env["MASTER_ADDR"], port)


def is_lead(environ=None) -> bool:
    """True where results are printed: a plain start, or rank 0 of a torchrun group."""
    env = os.environ if environ is None else environ
    return env.get("RANK") in (None, "", "0")
