"""run_workers under torchrun: two launchers (node ranks 0 and 1) on one box, a loopback rendezvous."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memlab.core import generation, launch, text, torchrun
from memlab.core.errors import MemlabError

from tests.core import launch_workers as workers

ROOT = Path(__file__).resolve().parents[2]
NEW = 4  # tokens per run: enough to compare, few enough to keep the two nodes quick


def two_nodes(commands: dict, out: Path, timeout_s: float = 300) -> list[dict]:
    """Start torchrun twice, as node 0 and node 1 of a 2-node group on 127.0.0.1; each node's records."""
    port = launch.free_port()
    env = {k: v for k, v in os.environ.items() if k not in torchrun.REQUIRED}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(r), "--master-addr", "127.0.0.1", "--master-port", str(port),
         "--rdzv-conf", "timeout=120", str(ROOT / "tests/core/torchrun_rank.py"), str(out), json.dumps(commands)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    try:
        logs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        raise AssertionError("the two nodes did not finish in time:\n" + "\n".join(p.communicate()[0][-2000:] for p in procs))
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_torchrun_nodes_give_the_single_process_tokens(tiny_dir, tiny, tmp_path):
    shard = ["shard", "--model", str(tiny_dir), "--max-new-tokens", str(NEW), "--timeout", "60", "--json", "--mode"]
    commands = {"pipeline": shard + ["pipeline"], "tensor": shard + ["tensor"],
                "disagg": ["disagg", "--real", "--model", str(tiny_dir), "--prompt-tokens", "16",
                           "--max-new-tokens", str(NEW), "--json"]}
    lead, other = two_nodes(commands, tmp_path)
    assert all(other[c] == {"rc": 0, "stdout": ""} for c in commands)  # rank 1 prints nothing
    assert all(lead[c]["rc"] == 0 for c in commands)
    host = socket.gethostname()
    for mode in ("pipeline", "tensor"):
        r = json.loads(lead[mode]["stdout"])
        assert (r["mode"], r["world_size"], r["launcher"], r["backend"], r["hosts"]) == (mode, 2, "torchrun", "gloo", [host] * 2)
        assert r["tokens_match"] is True and r["token_ids"] == r["reference_token_ids"] and len(r["token_ids"]) == NEW
    split = json.loads(lead["disagg"]["stdout"])
    resident = generation.generate(tiny, text.prompt_ids(tiny.tokenizer, 16), max_new_tokens=NEW, stop_at_eos=False)
    assert split["tokens_match"] is True and split["token_ids"] == list(resident.token_ids)[-NEW:]
    assert (split["launcher"], split["backend"], split["hosts"]) == ("torchrun", "gloo", [host] * 2)


def test_an_unreachable_rendezvous_is_one_line_within_the_timeout(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(launch.free_port()))  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(MemlabError, match=r"rank 1 of 2 could not join the group at 127\.0\.0\.1:\d+ within 3 s") as e:
        launch.run_workers(workers.allreduce_rank, world_size=2, timeout_s=3)
    assert time.monotonic() - t0 < 30 and "\n" not in str(e.value)


def test_a_half_set_torchrun_environment_and_a_wrong_size_are_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(MemlabError, match="MASTER_ADDR, MASTER_PORT not: start memlab with torchrun"):
        launch.run_workers(workers.allreduce_rank, world_size=2)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(MemlabError, match="this run needs 3 ranks but torchrun started 2"):
        launch.run_workers(workers.allreduce_rank, world_size=3)


def test_rank_env_and_who_prints():
    assert torchrun.rank_env({}) is None and torchrun.is_lead({})
    env = torchrun.rank_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                             "MASTER_ADDR": "node0", "MASTER_PORT": "29500"})
    assert (env.rank, env.world_size, env.local_world_size, env.rendezvous) == (1, 2, 1, "node0:29500")
    assert torchrun.is_lead({"RANK": "0"}) and not torchrun.is_lead({"RANK": "1"})
    with pytest.raises(MemlabError, match="not a number"):
        torchrun.rank_env({"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"})
