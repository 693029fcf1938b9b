"""Checkpoint shards (lab 05, part 1): one model.safetensors cut into files, and what that saves.

`save_shards` cuts model.safetensors into files of at most max_shard_bytes plus an index
(model.safetensors.index.json, the Hugging Face layout); `measure_load` loads either layout into
an allocated model one file at a time, in a fresh process.
    Peak RSS ~= base + W + largest file  (W = weights bytes)
so one file of W bytes peaks near base + 2 W, while small shards peak near base + W + one shard.
`memlab shard checkpoint` runs `compare_checkpoint`.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from memlab.core import hardware, limits, models
from memlab.core.checkpoint import read_header
from memlab.core.launch import run_workers
from memlab.core.measure import release_freed_memory, rss_bytes
from memlab.core.models import DEFAULT_MODEL
from memlab.core.results import as_dict
from memlab.sharding import parallel
from memlab.sharding.reads import weight_map
from memlab.sharding.workers import ParallelConfig, peak_rss_bytes

INDEX = "model.safetensors.index.json"


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
class ShardFile:
    name: str
    num_tensors: int
    size_bytes: int          # tensor bytes in this file (the file adds a small JSON header)


def _natural(name: str):
    """Sort key so layer 2 comes before layer 10: shards then hold consecutive layers."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def save_shards(folder, out_dir=None, max_shard_bytes: int = 64 * 2**20) -> Path:
    """Cut a checkpoint into files of at most max_shard_bytes (a bigger tensor gets its own file)
    and write the index. Written to a temp folder and renamed, so a crash leaves nothing half done."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    limits.count(max_shard_bytes, "max_shard_bytes", minimum=0)  # 0: a file per tensor
    folder = Path(folder)
    out = Path(out_dir) if out_dir else folder.parent / f"{folder.name}-shards-{max_shard_bytes // 2**20}MiB"
    files = weight_map(folder)
    groups, cur, cur_bytes = [], [], 0
    sizes = tensor_sizes(files)
    for name in sorted(files, key=_natural):
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


def tensor_sizes(files: dict) -> dict[str, int]:
    """Tensor name -> bytes, read off the safetensors headers (memlab.core.checkpoint)."""
    headers = {path: read_header(path) for path in set(files.values())}
    return {name: headers[path][name].end_byte - headers[path][name].start_byte for name, path in files.items()}


def shard_files(folder) -> list[ShardFile]:
    """The files of a checkpoint folder, with tensor counts and bytes, in load order."""
    files = weight_map(folder)
    sizes = tensor_sizes(files)
    by_file: dict = {}
    for name, path in files.items():
        n, b = by_file.get(path, (0, 0))
        by_file[path] = (n + 1, b + sizes[name])
    return [ShardFile(p.name, n, b) for p, (n, b) in sorted(by_file.items())]


def load_worker(rank, world_size, folder):
    """Allocate the model empty, then read one file at a time into it (runs in a fresh process)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

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

    def as_json(self) -> dict:
        """The `memlab shard checkpoint --json` view: the host's name instead of the whole card."""
        d = {k: v for k, v in as_dict(self).items() if k != "hardware"}
        return {**d, "mode": "checkpoint", "host": getattr(self.hardware, "host", "")}


def compare_checkpoint(model: str = DEFAULT_MODEL, max_shard_bytes: int = 64 * 2**20,
                       max_new_tokens: int = 8, check_tokens: bool = True) -> CheckpointResult:
    """Shard the model's checkpoint, then measure both loads, each in a fresh process."""
    folder = models.prepare(model)
    out = save_shards(folder, models.cache_dir() / f"{folder.name}-shards-{max_shard_bytes // 2**20}MiB",
                      max_shard_bytes)
    release_freed_memory()  # the tensors copied into the shards: freed, and handed back to the OS
    match = None
    if check_tokens:
        from transformers import AutoTokenizer
        ids = AutoTokenizer.from_pretrained(folder)(ParallelConfig().prompt)["input_ids"]
        match = parallel.reference_tokens(folder, ids, max_new_tokens) == parallel.reference_tokens(out, ids, max_new_tokens)
    return CheckpointResult(model, str(out), max_shard_bytes, measure_load(folder), measure_load(out),
                            match, hardware.card())
