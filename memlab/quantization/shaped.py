"""A shape-true model held in int4 from the start: the fits table's promise, measured (lab 04 section 8).

The fits table says a 7-8B model in int4 needs about 5 GB and decodes at bandwidth / bytes. Writing its
fp32 file first (32 GB), loading it and quantizing would need 32 GB of disk and far more RAM than the
int4 model itself, so a shape-true model (`core.shapetrue`: the published architecture at its real
size, random weights: its text is noise, its timing is real) is built here matrix by matrix:
  1. a meta-device skeleton of the published config (no memory), the embedding, norms and RoPE made real
  2. `FastLlama(linear=, lm_head=)` with constructors that draw each (fused) matrix as transformers'
     init would, normal(0, initializer_range), one matrix at a time, and hand it to memlab's own
     quantizers (`Int4Linear` for every layer matrix, `Int8Linear` for the lm_head: int4-fast's recipe),
     so at most one fp32 matrix exists at a time
`plan` says beforehand what it holds and reads, and whether this machine has the RAM (`guard.available_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.core import fastpath, footprint, guard, shapetrue
from memlab.core.errors import UnsupportedArchitectureError, WontFitError
from memlab.quantization.quantize import Int4Linear, Int8Linear

# the RAM a build asks over what it holds: one fp32 matrix drawn, its quantizer's temporaries and int32 codes, the
# allocator's freed pages (Llama-3.1-8B on an AVX-512 Xeon: 11.35 GB held, a peak RSS of 18.0 GB: 1.59x)
ROOM = 1.7


@dataclass(frozen=True, slots=True)
class Plan:
    """What the int4 shape-true model of `name` holds in RAM and reads per decode step, and whether it fits."""

    name: str
    layer_weights: int   # values in the decoder layers' matrices
    head_weights: int    # values in the lm_head
    read_bytes: int      # one decode step: int4 codes + bf16 scale and zero per group of 32, int8 head + a bf16 scale per row, norms
    held_bytes: int      # in RAM: the codes in aten's layout and in memlab's C layout, the head, the fp32 embedding
    needed_bytes: int    # held_bytes x ROOM
    available_bytes: int
    fits: bool


def _config(name: str):
    c = shapetrue.hf_config(shapetrue.published(name))
    if c.model_type == "qwen2" or getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        raise UnsupportedArchitectureError(f"{name}: its linears have biases, which the int4 shape-true build neither "
                                           "draws nor counts: take a Llama or Mistral shape")
    return c


def plan(name: str, available: int | None = None) -> Plan:
    """Count, from the published config alone, what `build` will hold and what a step reads."""
    c = _config(name)
    d, V = c.hidden_size, c.vocab_size
    parts = footprint.weights_bytes_by_part(c, "int4", kept_dtype="fp32", active=True)  # the fits table's own count
    int4, norms = parts["matrices"], parts["vectors"]  # 4 bits a layer weight + a bf16 scale and zero per group; fp32 norms
    head = V * d
    layers = footprint.num_params(c) - head * (1 if c.tie_word_embeddings else 2) - norms // 4
    read = int4 + head + 2 * V + norms
    held = 2 * int4 + head + 2 * V + norms + V * d * 4  # two layouts of the codes; the fp32 embedding
    free = guard.available_bytes() if available is None else int(available)
    return Plan(f"{shapetrue.PREFIX}{name.removeprefix(shapetrue.PREFIX)}", layers, head, read, held,
                int(held * ROOM), free, int(held * ROOM) <= free)


class _Drawn:
    """A constructor for FastLlama: each meta nn.Linear it gets is drawn (seeded, one at a time) and handed
    to `make`, memlab's quantizer."""

    def __init__(self, make, std: float, seed: int, bar=None):
        self.make, self.std, self.seed, self.bar = make, std, seed, bar
        self.__name__ = make.__name__  # FastLlama names its weights after the constructor

    def __call__(self, meta: nn.Linear) -> nn.Module:
        N, K = meta.weight.shape
        self.seed += 1
        w = torch.empty(N, K).normal_(0.0, self.std, generator=torch.Generator().manual_seed(self.seed))
        lin = nn.Linear(K, N, bias=False, device="meta")
        lin.weight = nn.Parameter(w, requires_grad=False)
        out = self.make(lin)
        if self.bar is not None:
            self.bar.update(N * K)
        return out


def build(name: str, max_len: int, seed: int = 0, force: bool = False):
    """(the transformers skeleton, its FastLlama) for `shape:NAME` in int4 (int8 lm_head), with its kernels
    chosen; refused in one line (`WontFitError`: bytes needed and free) where `plan` says it will not fit."""
    from transformers import AutoModelForCausalLM
    p = plan(name)
    if not p.fits and not force:
        raise WontFitError(f"{p.name} in int4 needs about {p.needed_bytes / 2**30:.1f} GiB of RAM to build and hold; "
                           f"{p.available_bytes / 2**30:.1f} GiB is available here")
    config = _config(name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    inner, std = model.model, config.initializer_range
    g = torch.Generator().manual_seed(seed)
    inner.embed_tokens.weight = nn.Parameter(torch.empty(config.vocab_size, config.hidden_size).normal_(0.0, std, generator=g),
                                             requires_grad=False)
    for norm in [inner.norm] + [m for layer in inner.layers for m in (layer.input_layernorm, layer.post_attention_layernorm)]:
        norm.weight = nn.Parameter(torch.ones(config.hidden_size), requires_grad=False)
    inner.rotary_emb = type(inner.rotary_emb)(config=config)  # its inv_freq, computed on the CPU
    model.eval()
    from tqdm.auto import tqdm
    with tqdm(total=p.layer_weights + p.head_weights, unit="weight", unit_scale=True,
              desc=f"{p.name}: draw and quantize (then choose its kernels)") as bar:
        fast = fastpath.FastLlama(model, max_len, linear=_Drawn(Int4Linear, std, seed * 100_000, bar),
                                  lm_head=_Drawn(Int8Linear, std, seed * 100_000 + 50_000, bar))
    return model, fast
