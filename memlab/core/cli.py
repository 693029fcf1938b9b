"""CLI pieces every topic shares: JSON output, the load options, and the core commands (info, prepare, generate).

Each topic's `cli.register(sub)` adds its commands; `memlab.cli` builds the parser from them.
Registering imports nothing heavy: every command imports what it runs inside its `_cmd_*`
function, so `memlab --help`, `memlab info` and `memlab fits` load no torch, transformers,
matplotlib or simpy (tests/test_cli_imports.py), and `memlab generate` loads what generating needs.
"""

from __future__ import annotations

import argparse
import json

from memlab.core import dtypes, limits, models
from memlab.core.units import fmt_bytes, fmt_time


def print_json(obj) -> None:
    from memlab.core.results import as_dict
    print(json.dumps(as_dict(obj) if not isinstance(obj, (list, str, int, float)) else obj, indent=1))


# the names of memlab.core.loading.STRATEGIES, here so that listing them imports no torch
# (tests/core/test_cli.py checks that the two agree)
STRATEGIES = ("resident", "mmap", "paged", "paged-prefetch", "paged-accelerate")


def add_load_options(s) -> None:
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--dtype", default="fp32", choices=list(dtypes.TORCH))
    s.add_argument("--strategy", default="resident", choices=list(STRATEGIES),
                   help="where the weights live: resident (RAM/VRAM), mmap (mapped file), "
                        "paged (one layer at a time from disk), paged-prefetch, paged-accelerate")
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    s.add_argument("--bigger-than-ram", action="store_true",
                   help="paged/paged-prefetch: evict each layer after use, so every token reads it from disk")
    s.add_argument("--force", action="store_true", help="load even if the memory guard predicts it won't fit")


def _cmd_info(args) -> int:
    from memlab.core.hardware import card
    hw = card()
    print_json(hw) if args.json else print(hw)
    return 0


def _cmd_prepare(args) -> int:
    for dtype in args.dtype.split(","):
        folder = models.prepare(args.model, dtype=dtype)
        print(f"{args.model} ({dtype}) ready in {folder}")
    return 0


def _cmd_generate(args) -> int:
    from memlab.core.generation import generate
    from memlab.core.loading import load
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype,
                  cold=args.cold, bigger_than_ram=args.bigger_than_ram, force=args.force)
    r = generate(loaded, args.prompt, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                 temperature=args.temperature, seed=args.seed)
    if args.json:
        print_json(r)
        return 0
    print(r.text)
    print(f"\n[{r.model_name} {r.dtype} on {r.device}, loaded ({loaded.result.strategy}) in "
          f"{fmt_time(loaded.result.load_time_s)}] prompt {r.prompt_tokens} tok, {r.new_tokens} new tok | "
          f"TTFT {fmt_time(r.ttft_s)} | TPOT {fmt_time(r.tpot_s)} | decode {r.decode_tok_per_s:.1f} tok/s | "
          f"prefill {r.prefill_tok_per_s:.0f} tok/s | peak RSS {fmt_bytes(r.peak_rss_bytes)}")
    return 0


def register(sub) -> None:
    """info, prepare, generate."""
    s = sub.add_parser("info", help="print this machine's hardware card")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("prepare", help="convert/download a model into the cache (once)",
                       description="Models:\n" + models.catalog_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", nargs="?", default=models.DEFAULT_MODEL)
    s.add_argument("--dtype", default="fp32", help="comma-separated: fp32,bf16,fp16")
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("generate", help="answer a prompt and print TTFT, TPOT and tok/s")
    s.add_argument("prompt")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--dtype", default="fp32", choices=list(dtypes.TORCH))
    s.add_argument("--strategy", default="resident", help="where the weights live (see `memlab load`)")
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    s.add_argument("--bigger-than-ram", action="store_true", help="paged: evict each layer after use")
    s.add_argument("--force", action="store_true", help="skip the memory guard")
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=32)
    s.add_argument("--sample", action="store_true", help="sample instead of greedy")
    s.add_argument("--temperature", type=limits.POSITIVE, default=0.7)
    s.add_argument("--seed", type=limits.COUNT0, default=0)
    s.add_argument("--json", action="store_true", help="one JSON object with the GenerationResult fields")
    s.set_defaults(func=_cmd_generate)
