"""memlab's own GEMV kernels in C, compiled once on the learner's machine (lab 01, lab 04, `core.kernels`).

Batch-1 decode multiplies one activation row by every weight matrix, so its speed is how fast a
kernel streams the weights. The kernels in `memlab/data/gemv.c` (fp32, bf16, int8, int4; open it)
and the whole decode step of `memlab/data/step.c` (`core.cstep`), which includes them, are compiled
here with `-march=native`, so each machine gets code for its own vector units, and loaded with ctypes.
`core.kernels` times them beside torch's and numpy's and keeps whichever streams fastest. They split rows over OpenMP threads, torch's count unless a call asks otherwise (loaded
after torch, the library binds to torch's own OpenMP runtime: one pool, no second set of threads
spinning). Without a C compiler (or where it fails) `reason()` says why and they are not offered.

`gemm` multiplies a few rows (a verify of k drafts) by one matrix, each weight row read once for all.

The library is cached per machine in the memlab cache (`kernels/gemv-<hash>.so`, the hash over the
source, the compiler and the CPU's flags), written whole or not at all.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from memlab.core.hardware import cpu_features
from memlab.core.models import cache_dir
from memlab.core.paths import data_path, write_atomic

_LIB: dict = {}  # the loaded library per process ({} until first use): loading twice would map it twice
GROUP = 32       # int4 group size of gemv_q4


def _compiler() -> str:
    return next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), "")


def _build(out: Path) -> str:
    """Compile step.c (which includes gemv.c) into `out`; "" on success, else the compiler's first error line."""
    cc, src = _compiler(), data_path("step.c")
    if not cc:
        return "no C compiler (cc, gcc or clang) on PATH"
    err = ""
    # macOS's clang has no OpenMP (then one thread), and some compilers refuse -march=native on arm64
    for flags in (["-march=native", "-fopenmp"], ["-march=native"], ["-fopenmp"], []):
        with tempfile.TemporaryDirectory() as tmp:
            so = Path(tmp) / "gemv.so"
            r = subprocess.run([cc, "-O3", "-ffast-math", "-shared", "-fPIC", *flags,
                                str(src), "-o", str(so), "-lm"], capture_output=True, text=True)
            if r.returncode == 0:
                write_atomic(out, so.read_bytes())
                return ""
            err = (r.stderr.strip().splitlines() or ["failed"])[0]
    return f"compiling memlab's C kernels failed: {err}"


def cache_dir_kernels() -> Path:
    """The folder of the compiled library (beside the kernel choices of `core.kernels`)."""
    return cache_dir() / "kernels"


def key() -> str:
    """What the compiled library depends on (the source, the compiler, the CPU's flags), hashed."""
    return hashlib.sha256(data_path("gemv.c").read_bytes() + data_path("step.c").read_bytes() + _compiler().encode()
                          + " ".join(cpu_features()).encode()).hexdigest()[:16]


def library():
    """The loaded kernels (ctypes.CDLL), compiled on first use; None where they cannot be built."""
    if "lib" in _LIB:
        return _LIB["lib"]
    path = cache_dir_kernels() / f"gemv-{key()}.so"
    _LIB["reason"] = "" if path.exists() else _build(path)
    lib = None
    if not _LIB["reason"]:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            _LIB["reason"] = f"memlab's C kernels would not load: {e}"
    if lib is not None:
        P, I = ctypes.c_void_p, ctypes.c_int
        for name, pointers in (("gemv_f32", 3), ("gemv_bf16", 3), ("gemv_q8", 4), ("gemv_q4", 4)):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [P] * pointers + [I, I, I], None
        lib.read_f32.argtypes, lib.read_f32.restype = [P, ctypes.c_int64, I], ctypes.c_float
        for name in ("gemm_f32", "gemm_bf16"):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [P, P, P, I, I, I, I], None
        lib.gemv_all.argtypes, lib.gemv_all.restype = [ctypes.POINTER(Mat), I, P, P, I, I], I
    _LIB["lib"] = lib
    return lib


class Mat(ctypes.Structure):
    """One matrix as step.c reads it: kind (KINDS), N x K, the weights or codes, and the bf16 scales
    (q8: one per row; q4: scale and zero per group of 32)."""
    _fields_ = [("kind", ctypes.c_int), ("N", ctypes.c_int), ("K", ctypes.c_int), ("w", ctypes.c_void_p),
                ("s", ctypes.c_void_p)]


KINDS = {"f32": 0, "bf16": 1, "q8": 2, "q4": 3}


def mat(held=None, shape: tuple | None = None) -> Mat:
    """A matrix held for kernel "c" (`held.Gemv` or `held.QGemv`) as the C struct; `shape` (N, K)
    alone: no weights (for a step that reads none)."""
    if shape is not None:
        return Mat(0, shape[0], shape[1], None, None)
    if getattr(held, "kind", None) in ("q8", "q4"):  # a QGemv: codes and scales
        codes, scales = list(held.buffers())
        return Mat(KINDS[held.kind], held.out_features, held.in_features, codes.data_ptr(), scales.data_ptr())
    if getattr(held, "kernel", None) != "c":
        raise ValueError(f"memlab's C code reads matrices held for kernel 'c', not {type(held).__name__}")
    kind = "f32" if held.weight.dtype == torch.float32 else "bf16"
    return Mat(KINDS[kind], held.out_features, held.in_features, held.weight.data_ptr(), None)


class Batch:
    """Matrices of one shape (held for kernel "c"), each applied to the same rows in turn, in one C call
    (one row: the GEMV; several: the float matrices' GEMM, each weight row read once for all rows)."""

    def __init__(self, held: list):
        self.held, self.mats = held, (Mat * len(held))(*[mat(h) for h in held])
        self.y = torch.empty(0)

    def __call__(self, x: torch.Tensor, threads: int = 0) -> torch.Tensor:
        x = x.reshape(-1, self.held[0].in_features).float().contiguous()  # (M, K)
        if self.y.shape != (len(x), self.held[0].out_features):
            self.y = torch.empty(len(x), self.held[0].out_features)
        if library().gemv_all(self.mats, len(self.held), x.data_ptr(), self.y.data_ptr(),
                              threads or torch.get_num_threads(), len(x)):
            raise MemoryError("memlab's C kernels could not allocate their scratch space")
        return self.y


def reason() -> str:
    """Why the C kernels are not available here ("" when they are)."""
    library()
    return _LIB["reason"]


def pack_q4(q: torch.Tensor) -> torch.Tensor:
    """(N, K) codes 0..15 -> gemv_q4's layout (N, K/2) uint8: in each group of 32, byte j holds code j
    in its low nibble and code j + 16 in its high nibble."""
    N, K = q.shape
    g = q.to(torch.uint8).view(N, K // GROUP, 2, GROUP // 2)  # (N, G, lo/hi, 16)
    return (g[:, :, 0] | (g[:, :, 1] << 4)).reshape(N, K // 2).contiguous()


def gemv(x: torch.Tensor, kind: str, *weights: torch.Tensor, out_features: int, threads: int = 0) -> torch.Tensor:
    """y (1, N) fp32 = x (K,) or (1, K) times the weights of `kind` ("f32", "bf16", "q8", "q4"):
    f32/bf16: W (N, K); q8: codes (N, K) int8, scales (N,) bf16; q4: pack_q4 codes, scales and zeros
    (N, K/32, 2) bf16. `threads`: OpenMP threads (0: torch's count now)."""
    lib = library()
    nt = threads or torch.get_num_threads()
    x = x.reshape(-1).float().contiguous()
    y = torch.empty(1, out_features)
    K = x.numel()
    if kind == "q4":
        lib.gemv_q4(x.data_ptr(), weights[0].data_ptr(), weights[1].data_ptr(), y.data_ptr(), out_features, K, nt)
    elif kind == "q8":
        lib.gemv_q8(x.data_ptr(), weights[0].data_ptr(), weights[1].data_ptr(), y.data_ptr(), out_features, K, nt)
    else:
        getattr(lib, f"gemv_{kind}")(x.data_ptr(), weights[0].data_ptr(), y.data_ptr(), out_features, K, nt)
    return y


def gemm(x: torch.Tensor, w: torch.Tensor, threads: int = 0) -> torch.Tensor:
    """y (M, N) fp32 = x (M, K) W^T for W (N, K) fp32 or bf16, each weight row read once for all M rows
    (gemv.c's kernel 6: meant for a few rows, a verify or a small batch; `threads` as for `gemv`)."""
    x = x.reshape(-1, w.shape[1]).float().contiguous()
    y = torch.empty(len(x), w.shape[0])
    fn = library().gemm_f32 if w.dtype == torch.float32 else library().gemm_bf16
    fn(x.data_ptr(), w.data_ptr(), y.data_ptr(), len(x), w.shape[0], w.shape[1], threads or torch.get_num_threads())
    return y


def read_sum(a: torch.Tensor, threads: int = 0) -> float:
    """The sum of the contiguous fp32 CPU tensor `a`, by the C read kernel (every byte read once)."""
    return library().read_f32(a.data_ptr(), a.numel(), threads or torch.get_num_threads())
