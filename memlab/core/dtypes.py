"""The one dtype table: memlab's precision names, their torch dtypes, their bytes per element.

    name   torch dtype       bytes per weight
    fp32   torch.float32     4
    bf16   torch.bfloat16    2
    fp16   torch.float16     2
    int8   (quantized)       1     memlab.quantization packs these; no plain torch dtype loads them
    int4   (quantized)       0.5

A safetensors header names its dtypes in its own letters (F32, BF16, ...): `SAFETENSORS` maps them.
"""

from __future__ import annotations

import torch

from memlab.core.errors import InvalidArgumentError

TORCH = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
SAFETENSORS = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
               "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype memlab loads weights as for `name` (fp32, bf16, fp16)."""
    if name not in TORCH:
        raise InvalidArgumentError(f"dtype={name!r} is not one of {', '.join(TORCH)}.")
    return TORCH[name]


def dtype_bytes(dtype: str | float | torch.dtype) -> float:
    """Bytes per element: a name from the table, a torch dtype, or a number taken as it is."""
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    if isinstance(dtype, str):
        if dtype not in BYTES:
            raise InvalidArgumentError(f"unknown dtype {dtype!r}; use one of {', '.join(BYTES)} or a number")
        return BYTES[dtype]
    return float(dtype)
