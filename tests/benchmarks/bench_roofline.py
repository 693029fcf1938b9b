"""Benchmark (printed, never asserted): eager vs fast decode tok/s as fractions of the bandwidth bound.

    PYTHONPATH=. python tests/benchmarks/bench_roofline.py [--tokens 48] [--rounds 2] [--dtypes fp32,bf16]

Eager = memlab.core.generation (transformers modules, DynamicCache); fast = memlab.core.fastpath (fused
weights, static cache). Both greedy, same prompt, rounds interleaved so that load on a shared
machine hits both alike; the best round of each is reported. The bound is measured triad
bandwidth / decode bytes per token (memlab.core.roofline), measured in this run.
"""

from __future__ import annotations

import argparse
import os

import torch

import memlab as ml
from memlab.core import ceilings, roofline
from memlab.core import fastpath


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # on a shared box, fewer threads than cores avoids spinning
    c = ceilings.measure(quick=True, refresh=True, disk=False)
    print(f"triad {c.triad_gb_per_s:.1f} GB/s, {torch.get_num_threads()} threads, "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    prompt = "Write a short story about a robot who learns to paint."
    print(f"{'dtype':6} {'path':6} {'tok/s':>7} {'bound':>7} {'fraction':>8}  {'warm-up':>8}  same tokens")
    for dtype in args.dtypes.split(","):
        loaded = ml.load(args.model, dtype=dtype)
        ids = ml.generation.encode(loaded.tokenizer, prompt)
        ctx = len(ids) + args.tokens // 2
        bound = roofline.predict(roofline.decode_workload(loaded.model.config, 1, ctx, dtype),
                                 c.flop_per_s(dtype), c.bandwidth_bytes_per_s).tok_per_s
        eager, fast = [], []
        for _ in range(args.rounds):
            eager.append(ml.generate(loaded, ids, max_new_tokens=args.tokens, stop_at_eos=False))
            fast.append(fastpath.fast_generate(loaded.model, torch.tensor([ids]), args.tokens))
        e = max(eager, key=lambda r: r.decode_tok_per_s)
        f = max(fast, key=lambda r: r.decode_tok_per_s)
        same = tuple(f.token_ids) == tuple(e.token_ids)
        print(f"{dtype:6} {'eager':6} {e.decode_tok_per_s:7.1f} {bound:7.1f} {e.decode_tok_per_s / bound:8.2f}  "
              f"{'-':>8}")
        print(f"{dtype:6} {'fast':6} {f.decode_tok_per_s:7.1f} {bound:7.1f} {f.decode_tok_per_s / bound:8.2f}  "
              f"{f.setup_s + f.warmup_s:7.2f}s  {same}")
        print(f"{dtype:6} fast / eager = {f.decode_tok_per_s / e.decode_tok_per_s:.2f}x")
        del loaded


if __name__ == "__main__":
    main()
