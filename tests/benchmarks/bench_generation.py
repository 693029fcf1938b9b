"""Benchmark (printed, not asserted): memlab's loop vs transformers' generate, cache vs GGUF load.

Run: python tests/benchmarks/bench_generation.py   (a few minutes on 2 cores)
Ratios are measured in one run, so a noisy machine slows both sides alike.
"""

import time

import torch

import memlab as ml
from memlab.core import models
from memlab.core.measure import summarize

NEW_TOKENS, REPEATS = 64, 3


def main() -> None:
    loaded = ml.load("smollm2-135m")
    ids = loaded.tokenizer("Memory bandwidth, not arithmetic, limits how fast a language model "
                           "can decode one token at a time, because").input_ids
    ml.generate(loaded, ids, max_new_tokens=8)  # warm-up
    mine, theirs = [], []
    for _ in range(REPEATS):
        r = ml.generate(loaded, ids, max_new_tokens=NEW_TOKENS, stop_at_eos=False)
        mine.append(r.decode_tok_per_s)
        # transformers: time the 1-token run (TTFT) and the full run; decode = the difference
        with torch.inference_mode():
            t0 = time.perf_counter()
            loaded.model.generate(torch.tensor([ids]), max_new_tokens=1, do_sample=False)
            t1 = time.perf_counter()
            loaded.model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                  do_sample=False)
            t2 = time.perf_counter()
        theirs.append((NEW_TOKENS - 1) / ((t2 - t1) - (t1 - t0)))
    m, t = summarize(mine).median, summarize(theirs).median
    print(f"decode tok/s  memlab loop {m:6.1f}   transformers generate {t:6.1f}   ratio {m / t:.2f} (aim >= 1.0)")

    from transformers import AutoModelForCausalLM
    gguf = models.gguf_path()
    t0 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    gguf_s = time.perf_counter() - t0
    cache_s = summarize([ml.load("smollm2-135m").result.load_time_s for _ in range(REPEATS)]).median
    print(f"load          from cache {cache_s:6.2f} s   from GGUF {gguf_s:6.2f} s   "
          f"speed-up {gguf_s / cache_s:.1f}x (aim >= 5x)")


if __name__ == "__main__":
    main()
