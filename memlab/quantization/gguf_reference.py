"""The outside reference for lab 04: the bundled Q4_1 GGUF file run by llama.cpp.

Optional: `llama-cpp-python` compiles llama.cpp from source (minutes on a small machine), so
memlab reports this variant as "not installed" when the module is missing. When it is present,
the same prompt ids, question and evaluation text are used as for the torch variants:
  bytes      = the GGUF file size (llama.cpp maps it and reads its blocks as they are)
  speed      = prefill (eval of the prompt) and decode (one eval per greedy token), timed here
  perplexity = from llama.cpp's logits over the evaluation text (logits_all=True)
It always runs on the CPU (no layers offloaded): on a GPU run its row says so.
"""

from __future__ import annotations

import math
import time

import numpy as np
from memlab.core import models
from memlab.core.hardware import card
from memlab.quantization import quality
from memlab.quantization.records import QuantResult


def measure_gguf(variant, cfg, reference=None):
    """A QuantResult for the GGUF file under llama.cpp (same prompt, text and question)."""
    from transformers import AutoTokenizer

    path = models.gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(models.prepare(cfg.model))
    t0 = time.perf_counter()
    llm = open_gguf()
    load_s = time.perf_counter() - t0
    prompt = quality.eval_ids(tokenizer, cfg.prompt_tokens)
    run = speed(llm, prompt, cfg.new_tokens, cfg.repeats)
    tokens = run["tokens"]
    ids = quality.eval_ids(tokenizer, cfg.ppl_tokens)
    llm.reset()
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = float(np.mean(logz - logits[np.arange(len(ids) - 1), ids[1:]]))
    ref = list(reference.tokens) if reference is not None else tokens
    llm.reset()
    llm.eval(prompt + ref)
    picks = [int(np.argmax(llm.scores[len(prompt) - 1 + i])) for i in range(len(ref))]
    chat = f"<|im_start|>user\n{quality.QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    answer = llm.create_completion(chat, max_tokens=24, temperature=0.0, stop=["<|im_end|>"])
    size = path.stat().st_size
    return QuantResult(
        variant=variant.name, library=variant.library, description=variant.description, is_available=True,
        reason="" if cfg.device == "cpu" else "llama.cpp runs on the CPU here (no layers offloaded to the GPU)",
        resident_bytes=size, streamed_bytes=size, bits_per_weight=8 * size / _gguf_params(path),
        load_s=load_s, quantize_s=0.0, prefill_tok_per_s=len(prompt) / run["prefill_s"],
        decode_tok_per_s=run["decode_tok_per_s"], perplexity=math.exp(nll),
        agreement=sum(a == b for a, b in zip(picks, ref)) / max(len(ref), 1),
        first_divergence=quality.first_divergence(tokens, ref),
        answer=answer["choices"][0]["text"].strip(), tokens=tuple(tokens), host=card().host, device="cpu")


def speed(llm, prompt: list[int], new_tokens: int, repeats: int = 3) -> dict:
    """llama.cpp on token ids, greedy: medians over `repeats` of the prompt's eval (prefill_s), eval +
    first pick (ttft_s) and decode tok/s of `new_tokens` - 1 steps; and the tokens of the last run."""
    prefill, ttft, decode = [], [], []
    for _ in range(repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        tokens = [int(np.argmax(llm.scores[llm.n_tokens - 1]))]
        t2 = time.perf_counter()
        while len(tokens) < new_tokens:
            llm.eval([tokens[-1]])
            tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        t3 = time.perf_counter()
        prefill.append(t1 - t0)
        ttft.append(t2 - t0)
        decode.append((len(tokens) - 1) / (t3 - t2))
    return dict(prefill_s=float(np.median(prefill)), ttft_s=float(np.median(ttft)),
                decode_tok_per_s=float(np.median(decode)), tokens=tokens)


def open_gguf(n_ctx: int = 2048, logits_all: bool = True):
    """The bundled Q4_1 file under llama.cpp, with torch's thread count (the same cores as memlab's)."""
    import torch
    from llama_cpp import Llama

    return Llama(model_path=str(models.gguf_path()), n_threads=torch.get_num_threads(), n_ctx=n_ctx,
                 logits_all=logits_all, verbose=False)


def _gguf_params(path) -> int:
    """Number of weights stored in the GGUF file (from its tensor headers)."""
    from gguf import GGUFReader
    return sum(int(np.prod(t.shape)) for t in GGUFReader(str(path)).tensors)
