"""What a variant costs in quality (lab 04): perplexity, agreement with fp32, a fixed answer.

  perplexity   = exp(mean over t of -log p(token_t | tokens_<t)) on a fixed public-domain text
                 (`data/eval_text.txt`, source in `data/eval_text.SOURCE.md`); lower is better.
  agreement    = share of positions where the variant's greedy (argmax) token equals fp32's, with
                 fp32's own greedy continuation fed in as the context (teacher forcing), so one
                 near-tie does not derail every later token.
  divergence   = index of the first token where free-running greedy generation differs from fp32
                 (len(tokens) when they never differ).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from memlab.core.errors import MemlabError
from memlab.core.paths import data_path

EVAL_TEXT = "eval_text.txt"
QUESTION = "What is the capital of France?"


def eval_text(path: str | Path | None = None) -> str:
    """The perplexity text shipped in `data/` (public domain; see eval_text.SOURCE.md)."""
    path = Path(path) if path is not None else data_path(EVAL_TEXT)
    if not path.is_file():
        raise MemlabError(f"The evaluation text {path} is missing; reinstall memlab or pass a text file.")
    return path.read_text(encoding="utf-8")


def eval_ids(tokenizer, max_tokens: int = 512, path: str | Path | None = None) -> list[int]:
    """The first `max_tokens` token ids of the evaluation text (no chat template)."""
    return tokenizer(eval_text(path), add_special_tokens=False).input_ids[:max_tokens]


@torch.inference_mode()
def perplexity(model, ids: list[int]) -> float:
    """exp(mean NLL) of `ids` under `model`, one forward pass over the whole text."""
    x = torch.tensor([ids], device=model.get_input_embeddings().weight.device)   # (1, T)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()   # (T-1, V)
    nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="mean")
    return math.exp(nll.item())


@torch.inference_mode()
def agreement(model, prompt_ids: list[int], reference_ids: list[int]) -> float:
    """Share of the reference's greedy tokens the model also picks, given the reference's context."""
    if not reference_ids:
        return float("nan")
    x = torch.tensor([list(prompt_ids) + list(reference_ids)],
                     device=model.get_input_embeddings().weight.device)          # (1, T + n)
    logits = model(input_ids=x, use_cache=False).logits[0]       # (T + n, V)
    n, start = len(reference_ids), len(prompt_ids) - 1
    picks = logits[start:start + n].argmax(-1).tolist()
    return sum(a == b for a, b in zip(picks, reference_ids)) / n


def first_divergence(tokens, reference) -> int:
    """Index of the first differing token; the common length when one is a prefix of the other."""
    for i, (a, b) in enumerate(zip(tokens, reference)):
        if a != b:
            return i
    return min(len(tokens), len(reference))
