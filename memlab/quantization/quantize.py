"""Fewer bits per weight: group-wise quantization and the variants lab 04 compares.

The reference (read it in the lab): split each weight row into groups of G values and store
    symmetric   q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1),  s = max|w| / ((2^b - 1) / 2)
                w' = s * q
    asymmetric  q = clamp(round((w - m) / s), 0, 2^b - 1),  s = (max w - min w) / (2^b - 1), m = min w
                w' = s * q + m                            (GGUF's Q4_1 is this with G = 32)
Effective bits per weight = b + (bits of s and m) / G; G = None means one group per row.

Variants, in the order the lab shows them (`VARIANTS`; a variant that cannot run here is
reported with its reason, never dropped). A quantized matrix is packed for the device its fp32
weight is on (cpu or cuda): build a variant from a model already on its device, never move it after.
  1. fp32, bf16, fp16   torch dtypes; bf16/fp16 matmuls are emulated on CPUs without native support
  2. int8               memlab: per-row int8 weights, dequantized inside aten's fused GEMM
                        (`_weight_int8pack_mm`, CPU and CUDA), activations in bf16
  3. int4               memlab: G=32 asymmetric int4, two per byte, aten's fused kernel
                        (`_weight_int4pack_mm_for_cpu`; on CUDA tinygemm's `_weight_int4pack_mm`,
                        the one gpt-fast uses), activations in bf16;
     int4-fast          the same plus an int8 lm_head (int8/int4 keep the tied fp32 lm_head)
  4. ao-int8, ao-int4   torchao weight-only, G=32 (ao-int4 keeps each 4-bit value in a whole byte)
  5. ao-int4-packed     torchao's packed int4 (needs CUDA or the mslk package)
  6. dyn-int8           torch.ao dynamic quantization: int8 weights *and* activations, per tensor
  7. ao-dyn-int8        torchao dynamic int8 activations and per-row int8 weights
  8. gguf-q4_1          the original Q4_1 file run by llama.cpp (`llama-cpp-python`, optional)
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from memlab.core import ckernels, hardware, tensors
from memlab.core.errors import InvalidArgumentError

GROUP_SIZE = 32


# --- the reference quantizer ------------------------------------------------------------------

def quantize_groupwise(w: torch.Tensor, bits: int = 8, group_size: int | None = GROUP_SIZE,
                       symmetric: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w (N, K) -> q (N, K) int8, scale (N, K/G), zero (N, K/G) with w ~= scale * q + zero."""
    N, K = w.shape
    G = group_size or K
    if K % G:
        raise InvalidArgumentError(f"row length {K} is not a multiple of the group size {G}")
    g = w.detach().float().reshape(N, K // G, G)              # (N, groups, G)
    eps = torch.finfo(torch.float32).eps
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        scale = (g.abs().amax(-1) / ((qmax - qmin) / 2)).clamp(min=eps)
        zero = torch.zeros_like(scale)
    else:
        qmin, qmax = 0, 2 ** bits - 1
        lo, hi = g.amin(-1), g.amax(-1)
        scale, zero = ((hi - lo) / qmax).clamp(min=eps), lo
    q = torch.clamp(torch.round((g - zero[..., None]) / scale[..., None]), qmin, qmax)
    return q.to(torch.int8 if symmetric or bits < 8 else torch.uint8).reshape(N, K), scale, zero


def dequantize_groupwise(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """w' = scale * q + zero, group by group; returns (N, K) fp32."""
    N, K = q.shape
    G = K // scale.shape[1]
    w = q.float().reshape(N, -1, G) * scale[..., None] + zero[..., None]
    return w.reshape(N, K)


# --- memlab's fused kernels: the weight stays small all the way into the matmul ---------------

class Int8Linear(nn.Module):
    """y = x W'^T with W' = s * q per row; aten dequantizes inside the GEMM, no fp32 W' is made."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale, _ = quantize_groupwise(linear.weight, bits=8, group_size=None, symmetric=True)
        self.out_features, self.in_features = q.shape
        self.register_buffer("qweight", q.contiguous())                        # (N, K) int8
        self.register_buffer("scale", scale[:, 0].to(torch.bfloat16))          # (N,)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)                # (M, K)
        y = torch.ops.aten._weight_int8pack_mm(x2, self.qweight, self.scale)   # (M, N) bf16
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def gemv_weights(self):
        """The same codes and scales for memlab's C kernel (`core.kernels`); None with a bias."""
        return ("q8", self.qweight, self.scale) if self.bias is None and self.qweight.device.type == "cpu" else None


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """(N, K) codes 0..15 -> the layout aten's int4 kernel reads on q's device, K/2 bytes per row.
    CPU: int32 codes in, (N, K/2) uint8 out. CUDA (tinygemm): two codes per byte, the even column
    in the high nibble, tiled for the tensor cores in tiles of 16 x inner_k_tiles columns."""
    q32 = q.to(torch.int32)
    if q.device.type == "cpu":
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q32, 1)
    if q.device.type == "cuda":
        tiles = next((t for t in (8, 4, 2) if q.shape[1] % (16 * t) == 0), None)
        if tiles is None:
            raise InvalidArgumentError(f"int4 on CUDA needs a row length divisible by 32, got {q.shape[1]}")
        return torch.ops.aten._convert_weight_to_int4pack((q32[:, ::2] << 4 | q32[:, 1::2]).to(torch.uint8), tiles)
    raise InvalidArgumentError(f"memlab's int4 kernel runs on cpu or cuda, not {q.device.type}")


class Int4Linear(nn.Module):
    """G=32 asymmetric int4, packed two per byte; aten's kernel computes w' = (q - 8) * s + z."""

    def __init__(self, linear: nn.Linear, group_size: int = GROUP_SIZE):
        super().__init__()
        q, scale, lo = quantize_groupwise(linear.weight, bits=4, group_size=group_size, symmetric=False)
        self.out_features, self.in_features = q.shape
        self.group_size = group_size
        # aten's zero point is the value of the middle code 8: z = m + 8 s
        sz = torch.stack([scale, lo + 8 * scale], dim=-1).transpose(0, 1)      # (K/G, N, 2)
        self.register_buffer("qweight", pack_int4(q))                          # N x K/2 bytes
        self.register_buffer("scales_and_zeros", sz.to(torch.bfloat16).contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        # the same codes in memlab's C layout (`core.ckernels.gemv_q4`): a decode step reads these or
        # aten's, never both (not buffers: the module's bytes stay aten's)
        self.c_layout = None
        if group_size == ckernels.GROUP and q.device.type == "cpu" and self.bias is None:
            self.c_layout = (ckernels.pack_q4(q), sz.transpose(0, 1).to(torch.bfloat16).contiguous())  # (N, K/2), (N, K/G, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        mm = (torch.ops.aten._weight_int4pack_mm_for_cpu if self.qweight.device.type == "cpu"
              else torch.ops.aten._weight_int4pack_mm)
        y = mm(x2, self.qweight, self.group_size, self.scales_and_zeros)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def gemv_weights(self):
        """The codes, scales and zeros in memlab's C layout (`core.kernels`); None where it has none."""
        return None if self.c_layout is None else ("q4", *self.c_layout)


def replace_linears(model: nn.Module, make: Callable[[nn.Linear], nn.Module],
                    lm_head: Callable[[nn.Linear], nn.Module] | None = None) -> nn.Module:
    """Swap every nn.Linear for make(linear); lm_head (untied from the embedding) for lm_head(linear)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                full = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, (lm_head or make)(child) if full == "lm_head" else make(child))
    return model


def _keep(linear: nn.Linear) -> nn.Linear:
    return linear


def memlab_int8(model: nn.Module) -> nn.Module:
    """int8 for every decoder-layer matrix; lm_head stays the tied fp32 embedding, so logits keep
    fp32 resolution (the fused kernels return bf16: logits near 25 round to steps of 0.125)."""
    return replace_linears(model, Int8Linear, lm_head=_keep)


def memlab_int4(model: nn.Module) -> nn.Module:
    """int4 (G=32) for every decoder-layer matrix, fp32 lm_head as in memlab_int8. In the bundled
    GGUF every layer matrix is Q4_1 (G=32, asymmetric), so this grid reproduces them exactly."""
    return replace_linears(model, Int4Linear, lm_head=_keep)


def memlab_int4_fast(model: nn.Module) -> nn.Module:
    """memlab_int4 plus an int8 lm_head (the biggest matrix: 49152 x 576), the way llama.cpp keeps
    the output matrix at 8 bits; faster, but its logits come back in bf16."""
    return replace_linears(model, Int4Linear, lm_head=Int8Linear)


# --- the variants --------------------------------------------------------------------------------

def _torchao(config_fn):
    def apply(model):
        from torchao.quantization import quantize_
        quantize_(model, config_fn())
        return model
    return apply


def torchao_int8():
    from torchao.quantization import Int8WeightOnlyConfig
    from torchao.quantization.granularity import PerGroup
    return Int8WeightOnlyConfig(granularity=PerGroup(GROUP_SIZE))


def torchao_int4():
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup
    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(GROUP_SIZE))


def torchao_int4_packed():
    from torchao.quantization import Int4WeightOnlyConfig
    return Int4WeightOnlyConfig(group_size=GROUP_SIZE)


def torchao_dyn_int8():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig
    return Int8DynamicActivationInt8WeightConfig()


def _dyn_int8(model):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.ao.quantization is deprecated": still runs in 2.13
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)  # model: build's copy


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    library: str             # "torch", "memlab", "torchao", "llama.cpp"
    nominal_bits: float      # bits of one stored weight value, scales not counted
    load_dtype: str          # checkpoint dtype it starts from
    quantize: Callable[[nn.Module], nn.Module] | None
    requires: str            # importable module it needs ("" for none)
    description: str


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("fp32", "torch", 32, "fp32", None, "", "the converted checkpoint as it is"),
    Variant("bf16", "torch", 16, "bf16", None, "", "bfloat16 weights and activations"),
    Variant("fp16", "torch", 16, "fp16", None, "", "float16 weights and activations"),
    Variant("int8", "memlab", 8, "fp32", memlab_int8, "",
            "per-row int8 layer weights, fused aten int8 GEMM, bf16 activations, fp32 lm_head"),
    Variant("int4", "memlab", 4, "fp32", memlab_int4, "",
            f"G={GROUP_SIZE} asymmetric int4 (Q4_1 grid) layer weights, fused aten int4 GEMM, fp32 lm_head"),
    Variant("int4-fast", "memlab", 4, "fp32", memlab_int4_fast, "",
            "int4 layers as in int4, plus an int8 lm_head (bf16 logits)"),
    Variant("ao-int8", "torchao", 8, "fp32", _torchao(torchao_int8), "torchao",
            f"torchao Int8WeightOnlyConfig, PerGroup({GROUP_SIZE})"),
    Variant("ao-int4", "torchao", 4, "fp32", _torchao(torchao_int4), "torchao",
            f"torchao IntxWeightOnlyConfig(int4), PerGroup({GROUP_SIZE}); one 4-bit value per byte"),
    Variant("ao-int4-packed", "torchao", 4, "fp32", _torchao(torchao_int4_packed), "torchao",
            f"torchao Int4WeightOnlyConfig(group_size={GROUP_SIZE}), packed two per byte"),
    Variant("dyn-int8", "torch", 8, "fp32", _dyn_int8, "",
            "torch.ao quantize_dynamic: int8 weights and activations, one scale per tensor"),
    Variant("ao-dyn-int8", "torchao", 8, "fp32", _torchao(torchao_dyn_int8), "torchao",
            "torchao Int8DynamicActivationInt8WeightConfig"),
    Variant("gguf-q4_1", "llama.cpp", 4, "", None, "llama_cpp",
            "the bundled Q4_1 GGUF file run by llama.cpp (llama-cpp-python)"),
]}


def missing_reason(variant: Variant, device: str | torch.device = "cpu") -> str:
    """Why `variant` cannot run here on `device` ("" when it can start)."""
    if variant.requires and importlib.util.find_spec(variant.requires) is None:
        if variant.requires == "llama_cpp":
            return ("llama-cpp-python is not installed: it has no wheel for this platform and compiles "
                    "llama.cpp from source (minutes); `pip install llama-cpp-python`")
        return f"{variant.requires} is not installed (`pip install memlab[quant]`)"
    if variant.name == "dyn-int8" and torch.device(device).type != "cpu":
        return f"torch.ao's dynamic quantization has CPU kernels only, not {torch.device(device).type}"
    return ""


def build(base: nn.Module, variant: Variant) -> nn.Module:
    """A quantized copy of `base` (fp32); `base` itself is left unchanged.

    The copy shares base's tensors (deepcopy with every parameter and buffer in its memo) and the
    variant swaps in new modules for what it quantizes, so building it never holds a second fp32
    model in memory: what stays fp32 (embedding, norms) is base's own tensors, read-only here."""
    if variant.quantize is None:
        return base
    shared = {id(t): t for t in [*base.parameters(), *base.buffers()]}
    with torch.no_grad():
        return variant.quantize(copy.deepcopy(base, shared)).eval()


def emulation_note(dtype: str) -> str:
    """Say when half-precision matmuls have no native CPU support here (they run, slowly)."""
    if dtype not in ("bf16", "fp16"):
        return ""
    # torch's capability string stops at "AVX512": read the CPU's own flags instead
    have = hardware.cpu_features()
    if not have or hardware.native_dtype(dtype, have):  # no flags to read: say nothing
        return ""
    return (f"{dtype} matmuls are emulated on this CPU ({' '.join(have)}; none of "
            f"{', '.join(hardware.NATIVE_DTYPE_FEATURES[dtype])}): prefill is slow")
