"""The hardware card: what machine a measurement was taken on (lab 00, every record).

Every result memlab returns carries a `HardwareCard` (or its `host` name), so numbers from two
machines can be compared honestly: CPU, cores, RAM, GPU and VRAM, the disk that holds the model
cache, and the versions of the libraries that did the work. Measured ceilings (bandwidth,
FLOP/s, disk) live in `ceilings.py`; this module only describes.

The CPU's model and extensions come from Linux's /proc/cpuinfo and its caches from /sys. Where
those are missing (macOS, Windows) the card says "unknown" and `describe()` prints what this
platform cannot measure (`limitations()`). The GPU is CUDA's, or Apple's `mps` where present.

torch is imported inside the functions that ask it (~2 s, ~300 MB that `memlab info` and `fits` need
not pay where torch cannot see a GPU, `torch_may_see_a_gpu()`): there the card reads torch's version
and default thread count without it; wherever torch is loaded already or could see a GPU, it asks torch.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from memlab.core import pagecache
from memlab.core.errors import DeviceUnavailableError
from memlab.core.models import cache_dir as default_cache_dir
from memlab.core.units import fmt_bytes

if TYPE_CHECKING:
    import torch


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
    gpu_name: str                # "" without a GPU; Apple's is "Apple GPU (mps)"
    gpu_vram_bytes: int          # 0 without a GPU (mps: the unified memory torch lets it use)
    cache_dir: str
    cache_disk_total_bytes: int
    cache_disk_free_bytes: int
    os: str
    python_version: str
    torch_version: str
    transformers_version: str
    measured_at: str             # ISO timestamp (UTC)
    last_level_cache_bytes: int = 0  # the CPU's largest cache (L3 on most; 0: unknown): what fits is not re-read from DRAM

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


CPUINFO = Path("/proc/cpuinfo")                          # Linux only
SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")  # Linux only
CPU_FLAGS_UNKNOWN = "CPU flags unknown on this platform (no /proc/cpuinfo): bf16/int8 speed-ups cannot be predicted"


def read_cpuinfo() -> str | None:
    """The text of /proc/cpuinfo, or None where there is none (macOS, Windows)."""
    try:
        return CPUINFO.read_text()
    except OSError:
        return None


def _cpu_model() -> str:
    for line in (read_cpuinfo() or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


# Extensions that change which dtype is fast on a CPU: bf16 runs at fp32 speed or better only with
# avx512_bf16 / amx_bf16 (x86) or bf16 (Arm); without them torch converts bf16 through slow paths.
_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
             "amx_bf16", "amx_fp16", "amx_int8", "asimd", "asimdhp", "asimddp", "bf16", "i8mm", "sve")


def cpu_features(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The extensions in `_FEATURES` this CPU reports (`cpuinfo`: the text of /proc/cpuinfo, read
    here when not given; empty off Linux)."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
        if cpuinfo is None:
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


def has_cuda() -> bool:
    """True when torch sees at least one CUDA device."""
    import torch
    return torch.cuda.is_available()


def has_mps() -> bool:
    """True when torch sees Apple's Metal GPU (`mps`, Apple-silicon Macs)."""
    import torch
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# Files a GPU driver torch can use puts on Linux: NVIDIA's (CUDA; Jetson's nvhost), AMD's ROCm
# (torch.cuda on ROCm builds), WSL's GPU bridge. Without any of them torch sees no GPU there.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/nvhost-ctrl-gpu", "/dev/kfd", "/dev/dxg")


def torch_may_see_a_gpu() -> bool:
    """False only where torch certainly sees no GPU: Linux without a CUDA, ROCm or WSL GPU driver.
    (macOS may have mps and Windows CUDA: there only torch can tell.)"""
    if platform.system() != "Linux":
        return True
    return any(Path(p).exists() for p in GPU_DRIVER_FILES)


def torch_default_num_threads() -> int:
    """The CPU threads torch starts with, without importing it: its own rule (ATen's
    intraop_default_num_threads): MKL_NUM_THREADS, else OMP_NUM_THREADS, else the physical cores."""
    for var in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def installed_version(package: str) -> str:
    """`package.__version__` if it is imported, else the version its installed metadata states."""
    module = sys.modules.get(package)
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def gpu_device() -> str:
    """The GPU a lab should use: "cuda", else "mps" on an Apple-silicon Mac, else "cpu"."""
    return "cuda" if has_cuda() else "mps" if has_mps() else "cpu"


AUTO = "auto"  # a lab's DEVICE default: the GPU when torch sees one (`gpu_device()`), else the CPU


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """`"auto"`, `"cpu"`, `"cuda"`, `"cuda:N"` or `"mps"` -> torch.device, with a clear error when it
    is not here. `"auto"` is `gpu_device()`: cuda when torch sees one, else mps, else cpu."""
    import torch
    if isinstance(device, str) and device.strip().lower() == AUTO:
        device = gpu_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(
            f"device={str(device)!r} is not a device: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
    if dev.type == "cuda" and not has_cuda():
        raise DeviceUnavailableError(
            f"device={str(device)!r} was asked for, but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}). Use device={gpu_device()!r}, or run on a machine with an "
            "NVIDIA GPU and a CUDA build of torch."
        )
    if dev.type == "mps" and not has_mps():
        raise DeviceUnavailableError(
            f"device={str(device)!r} was asked for, but torch sees no Apple GPU (mps) here. "
            f"Use device={gpu_device()!r}.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailableError(f"device={str(device)!r} is not supported: use 'auto', 'cpu', 'cuda' or 'mps'.")
    return dev


def cpu_or_cuda(device: str | torch.device = AUTO) -> str:
    """For code with CPU and CUDA kernels only: "cuda" where `device` resolves to CUDA, else "cpu"
    (so "auto" on a Mac keeps that code on the CPU instead of failing on mps)."""
    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


def last_level_cache_bytes(sysfs: str | Path | None = None) -> int:
    """Size of the CPU's highest-level cache from Linux sysfs (index*/level, index*/size); 0 elsewhere."""
    best = (0, 0)
    for index in Path(SYSFS_CACHE if sysfs is None else sysfs).glob("index*"):
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
    """Probe this machine now (cheap: no benchmarks) and return its card.

    The GPU and torch's threads come from torch where it is imported already or could see a GPU;
    elsewhere no GPU is certain and torch is not imported for the card (module docstring)."""

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the cache may not exist yet: report the disk it will live on
    disk = shutil.disk_usage(probe)
    vm = psutil.virtual_memory()
    gpu_name, gpu_vram, torch_threads = "", 0, torch_default_num_threads()
    if "torch" in sys.modules or torch_may_see_a_gpu():
        import torch
        torch_threads = torch.get_num_threads()
        if has_cuda():
            props = torch.cuda.get_device_properties(0)
            gpu_name, gpu_vram = props.name, int(props.total_memory)
        elif has_mps():  # unified memory: what torch's Metal allocator may use of the RAM
            recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
            gpu_name, gpu_vram = "Apple GPU (mps)", int(recommended()) if recommended else 0
    return HardwareCard(
        host=socket.gethostname(),
        cpu_model=_cpu_model(),
        cpu_features=" ".join(cpu_features()) or ("-" if read_cpuinfo() is not None else "unknown"),
        num_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        num_threads=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        torch_num_threads=torch_threads,
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        gpu_name=gpu_name,
        gpu_vram_bytes=gpu_vram,
        cache_dir=str(folder),
        cache_disk_total_bytes=int(disk.total),
        cache_disk_free_bytes=int(disk.free),
        os=f"{platform.system()} {platform.release()}",
        python_version=platform.python_version(),
        torch_version=installed_version("torch"),
        transformers_version=installed_version("transformers"),
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        last_level_cache_bytes=last_level_cache_bytes(),
    )


def limitations() -> list[str]:
    """What memlab cannot measure on this platform, one sentence each ([] on Linux)."""
    return pagecache.limitations() + ([] if read_cpuinfo() is not None else [CPU_FLAGS_UNKNOWN])


def describe(cache_dir: str | Path | None = None) -> HardwareCard:
    """Print this machine's card as a table, then what this platform cannot measure, and return it
    (the first cell of every lab)."""
    hw = card(cache_dir)
    print(hw)
    for note in limitations():
        print(f"note: {note}")
    return hw


def compile_reason(device: str | torch.device = "cpu") -> str:
    """Why `compile=True` cannot run here ("" when it can): on a CPU, torch.compile's inductor writes
    C++ and needs a compiler on PATH; on CUDA it needs Triton."""
    import torch
    if torch.device(device).type == "cuda":
        return "" if importlib.util.find_spec("triton") else "torch.compile on CUDA needs triton (pip install triton)"
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "torch.compile on a CPU needs a C++ compiler (c++, g++ or clang++) on PATH"
    return ""
