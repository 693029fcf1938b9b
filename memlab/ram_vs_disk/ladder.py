"""Lab 02's bandwidth ladder: how fast each hop toward the cores delivers bytes (disk -> RAM -> VRAM).

Rungs, slowest first, each a rate measured on this machine:
  disk -> RAM          a cold read of the checkpoint (`pagecache.measure_read_rate(cold=True)`)
  page cache -> process  a warm read of it: RAM answering (`cold=False`)
  RAM -> VRAM          with a CUDA GPU: host->device copies from pinned and from pageable memory
                       (`ceilings_gpu.host_device_copies`, the course's one host-device probe), over
                       PCIe or the board's link. Without a CUDA GPU this rung is absent, and
                       `Ladder.absent` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memlab.core import ceilings_gpu, hardware

GB = 1e9
PCIE_ABSENT = ("RAM -> VRAM rung absent: DEVICE resolved to {device!r} and torch sees no CUDA GPU, so there is no "
               "host->device link to measure. On a machine with an NVIDIA GPU this rung is the PCIe (or NVLink-C2C) "
               "copy, pinned and pageable.")
MPS_ABSENT = ("RAM -> VRAM rung absent: Apple's GPU (mps) shares the CPU's memory, so no host->device link "
              "separates them, and memlab measures host<->device copies on CUDA only.")


@dataclass(frozen=True, slots=True)
class Rung:
    """One hop of the ladder."""

    name: str             # e.g. "disk -> RAM (cold read)"
    bytes_per_s: float    # measured; nan where this platform cannot measure it
    probe: str            # the function that measured it


@dataclass(frozen=True, slots=True)
class Ladder:
    rungs: tuple          # tuple[Rung, ...], slowest hop first
    device: str           # what DEVICE resolved to
    absent: str = ""      # why the RAM -> VRAM rung is missing ("" when it is there)

    def rung(self, prefix: str) -> Rung | None:
        """The first rung whose name starts with `prefix` (None when there is none)."""
        return next((r for r in self.rungs if r.name.startswith(prefix)), None)

    def rows(self) -> list[dict]:
        """Table rows: rung, GB/s (1e9 bytes/s), probe."""
        return [{"rung": r.name, "GB/s": r.bytes_per_s / GB, "probe": r.probe} for r in self.rungs]


def ladder(cold_read, warm_read, device: str = "auto", copy_bytes: int = 64 * 2**20,
           repeats: int = 5) -> Ladder:
    """The ladder from lab 02's two reads (`pagecache.ReadRate`s of the checkpoint) and, where
    `device` resolves to a CUDA GPU, host->device copies of `copy_bytes` (best of `repeats`)."""
    dev = hardware.resolve_device(device)
    rungs = [Rung("disk -> RAM (cold read)", cold_read.read_bytes_per_s, "pagecache.measure_read_rate(cold=True)"),
             Rung("page cache -> process (warm read, RAM)", warm_read.read_bytes_per_s,
                  "pagecache.measure_read_rate(cold=False)")]
    if dev.type != "cuda":
        return Ladder(tuple(rungs), str(dev), MPS_ABSENT if dev.type == "mps" else PCIE_ABSENT.format(device=str(dev)))
    copies = ceilings_gpu.host_device_copies(copy_bytes, repeats, device=str(dev))
    rungs += [Rung("RAM -> VRAM, pageable (host->device copy)", copies["h2d_pageable"] * GB,
                   "ceilings_gpu.host_device_copies"),
              Rung("RAM -> VRAM, pinned (host->device copy)", copies["h2d_pinned"] * GB,
                   "ceilings_gpu.host_device_copies")]
    return Ladder(tuple(rungs), str(dev))


def plot(lad: Ladder):
    """Horizontal bars, one per rung, log scale; the title states the spread from slowest to fastest."""
    import matplotlib.pyplot as plt
    live = [r for r in lad.rungs if r.bytes_per_s == r.bytes_per_s and r.bytes_per_s > 0]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(lad.rungs) + 1.6))
    ax.barh([r.name for r in lad.rungs], [r.bytes_per_s / GB if r in live else 0 for r in lad.rungs],
            color=["tab:gray" if r.name.startswith("disk") else "tab:green" if "VRAM" in r.name else "tab:blue"
                   for r in lad.rungs])
    ax.set_xscale("log")
    ax.set_xlabel("GB/s (1e9 bytes per second), log scale")
    if len(live) >= 2:
        lo, hi = min(live, key=lambda r: r.bytes_per_s), max(live, key=lambda r: r.bytes_per_s)
        title = f"The fastest hop ({hi.name}) moves {hi.bytes_per_s / lo.bytes_per_s:.0f}x the bytes per second of the slowest ({lo.name})"
    else:
        title = "Bandwidth ladder (fewer than two rungs measured here)"
    ax.set_title(title + ("" if not lad.absent else "\n(no RAM -> VRAM rung: no CUDA GPU)"), fontsize=9)
    fig.tight_layout()
    return fig


def ratio(lad: Ladder, faster: str, slower: str) -> float:
    """bytes_per_s of rung `faster` / rung `slower` (prefixes of their names); nan when either is missing."""
    a, b = lad.rung(faster), lad.rung(slower)
    return a.bytes_per_s / b.bytes_per_s if a and b and b.bytes_per_s > 0 else math.nan
