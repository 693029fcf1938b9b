"""The overhead wall, and a fast decode path for Llama-family models (lab 01, sections 3-4).

A 135M model at batch 1 should decode at bandwidth / weight bytes (about 70 tok/s fp32 on a
35 GB/s machine) but transformers' eager loop reaches about a fifth of that: each token
dispatches hundreds of small operators (projections, reshapes, RoPE, cache updates, norms),
and each costs microseconds of Python and dispatcher work whatever its size. The profile
(`profile_decode_step`) shows it; the fix is doing fewer, larger operations per token:

1. `FastLlama`: the same weights, regrouped once: q/k/v stacked into one matrix and gate/up
   into another (the model's own parameters become views of them, so no bytes are copied twice);
   the KV cache is a static tensor written in place (no `DynamicCache` growth, no `torch.cat`);
   RoPE tables are precomputed; one hand-written step per token.
Not here: `torch.compile` of this step. On this project's 2-core CPU, compiling transformers'
model took 130-140 s for +7% fp32 decode; a compiled step would need a fixed-shape, masked
attention over the whole static cache so that each new position does not trigger a recompile.

Shapes: B batch, T tokens in this call, H query heads, K kv heads, D head dim, C cache length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memlab.core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class FastDecodeResult:
    """One greedy generation through the fast path."""

    model_name: str
    dtype: str
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    token_ids: tuple            # the generated ids of sequence 0
    setup_s: float              # regroup weights, allocate the static cache, RoPE tables
    warmup_s: float             # first prefill + first step (allocations, kernel selection)
    prefill_s: float            # a timed prefill after warm-up
    decode_s: float             # new_tokens - 1 decode steps after the first token
    decode_tok_per_s: float     # batch_size * (new_tokens - 1) / decode_s
    itl_s: tuple                # each decode step's duration


@dataclass(frozen=True, slots=True)
class OpTime:
    """One operator's share of a profiled decode step."""

    name: str
    num_calls: int
    self_cpu_s: float           # time inside the op itself, children excluded


@dataclass(frozen=True, slots=True)
class StepProfile:
    """Where one decode step's time goes (torch.profiler, CPU time)."""

    label: str
    step_s: float               # wall time of the profiled step
    num_ops: int                # aten operator calls dispatched in one step
    matmul_s: float             # self time in matmul kernels (mm, addmm, bmm, linear)
    other_s: float              # everything else: the overhead wall
    top_ops: tuple              # OpTime, the largest self times first


_MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
               "aten::_scaled_dot_product_flash_attention_for_cpu")


def profile_decode_step(step, label: str = "", top: int = 12) -> StepProfile:
    """Profile one call of `step()` (a decode step, already warmed up) with torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        step_s = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    num_ops = sum(e.count for e in events)
    matmul_s = sum(e.self_cpu_time_total for e in events if e.key in _MATMUL_OPS) / 1e6
    total_self_s = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    ops = tuple(OpTime(e.key, e.count, e.self_cpu_time_total / 1e6) for e in events[:top])
    return StepProfile(label, step_s, num_ops, matmul_s, max(total_self_s - matmul_s, 0.0), ops)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = w * x / sqrt(mean(x^2) + eps), computed in fp32 as transformers' LlamaRMSNorm does."""
    if x.dtype == torch.float32:  # one fused op; other dtypes keep transformers' rounding order
        return F.rms_norm(x, weight.shape, weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class FastLlama:
    """A hand-written greedy decoder over a transformers Llama model's own weights."""

    def __init__(self, model, max_len: int, batch_size: int = 1):
        t0 = time.perf_counter()
        cfg = model.config
        inner = model.model
        self.model = model
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        self.eps = cfg.rms_norm_eps
        self.max_len = max_len
        self.batch_size = batch_size
        p = next(model.parameters())
        self.dtype, self.device = p.dtype, p.device
        self.layers = [self._fuse(layer) for layer in inner.layers]
        self.embed = inner.embed_tokens.weight
        self.final_norm = inner.norm.weight
        self.lm_head = model.lm_head.weight
        # (L, B, K, C, D): written in place at each position, never reallocated
        shape = (len(self.layers), batch_size, self.num_kv_heads, max_len, self.head_dim)
        self.cache_k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.cache_v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        # RoPE tables from the model's own rotary module, so scaling variants match: (C, D)
        pos = torch.arange(max_len, device=self.device)[None]
        cos, sin = inner.rotary_emb(self.embed[:1][None].to(self.dtype), pos)
        self.cos, self.sin = cos[0].to(self.dtype), sin[0].to(self.dtype)
        self.setup_s = time.perf_counter() - t0

    @staticmethod
    def _fuse(layer) -> dict:
        """Stack q/k/v and gate/up into one matrix each; the modules' weights become views."""
        attn, mlp = layer.self_attn, layer.mlp
        if any(getattr(m, "bias", None) is not None for m in (attn.q_proj, attn.k_proj, attn.v_proj)):
            raise NotImplementedError("fast path: attention biases are not supported")
        parts = [attn.q_proj, attn.k_proj, attn.v_proj]
        qkv = torch.cat([m.weight.data for m in parts])
        start = 0
        for m in parts:  # rebind: the model keeps working, over the same bytes
            n = m.weight.shape[0]
            m.weight.data = qkv[start:start + n]
            start += n
        gate_up = torch.cat([mlp.gate_proj.weight.data, mlp.up_proj.weight.data])
        n = mlp.gate_proj.weight.shape[0]
        mlp.gate_proj.weight.data, mlp.up_proj.weight.data = gate_up[:n], gate_up[n:]
        return {"qkv": qkv, "o": attn.o_proj.weight, "gate_up": gate_up,
                "down": mlp.down_proj.weight, "ln1": layer.input_layernorm.weight,
                "ln2": layer.post_attention_layernorm.weight,
                "eps1": layer.input_layernorm.variance_epsilon,
                "eps2": layer.post_attention_layernorm.variance_epsilon}

    def forward_tokens(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Logits of the last position for tokens `ids` (B, T) placed at positions start..start+T-1."""
        B, T = ids.shape
        H, K, D = self.num_heads, self.num_kv_heads, self.head_dim
        end = start + T
        cos, sin = self.cos[start:end], self.sin[start:end]  # (T, D)
        x = F.embedding(ids, self.embed)  # (B, T, d)
        for i, w in enumerate(self.layers):
            h = _rms_norm(x, w["ln1"], w["eps1"])
            qkv = F.linear(h, w["qkv"]).view(B, T, H + 2 * K, D).transpose(1, 2)  # (B, H+2K, T, D)
            qk = qkv[:, :H + K] * cos + _rotate_half(qkv[:, :H + K]) * sin  # RoPE on q and k at once
            self.cache_k[i, :B, :, start:end] = qk[:, H:]
            self.cache_v[i, :B, :, start:end] = qkv[:, H + K:]
            k, v = self.cache_k[i, :B, :, :end], self.cache_v[i, :B, :, :end]  # (B, K, end, D)
            a = F.scaled_dot_product_attention(qk[:, :H], k, v, is_causal=T > 1 and start == 0,
                                               enable_gqa=True)  # (B, H, T, D)
            x = x + F.linear(a.transpose(1, 2).reshape(B, T, H * D), w["o"])
            h = _rms_norm(x, w["ln2"], w["eps2"])
            gate, up = F.linear(h, w["gate_up"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w["down"])
        x = _rms_norm(x[:, -1], self.final_norm, self.eps)  # only the last position's logits
        return F.linear(x, self.lm_head)  # (B, V)

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Fill the cache with a prompt (B, T) from position 0; logits of its last token (B, V)."""
        return self.forward_tokens(ids, 0)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """One decode step: ids (B, 1) at `position`; logits (B, V)."""
        return self.forward_tokens(ids, position)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy tokens (B, max_new_tokens) after the prompt (B, T); no early stop at EOS."""
        B, T = input_ids.shape
        if T + max_new_tokens > self.max_len:
            raise InvalidArgumentError(f"prompt {T} + {max_new_tokens} new tokens exceed max_len {self.max_len}")
        if B > self.batch_size:
            raise InvalidArgumentError(f"batch {B} exceeds the cache's batch_size {self.batch_size}")
        ids = input_ids.to(self.device)
        tok = self.prefill(ids).argmax(-1, keepdim=True)  # (B, 1)
        out = [tok]
        for pos in range(T, T + max_new_tokens - 1):
            tok = self.step(tok, pos).argmax(-1, keepdim=True)
            out.append(tok)
        return torch.cat(out, dim=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fast_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, *,
                  model_name: str = "") -> FastDecodeResult:
    """Greedy generation through `FastLlama`, timed: setup, warm-up, prefill and decode apart."""
    B, T = input_ids.shape
    fast = FastLlama(model, max_len=T + max_new_tokens, batch_size=B)
    device = fast.device
    ids = input_ids.to(device)
    t0 = time.perf_counter()
    fast.step(fast.prefill(ids).argmax(-1, keepdim=True), T)  # warm-up
    _sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok = fast.prefill(ids).argmax(-1, keepdim=True)
    _sync(device)
    prefill_s = time.perf_counter() - t0
    out, itl = [tok], []
    for pos in range(T, T + max_new_tokens - 1):
        t1 = time.perf_counter()
        tok = fast.step(tok, pos).argmax(-1, keepdim=True)
        _sync(device)
        itl.append(time.perf_counter() - t1)
        out.append(tok)
    decode_s = sum(itl)
    tokens = torch.cat(out, dim=1)
    return FastDecodeResult(
        model_name=model_name, dtype=str(fast.dtype).removeprefix("torch."), batch_size=B,
        prompt_tokens=T, new_tokens=max_new_tokens, token_ids=tuple(tokens[0].tolist()),
        setup_s=fast.setup_s, warmup_s=warmup_s, prefill_s=prefill_s, decode_s=decode_s,
        decode_tok_per_s=B * len(itl) / decode_s if decode_s > 0 else float("nan"),
        itl_s=tuple(itl))


@torch.inference_mode()
def profile_both(model, input_ids: torch.Tensor) -> tuple[StepProfile, StepProfile]:
    """Profile one warmed-up decode step of transformers' eager model and of `FastLlama`."""
    from memlab.core.generation import decode_step, new_cache, prefill
    T = input_ids.shape[1]
    cache = new_cache(model)
    tok = prefill(model, input_ids, cache).argmax(-1, keepdim=True)  # (B, 1)
    decode_step(model, tok, cache)  # warm-up
    eager = profile_decode_step(lambda: decode_step(model, tok, cache), "eager (transformers modules)")
    fast = FastLlama(model, max_len=T + 4, batch_size=input_ids.shape[0])
    tok = fast.prefill(input_ids).argmax(-1, keepdim=True)
    fast.step(tok, T)  # warm-up
    return eager, profile_decode_step(lambda: fast.step(tok, T + 1), "fast path (fused, static cache)")


def profile_table(*profiles: StepProfile):
    """Side-by-side summary of StepProfiles as a DataFrame (ms and operator counts)."""
    import pandas as pd
    return pd.DataFrame([{"path": p.label, "step_ms": p.step_s * 1e3, "aten_calls": p.num_ops,
                          "matmul_ms": p.matmul_s * 1e3, "other_ms": p.other_s * 1e3,
                          "top_op": p.top_ops[0].name if p.top_ops else ""} for p in profiles])
