"""A model split across processes: the parallel runs of lab 05 (`memlab shard pipeline|tensor`).

Lab 05. Variants, in the order the lab shows them:
  1. checkpoint shards   a checkpoint cut into files: see checkpoint_shards.py
  2. pipeline parallel   `run(cfg, "pipeline")`: layers split across ranks (see pipeline.py).
  3. tensor parallel     `run(cfg, "tensor")`: every matrix split across ranks (tensor_parallel.py).
Workers are real processes talking through torch.distributed (gloo on CPU, NCCL on GPUs),
started by launch.run_ranks (here, or as torchrun's ranks on one node or several); their records come back as one `ShardResult`, whose generated
tokens are compared with single-process memlab.core.generation.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from memlab.core import dtypes, generation, hardware, loading, models, shaped, torchrun
from memlab.core.errors import MemlabError
from memlab.core.launch import run_ranks
from memlab.core.results import as_dict
from memlab.sharding import comm_model, pipeline, tensor_parallel
from memlab.sharding.workers import ParallelConfig

__all__ = ["ShardResult", "run", "reference_tokens", "step_times", "ParallelConfig"]


@dataclass(frozen=True, slots=True)
class ShardResult:
    """A pipeline- or tensor-parallel generation: all ranks' records and the token check."""
    mode: str                        # "pipeline" or "tensor"
    model_name: str
    world_size: int
    backend: str
    dtype: str
    batch_size: int
    micro_batches: int
    prompt_tokens: int
    new_tokens: int
    token_ids: tuple                 # sequence 0, from rank 0
    reference_token_ids: tuple       # single-process memlab.core.generation ((), if not checked)
    tokens_match: bool | None        # None when not checked
    prefill_s: float                 # wall time of step 0, first event to last event over ranks
    tpot_s: float                    # mean wall time of a decode step (decode wall / steps, as in generation)
    decode_compute_s_per_token: float   # mean over ranks of compute per decode step
    decode_comm_s_per_token: float      # mean over ranks of time blocked in communication
    comm_share: float                # comm / (comm + compute) over ranks' decode time
    bubble_fraction: float           # 1 - (compute summed over ranks) / (R * decode wall time)
    comm_bytes_per_token: float      # measured payload per decode step, summed over ranks
    predicted_comm_bytes_per_token: int  # the formula (pipeline.py / tensor_parallel.py docstrings)
    ranks: tuple                     # tuple[RankResult, ...]
    hardware: object = None          # hardware.HardwareCard of the launching process
    hosts: tuple = ()                # the host of each rank, rank order
    launcher: str = "local"          # "local" (processes spawned here) or "torchrun"
    link_gbps: float = 0.0           # the shaped link's rate asked for, Gbit/s; 0.0: the unshaped loopback
    link_measured_gbps: float = float("nan")  # the same link probed after the run: 1 and 8 MiB sends, 8 / slope

    def as_json(self) -> dict:
        """The `memlab shard --json` view, flat for tables: the host's name for the card, ranks
        without their timeline events."""
        d = {k: v for k, v in as_dict(replace(self, ranks=())).items() if k not in ("ranks", "hardware")}
        d["host"] = getattr(self.hardware, "host", "")
        d["hosts"] = list(self.hosts)
        d["ranks"] = [{k: v for k, v in as_dict(replace(r, events=())).items() if k != "events"} for r in self.ranks]
        return d


# ---- 2, 3. pipeline and tensor parallel ------------------------------------------------------------

def reference_tokens(folder, prompt_ids: list, max_new_tokens: int, dtype: str = "fp32") -> tuple:
    """Greedy tokens of the same prompt from one process (memlab.core.generation), EOS ignored.

    A single-file fp32 checkpoint is mapped, not copied: its pages go back to the page cache when
    the model is freed; a sharded one is read resident and its heap trimmed after, so the calling
    process (a lab's kernel) does not keep a model's worth of memory while the workers run."""
    single = len(list(Path(folder).glob("*.safetensors"))) == 1 and dtype == "fp32"
    loaded = loading.load(str(folder), "mmap" if single else "resident", dtype=dtype)
    res = generation.generate(loaded, list(prompt_ids), max_new_tokens=max_new_tokens, stop_at_eos=False)
    loaded.release()  # a resident (sharded) load's heap goes back to the OS before workers start
    return tuple(res.token_ids)[-max_new_tokens:]


def step_times(ranks, step: int) -> float:
    """Wall time of one step: first event start to last event end, over all ranks."""
    ev = [e for r in ranks for e in r.events if e.step == step]
    return max(e.end_at_s for e in ev) - min(e.start_at_s for e in ev)


def run(cfg: ParallelConfig, mode: str = "pipeline") -> ShardResult:
    """Launch cfg.world_size workers of the given mode, gather their records, check the tokens."""
    from transformers import AutoConfig, AutoTokenizer

    if mode not in ("pipeline", "tensor"):
        raise MemlabError(f"mode must be 'pipeline' or 'tensor', got {mode!r}.")
    if mode == "tensor" and cfg.micro_batches != 1:
        raise MemlabError("micro_batches applies to the pipeline only; use micro_batches=1 for tensor.")
    folder = models.prepare(cfg.model) if not Path(cfg.model).is_dir() else Path(cfg.model)
    config = AutoConfig.from_pretrained(folder)
    if mode == "tensor":
        tensor_parallel.check(config, cfg.world_size)
    else:
        pipeline.layer_split(config.num_hidden_layers, cfg.world_size)
    prompt_ids = AutoTokenizer.from_pretrained(folder)(cfg.prompt)["input_ids"]
    fn = pipeline.worker if mode == "pipeline" else tensor_parallel.worker
    measured = float("nan")
    if cfg.link_gbps is None:
        run_ = run_ranks(fn, world_size=cfg.world_size, args=(str(folder), prompt_ids, cfg),
                         timeout_s=cfg.timeout_s, backend=cfg.backend)
    else:
        if torchrun.rank_env() is not None:
            raise MemlabError("a shaped link (--link-gbps) runs local ranks only; under torchrun the link "
                              "between the nodes is the real one: drop --link-gbps")
        with shaped.shaped_link(cfg.link_gbps) as link:
            run_ = run_ranks(fn, world_size=cfg.world_size, args=(str(folder), prompt_ids, cfg),
                             timeout_s=cfg.timeout_s, backend=cfg.backend, link=link)
            probe = comm_model.probe_link((1 << 20, 8 << 20), repeats=3, backend=cfg.backend, link=link)
        measured = shaped.measured_gbps(probe.beta_bytes_per_s, 1.0)  # the fit's bytes per second, in Gbit/s
    ranks = tuple(run_.results)
    tokens = ranks[0].token_ids
    check = cfg.check_tokens and torchrun.is_lead()  # under torchrun, rank 0 checks (the others print nothing)
    ref = reference_tokens(folder, prompt_ids, cfg.max_new_tokens, cfg.dtype) if check else ()
    steps = range(1, cfg.max_new_tokens)
    n = max(len(steps), 1)
    wall = sum(step_times(ranks, s) for s in steps)
    comp = statistics.mean(r.decode_compute_s for r in ranks) / n
    comm = statistics.mean(r.decode_comm_s for r in ranks) / n
    b = int(dtypes.dtype_bytes(cfg.dtype))
    if mode == "pipeline":   # activations to each next rank, plus the token ids back to rank 0
        pred = (cfg.world_size - 1) * pipeline.activation_bytes_per_token(config, b) * cfg.batch_size
        pred += 8 * cfg.batch_size if cfg.world_size > 1 else 0
    else:                    # every rank all-reduces the same payload
        pred = cfg.world_size * tensor_parallel.allreduce_bytes_per_token(config, b) * cfg.batch_size
    return ShardResult(
        mode=mode, model_name=cfg.model, world_size=cfg.world_size, backend=cfg.backend,
        dtype=cfg.dtype, batch_size=cfg.batch_size, micro_batches=cfg.micro_batches,
        prompt_tokens=len(prompt_ids), new_tokens=len(tokens), token_ids=tokens,
        reference_token_ids=ref, tokens_match=(tokens == ref) if check else None,
        prefill_s=step_times(ranks, 0),
        tpot_s=wall / len(steps) if len(steps) else float("nan"),
        decode_compute_s_per_token=comp, decode_comm_s_per_token=comm,
        comm_share=comm / (comm + comp) if comm + comp else 0.0,
        bubble_fraction=1 - sum(r.decode_compute_s for r in ranks) / (cfg.world_size * wall) if wall else 0.0,
        comm_bytes_per_token=sum(r.decode_comm_bytes for r in ranks) / n,
        predicted_comm_bytes_per_token=pred, ranks=ranks, hardware=hardware.card(),
        hosts=run_.hosts, launcher=run_.launcher, link_gbps=cfg.link_gbps or 0.0, link_measured_gbps=measured)
