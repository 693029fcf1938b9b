"""The same bytes, read by different code: each decode matmul's kernel, chosen by measurement (labs 01, 04).

At batch 1 a decode step multiplies one activation row by every weight matrix (y = x W^T, W (N, K)),
so its time is W's bytes over the rate the kernel streams them. Which code streams fastest depends
on the CPU: on a Zen 4 EPYC torch's `F.linear` read fp32 weights at a third of the rate OpenBLAS
reached on the same matrices, while on an AMX Xeon `F.linear` was near the roof. So the fast path
measures the candidates on this machine, on the model's own matrices, and keeps the fastest:

1. "linear":   F.linear(x, W), W stored as the model has it (N, K): torch's default.
2. "matmul-t": x @ W_t, W stored transposed (K, N): another torch kernel over the same bytes.
3. "blas":     numpy's BLAS (OpenBLAS in numpy's wheels) on W_t; fp32 on a CPU only.
4. "c":        memlab's own C kernels (`core.ckernels`, `memlab/data/gemv.c`), compiled on this
               machine: fp32, bf16, and int8/int4 codes (a quantized module offers them through
               `gemv_weights()`). One row at a time; a prefill (several rows) goes to torch's kernel.
Quantized matrices also run torch's own kernel for memlab's Int8Linear / Int4Linear ("aten").
"blas" and "c" keep their own thread pools, and torch's idle OpenMP threads spin on the same cores
for a while after each parallel op (measured in a step: 4 tok/s instead of 30), so they are only
timed, and only run, with torch on one thread.

Every candidate is timed on all of a role's matrices (the 30 layers' q/k/v, say: past the caches, as
in a step) once with torch's threads as set and once with one torch thread; the fastest whole
configuration (one thread count, the fastest kernel per role under it) wins. Timings are cached per
machine in the memlab cache (`kernels/<host>.json`), unless the machine was busy (`busy()`);
`refresh=True` measures again.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from memlab.core import ckernels
from memlab.core.errors import InvalidArgumentError
from memlab.core.measure import repeat
from memlab.core.paths import write_atomic

FLOAT_KERNELS = ("linear", "matmul-t", "blas", "c")
OWN_POOL = ("blas", "c")  # kernels with their own threads: torch runs one thread beside them


@dataclass(frozen=True, slots=True)
class KernelTime:
    """One candidate kernel on all matrices of one role, timed."""

    role: str                 # "qkv", "o", "gate_up", "down", "head"
    weights: str              # "float32", "bfloat16", "Int8Linear", "Int4Linear"
    shape: tuple              # (N, K) of one matrix
    num_matrices: int
    kernel: str               # "linear", "matmul-t", "blas", "aten"
    torch_threads: int        # torch's threads while it ran
    seconds: float            # all num_matrices applied to one row, median
    bytes: int                # what they read
    gb_per_s: float           # bytes / seconds / 1e9


@dataclass(frozen=True, slots=True)
class KernelChoice:
    """The kernel each role runs and the torch threads a step runs with, from `times`."""

    weights: str
    torch_threads: int
    kernels: tuple            # (role, kernel) pairs
    matmul_s: float           # one token's matmuls under this choice (sum of the chosen times)
    times: tuple              # every KernelTime measured (or read from the cache)
    from_cache: bool

    def kernel(self, role: str) -> str:
        return dict(self.kernels)[role]

    def rows(self) -> list[dict]:
        """One row per role and candidate: the table labs 01 and 04 show."""
        chosen = dict(self.kernels)
        return [dict(role=t.role, shape=f"{t.shape[0]}x{t.shape[1]} x{t.num_matrices}", kernel=t.kernel,
                     torch_threads=t.torch_threads, MB=round(t.bytes / 1e6, 1), ms=round(t.seconds * 1e3, 2),
                     GB_per_s=round(t.gb_per_s, 1),
                     chosen=chosen.get(t.role) == t.kernel and t.torch_threads == self.torch_threads)
                for t in self.times]


def reason(kernel: str, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """Why `kernel` cannot run matrices of `dtype` on `device` ("" when it can; dtype None: a
    quantized module, which "c" runs when it offers `gemv_weights()`)."""
    if kernel == "blas":
        if device.type != "cpu" or dtype != torch.float32:
            return "numpy's BLAS runs fp32 on a CPU only"
        try:
            import numpy  # noqa: F401
        except ImportError:
            return "numpy is not installed"
    if kernel == "c":
        if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16, None):
            return "memlab's C kernels run fp32, bf16, int8 and int4 on a CPU only"
        return ckernels.reason()
    return ""


class Gemv(nn.Module):
    """y = x W^T through one kernel, W held in that kernel's layout (its only copy)."""

    def __init__(self, weight: torch.Tensor, kernel: str):
        super().__init__()
        if kernel not in FLOAT_KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}: one of {', '.join(FLOAT_KERNELS)}")
        self.kernel, (self.out_features, self.in_features) = kernel, weight.shape
        held = weight.contiguous() if kernel in ("linear", "c") else weight.t().contiguous()
        self.register_buffer("weight", held)  # (N, K) for "linear" and "c", (K, N) otherwise
        self.array = held.numpy() if kernel == "blas" else None  # the same bytes, seen by numpy

    def weight_view(self) -> torch.Tensor:
        """The (N, K) matrix over the held bytes, for the model's own module to keep using."""
        return self.weight if self.kernel in ("linear", "c") else self.weight.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "c" and x.numel() == self.in_features:  # one row: memlab's C kernel
            kind = "f32" if self.weight.dtype == torch.float32 else "bf16"
            y = ckernels.gemv(x, kind, self.weight, out_features=self.out_features)
            return y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        if self.kernel in ("linear", "c"):
            return F.linear(x, self.weight)
        if self.kernel == "matmul-t":
            return x @ self.weight
        x2 = x.reshape(-1, self.in_features).contiguous().numpy()  # (M, K)
        return torch.from_numpy(x2 @ self.array).view(*x.shape[:-1], self.out_features)


class QGemv(nn.Module):
    """A quantized module's codes through memlab's C kernel for one row; several rows (a prefill) go
    through the module's own kernel. Its buffers are the bytes a decode step reads."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.kind, *held = module.gemv_weights()  # ("q8", codes, scales) or ("q4", codes, scales_zeros)
        self.out_features, self.in_features = module.out_features, module.in_features
        for i, t in enumerate(held):
            self.register_buffer(f"w{i}", t)
        self.rows = (module,)  # a tuple: the module's own bytes are not this one's (not a submodule)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() != self.in_features:
            return self.rows[0].forward(x)
        y = ckernels.gemv(x, self.kind, *self.buffers(), out_features=self.out_features)
        return y.to(x.dtype).view(*x.shape[:-1], self.out_features)


def fixed(roles: dict[str, list], kernel: str) -> tuple[list, int]:
    """(role, kernel) pairs running `kernel` on every float role ("aten" on quantized ones), and the
    torch threads it needs (1 for "blas", else 0: as set)."""
    pairs = []
    for role, mats in roles.items():
        if isinstance(mats[0], torch.Tensor):
            why = reason(kernel, mats[0].device, mats[0].dtype)
            if why:
                raise InvalidArgumentError(f"kernels={kernel!r}: {why}")
            pairs.append((role, kernel))
        else:
            pairs.append((role, "c" if kernel == "c" and "c" in candidates(mats[0]) else "aten"))
    return pairs, int(kernel in OWN_POOL)


def bind(mats: list, kernel: str, modules: list[list[nn.Linear]]) -> list[Gemv]:
    """Hold each matrix of `mats` in `kernel`'s layout; the nn.Linear modules stacked row-wise in it
    (`modules[i]` for `mats[i]`) are pointed at views of the held bytes, so the model keeps working
    and no byte is held twice."""
    if not isinstance(mats[0], torch.Tensor):
        return [QGemv(m) for m in mats]  # quantized: its codes through "c"; the model is not touched
    held = []
    for w, mods in zip(mats, modules):
        g = Gemv(w, kernel)
        start, view = 0, g.weight_view()
        for m in mods:
            n = m.weight.shape[0]
            m.weight.data = view[start:start + n]
            start += n
        held.append(g)
    return held


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch threads (0 or the current count: unchanged)."""
    before = torch.get_num_threads()
    if not n or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bytes(m) -> int:
    tensors = [m] if isinstance(m, torch.Tensor) else list(m.state_dict().values())
    return sum(t.numel() * t.element_size() for t in tensors)


@torch.inference_mode()
def time_role(role: str, mats: list, kernel: str, threads: int, repeats: int = 5) -> KernelTime:
    """Time `kernel` over every matrix of `mats` (tensors (N, K), or quantized modules: "aten")."""
    first = mats[0]
    if not isinstance(first, torch.Tensor):
        ops = [m.forward for m in mats] if kernel == "aten" else [QGemv(m).forward for m in mats]
        weights, shape = type(first).__name__, (first.out_features, first.in_features)
    else:
        ops = [Gemv(w, kernel).forward for w in mats]
        weights, shape = str(first.dtype).removeprefix("torch."), tuple(first.shape)
    dev = first.device if isinstance(first, torch.Tensor) else next(iter(first.buffers())).device
    dtype = first.dtype if isinstance(first, torch.Tensor) else torch.float32
    x = torch.randn(1, 1, shape[1], dtype=dtype, device=dev)

    def run():
        for op in ops:
            op(x)
    with torch_threads(threads):
        s = repeat(run, repeats, device=dev).median
    nbytes = sum(_bytes(m if kernel == "aten" or isinstance(m, torch.Tensor) else QGemv(m)) for m in mats)
    return KernelTime(role, weights, shape, len(mats), kernel, threads, s, nbytes, nbytes / s / 1e9)


def candidates(first) -> list[str]:
    """The kernels that can run a role whose first matrix is `first`."""
    if not isinstance(first, torch.Tensor):
        dev = next(iter(first.buffers())).device
        offers = getattr(first, "gemv_weights", lambda: None)() is not None
        return ["aten"] + (["c"] if offers and not reason("c", dev) else [])
    return [k for k in FLOAT_KERNELS if not reason(k, first.device, first.dtype)]


def thread_counts(device: torch.device) -> list[int]:
    """Torch thread counts to try: as set, and one (a CPU only)."""
    now = torch.get_num_threads()
    return [now] if device.type != "cpu" or now == 1 else [now, 1]


def _key(role: str, mats: list, kernel: str, threads: int, torch_only: bool) -> str:
    first = mats[0]
    shape = tuple(first.shape) if isinstance(first, torch.Tensor) else (first.out_features, first.in_features)
    what = str(first.dtype) if isinstance(first, torch.Tensor) else type(first).__name__
    dev = first.device.type if isinstance(first, torch.Tensor) else next(iter(first.buffers())).device.type
    return f"{dev}|{what}|{role}|{shape[0]}x{shape[1]}x{len(mats)}|{kernel}|{threads}|{torch_only}"


def busy() -> bool:
    """True when other work shares the cores now (1-minute load average above the core count): a
    choice timed then is used, but not kept for later runs."""
    return hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1)


def _cache_file():
    from memlab.core.models import cache_dir
    return cache_dir() / "kernels" / f"{socket.gethostname()}.json"


def choose(roles: dict[str, list], *, torch_only: bool = False, refresh: bool = False,
           repeats: int = 5) -> KernelChoice:
    """The fastest configuration for the matrices of each role (role -> its matrices, all one shape).

    `torch_only`: leave out "blas" (a compiled step cannot call numpy). Cached per machine."""
    path = _cache_file()
    try:
        cache = {} if refresh or not path.exists() else json.loads(path.read_text())
    except ValueError:
        cache = {}  # unreadable: measure again
    first = next(iter(roles.values()))[0]
    dev = first.device if isinstance(first, torch.Tensor) else next(iter(first.buffers())).device
    times, hits = [], 0
    for threads in thread_counts(dev):
        for role, mats in roles.items():
            for kernel in candidates(mats[0]):
                if kernel in OWN_POOL and (torch_only or threads != 1):  # see the module docstring
                    continue
                key = _key(role, mats, kernel, threads, torch_only)
                if key in cache:
                    hits += 1
                    row = cache[key]
                    times.append(KernelTime(**{**row, "shape": tuple(row["shape"])}))
                    continue
                t = time_role(role, mats, kernel, threads, repeats)
                cache[key] = asdict(t)
                times.append(t)
    if hits < len(times) and not busy():
        write_atomic(path, json.dumps(cache, indent=1))
    best = None
    for threads in {t.torch_threads for t in times}:
        pick = {role: min((t for t in times if t.role == role and t.torch_threads == threads), key=lambda t: t.seconds)
                for role in roles}
        total = sum(t.seconds for t in pick.values())
        if best is None or total < best[1]:
            best = (threads, total, pick)
    threads, total, pick = best
    return KernelChoice(weights=", ".join(sorted({t.weights for t in times})), torch_threads=threads,
                        kernels=tuple((r, t.kernel) for r, t in pick.items()), matmul_s=total,
                        times=tuple(times), from_cache=hits == len(times))
