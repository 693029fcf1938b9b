"""This machine's ceilings, measured: memory bandwidth, matmul FLOP/s, disk and host<->device copy.

Lab 01 draws its roofline from these numbers rather than from a spec sheet.

1. Memory bandwidth, STREAM-style, over arrays far larger than the last-level cache, with all
   of torch's threads, best of N (bytes counted as STREAM does, write-allocate not counted), and
   the read alone by up to three codes (`read_rates`: torch's sum, a C loop, numpy's BLAS), the fastest kept:
   read  sum(a)         1 array
   copy  a = b          2 arrays moved      scale a = q*b       2 arrays
   add   c = a + b      3 arrays            triad a = b + q*c   3 arrays
2. Matmul FLOP/s per dtype in the `F.linear` layout (y = x W^T, 2*M*N*K FLOPs per call), best
   sustained size; every dtype has a time budget (bf16 on a CPU without native bf16, e.g. AVX2
   only, ran ~100x slower than fp32: the budget keeps that from taking minutes, and the number
   shows it; with AMX it ran 6x *faster* than fp32). `hardware.cpu_features()` says which.
3. Disk read of a scratch file, cold (pages evicted with posix_fadvise DONTNEED, eviction
   checked with mincore) and warm (read again from the page cache). Where the platform cannot
   evict (no posix_fadvise: macOS) the cold rate is nan and `disk_cold_reason` says why.
4. With a CUDA GPU: HBM bandwidth, GPU matmul FLOP/s per dtype and host->device / device->host
   copies, pinned and pageable (`ceilings_gpu.py`; 0.0 in the record without one).

`measure()` caches its record as JSON per machine in the memlab cache folder (unless the machine
was busy: other processes used the cores meanwhile, `measure.busy_reason`); `refresh=True` measures again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from memlab.core import ckernels, models, pagecache
from memlab.core.guard import available_bytes
from memlab.core.hardware import last_level_cache_bytes
from memlab.core.measure import busy_reason, cpu_snapshot, repeat, sync, torch_threads
from memlab.core.paths import write_atomic
from memlab.core.ceilings_gpu import GPU_ABSENT, host_device_copies, on_device  # noqa: F401  (the GPU's, re-exported)
from memlab.core.ceilings_gpu import rows as gpu_rows  # noqa: F401

GB = 1e9
PARK_S = 0.2  # seconds for numpy BLAS threads to stop spinning after a call (OpenBLAS parks them after ~0.1 s)


@dataclass(frozen=True, slots=True)
class Ceilings:
    """Measured peaks of one machine (bandwidths in GB/s = 1e9 bytes/s, FLOP/s in base units)."""

    host: str
    device: str                   # "cpu" or the GPU's name
    mode: str                     # "quick" or "full"
    num_threads: int              # torch threads used for the CPU measurements
    array_bytes: int              # size of each STREAM array
    copy_gb_per_s: float
    scale_gb_per_s: float
    add_gb_per_s: float
    triad_gb_per_s: float
    fp32_flop_per_s: float        # best sustained F.linear over the sizes tried; 0.0 = not measured
    bf16_flop_per_s: float
    fp16_flop_per_s: float
    matmul_sizes: tuple           # (dtype, n, flop_per_s) for every size measured
    disk_file_bytes: int
    disk_cold_gb_per_s: float
    disk_warm_gb_per_s: float
    disk_cold_resident_fraction: float  # page-cache residency after eviction (~0 if it worked)
    vram_gb_per_s: float          # GPU HBM: fastest STREAM kernel on the GPU; 0.0 without a CUDA GPU
    gpu_fp32_flop_per_s: float
    gpu_bf16_flop_per_s: float
    h2d_pinned_gb_per_s: float
    h2d_pageable_gb_per_s: float
    d2h_pinned_gb_per_s: float
    d2h_pageable_gb_per_s: float
    load_avg_1min: float          # os.getloadavg() before measuring: > num cores means shared, noisy
    measure_s: float              # how long the measurement took
    measured_at: str
    read_gb_per_s: float = 0.0    # sum of one array: reads only, as a decode step reads its weights
    disk_cold_reason: str = ""    # why disk_cold_gb_per_s is nan ("" when it was measured)
    gpu_fp16_flop_per_s: float = 0.0  # GPU fp16 matmul; 0.0 without a GPU (or in older records)
    read_kernels: tuple = ()      # (kernel, GB/s) of every read kernel; read_gb_per_s is the fastest

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The memory roof of every lab, bytes per second: the fastest of the five kernels (read,
        copy, scale, add, triad), i.e. the most bytes per second this machine was seen to move.

        A roof must be an upper bound. A decode step only reads its weights, so the read kernels
        (`read_rates`: torch's sum and a BLAS GEMV over the same bytes) are the natural ones, but
        which kernel runs fastest depends on the CPU: on an AMX Xeon the read
        kernel (a reduction) measured below triad, and a decode beat a triad-only bound on a CPU
        whose L3 holds most of the model (see `roofline.predict(cached_bytes=...)`)."""
        return max(self.read_gb_per_s, self.copy_gb_per_s, self.scale_gb_per_s, self.add_gb_per_s,
                   self.triad_gb_per_s) * GB

    def flop_per_s(self, dtype: str = "fp32") -> float:
        """The compute roof for one dtype on the CPU."""
        return {"fp32": self.fp32_flop_per_s, "bf16": self.bf16_flop_per_s,
                "fp16": self.fp16_flop_per_s}[dtype]

    def roof(self, dtype: str = "fp32", device: str = "cpu") -> tuple[float, float]:
        """(peak FLOP/s, bandwidth bytes/s) of `device` ("cpu" or "cuda[:N]"); 0.0 = not measured."""
        if str(device).startswith("cuda"):
            # older records did not time fp16 on the GPU: tensor cores run it at the bf16 rate
            flops = {"fp32": self.gpu_fp32_flop_per_s, "bf16": self.gpu_bf16_flop_per_s,
                     "fp16": self.gpu_fp16_flop_per_s or self.gpu_bf16_flop_per_s}[dtype]
            return flops, self.vram_gb_per_s * GB
        return self.flop_per_s(dtype), self.bandwidth_bytes_per_s


def read_rates(a: torch.Tensor, repeats: int = 5) -> dict[str, float]:
    """GB/s at which each read kernel reads the fp32 array `a` once (best of `repeats`).

    A roof must be the fastest rate anything reaches, so the read is timed by more than one code:
    "sum" (torch's reduction); on a CPU, "c" (memlab's C loop of 32 partial sums, `ckernels.read_sum`,
    where a C compiler is found) and, with numpy, "blas" (numpy's BLAS computing ones @ A over the
    same bytes seen as a matrix A; a GEMV, as a decode step's). On a Zen 4 EPYC the BLAS read ran
    faster than the sum, and a roof from the sum alone was beaten by decode. numpy's BLAS threads spin
    after each call and slow what torch runs next: it is timed last, with a pause before and after."""
    here = read_kernel_names() if a.device.type == "cpu" else {"sum"}
    out = {"sum": a.numel() * 4 / repeat(lambda: a.sum(), repeats, device=a.device).min / GB}
    if "c" in here:
        out["c"] = a.numel() * 4 / repeat(lambda: ckernels.read_sum(a), repeats).min / GB
    if "blas" in here:
        import numpy as np
        cols = 65536 if a.numel() >= 16 * 65536 else 1024
        m = a[:a.numel() // cols * cols].view(-1, cols).numpy()
        ones = np.ones(m.shape[0], dtype=np.float32)
        time.sleep(PARK_S)
        with torch_threads(1):  # as decode runs it (`kernels`): beside two torch threads it read up to 1.7x slower
            out["blas"] = m.size * 4 / repeat(lambda: ones @ m, repeats).min / GB
        time.sleep(PARK_S)
    return out


def read_kernel_names() -> set[str]:
    """The read kernels `read_rates` times on this machine's CPU."""
    from importlib.util import find_spec
    have = {"sum": True, "c": ckernels.library() is not None, "blas": find_spec("numpy") is not None}
    return {name for name, ok in have.items() if ok}


def stream(array_bytes: int, repeats: int = 5, device: str = "cpu", read_only: bool = False) -> dict[str, float]:
    """read and STREAM copy/scale/add/triad in GB/s over fp32 arrays of `array_bytes` each.

    Best of `repeats` after one warm-up (as STREAM reports). Bytes counted: read 1 array, copy and
    scale 2, add and triad 3. "read" is the fastest of `read_rates` ("read:sum", "read:blas" each).
    `read_only`: the read kernels alone, on one array (a third of the memory).
    """
    dev = torch.device(device)
    n = array_bytes // 4
    a = torch.ones(n, device=dev)  # first touch here, not inside the timed loop
    reads = {f"read:{k}": v for k, v in read_rates(a, repeats).items()}
    reads["read"] = max(reads.values())
    if read_only:
        return reads
    b = torch.full((n,), 2.0, device=dev)
    c = torch.zeros(n, device=dev)
    q = 3.0
    kernels = {
        "copy": (lambda: a.copy_(b), 2),
        "scale": (lambda: torch.mul(b, q, out=a), 2),
        "add": (lambda: torch.add(a, b, out=c), 3),
        "triad": (lambda: torch.add(b, c, alpha=q, out=a), 3),
    }
    return reads | {name: arrays * n * 4 / repeat(fn, repeats, device=dev).min / GB
                    for name, (fn, arrays) in kernels.items()}


def matmul_flops(dtype: torch.dtype, sizes: tuple, budget_s: float,
                 device: str = "cpu") -> list[tuple[int, float]]:
    """FLOP/s of F.linear(x (n, n), W (n, n)) per size, 2*n^3 FLOPs a call, within `budget_s`.

    Stops early when the budget is spent; a size whose single call would overrun it is skipped.
    """
    dev = torch.device(device)
    if dev.type == "cuda":  # cuBLAS's first call creates its handle: keep that out of the estimate
        F.linear(torch.ones(8, 8, device=dev, dtype=dtype), torch.ones(8, 8, device=dev, dtype=dtype))
        sync(dev)
    out, t_start = [], time.perf_counter()
    for n in sizes:
        x = torch.randn(n, n, device=dev).to(dtype)
        w = torch.randn(n, n, device=dev).to(dtype)
        t0 = time.perf_counter()
        F.linear(x, w)  # warm-up, also the first estimate
        if dev.type == "cuda":
            sync(dev)
        first_s = time.perf_counter() - t0
        left_s = budget_s - (time.perf_counter() - t_start)
        repeats = int(min(10, left_s / max(first_s, 1e-6)))
        if repeats < 1:
            if not out:  # nothing measured yet: report the single slow call rather than nothing
                out.append((n, 2 * n**3 / first_s))
            break
        best = repeat(lambda: F.linear(x, w), repeats, device=dev).min
        out.append((n, 2 * n**3 / best))
    return out


def _cache_file(cache_dir: Path, mode: str) -> Path:
    return Path(cache_dir) / "ceilings" / f"{socket.gethostname()}-{mode}.json"


def measure(quick: bool = False, refresh: bool = False, cache_dir: Path | str | None = None,
            disk: bool = True) -> Ceilings:
    """This machine's Ceilings: cached per machine unless `refresh`; quick ~seconds, full < 1 min."""

    folder = Path(cache_dir) if cache_dir is not None else models.cache_dir()
    mode = "quick" if quick else "full"
    path = _cache_file(folder, mode)
    if not refresh:
        for candidate in (path, _cache_file(folder, "full")):  # a full record serves a quick ask
            if candidate.exists():
                try:
                    cached = json.loads(candidate.read_text())
                    gpu_missing = torch.cuda.is_available() and not cached.get("vram_gb_per_s")
                    kernels = {row[0] for row in cached.get("read_kernels", ())}
                    if cached.get("read_gb_per_s") and kernels >= read_kernel_names() and not gpu_missing:  # else (older record): measured again
                        return from_dict(cached)
                except (ValueError, TypeError, KeyError):
                    pass  # unreadable or from an older version: measure again
    start = cpu_snapshot()
    record = measure_now(quick=quick, disk_folder=folder if disk else None)
    reason = busy_reason(start)
    if reason:  # a busy machine's ceilings are used now, but not kept for later runs
        print(f"ceilings: {reason}: used now, not cached")
    else:
        write_atomic(path, json.dumps(dataclasses.asdict(record), indent=1))
    return record


def array_size(quick: bool = False) -> int:
    """Bytes per STREAM array: 128 MiB (quick) or 512 MiB, and at least twice the last-level cache
    (server CPUs have hundreds of MiB of L3: smaller arrays would measure the cache, not DRAM),
    but at most an eighth of the memory available now (triad holds three arrays; a container's
    limit counts, as on Binder)."""
    want = max((128 if quick else 512) * 2**20, 2 * last_level_cache_bytes())
    return int(min(want, available_bytes() // 8)) // 4 * 4


def measure_now(quick: bool = False, disk_folder: Path | None = None) -> Ceilings:
    """Measure every ceiling now (no cache)."""
    t0 = time.perf_counter()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    array_bytes = array_size(quick)
    bw = stream(array_bytes, repeats=3 if quick else 10)
    sizes = (1024,) if quick else (512, 1024, 2048)
    budget_s = 0.5 if quick else 4.0
    mm = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        mm[name] = matmul_flops(dtype, sizes, budget_s)
    cold = warm = resident = 0.0
    file_bytes = 0
    if disk_folder is not None:
        file_bytes = (128 if quick else 512) * 2**20
        Path(disk_folder).mkdir(parents=True, exist_ok=True)
        cold, warm, resident = pagecache.disk_read(Path(disk_folder), file_bytes)
    gpu = dict(vram=0.0, fp32=0.0, bf16=0.0, fp16=0.0, h2d_pinned=0.0, h2d_pageable=0.0,
               d2h_pinned=0.0, d2h_pageable=0.0)
    device = "cpu"
    if torch.cuda.is_available():  # the GPU's roofs: see ceilings_gpu.py
        device = torch.cuda.get_device_name(0)
        gpu["vram"] = max(stream((256 if quick else 1024) * 2**20, 5, "cuda").values())
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            gpu[name] = max((f for _, f in matmul_flops(dtype, (4096, 8192), budget_s, "cuda")), default=0.0)
        torch.cuda.empty_cache()
        gpu.update(host_device_copies((64 if quick else 256) * 2**20))
    return Ceilings(
        host=socket.gethostname(), device=device, mode="quick" if quick else "full",
        num_threads=torch.get_num_threads(), array_bytes=array_bytes,
        copy_gb_per_s=bw["copy"], scale_gb_per_s=bw["scale"], add_gb_per_s=bw["add"],
        triad_gb_per_s=bw["triad"], read_gb_per_s=bw["read"],
        read_kernels=tuple((k.removeprefix("read:"), v) for k, v in bw.items() if k.startswith("read:")),
        fp32_flop_per_s=max((f for _, f in mm["fp32"]), default=0.0),
        bf16_flop_per_s=max((f for _, f in mm["bf16"]), default=0.0),
        fp16_flop_per_s=max((f for _, f in mm["fp16"]), default=0.0),
        matmul_sizes=tuple((name, n, f) for name, rows in mm.items() for n, f in rows),
        disk_file_bytes=file_bytes, disk_cold_gb_per_s=cold, disk_warm_gb_per_s=warm,
        disk_cold_resident_fraction=resident, vram_gb_per_s=gpu["vram"],
        disk_cold_reason="" if disk_folder is None or pagecache.supports_eviction() else pagecache.EVICTION_UNSUPPORTED,
        gpu_fp32_flop_per_s=gpu["fp32"], gpu_bf16_flop_per_s=gpu["bf16"], gpu_fp16_flop_per_s=gpu["fp16"],
        h2d_pinned_gb_per_s=gpu["h2d_pinned"], h2d_pageable_gb_per_s=gpu["h2d_pageable"],
        d2h_pinned_gb_per_s=gpu["d2h_pinned"], d2h_pageable_gb_per_s=gpu["d2h_pageable"],
        load_avg_1min=load_avg, measure_s=time.perf_counter() - t0,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def from_dict(d: dict) -> Ceilings:
    """A Ceilings record from its JSON form (lists back to tuples)."""
    d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(Ceilings)}}
    d["matmul_sizes"] = tuple(tuple(row) for row in d["matmul_sizes"])
    d["read_kernels"] = tuple(tuple(row) for row in d.get("read_kernels", ()))
    return Ceilings(**d)
