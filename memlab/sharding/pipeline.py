"""Pipeline parallelism: the decoder layers split across R ranks, activations passed rank to rank.

Lab 05. Rank r holds layers [lo_r, hi_r) (an even split), its own KV cache for those layers, and:
  rank 0       the token embedding (it turns token ids into hidden states),
  rank R-1     the final norm and lm_head (it turns hidden states into the next token id).
A generation step (the prefill, then one step per new token) is a relay:
  rank 0: embed -> layers -> send h (B, T, H) -> ... -> rank R-1: layers -> lm_head -> argmax
  -> send the token ids back to rank 0, which needs them to start the next step.
Per step each rank sends B*T*H*bytes of activations: for one decoded token of SmolLM2 that is
576 * 4 = 2.3 KB, so a token's cost is latency-bound, not bandwidth-bound.

The bubble: with one batch, rank 1 waits while rank 0 computes and the other way round, so each
rank idles (R-1)/R of a step. Cutting the batch into M micro-batches lets rank 0 start micro-batch
m+1 while rank 1 works on m; the idle share falls to (R-1)/(M+R-1) (GPipe). Each micro-batch has
its own KV cache, because its sequences are independent.

With tied embeddings (SmolLM2), rank 0 and rank R-1 both hold the 113 MB embedding matrix (the
lm_head *is* the embedding), which the per-rank byte counts show.
Works with any Hugging Face decoder that has model.embed_tokens / layers / norm / rotary_emb,
and the decoder layers are called directly as in `LlamaModel.forward` (attention_mask=None:
SDPA is causal for the prefill and needs no mask for a 1-token decode).
"""
from __future__ import annotations

import torch

from memlab.core import dtypes, tensors
from memlab.core.errors import MemlabError
from memlab.core.generation import cache_kwarg
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

__all__ = ["layer_split", "Stage", "load_stage", "worker", "activation_bytes_per_token", "gpipe_bubble_fraction"]


def layer_split(num_layers: int, world_size: int) -> list[tuple[int, int]]:
    """Even split of layer indices: [(lo, hi), ...] per rank; the first ranks get one more."""
    if world_size > num_layers:
        raise MemlabError(f"Cannot split {num_layers} layers across {world_size} ranks.")
    base, extra = divmod(num_layers, world_size)
    out, lo = [], 0
    for r in range(world_size):
        hi = lo + base + (1 if r < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def activation_bytes_per_token(config, dtype_bytes: int = 4) -> int:
    """Bytes one rank sends to the next per sequence per decoded token: H * bytes."""
    return config.hidden_size * dtype_bytes


def gpipe_bubble_fraction(num_ranks: int, micro_batches: int) -> float:
    """GPipe's idle share of each rank per step, R ranks and M micro-batches: (R-1) / (M+R-1).

    A step lasts M + R - 1 micro-batch slots (the first micro-batch needs R slots to cross every
    rank, each further one adds one slot), and each rank computes in M of them.
    """
    if num_ranks < 1 or micro_batches < 1:
        raise MemlabError(f"Need num_ranks >= 1 and micro_batches >= 1, got {num_ranks} and {micro_batches}.")
    return (num_ranks - 1) / (micro_batches + num_ranks - 1)


class Stage:
    """One rank's part of the model: optional embedding, its layers, optional norm + lm_head."""

    def __init__(self, config, lo, hi, layers, rotary, embed=None, norm=None, lm_head_weight=None):
        self.config, self.lo, self.hi = config, lo, hi
        self.layers, self.rotary = layers, rotary
        self.embed, self.norm, self.lm_head_weight = embed, norm, lm_head_weight

    def tensors(self):
        mods = [self.layers] + [m for m in (self.embed, self.norm) if m is not None]
        ts = [p for m in mods for p in m.parameters()]
        return ts + ([self.lm_head_weight] if self.lm_head_weight is not None else [])

    def run_layers(self, h, position_ids, cache):
        """h (B, T, H) through this rank's layers, appending to this rank's KV cache."""
        pos_emb = self.rotary(h, position_ids)
        for layer in self.layers:
            h = layer(h, attention_mask=None, position_ids=position_ids, use_cache=True,
                      position_embeddings=pos_emb, **{cache_kwarg(layer): cache})
        return h

    def next_tokens(self, h_last):
        """(B, H) last hidden state -> (B,) greedy token ids."""
        logits = torch.nn.functional.linear(self.norm(h_last), self.lm_head_weight)
        return logits.argmax(-1)


def load_stage(folder, rank: int, world_size: int, device, dtype=None) -> Stage:
    """Build rank's stage on the meta device, then read only its tensors from the checkpoint."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    lo, hi = layer_split(config.num_hidden_layers, world_size)[rank]
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    inner, files = skeleton.model, weight_map(folder)

    def fill(module, prefix):
        sd = {n: read_tensor(files, prefix + n, dtype=dtype, device=device)
              for n, _ in module.named_parameters()}
        module.load_state_dict(sd, assign=True)
        return module

    layers = torch.nn.ModuleList(fill(inner.layers[i], f"model.layers.{i}.") for i in range(lo, hi))
    rotary = type(inner.rotary_emb)(config=config).to(device)
    embed = fill(inner.embed_tokens, "model.embed_tokens.") if rank == 0 else None
    norm = head = None
    if rank == world_size - 1:
        norm = fill(inner.norm, "model.norm.")
        if "lm_head.weight" in files:
            head = read_tensor(files, "lm_head.weight", dtype=dtype, device=device)
        elif embed is not None:
            head = embed.weight                      # tied, and this rank already holds it
        else:
            head = read_tensor(files, "model.embed_tokens.weight", dtype=dtype, device=device)
    del skeleton
    return Stage(config, lo, hi, layers.eval(), rotary, embed, norm, head)


def _cache_bytes(caches) -> int:
    total = 0
    for c in caches:
        for layer in getattr(c, "layers", []):
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    total += t.nbytes
    return total


def worker(rank: int, world_size: int, folder: str, prompt_ids: list, cfg: ParallelConfig) -> RankResult:
    """One rank of a pipeline-parallel greedy generation (run by launch.run_workers)."""
    from transformers import DynamicCache

    import transformers.models.llama.modeling_llama  # noqa: F401  imports count as base, not weights
    from transformers import AutoModelForCausalLM  # noqa: F401
    start_rss = rss_bytes()
    device = worker_device(rank, cfg.backend)
    dtype = dtypes.torch_dtype(cfg.dtype)
    stage, load_s = load_in_turn(rank, world_size, lambda: load_stage(folder, rank, world_size, device, dtype))
    loaded_rss = rss_bytes()

    comm = Comm(rank, device)
    first, last = rank == 0, rank == world_size - 1
    B, M = cfg.batch_size, cfg.micro_batches
    b, H = B // M, stage.config.hidden_size
    caches = [DynamicCache() for _ in range(M)]
    ids = torch.tensor([list(prompt_ids)] * B, device=device)       # (B, T) on rank 0
    generated, pos = [], 0
    with torch.inference_mode():
        for step in range(cfg.max_new_tokens):
            maybe_fail(cfg, rank, step)
            comm.step = step
            T = len(prompt_ids) if step == 0 else 1
            position_ids = torch.arange(pos, pos + T, device=device).unsqueeze(0)   # (1, T)
            handles, next_ids = [], [None] * M
            for m in range(M):
                comm.micro_batch = m
                if first:
                    with comm.compute("embed"):
                        h = stage.embed(ids[m * b:(m + 1) * b])
                else:
                    h = comm.recv((b, T, H), dtype, rank - 1)
                with comm.compute(f"layers {stage.lo}-{stage.hi - 1}"):
                    h = stage.run_layers(h, position_ids, caches[m])
                if not last:
                    handles.append(comm.send(h, rank + 1))
                    continue
                with comm.compute("lm_head"):
                    nxt = stage.next_tokens(h[:, -1])                      # (b,)
                if first:
                    next_ids[m] = nxt
                else:
                    handles.append(comm.send(nxt, 0))
            if first:
                for m in range(M):
                    comm.micro_batch = m
                    if next_ids[m] is None:
                        next_ids[m] = comm.recv((b,), torch.int64, world_size - 1)
                ids = torch.cat(next_ids).view(B, 1)
                generated.append(int(ids[0, 0]))
            comm.micro_batch = 0
            comm.wait(handles)
            pos += T

    steps = range(1, cfg.max_new_tokens)
    pre_c, pre_m = comm.totals([0])
    dec_c, dec_m = comm.totals(steps)
    holds = (("embed + " if first else "") + f"layers {stage.lo}-{stage.hi - 1}"
             + (" + norm + lm_head" if last else ""))
    return RankResult(
        rank=rank, world_size=world_size, mode="pipeline", holds=holds,
        weights_bytes=tensors.tensor_bytes(stage.tensors()), kv_cache_bytes=_cache_bytes(caches),
        start_rss_bytes=start_rss, loaded_rss_bytes=loaded_rss,
        peak_rss_bytes=peak_rss_bytes(),
        load_s=load_s, prefill_compute_s=pre_c, prefill_comm_s=pre_m,
        decode_compute_s=dec_c, decode_comm_s=dec_m,
        decode_comm_bytes=sum(v for k, v in comm.bytes_by_step.items() if k >= 1),
        num_decode_steps=len(steps), token_ids=tuple(generated), events=comm.timeline())
