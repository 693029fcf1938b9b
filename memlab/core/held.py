"""Weight matrices held for one decode kernel, and run by it (`core.kernels` chooses which; labs 01, 04).

`fuse` stacks the matrices that read one input (q/k/v, gate/up) into one, as `FastLlama` holds them;
`Gemv` holds a float matrix in its kernel's layout (its only copy: (N, K) for "linear" and "c", (K, N)
for "matmul-t" and "blas", numpy's view for "blas"); `QGemv` hands a quantized module's codes to
memlab's C kernel; `bind` holds a role's matrices in a kernel's layout and points the model's own
modules at views of the held bytes, so the model keeps working and no byte is held twice.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from memlab.core import ckernels
from memlab.core.errors import InvalidArgumentError

FLOAT_KERNELS = ("linear", "matmul-t", "blas", "c")
MAX_GEMM_ROWS = 16  # kernel "c" runs up to this many rows in C (a verify of k drafts); more (a prefill): torch's


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
        if self.kernel == "c" and x.numel() <= MAX_GEMM_ROWS * self.in_features:  # a few rows (a verify)
            return ckernels.gemm(x, self.weight).to(x.dtype).view(*x.shape[:-1], self.out_features)
        if self.kernel == "blas":  # numpy's own threads
            x2 = x.reshape(-1, self.in_features).contiguous().numpy()  # (M, K)
            return torch.from_numpy(x2 @ self.array).view(*x.shape[:-1], self.out_features)
        return x @ self.weight if self.kernel == "matmul-t" else F.linear(x, self.weight)


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


def wrap(mat, kernel: str):
    """One matrix ready to run `kernel`: a Gemv (a float tensor), a QGemv ("c" on a quantized module),
    or the quantized module itself ("aten")."""
    if isinstance(mat, torch.Tensor):
        return Gemv(mat, kernel)
    return mat if kernel == "aten" else QGemv(mat)


def bind(mats: list, kernel: str, modules: list[list[nn.Linear]]) -> list:
    """Hold each matrix of `mats` in `kernel`'s layout; the nn.Linear modules stacked row-wise in a
    float matrix (`modules[i]` for `mats[i]`) are pointed at views of the held bytes, so the model
    keeps working and no byte is held twice. Quantized modules are wrapped, not touched."""
    held = [wrap(w, kernel) for w in mats]
    for g, mods in zip(held, modules):
        if isinstance(g, Gemv):
            point(mods, g.weight_view())
    return held


def point(mods: list[nn.Linear], matrix: torch.Tensor) -> None:
    """Make the weights of `mods` views of consecutive row blocks of `matrix` (their stacking), so the
    bytes they held before are freed with their last reference."""
    start = 0
    for m in mods:
        n = m.weight.shape[0]
        m.weight.data = matrix[start:start + n]
        start += n


def fuse(mods: list, linear: Callable | None):
    """Stack the weights of `mods` (nn.Linear, same input) into one matrix; for fp32/bf16 the modules'
    weights are rebound as views of it (the model keeps working over the same bytes); with `linear`,
    the stacked matrix goes through it (e.g. a quantizer) and the modules are left alone. Returns
    (matrix or module, bias): biases (Qwen2's q/k/v) are stacked alike, handed to `linear`'s module
    with its matrix (None returned), or returned for the step to add."""
    if any(type(m) is not nn.Linear for m in mods):
        raise InvalidArgumentError("fast path: pass the fp32/bf16 model; quantize through FastLlama(linear=...)")
    fused = torch.cat([m.weight.data for m in mods])
    bias = None
    if any(m.bias is not None for m in mods):
        bias = torch.cat([m.bias.data if m.bias is not None else m.weight.new_zeros(m.weight.shape[0]) for m in mods])
    if linear is not None:  # the stacked matrix as one nn.Linear, for the constructor
        lin = nn.Linear(fused.shape[1], fused.shape[0], bias=bias is not None, device="meta")
        lin.weight = nn.Parameter(fused, requires_grad=False)
        if bias is not None:
            lin.bias = nn.Parameter(bias, requires_grad=False)
        return linear(lin), None
    point(mods, fused)
    return fused, bias
