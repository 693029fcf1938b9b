"""Tensor parallelism (Megatron style): every matrix split across R ranks, one all-reduce per block.

Lab 05. Every rank runs every layer, on its slice of each weight matrix (X (B, T, H) is the same
on all ranks at the start of a block):
  attention  Q, K, V = X Wq_r, X Wk_r, X Wv_r   column-parallel: rank r owns a group of KV heads
             (and the query heads that share them), so attention runs locally, head by head;
             Y = sum_r A_r Wo_r                 row-parallel: partial sums, then ALL-REDUCE.
  MLP        G_r = act(X Wg_r) * (X Wu_r)        column-parallel: a slice of the 1536 channels;
             Y = sum_r G_r Wd_r                 row-parallel: ALL-REDUCE.
  embedding  vocabulary-parallel: rank r looks up only ids in its vocab slice (zeros elsewhere),
             then ALL-REDUCE; the tied lm_head uses the same slice to make its part of the logits,
             and the greedy token is the best of the ranks' local maxima (one small all-gather).
All-reduced payload per decoded token and sequence:  (2 L + 1) * H * bytes
(SmolLM2 fp32: 61 * 576 * 4 = 140,544 B). A ring all-reduce moves 2 (R-1)/R of that per rank.
KV heads cannot be cut in two, so R <= num_key_value_heads; with 3 KV heads and R=2 the split is
2 + 1 heads (uneven, as the per-rank bytes show). Llama-family models (llama, mistral, qwen2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from memlab.core import dtypes, tensors
from memlab.core.errors import MemlabError
from memlab.core.measure import rss_bytes
from memlab.sharding.reads import read_tensor, weight_map
from memlab.sharding.workers import (
    Comm,
    ParallelConfig,
    RankResult,
    load_in_turn,
    maybe_fail,
    peak_rss_bytes,
    worker_device,
)

__all__ = ["check", "split_range", "allreduce_bytes_per_token", "TPShard", "load_shard", "worker"]

SUPPORTED = ("llama", "mistral", "qwen2")


def split_range(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """[lo, hi) of rank's share of n items; the first ranks get one more."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def allreduce_bytes_per_token(config, dtype_bytes: int = 4) -> int:
    """Payload all-reduced per decoded token and sequence: (2 L + 1) * H * bytes."""
    return (2 * config.num_hidden_layers + 1) * config.hidden_size * dtype_bytes


def check(config, world_size: int) -> None:
    """Refuse, before any process starts, a split this module cannot do."""
    if config.model_type not in SUPPORTED:
        raise MemlabError(f"Tensor parallel supports {SUPPORTED}, not {config.model_type!r}.")
    nkv = config.num_key_value_heads
    if world_size > nkv:
        raise MemlabError(f"{nkv} KV heads cannot be split across {world_size} ranks; use --ranks <= {nkv}.")


def _rms(x, w, eps):
    """RMSNorm as in LlamaRMSNorm: w * x / sqrt(mean(x^2) + eps), computed in fp32."""
    dt = x.dtype
    x = x.float()
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(dt)


class TPShard:
    """Rank r's slices of every weight, its KV cache, and the forward pass over them."""

    def __init__(self, config, layers, embed, lm_head, norm, vocab, heads, rotary, act):
        self.config, self.layers, self.embed, self.lm_head, self.norm = config, layers, embed, lm_head, norm
        self.v0, self.v1 = vocab
        self.num_q, self.num_kv = heads
        self.rotary, self.act = rotary, act
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.cache = [None] * len(layers)                              # per layer (K, V)

    def tensors(self):
        return [t for layer in self.layers for t in layer.values()] + [self.embed, self.lm_head, self.norm]

    def kv_cache_bytes(self) -> int:
        return sum(kv[0].nbytes + kv[1].nbytes for kv in self.cache if kv is not None)

    def embed_ids(self, ids, comm: Comm):
        """Vocab-parallel lookup: local rows for ids in [v0, v1), zeros elsewhere, then all-reduce."""
        local = ids - self.v0
        inside = (local >= 0) & (local < self.v1 - self.v0)
        with comm.compute("embed"):
            h = F.embedding(local.clamp(0, self.v1 - self.v0 - 1), self.embed) * inside.unsqueeze(-1)
        return comm.all_reduce(h, "all_reduce embed")

    def block(self, i, x, cos, sin, comm: Comm):
        """One decoder layer on this rank's heads and channels; two all-reduces."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
        w, eps, D = self.layers[i], self.config.rms_norm_eps, self.head_dim
        B, T, _ = x.shape
        with comm.compute("attention"):
            h = _rms(x, w["input_layernorm"], eps)
            q = F.linear(h, w["q"], w.get("q_b")).view(B, T, self.num_q, D).transpose(1, 2)   # (B, h, T, D)
            k = F.linear(h, w["k"], w.get("k_b")).view(B, T, self.num_kv, D).transpose(1, 2)
            v = F.linear(h, w["v"], w.get("v_b")).view(B, T, self.num_kv, D).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            if self.cache[i] is not None:
                k = torch.cat([self.cache[i][0], k], dim=2)
                v = torch.cat([self.cache[i][1], v], dim=2)
            self.cache[i] = (k, v)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, scale=D ** -0.5,
                                               enable_gqa=self.num_q != self.num_kv)
            o = F.linear(a.transpose(1, 2).reshape(B, T, self.num_q * D), w["o"])   # partial sum
        x = x + comm.all_reduce(o, "all_reduce attn")
        with comm.compute("mlp"):
            h = _rms(x, w["post_attention_layernorm"], eps)
            y = F.linear(self.act(F.linear(h, w["gate"])) * F.linear(h, w["up"]), w["down"])
        return x + comm.all_reduce(y, "all_reduce mlp")

    def step(self, ids, position_ids, comm: Comm):
        """(B, T) token ids -> (B,) greedy next ids, identical on every rank."""
        x = self.embed_ids(ids, comm)
        cos, sin = self.rotary(x, position_ids)
        for i in range(len(self.layers)):
            x = self.block(i, x, cos, sin, comm)
        with comm.compute("lm_head"):
            logits = F.linear(_rms(x[:, -1], self.norm, self.config.rms_norm_eps), self.lm_head)  # (B, V/R)
            val, idx = logits.max(-1)
            mine = torch.stack([val.double(), (idx + self.v0).double()], -1)         # (B, 2)
        best = torch.stack(comm.all_gather(mine))                                      # (R, B, 2)
        # the first rank holding the maximum wins: the same tie-break as argmax over all V
        r = best[..., 0].argmax(0)
        return best[r, torch.arange(ids.shape[0]), 1].long()


def load_shard(folder, rank: int, world_size: int, device, dtype=None) -> TPShard:
    """Read only this rank's rows/columns of every matrix from the checkpoint."""
    from transformers import AutoConfig
    from transformers.activations import ACT2FN
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = AutoConfig.from_pretrained(folder)
    check(config, world_size)
    nh, nkv = config.num_attention_heads, config.num_key_value_heads
    D = getattr(config, "head_dim", None) or config.hidden_size // nh
    g = nh // nkv
    k0, k1 = split_range(nkv, world_size, rank)
    i0, i1 = split_range(config.intermediate_size, world_size, rank)
    v0, v1 = split_range(config.vocab_size, world_size, rank)
    files = weight_map(folder)

    def rd(name, **kw):
        return read_tensor(files, name, dtype=dtype, device=device, **kw)

    layers = []
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        w = {"q": rd(p + "self_attn.q_proj.weight", rows=(k0 * g * D, k1 * g * D)),
             "k": rd(p + "self_attn.k_proj.weight", rows=(k0 * D, k1 * D)),
             "v": rd(p + "self_attn.v_proj.weight", rows=(k0 * D, k1 * D)),
             "o": rd(p + "self_attn.o_proj.weight", cols=(k0 * g * D, k1 * g * D)),
             "gate": rd(p + "mlp.gate_proj.weight", rows=(i0, i1)),
             "up": rd(p + "mlp.up_proj.weight", rows=(i0, i1)),
             "down": rd(p + "mlp.down_proj.weight", cols=(i0, i1)),
             "input_layernorm": rd(p + "input_layernorm.weight"),
             "post_attention_layernorm": rd(p + "post_attention_layernorm.weight")}
        for x, rows in (("q", (k0 * g * D, k1 * g * D)), ("k", (k0 * D, k1 * D)), ("v", (k0 * D, k1 * D))):
            if p + f"self_attn.{x}_proj.bias" in files:                       # qwen2 has q/k/v biases
                w[x + "_b"] = rd(p + f"self_attn.{x}_proj.bias", rows=rows)
        layers.append(w)
    embed = rd("model.embed_tokens.weight", rows=(v0, v1))
    head = rd("lm_head.weight", rows=(v0, v1)) if "lm_head.weight" in files else embed
    rotary = LlamaRotaryEmbedding(config=config).to(device)
    return TPShard(config, layers, embed, head, rd("model.norm.weight"), (v0, v1),
                   ((k1 - k0) * g, k1 - k0), rotary, ACT2FN[config.hidden_act])


def worker(rank: int, world_size: int, folder: str, prompt_ids: list, cfg: ParallelConfig) -> RankResult:
    """One rank of a tensor-parallel greedy generation (run by launch.run_workers)."""

    import transformers.models.llama.modeling_llama  # noqa: F401  imports count as base, not weights
    from transformers import AutoModelForCausalLM  # noqa: F401
    start_rss = rss_bytes()
    device = worker_device(rank, cfg.backend)
    shard, load_s = load_in_turn(rank, world_size,
                                 lambda: load_shard(folder, rank, world_size, device, dtypes.torch_dtype(cfg.dtype)))
    loaded_rss = rss_bytes()
    comm = Comm(rank, device)
    ids = torch.tensor([list(prompt_ids)] * cfg.batch_size, device=device)        # (B, T)
    generated, pos = [], 0
    with torch.inference_mode():
        for step in range(cfg.max_new_tokens):
            maybe_fail(cfg, rank, step)
            comm.step = step
            T = ids.shape[1]
            position_ids = torch.arange(pos, pos + T, device=device).unsqueeze(0)
            ids = shard.step(ids, position_ids, comm).view(-1, 1)
            generated.append(int(ids[0, 0]))
            pos += T
    steps = range(1, cfg.max_new_tokens)
    pre_c, pre_m = comm.totals([0])
    dec_c, dec_m = comm.totals(steps)
    return RankResult(
        rank=rank, world_size=world_size, mode="tensor",
        holds=f"KV heads {split_range(shard.config.num_key_value_heads, world_size, rank)}, "
              f"1/{world_size} of MLP and vocab",
        weights_bytes=tensors.tensor_bytes(shard.tensors()), kv_cache_bytes=shard.kv_cache_bytes(),
        start_rss_bytes=start_rss, loaded_rss_bytes=loaded_rss,
        peak_rss_bytes=peak_rss_bytes(),
        load_s=load_s, prefill_compute_s=pre_c, prefill_comm_s=pre_m,
        decode_compute_s=dec_c, decode_comm_s=dec_m,
        decode_comm_bytes=sum(v for k, v in comm.bytes_by_step.items() if k >= 1),
        num_decode_steps=len(steps), token_ids=tuple(generated) if rank == 0 else (),
        events=comm.timeline())
