"""Where the milliseconds before the first token go: TTFT anatomy (lab 03, and lab 02's cold start).

1. `cold_start`: a fresh Python process, timed from spawn to first token, stage by stage:
   interpreter start -> imports -> load -> tokenize -> prefill -> first sample. With cold=True
   the checkpoint's pages are evicted first, and the child records the residency it found.
2. `waterfall`: those stages (or a warm `GenerationResult`'s) as start/duration bars.
3. `prompt_sweep`: TTFT against prompt length; prefill does 2 * N * T FLOPs, so TTFT grows with T.
4. `batch_sweep`: B requests decoded together; per-request tok/s falls, total tok/s rises.
   Bounds beside them, from this machine's measured `memlab.core.ceilings` (the memory roof, matmul
   FLOP/s of the model's dtype) through `memlab.core.roofline`:
       decode step >= max((W + B * kv_per_token * T) / bandwidth,  FLOPs / peak FLOP/s)
       prefill     >= about 2 * N * B * T / peak FLOP/s
   per-request tok/s <= 1 / step, total tok/s <= B / step.
TTFT, TPOT and friends are defined once, in `memlab.core.generation`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memlab.core import generation, limits, loading, models, pagecache, paths, roofline
from memlab.core.ceilings import Ceilings
from memlab.core.errors import MemlabError
from memlab.core.hardware import card
from memlab.core.measure import summarize
from memlab.core.results import as_dict
from memlab.core.text import prompt_ids


@dataclass(frozen=True, slots=True)
class ColdStartResult:
    """One fresh process from spawn to first token; stage durations add up to `ttft_s`."""

    model_name: str
    strategy: str
    dtype: str
    cold: bool                  # the checkpoint was evicted before the process started
    page_cache_before: float    # resident fraction the child measured just before loading
    checkpoint_bytes: int
    spawn_s: float              # exec + interpreter start, up to the first line of the script
    imports_s: float            # import torch, transformers, memlab, and the model's modeling code
    load_s: float               # weights (strategy) + tokenizer + checks
    weights_s: float            # of load_s: the strategy itself (LoadResult.load_time_s)
    tokenize_s: float
    prefill_s: float
    sample_s: float             # argmax + read back of the first token
    ttft_s: float               # spawn -> first token available
    first_token: str
    host: str


_CHILD = """
import time; t_begin = time.monotonic()
import json, sys
a = json.loads(sys.argv[1])
import torch, transformers
from memlab.core import generation, loading
# transformers imports lazily: without this, the model's modeling code (and every integration it
# pulls in, about 2-3 s here) would be imported inside from_pretrained and counted as loading
loading.import_model_code(transformers.AutoConfig.from_pretrained(a["folder"]))
transformers.AutoTokenizer
t_imported = time.monotonic()
loaded = loading.load(a["model"], strategy=a["strategy"], device=a["device"], dtype=a["dtype"],
                      cache_dir=a["cache_dir"], cold=a["cold"], force=True)
t_loaded = time.monotonic()
r = generation.generate(loaded, a["prompt"], max_new_tokens=1, stop_at_eos=False)
print(json.dumps(dict(t_begin=t_begin, t_imported=t_imported, t_loaded=t_loaded,
    tokenize_s=r.tokenize_s, prefill_s=r.prefill_s, ttft_s=r.ttft_s, text=r.text,
    page_cache_before=loaded.result.page_cache_before, weights_s=loaded.result.load_time_s)))
"""


def cold_start(model: str = models.DEFAULT_MODEL, strategy: str = "resident", prompt="Hello!",
               cold: bool = True, device: str = "cpu", dtype: str = "fp32",
               cache_dir: str | Path | None = None, timeout_s: float = 300) -> ColdStartResult:
    """Spawn a fresh interpreter that imports, loads, tokenizes, prefills and samples once."""
    folder = models.prepare(model, dtype=dtype, cache_dir=cache_dir)
    file = loading.checkpoint_file(folder)
    if cold and file is not None:
        pagecache.evict(file)
    args = dict(model=model, folder=str(folder), strategy=strategy, device=device, dtype=dtype,
                cache_dir=str(cache_dir) if cache_dir else None, prompt=prompt, cold=cold)
    env = dict(os.environ)
    root = str(paths.package_root())  # so the child imports this same memlab
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.monotonic()  # CLOCK_MONOTONIC is system-wide: the child's stamps share it
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise MemlabError(f"The cold-start child process failed:\n{proc.stderr[-2000:]}")
    c = json.loads(proc.stdout.strip().splitlines()[-1])
    sample_s = c["ttft_s"] - c["tokenize_s"] - c["prefill_s"]
    return ColdStartResult(
        model_name=model, strategy=strategy, dtype=dtype, cold=cold,
        page_cache_before=c["page_cache_before"], checkpoint_bytes=file.stat().st_size if file else 0,
        spawn_s=c["t_begin"] - t0, imports_s=c["t_imported"] - c["t_begin"],
        load_s=c["t_loaded"] - c["t_imported"], weights_s=c["weights_s"], tokenize_s=c["tokenize_s"], prefill_s=c["prefill_s"],
        sample_s=sample_s, ttft_s=c["t_loaded"] - t0 + c["ttft_s"], first_token=c["text"],
        host=card().host)


@dataclass(frozen=True, slots=True)
class Span:
    """One bar of a waterfall: it starts when the previous stage ends."""

    name: str
    start_s: float
    duration_s: float


def waterfall(record) -> list[Span]:
    """The stages of a ColdStartResult (spawn .. sample) or a GenerationResult (tokenize .. sample)."""
    if isinstance(record, ColdStartResult):
        parts = [("process start", record.spawn_s), ("imports", record.imports_s),
                 ("load", record.load_s), ("tokenize", record.tokenize_s),
                 ("prefill", record.prefill_s), ("first sample", record.sample_s)]
    else:
        parts = [("tokenize", record.tokenize_s), ("prefill", record.prefill_s),
                 ("first sample", record.ttft_s - record.tokenize_s - record.prefill_s)]
    stages, at = [], 0.0
    for name, dur in parts:
        stages.append(Span(name, at, dur))
        at += dur
    return stages


def prefill_floor_s(config, num_tokens: int, ceilings: Ceilings, batch_size: int = 1,
                    dtype: str = "fp32", device: str = "cpu") -> float:
    """prefill >= its roofline bound: 2 * N * B * T FLOPs at the measured matmul rate (`memlab.core.roofline`)."""
    work = roofline.prefill_workload(config, num_tokens, batch_size, dtype)
    return roofline.predict(work, *ceilings.roof(dtype, device)).time_s


def decode_step_floor_s(config, context_tokens: int, ceilings: Ceilings, batch_size: int = 1,
                        dtype: str = "fp32", device: str = "cpu", cached_bytes: float = 0) -> float:
    """step >= max(bytes moved / bandwidth, FLOPs / FLOP/s): every weight and the KV read once, less
    `cached_bytes` that a last-level cache may keep between steps (`roofline.predict`)."""
    work = roofline.decode_workload(config, batch_size, context_tokens, dtype)
    return roofline.predict(work, *ceilings.roof(dtype, device), cached_bytes=cached_bytes).time_s


@dataclass(frozen=True, slots=True)
class TTFTPoint:
    """Medians over repeats for one prompt length (and batch size)."""

    prompt_tokens: int
    batch_size: int
    tokenize_s: float
    prefill_s: float
    ttft_s: float
    ttft_min_s: float
    ttft_max_s: float
    predicted_prefill_s: float  # FLOP floor; nan without ceilings
    num_repeats: int


def sweep_json(loaded, measured: Ceilings, points: list[TTFTPoint]) -> dict:
    """The `memlab ttft --json` view: {"load": LoadResult, "ceilings": the roofs used, "points": [TTFTPoint]}."""
    flops, bandwidth = measured.roof(loaded.dtype, loaded.device.type)
    roofs = {"read_bytes_per_s": bandwidth, "matmul_flop_per_s": flops, "device": str(loaded.device),
             "dtype": loaded.dtype, "measured": as_dict(measured)}
    return {"load": as_dict(loaded.result), "ceilings": roofs, "points": [as_dict(p) for p in points]}


def prompt_sweep(loaded, prompt_tokens=(16, 256, 1024), repeats: int = 3, batch_size: int = 1,
                 ceilings: Ceilings | None = None) -> list[TTFTPoint]:
    """TTFT for prompts of each length (one warm-up call first, then `repeats` timed ones)."""
    limits.count(repeats, "repeats")
    points = []
    for T in prompt_tokens:
        ids = prompt_ids(loaded.tokenizer, T)
        generation.generate(loaded, ids, max_new_tokens=1, batch_size=batch_size)  # warm-up
        runs = [generation.generate(loaded, ids, max_new_tokens=1, batch_size=batch_size)
                for _ in range(repeats)]
        ttft = summarize(r.ttft_s for r in runs)
        pred = (prefill_floor_s(loaded.config, T, ceilings, batch_size, loaded.dtype, loaded.device.type)
                if ceilings else float("nan"))
        points.append(TTFTPoint(T, batch_size, summarize(r.tokenize_s for r in runs).median,
                                summarize(r.prefill_s for r in runs).median, ttft.median,
                                ttft.min, ttft.max, pred, repeats))
    return points


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """B requests decoded together: what each one sees and what the machine delivers."""

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    ttft_s: float
    tpot_s: float
    per_request_tok_per_s: float      # 1 / TPOT
    total_tok_per_s: float            # B / TPOT
    bound_per_request_tok_per_s: float
    bound_total_tok_per_s: float


def batch_sweep(loaded, batch_sizes=(1, 2, 4, 8), prompt_tokens: int = 64, new_tokens: int = 16,
                repeats: int = 1, ceilings: Ceilings | None = None,
                cached_bytes: int | None = None) -> list[ThroughputPoint]:
    """Latency vs throughput: decode `new_tokens` for B copies of one prompt, per batch size.

    The bound counts only the bytes the CPU's caches cannot keep between steps, so it holds on a
    server CPU whose L3 holds most of a small model. `cached_bytes`: at most that many stay cached
    (`core.hierarchy.staircase(...).cache_bytes`, measured); None takes the last-level cache the OS
    reports, a looser bound. On a GPU nothing is counted as cached."""
    cached = 0 if loaded.device.type != "cpu" else \
        (card().last_level_cache_bytes if cached_bytes is None else cached_bytes)
    ids = prompt_ids(loaded.tokenizer, prompt_tokens)
    generation.generate(loaded, ids, max_new_tokens=2)  # warm-up
    points = []
    for B in batch_sizes:
        runs = [generation.generate(loaded, ids, max_new_tokens=new_tokens, batch_size=B,
                                    stop_at_eos=False) for _ in range(repeats)]
        tpot = summarize(r.tpot_s for r in runs).median
        if ceilings:
            step = decode_step_floor_s(loaded.config, prompt_tokens + new_tokens // 2, ceilings, B,
                                       loaded.dtype, loaded.device.type, cached_bytes=cached)
            bound_req, bound_total = 1 / step, B / step
        else:
            bound_req = bound_total = float("nan")
        points.append(ThroughputPoint(B, prompt_tokens, new_tokens,
                                      summarize(r.ttft_s for r in runs).median, tpot,
                                      1 / tpot, B / tpot, bound_req, bound_total))
    return points
