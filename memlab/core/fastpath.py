"""One fast decode path for Llama-family models, at every precision (labs 01 and 04, `memlab bench`).

A 135M model at batch 1 should decode at bandwidth / bytes per token, but transformers' eager loop
dispatches hundreds of small operators per token, each costing microseconds of Python and dispatch
whatever its size. The fix is fewer, larger operations per token:

1. `FastLlama`: the same weights, regrouped once: q/k/v stacked into one matrix and gate/up into
   another (the model's own parameters become views of them: no byte is held twice); a static KV
   cache written in place; RoPE tables precomputed, applied as x*cos + roll(x)*sin'; one step.
2. Every precision through the same step: the model's dtype (fp32, bf16), or `linear=` / `lm_head=`
   constructors nn.Linear -> module (memlab's int8/int4 kernels, `memlab.quantization.quantize`).
3. Each matmul through the kernel that streams its bytes fastest on this machine, chosen by
   measurement (`memlab.core.kernels`); `kernels="linear"` keeps torch's F.linear everywhere.
4. `step="c"` (or "auto" where it measures faster): the whole step in one C call over the same
   weights and cache (`memlab.core.cstep`), so what lies between the matmuls costs no Python dispatch.
5. `compile=True`: the step with fixed shapes (attention over the whole static cache under a position
   mask), traced once per cache length by `torch.compile`; compile time apart (`compile_s`).
Shapes: B batch, T tokens in this call, H query heads, K kv heads, D head dim, C cache length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from memlab.core import cstep, held
from memlab.core import kernels as kernel_choice
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import compile_reason  # noqa: F401  (labs ask ml.fastpath whether compile can run)
from memlab.core.measure import repeat, sync


@dataclass(frozen=True, slots=True)
class FastDecodeResult:
    """One greedy generation through the fast path."""

    model_name: str
    dtype: str                  # activations and KV cache
    weights: str                # "fp32", "bf16", or the linear constructor's name (e.g. "Int4Linear")
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    token_ids: tuple            # the generated ids of sequence 0
    setup_s: float              # regroup (and quantize) weights, allocate the static cache, RoPE tables
    compile_s: float            # torch.compile's first call (0 when not compiled)
    warmup_s: float             # first prefill + first step (allocations, kernel selection)
    prefill_s: float            # a timed prefill after warm-up: the time to the first token's logits
    decode_s: float             # new_tokens - 1 decode steps after the first token
    decode_tok_per_s: float     # batch_size * (new_tokens - 1) / decode_s
    itl_s: tuple                # each decode step's duration


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = w * x / sqrt(mean(x^2) + eps), computed in fp32 as transformers' LlamaRMSNorm does."""
    if x.dtype == torch.float32:  # one fused op; other dtypes keep transformers' rounding order
        return F.rms_norm(x, weight.shape, weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def matmul(x: torch.Tensor, w) -> torch.Tensor:
    """x @ w^T for a weight tensor, or w's kernel for a module (`held.Gemv`, a quantized linear)."""
    return F.linear(x, w) if isinstance(w, torch.Tensor) else w.forward(x)


class FastLlama:
    """A hand-written greedy decoder over a transformers Llama model's own weights."""

    def __init__(self, model, max_len: int, batch_size: int = 1, *, linear: Callable | None = None,
                 lm_head: Callable | None = None, compile: bool = False, kernels: str = "auto",
                 refresh_kernels: bool = False, step: str = "auto"):
        """`kernels`: "auto" picks each matmul's kernel by measurement (cached per machine,
        `refresh_kernels` measures again), or one of `kernels.FLOAT_KERNELS` runs everywhere.
        `step`: "c" runs the whole step in one C call (`core.cstep`), "torch" through torch's
        operators, "auto" (with kernels="auto") whichever measures faster."""
        kernel_choice.check_request(kernels, compile)
        t0 = time.perf_counter()
        cfg, inner = model.config, model.model
        self.model = model
        self.num_heads, self.num_kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        self.eps, self.max_len, self.batch_size = cfg.rms_norm_eps, max_len, batch_size
        p = inner.embed_tokens.weight
        self.dtype, self.device = p.dtype, p.device
        self.weights = getattr(linear, "__name__", "custom") if linear else str(self.dtype).removeprefix("torch.")
        with torch.no_grad():
            self.layers = [self._layer(layer, linear) for layer in inner.layers]
            self.lm_head = lm_head(model.lm_head) if lm_head else model.lm_head.weight
        self.kernels, self.threads = None, 0  # the measured KernelChoice ("auto"); torch's threads (0: as set)
        self.cstep = None  # a cstep.CStep where the whole step runs in C
        self.embed, self.final_norm = inner.embed_tokens.weight, inner.norm.weight
        # (L, B, K, C, D), written in place at each position; self.k[i] is layer i's view
        shape = (len(self.layers), batch_size, self.num_kv_heads, max_len, self.head_dim)
        self.cache_k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.cache_v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.k, self.v = list(self.cache_k.unbind(0)), list(self.cache_v.unbind(0))
        # RoPE tables from the model's own rotary module, so scaling variants match: (C, D).
        # rotate_half(x) * sin == roll(x, D/2) * [-sin_lo, sin_hi]: one roll instead of chunk/neg/cat.
        pos = torch.arange(max_len, device=self.device)[None]
        cos, sin = inner.rotary_emb(self.embed[:1][None].to(self.dtype), pos)
        half = self.head_dim // 2
        sign = torch.cat([-torch.ones(half), torch.ones(self.head_dim - half)]).to(self.device, self.dtype)
        self.cos, self.sin = cos[0].to(self.dtype), sin[0].to(self.dtype) * sign
        self.positions = torch.arange(max_len, device=self.device)
        self.matmul = matmul  # what decoder_layer calls (`rest_seconds` swaps it for a stub)
        self.compiled = torch.compile(self.static_step, dynamic=False, fullgraph=True) if compile else None
        self.compile_s = 0.0
        if kernels != "linear" or step == "c":
            with torch.no_grad():
                cstep.install(self, model, kernels, step, torch_only=compile, refresh=refresh_kernels)
        self.setup_s = time.perf_counter() - t0

    @torch.inference_mode()
    def rest_seconds(self, threads: int, repeats: int = 7) -> float:
        """One decode step's time without its matmuls (attention, norms, RoPE, dispatch), with torch
        on `threads` threads, halfway through the cache: each matmul answers zeros of its shape."""
        zeros = {}

        def stub(x, w):
            n = w.shape[0] if isinstance(w, torch.Tensor) else w.out_features
            return zeros.setdefault((x.shape, n), torch.zeros(*x.shape[:-1], n, dtype=x.dtype, device=x.device))
        ids = torch.zeros(self.batch_size, 1, dtype=torch.long, device=self.device)
        self.matmul = stub
        try:
            with kernel_choice.torch_threads(threads):
                return repeat(lambda: self.forward_tokens(ids, self.max_len // 2), repeats, device=self.device).median
        finally:
            self.matmul = matmul

    @staticmethod
    def _layer(layer, linear) -> dict:
        attn, mlp = layer.self_attn, layer.mlp
        out = {"mods": {"qkv": [attn.q_proj, attn.k_proj, attn.v_proj], "gate_up": [mlp.gate_proj, mlp.up_proj],
                        "o": [attn.o_proj], "down": [mlp.down_proj]},
               "ffn": mlp.gate_proj.weight.shape[0],
               "ln1": layer.input_layernorm.weight, "ln2": layer.post_attention_layernorm.weight,
               "eps1": layer.input_layernorm.variance_epsilon,
               "eps2": layer.post_attention_layernorm.variance_epsilon}
        out["bias"] = {}  # a float role's bias, added after its matmul (a quantized module adds its own)
        for name, mods in out["mods"].items():
            out[name], out["bias"][name] = held.fuse(mods, linear) if len(mods) > 1 else (
                (linear(mods[0]), None) if linear else (mods[0].weight, mods[0].bias))
        return out

    def decoder_layer(self, x, w, attend) -> torch.Tensor:
        """One decoder layer on x (B, T, d); `attend(q, k, v)` writes the cache and attends."""
        B, T, _ = x.shape
        H, K, D = self.num_heads, self.num_kv_heads, self.head_dim
        bias = w["bias"]

        def mm(x, role):
            y = self.matmul(x, w[role])
            return y if bias[role] is None else y + bias[role]
        qkv = mm(_rms_norm(x, w["ln1"], w["eps1"]), "qkv").view(B, T, H + 2 * K, D).transpose(1, 2)
        a = attend(qkv[:, :H + K], qkv[:, H + K:])  # (B, H, T, D)
        x = x + mm(a.transpose(1, 2).reshape(B, T, H * D), "o")
        gate_up = mm(_rms_norm(x, w["ln2"], w["eps2"]), "gate_up")
        return x + mm(F.silu(gate_up[..., :w["ffn"]]) * gate_up[..., w["ffn"]:], "down")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmul(_rms_norm(x, self.final_norm, self.eps), self.lm_head)  # (B, V) or (B, T, V)

    def forward_tokens(self, ids: torch.Tensor, start: int, every: bool = False) -> torch.Tensor:
        """Logits of the last position (B, V), or of `every` position (B, T, V), for tokens `ids` (B, T) placed
        at positions start..start+T-1; after a context (a verify of drafts) position i sees the cache up to i."""
        B, T = ids.shape
        H, end = self.num_heads, start + T
        cos, sin = self.cos[start:end], self.sin[start:end]  # (T, D)
        mask = self.positions[:end] <= self.positions[start:end, None] if T > 1 and start else None  # (T, end)
        x = F.embedding(ids, self.embed)  # (B, T, d)
        for w, kc, vc in zip(self.layers, self.k, self.v):
            def attend(qk, v, kc=kc, vc=vc):
                qk = torch.addcmul(qk * cos, qk.roll(self.head_dim // 2, -1), sin)  # RoPE on q and k at once
                kc[:B, :, start:end], vc[:B, :, start:end] = qk[:, H:], v
                return F.scaled_dot_product_attention(qk[:, :H], kc[:B, :, :end], vc[:B, :, :end],
                                                      attn_mask=mask, is_causal=T > 1 and start == 0, enable_gqa=True)
            x = self.decoder_layer(x, w, attend)
        return self._logits(x if every else x[:, -1])

    def static_step(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """One decode step with fixed shapes: ids (B, 1), pos a 1-element long tensor; every layer
        attends over the whole cache (C positions) under the mask positions <= pos."""
        H = self.num_heads
        cos, sin = self.cos.index_select(0, pos), self.sin.index_select(0, pos)  # (1, D)
        mask = (self.positions <= pos)[None, None, None]  # (1, 1, 1, C)
        x = F.embedding(ids, self.embed)
        for w, kc, vc in zip(self.layers, self.k, self.v):
            def attend(qk, v, kc=kc, vc=vc):
                qk = torch.addcmul(qk * cos, qk.roll(self.head_dim // 2, -1), sin)
                kc.index_copy_(2, pos, qk[:, H:])
                vc.index_copy_(2, pos, v)
                return F.scaled_dot_product_attention(qk[:, :H], kc, vc, attn_mask=mask, enable_gqa=True)
            x = self.decoder_layer(x, w, attend)
        return self._logits(x[:, -1])

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Fill the cache with a prompt (B, T) from position 0; logits of its last token (B, V)."""
        with kernel_choice.torch_threads(self.threads):
            return self.forward_tokens(ids, 0)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """One decode step: ids (B, 1) at `position`; logits (B, V)."""
        with kernel_choice.torch_threads(self.threads):
            return self._step(ids, position)

    def _step(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        if self.cstep is not None:
            return self.cstep(ids, position)
        if self.compiled is None:
            return self.forward_tokens(ids, position)
        if ids.shape[0] != self.batch_size:
            raise InvalidArgumentError(f"a compiled step runs the cache's batch_size {self.batch_size}, got {ids.shape[0]}")
        pos = torch.tensor([position], device=self.device)
        if self.compile_s:
            return self.compiled(ids, pos)
        t0 = time.perf_counter()
        out = self.compiled(ids, pos)
        self.compile_s = time.perf_counter() - t0
        return out

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy tokens (B, max_new_tokens) after the prompt (B, T); no early stop at EOS."""
        B, T = input_ids.shape
        if T + max_new_tokens > self.max_len:
            raise InvalidArgumentError(f"prompt {T} + {max_new_tokens} new tokens exceed max_len {self.max_len}")
        if B > self.batch_size:
            raise InvalidArgumentError(f"batch {B} exceeds the cache's batch_size {self.batch_size}")
        tok = self.prefill(input_ids.to(self.device)).argmax(-1, keepdim=True)  # (B, 1)
        out = [tok]
        for pos in range(T, T + max_new_tokens - 1):
            tok = self.step(tok, pos).argmax(-1, keepdim=True)
            out.append(tok)
        return torch.cat(out, dim=1)


def fast_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, *, model_name: str = "",
                  linear: Callable | None = None, lm_head: Callable | None = None,
                  compile: bool = False, fast: FastLlama | None = None) -> FastDecodeResult:
    """Greedy generation through `FastLlama`, timed: setup, compile, warm-up, prefill, decode apart.
    `fast`: a FastLlama already built for this batch (reused; its cache is overwritten)."""
    B, T = input_ids.shape
    if max_new_tokens < 2:
        raise InvalidArgumentError(f"max_new_tokens must be >= 2 (one decode step to time), got {max_new_tokens}")
    if fast is None:
        fast = FastLlama(model, max_len=T + max_new_tokens, batch_size=B, linear=linear, lm_head=lm_head,
                         compile=compile)
    elif fast.batch_size != B or fast.max_len < T + max_new_tokens:
        raise InvalidArgumentError(f"the given FastLlama holds batch {fast.batch_size} x {fast.max_len} positions, "
                                   f"not {B} x {T + max_new_tokens}")
    ids = input_ids.to(fast.device)
    compiled_before = fast.compile_s  # a reused FastLlama compiled already: nothing to subtract now
    t0 = time.perf_counter()
    fast.step(fast.prefill(ids).argmax(-1, keepdim=True), T)  # warm-up (and compile)
    fast.step(fast.prefill(ids).argmax(-1, keepdim=True), T)
    sync(fast.device)
    warmup_s = time.perf_counter() - t0 - (fast.compile_s - compiled_before)
    t0 = time.perf_counter()
    tok = fast.prefill(ids).argmax(-1, keepdim=True)
    sync(fast.device)
    prefill_s = time.perf_counter() - t0
    out, itl = [tok], []
    for pos in range(T, T + max_new_tokens - 1):
        t1 = time.perf_counter()
        tok = fast.step(tok, pos).argmax(-1, keepdim=True)
        sync(fast.device)
        itl.append(time.perf_counter() - t1)
        out.append(tok)
    decode_s = sum(itl)
    tokens = torch.cat(out, dim=1)
    return FastDecodeResult(
        model_name=model_name, dtype=str(fast.dtype).removeprefix("torch."), weights=fast.weights,
        batch_size=B, prompt_tokens=T, new_tokens=max_new_tokens, token_ids=tuple(tokens[0].tolist()),
        setup_s=fast.setup_s, compile_s=fast.compile_s, warmup_s=warmup_s, prefill_s=prefill_s,
        decode_s=decode_s, decode_tok_per_s=B * len(itl) / decode_s if decode_s > 0 else float("nan"),
        itl_s=tuple(itl))
