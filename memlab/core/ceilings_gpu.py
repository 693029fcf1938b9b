"""The GPU's ceilings, measured: HBM bandwidth, matmul FLOP/s per dtype, host<->device copies.

Lab 01 draws the GPU roofline from them, lab 02 puts the host->device copy on its bandwidth ladder
(disk -> RAM -> VRAM). `ceilings.measure_now` measures them when torch sees a CUDA GPU and stores
them in the same `Ceilings` record as the CPU's (0.0 = not measured: no CUDA GPU); this module holds
the host-device probe and the views of a record that the GPU needs.

1. HBM (VRAM) bandwidth: the STREAM kernels of `ceilings.stream` on the GPU (3 arrays of 256 MiB
   quick, 1 GiB full), the fastest of them (a roof must be an upper bound, as on the CPU).
2. Matmul FLOP/s (`ceilings.matmul_flops`, the `F.linear` layout) for fp32, bf16 and fp16 at
   n = 4096 and 8192, best size.
   fp32 is true fp32 unless the caller turned on TF32 (`torch.backends.cuda.matmul.allow_tf32`,
   off by default in torch): then the "fp32" roof is TF32's.
3. `host_device_copies`: the one host<->device probe of the course. A copy from *pinned* (page-locked)
   host memory is a single DMA; from *pageable* memory the driver first copies into a pinned staging
   buffer, so it is slower. Both directions, both kinds, best of N (64 MiB quick, 256 MiB full).

`on_device(ceil, "cuda")` gives a `Ceilings` whose memory and compute roofs are the GPU's, so the
roofline plot and `roofline.predict` work unchanged for the GPU.
"""

from __future__ import annotations

import dataclasses

import torch

from memlab.core import hardware
from memlab.core.errors import DeviceUnavailableError
from memlab.core.measure import repeat

GB = 1e9
GPU_ABSENT = ("no CUDA GPU here: the GPU ceilings (HBM bandwidth, GPU FLOP/s, host<->device copies) are not "
              "measured; on a machine with an NVIDIA GPU and a CUDA build of torch they are measured beside the CPU's")


def host_device_copies(num_bytes: int, repeats: int = 5, device: str = "cuda") -> dict[str, float]:
    """Host<->device copy GB/s (1e9 bytes/s) of a `num_bytes` uint8 buffer, pinned and pageable host
    memory, best of `repeats` after a warm-up: keys h2d_pinned, d2h_pinned, h2d_pageable, d2h_pageable.
    Needs CUDA (DeviceUnavailableError otherwise)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise DeviceUnavailableError(f"host<->device copies need a CUDA GPU (device={str(device)!r}): {GPU_ABSENT}")
    out = _copies(num_bytes, repeats, dev)
    torch.cuda.empty_cache()  # the buffers are freed: give their VRAM back for the labs' models
    return out


def _copies(num_bytes: int, repeats: int, dev: torch.device) -> dict[str, float]:
    gpu = torch.empty(num_bytes, dtype=torch.uint8, device=dev)
    gpu.fill_(2)
    out = {}
    for kind in ("pinned", "pageable"):
        host = torch.empty(num_bytes, dtype=torch.uint8, pin_memory=kind == "pinned")
        host.fill_(1)  # first touch outside the timed loop: pageable pages are allocated lazily
        out[f"h2d_{kind}"] = num_bytes / repeat(lambda: gpu.copy_(host), repeats, device=dev).min / GB
        out[f"d2h_{kind}"] = num_bytes / repeat(lambda: host.copy_(gpu), repeats, device=dev).min / GB
    return out


def on_device(ceil, device: str = "cuda"):
    """`ceil` with the GPU's roofs in place of the CPU's (memory: HBM; compute: GPU matmul per dtype),
    for `memory_wall.plots.roofline` and `roofline.predict`; `ceil` itself for device "cpu" (or
    "auto" without a GPU). Refuses a record that holds no GPU numbers."""
    kind = hardware.resolve_device(device).type if str(device).strip().lower() == hardware.AUTO \
        else torch.device(device).type
    if kind == "cpu":
        return ceil
    if kind != "cuda" or ceil.vram_gb_per_s <= 0:
        raise DeviceUnavailableError(f"these ceilings ({ceil.host}, {ceil.measured_at}) hold no {kind} roofs: "
                                     f"GPU ceilings are measured on CUDA only. {GPU_ABSENT}")
    v = ceil.vram_gb_per_s
    return dataclasses.replace(
        ceil, device=ceil.device, read_gb_per_s=v, copy_gb_per_s=v, scale_gb_per_s=v, add_gb_per_s=v,
        triad_gb_per_s=v, fp32_flop_per_s=ceil.gpu_fp32_flop_per_s, bf16_flop_per_s=ceil.gpu_bf16_flop_per_s,
        fp16_flop_per_s=ceil.gpu_fp16_flop_per_s or ceil.gpu_bf16_flop_per_s, matmul_sizes=(),
        read_kernels=(("vram", v),))


def rows(ceil) -> list[dict]:
    """The GPU numbers of a record as table rows ({"ceiling", "value", "unit"}); [] without a GPU."""
    if ceil.vram_gb_per_s <= 0:
        return []
    out = [{"ceiling": "HBM (VRAM) bandwidth, fastest STREAM kernel", "value": ceil.vram_gb_per_s, "unit": "GB/s"}]
    for dtype in ("fp32", "bf16", "fp16"):
        f = getattr(ceil, f"gpu_{dtype}_flop_per_s")
        if f > 0:
            out.append({"ceiling": f"GPU matmul {dtype}", "value": f / 1e12, "unit": "TFLOP/s"})
    for key, words in (("h2d_pinned", "host->device, pinned"), ("h2d_pageable", "host->device, pageable"),
                       ("d2h_pinned", "device->host, pinned"), ("d2h_pageable", "device->host, pageable")):
        out.append({"ceiling": words, "value": getattr(ceil, f"{key}_gb_per_s"), "unit": "GB/s"})
    return out
