"""The one tensor-byte counter: bytes the tensors of a model really hold, read off the tensors.

A tied tensor (input embedding = lm_head) counts once; tensors that are views into one buffer
(memlab's loaders read a checkpoint into one) each count; quantized and tensor-subclass weights
count the plain tensors behind them (packed values, scales, zeros); meta tensors count nothing.
"""

from __future__ import annotations

import torch
from torch import nn


def leaves(t: torch.Tensor):
    """Plain tensors behind a tensor (torchao's quantized tensors hold qdata, scale, zero_point)."""
    if type(t) in (torch.Tensor, nn.Parameter) or not hasattr(t, "__tensor_flatten__"):
        yield t
        return
    for name in t.__tensor_flatten__()[0]:
        yield from leaves(getattr(t, name))


def tensor_bytes(tensor_list) -> int:
    """Bytes of the distinct tensors in `tensor_list` (a shared or tied tensor counts once)."""
    seen, total = set(), 0
    flat = []
    for t in tensor_list:  # torch.ao's dynamic Linear keeps (weight, bias) as a tuple in its state dict
        flat.extend(t if isinstance(t, (tuple, list)) else [t])
    for t in flat:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            continue
        for leaf in leaves(t):
            # the tensor's own first byte, not its storage's: memlab's loaders put many tensors in
            # one buffer, and only the same bytes seen twice (a tied head) may count once
            key = (leaf.data_ptr(), leaf.dtype, tuple(leaf.shape)) if not leaf.is_quantized else id(leaf)
            if key not in seen:
                seen.add(key)
                total += leaf.numel() * leaf.element_size()
    return total


def model_bytes(model: nn.Module) -> int:
    """Resident bytes of a model's weights, read off its state dict (packed and subclass tensors too)."""
    return tensor_bytes(list(model.state_dict(keep_vars=True).values()) + list(model.buffers()))
