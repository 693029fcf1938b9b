"""What speculative decoding costs and buys on this machine: `memlab specdec` (lab 01, section 7).

verify_costs    a forward of k + 1 tokens (k drafts) against a single decode step, k = 0..K, timed in
                interleaved rounds (medians), beside the roofline's time for the same step: the weights
                are read once for all k + 1 positions, so the roofline predicts ~1x until compute binds
                (the step is taken as a batch of k + 1 one-token rows: the same FLOPs and weight bytes)
measure         plain greedy and speculative decoding of one prompt, interleaved repeats: same tokens
                (asserted), acceptance rate, the speed-up predicted from it and the one measured
Each runs its forwards through a path: "eager" (transformers' forward: `specdec.EagerRunner`) or "fast"
(memlab's fast path, a verify in C that reads each weight row once for all k + 1 rows: `specfast`).

The speed-up predicted from the acceptance rate a (drafts accepted / drafts proposed), for verifies
that drafted d_1 .. d_I tokens, with c(d) = the time of a (d + 1)-token forward from verify_costs:
    tokens per verify ~= mean_i (1 - a^(d_i + 1)) / (1 - a)       (Leviathan et al., i.i.d. acceptance)
    predicted speed-up = tokens per verify / (mean_i c(d_i) / c(0))
The measured speed-up is greedy's decode time over speculative's for the same tokens (after the first,
which the prefill makes in both). Drafting and the cache cut are in the measured time, not the prediction.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from memlab.core import limits
from memlab.core.errors import InvalidArgumentError, MemlabError
from memlab.core.generation import encode, eos_ids
from memlab.core.kernels import candidates, time_role
from memlab.core.limits import check_context
from memlab.core.measure import sync, torch_threads
from memlab.core.roofline import decode_workload, predict
from memlab.memory_wall.specdec import (EagerRunner, expected_tokens_per_verify, greedy_decode, runner_for,
                                        speculative_decode)
from memlab.memory_wall.specfast import FastRunner, engine

PATHS = ("eager", "fast")  # transformers' forward, or memlab's fast path (`specfast`)
VERIFY_AIM = 1.5  # issue 27's aim: a verify of k = 4 drafts costs at most 1.5 plain decode steps on a CPU

# Built-in prompts (`memlab specdec --prompt quote`): one whose answer copies its context, one that does not.
PROMPTS = {
    "quote": "Repeat this paragraph exactly: The quick brown fox jumps over the lazy dog while the cat sleeps "
             "on the warm windowsill. The dog does not wake up, and the fox runs back into the forest before "
             "the farmer sees it.",
    "prose": "Write a short story about a dragon who learns to bake bread.",
}


@dataclass(frozen=True, slots=True)
class VerifyCosts:
    """The time of one forward of k + 1 tokens (the pending token and k drafts) with a KV cache."""

    ks: tuple                   # k = 0 .. K drafts (k = 0: a plain decode step)
    verify_s: tuple             # median seconds per forward, per k
    cost_ratio: tuple           # verify_s[k] / verify_s[0]
    roofline_s: tuple           # the roofline's lower bound for the same forward, per k
    roofline_ratio: tuple       # roofline_s[k] / roofline_s[0]
    context_tokens: int         # tokens in the cache when each forward starts
    repeats: int                # timed rounds (each times every k once, in a rotated order)
    num_threads: int
    path: str = "eager"         # "eager": transformers' forward; "fast": memlab's fast path (`specfast`)
    kernels: tuple = ()         # per k, what ran the forward (`EagerRunner.kernel`, `FastRunner.kernel`)


@dataclass(frozen=True, slots=True)
class SpecDecReport:
    """Plain greedy against speculative decoding of one prompt (what `memlab specdec` prints)."""

    model_name: str
    prompt: str
    prompt_tokens: int
    new_tokens: int             # tokens decoded (the same in both: checked)
    k: int                      # the most drafts per verify
    max_ngram: int              # longest n-gram prompt lookup matches
    same_tokens: bool           # speculative == greedy, token for token (a mismatch raises first)
    token_ids: tuple
    num_verifies: int           # forwards after the prefill
    num_drafted: int
    num_accepted: int
    acceptance_rate: float      # accepted / drafted (0 when nothing was drafted)
    tokens_per_verify: float    # measured: (new_tokens - 1) / num_verifies
    expected_tokens_per_verify: float  # from the acceptance rate (module docstring)
    mean_verify_cost: float     # mean over the verifies of c(d_i) / c(0)
    predicted_speedup: float
    measured_speedup: float
    greedy_decode_s: float      # median over repeats
    speculative_decode_s: float
    repeats: int
    costs: VerifyCosts
    path: str = "eager"         # which forwards ran greedy, speculative and the verify costs (`costs.path`)


@torch.inference_mode()
def verify_costs(model, context_ids: list[int], max_k: int = 8, repeats: int = 5, peak_flop_per_s: float = 0.0,
                 bandwidth_bytes_per_s: float = 0.0, num_threads: int = 1, progress: bool = False) -> VerifyCosts:
    """Time a forward of k + 1 tokens after `context_ids`, k = 0..max_k: one warm-up round, then
    `repeats` rounds, each in a rotated order so drift on a shared machine hits every k alike. `model`: a
    transformers model (eager) or a runner (`specdec.EagerRunner`, `specfast.FastRunner`); k = 0 is the runner's
    plain decode step."""
    limits.count(max_k, "k")
    limits.count(repeats, "repeats")
    run = runner_for(model)
    feed = (context_ids * (max_k + 2))[:max_k + 1]  # what the tokens are does not change the time
    times: dict[int, list[float]] = {k: [] for k in range(max_k + 1)}
    with torch_threads(num_threads):
        run.start(context_ids)
        for r in tqdm(range(repeats + 1), desc="verify cost rounds", disable=not progress):
            for k in [(k + r) % (max_k + 1) for k in range(max_k + 1)]:
                sync(run.device)
                t0 = time.perf_counter()
                run.argmax(feed[:k + 1])
                sync(run.device)
                t = time.perf_counter() - t0
                run.cut(k + 1)
                if r:
                    times[k].append(t)
    med = [statistics.median(times[k]) for k in range(max_k + 1)]
    roof = [0.0] * (max_k + 1)
    if peak_flop_per_s and bandwidth_bytes_per_s:
        roof = [predict(decode_workload(run.config, k + 1, len(context_ids)), peak_flop_per_s,
                        bandwidth_bytes_per_s).time_s for k in range(max_k + 1)]
    return VerifyCosts(tuple(range(max_k + 1)), tuple(med), tuple(m / med[0] for m in med), tuple(roof),
                       tuple(r / roof[0] if roof[0] else 0.0 for r in roof), len(context_ids), repeats,
                       num_threads or torch.get_num_threads(), "fast" if isinstance(run, FastRunner) else "eager",
                       tuple(run.kernel(k + 1) for k in range(max_k + 1)))


def head_read_rates(model, rows=(1, 5), kernels=("linear", "c"), num_threads: int = 1,
                    repeats: int = 5) -> dict[tuple[str, int], float]:
    """GB/s at which each kernel streams the LM head's weight for `rows` token rows, {(kernel, rows): GB/s}:
    "linear" is torch's F.linear (what the eager forward calls), "c" memlab's (the GEMV for one row, the
    blocked GEMM for several: what the fast path's verify calls). The roofline's ~1x verify assumes the weights
    stream as fast for k + 1 rows as for one. Timed by `kernels.time_role` (kernels that cannot run here: left out)."""
    weight = model.get_output_embeddings().weight
    usable = [k for k in kernels if k in candidates(weight)]
    return {(k, n): time_role("head", [weight], k, num_threads, repeats, rows=limits.count(n, "rows")).gb_per_s
            for n in rows for k in usable}


def predicted_speedup(acceptance: float, draft_lens, cost_ratio) -> tuple[float, float, float]:
    """(expected tokens per verify, mean verify cost / step, predicted speed-up): module docstring."""
    tokens = statistics.fmean(expected_tokens_per_verify(acceptance, d) for d in draft_lens)
    cost = statistics.fmean(cost_ratio[d] for d in draft_lens)
    return tokens, cost, tokens / cost


def measure(loaded, prompt: str = "quote", k: int = 4, max_new_tokens: int = 48, max_ngram: int = 3,
            repeats: int = 3, costs: VerifyCosts | None = None, ceilings=None, num_threads: int = 1,
            progress: bool = False, path: str = "eager", runner=None) -> SpecDecReport:
    """Greedy and speculative decoding of `prompt` (a PROMPTS name or text), `repeats` times each,
    interleaved, through `path`'s forwards (PATHS); the verify costs are measured here unless given for the
    same path (they depend on k, not on the prompt). `runner`: a `specfast.FastRunner` to reuse (path "fast")."""
    limits.count(k, "k")
    limits.count(repeats, "repeats")
    if path not in PATHS:
        raise InvalidArgumentError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    model, tokenizer = loaded.model, loaded.tokenizer
    text = PROMPTS.get(prompt, prompt)
    if not text.strip():
        raise MemlabError("the prompt is empty: give some text, or one of " + ", ".join(PROMPTS))
    ids = encode(tokenizer, text)
    check_context(model.config, len(ids) + max_new_tokens + k, loaded.name)
    stop = eos_ids(model, tokenizer)
    max_k = max(k, 8)
    max_len = len(ids) + max(max_new_tokens, max_k + 1) + k  # the fast path's static cache
    run = EagerRunner(model) if path == "eager" else runner or FastRunner(engine(model, max_len))
    if costs is None or len(costs.ks) <= k or costs.path != path:
        peak, bw = (ceilings.flop_per_s(loaded.dtype), ceilings.bandwidth_bytes_per_s) if ceilings else (0.0, 0.0)
        costs = verify_costs(run, ids, max_k, repeats, peak, bw, num_threads, progress)
    greedy, spec = [], []
    with torch_threads(num_threads):
        for _ in tqdm(range(repeats), desc="greedy vs speculative", disable=not progress):
            greedy.append(greedy_decode(run, ids, max_new_tokens, stop))
            spec.append(speculative_decode(run, ids, max_new_tokens, k, max_ngram, stop))
            if spec[-1].token_ids != greedy[-1].token_ids:
                raise MemlabError(f"speculative decoding gave other tokens than greedy: {spec[-1].token_ids} vs "
                                  f"{greedy[-1].token_ids} (a bug: a draft is kept only where greedy picks it)")
    run = spec[0]  # every repeat decodes the same tokens with the same drafts
    drafted, accepted = sum(run.draft_lens), sum(run.accepted)
    acceptance = accepted / drafted if drafted else 0.0
    tokens, cost, pred = predicted_speedup(acceptance, run.draft_lens, costs.cost_ratio) if run.draft_lens \
        else (1.0, 1.0, 1.0)
    g_s = statistics.median(r.decode_s for r in greedy)
    s_s = statistics.median(r.decode_s for r in spec)
    n = len(run.token_ids)
    return SpecDecReport(
        model_name=loaded.name, prompt=text, prompt_tokens=len(ids), new_tokens=n, k=k, max_ngram=max_ngram,
        same_tokens=True, token_ids=run.token_ids, num_verifies=run.num_verifies, num_drafted=drafted,
        num_accepted=accepted, acceptance_rate=acceptance,
        tokens_per_verify=(n - 1) / run.num_verifies if run.num_verifies else 1.0,
        expected_tokens_per_verify=tokens, mean_verify_cost=cost, predicted_speedup=pred,
        measured_speedup=g_s / s_s if s_s > 0 else float("nan"), greedy_decode_s=g_s, speculative_decode_s=s_s,
        repeats=repeats, costs=costs, path=path)
