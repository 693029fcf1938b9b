"""Two meanings of "sharded": a checkpoint cut into files, and a model split across processes.

Lab 05. Variants, in the order the lab shows them:
  1. checkpoint shards   `save_shards` cuts model.safetensors into files of at most
                         max_shard_bytes plus an index (model.safetensors.index.json, the
                         Hugging Face layout); `measure_load` loads either layout into an
                         allocated model one file at a time, in a fresh process.
                         Peak RSS ~= base + W + largest file  (W = weights bytes), so one
                         513 MB file peaks near base + 2 W while 64 MB shards peak near base + W + 64 MB.
  2. pipeline parallel   `run(cfg, "pipeline")`: layers split across ranks (see pipeline.py).
  3. tensor parallel     `run(cfg, "tensor")`: every matrix split across ranks (tensor_parallel.py).
Workers are real processes talking through torch.distributed (gloo on CPU, NCCL on GPUs),
started by launch.run_workers; their records come back as one `ShardResult`, whose generated
tokens are compared with single-process memlab.core.generation.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from memlab.core.checkpoint import weight_map
from memlab.sharding.workers import ParallelConfig, peak_rss_bytes
from memlab.core.errors import MemlabError

__all__ = ["ShardFile", "ShardLoadResult", "ShardResult", "CheckpointResult", "save_shards",
           "measure_load", "compare_checkpoint", "shard_files",
           "run", "reference_tokens", "step_times", "summary", "ParallelConfig"]

INDEX = "model.safetensors.index.json"


@dataclass(frozen=True, slots=True)
class ShardFile:
    name: str
    num_tensors: int
    size_bytes: int          # tensor bytes in this file (the file adds a small JSON header)


@dataclass(frozen=True, slots=True)
class ShardLoadResult:
    """One checkpoint load into an allocated model, measured in a fresh process."""
    layout: str                      # "single" or "shards"
    num_files: int
    largest_file_bytes: int
    weights_bytes: int
    start_rss_bytes: int             # after imports and allocating the (empty) model
    peak_rss_bytes: int
    predicted_peak_rss_bytes: int    # start + largest file (the file's tensors live beside the model)
    load_s: float
    per_file_load_s: tuple


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


# ---- 1. checkpoint shards ----------------------------------------------------------------------

def _natural(name: str):
    """Sort key so layer 2 comes before layer 10: shards then hold consecutive layers."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def save_shards(folder, out_dir=None, max_shard_bytes: int = 64 * 2**20) -> Path:
    """Cut a checkpoint into files of at most max_shard_bytes (a bigger tensor gets its own file)
    and write the index. Written to a temp folder and renamed, so a crash leaves nothing half done."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    out = Path(out_dir) if out_dir else folder.parent / f"{folder.name}-shards-{max_shard_bytes // 2**20}MiB"
    files = weight_map(folder)
    groups, cur, cur_bytes = [], [], 0
    sizes = {}
    for name in sorted(files, key=_natural):
        with safe_open(files[name], framework="pt") as f:
            sl = f.get_slice(name)
            sizes[name] = _nbytes(sl.get_shape(), sl.get_dtype())
        if cur and cur_bytes + sizes[name] > max_shard_bytes:
            groups.append(cur)
            cur, cur_bytes = [], 0
        cur.append(name)
        cur_bytes += sizes[name]
    groups.append(cur)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shards-", dir=out.parent))
    try:
        weight_to_file = {}
        for i, group in enumerate(groups):
            fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
            tensors = {}
            for name in group:
                with safe_open(files[name], framework="pt") as f:
                    tensors[name] = f.get_tensor(name)
            save_file(tensors, tmp / fname, metadata={"format": "pt"})
            weight_to_file.update({n: fname for n in group})
        (tmp / INDEX).write_text(json.dumps({"metadata": {"total_size": sum(sizes.values())},
                                             "weight_map": weight_to_file}, indent=1))
        for extra in folder.iterdir():                      # config, tokenizer, chat template
            if extra.is_file() and not extra.name.startswith("model") and extra.suffix != ".safetensors":
                shutil.copy2(extra, tmp / extra.name)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _nbytes(shape, dtype: str) -> int:
    per = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
    n = 1
    for s in shape:
        n *= s
    return n * per[dtype]


def shard_files(folder) -> list[ShardFile]:
    """The files of a checkpoint folder, with tensor counts and bytes, in load order."""
    by_file: dict = {}
    from safetensors import safe_open
    for name, path in weight_map(folder).items():
        with safe_open(path, framework="pt") as f:
            sl = f.get_slice(name)
            n, b = by_file.get(path, (0, 0))
            by_file[path] = (n + 1, b + _nbytes(sl.get_shape(), sl.get_dtype()))
    return [ShardFile(p.name, n, b) for p, (n, b) in sorted(by_file.items())]


def load_worker(rank, world_size, folder):
    """Allocate the model empty, then read one file at a time into it (runs in a fresh process)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from memlab.core.measure import rss_bytes

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.to_empty(device="cpu")                       # real, uninitialised memory for W bytes
    model.tie_weights()
    for p in model.parameters():
        p.data.zero_()                                 # touch every page, so start RSS includes W
    files = sorted(set(weight_map(folder).values()))
    start = rss_bytes()
    per_file = []
    t0 = time.perf_counter()
    for path in files:
        t = time.perf_counter()
        sd = load_file(path)                           # this file's tensors, in memory
        model.load_state_dict(sd, strict=False)        # copy into the model's own storage
        del sd
        per_file.append(time.perf_counter() - t)
    load_s = time.perf_counter() - t0
    return start, peak_rss_bytes(), load_s, tuple(per_file)


def measure_load(folder, timeout_s: float = 300.0) -> ShardLoadResult:
    """Load a single-file or sharded checkpoint in a fresh process; peak RSS and time per file."""
    from memlab.core.launch import run_workers

    files = shard_files(folder)
    [(start, peak, load_s, per_file)] = run_workers(load_worker, world_size=1, args=(str(folder),),
                                                   timeout_s=timeout_s)
    largest = max(f.size_bytes for f in files)
    return ShardLoadResult(layout="shards" if len(files) > 1 else "single", num_files=len(files),
                           largest_file_bytes=largest, weights_bytes=sum(f.size_bytes for f in files),
                           start_rss_bytes=start, peak_rss_bytes=peak,
                           predicted_peak_rss_bytes=start + largest, load_s=load_s,
                           per_file_load_s=per_file)


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """Single-file vs sharded checkpoint: both loads, and whether both give the same tokens."""
    model_name: str
    shard_dir: str
    max_shard_bytes: int
    single: ShardLoadResult
    shards: ShardLoadResult
    tokens_match: bool | None        # greedy tokens from the sharded folder == from the single file
    hardware: object = None


def compare_checkpoint(model: str = "smollm2-135m", max_shard_bytes: int = 64 * 2**20,
                       max_new_tokens: int = 8, check_tokens: bool = True) -> CheckpointResult:
    """Shard the model's checkpoint, then measure both loads, each in a fresh process."""
    from memlab.core import hardware, models
    folder = models.prepare(model)
    out = save_shards(folder, models.cache_dir() / f"{folder.name}-shards-{max_shard_bytes // 2**20}MiB",
                      max_shard_bytes)
    match = None
    if check_tokens:
        from transformers import AutoTokenizer
        ids = AutoTokenizer.from_pretrained(folder)(ParallelConfig().prompt)["input_ids"]
        match = reference_tokens(folder, ids, max_new_tokens) == reference_tokens(out, ids, max_new_tokens)
    return CheckpointResult(model, str(out), max_shard_bytes, measure_load(folder), measure_load(out),
                            match, hardware.card())


# ---- 2, 3. pipeline and tensor parallel ------------------------------------------------------------

def reference_tokens(folder, prompt_ids: list, max_new_tokens: int, dtype: str = "fp32") -> tuple:
    """Greedy tokens of the same prompt from one process (memlab.core.generation), EOS ignored."""
    from memlab.core import generation, loading
    loaded = loading.load(str(folder), dtype=dtype)
    res = generation.generate(loaded, list(prompt_ids), max_new_tokens=max_new_tokens, stop_at_eos=False)
    return tuple(res.token_ids)[-max_new_tokens:]


def step_times(ranks, step: int) -> float:
    """Wall time of one step: first event start to last event end, over all ranks."""
    ev = [e for r in ranks for e in r.events if e.step == step]
    return max(e.end_at_s for e in ev) - min(e.start_at_s for e in ev)


def run(cfg: ParallelConfig, mode: str = "pipeline") -> ShardResult:
    """Launch cfg.world_size workers of the given mode, gather their records, check the tokens."""
    from memlab.core import hardware, models
    from memlab.core.launch import run_workers
    from transformers import AutoConfig, AutoTokenizer
    from memlab.sharding import pipeline, tensor_parallel

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
    ranks = tuple(run_workers(fn, world_size=cfg.world_size, args=(str(folder), prompt_ids, cfg),
                              timeout_s=cfg.timeout_s, backend=cfg.backend))
    tokens = ranks[0].token_ids
    ref = reference_tokens(folder, prompt_ids, cfg.max_new_tokens, cfg.dtype) if cfg.check_tokens else ()
    steps = range(1, cfg.max_new_tokens)
    n = max(len(steps), 1)
    wall = sum(step_times(ranks, s) for s in steps)
    comp = statistics.mean(r.decode_compute_s for r in ranks) / n
    comm = statistics.mean(r.decode_comm_s for r in ranks) / n
    b = {"fp32": 4, "bf16": 2, "fp16": 2}[cfg.dtype]
    if mode == "pipeline":   # activations to each next rank, plus the token ids back to rank 0
        pred = (cfg.world_size - 1) * pipeline.activation_bytes_per_token(config, b) * cfg.batch_size
        pred += 8 * cfg.batch_size if cfg.world_size > 1 else 0
    else:                    # every rank all-reduces the same payload
        pred = cfg.world_size * tensor_parallel.allreduce_bytes_per_token(config, b) * cfg.batch_size
    return ShardResult(
        mode=mode, model_name=cfg.model, world_size=cfg.world_size, backend=cfg.backend,
        dtype=cfg.dtype, batch_size=cfg.batch_size, micro_batches=cfg.micro_batches,
        prompt_tokens=len(prompt_ids), new_tokens=len(tokens), token_ids=tokens,
        reference_token_ids=ref, tokens_match=(tokens == ref) if cfg.check_tokens else None,
        prefill_s=step_times(ranks, 0),
        tpot_s=wall / len(steps) if len(steps) else float("nan"),
        decode_compute_s_per_token=comp, decode_comm_s_per_token=comm,
        comm_share=comm / (comm + comp) if comm + comp else 0.0,
        bubble_fraction=1 - sum(r.decode_compute_s for r in ranks) / (cfg.world_size * wall) if wall else 0.0,
        comm_bytes_per_token=sum(r.decode_comm_bytes for r in ranks) / n,
        predicted_comm_bytes_per_token=pred, ranks=ranks, hardware=hardware.card())


def summary(result) -> dict:
    """A flat, JSON-ready dict (no timeline events) for the CLI and tables."""
    from memlab.core import results
    d = results.as_dict(replace(result, ranks=(), hardware=None)) if isinstance(result, ShardResult) \
        else results.as_dict(result)
    if isinstance(result, ShardResult):
        d.pop("ranks", None)
        d.pop("hardware", None)
        d["host"] = getattr(result.hardware, "host", "")
        d["ranks"] = [{k: v for k, v in results.as_dict(replace(r, events=())).items() if k != "events"}
                      for r in result.ranks]
    return d
