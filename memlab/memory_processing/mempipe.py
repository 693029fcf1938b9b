"""The paper's four memory-processing steps, timed inside a real decode step (lab 08).

arXiv 2603.29002 recasts long-context methods as one pipeline f(M, x) run every decode step:
  1. prep   Prepare Memory     M -> index I   (here: page-wise min/max of the cached keys, LServe/Quest)
  2. comp   Compute Relevancy  I, q -> S      score_p = sum_d max(q_d * min_pd, q_d * max_pd),
                                              an upper bound on q.k over page p; max over the GQA group
                                              (computed as max_p . max(q, 0) + min_p . min(q, 0))
  3. ret    Retrieval          M, S -> M'     top-k pages per KV head, then gather their keys/values
  4. apply  Apply to Inference M', q -> O     attention over the selected pages + the current token
Everything else in the step (norms, projections, RoPE, MLP, LM head) is "other".

`profile_decode` prefills a real prompt, takes the KV cache out of the `DynamicCache`, and runs one
hand-written Llama decode step with a clock between the steps. prep per decode step is the
incremental update of the last page's min/max (the full build runs once after prefill and is
reported apart, `prep_build_s`). With top-k = every page the step equals dense attention (tested).
`scoring.kernels` times comp + ret alone on synthetic index keys at paper-like scale (lab 08, roofline).
Shapes: Hq query heads, Hkv KV heads, G = Hq / Hkv, T cached tokens, P pages, D head dim.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memlab.core import limits, measure
from memlab.core.errors import InvalidArgumentError
from memlab.core.generation import decode_step, new_cache, prefill
from memlab.core.limits import check_context
from memlab.core.results import as_dict
from memlab.core.text import prompt_ids

STEPS = ("prep", "comp", "ret", "apply")  # the paper's four steps, in order
@dataclass(frozen=True, slots=True)
class PipeConfig:
    page_tokens: int = 16        # tokens per page (Quest and LServe use 16)
    budget_tokens: int = 256     # tokens attended per KV head: top-k pages * page_tokens
    repeats: int = 5             # timed decode steps per context (median kept)
    num_threads: int = 1         # torch threads while timing: a 135M decode step is dispatch-bound,
                                 # and 2 threads stall on a busy 2-core box (lab 08 shows why)

    def __post_init__(self):
        for name in ("page_tokens", "budget_tokens", "repeats", "num_threads"):
            limits.count(getattr(self, name), name)
        if self.budget_tokens < self.page_tokens:
            raise InvalidArgumentError(f"budget_tokens must be >= page_tokens ({self.page_tokens}): the budget is "
                                       f"whole pages, got {self.budget_tokens}")

    @classmethod
    def quick(cls) -> "PipeConfig":
        return cls(repeats=2)


@dataclass(frozen=True, slots=True)
class PipeProfile:
    """One decode step at one context length, split into the four steps + the rest (median times)."""
    model_name: str
    context_tokens: int          # T, cached tokens before this step
    num_pages: int               # P = ceil(T / page_tokens)
    selected_pages: int          # k per KV head
    page_tokens: int
    prep_s: float
    comp_s: float
    ret_s: float
    apply_s: float
    other_s: float
    step_s: float                # sum of the five parts
    prep_build_s: float          # one-off index build after prefill (not part of a decode step)
    dense_step_s: float          # the model's own (transformers) dense decode step, for reference
    top1_matches_dense: bool     # sparse and dense steps pick the same next token
    kl_to_dense: float           # KL(dense || sparse) of the next-token distributions, nats
    index_bytes: int             # bytes of the min/max page index, all layers
    kv_bytes: int                # bytes of the KV cache, all layers

    @property
    def memory_share(self) -> float:
        """Share of the decode step spent in the four memory-processing steps."""
        return (self.prep_s + self.comp_s + self.ret_s + self.apply_s) / self.step_s

    def as_json(self) -> dict:
        """The `memlab mempipe --json` view: the fields plus memory_share."""
        return {**as_dict(self), "memory_share": self.memory_share}

    def shares(self) -> dict[str, float]:
        """Each part's share of the step; the five shares sum to 1."""
        parts = {s: getattr(self, f"{s}_s") for s in (*STEPS, "other")}
        return {k: v / self.step_s for k, v in parts.items()}


def build_index(keys: torch.Tensor, page_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """prep: per-page elementwise min and max of the keys (Hkv, T, D) -> two (Hkv, P, D) tensors."""
    hkv, t, d = keys.shape
    p = math.ceil(t / page_tokens)
    # pad a partial last page with copies of the last key: min/max are unchanged by duplicates
    idx = torch.arange(p * page_tokens, device=keys.device).clamp_(max=t - 1)
    paged = keys[:, idx].view(hkv, p, page_tokens, d)
    return paged.amin(2), paged.amax(2)


def page_scores(q: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    """comp: upper bound of q.k per page, q (Hkv, G, D) vs (Hkv, P, D) -> (Hkv, P), max over G."""
    # sum_d max(q_d min_pd, q_d max_pd): where q_d >= 0 the max is q_d max_pd, else q_d min_pd (min <= max),
    # so the bound is two GEMVs over the index, each byte read once, with no (G, P, D) temporary
    hi = torch.einsum("hgd,hpd->hgp", q.clamp(min=0), kmax)
    lo = torch.einsum("hgd,hpd->hgp", q.clamp(max=0), kmin)
    return (hi + lo).amax(1)


def select_pages(scores: torch.Tensor, k: int, page_tokens: int, num_tokens: int):
    """ret: top-k pages per KV head -> token indices (Hkv, k * page_tokens) and a validity mask."""
    top = scores.topk(min(k, scores.shape[-1]), dim=-1).indices  # (Hkv, k)
    tok = (top[..., None] * page_tokens + torch.arange(page_tokens, device=scores.device)).flatten(1)
    return tok.clamp(max=num_tokens - 1), tok < num_tokens


def sparse_attention(q, k_sel, v_sel, valid, k_new, v_new, scale: float) -> torch.Tensor:
    """apply: softmax attention of q (Hkv, G, D) over the selected keys plus the current token."""
    keys = torch.cat([k_sel, k_new[:, None]], 1)                     # (Hkv, n + 1, D)
    vals = torch.cat([v_sel, v_new[:, None]], 1)
    logits = torch.einsum("hgd,hnd->hgn", q, keys) * scale
    mask = torch.cat([valid, valid.new_ones(valid.shape[0], 1)], 1)  # the current token always counts
    logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.einsum("hgn,hnd->hgd", logits.softmax(-1), vals)


@torch.inference_mode()
def sparse_step(model, token: int, kv: list, index: list, cfg: PipeConfig) -> tuple[torch.Tensor, dict]:
    """One Llama decode step with page-sparse attention; returns logits (V,) and seconds per part.

    kv[i] = (K, V) of layer i, each (Hkv, T, D); index[i] = (kmin, kmax). Nothing is mutated, so
    the same cached state can be timed repeatedly.
    """
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    inner, c = model.model, model.config
    hq, hkv = c.num_attention_heads, c.num_key_value_heads
    d = getattr(c, "head_dim", None) or c.hidden_size // hq
    t = kv[0][0].shape[1]
    k_pages = max(1, cfg.budget_tokens // cfg.page_tokens)
    clock = dict.fromkeys((*STEPS, "other"), 0.0)
    dev = kv[0][0].device
    now = time.perf_counter if dev.type != "cuda" else lambda: (measure.sync(dev), time.perf_counter())[1]
    t0 = now()  # on a GPU the clock waits for the queued kernels first
    h = inner.embed_tokens(torch.tensor([[token]], device=dev))
    cos, sin = inner.rotary_emb(h, position_ids=torch.tensor([[t]], device=dev))
    for layer, (keys, vals), (kmin, kmax) in zip(inner.layers, kv, index):
        a = layer.self_attn
        x = layer.input_layernorm(h)
        q = a.q_proj(x).view(1, 1, hq, d).transpose(1, 2)
        k = a.k_proj(x).view(1, 1, hkv, d).transpose(1, 2)
        v = a.v_proj(x).view(1, 1, hkv, d)[0, 0]          # (Hkv, D)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        q, k = q[0, :, 0].view(hkv, hq // hkv, d), k[0, :, 0]  # (Hkv, G, D), (Hkv, D)
        t1 = now(); clock["other"] += t1 - t0
        # prep: fold the new key into its page's min/max (a new page starts when t % page == 0)
        if t % cfg.page_tokens:
            torch.minimum(kmin[:, -1], k), torch.maximum(kmax[:, -1], k)
        t2 = now(); clock["prep"] += t2 - t1
        scores = page_scores(q, kmin, kmax)
        t3 = now(); clock["comp"] += t3 - t2
        tok, valid = select_pages(scores, k_pages, cfg.page_tokens, t)
        gather = tok[..., None].expand(-1, -1, d)
        k_sel, v_sel = keys.gather(1, gather), vals.gather(1, gather)
        t4 = now(); clock["ret"] += t4 - t3
        o = sparse_attention(q, k_sel, v_sel, valid, k, v, a.scaling)
        t0 = now(); clock["apply"] += t0 - t4
        h = h + a.o_proj(o.reshape(1, 1, hq * d))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    logits = model.lm_head(inner.norm(h))[0, -1]
    clock["other"] += now() - t0
    return logits, clock


@contextmanager
def threads(n: int):
    """Run the block with `n` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache_kv(cache) -> list:
    """(K, V) per layer from a transformers DynamicCache, each (Hkv, T, D) of sequence 0."""
    return [(layer.keys[0], layer.values[0]) for layer in cache.layers]


@torch.inference_mode()
def profile_decode(loaded, context_tokens: int, cfg: PipeConfig = PipeConfig()) -> PipeProfile:
    """Prefill `context_tokens` of text, then time one page-sparse decode step `cfg.repeats` times."""
    limits.count(context_tokens, "context_tokens")
    check_context(loaded.model.config, context_tokens + 1, getattr(loaded, "name", "the model"))
    with threads(cfg.num_threads):
        return _profile_decode(loaded, context_tokens, cfg)


def _profile_decode(loaded, context_tokens: int, cfg: PipeConfig) -> PipeProfile:
    model, name = loaded.model, getattr(loaded, "name", "model")
    dev = next(model.parameters()).device  # the step runs where the model is (cpu or cuda)
    ids = torch.tensor([prompt_ids(loaded.tokenizer, context_tokens)], device=dev)
    cache = new_cache(model)
    token = int(prefill(model, ids, cache)[0].argmax())
    kv = cache_kv(cache)
    measure.sync(dev)
    start = time.perf_counter()
    index = [build_index(k, cfg.page_tokens) for k, _ in kv]
    measure.sync(dev)
    prep_build_s = time.perf_counter() - start
    sparse_step(model, token, kv, index, cfg)  # warm-up
    runs = [sparse_step(model, token, kv, index, cfg) for _ in range(cfg.repeats)]
    logits = runs[-1][0]
    med = {s: sorted(r[1][s] for r in runs)[len(runs) // 2] for s in (*STEPS, "other")}
    start = time.perf_counter()
    dense = decode_step(model, torch.tensor([[token]], device=dev), cache)[0]  # appends to `cache`: done last
    measure.sync(dev)
    dense_step_s = time.perf_counter() - start
    kl = F.kl_div(logits.log_softmax(-1), dense.log_softmax(-1), log_target=True, reduction="sum")
    pages = math.ceil(context_tokens / cfg.page_tokens)
    return PipeProfile(
        model_name=name, context_tokens=context_tokens, num_pages=pages,
        selected_pages=min(pages, max(1, cfg.budget_tokens // cfg.page_tokens)),
        page_tokens=cfg.page_tokens, prep_s=med["prep"], comp_s=med["comp"], ret_s=med["ret"],
        apply_s=med["apply"], other_s=med["other"], step_s=sum(med.values()),
        prep_build_s=prep_build_s, dense_step_s=dense_step_s,
        top1_matches_dense=bool(logits.argmax() == dense.argmax()), kl_to_dense=float(kl),
        index_bytes=sum(a.nbytes + b.nbytes for a, b in index),
        kv_bytes=sum(k.nbytes + v.nbytes for k, v in kv))


def profile_contexts(loaded, contexts=(512, 1024, 2048, 4096), cfg: PipeConfig = PipeConfig()):
    """`profile_decode` at each context length, shortest first."""
    return [profile_decode(loaded, n, cfg) for n in sorted(contexts)]
