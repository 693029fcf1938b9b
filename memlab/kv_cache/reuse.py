"""Prefix reuse on the real model: one shared prefix, a new suffix, four ways to the first token (lab 09).

For each prefix length P the prefix's KV cache is computed once, kept in RAM and written to a
file; then every way of `tiers.WAYS` serves the same request (the P prefix tokens, then S new
tokens) `repeats` times, timed in two parts:
    TTFT = prefix_s (restore the prefix's KV, or recompute it) + suffix_s (prefill the S new
           tokens over the P cached ones, and sample the first token)
Each part beside its prediction from this machine's measured ceilings (`memlab.core.ceilings`):
    recompute   FLOPs of the prefix / matmul FLOP/s          (`roofline.prefill_workload`)
    ram         2 x KV bytes / copy bandwidth                (read and written once)
    disk-*      KV bytes / disk read rate (cold or warm) + the same copy into the cache
    pinned      KV bytes / pinned host->device rate + a copy in VRAM
    suffix      max(FLOPs / FLOP/s, bytes / bandwidth) of S tokens over P cached ones
Every way must give the same tokens: the cache it restores holds the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from memlab.core import footprint, generation, limits, models, roofline
from memlab.core.ceilings import Ceilings
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import card
from memlab.core.measure import summarize, sync
from memlab.core.text import prompt_ids
from memlab.kv_cache import tiers

GB = 1e9


@dataclass(frozen=True, slots=True)
class ReuseConfig:
    """One prefix-reuse experiment (full-run defaults; `quick()` for tests and quick labs)."""

    prefix_tokens: tuple = (128, 512, 1024, 2048)   # P, one run of every way per length
    suffix_tokens: int = 32                         # S: the new question after the shared prefix
    new_tokens: int = 8                             # tokens generated to compare the ways
    repeats: int = 5                                # timed requests per way and length
    ways: tuple = ("recompute", "ram", "disk-cold", "disk-warm")
    folder: str | None = None                       # where the KV files go (default: memlab cache/kv_cache)

    def __post_init__(self):
        if not self.prefix_tokens:
            raise InvalidArgumentError("prefix_tokens needs at least one length")
        for p in self.prefix_tokens:
            limits.count(p, "prefix_tokens")
        limits.count(self.suffix_tokens, "suffix_tokens")
        limits.count(self.new_tokens, "new_tokens")
        limits.count(self.repeats, "repeats")
        unknown = [w for w in self.ways if w not in tiers.WAYS]
        if unknown or not self.ways:
            raise InvalidArgumentError(f"unknown way(s) {unknown}: choose from {', '.join(tiers.WAYS)}")

    @classmethod
    def quick(cls, **kw) -> "ReuseConfig":
        return cls(**{**dict(prefix_tokens=(64, 256, 512), suffix_tokens=16, new_tokens=4, repeats=2), **kw})


@dataclass(frozen=True, slots=True)
class ReuseRun:
    """One way of serving a P-token prefix plus an S-token suffix: medians over repeats."""

    way: str                     # tiers.WAYS
    model_name: str
    device: str
    dtype: str
    prefix_tokens: int           # P
    suffix_tokens: int           # S
    kv_bytes: int                # bytes of the prefix's K/V tensors (what a tier stores and moves)
    kv_bytes_predicted: int      # footprint.kv_cache_bytes(config, P)
    file_bytes: int              # size of the KV file on disk (0 when no file was written)
    page_cache_before: tuple     # disk ways: resident fraction of the file before each restore
    prefix_s: float              # restore (or recompute) the prefix's KV, median
    predicted_prefix_s: float    # from the measured ceilings; nan without them
    suffix_s: float              # prefill of S tokens over the cached prefix + first sample, median
    predicted_suffix_s: float
    ttft_s: float                # prefix_s + suffix_s of one request, median
    ttft_runs_s: tuple           # every request's TTFT, for checks over repeats
    prefix_runs_s: tuple
    token_ids: tuple             # the first new_tokens tokens, greedy
    same_tokens: bool            # equal to the recompute way's tokens (True for recompute itself)
    num_repeats: int
    host: str = field(default="")


def prefix_flops(config, prefix_tokens: int, dtype: str = "fp32") -> float:
    """FLOPs of recomputing a P-token prefix: its prefill without the lm_head (the suffix's pass
    computes the logits): 2 x body params x P + causal attention 2 x L x H x D x P x (P + 1)."""
    vd = footprint.config_value(config, "vocab_size") * footprint.config_value(config, "hidden_size")
    return roofline.prefill_workload(config, prefix_tokens, 1, dtype).flops - 2.0 * vd


def suffix_workload(config, prefix_tokens: int, suffix_tokens: int, dtype: str = "fp32") -> roofline.Workload:
    """S new tokens over P cached ones: the FLOPs prefill of P + S adds to prefill of P (plus the
    lm_head once), and the bytes: weights, the P cached tokens' KV read, S tokens' KV written."""
    P, S = prefix_tokens, suffix_tokens
    vd = footprint.config_value(config, "vocab_size") * footprint.config_value(config, "hidden_size")
    flops = (roofline.prefill_workload(config, P + S, 1, dtype).flops
             - roofline.prefill_workload(config, P, 1, dtype).flops + 2.0 * vd)
    nbytes = footprint.weights_bytes(config, dtype) + footprint.kv_cache_bytes(config, P + S, dtype=dtype)
    return roofline.Workload("prefill", 1, S, P, flops, float(nbytes), dtype)


def rate_or_nan(gb_per_s: float) -> float:
    return gb_per_s * GB if gb_per_s and gb_per_s > 0 else float("nan")


def predict_prefix_s(way: str, config, prefix_tokens: int, ceilings: Ceilings | None,
                     dtype: str = "fp32", device: str = "cpu") -> float:
    """The prefix part of TTFT predicted from measured ceilings (formulas in the module docstring)."""
    if ceilings is None:
        return float("nan")
    kv_bytes = footprint.kv_cache_bytes(config, prefix_tokens, dtype=dtype)
    on_gpu = str(device).startswith("cuda")
    copy = rate_or_nan(ceilings.vram_gb_per_s if on_gpu else ceilings.copy_gb_per_s)
    into_cache_s = 2 * kv_bytes / copy  # cache_from copies every tensor once: one read, one write
    if way == "recompute":
        flops, _ = ceilings.roof(dtype, device)
        return prefix_flops(config, prefix_tokens, dtype) / flops if flops else float("nan")
    if way == "ram":
        return into_cache_s
    if way.startswith("disk"):
        read = rate_or_nan(ceilings.disk_cold_gb_per_s if way == "disk-cold" else ceilings.disk_warm_gb_per_s)
        to_gpu = kv_bytes / rate_or_nan(ceilings.h2d_pageable_gb_per_s) if on_gpu else 0.0
        return kv_bytes / read + to_gpu + into_cache_s
    if way == "pinned":
        return kv_bytes / rate_or_nan(ceilings.h2d_pinned_gb_per_s) + into_cache_s
    raise InvalidArgumentError(f"unknown way {way!r}")


def predict_suffix_s(config, prefix_tokens: int, suffix_tokens: int, ceilings: Ceilings | None,
                     dtype: str = "fp32", device: str = "cpu") -> float:
    if ceilings is None:
        return float("nan")
    work = suffix_workload(config, prefix_tokens, suffix_tokens, dtype)
    return roofline.predict(work, *ceilings.roof(dtype, device)).time_s


@torch.inference_mode()
def serve_once(loaded, way: str, prefix: tiers.Prefix, suffix_ids: list[int], path, pinned,
               new_tokens: int = 0) -> tuple[float, float, list[int]]:
    """One request: restore the prefix (timed), prefill the suffix and sample (timed), then
    (untimed) decode up to `new_tokens` tokens greedily. Returns (prefix_s, suffix_s, tokens)."""
    model, dev = loaded.model, loaded.device
    sync(dev)
    start = time.perf_counter()
    cache = tiers.restore(way, loaded, prefix, path, pinned)
    sync(dev)
    restored_at = time.perf_counter()
    logits = generation.prefill(model, torch.tensor([suffix_ids], device=dev), cache)  # (1, V)
    token = generation.pick(logits)
    tokens = token.tolist()  # read back: the first token is available now
    first_at = time.perf_counter()
    while len(tokens) < new_tokens:
        token = generation.pick(generation.decode_step(model, token[:, None], cache))
        tokens += token.tolist()
    return restored_at - start, first_at - restored_at, tokens


def check_context(loaded, config: ReuseConfig) -> None:
    """Refuse, before anything is measured, a prefix + suffix + new tokens longer than the model's context."""
    limits.check_context(loaded.config, max(config.prefix_tokens) + config.suffix_tokens + config.new_tokens,
                         getattr(loaded, "name", "the model"))


def kv_folder(config: ReuseConfig) -> Path:
    return Path(config.folder) if config.folder else models.cache_dir() / "kv_cache"


def run(loaded, config: ReuseConfig | None = None, ceilings: Ceilings | None = None,
        progress: bool = False) -> list[ReuseRun]:
    """Every way of `config.ways` at every prefix length; rows in the order (P, way)."""
    config = config or ReuseConfig()
    ways = [w for w in config.ways if w != "pinned" or loaded.device.type == "cuda"]  # pinned needs CUDA
    cfg, dtype, dev = loaded.config, loaded.dtype, loaded.device
    check_context(loaded, config)
    host = card().host
    rows = []
    lengths = config.prefix_tokens
    if progress:
        from tqdm.auto import tqdm
        lengths = tqdm(lengths, desc="prefix lengths")
    for P in lengths:
        ids = prompt_ids(loaded.tokenizer, P + config.suffix_tokens)
        prefix = tiers.compute_prefix(loaded, ids[:P])
        suffix = ids[P:]
        path = kv_folder(config) / f"prefix-{P}-{dtype}.kv"
        file_bytes = tiers.save(prefix, path) if any(w.startswith("disk") for w in ways) else 0
        pinned = tiers.pin(prefix) if "pinned" in ways else None
        reference = None
        try:
            for way in ways:
                serve_once(loaded, way, prefix, suffix, path, pinned)  # warm-up (allocator, kernels)
                residency, pre, suf, tokens = [], [], [], None
                for i in range(config.repeats):
                    residency.append(tiers.prepare(way, path))
                    p_s, s_s, toks = serve_once(loaded, way, prefix, suffix, path, pinned,
                                                config.new_tokens if i == 0 else 0)
                    pre.append(p_s)
                    suf.append(s_s)
                    tokens = tokens or toks
                reference = reference or (tokens if way == "recompute" else None)
                rows.append(ReuseRun(
                    way=way, model_name=loaded.name, device=str(dev), dtype=dtype, prefix_tokens=P,
                    suffix_tokens=config.suffix_tokens, kv_bytes=prefix.num_bytes,
                    kv_bytes_predicted=footprint.kv_cache_bytes(cfg, P, dtype=dtype),
                    file_bytes=file_bytes, page_cache_before=tuple(residency) if way.startswith("disk") else (),
                    prefix_s=summarize(pre).median,
                    predicted_prefix_s=predict_prefix_s(way, cfg, P, ceilings, dtype, dev.type),
                    suffix_s=summarize(suf).median,
                    predicted_suffix_s=predict_suffix_s(cfg, P, config.suffix_tokens, ceilings, dtype, dev.type),
                    ttft_s=summarize(a + b for a, b in zip(pre, suf)).median,
                    ttft_runs_s=tuple(a + b for a, b in zip(pre, suf)), prefix_runs_s=tuple(pre),
                    token_ids=tuple(tokens), same_tokens=True, num_repeats=config.repeats, host=host))
        finally:
            path.unlink(missing_ok=True)
        if reference is None:  # no recompute way asked for: compare with a recompute once
            reference = serve_once(loaded, "recompute", prefix, suffix, None, None, config.new_tokens)[2]
        rows[-len(ways):] = [_with_same(r, reference) for r in rows[-len(ways):]]
    return rows


def _with_same(run_: ReuseRun, reference: list[int]) -> ReuseRun:
    return replace(run_, same_tokens=list(run_.token_ids) == list(reference))
