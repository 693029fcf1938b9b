"""The hardware card: what machine a measurement was taken on (lab 00, every record).

Every result memlab returns carries a `HardwareCard` (or its `host` name), so numbers from two
machines can be compared honestly: CPU, cores, RAM, GPU and VRAM, the disk that holds the model
cache, and the versions of the libraries that did the work. Measured ceilings (bandwidth,
FLOP/s, disk) live in `ceilings.py`; this module only describes.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import socket
from dataclasses import dataclass, fields
from pathlib import Path

import psutil
import torch

from memlab.core.errors import DeviceUnavailableError
from memlab.core.units import fmt_bytes


@dataclass(frozen=True, slots=True)
class HardwareCard:
    host: str                    # hostname, so every row says where it was measured
    cpu_model: str
    cpu_features: str            # the SIMD/matrix extensions that decide bf16/int8 speed, e.g. "avx2 amx_bf16"
    num_cores: int               # physical cores
    num_threads: int             # logical CPUs
    torch_num_threads: int       # threads torch's CPU kernels use
    ram_total_bytes: int
    ram_available_bytes: int
    gpu_name: str                # "" without a GPU
    gpu_vram_bytes: int          # 0 without a GPU
    cache_dir: str
    cache_disk_total_bytes: int
    cache_disk_free_bytes: int
    os: str
    python_version: str
    torch_version: str
    transformers_version: str
    measured_at: str             # ISO timestamp (UTC)
    last_level_cache_bytes: int = 0  # the CPU's largest cache (L3 on most); 0 where the OS does not say.
    #                              A model that (nearly) fits in it is not read from DRAM every token.

    def rows(self) -> list[tuple[str, str]]:
        """Human-readable (label, value) pairs, byte fields formatted."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_bytes"):
                value = fmt_bytes(value) if value else "-"
            out.append((f.name.removesuffix("_bytes"), str(value) if value != "" else "-"))
        return out

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Extensions that change which dtype is fast on a CPU: bf16 runs at fp32 speed or better only with
# avx512_bf16 / amx_bf16 (x86) or bf16 (Arm); without them torch converts bf16 through slow paths.
_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
             "amx_bf16", "amx_fp16", "amx_int8", "asimd", "asimdhp", "asimddp", "bf16", "i8mm", "sve")


def cpu_features(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The extensions in `_FEATURES` this CPU reports (`cpuinfo`: the text of /proc/cpuinfo, read
    here when not given; empty off Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return tuple(f for f in _FEATURES if f in flags)


# the extensions that give a CPU native arithmetic in each half-precision dtype (x86, then Arm)
NATIVE_DTYPE_FEATURES = {"bf16": ("avx512_bf16", "amx_bf16", "bf16"),
                         "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}


def native_dtype(dtype: str, features: tuple[str, ...] | None = None) -> bool:
    """True when the CPU computes `dtype` natively (fp32 always); else torch takes slow fallbacks."""
    have = cpu_features() if features is None else features
    return dtype not in NATIVE_DTYPE_FEATURES or any(f in have for f in NATIVE_DTYPE_FEATURES[dtype])


def native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic instructions (so bf16 matmuls need no slow fallback)."""
    return native_dtype("bf16")


def has_cuda() -> bool:
    """True when torch sees at least one CUDA device."""
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """`"cpu"`, `"cuda"` or `"cuda:N"` -> torch.device, with a clear error when it is not here."""
    dev = torch.device(device)
    if dev.type == "cuda" and not has_cuda():
        raise DeviceUnavailableError(
            f"device={str(device)!r} was asked for, but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}). Use device='cpu', or run on a machine with an NVIDIA GPU "
            "and a CUDA build of torch."
        )
    if dev.type not in ("cpu", "cuda"):
        raise DeviceUnavailableError(f"device={str(device)!r} is not supported: use 'cpu' or 'cuda'.")
    return dev


def last_level_cache_bytes(sysfs: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """Size of the CPU's highest-level cache from Linux sysfs (index*/level, index*/size); 0 elsewhere."""
    best = (0, 0)
    for index in Path(sysfs).glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        size = int(text.rstrip("KkMmGg")) * scale
        best = max(best, (level, size))
    return best[1]


def card(cache_dir: str | Path | None = None) -> HardwareCard:
    """Probe this machine now (cheap: no benchmarks) and return its card."""
    import transformers

    from memlab.core.models import cache_dir as default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the cache may not exist yet: report the disk it will live on
    disk = shutil.disk_usage(probe)
    vm = psutil.virtual_memory()
    gpu_name, gpu_vram = "", 0
    if has_cuda():
        props = torch.cuda.get_device_properties(0)
        gpu_name, gpu_vram = props.name, int(props.total_memory)
    return HardwareCard(
        host=socket.gethostname(),
        cpu_model=_cpu_model(),
        cpu_features=" ".join(cpu_features()) or "-",
        num_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        num_threads=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        torch_num_threads=torch.get_num_threads(),
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        gpu_name=gpu_name,
        gpu_vram_bytes=gpu_vram,
        cache_dir=str(folder),
        cache_disk_total_bytes=int(disk.total),
        cache_disk_free_bytes=int(disk.free),
        os=f"{platform.system()} {platform.release()}",
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        last_level_cache_bytes=last_level_cache_bytes(),
    )


def describe(cache_dir: str | Path | None = None) -> HardwareCard:
    """Print this machine's card as a table and return it (the first cell of every lab)."""
    hw = card(cache_dir)
    print(hw)
    return hw
