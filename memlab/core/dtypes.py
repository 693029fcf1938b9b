"""The one dtype table: memlab's precision names, their torch dtypes, their bytes per element.

    name   torch dtype       bytes per weight
    fp32   torch.float32     4
    bf16   torch.bfloat16    2
    fp16   torch.float16     2
    int8   (quantized)       1     memlab.quantization packs these; no plain torch dtype loads them
    int4   (quantized)       0.5   (the code alone: a format's scales, zeros and unquantized parts are
                                    counted by `quantformat`, tensor by tensor)

A safetensors header names its dtypes in its own letters (F32, BF16, ...): `SAFETENSORS` maps them.
The tables hold torch's names for its dtypes (`torch.float32` is `"float32"`), so reading them
imports no torch: the CLI lists the precisions in its help without paying torch's ~2 s import.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

from memlab.core.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

TORCH = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # memlab name -> torch.<dtype>
BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
SAFETENSORS = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
               "I64": "int64", "I32": "int32", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def check_loadable(name: str) -> str:
    """`name` itself when memlab loads weights as it (fp32, bf16, fp16); else one clear error."""
    if name not in TORCH:
        raise InvalidArgumentError(f"dtype={name!r} is not one of {', '.join(TORCH)}.")
    return name


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype memlab loads weights as for `name` (fp32, bf16, fp16)."""
    check_loadable(name)
    import torch  # here, not at the top: see the module docstring
    return getattr(torch, TORCH[name])


def safetensors_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors header's dtype letters ("F32", "BF16", ...)."""
    import torch  # here, not at the top: see the module docstring
    return getattr(torch, SAFETENSORS[code])


def dtype_bytes(dtype: str | float | torch.dtype) -> float:
    """Bytes per element: a name from the table, a torch dtype, or a number taken as it is."""
    if isinstance(dtype, str):
        if dtype not in BYTES:
            raise InvalidArgumentError(f"unknown dtype {dtype!r}; use one of {', '.join(BYTES)} or a number")
        return BYTES[dtype]
    if isinstance(dtype, numbers.Real):
        return float(dtype)
    return dtype.itemsize  # a torch.dtype
