"""memlab's own generation loop: one prefill, then one decode step per token (labs 00, 03).

Metric definitions, written once (every lab and the CLI use these fields):
  TTFT  time to first token = request start -> first token available
        = tokenize + prefill forward + first sample. A cold start would add load time.
  ITL   inter-token latency = each gap between two consecutive tokens (a list).
  TPOT  time per output token = (E2E - TTFT) / (n - 1), the mean decode step.
  E2E   end to end = request start -> last token available.
  prefill tok/s = B * prompt tokens / prefill forward time
  decode tok/s  = B * (n - 1) / (E2E - TTFT)
Shapes: B batch, T prompt tokens, V vocab.

The loop keeps the KV cache in hand (a transformers `DynamicCache`), computes logits only for
the last position during prefill (a 1000-token prompt would otherwise materialise 1000 x V
logits), and reads each token back to the host, which is when it is "available".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from memlab.core import limits, shapetrue
from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import HardwareCard, card
from memlab.core.measure import PeakMemory, sync
from memlab.core.limits import check_context


@dataclass(frozen=True, slots=True)
class GenerationResult:
    model_name: str
    prompt: str
    text: str                   # decoded continuation of sequence 0
    prompt_tokens: int          # T, per sequence (template included)
    new_tokens: int             # n, per sequence
    token_ids: tuple            # the n new token ids of sequence 0
    batch_size: int             # B
    tokenize_s: float
    prefill_s: float            # the prefill forward pass alone
    ttft_s: float
    itl_s: tuple                # n - 1 gaps between tokens
    tpot_s: float
    e2e_s: float
    prefill_tok_per_s: float
    decode_tok_per_s: float
    peak_rss_bytes: int
    peak_vram_bytes: int
    device: str
    dtype: str
    hardware: HardwareCard
    weights_origin: str         # "trained", or "random (shape-true)": then the text is noise, the timing real


def new_cache(model):
    """An empty KV cache for `model` (grows by one position per decode step)."""
    from transformers import DynamicCache
    return DynamicCache(config=model.config)


def cache_kwarg(module) -> str:
    """The name transformers' forward takes the KV cache by: `cache` (5.24 and later; the old name
    warns and goes away in 5.40) or `past_key_values` (earlier 5.x)."""
    import inspect
    kind = type(module)
    if kind not in _CACHE_KWARG:
        params = inspect.signature(kind.forward).parameters
        _CACHE_KWARG[kind] = "cache" if "cache" in params else "past_key_values"
    return _CACHE_KWARG[kind]


_CACHE_KWARG: dict[type, str] = {}


def prefill(model, input_ids: torch.Tensor, cache) -> torch.Tensor:
    """Run the prompt (B, T) through the model, filling `cache`; logits of the last position (B, V)."""
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})
    return out.logits[:, -1, :]


def decode_step(model, token_ids: torch.Tensor, cache) -> torch.Tensor:
    """One token per sequence (B, 1) through the model, appending to `cache`; logits (B, V)."""
    out = model(input_ids=token_ids, use_cache=True, **{cache_kwarg(model): cache})
    return out.logits[:, -1, :]


def pick(logits: torch.Tensor, do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token per row (B,): argmax, or a sample from softmax(logits / temperature) over the top k."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / max(temperature, 1e-6)
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def encode(tokenizer, prompt, chat: bool | None = None) -> list[int]:
    """Token ids for `prompt`: a list of ids is used as-is; text gets the chat template when the
    tokenizer has one (instruct models) unless chat=False."""
    if not isinstance(prompt, str):
        return [int(t) for t in prompt]
    if chat is None:
        chat = getattr(tokenizer, "chat_template", None) is not None
    if chat:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False).input_ids
    return tokenizer(prompt).input_ids


def eos_ids(model, tokenizer) -> set[int]:
    """Token ids that end a reply (generation config and tokenizer both consulted)."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


@torch.inference_mode()
def generate(loaded, prompt, *, max_new_tokens: int = 32, batch_size: int = 1, chat: bool | None = None,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
             stop_at_eos: bool = True) -> GenerationResult:
    """Generate up to `max_new_tokens` for `batch_size` copies of `prompt`, timing every token."""
    limits.count(max_new_tokens, "max_new_tokens")
    limits.count(batch_size, "batch_size")
    limits.count(top_k, "top_k", minimum=0)
    if do_sample:
        limits.positive(temperature, "temperature")
    if isinstance(prompt, str) and not prompt.strip():
        raise InvalidArgumentError("the prompt is empty: memlab refuses it rather than guess (give some text, "
                                   "or token ids)")
    if not isinstance(prompt, str) and len(prompt) == 0:
        raise InvalidArgumentError("the prompt has no token ids: give at least one")
    model, tokenizer, device = loaded.model, loaded.tokenizer, loaded.device
    generator = torch.Generator().manual_seed(seed) if do_sample else None
    stop = eos_ids(model, tokenizer) if stop_at_eos else set()
    with PeakMemory(device) as pm:
        sync(device)
        start = time.perf_counter()
        ids = encode(tokenizer, prompt, chat)
        check_context(model.config, len(ids) + max_new_tokens, getattr(loaded, "name", "the model"))
        input_ids = torch.tensor([ids] * batch_size, device=device)  # (B, T)
        tokenized_at = time.perf_counter()
        cache = new_cache(model)
        logits = prefill(model, input_ids, cache)
        sync(device)
        prefilled_at = time.perf_counter()
        token = pick(logits, do_sample, temperature, top_k, generator)  # (B,)
        rows = [token.tolist()]  # .tolist() waits for the device: the token is now available
        stamps = [time.perf_counter()]
        finished = [t in stop for t in rows[-1]]
        while len(rows) < max_new_tokens and not all(finished):
            logits = decode_step(model, token[:, None], cache)
            token = pick(logits, do_sample, temperature, top_k, generator)
            rows.append(token.tolist())
            stamps.append(time.perf_counter())
            finished = [f or t in stop for f, t in zip(finished, rows[-1])]
    n = len(rows)
    seq0 = tuple(r[0] for r in rows)
    ttft, e2e = stamps[0] - start, stamps[-1] - start
    prefill_s = prefilled_at - tokenized_at
    decode_s = e2e - ttft
    text = tokenizer.decode([t for t in seq0 if t not in stop], skip_special_tokens=True) if tokenizer else ""
    return GenerationResult(
        model_name=loaded.name, prompt=prompt if isinstance(prompt, str) else f"<{len(ids)} token ids>",
        text=text, prompt_tokens=len(ids), new_tokens=n, token_ids=seq0, batch_size=batch_size,
        tokenize_s=tokenized_at - start, prefill_s=prefill_s, ttft_s=ttft,
        itl_s=tuple(b - a for a, b in zip(stamps, stamps[1:])),
        tpot_s=decode_s / (n - 1) if n > 1 else float("nan"), e2e_s=e2e,
        prefill_tok_per_s=batch_size * len(ids) / prefill_s,
        decode_tok_per_s=batch_size * (n - 1) / decode_s if n > 1 else float("nan"),
        peak_rss_bytes=pm.peak_rss_bytes, peak_vram_bytes=pm.peak_vram_bytes,
        device=str(device), dtype=loaded.dtype, hardware=card(), weights_origin=shapetrue.weights_origin(model.config))
