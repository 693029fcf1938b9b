"""The memory guard: predict what a load will need, and refuse before it starts (lab 02).

Running out of RAM mid-load kills the kernel (or the machine); it is better to add up the bytes
first. Footprint of one strategy, for `B` sequences of up to `T` tokens:
    needed = resident weights + KV cache(T, B) + activations(T, B) + fixed overhead
    resident weights: resident -> all weights; mmap -> 0 (file pages the kernel may drop and
      re-read, slowly); paged -> embedding, norm, head + two decoder layers (one in use, one
      prefetched)
    activations: `footprint.activation_bytes` (the fits table's formula; scores only for eager attention)
The fixed overhead covers allocator slack and the CPU copy of the logits; it is a rough figure,
stated in `OVERHEAD_BYTES`, not a measurement. An explicit `force=True` skips the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch

from memlab.core import dtypes, footprint
from memlab.core.errors import WontFitError
from memlab.core.units import MiB, fmt_bytes

OVERHEAD_BYTES = 64 * MiB   # allocator slack, logits, small buffers (an estimate, not measured)


@dataclass(frozen=True, slots=True)
class FootprintPrediction:
    """What a load is predicted to need on `device`, against what is free there now."""

    strategy: str
    device: str
    dtype: str
    context_tokens: int
    batch_size: int
    weights_bytes: int            # all weights, wherever they live
    resident_weights_bytes: int   # the part this strategy keeps in memory
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    needed_bytes: int             # resident weights + KV + activations + overhead
    available_bytes: int          # free RAM (psutil "available") or free VRAM (cudaMemGetInfo)
    fits: bool


def layer_bytes(config: Any, dtype: str = "fp32") -> int:
    """Bytes of one decoder layer: (all weights - embedding - head - final norm) / L."""
    g = footprint.config_value
    d, V, L = g(config, "hidden_size"), g(config, "vocab_size"), g(config, "num_hidden_layers")
    outside = V * d * (1 if g(config, "tie_word_embeddings", False) else 2) + d
    return int((footprint.num_params(config) - outside) * dtypes.dtype_bytes(dtype) / L)


# (limit, usage, stat, the stat line of reclaimable file cache): cgroup v2, then v1
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
                 "inactive_file"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                 "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"))


def own_cgroup_files() -> tuple:
    """CGROUP_FILES of the memory cgroup this process itself is in (from /proc/self/cgroup), where that is
    not the root: a limit set on it (`memlab limited` runs a child in one) binds this process too."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return ()
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if path.strip() in ("", "/"):
            continue
        if "memory" in controllers.split(","):
            base = f"/sys/fs/cgroup/memory{path.strip()}"
            found.append((f"{base}/memory.limit_in_bytes", f"{base}/memory.usage_in_bytes", f"{base}/memory.stat",
                          "total_inactive_file"))
        elif controllers == "":
            for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                found.append((f"{root}{path.strip()}/memory.max", f"{root}{path.strip()}/memory.current",
                              f"{root}{path.strip()}/memory.stat", "inactive_file"))
    return tuple(found)


def _free_under(limit_file: str, usage_file: str, stat_file: str, key: str) -> int | None:
    try:
        limit = Path(limit_file).read_text().strip()
        if limit == "max" or int(limit) >= 2**60:
            return None
        usage = int(Path(usage_file).read_text())
        stat = dict(line.split() for line in Path(stat_file).read_text().splitlines() if line.count(" ") == 1)
    except (OSError, ValueError):
        return None
    return max(int(limit) - usage + int(stat.get(key, 0)), 0)


def cgroup_free_bytes() -> int | None:
    """Memory left under the tightest memory cgroup limit this process is under (its own cgroup's, e.g.
    `memlab limited`; the container's: Binder's 2 GB, Docker, Kubernetes): limit - usage + reclaimable
    file cache; None where no limit is set (or no cgroup files exist: macOS)."""
    found = [_free_under(*files) for files in own_cgroup_files() + CGROUP_FILES]
    found = [free for free in found if free is not None]
    return min(found) if found else None


def available_bytes(device: str = "cpu") -> int:
    """Memory free for a new load: RAM 'available' on the CPU (less where a container's memory
    limit leaves less: what the machine has is not what this process may use), free VRAM on a GPU."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    free, limited = int(psutil.virtual_memory().available), cgroup_free_bytes()
    return free if limited is None else min(free, limited)


def predict(config: Any, strategy: str = "resident", dtype: str = "fp32", context_tokens: int = 2048,
            batch_size: int = 1, device: str = "cpu", available: int | None = None) -> FootprintPrediction:
    """Add up the bytes a load with `strategy` needs (formula in the module docstring)."""
    g = footprint.config_value
    weights = footprint.weights_bytes(config, dtype)
    if strategy == "mmap":
        resident = 0
    elif strategy.startswith("paged"):
        resident = weights - g(config, "num_hidden_layers") * layer_bytes(config, dtype) + 2 * layer_bytes(config, dtype)
    else:
        resident = weights
    kv = footprint.kv_cache_bytes(config, context_tokens, batch_size, dtype)
    acts = footprint.activation_bytes(config, context_tokens, batch_size, dtype, footprint.attention_kind(config))
    needed = resident + kv + acts + OVERHEAD_BYTES
    free = available_bytes(device) if available is None else int(available)
    return FootprintPrediction(strategy, str(device), dtype, context_tokens, batch_size, weights, resident,
                               kv, acts, OVERHEAD_BYTES, needed, free, needed <= free)


def check(prediction: FootprintPrediction, force: bool = False) -> FootprintPrediction:
    """Raise WontFitError when the prediction does not fit (unless `force`); return it otherwise."""
    p = prediction
    if p.fits or force:
        return p
    where = "free VRAM" if p.device.startswith("cuda") else "available RAM"
    hint = ("Try strategy='mmap' (weights stay in the file and page in on demand) or "
            "strategy='paged' (one decoder layer in memory at a time)"
            if p.strategy not in ("mmap",) and not p.strategy.startswith("paged")
            else "Try a shorter context (context_tokens), a smaller batch, or a smaller dtype")
    raise WontFitError(
        f"Predicted footprint {fmt_bytes(p.needed_bytes)} for strategy {p.strategy!r} "
        f"({fmt_bytes(p.resident_weights_bytes)} weights kept in memory of {fmt_bytes(p.weights_bytes)}, "
        f"{fmt_bytes(p.kv_cache_bytes)} KV cache for {p.batch_size} x {p.context_tokens} tokens, "
        f"{fmt_bytes(p.activation_bytes + p.overhead_bytes)} activations and overhead) exceeds the "
        f"{fmt_bytes(p.available_bytes)} of {where}. {hint}; or pass force=True (CLI: --force) "
        f"to load anyway.")
