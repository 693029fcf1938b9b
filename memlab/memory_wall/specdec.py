"""Speculative decoding with prompt-lookup drafts: several tokens per read of the weights (lab 01, section 7).

A batch-1 decode step reads every weight to do one multiply-add with it: the cores idle while the
bytes stream. A *verify* step feeds the pending token and k guessed tokens through the model in one
forward (k + 1 positions, the weights read once, like a batch of k + 1 at one sequence), and keeps
the longest prefix of guesses equal to the model's own argmax, plus the argmax after it (the bonus
token). So each verify yields 1 .. k + 1 tokens, and exactly the tokens greedy decoding yields: a
guess is kept only where greedy would have picked it. The KV cache of the rejected guesses is
cut off again (`DynamicCache.crop`).

The guesses come from the context itself (prompt lookup): the last n tokens are searched for
earlier in the prompt and the output, most recent match first, longest n first, and the k tokens
that followed the match are the draft. No second model; a draft costs a list search. It pays when
the answer copies its context (code edits, quotes) and not in free prose, where few guesses match.

Variants, in order:
  greedy_decode        plain greedy: one forward of one token per new token (the baseline)
  speculative_decode   the same greedy tokens, drafted by prompt lookup and verified k at a time
Both run their forwards through a runner: `EagerRunner` (the transformers model, a DynamicCache cut with
`crop`) or `specfast.FastRunner` (memlab's fast path, a static cache whose length is a position).
Shapes: T tokens fed in one forward, V vocab.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from memlab.core import limits
from memlab.core.generation import cache_kwarg, new_cache, prefill
from memlab.core.measure import sync


@dataclass(frozen=True, slots=True)
class DecodeRun:
    """One greedy decode, plain or speculative: its tokens, its time, and what each forward did."""

    token_ids: tuple        # the new tokens, the prefill's (first) token included
    prefill_s: float        # the prompt's forward and the first token
    decode_s: float         # first token -> last token: what speculation can shorten
    draft_lens: tuple       # drafts fed to each forward after the prefill (0: no match, a plain step)
    accepted: tuple         # of those, how many the model's argmax confirmed
    cache_tokens: int       # positions in the KV cache at the end: prompt + tokens - 1 (the last is pending)

    @property
    def num_verifies(self) -> int:
        """Forwards after the prefill (one per token for plain greedy)."""
        return len(self.draft_lens)


def lookup_drafts(ids: list[int], k: int, max_ngram: int = 3, min_ngram: int = 1) -> list[int]:
    """Up to k tokens that followed the most recent earlier occurrence of the last n tokens of `ids`,
    trying n = max_ngram down to min_ngram; [] when no n-gram recurs."""
    if k < 1:
        return []
    for n in range(max_ngram, min_ngram - 1, -1):
        if len(ids) <= n:
            continue
        tail = ids[-n:]
        for start in range(len(ids) - n - 1, -1, -1):  # start + n < len(ids): a token follows the match
            if ids[start:start + n] == tail:
                return ids[start + n:start + n + k]
    return []


def accepted_prefix(drafts: list[int], argmax: list[int]) -> int:
    """How many drafts greedy confirms: the longest prefix with drafts[i] == argmax[i], where
    argmax[i] is the model's pick after the pending token and drafts[:i]."""
    n = 0
    while n < len(drafts) and drafts[n] == argmax[n]:
        n += 1
    return n


def _finish(out: list[int], max_new_tokens: int, stop: set[int]) -> tuple[list[int], bool]:
    """Cut the tokens at the first stop token (kept) or at max_new_tokens; True when decoding is done."""
    for i, t in enumerate(out[:max_new_tokens]):
        if t in stop:
            return out[:i + 1], True
    return out[:max_new_tokens], len(out) >= max_new_tokens


class EagerRunner:
    """Greedy decoding's forwards through the transformers model itself (eager, a DynamicCache): what
    `greedy_decode`, `speculative_decode` and `specreport.verify_costs` call. `specfast.FastRunner` does the
    same through memlab's fast path; any object with these four methods will do."""

    def __init__(self, model):
        self.model, self.device, self.kwarg, self.config = model, model.device, cache_kwarg(model), model.config

    def start(self, prompt_ids: list[int]) -> int:
        """A fresh cache filled with the prompt; greedy's first token."""
        self.cache = new_cache(self.model)
        return int(prefill(self.model, torch.tensor([prompt_ids], device=self.device), self.cache).argmax(-1))

    def argmax(self, ids: list[int]) -> list[int]:
        """Feed `ids` after the cache in one forward; the model's argmax after each of them."""
        x = torch.tensor([ids], device=self.device)  # (1, T)
        return self.model(input_ids=x, use_cache=True, **{self.kwarg: self.cache}).logits[0].argmax(-1).tolist()

    def cut(self, n: int) -> None:
        """Drop the last n positions' K/V (rejected drafts: greedy never saw those tokens)."""
        self.cache.crop(-n)

    def length(self) -> int:
        return self.cache.get_seq_length()

    def kernel(self, rows: int) -> str:
        """What runs a forward of `rows` tokens: transformers' eager forward (torch's matmul picks its code)."""
        return "eager"


def runner_for(model):
    """`model` itself where it is a runner (has `argmax`), else an EagerRunner over it."""
    return model if hasattr(model, "argmax") and hasattr(model, "cut") else EagerRunner(model)


@torch.inference_mode()
def greedy_decode(model, prompt_ids: list[int], max_new_tokens: int, stop: set[int] = frozenset()) -> DecodeRun:
    """Plain greedy decoding, timed: the baseline every speculative run must equal, token for token.
    `model`: a transformers model (eager) or a runner (`EagerRunner`, `specfast.FastRunner`)."""
    limits.count(max_new_tokens, "max_new_tokens")
    run = runner_for(model)
    sync(run.device)
    start = time.perf_counter()
    out = [run.start(prompt_ids)]
    first_at = time.perf_counter()
    done = out[0] in stop
    while not done and len(out) < max_new_tokens:
        out.append(run.argmax([out[-1]])[0])
        done = out[-1] in stop
    sync(run.device)
    end = time.perf_counter()
    n = len(out) - 1
    return DecodeRun(tuple(out), first_at - start, end - first_at, (0,) * n, (0,) * n, run.length())


@torch.inference_mode()
def speculative_decode(model, prompt_ids: list[int], max_new_tokens: int, k: int = 4, max_ngram: int = 3,
                       stop: set[int] = frozenset(), draft=None) -> DecodeRun:
    """Greedy decoding that verifies up to k drafts per forward (module docstring). `draft(ids, k)` makes
    the drafts (default: prompt lookup); whatever it guesses, the tokens are greedy's. `model` as for greedy."""
    limits.count(max_new_tokens, "max_new_tokens")
    limits.count(k, "k")
    limits.count(max_ngram, "max_ngram")
    run = runner_for(model)
    sync(run.device)
    start = time.perf_counter()
    out = [run.start(prompt_ids)]
    first_at = time.perf_counter()
    draft_lens, accepted = [], []
    out, done = _finish(out, max_new_tokens, stop)
    while not done:
        # the cache holds prompt + out[:-1]; out[-1] is pending. Never draft past max_new_tokens.
        budget = min(k, max_new_tokens - len(out) - 1)
        drafts = draft(prompt_ids + out, budget)[:budget] if draft else lookup_drafts(prompt_ids + out, budget, max_ngram)
        argmax = run.argmax([out[-1]] + drafts)  # one forward of 1 + len(drafts) tokens
        n = accepted_prefix(drafts, argmax)
        if n < len(drafts):
            run.cut(len(drafts) - n)  # the rejected drafts' K/V: greedy never saw those tokens
        draft_lens.append(len(drafts))
        accepted.append(n)
        out, done = _finish(out + drafts[:n] + [argmax[n]], max_new_tokens, stop)
    sync(run.device)
    end = time.perf_counter()
    return DecodeRun(tuple(out), first_at - start, end - first_at, tuple(draft_lens), tuple(accepted), run.length())


def expected_tokens_per_verify(acceptance: float, k: int) -> float:
    """Tokens one verify of k drafts yields when each draft is accepted with probability a, independently
    (Leviathan et al. 2023): 1 + a + a^2 + ... + a^k = (1 - a^(k+1)) / (1 - a)."""
    if acceptance >= 1.0:
        return k + 1.0
    return (1 - acceptance ** (k + 1)) / (1 - acceptance)
