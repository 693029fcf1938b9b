"""Where the simulator's numbers come from (lab 07); `validation` says how wrong it is.

Two ways to get a `simulator.Profile`, in the order the lab uses them:
  1. measured: time prefill vs prompt length, one decode step vs batch and context, and KV-sized
     gloo transfers between two real processes on this machine, then least-squares fit
       prefill(n)      = base + a n + b n^2
       decode_step(B,C)= base + c B + d B C          (C = context tokens per sequence)
       transfer(bytes) = latency + bytes / bandwidth
  2. spec-derived: from a row of data/hardware.csv (peak FLOP/s, memory bandwidth) and a link row,
       prefill(n) = (fixed + a n + b n^2) / (peak * mfu), with (fixed, a, b) the course's one prefill-FLOPs
       count (`roofline.prefill_flops_terms`: the lm_head, 2 per layer weight, attention's 2 L H D n^2),
       decode step base  = weights_bytes / bandwidth, per sequence in the batch 2 * matmul params / (peak * mfu),
       per context token = kv_bytes_per_token / bandwidth,
     labelled "spec-derived" because nothing was run on that hardware.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memlab.core import footprint, generation, launch, measure
from memlab.core.hardware import card
from memlab.core.models import DEFAULT_MODEL
from memlab.core.text import prompt_ids
from memlab.disaggregation.kv_transfer import recv_gloo, send_gloo
from memlab.disaggregation.profiles import Profile, load_profile, profile_path, save_profile
from memlab.disaggregation.serve import worker_model


@dataclass(frozen=True, slots=True)
class Calibration:
    """The raw measurements behind a measured profile (seconds)."""

    prefill_points: tuple        # (prompt_tokens, prefill_s)
    decode_points: tuple         # (batch_size, context_tokens, step_s)
    link_points: tuple           # (bytes, transfer_s)
    kv_bytes_per_token: int
    host: str


def _lstsq(rows, ys) -> list[float]:
    """Least squares of the *relative* error, non-negative coefficients (a negative term is dropped
    and the rest refit). Relative: each point counts alike, so a 60 ms batch-1 step is fit as well as
    a 700 ms batch-32 one (plain least squares let the big points set the fit: batch-1 decode steps,
    the ones the validation serves, came out 6% fast)."""
    x, y = np.array(rows, dtype=float), np.array(ys, dtype=float)
    w = 1.0 / np.maximum(np.abs(y), 1e-12)
    x, y = x * w[:, None], y * w
    keep = list(range(x.shape[1]))
    while True:
        coef = np.linalg.lstsq(x[:, keep], y, rcond=None)[0]
        if (coef >= 0).all() or len(keep) == 1:
            out = [0.0] * x.shape[1]
            for k, c in zip(keep, coef):
                out[k] = max(0.0, float(c))
            return out
        keep.pop(int(np.argmin(coef)))


def fit_profile(cal: Calibration, name: str = "measured") -> Profile:
    """Fit the profile's linear cost models to the measured points."""
    pb, pa, p2 = _lstsq([(1, n, n * n) for n, _ in cal.prefill_points], [t for _, t in cal.prefill_points])
    db, ds, dc = _lstsq([(1, b, b * c) for b, c, _ in cal.decode_points], [t for *_, t in cal.decode_points])
    lat, inv_bw = _lstsq([(1, nb) for nb, _ in cal.link_points], [t for _, t in cal.link_points])
    return Profile(name, f"measured on {cal.host}", pb, pa, p2, db, ds, dc,
                   1.0 / inv_bw if inv_bw > 0 else 1e12, lat, cal.kv_bytes_per_token)


def merged(bursts) -> Calibration:
    """One calibration from several bursts of it: each prefill and decode point's median over the
    bursts (the machine's typical speed over the minutes they span), each transfer size's fastest."""
    def median_of(points):
        groups = {}
        for *key, t in points:
            groups.setdefault(tuple(key), []).append(t)
        return tuple((*key, float(np.median(ts))) for key, ts in groups.items())
    link = {}
    for nb, t in (p for c in bursts for p in c.link_points):
        link[nb] = min(t, link.get(nb, t))
    return Calibration(median_of(p for c in bursts for p in c.prefill_points),
                       median_of(p for c in bursts for p in c.decode_points), tuple(sorted(link.items())),
                       bursts[0].kv_bytes_per_token, bursts[0].host)


def _synthetic_cache(model, batch: int, context: int, dtype):
    """A cache of random K/V: a decode step's cost depends on the cache's size, not its values."""
    cfg = model.config
    kvh, hd = cfg.num_key_value_heads, footprint.head_dim(cfg)
    cache = generation.new_cache(model)
    for i in range(cfg.num_hidden_layers):
        cache.update(torch.randn(batch, kvh, context, hd, dtype=dtype), torch.randn(batch, kvh, context, hd, dtype=dtype), i)
    return cache


def _flag_path(phase: str) -> Path:
    """A stop flag both ranks can see: a file in /dev/shm (or the temp dir), named by the run's port."""
    import os
    import tempfile
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"memlab_neighbour_{os.environ.get('MASTER_PORT', '0')}_{phase}"


def _busy_until_told(model, tokenizer, phase: str, dtype) -> None:
    """Rank 1 as a noisy neighbour: decode steps (or 160-token prefills) until rank 0's flag appears.

    (A file flag, not a gloo irecv: polling an irecv's is_completed() never saw it complete here.)
    """
    flag = _flag_path(phase)
    ids = torch.tensor([prompt_ids(tokenizer, 160)])
    while not flag.exists():
        if phase == "decode":
            cache, tok = _synthetic_cache(model, 1, 200, dtype), torch.ones(1, 1, dtype=torch.long)
            for _ in range(16):
                generation.decode_step(model, tok, cache)
                if flag.exists():
                    break
        else:
            generation.prefill(model, ids, generation.new_cache(model))


def measure_points(rank: int, loaded, prompt_lengths=(32, 128, 384), batches=(1, 4),
                   contexts=(64, 512), link_tokens=(64, 512), repeats: int = 2,
                   neighbour_busy: bool = False, warmup: int = 1) -> Calibration | None:
    """Inside a 2-rank group: rank 0 times prefill and decode; both time the link.

    neighbour_busy=False: rank 1 waits (each phase alone, as on its own machine).
    neighbour_busy=True: rank 1 decodes while rank 0 times prefill, and prefills while rank 0
    times decode, as the two workers of the real split do on one shared machine.
    warmup=0: no untimed call before each point (a model already warmed by an earlier burst).
    """
    import torch.distributed as dist

    model, cfg = loaded.model, loaded.config
    dtype = next(model.parameters()).dtype
    kvh, hd, layers = cfg.num_key_value_heads, footprint.head_dim(cfg), cfg.num_hidden_layers
    pre, dec, link = [], [], []
    with torch.inference_mode():
        if rank == 0:
            for n in prompt_lengths:
                ids = torch.tensor([prompt_ids(loaded.tokenizer, n)])
                pre.append((n, measure.repeat(lambda: generation.prefill(model, ids, generation.new_cache(model)), repeats, warmup).median))
            if neighbour_busy:
                _flag_path("decode").touch()
            for b in batches:
                for c in contexts:
                    cache, tok = _synthetic_cache(model, b, c, dtype), torch.ones(b, 1, dtype=torch.long)
                    for _ in range(warmup):
                        generation.decode_step(model, tok, cache)     # warm-up step
                    dec.append((b, c, measure.repeat(lambda: generation.decode_step(model, tok, cache), repeats + 1).median))
            if neighbour_busy:
                _flag_path("prefill").touch()
        elif neighbour_busy:
            _busy_until_told(model, loaded.tokenizer, "decode", dtype)
            _busy_until_told(model, loaded.tokenizer, "prefill", dtype)
        dist.barrier()
        if neighbour_busy and rank == 0:
            for phase in ("decode", "prefill"):
                _flag_path(phase).unlink(missing_ok=True)
        for n in link_tokens:
            shapes = [(1, kvh, n, hd)] * (2 * layers)
            for _ in range(repeats + 1):
                dist.barrier()
                t = time.perf_counter()
                if rank == 0:
                    send_gloo([torch.zeros(s, dtype=dtype) for s in shapes], 1)
                    dist.recv(torch.zeros(1), 1)            # ack: the data has landed
                    link.append((2 * layers * kvh * n * hd * dtype.itemsize, time.perf_counter() - t))
                else:
                    recv_gloo(shapes, dtype, 0)
                    dist.send(torch.zeros(1), 0)
    if rank != 0:
        return None
    link = [min((p for p in link if p[0] == nb), key=lambda p: p[1]) for nb in sorted({p[0] for p in link})]
    return Calibration(tuple(pre), tuple(dec), tuple(link),
                       footprint.kv_bytes_per_token(cfg, dtype=dtype), card().host)


def worker_grid(model_name, quick):
    """One worker's model, loaded and warmed by a tiny prefill, and its measurement grid."""
    loaded = worker_model(model_name)
    kw = dict(prompt_lengths=(32, 128, 384), repeats=2) if quick else dict(
        prompt_lengths=(16, 64, 128, 256, 512), batches=(1, 2, 4), contexts=(64, 256, 1024), repeats=3)
    return loaded, kw


def _calibrate_worker(rank, world_size, model_name, quick):
    loaded, kw = worker_grid(model_name, quick)
    return measure_points(rank, loaded, **kw)


def calibrate(model: str = DEFAULT_MODEL, quick: bool = True, save: bool = True,
              timeout_s: float = 600) -> tuple[Profile, Calibration]:
    """Measure this machine with two real worker processes and fit a Profile (saved to the cache)."""
    cal = launch.run_workers(_calibrate_worker, world_size=2, timeout_s=timeout_s, args=(str(model), quick))[0]
    profile = fit_profile(cal, f"{Path(str(model)).name} on {cal.host}")
    if save:
        save_profile(profile, profile_path(model))
    return profile, cal


def local_profile(model: str = DEFAULT_MODEL, quick: bool = True) -> Profile:
    """The cached measured profile for this machine, measured now if there is none."""
    path = profile_path(model)
    if path.exists():
        try:
            return load_profile(path)
        except (ValueError, TypeError):  # half-written by an older version, or edited by hand
            print(f"memlab: the cached profile {path} is unreadable; measuring it again.")
    return calibrate(model, quick)[0]
